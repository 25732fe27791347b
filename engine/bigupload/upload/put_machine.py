"""The single-request kind: one PutObject, no journal row, no state on the server.

    PUT --(LOOK first with --no-overwrite)--> PUT -> VERIFY -> DONE

The server checks the bytes against our checksum; a BadDigest means they changed under
us, so the next attempt checksums them again. When the server echoes the checksum it
computed over what it stored, that is the verification (as strong as a HEAD, one round
trip less per file); otherwise a HEAD is compared with what was sent."""

from __future__ import annotations

from .. import checksum as ck
from .. import verify
from ..config import ChecksumAlgorithm, UploadConfig
from ..errors import ExistsError, IntegrityError, SourceError, StoreError
from ..values import ObjectInfo, ObjectOptions, PartReceipt, PartRecord, Plan, Precondition
from .machine import Phase, Step, UploadMachine


class PutMachine(UploadMachine):
    def __init__(self, bucket: str, key: str, config: UploadConfig, plan: Plan,
                 options: ObjectOptions) -> None:
        super().__init__(bucket, key, config, plan, options)
        self.phase = Phase.PUT
        self.whole = plan.part(1)
        self.raw = b""  # the raw checksum of the bytes being sent
        self.md5: str | None = None  # their Content-MD5 (--content-md5)
        self.reread = True  # checksum (again) before the next attempt
        self.condition: Precondition | None = None
        self.looked = not config.no_overwrite

    def next_step(self) -> Step:
        if self.phase is Phase.PUT:
            return Step.PUT if self.looked else Step.LOOK
        if self.phase is Phase.VERIFY:
            return Step.VERIFY
        if self.phase is Phase.DONE:
            return Step.DONE
        raise AssertionError(f"a single PUT has no step from {self.phase}")

    def looked_at(self, existing: ObjectInfo | None) -> None:
        """LOOK, finished (--no-overwrite): refuse at once if the key exists, so a large
        file is not sent only to be refused, and make the write itself conditional."""
        self.looked = True
        if existing is not None:
            raise ExistsError(f"{self.where} exists, not overwritten (--no-overwrite)")
        self.condition = Precondition(if_none_match=True)

    def checksummed(self, raw: bytes, md5: str | None = None) -> None:
        self.raw = raw
        self.md5 = md5
        self.reread = False

    def header(self) -> str | None:
        """The checksum header of the next attempt."""
        return ck.encode(self.raw) if self.algorithm is not ChecksumAlgorithm.NONE else None

    def put_failed(self, exc: StoreError) -> BaseException | None:
        """An attempt failed: the error to raise instead (from ``exc``), or None to let it
        stand (the scheduler retries what is retryable)."""
        if isinstance(exc, IntegrityError):
            self.reread = True  # the bytes may have changed: checksum them again
            return None
        if self.condition is not None and exc.precondition_failed:
            return ExistsError(f"{self.where} exists, not overwritten (--no-overwrite)")
        return None

    def sent(self, receipt: PartReceipt, changes: list[str], path: str) -> None:
        """PUT, finished. ``changes``: what ``stat`` says changed in the file since it was
        planned. The server checked the bytes against our checksum; what is left to catch
        is a file rewritten while it was sent (without a checksum, nothing else would)."""
        length = self.whole.length
        expected = ck.encode(self.raw)
        self.answered(receipt.server_side)
        self.parts = {1: PartRecord(1, length, receipt.etag, expected)}
        self.sent_bytes = length
        if changes:
            raise SourceError(
                f"{path} changed while it was being uploaded ({', '.join(changes)}); "
                f"the object at {self.where} may not match the file: run the command again")
        self.phase = Phase.VERIFY
        if expected and receipt.checksum == expected:
            # the server computed this checksum over the bytes it stored (S3, SeaweedFS echo it)
            self.done(ObjectInfo(length, receipt.etag, receipt.checksum, "FULL_OBJECT"),
                      content_checked=True)

    def expected(self, *, ownership: bool = False) -> verify.Expected:
        return verify.Expected(size=self.whole.length, algorithm=self.algorithm_name(),
                               checksums=verify.checksums(self.algorithm, self.part_checksums(),
                                                          multipart=False))

    def own_checksum(self) -> str | None:
        return self.parts[1].checksum or None
