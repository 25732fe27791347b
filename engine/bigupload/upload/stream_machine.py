"""The stream kind: a source read once, front to back (standard input, a FIFO, an
iterable of bytes), of a size known only when it ends.

    LOOK       HEAD the destination before a byte is read: --no-overwrite refuses here,
               and what is there is the guard the completion is conditioned on
    READ       the first part, and whether anything follows it
      PUT      it ended inside the first part (or is empty): one PutObject -> VERIFY
      CREATE   it goes on: a journal row, CreateMultipartUpload
    PARTS      read each part into a buffer and send it from there, until the stream ends;
               part sizes from the ``StreamPlan``, growing as the stream goes
    COMPLETE, CONTESTED, VERIFY   as for a file (``MultipartMachine``'s transitions)
    DONE / ABORT

A stream cannot be read again, so nothing of it can be resumed: whatever stops it
(a failure, an interruption, a refused completion) ends the upload, aborted and its
journal row closed (``stopped``). The multipart kind's rule, "never abort what the
journal can still resume", therefore never applies here. The machine reuses the
multipart kind's CREATE, COMPLETE and VERIFY transitions and never RECONCILEs; it knows
its part count and size only once the stream has ended."""

from __future__ import annotations

from .. import checksum as ck
from .. import verify
from ..config import MAX_PARTS, UploadConfig, format_size
from ..errors import DestinationChangedError, ExistsError, SourceError, StoreError
from ..values import (
    ObjectInfo,
    ObjectOptions,
    Part,
    PartReceipt,
    PartRecord,
    Plan,
    Precondition,
    StreamPlan,
)
from .machine import Close, Outcome, Phase, Step
from .multipart_machine import MultipartMachine

NOT_RESUMABLE = "a stream cannot be resumed"


