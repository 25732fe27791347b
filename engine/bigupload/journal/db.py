"""The journal's database core: one SQLite connection to the journal file, opened for
writing (created, checked and migrated) or read-only, every statement's failure turned into
a ``JournalError``, transactions, and the per-destination and per-job locks.

Invariants: a file that is not ours, is damaged, or is newer than this code is refused and
never modified (the read-only checks run before any write); an empty file is refused (a
new journal is renamed into place whole, so an empty one was truncated); writes use WAL
with synchronous=NORMAL (a killed process loses nothing committed; a power loss may forget
the last parts, which ListParts recovers); locks are flocks on files beside the journal,
so a killed process releases them at once. Rows come back as ``sqlite3.Row``: the
repositories read columns by name and convert each row once into a record."""

from __future__ import annotations

import contextlib
import enum
import fcntl
import hashlib
import os
import sqlite3
import time
from collections.abc import Collection, Iterable, Iterator, Sequence
from pathlib import Path

from ..errors import JournalError, ResumeError
from . import schema

# What a failed write says about the upload it was recording (the default), a job's file
# list (nothing was sent yet) and a job's file states.
UPLOAD_KEPT = ("the upload on the server is kept and resumes once the journal can be "
               "written again")
NOTHING_SENT = "nothing was sent"
JOB_RESUMES = "the job resumes once the journal can be written again"
MOVE_ASIDE = ("unfinished uploads on the server can be listed with: "
              "bigupload ls-uploads s3://BUCKET")


