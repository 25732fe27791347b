"""What the journal holds, as values: the states of uploads, jobs and job files, and one
frozen record per kind of row. Each row is converted once, by column name, in the
``from_row`` of its record (``part_record`` for a part: ``PartRecord`` and
``DestinationGuard`` are the engine's value types, from values.py); nothing outside this
package sees an ``sqlite3.Row``.

No I/O here: these are the types the rest of the engine (transfer, resume, batch, the
cluster workers) passes around."""

from __future__ import annotations

import dataclasses
import enum
import os
import sqlite3

# the guard and the part record are the engine's values (values.py), journalled here
from ..values import CopySource, Fingerprint
from ..values import DestinationGuard as DestinationGuard
from ..values import PartRecord as PartRecord


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


class JobState(enum.Enum):
    ACTIVE = "active"  # running, or interrupted: ``bigupload resume`` continues it
    COMPLETED = "completed"  # every file uploaded or skipped
    PARTIAL = "partial"  # finished, some files failed for good (``resume ID`` retries them)


class FileState(enum.Enum):
    PENDING = "pending"
    DONE = "done"
    SKIPPED = "skipped"  # --skip-existing found the same object there
    FAILED = "failed"


UPLOAD_CLOSED_STATES = (UploadState.COMPLETED, UploadState.ABORTED, UploadState.FAILED,
                        UploadState.SUPERSEDED)
JOB_CLOSED_STATES = (JobState.COMPLETED, JobState.PARTIAL)
CHECKSUM_TYPES = ("COMPOSITE", "FULL_OBJECT")


def text(value: object) -> str | None:
    """A nullable TEXT column."""
    return None if value is None else str(value)


def name_column(path: str) -> str | bytes:
    """A job file's source or key as stored: the text, or, for a file name that is not
    UTF-8 (Python's surrogate escapes, which SQLite text cannot hold), its bytes as a BLOB,
    so that ``name`` reads back exactly (never as an escaped form that may name another
    file)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(path)
    return path


def name(value: object) -> str:
    """The source or key of a ``name_column``."""
    return os.fsdecode(value) if isinstance(value, bytes) else str(value)


def message_column(message: str | None) -> str | None:
    """An error message as stored: one about a file name that is not UTF-8 keeps a
    readable escaped form of it (a message is for reading, and SQLite text cannot hold
    surrogate escapes)."""
    if message is None:
        return None
    return message.encode("utf-8", "backslashreplace").decode("utf-8")


UNKNOWN_GUARD = DestinationGuard.unknown()


def part_record(row: sqlite3.Row) -> PartRecord:
    """A ``parts`` row as the value the engine passes around (``values.PartRecord``)."""
    return PartRecord(number=int(row["number"]), size=int(row["size"]), etag=str(row["etag"]),
                      checksum=str(row["checksum"]))


@dataclasses.dataclass(frozen=True)
class PartTotals:
    """What the journal holds of an upload's parts, for status displays."""

    parts: int
    bytes: int

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> PartTotals:
        return cls(parts=int(row["parts"]), bytes=int(row["bytes"]))


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
    guard: DestinationGuard = UNKNOWN_GUARD
    # a server-side copy's source as the copy began (its ``fingerprint()`` fills the file
    # columns); None for a file's upload
    copy_source: CopySource | None = None
    content_md5: bool = False  # each part sent with its Content-MD5 (--content-md5)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> UploadRecord:
        return cls(
            id=int(row["id"]),
            state=UploadState(row["state"]),
            fingerprint=Fingerprint(name(row["source_path"]), int(row["size"]),
                                    int(row["mtime_ns"]), int(row["inode"]),
                                    int(row["device"]), str(row["sample_hash"])),
            endpoint=str(row["endpoint"]),
            bucket=str(row["bucket"]),
            key=str(row["key"]),
            upload_id=text(row["upload_id"]),
            part_size=int(row["part_size"]),
            part_count=int(row["part_count"]),
            checksum_algorithm=str(row["checksum_algorithm"]),
            sse_c_key_hash=text(row["sse_c_key_hash"]),
            created_at=float(row["created_at"]),
            updated_at=float(row["updated_at"]),
            etag=text(row["etag"]),
            error=text(row["error"]),
            checksum_type=str(row["checksum_type"]),
            guard=DestinationGuard.from_column(text(row["guard"])),
            copy_source=CopySource.from_column(str(row["copy_source"]))
            if row["copy_source"] is not None else None,
            content_md5=bool(row["content_md5"]),
        )


@dataclasses.dataclass(frozen=True)
class UnfinishedUpload:
    """An active upload row with what the journal holds of its parts."""

    record: UploadRecord
    parts: PartTotals


@dataclasses.dataclass(frozen=True)
class JobRecord:
    id: int
    state: JobState
    description: str
    # JSON of the job's spec (``bigupload.batch.spec``): what a resume needs, never a secret
    spec: str
    spec_hash: str
    created_at: float
    updated_at: float
    error: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> JobRecord:
        return cls(id=int(row["id"]), state=JobState(row["state"]),
                   description=str(row["description"]), spec=str(row["spec"]),
                   spec_hash=str(row["spec_hash"]), created_at=float(row["created_at"]),
                   updated_at=float(row["updated_at"]), error=text(row["error"]))


@dataclasses.dataclass(frozen=True)
class JobFile:
    """A file of a job and what became of it: the row added when the job is opened
    (PENDING, or PENDING with ``error`` when the walk or manifest found it unusable), and
    the same row with its new state, ETag, error and exit code when it is settled."""

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

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> JobFile:
        return cls(seq=int(row["seq"]), source=name(row["source"]), bucket=str(row["bucket"]),
                   key=name(row["key"]), size=int(row["size"]), settings=text(row["settings"]),
                   state=FileState(row["state"]), etag=text(row["etag"]),
                   error=text(row["error"]),
                   exit_code=None if row["exit_code"] is None else int(row["exit_code"]))

    def settled(self, state: FileState, *, etag: str | None = None, error: str | None = None,
                exit_code: int | None = None) -> JobFile:
        """This file with what became of it (``Journal.set_file_states`` records that)."""
        return dataclasses.replace(self, state=state, etag=etag, error=error,
                                   exit_code=exit_code)


@dataclasses.dataclass(frozen=True)
class JobTotals:
    files: int
    bytes: int
    done_files: int  # uploaded or skipped
    done_bytes: int
    failed_files: int

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> JobTotals:
        return cls(files=int(row["files"]), bytes=int(row["bytes"]),
                   done_files=int(row["done_files"]), done_bytes=int(row["done_bytes"]),
                   failed_files=int(row["failed_files"]))


@dataclasses.dataclass(frozen=True)
class KeyRange:
    """The smallest and largest key of a job in one bucket."""

    low: str
    high: str
