"""The journal's tables, their version, and how a file is created or brought up to date.

Invariants: a journal file that exists is complete (a new one is written beside its final
name and renamed into place); a migration is one transaction (SQLite's DDL is
transactional), so a failure leaves the older journal as it was; ``SCHEMA_VERSION`` is the
only version this code writes, and a newer file is refused by the caller, never touched."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

# 2 added jobs and job_files; 3 added uploads.checksum_type and uploads.guard; 4 added
# uploads.copy_source (a server-side copy's source); 5 added the unique index job_files_key
# (a job's file by its destination) and the size to job_files_state (the job's totals from
# the index alone); 6 added uploads.content_md5. An older journal is migrated on open, in
# one transaction.
SCHEMA_VERSION = 6

SCHEMA = """
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
    guard TEXT,
    copy_source TEXT,
    content_md5 INTEGER NOT NULL DEFAULT 0
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
-- pages of a job's files in a state, by position, and (covering) the job's counts and sums
CREATE INDEX IF NOT EXISTS job_files_state ON job_files (job, state, seq, size);
-- a job never sends two files to one key, the same walk again adds only the new ones, and
-- a single-file upload is found in its job (status, resume) without a scan of every job
CREATE UNIQUE INDEX IF NOT EXISTS job_files_key ON job_files (bucket, key, job);
"""

# Columns added to ``uploads`` after version 2, as ``ALTER TABLE`` clauses. A migrated row
# gets the default: 'COMPOSITE' is the checksum type every earlier upload began with, and a
# NULL guard says the destination's state was not recorded.
UPLOADS_V3 = (
    "checksum_type TEXT NOT NULL DEFAULT 'COMPOSITE'",
    "guard TEXT",
)
# Version 4: a server-side copy's source (``values.CopySource`` as JSON); NULL, as every
# migrated row gets, is a file's upload.
UPLOADS_V4 = ("copy_source TEXT",)
# Version 6: whether each part is sent with its Content-MD5 (--content-md5), which a
# resume must keep doing; 0, as every migrated row gets, is what they were sent without.
UPLOADS_V6 = ("content_md5 INTEGER NOT NULL DEFAULT 0",)


def create(path: Path) -> None:
    """Write a new journal beside ``path``, private to the user, and rename it into place:
    a journal file that exists is always a complete one."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.new")
    os.close(os.open(temporary, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600))
    try:
        db = sqlite3.connect(temporary, isolation_level=None)
        try:
            db.executescript(SCHEMA)
            db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        finally:
            db.close()
        with open(temporary, "rb") as f:
            os.fsync(f.fileno())
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()


def version(db: sqlite3.Connection) -> int | None:
    """The schema version the file records, or None when it is not a bigupload journal."""
    has_meta = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'"
    ).fetchone()
    if not has_meta:
        return None
    row = db.execute("SELECT value AS version FROM meta WHERE name='schema_version'").fetchone()
    return int(row["version"]) if row else None


def migrate(db: sqlite3.Connection, old: int) -> None:
    """Bring a journal at version ``old`` up to date in one transaction. Versions 3, 4 and 6
    added columns to ``uploads``, with defaults that describe the rows already there; the
    other changes only added tables and indexes, which the schema script (all ``IF NOT
    EXISTS``) makes (a job's keys were already unique: ``open_job`` checked them)."""
    with db:
        db.execute("BEGIN IMMEDIATE")
        if old < 6:
            have = {r["name"] for r in db.execute("PRAGMA table_info(uploads)")}
            for column in ((UPLOADS_V3 if old < 3 else ()) + (UPLOADS_V4 if old < 4 else ())
                           + UPLOADS_V6):
                if column.split()[0] not in have:
                    db.execute(f"ALTER TABLE uploads ADD COLUMN {column}")
        if old < 5:  # made again below, with the size
            db.execute("DROP INDEX IF EXISTS job_files_state")
        for statement in SCHEMA.split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute("UPDATE meta SET value=? WHERE name='schema_version'", (str(SCHEMA_VERSION),))
