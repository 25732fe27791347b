"""The SQLite journal (WAL): one row per upload (source fingerprint, destination, plan,
upload id, checksum algorithm and type, and the destination's state when the upload began)
and one per part that the server acknowledged; one row per batch job (its spec, to resume
it) and one per file of a job (its state). It is the memory of what we did, never the
truth about the server: resume.py reconciles it with ListParts, and an upload completes
only under the precondition its row recorded (``DestinationGuard``), so a stale row can
never write an older file over a newer object. Credentials and SSE-C keys are never
stored (only a salted hash of the key, to refuse a resume with a different key).

Each acknowledged part is committed at once (WAL, synchronous=NORMAL: survives a killed
process; a power loss may forget the last parts, which ListParts then recovers). Rows
are read as ``sqlite3.Row`` and converted once, by column name, into frozen records.

Forgetting rows (``forget_uploads``, ``forget_jobs``) only edits the journal: it never
touches the server."""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import fcntl
import hashlib
import os
import sqlite3
import time
from collections.abc import Collection, Iterator
from pathlib import Path

from .errors import JournalError, ResumeError
from .values import DestinationGuard as DestinationGuard  # re-exported: it lived here
from .values import Fingerprint
from .values import PartRecord as PartRecord  # re-exported: it lived here

# 2 added jobs and job_files; 3 added uploads.checksum_type and uploads.guard. An older
# journal is migrated on open, in one transaction.
SCHEMA_VERSION = 3

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS uploads (
    id INTEGER PRIMARY KEY,
    state TEXT NOT NULL,
    source_path TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    device INTEGER NOT NULL,
    sample_hash TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    bucket TEXT NOT NULL,
    key TEXT NOT NULL,
    upload_id TEXT,
    part_size INTEGER NOT NULL,
    part_count INTEGER NOT NULL,
    checksum_algorithm TEXT NOT NULL,
    sse_c_key_hash TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    etag TEXT,
    error TEXT,
    checksum_type TEXT NOT NULL DEFAULT 'COMPOSITE',
    guard TEXT
);
CREATE INDEX IF NOT EXISTS uploads_destination
    ON uploads (source_path, endpoint, bucket, key, state);
