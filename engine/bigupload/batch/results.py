"""What a run of a batch job reports: ``ItemResult`` per file it handled, ``BatchResult``
for the run, and the ``BatchProgress`` protocol a caller implements to watch it.

A file of a job is one record per stage: ``BatchItem`` (what was asked), ``Entry`` (what
a walk or manifest found, ``sources``), ``JobFile`` (the journal's row, and the same row
settled with what became of the file) and ``ItemResult`` (what this run reports, made
from the settled row by ``ItemResult.of``, handed to ``BatchProgress.file_done`` as each
file settles and not kept: a run's ``BatchResult`` holds counts and its first failures).
Results are values: frozen, never mutated."""

from __future__ import annotations

import dataclasses
from typing import Protocol

from ..journal import FileState, JobFile, JobState
from ..progress import NullProgress, Progress
from ..upload.result import UploadResult
from .sources import BatchItem


@dataclasses.dataclass(frozen=True)
class ItemResult:
    source: str
    bucket: str
    key: str
    size: int
    state: FileState
    etag: str | None = None
    error: str | None = None
    exit_code: int | None = None
    upload: UploadResult | None = None  # for files uploaded by this run

    @classmethod
    def of(cls, settled: JobFile, upload: UploadResult | None = None) -> ItemResult:
        """The result of a settled file (its size as uploaded, when this run sent it)."""
        return cls(settled.source, settled.bucket, settled.key,
                   upload.size if upload is not None else settled.size, settled.state,
                   etag=settled.etag, error=settled.error, exit_code=settled.exit_code,
                   upload=upload)


@dataclasses.dataclass(frozen=True)
class BatchResult:
    """What a run of a job did. ``files``, ``uploaded``, ``skipped`` and ``failed`` cover
    the whole job, earlier runs included; ``uploaded_now``, ``skipped_now`` and
    ``failed_now`` count the files this run settled. A result holds no row per file, so
    it stays small whatever the job's size: ``failures`` are this run's first
    ``FAILURES_KEPT`` (100) failures, and ``Uploader.job_failures(job_id)`` reads every
    failure of the job from the journal."""

    job_id: int
    state: JobState
    files: int
    uploaded: int
    skipped: int
    failed: int
    total_bytes: int
    sent_bytes: int
    elapsed_s: float
    uploaded_now: int = 0
    skipped_now: int = 0
    failed_now: int = 0
    failures: tuple[ItemResult, ...] = ()

    @property
    def ok(self) -> bool:
        return self.failed == 0


class BatchProgress(Protocol):
    """What a batch reports: the job's totals, a ``Progress`` per file, each file's fate."""

    def start_job(self, job_id: int, files: int, total_bytes: int, done_files: int,
                  done_bytes: int) -> None: ...

    def file_progress(self, item: BatchItem, size: int, multipart: bool) -> Progress: ...

    def file_done(self, result: ItemResult) -> None: ...

    def close(self) -> None: ...


class NullBatchProgress:
    def start_job(self, job_id: int, files: int, total_bytes: int, done_files: int,
                  done_bytes: int) -> None:
        pass

    def file_progress(self, item: BatchItem, size: int, multipart: bool) -> Progress:
        return NullProgress()

    def file_done(self, result: ItemResult) -> None:
        pass

    def close(self) -> None:
        pass
