"""A read-only view of a journal: for status displays, tests and the demo, which read a
journal while another process (the writer) uploads with it.

Invariants: the file is opened with SQLite's ``mode=ro``, so nothing here can create,
migrate or change it, and no lock is taken; it reads with the same repositories (the
same SQL and the same records) as the writer. A journal that does not exist yet, is not
ours or is at another schema version is a ``JournalError``."""

from __future__ import annotations

import os
from pathlib import Path

from .db import Database
from .jobs import JobRepository
from .records import (
    FileState,
    JobFile,
    JobRecord,
    JobState,
    JobTotals,
    PartRecord,
    PartTotals,
    UnfinishedUpload,
    UploadRecord,
    UploadState,
)
from .uploads import UploadRepository


class JournalView:
    """Reads a journal without writing it::

        with JournalView(path) as view:
            for u in view.unfinished(): ...
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *,
                 timeout: float = 30.0) -> None:
        self._db = Database.open_readonly(path, timeout=timeout)
        self._uploads = UploadRepository(self._db)
        self._jobs = JobRepository(self._db)

    @property
    def path(self) -> Path:
        return self._db.path

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> JournalView:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # uploads

    def uploads(self, state: UploadState | None = None) -> list[UploadRecord]:
        return self._uploads.rows(state)

    def get(self, upload_row: int) -> UploadRecord:
        return self._uploads.get(upload_row)

    def parts(self, upload_row: int) -> dict[int, PartRecord]:
        return self._uploads.parts(upload_row)

    def part_totals(self, upload_row: int) -> PartTotals:
        return self._uploads.part_totals(upload_row)

    def unfinished(self) -> list[UnfinishedUpload]:
        return self._uploads.unfinished()

    def parts_recorded(self) -> int:
        return self._uploads.parts_recorded()

    # jobs

    def job(self, job_id: int) -> JobRecord | None:
        return self._jobs.get(job_id)

    def jobs(self, states: tuple[JobState, ...] = tuple(JobState)) -> list[JobRecord]:
        return self._jobs.rows(states)

    def job_files(self, job_id: int, states: tuple[FileState, ...], *, after: int = -1,
                  limit: int = 1000) -> list[JobFile]:
        return self._jobs.files(job_id, states, after=after, limit=limit)

    def job_totals(self, job_id: int) -> JobTotals:
        return self._jobs.totals(job_id)

    def job_parts_bytes(self, job_id: int) -> int:
        return self._jobs.parts_bytes(job_id)

    def in_job(self, source: str, bucket: str, key: str, *, unfinished: bool = True) -> bool:
        return self._jobs.in_job(source, bucket, key, unfinished=unfinished)

    def files_in_state(self, state: FileState) -> int:
        return self._jobs.files_in_state(state)
