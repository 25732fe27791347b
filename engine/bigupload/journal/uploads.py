"""The upload rows and their part rows: one row per upload (source fingerprint,
destination, plan, upload id, checksum algorithm and type, and the destination's state
when the upload began) and one per part the server acknowledged.

Invariants: a row is recorded before CreateMultipartUpload is sent and its upload id as
soon as it exists; each acknowledged part is committed at once; a closed row (any state
but ACTIVE) keeps its reason and loses its part rows, in one transaction. Forgetting rows
only edits the journal, never the server."""

from __future__ import annotations

import contextlib
from collections.abc import Collection

from ..errors import ResumeError
from ..source import Fingerprint
from ..values import CopySource
from .db import Database, now
from .records import (
    CHECKSUM_TYPES,
    UNKNOWN_GUARD,
    DestinationGuard,
    PartRecord,
    PartTotals,
    UnfinishedUpload,
    UploadRecord,
    UploadState,
    name_column,
    part_record,
)


def _check_type(checksum_type: str) -> None:
    if checksum_type not in CHECKSUM_TYPES:
        raise ValueError(f"unknown checksum type {checksum_type!r}")


class UploadRepository:
    """Reads and writes ``uploads`` and ``parts`` through one ``Database``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # reading

    def find_active(self, source_path: str, endpoint: str, bucket: str,
                    key: str) -> UploadRecord | None:
        row = self.db.execute(
            "SELECT * FROM uploads WHERE source_path=? AND endpoint=? AND bucket=? AND key=? "
            "AND state=? ORDER BY id DESC LIMIT 1",
            (name_column(source_path), endpoint, bucket, key, UploadState.ACTIVE.value),
        ).fetchone()
        return UploadRecord.from_row(row) if row else None

    def get(self, upload_row: int) -> UploadRecord:
        row = self.db.execute("SELECT * FROM uploads WHERE id=?", (upload_row,)).fetchone()
        if row is None:
            raise ResumeError(f"journal has no upload {upload_row}")
        return UploadRecord.from_row(row)

    def rows(self, state: UploadState | None = None) -> list[UploadRecord]:
        if state is None:
            rows = self.db.execute("SELECT * FROM uploads ORDER BY id").fetchall()
        else:
            rows = self.db.execute("SELECT * FROM uploads WHERE state=? ORDER BY id",
                                   (state.value,)).fetchall()
        return [UploadRecord.from_row(r) for r in rows]

    def known_upload_ids(self, endpoint: str, bucket: str, key: str) -> set[str]:
        """Every upload id any row (open or closed) holds for this destination: uploads
        that are somebody's, which an orphan sweep must leave alone."""
        rows = self.db.execute(
            "SELECT upload_id FROM uploads WHERE endpoint=? AND bucket=? AND key=? "
            "AND upload_id IS NOT NULL", (endpoint, bucket, key))
        return {str(r["upload_id"]) for r in rows}

    def parts(self, upload_row: int) -> dict[int, PartRecord]:
        rows = self.db.execute(
            "SELECT number, size, etag, checksum FROM parts WHERE upload=? ORDER BY number",
            (upload_row,))
        return {record.number: record for record in map(part_record, rows)}

    def part_totals(self, upload_row: int) -> PartTotals:
        """Parts recorded and their bytes, for status displays."""
        row = self.db.execute(
            "SELECT COUNT(*) AS parts, COALESCE(SUM(size), 0) AS bytes FROM parts "
            "WHERE upload=?", (upload_row,)).fetchone()
        return PartTotals.from_row(row)

    def unfinished(self) -> list[UnfinishedUpload]:
        """Active uploads with what the journal holds of their parts."""
        return [UnfinishedUpload(record, self.part_totals(record.id))
                for record in self.rows(UploadState.ACTIVE)]

    def parts_recorded(self) -> int:
        """Parts recorded for all uploads (lets tests and the demo interrupt an upload
        part-way)."""
        row = self.db.execute("SELECT COUNT(*) AS parts FROM parts").fetchone()
        return int(row["parts"])

    # writing

    def claim(self, endpoint: str, bucket: str,
              key: str) -> contextlib.AbstractContextManager[None]:
        """Hold the destination for this process: a second process using the same journal
        for the same destination is refused instead of interleaving parts with ours."""
        return self.db.lock(f"{endpoint}\0{bucket}\0{key}", f"is uploading to s3://{bucket}/{key}")

    def start(
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
        copy_source: CopySource | None = None,
        content_md5: bool = False,
    ) -> int:
        """Record a new upload before CreateMultipartUpload is sent; returns its row id.
        ``checksum_type`` is the one Create will ask for (a resume must keep it); ``guard``
        is the destination's state, if already looked at (else ``set_guard`` later);
        ``copy_source`` the source of a server-side copy (``fingerprint`` is its
        ``fingerprint()``)."""
        _check_type(checksum_type)
        stamp = now()
        cur = self.db.execute(
            "INSERT INTO uploads (state, source_path, size, mtime_ns, inode, device, sample_hash,"
            " endpoint, bucket, key, upload_id, part_size, part_count, checksum_algorithm,"
            " sse_c_key_hash, created_at, updated_at, checksum_type, guard, copy_source,"
            " content_md5) VALUES (?,?,?,?,?,?,?,?,?,?,NULL,?,?,?,?,?,?,?,?,?,?)",
            (
                UploadState.ACTIVE.value,
                name_column(fingerprint.path),  # bytes when not UTF-8, as a job file's
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
                stamp,
                stamp,
                checksum_type,
                guard.to_column(),
                copy_source.to_column() if copy_source is not None else None,
                int(content_md5),
            ),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def set_upload_id(self, upload_row: int, upload_id: str) -> None:
        self.db.execute("UPDATE uploads SET upload_id=?, updated_at=? WHERE id=?",
                        (upload_id, now(), upload_row))

    def set_guard(self, upload_row: int, guard: DestinationGuard) -> None:
        """Record the destination's state as found when the upload began (before Create)."""
        self.db.execute("UPDATE uploads SET guard=?, updated_at=? WHERE id=?",
                        (guard.to_column(), now(), upload_row))

    def set_checksum_type(self, upload_row: int, checksum_type: str) -> None:
        """The server refused the type asked for, and the upload is created with this one."""
        _check_type(checksum_type)
        self.db.execute("UPDATE uploads SET checksum_type=?, updated_at=? WHERE id=?",
                        (checksum_type, now(), upload_row))

    def touch(self, upload_row: int) -> None:
        """Note that a request for this upload is about to be sent (``updated_at``)."""
        self.db.execute("UPDATE uploads SET updated_at=? WHERE id=?", (now(), upload_row))

    def finish(self, upload_row: int, state: UploadState, *, etag: str | None = None,
               error: str | None = None, size: int | None = None) -> None:
        """Close an upload row (any state but ACTIVE), with the ETag of a completed one or
        the reason it closed otherwise; its part rows are no longer needed. ``size``: the
        object's, where the row could not know it (a stream's, journalled as 0)."""
        if state is UploadState.ACTIVE:
            raise ValueError("finish() closes a row; ACTIVE is not a closed state")
        with self.db.transaction():  # the state and the part rows change together
            self.db.execute("UPDATE uploads SET state=?, etag=?, error=?, updated_at=?, "
                            "size=COALESCE(?, size) WHERE id=?",
                            (state.value, etag, error, now(), size, upload_row))
            self.db.execute("DELETE FROM parts WHERE upload=?", (upload_row,))

    def forget(self, upload_row: int) -> None:
        self.db.execute("DELETE FROM uploads WHERE id=?", (upload_row,))

    def forget_where(self, *, ids: Collection[int] | None = None,
                     states: Collection[UploadState] | None = None,
                     older_than: float | None = None) -> int:
        """Delete the upload rows (and their parts) that pass every filter given: row ids,
        states, last change more than ``older_than`` seconds ago. Returns how many went.
        With no filter nothing is deleted (forgetting everything is never a default). Only
        the journal changes: an upload on the server stays as it is."""
        return self.db.delete("uploads", ids=ids, states=states, older_than=older_than)

    def record_part(self, upload_row: int, part: PartRecord) -> None:
        """Durably note that the server acknowledged ``part``."""
        self.db.execute(
            "INSERT OR REPLACE INTO parts (upload, number, size, etag, checksum) "
            "VALUES (?,?,?,?,?)", (upload_row, part.number, part.size, part.etag, part.checksum))
        self.db.execute("UPDATE uploads SET updated_at=? WHERE id=?", (now(), upload_row))

    def drop_part(self, upload_row: int, number: int) -> None:
        self.db.execute("DELETE FROM parts WHERE upload=? AND number=?", (upload_row, number))
