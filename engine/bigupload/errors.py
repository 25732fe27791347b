"""The exception tree. Every error the engine raises is one of these; lower-level
exceptions are chained with ``raise ... from exc``. Each class carries the CLI exit code.
What a store failure means (its class, retryable, ...) comes from classify.py's table.

    BigUploadError                 1  internal / unexpected
    ├── ConfigError                2  bad sizes, >10,000 parts, unknown algorithm, bad URL,
    │                                 unknown profile, SSE-C over plain http, an
    │                                 https endpoint that does not speak TLS
    ├── SourceError                3  missing, unreadable, not a regular file, changed mid-upload
    ├── StoreError                 5 if retryable (transient: resumable) else 7 (refused)
    │   ├── AuthError              4  credentials, access denied, TLS certificate not trusted
    │   ├── NotFoundError          7  NoSuchBucket, NoSuchUpload
    │   └── IntegrityError         6  BadDigest, checksum or size mismatch
    ├── ResumeError                8  journal corrupt, journal/file/server disagree (the
    │                                 server no longer has a resumed upload)
    │   ├── SourceChangedError     8  the file changed since the upload began
    │   ├── DestinationChangedError 8 the key was written since the upload began (not overwritten)
    │   └── JournalError           8  the journal cannot be read or written (stops a whole job)
    ├── ClusterError            10  the Dask cluster cannot run the work (KilledWorker, lost)
    ├── ExistsError             11  --no-overwrite: the key exists, nothing was written
    └── Cancelled                130  interrupted; journal flushed, resumable
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from .classify import Kind, classify


class BigUploadError(Exception):
    """Base class of every bigupload error."""

    exit_code = 1


class ConfigError(BigUploadError):
    """Invalid settings or arguments, detected before any request is sent (or by the
    first one's failure: an https endpoint that does not speak TLS)."""

    exit_code = 2
    fatal_for_job = False  # a setting every file of a batch job shares: it stops the job


class SourceError(BigUploadError):
    """The local file is missing, unreadable, not a regular file, or changed mid-upload."""

    exit_code = 3


class StoreError(BigUploadError):
    """A request to the object store failed. What the failure means is looked up in
    classify.py's table from ``code`` and ``status`` when the error is made, and carried
    as attributes: ``retryable``, ``throttle``, ``fatal_for_job``, ``upload_gone``,
    ``precondition_failed``, ``conditional_conflict``, ``conditions_unsupported``,
    ``unsupported_option``, ``redirect``, ``never_reached_server``, ``object_missing``.
    ``retryable`` may be given for a failure of our own that has no S3 code."""

    # a retryable failure that outlasted its retries is an outage every file would meet
    outage_stops_job: ClassVar[bool] = True

    def __init__(
        self,
        message: str,
        *,
        operation: str = "",
        bucket: str = "",
        key: str = "",
        upload_id: str | None = None,
        part_number: int | None = None,
        code: str = "",
        status: int | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.operation = operation
        self.bucket = bucket
        self.key = key
        self.upload_id = upload_id
        self.part_number = part_number
        self.code = code
        self.status = status
        rule = classify(code, status, operation=operation, message=message)
        self.retryable = rule.retryable if retryable is None else retryable
        self.throttle = rule.throttle
        self.fatal_for_job = rule.fatal_for_job or (self.retryable and self.outage_stops_job)
        self.upload_gone = rule.upload_gone
        self.precondition_failed = rule.precondition_failed
        self.conditional_conflict = rule.conditional_conflict
        self.conditions_unsupported = rule.conditions_unsupported
        self.unsupported_option = rule.unsupported_option
        self.redirect = rule.redirect
        self.never_reached_server = rule.never_reached_server
        self.object_missing = rule.object_missing

    @property
    def exit_code(self) -> int:  # type: ignore[override]
        return 5 if self.retryable else 7


class AuthError(StoreError):
    """Missing or rejected credentials, access denied, or an untrusted TLS certificate."""

    @property
    def exit_code(self) -> int:  # type: ignore[override]
        return 4


class NotFoundError(StoreError):
    """The bucket, key or multipart upload does not exist (NoSuchUpload: aborted or completed)."""


class IntegrityError(StoreError):
    """The store saw different bytes than we sent, or the result does not match the file."""

    outage_stops_job = False  # this file's bytes: the other files are not concerned

    @property
    def exit_code(self) -> int:  # type: ignore[override]
        return 6


# the class each ``classify.Kind`` of answer becomes
STORE_ERROR_CLASSES: Mapping[Kind, type[StoreError]] = {
    Kind.STORE: StoreError, Kind.AUTH: AuthError, Kind.NOT_FOUND: NotFoundError,
    Kind.INTEGRITY: IntegrityError,
}


def store_error(message: str, *, code: str = "", status: int | None = None,
                operation: str = "", **context: Any) -> StoreError:
    """The error the classification table names for this answer (``code``, ``status``)."""
    cls = STORE_ERROR_CLASSES[classify(code, status, operation=operation, message=message).kind]
    return cls(message, code=code, status=status, operation=operation, **context)


class ResumeError(BigUploadError):
    """The journal, the file and the server disagree in a way that resuming cannot fix."""

    exit_code = 8


class SourceChangedError(ResumeError):
    """The source file changed since its unfinished upload began."""


class DestinationChangedError(ResumeError):
    """Someone wrote the key after this upload began: completing it would replace newer
    data, so the upload was aborted instead (a stale journal row can never win)."""


class JournalError(ResumeError):
    """The journal cannot be opened, read or written (corrupt, disk full)."""


class ClusterError(BigUploadError):
    """The Dask cluster cannot run the work. ``abort`` is True when running again cannot
    help (a task killed every worker it was given: ``KilledWorker``), so the uploads the
    work created are aborted; False when the cluster was lost and the job can be resumed."""

    exit_code = 10

    def __init__(self, message: str, *, abort: bool = False) -> None:
        super().__init__(message)
        self.abort = abort


class ExistsError(BigUploadError):
    """``--no-overwrite``: an object already exists at the key; nothing was written."""

    exit_code = 11


class Cancelled(BigUploadError):
    """The upload was interrupted; the journal is flushed and the upload is resumable."""

    exit_code = 130
