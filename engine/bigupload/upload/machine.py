"""What every kind of upload shares: the phase, the state value, the decisions a driver
executes, and the reading of the store's answers.

An upload is a state machine. Its state is a value (``UploadMachine``: phase, upload id,
parts, destination guard, settings); its transitions are methods that do no I/O: they
take the answers the driver got (an ``ObjectInfo``, a ``StoreError``, a listing) and say
what to do next, in the spirit of aws-c-s3's split of a meta request into *decide*
(``next_step``), *prepare* (the driver builds and sends the request) and *finished* (the
driver feeds the answer back). Drivers (``driver.py``) hold the store, the journal and
the scheduler; machines hold none of them, so every decision is a unit test::

    single request  (put_machine)   [LOOK] -> PUT -> VERIFY -> DONE
    multipart       (multipart_machine)
        RECONCILE --(SWEEP, LIST)--> CREATE -> PARTS --(SEND, check listing)--> COMPLETE
        COMPLETE --412--> COMPLETE(contested) --ours--> VERIFY, else ABORT (superseded)
        COMPLETE --NoSuchUpload--> VERIFY(ownership) -> DONE, or ABORT (vanished)
        COMPLETE --501--> COMPLETE (a HEAD instead of a condition, for that endpoint)
        RECONCILE --NoSuchUpload--> VERIFY(ownership), or a new upload, or ABORT
        any phase -> ABORT, only when the upload cannot be resumed
    stream          (stream_machine)
        LOOK -> READ --ends in the first part--> PUT -> VERIFY -> DONE
                     --goes on--> CREATE -> PARTS(read and send until it ends) -> COMPLETE ...
        any failure -> ABORT: a stream cannot be read again, so nothing can be resumed

A new kind of source is another machine with its own steps and another driver that
executes them: ``choose_kind`` is the one place that picks for a file,
``copy_machine.choose_copy_kind`` for a server-side copy; a stream is a kind by its
source (one kind, whose machine chooses one request or parts once it has read).

What a store's answer means is classify.py's (``StoreError``'s attributes); the
transitions read it, and nothing here compares error codes."""

from __future__ import annotations

import dataclasses
import enum

from .. import checksum as ck
from .. import verify
from ..config import ChecksumAlgorithm, UploadConfig
from ..errors import AuthError, IntegrityError, StoreError
from ..values import ObjectInfo, ObjectOptions, PartRecord, Plan, ServerSide
from .result import UploadResult


class Phase(enum.Enum):
    READ = "read"  # a stream: its first part being read, to choose one request or parts
    RECONCILE = "reconcile"
    CREATE = "create"
    PARTS = "parts"
    COMPLETE = "complete"
    PUT = "put"
    COPY = "copy"  # one CopyObject (copy_machine)
    VERIFY = "verify"
    DONE = "done"
    ABORT = "abort"


class Step(enum.Enum):
    """What a driver does next (``UploadMachine.next_step``)."""

    LOOK = "look"  # HEAD the destination before sending anything (--no-overwrite)
    READ = "read"  # read a stream's first part, and whether anything follows it
    PUT = "put"  # PutObject, checksummed, retried
    SWEEP = "sweep"  # ListMultipartUploads: an upload a lost Create answer left?
    LIST = "list"  # ListParts, reconciled with the journal and the file
    CREATE = "create"  # CreateMultipartUpload
    SEND = "send"  # the parts still missing, then the listing check before completing
    COMPLETE = "complete"  # CompleteMultipartUpload under the destination's guard
    CONTESTED = "contested"  # 412 at completion: HEAD, is the object there ours?
    COPY = "copy"  # CopyObject, conditional on the source's ETag (copy_machine)
    VERIFY = "verify"  # HEAD, and compare with what was sent
    DONE = "done"


class Kind(enum.Enum):
    PUT = "put"  # one PutObject, no journal row
    MULTIPART = "multipart"  # a journalled, resumable multipart upload
    COPY = "copy"  # one CopyObject, server-side (copy_machine)
    MULTIPART_COPY = "multipart copy"  # UploadPartCopy parts, journalled and resumable
    STREAM = "stream"  # a source read once: one PutObject or parts, never resumed


