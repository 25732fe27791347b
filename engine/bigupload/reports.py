"""What ``Uploader``'s housekeeping methods (``resume``, ``status``, ``abort``, ``forget``)
found or did, as frozen values for the caller to render: the CLI prints them, a script
reads them. No I/O here; states are the journal's enums."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from .journal import JobState, UploadState

if TYPE_CHECKING:
    from . import BatchResult, UploadResult


@dataclasses.dataclass(frozen=True)
class FileFailure:
    """A file of a job that failed for good, with why."""

    source: str
    bucket: str
    key: str
    error: str | None
    exit_code: int | None


@dataclasses.dataclass(frozen=True)
class JobStatus:
    """A batch job. ``done_bytes`` counts finished files and, for an active job, the parts
    already sent of its unfinished ones. ``failures`` are listed when one job was asked for."""

    id: int
    state: JobState
    description: str
    files: int
    done_files: int
    failed_files: int
    bytes: int
    done_bytes: int
    error: str | None
    updated_at: float
    failures: tuple[FileFailure, ...] = ()


@dataclasses.dataclass(frozen=True)
class UploadStatus:
    """A single-file upload row of the journal, unfinished or closed (with why)."""

    id: int
    state: UploadState
    source: str
    bucket: str
    key: str
    endpoint: str
    upload_id: str | None
    size: int
    parts: int
    parts_done: int
    bytes_done: int
    etag: str | None
    error: str | None
    updated_at: float
    running: bool = False  # a stream's row whose process still holds the destination


@dataclasses.dataclass(frozen=True)
class StatusReport:
    """The journal's jobs and single-file uploads (those that are not part of a job).
    ``closed`` is filled only when asked for."""

    jobs: tuple[JobStatus, ...]
    unfinished: tuple[UploadStatus, ...] = ()
    closed: tuple[UploadStatus, ...] = ()


@dataclasses.dataclass(frozen=True)
class AbortReport:
    """A multipart upload aborted on the server, and the journal rows that were closed
    with it (``ABORTED``). ``request_charged``: the answer's RequestCharged
    (``requester`` when a requester-pays bucket billed the caller)."""

    bucket: str
    key: str
    upload_id: str
    rows_closed: tuple[int, ...]
    request_charged: str | None = None


@dataclasses.dataclass(frozen=True)
class ForgetReport:
    """Rows removed from the journal; the server was not changed. Rows that were active
    are listed: their uploads stay on the server (an upload id says which to abort)."""

    uploads: int
    jobs: int
    active_uploads: tuple[UploadStatus, ...] = ()
    active_jobs: tuple[int, ...] = ()


@dataclasses.dataclass(frozen=True)
class ResumedJob:
    """One job ``resume`` took up: its run's result, or None when it was already complete
    or stopped (``error`` and its ``exit_code``: the job is kept, and the others go on)."""

    job_id: int
    description: str
    result: BatchResult | None
    error: str | None = None
    error_type: str | None = None
    exit_code: int | None = None


@dataclasses.dataclass(frozen=True)
class ResumedFile:
    """One single-file upload ``resume`` took up: finished (``result``), failed (``error``
    and its ``exit_code``: the other uploads go on), or left alone (``skipped``: why; with
    an ``exit_code`` when it is left unfinished by a mistake of the command's, such as an
    ``--endpoint-url`` other than the one the upload began with)."""

    id: int
    source: str
    bucket: str
    key: str
    endpoint: str
    result: UploadResult | None = None
    error: str | None = None
    error_type: str | None = None
    exit_code: int | None = None
    skipped: str | None = None
