"""The SQLite journal (WAL): the memory of what we did, never the truth about the server.
resume.py reconciles it with ListParts, and an upload completes only under the
precondition its row recorded (``DestinationGuard``), so a stale row can never write an
older file over a newer object. Credentials and SSE-C keys are never stored (only a
salted hash of the key, to refuse a resume with a different key).

Where each concern lives:

- ``schema``: the tables, their version, creating a file and migrating an older one;
- ``db``: the connection (opened for writing, or read-only), statements whose failure is a
  ``JournalError``, transactions, and the per-destination and per-job locks;
- ``records``: the states and one frozen record per kind of row, converted once;
- ``uploads``: upload and part rows (``UploadRepository``);
- ``jobs``: batch-job and job-file rows (``JobRepository``);
- ``view``: ``JournalView``, the read-only view for status, tests and the demo.

``Journal``, below, is the single writer the engine holds: one ``Database`` and the two
repositories, with the methods the transfer, the batch runner, the uploader and the CLI
call (each a one-line delegate). Forgetting rows (``forget_uploads``, ``forget_jobs``)
only edits the journal: it never touches the server."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Collection, Iterable, Iterator
from pathlib import Path

from ..source import Fingerprint
from ..values import CopySource
from .db import Database, default_path
from .jobs import JobRepository
from .records import (
    JOB_CLOSED_STATES,
    UNKNOWN_GUARD,
    UPLOAD_CLOSED_STATES,
    DestinationGuard,
    FileState,
    JobFile,
    JobRecord,
    JobState,
    JobTotals,
    KeyRange,
    PartRecord,
    PartTotals,
    UnfinishedUpload,
    UploadRecord,
    UploadState,
)
from .schema import SCHEMA_VERSION
from .uploads import UploadRepository
from .view import JournalView

__all__ = [
    "JOB_CLOSED_STATES",
    "SCHEMA_VERSION",
    "UNKNOWN_GUARD",
    "UPLOAD_CLOSED_STATES",
    "DestinationGuard",
    "FileState",
    "JobFile",
    "JobRecord",
    "JobState",
    "JobTotals",
    "Journal",
    "JournalView",
    "KeyRange",
    "PartRecord",
    "PartTotals",
    "UnfinishedUpload",
    "UploadRecord",
    "UploadState",
    "default_path",
    "iter_unfinished",
]


class Journal:
    """The single writer of the journal file. Not thread-safe: use it from one thread."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.db = Database.open(path)
        self.upload_rows = UploadRepository(self.db)
        self.job_rows = JobRepository(self.db)

    @property
    def path(self) -> Path:
        return self.db.path

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def claim(self, endpoint: str, bucket: str,
              key: str) -> contextlib.AbstractContextManager[None]:
        return self.upload_rows.claim(endpoint, bucket, key)

    def claim_job(self, job_id: int) -> contextlib.AbstractContextManager[None]:
        return self.job_rows.claim(job_id)

    # uploads (see UploadRepository for what each does)

    def find_active(self, source_path: str, endpoint: str, bucket: str,
                    key: str) -> UploadRecord | None:
        return self.upload_rows.find_active(source_path, endpoint, bucket, key)

    def get(self, upload_row: int) -> UploadRecord:
        return self.upload_rows.get(upload_row)

    def uploads(self, state: UploadState | None = None) -> list[UploadRecord]:
        return self.upload_rows.rows(state)

    def start_upload(self, fingerprint: Fingerprint, endpoint: str, bucket: str, key: str,
                     part_size: int, part_count: int, checksum_algorithm: str,
                     sse_c_key_hash: str | None, *, checksum_type: str = "COMPOSITE",
                     guard: DestinationGuard = UNKNOWN_GUARD,
                     copy_source: CopySource | None = None, content_md5: bool = False) -> int:
        return self.upload_rows.start(fingerprint, endpoint, bucket, key, part_size, part_count,
                                      checksum_algorithm, sse_c_key_hash,
                                      checksum_type=checksum_type, guard=guard,
                                      copy_source=copy_source, content_md5=content_md5)

    def set_upload_id(self, upload_row: int, upload_id: str) -> None:
        self.upload_rows.set_upload_id(upload_row, upload_id)

    def set_guard(self, upload_row: int, guard: DestinationGuard) -> None:
        self.upload_rows.set_guard(upload_row, guard)

    def set_checksum_type(self, upload_row: int, checksum_type: str) -> None:
        self.upload_rows.set_checksum_type(upload_row, checksum_type)

    def known_upload_ids(self, endpoint: str, bucket: str, key: str) -> set[str]:
        return self.upload_rows.known_upload_ids(endpoint, bucket, key)

    def touch(self, upload_row: int) -> None:
        self.upload_rows.touch(upload_row)

    def finish(self, upload_row: int, state: UploadState, *, etag: str | None = None,
               error: str | None = None, size: int | None = None) -> None:
        self.upload_rows.finish(upload_row, state, etag=etag, error=error, size=size)

    def forget(self, upload_row: int) -> None:
        self.upload_rows.forget(upload_row)

    def forget_uploads(self, *, ids: Collection[int] | None = None,
                       states: Collection[UploadState] | None = None,
                       older_than: float | None = None) -> int:
        return self.upload_rows.forget_where(ids=ids, states=states, older_than=older_than)

    def record_part(self, upload_row: int, part: PartRecord) -> None:
        self.upload_rows.record_part(upload_row, part)

    def drop_part(self, upload_row: int, number: int) -> None:
        self.upload_rows.drop_part(upload_row, number)

    def parts(self, upload_row: int) -> dict[int, PartRecord]:
        return self.upload_rows.parts(upload_row)

    def part_totals(self, upload_row: int) -> PartTotals:
        return self.upload_rows.part_totals(upload_row)

    # batch jobs (see JobRepository)

    def start_job(self, description: str, spec: str, spec_hash: str,
                  files: Iterable[JobFile] = ()) -> int:
        return self.job_rows.start(description, spec, spec_hash, files)

    def job(self, job_id: int) -> JobRecord | None:
        return self.job_rows.get(job_id)

    def jobs(self, states: tuple[JobState, ...] = tuple(JobState)) -> list[JobRecord]:
        return self.job_rows.rows(states)

    def find_job(self, spec_hash: str) -> JobRecord | None:
        return self.job_rows.find(spec_hash)

    def set_job_state(self, job_id: int, state: JobState, error: str | None = None) -> None:
        self.job_rows.set_state(job_id, state, error)

    def forget_jobs(self, *, ids: Collection[int] | None = None,
                    states: Collection[JobState] | None = None,
                    older_than: float | None = None) -> int:
        return self.job_rows.forget_where(ids=ids, states=states, older_than=older_than)

    def add_job_files(self, job_id: int, files: Iterable[JobFile], *,
                      new_only: bool = False) -> int:
        return self.job_rows.add_files(job_id, files, new_only=new_only)

    def job_keys(self, job_id: int) -> set[tuple[str, str]]:
        return self.job_rows.keys(job_id)

    def job_has_file(self, job_id: int, bucket: str, key: str) -> bool:
        return self.job_rows.has_file(job_id, bucket, key)

    def next_seq(self, job_id: int) -> int:
        return self.job_rows.next_seq(job_id)

    def job_files(self, job_id: int, states: tuple[FileState, ...], *, after: int = -1,
                  limit: int = 1000) -> list[JobFile]:
        return self.job_rows.files(job_id, states, after=after, limit=limit)

    def set_file_states(self, job_id: int, files: list[JobFile]) -> None:
        self.job_rows.set_file_states(job_id, files)

    def job_totals(self, job_id: int) -> JobTotals:
        return self.job_rows.totals(job_id)

    def job_parts_bytes(self, job_id: int) -> int:
        return self.job_rows.parts_bytes(job_id)

    def job_state_counts(self, job_id: int) -> dict[FileState, int]:
        return self.job_rows.state_counts(job_id)

    def job_key_range(self, job_id: int) -> dict[str, KeyRange]:
        return self.job_rows.key_range(job_id)

    def in_job(self, source: str, bucket: str, key: str, *, unfinished: bool = True) -> bool:
        return self.job_rows.in_job(source, bucket, key, unfinished=unfinished)


def iter_unfinished(journal: Journal) -> Iterator[tuple[UploadRecord, int, int]]:
    """Active uploads with (parts done, bytes done), as ``status`` reads them; new code
    reads ``JournalView.unfinished()``, which returns records."""
    for unfinished in journal.upload_rows.unfinished():
        yield unfinished.record, unfinished.parts.parts, unfinished.parts.bytes