class StreamMachine(MultipartMachine):
    def __init__(self, bucket: str, key: str, config: UploadConfig, stream_plan: StreamPlan,
                 options: ObjectOptions) -> None:
        super().__init__(bucket, key, config, Plan(0, stream_plan.start, multipart=True),
                         options)
        self.stream_plan = stream_plan
        self.phase = Phase.READ
        self.looked = False
        self.single = False  # one PutObject: the stream ended inside its first part
        self.condition: Precondition | None = None  # of that PutObject
        self.raw = b""  # that PutObject's raw checksum
        self.read_parts = 0  # parts read so far (each acknowledged or on its way)
        self.read_bytes = 0
        self.ended = False  # the stream has ended: ``read_parts`` is the last one

    @property
    def part_count(self) -> int:
        return 1 if self.single else self.read_parts

    def next_step(self) -> Step:
        if self.phase is Phase.READ:
            return Step.READ if self.looked else Step.LOOK
        if self.phase is Phase.PUT:
            return Step.PUT
        return super().next_step()  # CREATE, PARTS, COMPLETE, VERIFY, DONE

    # LOOK and READ

    def looked_at(self, existing: ObjectInfo | None) -> None:
        """LOOK, finished: refuse at once under --no-overwrite (nothing of the stream is
        consumed yet); otherwise what is there guards the completion."""
        self.looked = True
        self.begin(existing)

    def opened(self, length: int, raw: bytes, more: bool) -> None:
        """READ, finished: the first part holds ``length`` bytes (raw checksum ``raw``),
        and ``more`` says whether the stream goes on after it. One PutObject if it does
        not (an empty stream makes an empty object); parts otherwise."""
        first = self.stream_plan.part_size(1)
        if more and length != first:
            raise AssertionError(f"a stream goes on after a short first part ({length} bytes)")
        self.read_parts, self.read_bytes = 1, length
        if more:
            self.phase = Phase.CREATE
            return
        self.single, self.ended, self.raw = True, True, raw
        self.plan = Plan(size=length, part_size=first, multipart=False)
        if self.config.no_overwrite:
            self.condition = Precondition(if_none_match=True)
        self.phase = Phase.PUT

    # PUT

    def header(self) -> str | None:
        return ck.encode(self.raw) if self.raw else None

    def put_failed(self, exc: StoreError) -> BaseException | None:
        """An attempt failed: the error to raise instead (from ``exc``), or None to let it
        stand (the scheduler retries what is retryable: the part is still in its buffer)."""
        if self.condition is not None and exc.precondition_failed:
            return ExistsError(f"{self.where} exists, not overwritten (--no-overwrite)")
        return None

    def put_sent(self, receipt: PartReceipt) -> None:
        """PUT, finished. When the server echoes the checksum it computed over what it
        stored, that is the verification; otherwise a HEAD is compared (VERIFY)."""
        expected = ck.encode(self.raw)
        self.parts = {1: PartRecord(1, self.read_bytes, receipt.etag, expected)}
        self.sent_bytes = self.read_bytes
        self.phase = Phase.VERIFY
        if expected and receipt.checksum == expected:
            self.done(ObjectInfo(self.read_bytes, receipt.etag, receipt.checksum,
                                 "FULL_OBJECT"), content_checked=True)

    # CREATE and PARTS

    def created(self, upload_id: str) -> None:
        self.upload_id = upload_id
        self.phase = Phase.PARTS

    def next_part(self) -> Part:
        """The part to read next, by the plan. Past the last part S3 allows, a one-byte
        probe: the stream must end there (``part_read``)."""
        number = self.read_parts + 1
        length = 1 if number > MAX_PARTS else self.stream_plan.part_size(number)
        return Part(number, self.read_bytes, length)

    def part_read(self, part: Part, length: int) -> None:
        """``length`` bytes of ``part`` were read; fewer than asked means the stream ended.
        A stream that goes on past the last part S3 allows is refused."""
        if length and part.number > MAX_PARTS:
            capacity = self.stream_plan.capacity()
            raise SourceError(
                f"the stream is longer than {format_size(capacity)}, all that {MAX_PARTS} "
                f"parts from {format_size(self.stream_plan.start)} can carry; give "
                "--expected-size (or a larger --part-size or --memory-limit)")
        if length:
            self.read_parts = part.number
            self.read_bytes += length
        if length < part.length:
            self.ended = True

    def stream_sent(self) -> None:
        """PARTS, finished: the stream ended and every part read was acknowledged."""
        if not self.ended or len(self.parts) != self.read_parts:
            raise AssertionError(f"{self.where}: completing before every part is sent")
        self.plan = Plan(size=self.read_bytes, part_size=self.stream_plan.start, multipart=True)
        self.phase = Phase.COMPLETE

    # how a stream ends without an object

    def stopped(self, error: BaseException, *, interrupted: bool = False) -> Close | None:
        """Whatever stops a stream ends its upload (``interrupted``: cancelled, Ctrl-C):
        abort it (confirmed gone) and close its journal row, since nothing can be read
        again to resume it. None when there is nothing to end: no row was begun, or a
        decision has closed it already."""
        if self.row == 0 or self.phase in (Phase.ABORT, Phase.DONE):
            return None
        # VERIFY follows a completion (ours, or one whose answer was lost): no upload is left
        live = self.upload_id is not None and self.phase is not Phase.VERIFY
        outcome = Outcome.ABORTED if self.upload_id is not None else Outcome.FAILED
        why = "interrupted" if interrupted else str(error) or type(error).__name__
        return self.close(outcome, f"{NOT_RESUMABLE}: {why}", error,
                          abort=live, confirm=live)

    def superseded(self, detail: str) -> Close:
        """Someone wrote the key after this stream began: abort, close the row, say so (the
        multipart kind's advice, --restart, means nothing to a stream)."""
        reason = f"{self.where} changed since this upload began ({detail})"
        error: BaseException
        if self.config.no_overwrite:
            error = ExistsError(f"{self.where} exists, not overwritten (--no-overwrite); the "
                                "upload was aborted")
        else:
            error = DestinationChangedError(f"{reason}; nothing written, the upload was aborted "
                                            f"({NOT_RESUMABLE})")
        return self.close(Outcome.SUPERSEDED, reason, error)

    # what the object must be

    def expected(self, *, ownership: bool = False) -> verify.Expected:
        if not self.single:
            return super().expected(ownership=ownership)
        return verify.Expected(size=self.read_bytes, algorithm=self.algorithm_name(),
                               checksums=verify.checksums(self.algorithm, self.part_checksums(),
                                                          multipart=False))

    def own_checksum(self) -> str | None:
        if self.single:
            return self.parts[1].checksum or None
        return super().own_checksum()

    def reported_type(self) -> str | None:
        return None if self.single else self.checksum_type