CREATE TABLE IF NOT EXISTS parts (
    upload INTEGER NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    number INTEGER NOT NULL,
    size INTEGER NOT NULL,
    etag TEXT NOT NULL,
    checksum TEXT NOT NULL,
    PRIMARY KEY (upload, number)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    state TEXT NOT NULL,
    description TEXT NOT NULL,
    spec TEXT NOT NULL,
    spec_hash TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    error TEXT
);
CREATE INDEX IF NOT EXISTS jobs_spec ON jobs (spec_hash, state);
CREATE TABLE IF NOT EXISTS job_files (
    job INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    source TEXT NOT NULL,
    bucket TEXT NOT NULL,
    key TEXT NOT NULL,
    size INTEGER NOT NULL,
    settings TEXT,
    state TEXT NOT NULL,
    etag TEXT,
    error TEXT,
    exit_code INTEGER,
    PRIMARY KEY (job, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS job_files_state ON job_files (job, state, seq);
"""

# Columns added to ``uploads`` after version 2, as ``ALTER TABLE`` clauses. A migrated row
# gets the default: 'COMPOSITE' is the checksum type every earlier upload began with, and a
# NULL guard says the destination's state was not recorded.
_UPLOADS_V3 = (
    "checksum_type TEXT NOT NULL DEFAULT 'COMPOSITE'",
    "guard TEXT",
)


class JobState(enum.Enum):
    ACTIVE = "active"  # running, or interrupted: ``bigupload resume`` continues it
    COMPLETED = "completed"  # every file uploaded or skipped
    PARTIAL = "partial"  # finished, some files failed for good (``resume ID`` retries them)


class FileState(enum.Enum):
    PENDING = "pending"
    DONE = "done"
    SKIPPED = "skipped"  # --skip-existing found the same object there
    FAILED = "failed"


@dataclasses.dataclass(frozen=True)
class JobRecord:
    id: int
    state: JobState
    description: str
    spec: str  # JSON, written and read by batch.py
    spec_hash: str
    created_at: float
    updated_at: float
    error: str | None


@dataclasses.dataclass(frozen=True)
class JobFile:
    seq: int  # position in the job, 0-based
    source: str
    bucket: str
    key: str
    size: int
    settings: str | None  # JSON of per-object settings (manifests), or None
    state: FileState = FileState.PENDING
    etag: str | None = None
    error: str | None = None
    exit_code: int | None = None


@dataclasses.dataclass(frozen=True)
class FileChange:
    seq: int
    state: FileState
    etag: str | None = None
    error: str | None = None
    exit_code: int | None = None


@dataclasses.dataclass(frozen=True)
class JobTotals:
    files: int
    bytes: int
    done_files: int  # uploaded or skipped
    done_bytes: int
    failed_files: int


class UploadState(enum.Enum):
    """What became of an upload row. Only ACTIVE rows are resumable and listed as
    unfinished; the others are closed, with the reason in ``UploadRecord.error``."""

    ACTIVE = "active"  # has (or is about to get) an upload id; resumable
    COMPLETED = "completed"
    ABORTED = "aborted"  # the upload on the server was aborted (or vanished)
    # never created an upload on the server (refused, bad credentials, no bucket, TLS)
    FAILED = "failed"
    # the destination changed since the upload began, or --restart / --upload-id replaced it
    SUPERSEDED = "superseded"


UPLOAD_CLOSED_STATES = (UploadState.COMPLETED, UploadState.ABORTED, UploadState.FAILED,
                        UploadState.SUPERSEDED)
JOB_CLOSED_STATES = (JobState.COMPLETED, JobState.PARTIAL)


@dataclasses.dataclass(frozen=True)
class UploadRecord:
    id: int
    state: UploadState
    fingerprint: Fingerprint
    endpoint: str
    bucket: str
    key: str
    upload_id: str | None
    part_size: int
    part_count: int
    checksum_algorithm: str
    sse_c_key_hash: str | None
    created_at: float
    updated_at: float
    etag: str | None
    error: str | None  # why it closed other than completed: the error (FAILED) or the reason
    checksum_type: str = "COMPOSITE"  # or "FULL_OBJECT": what CreateMultipartUpload asked for
    guard: DestinationGuard = DestinationGuard.unknown()


UNKNOWN_GUARD = DestinationGuard.unknown()


def default_path() -> Path:
    """``$XDG_STATE_HOME/bigupload/journal.sqlite3`` (``~/.local/state`` by default)."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "bigupload" / "journal.sqlite3"


class Journal:
    """The single writer of the journal file. Not thread-safe: use it from one thread."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not self.path.exists():
                self._create()
            elif self.path.stat().st_size == 0:
                # a new journal is renamed into place whole, so an empty one was truncated
                raise JournalError(
                    f"journal {self.path} is empty (truncated?); refusing to start over on top "
                    "of it. Move it aside to start afresh; unfinished uploads on the server can be "
                    "listed with: bigupload ls-uploads s3://BUCKET"
                )
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            self._db.row_factory = sqlite3.Row
        except (OSError, sqlite3.Error) as exc:
            raise JournalError(f"cannot open journal {self.path}: {exc}") from exc
        try:
            # read-only checks first: a file that is not ours is never modified
            check = self._db.execute("PRAGMA quick_check").fetchone()
            if check is None or check[0] != "ok":
                raise sqlite3.DatabaseError(f"integrity check: {check[0] if check else 'no answer'}")
            version = self._schema_version()
            if version is None:
                raise sqlite3.DatabaseError("no bigupload schema")
            if version > SCHEMA_VERSION:
                raise JournalError(
                    f"journal {self.path} has schema version {version}, newer than this "
                    f"bigupload understands ({SCHEMA_VERSION}); upgrade bigupload"
                )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            if version < SCHEMA_VERSION:
                self._migrate(version)
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise JournalError(
                f"journal {self.path} is corrupt or not a bigupload journal ({exc}); move it "
                "aside to start afresh (unfinished uploads on the server can be listed with: "
                "bigupload ls-uploads s3://BUCKET)"
            ) from exc
        except ResumeError:
            self._db.close()
            raise

    def _create(self) -> None:
        """Write a new journal beside its final name, private to the user, and rename it
        into place: a journal file that exists is always a complete one."""
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.new")
        os.close(os.open(temporary, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600))
        try:
            db = sqlite3.connect(temporary, isolation_level=None)
            try:
                db.executescript(_SCHEMA)
                db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            finally:
                db.close()
            with open(temporary, "rb") as f:
                os.fsync(f.fileno())
            os.replace(temporary, self.path)
        finally:
            if temporary.exists():
                temporary.unlink()

    def _migrate(self, version: int) -> None:
        """Bring an older journal up to date in one transaction (SQLite's DDL is
        transactional: a failure leaves the old journal as it was). Version 3 added columns
        to ``uploads``, with defaults that describe the rows already there; the other
        changes only added tables, which the schema script (all ``IF NOT EXISTS``) makes."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            if version < 3:
                have = {r["name"] for r in self._db.execute("PRAGMA table_info(uploads)")}
                for column in _UPLOADS_V3:
                    if column.split()[0] not in have:
                        self._db.execute(f"ALTER TABLE uploads ADD COLUMN {column}")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            self._db.execute("UPDATE meta SET value=? WHERE name='schema_version'", (str(SCHEMA_VERSION),))

    def _schema_version(self) -> int | None:
        has_meta = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'"
        ).fetchone()
        if not has_meta:
            return None
        row = self._db.execute("SELECT value FROM meta WHERE name='schema_version'").fetchone()
        return int(row[0]) if row else None

    def _exec(self, sql: str, params: tuple[object, ...] = ()) -> sqlite3.Cursor:
        """Every statement after opening: a failure (disk full, I/O error, a file damaged
        under us) becomes a JournalError that says the upload itself is safe."""
        try:
            return self._db.execute(sql, params)
        except sqlite3.Error as exc:
            raise JournalError(
                f"journal {self.path}: {exc}; the upload on the server is kept and resumes "
                "once the journal can be written again"
            ) from exc

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def claim(self, endpoint: str, bucket: str, key: str) -> contextlib.AbstractContextManager[None]:
        """Hold the destination for this process: a second process using the same journal
        for the same destination is refused instead of interleaving parts with ours."""
        return self._lock(f"{endpoint}\0{bucket}\0{key}", f"is uploading to s3://{bucket}/{key}")

    def claim_job(self, job_id: int) -> contextlib.AbstractContextManager[None]:
        """Hold a batch job for this process, so two resumes cannot run it at once."""
        return self._lock(f"job\0{job_id}", f"is running job {job_id}")

    @contextlib.contextmanager
    def _lock(self, name: str, doing: str) -> Iterator[None]:
        """An flock on a file beside the journal, so a killed process releases it at once."""
        locks = self.path.parent / (self.path.name + ".locks")
        digest = hashlib.sha256(name.encode()).hexdigest()[:32]
        try:
            locks.mkdir(mode=0o700, exist_ok=True)
            fd = os.open(locks / digest, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
        except OSError as exc:
            raise JournalError(f"cannot create the journal lock in {locks}: {exc.strerror}") from exc
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                raise ResumeError(
                    f"another bigupload process (pid {holder}) {doing} with the journal "
                    f"{self.path}; wait for it to finish or stop it"
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            yield
        finally:
            os.close(fd)  # releases the lock

    # uploads

    def find_active(self, source_path: str, endpoint: str, bucket: str, key: str) -> UploadRecord | None:
        row = self._exec(
            "SELECT * FROM uploads WHERE source_path=? AND endpoint=? AND bucket=? AND key=? "
            "AND state=? ORDER BY id DESC LIMIT 1",
            (source_path, endpoint, bucket, key, UploadState.ACTIVE.value),
        ).fetchone()
        return self._record(row) if row else None

    def get(self, upload_row: int) -> UploadRecord:
        row = self._exec("SELECT * FROM uploads WHERE id=?", (upload_row,)).fetchone()
        if row is None:
            raise ResumeError(f"journal has no upload {upload_row}")
        return self._record(row)

    def uploads(self, state: UploadState | None = None) -> list[UploadRecord]:
        if state is None:
            rows = self._exec("SELECT * FROM uploads ORDER BY id").fetchall()
        else:
            rows = self._exec(
                "SELECT * FROM uploads WHERE state=? ORDER BY id", (state.value,)
            ).fetchall()
        return [self._record(r) for r in rows]

    def start_upload(
        self,
        fingerprint: Fingerprint,
        endpoint: str,
        bucket: str,
        key: str,
        part_size: int,
        part_count: int,
        checksum_algorithm: str,
        sse_c_key_hash: str | None,
        *,
        checksum_type: str = "COMPOSITE",
        guard: DestinationGuard = UNKNOWN_GUARD,
    ) -> int:
        """Record a new upload before CreateMultipartUpload is sent; returns its row id.
        ``checksum_type`` is the one Create will ask for (a resume must keep it); ``guard``
        is the destination's state, if already looked at (else ``set_guard`` later)."""
        if checksum_type not in ("COMPOSITE", "FULL_OBJECT"):
            raise ValueError(f"unknown checksum type {checksum_type!r}")
        now = time.time()
        cur = self._exec(
            "INSERT INTO uploads (state, source_path, size, mtime_ns, inode, device, sample_hash,"
            " endpoint, bucket, key, upload_id, part_size, part_count, checksum_algorithm,"
            " sse_c_key_hash, created_at, updated_at, checksum_type, guard)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,NULL,?,?,?,?,?,?,?,?)",
            (
                UploadState.ACTIVE.value,
                fingerprint.path,
                fingerprint.size,
                fingerprint.mtime_ns,
                fingerprint.inode,
                fingerprint.device,
                fingerprint.sample_hash,
                endpoint,
                bucket,
                key,
                part_size,
                part_count,
                checksum_algorithm,
                sse_c_key_hash,
                now,
                now,
                checksum_type,
                guard.to_column(),
            ),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def set_upload_id(self, upload_row: int, upload_id: str) -> None:
        self._exec(
            "UPDATE uploads SET upload_id=?, updated_at=? WHERE id=?", (upload_id, time.time(), upload_row)
        )

    def set_guard(self, upload_row: int, guard: DestinationGuard) -> None:
        """Record the destination's state as found when the upload began (before Create)."""
        self._exec("UPDATE uploads SET guard=?, updated_at=? WHERE id=?",
                   (guard.to_column(), time.time(), upload_row))

    def set_checksum_type(self, upload_row: int, checksum_type: str) -> None:
        """The server refused the type asked for, and the upload is created with this one."""
        if checksum_type not in ("COMPOSITE", "FULL_OBJECT"):
            raise ValueError(f"unknown checksum type {checksum_type!r}")
        self._exec("UPDATE uploads SET checksum_type=?, updated_at=? WHERE id=?",
                   (checksum_type, time.time(), upload_row))

    def known_upload_ids(self, endpoint: str, bucket: str, key: str) -> set[str]:
        """Every upload id any row (open or closed) holds for this destination: uploads
        that are somebody's, which an orphan sweep must leave alone."""
        rows = self._exec("SELECT upload_id FROM uploads WHERE endpoint=? AND bucket=? AND key=? "
                          "AND upload_id IS NOT NULL", (endpoint, bucket, key))
        return {str(r[0]) for r in rows}

    def touch(self, upload_row: int) -> None:
        """Note that a request for this upload is about to be sent (``updated_at``)."""
        self._exec("UPDATE uploads SET updated_at=? WHERE id=?", (time.time(), upload_row))

    def finish(self, upload_row: int, state: UploadState, *, etag: str | None = None,
               error: str | None = None) -> None:
        """Close an upload row (any state but ACTIVE), with the ETag of a completed one or
        the reason it closed otherwise; its part rows are no longer needed."""
        if state is UploadState.ACTIVE:
            raise ValueError("finish() closes a row; ACTIVE is not a closed state")
        with self._db:  # one transaction: the state and the part rows change together
            self._exec("BEGIN")
            self._exec(
                "UPDATE uploads SET state=?, etag=?, error=?, updated_at=? WHERE id=?",
                (state.value, etag, error, time.time(), upload_row),
            )
            self._exec("DELETE FROM parts WHERE upload=?", (upload_row,))

    def forget(self, upload_row: int) -> None:
        self._exec("DELETE FROM uploads WHERE id=?", (upload_row,))

    def forget_uploads(
        self,
        *,
        ids: Collection[int] | None = None,
        states: Collection[UploadState] | None = None,
        older_than: float | None = None,
    ) -> int:
        """Delete the upload rows (and their parts) that pass every filter given: row ids,
        states, last change more than ``older_than`` seconds ago. Returns how many went.
        With no filter nothing is deleted (forgetting everything is never a default). Only
        the journal changes: an upload on the server stays as it is."""
        return self._forget("uploads", ids, _values(states), older_than)

    def forget_jobs(
        self,
        *,
        ids: Collection[int] | None = None,
        states: Collection[JobState] | None = None,
        older_than: float | None = None,
    ) -> int:
        """Like ``forget_uploads``, for batch jobs and their file rows. The upload rows of a
        job's large files are separate rows and stay (an unfinished one is then listed and
        resumed as a single-file upload)."""
        return self._forget("jobs", ids, _values(states), older_than)

    def _forget(self, table: str, ids: Collection[int] | None, states: list[str] | None,
                older_than: float | None) -> int:
        if ids is None and states is None and older_than is None:
            return 0
        where: list[str] = []
        params: list[object] = []
        for column, values in (("id", None if ids is None else list(ids)), ("state", states)):
            if values is not None:
                where.append(f"{column} IN ({','.join('?' * len(values))})" if values else "0")
                params.extend(values)
        if older_than is not None:
            where.append("updated_at < ?")
            params.append(time.time() - older_than)
        sql = f"DELETE FROM {table} WHERE {' AND '.join(where)}"
        return self._exec(sql, tuple(params)).rowcount

    # parts

    def record_part(self, upload_row: int, part: PartRecord) -> None:
        """Durably note that the server acknowledged ``part``."""
        self._exec(
            "INSERT OR REPLACE INTO parts (upload, number, size, etag, checksum) VALUES (?,?,?,?,?)",
            (upload_row, part.number, part.size, part.etag, part.checksum),
        )
        self._exec("UPDATE uploads SET updated_at=? WHERE id=?", (time.time(), upload_row))

    def drop_part(self, upload_row: int, number: int) -> None:
        self._exec("DELETE FROM parts WHERE upload=? AND number=?", (upload_row, number))

    def parts(self, upload_row: int) -> dict[int, PartRecord]:
        rows = self._exec(
            "SELECT number, size, etag, checksum FROM parts WHERE upload=? ORDER BY number", (upload_row,)
        )
        return {int(r["number"]): PartRecord(number=int(r["number"]), size=int(r["size"]),
                                             etag=str(r["etag"]), checksum=str(r["checksum"]))
                for r in rows}

    def part_totals(self, upload_row: int) -> tuple[int, int]:
        """(parts recorded, bytes recorded) for status displays."""
        row = self._exec(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM parts WHERE upload=?", (upload_row,)
        ).fetchone()
        return int(row[0]), int(row[1])

    @staticmethod
    def _record(row: sqlite3.Row) -> UploadRecord:
        return UploadRecord(
            id=int(row["id"]),
            state=UploadState(row["state"]),
            fingerprint=Fingerprint(str(row["source_path"]), int(row["size"]), int(row["mtime_ns"]),
                                    int(row["inode"]), int(row["device"]), str(row["sample_hash"])),
            endpoint=str(row["endpoint"]),
            bucket=str(row["bucket"]),
            key=str(row["key"]),
            upload_id=_text(row["upload_id"]),
            part_size=int(row["part_size"]),
            part_count=int(row["part_count"]),
            checksum_algorithm=str(row["checksum_algorithm"]),
            sse_c_key_hash=_text(row["sse_c_key_hash"]),
            created_at=float(row["created_at"]),
            updated_at=float(row["updated_at"]),
            etag=_text(row["etag"]),
            error=_text(row["error"]),
            checksum_type=str(row["checksum_type"]),
            guard=DestinationGuard.from_column(_text(row["guard"])),
        )

    # batch jobs

    def start_job(self, description: str, spec: str, spec_hash: str) -> int:
        now = time.time()
        cur = self._exec(
            "INSERT INTO jobs (state, description, spec, spec_hash, created_at, updated_at) "
            "VALUES (?,?,?,?,?,?)", (JobState.ACTIVE.value, description, spec, spec_hash, now, now),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def job(self, job_id: int) -> JobRecord | None:
        row = self._exec("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
        return self._job(row) if row else None

    def jobs(self, states: tuple[JobState, ...] = tuple(JobState)) -> list[JobRecord]:
        marks = ",".join("?" * len(states))
        rows = self._exec(f"SELECT * FROM jobs WHERE state IN ({marks}) ORDER BY id",
                          tuple(s.value for s in states)).fetchall()
        return [self._job(r) for r in rows]

    def find_job(self, spec_hash: str) -> JobRecord | None:
        """The newest unfinished job started by the same command."""
        row = self._exec("SELECT * FROM jobs WHERE spec_hash=? AND state=? ORDER BY id DESC LIMIT 1",
                         (spec_hash, JobState.ACTIVE.value)).fetchone()
        return self._job(row) if row else None

    def set_job_state(self, job_id: int, state: JobState, error: str | None = None) -> None:
        self._exec("UPDATE jobs SET state=?, error=?, updated_at=? WHERE id=?",
                   (state.value, error, time.time(), job_id))

    def add_job_files(self, job_id: int, files: list[JobFile]) -> None:
        """Append files to a job, in one transaction."""
        with self._db:
            self._exec("BEGIN")
            try:
                self._db.executemany(
                    "INSERT INTO job_files (job, seq, source, bucket, key, size, settings, state, "
                    "error) VALUES (?,?,?,?,?,?,?,?,?)",
                    [(job_id, f.seq, f.source, f.bucket, f.key, f.size, f.settings, f.state.value,
                      f.error) for f in files],
                )
            except sqlite3.Error as exc:
                raise JournalError(f"journal {self.path}: {exc}; nothing was sent") from exc

    def job_keys(self, job_id: int) -> set[tuple[str, str]]:
        rows = self._exec("SELECT bucket, key FROM job_files WHERE job=?", (job_id,))
        return {(str(b), str(k)) for b, k in rows}

    def next_seq(self, job_id: int) -> int:
        row = self._exec("SELECT COALESCE(MAX(seq) + 1, 0) FROM job_files WHERE job=?",
                         (job_id,)).fetchone()
        return int(row[0])

    def job_files(self, job_id: int, states: tuple[FileState, ...], *, after: int = -1,
                  limit: int = 1000) -> list[JobFile]:
        """One page of a job's files in the given states, by position after ``after``."""
        marks = ",".join("?" * len(states))
        rows = self._exec(
            f"SELECT * FROM job_files WHERE job=? AND state IN ({marks}) AND seq>? ORDER BY seq LIMIT ?",
            (job_id, *(s.value for s in states), after, limit),
        ).fetchall()
        return [JobFile(seq=int(r["seq"]), source=str(r["source"]), bucket=str(r["bucket"]),
                        key=str(r["key"]), size=int(r["size"]), settings=_text(r["settings"]),
                        state=FileState(r["state"]), etag=_text(r["etag"]), error=_text(r["error"]),
                        exit_code=None if r["exit_code"] is None else int(r["exit_code"]))
                for r in rows]

    def set_file_states(self, job_id: int, changes: list[FileChange]) -> None:
        """Durably note what became of some files of a job, in one transaction."""
        with self._db:
            self._exec("BEGIN")
            try:
                self._db.executemany(
                    "UPDATE job_files SET state=?, etag=?, error=?, exit_code=? WHERE job=? AND seq=?",
                    [(c.state.value, c.etag, c.error, c.exit_code, job_id, c.seq) for c in changes])
                self._db.execute("UPDATE jobs SET updated_at=? WHERE id=?", (time.time(), job_id))
            except sqlite3.Error as exc:
                raise JournalError(f"journal {self.path}: {exc}; the job resumes once the journal "
                                   "can be written again") from exc

    def job_totals(self, job_id: int) -> JobTotals:
        """Files and bytes in the job, done (uploaded or skipped) and failed. Bytes of a
        large file count when it is done; ``status`` adds the parts of unfinished ones."""
        row = self._exec(
            "SELECT COUNT(*), COALESCE(SUM(size), 0), "
            "COALESCE(SUM(state IN ('done', 'skipped')), 0), "
            "COALESCE(SUM(CASE WHEN state IN ('done', 'skipped') THEN size ELSE 0 END), 0), "
            "COALESCE(SUM(state='failed'), 0) FROM job_files WHERE job=?", (job_id,),
        ).fetchone()
        return JobTotals(*(int(v) for v in row))

    def job_parts_bytes(self, job_id: int) -> int:
        """Bytes of the parts already on the server for the job's unfinished large files."""
        row = self._exec(
            "SELECT COALESCE(SUM(p.size), 0) FROM job_files f JOIN uploads u ON u.source_path=f.source "
            "AND u.bucket=f.bucket AND u.key=f.key AND u.state='active' JOIN parts p ON p.upload=u.id "
            "WHERE f.job=? AND f.state='pending'", (job_id,),
        ).fetchone()
        return int(row[0])

    def job_state_counts(self, job_id: int) -> dict[FileState, int]:
        rows = self._exec("SELECT state, COUNT(*) FROM job_files WHERE job=? GROUP BY state", (job_id,))
        return {FileState(s): int(n) for s, n in rows}

    def job_key_range(self, job_id: int) -> dict[str, tuple[str, str]]:
        """Per bucket, the smallest and largest key of the job."""
        rows = self._exec("SELECT bucket, MIN(key), MAX(key) FROM job_files WHERE job=? GROUP BY bucket",
                          (job_id,))
        return {str(b): (str(low), str(high)) for b, low, high in rows}

    def in_job(self, source: str, bucket: str, key: str, *, unfinished: bool = True) -> bool:
        """Whether an unfinished file of an unfinished job is this upload (``resume`` runs
        it with its job); with ``unfinished=False``, whether any job in the journal has it
        as a file (``status --all`` shows it with the job, not as a single-file upload)."""
        pending = "AND f.state='pending' AND j.state='active' " if unfinished else ""
        row = self._exec(
            "SELECT 1 FROM job_files f JOIN jobs j ON j.id=f.job WHERE f.source=? AND f.bucket=? "
            f"AND f.key=? {pending}LIMIT 1", (source, bucket, key),
        ).fetchone()
        return row is not None

    @staticmethod
    def _job(row: sqlite3.Row) -> JobRecord:
        return JobRecord(id=int(row["id"]), state=JobState(row["state"]),
                         description=str(row["description"]), spec=str(row["spec"]),
                         spec_hash=str(row["spec_hash"]), created_at=float(row["created_at"]),
                         updated_at=float(row["updated_at"]), error=_text(row["error"]))


def _values(states: Collection[enum.Enum] | None) -> list[str] | None:
    return None if states is None else [str(s.value) for s in states]


def _text(value: object) -> str | None:
    """A nullable TEXT column."""
    return None if value is None else str(value)


def iter_unfinished(journal: Journal) -> Iterator[tuple[UploadRecord, int, int]]:
    """Active uploads with (parts done, bytes done)."""
    for record in journal.uploads(UploadState.ACTIVE):
        yield (record, *journal.part_totals(record.id))