def choose_kind(plan: Plan, *, journalled: bool, adopting: bool) -> Kind:
    """One request, unless the file needs parts, the journal has an unfinished upload of
    it (resumed even when today's settings would send it in one request), or an upload
    id is to be adopted."""
    if not plan.multipart and not journalled and not adopting:
        return Kind.PUT
    return Kind.MULTIPART


class Outcome(enum.Enum):
    """How an upload ends without an object (the journal row's closing state)."""

    ABORTED = "aborted"  # the upload on the server is aborted, or gone
    SUPERSEDED = "superseded"  # the destination changed, or another upload replaces it
    FAILED = "failed"  # no upload was ever created on the server


@dataclasses.dataclass(frozen=True)
class Close:
    """End the upload: abort it on the server (``abort``; ``confirm`` lists the uploads
    afterwards to make sure it is gone), close its journal row as ``outcome`` with
    ``reason``, then raise ``error`` (from ``cause``)."""

    outcome: Outcome
    reason: str
    error: BaseException
    abort: bool = True
    confirm: bool = False
    cause: BaseException | None = None


class Reaction(enum.Enum):
    """What a driver does with a failure a transition has looked at."""

    CONTINUE = "continue"  # the machine has moved on: ask ``next_step``
    RAISE = "raise"  # the failure stands: re-raise it, the upload stays resumable
    NO_CONDITIONS = "no conditions"  # 501 to a conditional write: remember the endpoint
    COMPOSITE = "composite"  # FULL_OBJECT refused: journal COMPOSITE, create again
    START_OVER = "start over"  # the upload is gone: close the row, begin a new upload


@dataclasses.dataclass(frozen=True)
class Message:
    """Something a transition wants said. ``notice``: a difference from what the user
    asked for (a warning, and a line in the result); otherwise an info line."""

    text: str
    notice: bool = True


def default_checksum_type(config: UploadConfig) -> str | None:
    """FULL_OBJECT for the CRCs (the server then checks the whole object's CRC), COMPOSITE
    for SHA-256 and SHA-1 (S3 allows nothing else), CRC64NVME always FULL_OBJECT."""
    if config.checksum is ChecksumAlgorithm.NONE:
        return None
    if config.checksum in (ChecksumAlgorithm.SHA256, ChecksumAlgorithm.SHA1):
        return "COMPOSITE"
    if config.checksum is ChecksumAlgorithm.CRC64NVME:
        return "FULL_OBJECT"
    return config.checksum_type or "FULL_OBJECT"


