"""The batch-job rows: one per job (its spec, so it can be resumed, and its state) and one
per file of a job (its state, and the reason when it failed).

Invariants: a job's file list is written in one transaction before anything is sent,
streamed from its entries (never a list of them); files found later (the same walk again)
are added after the job's known files ran; what became of files is written in one
transaction per group; positions (``seq``) are unique within a job and only grow; a job
has at most one file per destination (the unique index ``job_files_key``). Nothing here
returns a row per file of a whole job: pages, counts and sums. Forgetting a job takes its
file rows along, never the upload rows of its large files, and never touches the server."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Collection, Iterable, Iterator

from ..errors import ConfigError
from .db import JOB_RESUMES, NOTHING_SENT, Database, now
from .records import (
    FileState,
    JobFile,
    JobRecord,
    JobState,
    JobTotals,
    KeyRange,
    message_column,
    name,
    name_column,
)


class JobRepository:
    """Reads and writes ``jobs`` and ``job_files`` through one ``Database``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # reading

    def get(self, job_id: int) -> JobRecord | None:
        row = self.db.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
        return JobRecord.from_row(row) if row else None

    def rows(self, states: tuple[JobState, ...] = tuple(JobState)) -> list[JobRecord]:
        marks = ",".join("?" * len(states))
        rows = self.db.execute(f"SELECT * FROM jobs WHERE state IN ({marks}) ORDER BY id",
                               tuple(s.value for s in states)).fetchall()
        return [JobRecord.from_row(r) for r in rows]

    def find(self, spec_hash: str) -> JobRecord | None:
        """The newest unfinished job started by the same command: active (interrupted) or
        partial (some files failed), which the same command continues."""
        row = self.db.execute(
            "SELECT * FROM jobs WHERE spec_hash=? AND state IN (?,?) ORDER BY id DESC LIMIT 1",
            (spec_hash, JobState.ACTIVE.value, JobState.PARTIAL.value)).fetchone()
        return JobRecord.from_row(row) if row else None

    def keys(self, job_id: int) -> set[tuple[str, str]]:
        """The (bucket, key) of every file of the job (a set as large as the job: for
        tests and small jobs; ``has_file`` asks for one)."""
        rows = self.db.execute("SELECT bucket, key FROM job_files WHERE job=?", (job_id,))
        return {(str(r["bucket"]), name(r["key"])) for r in rows}

    def has_file(self, job_id: int, bucket: str, key: str) -> bool:
        """Whether the job has a file going to ``s3://bucket/key``."""
        row = self.db.execute("SELECT 1 FROM job_files WHERE bucket=? AND key=? AND job=?",
                              (bucket, name_column(key), job_id)).fetchone()
        return row is not None

    def next_seq(self, job_id: int) -> int:
        row = self.db.execute("SELECT COALESCE(MAX(seq) + 1, 0) AS seq FROM job_files "
                              "WHERE job=?", (job_id,)).fetchone()
        return int(row["seq"])

    def files(self, job_id: int, states: tuple[FileState, ...], *, after: int = -1,
              limit: int = 1000) -> list[JobFile]:
        """One page of a job's files in the given states, by position after ``after``."""
        marks = ",".join("?" * len(states))
        rows = self.db.execute(
            f"SELECT * FROM job_files WHERE job=? AND state IN ({marks}) AND seq>? "
            "ORDER BY seq LIMIT ?", (job_id, *(s.value for s in states), after, limit),
        ).fetchall()
        return [JobFile.from_row(r) for r in rows]

    def totals(self, job_id: int) -> JobTotals:
        """Files and bytes in the job, done (uploaded or skipped) and failed. Bytes of a
        large file count when it is done; ``status`` adds the parts of unfinished ones.
        Read from the index ``job_files_state`` alone (a million files: about 0.1 s)."""
        files = size = done_files = done_bytes = failed = 0
        for state, (count, nbytes) in self._by_state(job_id).items():
            files += count
            size += nbytes
            if state in (FileState.DONE, FileState.SKIPPED):
                done_files += count
                done_bytes += nbytes
            elif state is FileState.FAILED:
                failed += count
        return JobTotals(files=files, bytes=size, done_files=done_files, done_bytes=done_bytes,
                         failed_files=failed)

    def _by_state(self, job_id: int) -> dict[FileState, tuple[int, int]]:
        rows = self.db.execute("SELECT state, COUNT(*) AS files, COALESCE(SUM(size), 0) AS "
                               "bytes FROM job_files WHERE job=? GROUP BY state", (job_id,))
        return {FileState(r["state"]): (int(r["files"]), int(r["bytes"])) for r in rows}

    def parts_bytes(self, job_id: int) -> int:
        """Bytes of the parts already on the server for the job's unfinished large files:
        from the active uploads (few) to their file of the job (``job_files_key``), never
        a pass over the job's files."""
        row = self.db.execute(
            "SELECT COALESCE(SUM(p.size), 0) AS bytes FROM uploads u "
            "JOIN parts p ON p.upload=u.id WHERE u.state='active' AND EXISTS ("
            "SELECT 1 FROM job_files f WHERE f.bucket=u.bucket AND f.key=u.key AND f.job=? "
            "AND f.source=u.source_path AND f.state='pending')", (job_id,),
        ).fetchone()
        return int(row["bytes"])

    def state_counts(self, job_id: int) -> dict[FileState, int]:
        return {state: files for state, (files, _) in self._by_state(job_id).items()}

    def key_range(self, job_id: int) -> dict[str, KeyRange]:
        """Per bucket, the smallest and largest key of the job (of those that can be keys:
        a name that is not UTF-8, stored as a BLOB, sorts after every text)."""
        rows = self.db.execute("SELECT bucket, MIN(key) AS low, MAX(key) AS high "
                               "FROM job_files WHERE job=? AND typeof(key)='text' "
                               "GROUP BY bucket", (job_id,))
        return {str(r["bucket"]): KeyRange(str(r["low"]), str(r["high"])) for r in rows}

    def in_job(self, source: str, bucket: str, key: str, *, unfinished: bool = True) -> bool:
        """Whether an unfinished file of an unfinished job is this upload (``resume`` runs
        it with its job); with ``unfinished=False``, whether any job in the journal has it
        as a file (``status --all`` shows it with the job, not as a single-file upload)."""
        pending = "AND f.state='pending' AND j.state='active' " if unfinished else ""
        row = self.db.execute(
            "SELECT 1 FROM job_files f JOIN jobs j ON j.id=f.job WHERE f.source=? AND "
            f"f.bucket=? AND f.key=? {pending}LIMIT 1",
            (name_column(source), bucket, name_column(key)),
        ).fetchone()
        return row is not None

    def files_in_state(self, state: FileState) -> int:
        """Files of all jobs in ``state`` (lets tests interrupt a job part-way)."""
        row = self.db.execute("SELECT COUNT(*) AS files FROM job_files WHERE state=?",
                              (state.value,)).fetchone()
        return int(row["files"])

    # writing

    def claim(self, job_id: int) -> contextlib.AbstractContextManager[None]:
        """Hold a batch job for this process, so two resumes cannot run it at once."""
        return self.db.lock(f"job\0{job_id}", f"is running job {job_id}")

    def start(self, description: str, spec: str, spec_hash: str,
              files: Iterable[JobFile] = ()) -> int:
        """A new job with its files (see ``add_files``), in one transaction: a job whose
        file list could not be written in full is not there at all. It is numbered after
        every job this journal ever had: SQLite would hand a forgotten highest id out
        again, and ``resume 7`` must never mean another job than the 7 a user saw. The
        highest id given is kept in ``meta`` (``last_job_id``); one INSERT takes the write
        lock before it reads, so two processes cannot pick the same id, and the counter
        only grows."""
        stamp = now()
        with self.db.transaction(failure=NOTHING_SENT):
            cur = self.db.execute(
                "INSERT INTO jobs (id, state, description, spec, spec_hash, created_at, "
                "updated_at) VALUES (1 + max(coalesce((SELECT CAST(value AS INTEGER) FROM "
                "meta WHERE name='last_job_id'), 0), coalesce((SELECT max(id) FROM jobs), 0)),"
                "?,?,?,?,?,?)",
                (JobState.ACTIVE.value, description, spec, spec_hash, stamp, stamp),
                failure=NOTHING_SENT)
            assert cur.lastrowid is not None
            self.db.execute(
                "INSERT INTO meta VALUES ('last_job_id', ?) ON CONFLICT (name) DO UPDATE SET "
                "value=max(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))",
                (str(cur.lastrowid),), failure=NOTHING_SENT)
            self._insert(cur.lastrowid, files, new_only=False)
        return cur.lastrowid

    def set_state(self, job_id: int, state: JobState, error: str | None = None) -> None:
        self.db.execute("UPDATE jobs SET state=?, error=?, updated_at=? WHERE id=?",
                        (state.value, error, now(), job_id))

    def add_files(self, job_id: int, files: Iterable[JobFile], *, new_only: bool = False) -> int:
        """Append files to a job, in one transaction, read from ``files`` as they are
        written (a walk's generator is never held as a list). Two files going to one key
        are a ConfigError naming it, and nothing is added; with ``new_only``, files whose
        key the job already has are left out instead. Returns how many were added."""
        with self.db.transaction(failure=NOTHING_SENT):
            return self._insert(job_id, files, new_only=new_only)

    def _insert(self, job_id: int, files: Iterable[JobFile], *, new_only: bool) -> int:
        last: list[JobFile] = []

        def rows() -> Iterator[tuple[object, ...]]:
            for f in files:
                last[:] = [f]
                yield (job_id, f.seq, name_column(f.source), f.bucket, name_column(f.key),
                       f.size, f.settings, f.state.value, message_column(f.error))

        verb = "INSERT OR IGNORE" if new_only else "INSERT"
        before = self.db.connection.total_changes
        try:
            self.db.connection.executemany(
                f"{verb} INTO job_files (job, seq, source, bucket, key, size, settings, state, "
                "error) VALUES (?,?,?,?,?,?,?,?,?)", rows())
        except sqlite3.IntegrityError as exc:
            if not last or "job_files.bucket" not in str(exc):
                raise  # not a second file for one key: the transaction says why
            raise ConfigError(f"two files would be uploaded to s3://{last[0].bucket}/"
                              f"{last[0].key}") from None
        return self.db.connection.total_changes - before

    def set_file_states(self, job_id: int, files: list[JobFile]) -> None:
        """Durably note what became of some files of a job (their state, ETag, error and
        exit code; ``JobFile.settled``), in one transaction."""
        with self.db.transaction(failure=JOB_RESUMES):
            self.db.executemany(
                "UPDATE job_files SET state=?, etag=?, error=?, exit_code=? WHERE job=? AND seq=?",
                [(f.state.value, f.etag, message_column(f.error), f.exit_code, job_id, f.seq)
                 for f in files],
                failure=JOB_RESUMES)
            self.db.execute("UPDATE jobs SET updated_at=? WHERE id=?", (now(), job_id),
                            failure=JOB_RESUMES)

    def forget_where(self, *, ids: Collection[int] | None = None,
                     states: Collection[JobState] | None = None,
                     older_than: float | None = None) -> int:
        """Like ``UploadRepository.forget_where``, for batch jobs and their file rows. The
        upload rows of a job's large files are separate rows and stay (an unfinished one is
        then listed and resumed as a single-file upload)."""
        return self.db.delete("jobs", ids=ids, states=states, older_than=older_than)