def default_path() -> Path:
    """``$XDG_STATE_HOME/bigupload/journal.sqlite3`` (``~/.local/state`` by default)."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state")
    return Path(base) / "bigupload" / "journal.sqlite3"


def now() -> float:
    """The timestamp rows are stamped with (``created_at``, ``updated_at``)."""
    return time.time()


class Database:
    """One connection to a journal file. Not thread-safe: use it from one thread."""

    def __init__(self, path: Path, connection: sqlite3.Connection, *, readonly: bool) -> None:
        self.path = path
        self.connection = connection
        self.readonly = readonly

    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None) -> Database:
        """Open the journal for writing: created if missing, checked, migrated if older."""
        where = Path(path) if path is not None else default_path()
        try:
            where.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not where.exists():
                schema.create(where)
            elif where.stat().st_size == 0:
                raise JournalError(
                    f"journal {where} is empty (truncated?); refusing to start over on top "
                    f"of it. Move it aside to start afresh; {MOVE_ASIDE}"
                )
            connection = sqlite3.connect(where, isolation_level=None, timeout=30)
            connection.row_factory = sqlite3.Row
        except (OSError, sqlite3.Error) as exc:
            raise JournalError(f"cannot open journal {where}: {exc}") from exc
        db = cls(where, connection, readonly=False)
        try:
            # read-only checks first: a file that is not ours is never modified
            check = connection.execute("PRAGMA quick_check").fetchone()
            if check is None or check[0] != "ok":
                raise sqlite3.DatabaseError(
                    f"integrity check: {check[0] if check else 'no answer'}")
            version = db.check_version()
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("PRAGMA foreign_keys=ON")
            if version < schema.SCHEMA_VERSION:
                schema.migrate(connection, version)
        except sqlite3.DatabaseError as exc:
            connection.close()
            raise JournalError(
                f"journal {where} is corrupt or not a bigupload journal ({exc}); move it "
                f"aside to start afresh ({MOVE_ASIDE})"
            ) from exc
        except ResumeError:
            connection.close()
            raise
        return db

    @classmethod
    def open_readonly(cls, path: str | os.PathLike[str] | None = None, *,
                      timeout: float = 30.0) -> Database:
        """Open the journal to read it, while another process may be writing it. Nothing
        is created or migrated: a missing, foreign, older or newer file is a JournalError
        (an older one is migrated by the next bigupload command that writes it)."""
        where = Path(path) if path is not None else default_path()
        try:
            connection = sqlite3.connect(f"{where.absolute().as_uri()}?mode=ro", uri=True,
                                         timeout=timeout)
        except sqlite3.Error as exc:
            raise JournalError(f"cannot open journal {where}: {exc}") from exc
        connection.row_factory = sqlite3.Row
        db = cls(where, connection, readonly=True)
        try:
            version = db.check_version()
        except sqlite3.Error as exc:
            connection.close()
            raise JournalError(f"cannot read journal {where}: {exc}") from exc
        except ResumeError:
            connection.close()
            raise
        if version != schema.SCHEMA_VERSION:
            connection.close()
            raise JournalError(f"journal {where} has schema version {version}; run bigupload "
                               "once to bring it up to date before reading it")
        return db

    def check_version(self) -> int:
        """The file's schema version; sqlite3.DatabaseError if it is not a bigupload
        journal, JournalError if it is newer than this code."""
        version = schema.version(self.connection)
        if version is None:
            raise sqlite3.DatabaseError("no bigupload schema")
        if version > schema.SCHEMA_VERSION:
            raise JournalError(
                f"journal {self.path} has schema version {version}, newer than this "
                f"bigupload understands ({schema.SCHEMA_VERSION}); upgrade bigupload"
            )
        return version

    def execute(self, sql: str, params: Sequence[object] = (), *,
                failure: str = UPLOAD_KEPT) -> sqlite3.Cursor:
        """Every statement after opening: a failure (disk full, I/O error, a file damaged
        under us) becomes a JournalError that says what is safe (``failure``)."""
        try:
            return self.connection.execute(sql, params)
        except sqlite3.Error as exc:
            raise JournalError(f"journal {self.path}: {exc}; {failure}") from exc

    def executemany(self, sql: str, rows: Iterable[Sequence[object]], *,
                    failure: str = UPLOAD_KEPT) -> None:
        try:
            self.connection.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise JournalError(f"journal {self.path}: {exc}; {failure}") from exc

    @contextlib.contextmanager
    def transaction(self, *, failure: str = UPLOAD_KEPT) -> Iterator[None]:
        """Statements that change the journal together: all or none. A failure, the
        commit's included, is a JournalError saying ``failure``."""
        try:
            with self.connection:  # commits on success, rolls back on any exception
                self.connection.execute("BEGIN")
                yield
        except sqlite3.Error as exc:
            raise JournalError(f"journal {self.path}: {exc}; {failure}") from exc

    def delete(self, table: str, *, ids: Collection[int] | None,
               states: Collection[enum.Enum] | None, older_than: float | None) -> int:
        """Delete the rows of ``table`` that pass every filter given (row ids, states, last
        change more than ``older_than`` seconds ago); with no filter, none. Returns how
        many went; rows that reference them go too (ON DELETE CASCADE)."""
        if ids is None and states is None and older_than is None:
            return 0
        where: list[str] = []
        params: list[object] = []
        values = None if states is None else [str(s.value) for s in states]
        for column, chosen in (("id", None if ids is None else list(ids)), ("state", values)):
            if chosen is not None:
                where.append(f"{column} IN ({','.join('?' * len(chosen))})" if chosen else "0")
                params.extend(chosen)
        if older_than is not None:
            where.append("updated_at < ?")
            params.append(now() - older_than)
        return self.execute(f"DELETE FROM {table} WHERE {' AND '.join(where)}", params).rowcount

    @contextlib.contextmanager
    def lock(self, name: str, doing: str) -> Iterator[None]:
        """Hold ``name`` for this process: an flock on a file beside the journal. Another
        process holding it is a ResumeError naming its pid and what it ``doing``."""
        locks = self.path.parent / (self.path.name + ".locks")
        digest = hashlib.sha256(name.encode()).hexdigest()[:32]
        try:
            locks.mkdir(mode=0o700, exist_ok=True)
            fd = os.open(locks / digest, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0),
                         0o600)
        except OSError as exc:
            raise JournalError(
                f"cannot create the journal lock in {locks}: {exc.strerror}") from exc
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

    def close(self) -> None:
        self.connection.close()