class UploadMachine:
    """The state every kind shares: where to, with which settings, the parts the server
    acknowledged, and what the upload reports when it is DONE. Subclasses add their own
    phases' transitions and ``next_step``."""

    def __init__(self, bucket: str, key: str, config: UploadConfig, plan: Plan,
                 options: ObjectOptions) -> None:
        self.bucket = bucket
        self.key = key
        self.config = config
        self.plan = plan
        self.phase = Phase.RECONCILE
        self.algorithm = config.checksum
        self.checksum_type = default_checksum_type(config)
        self.options = dataclasses.replace(options, checksum_type=self.checksum_type)
        self.upload_id: str | None = None
        self.parts: dict[int, PartRecord] = {}
        self.sent_bytes = 0
        self.resumed_parts = 0
        self.verified = True
        self.info: ObjectInfo | None = None  # the object, once verified
        self.server_side = ServerSide()  # what the writes' answers said (encryption, charge)
        self.notices: list[str] = []
        self.messages: list[Message] = []  # said by transitions, not yet logged

    @property
    def where(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def part_count(self) -> int:
        """How many parts the object has: the plan's (a stream counts them as it reads)."""
        return self.plan.part_count

    def next_step(self) -> Step:
        raise NotImplementedError

    def say(self, text: str, *, notice: bool = True) -> None:
        self.messages.append(Message(text, notice))
        if notice:
            self.notices.append(text)

    def take_messages(self) -> list[Message]:
        said, self.messages = self.messages, []
        return said

    def algorithm_name(self) -> str | None:
        return None if self.algorithm is ChecksumAlgorithm.NONE else self.algorithm.s3_name

    def use_algorithm(self, algorithm: ChecksumAlgorithm, checksum_type: str | None) -> None:
        self.algorithm = algorithm
        self.checksum_type = checksum_type
        self.options = dataclasses.replace(self.options, checksum=algorithm,
                                           checksum_type=checksum_type)

    def answered(self, server_side: ServerSide) -> None:
        """What this run's UploadPart or PutObject answers said about encryption and
        charging (parts an earlier run sent said nothing to this one)."""
        self.server_side = self.server_side.merged(server_side)

    def part_sent(self, record: PartRecord) -> None:
        """The server acknowledged a part (the driver has journalled it)."""
        self.parts[record.number] = record
        self.sent_bytes += record.size

    def expected(self, *, ownership: bool = False) -> verify.Expected:
        raise NotImplementedError

    def checked(self, info: ObjectInfo | None) -> None:
        """VERIFY, finished: the HEAD after our own write. IntegrityError unless the object
        is there and matches what was sent; DONE otherwise."""
        if info is None:
            raise IntegrityError(f"{self.where}: object missing right after upload",
                                 operation="HeadObject", bucket=self.bucket, key=self.key)
        verdict = verify.judge(info, self.expected())
        if not verdict.ours:
            raise IntegrityError(f"{self.where}: the stored object does not match the file: "
                                 + "; ".join(verdict.problems), operation="HeadObject",
                                 bucket=self.bucket, key=self.key)
        self.done(info, content_checked=verdict.content_checked)

    def done(self, info: ObjectInfo, *, content_checked: bool) -> None:
        self.verified = content_checked
        self.info = info
        self.phase = Phase.DONE

    def part_checksums(self) -> list[tuple[bytes, int]]:
        """(raw checksum, length) of every acknowledged part, in order."""
        return [(ck.decode(p.checksum), p.size) for _, p in sorted(self.parts.items())]

    def full_object(self) -> str | None:
        """The whole file's CRC, combined from the part CRCs (None: SHA-256, none)."""
        if self.algorithm is ChecksumAlgorithm.NONE:
            return None
        return ck.full_object(self.algorithm, self.part_checksums())

    def own_checksum(self) -> str | None:
        """The object's checksum as we computed it, for a server that reports none."""
        raise NotImplementedError

    def reported_type(self) -> str | None:
        """The checksum type the result reports (None: not a multipart upload)."""
        return None

    def result(self, elapsed: float) -> UploadResult:
        """What the upload did, once DONE."""
        if self.info is None:
            raise AssertionError(f"{self.where}: no result before the upload is done")
        return UploadResult(
            bucket=self.bucket,
            key=self.key,
            etag=self.info.etag,
            size=self.plan.size,
            part_size=self.plan.part_size if self.plan.multipart else self.plan.size,
            parts=self.part_count,
            checksum_algorithm=self.algorithm.value,
            checksum=self.info.checksum or self.own_checksum(),
            full_object_checksum=self.full_object(),
            upload_id=self.upload_id,
            resumed_parts=self.resumed_parts,
            sent_bytes=self.sent_bytes,
            elapsed_s=round(elapsed, 3),
            # with --checksum none nothing tied the parts to the file's bytes
            verified=self.verified and self.algorithm is not ChecksumAlgorithm.NONE,
            checksum_type=self.reported_type(),
            notices=tuple(self.notices),
            **vars(self.server_side),  # flat: asdict's deep copy costs ~10 µs a file
        )


# How the store's answers are read: what an answer means comes from classify.py's table,
# as StoreError's attributes (``precondition_failed``, ``conditions_unsupported``,
# ``upload_gone``, ``unsupported_option``, ...); the transitions read those, and these two
# combinations of them.

def may_have_created(exc: StoreError) -> bool:
    """Whether a failed CreateMultipartUpload may still have created an upload: a timeout or
    a 5xx may have; a refusal (4xx, or a throttling 503) or a connection that never opened
    has not."""
    return exc.retryable and not exc.never_reached_server and not exc.throttle


def completion_must_stand(exc: StoreError) -> bool:
    """A failed completion that leaves the upload resumable: transient, fatal to a whole
    job (the bucket, the endpoint), or a matter of credentials or permissions, which the
    next run may not share."""
    return exc.retryable or exc.fatal_for_job or isinstance(exc, AuthError)
