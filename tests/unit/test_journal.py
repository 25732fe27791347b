from __future__ import annotations

import datetime
import os
import sqlite3
import stat
import time
from pathlib import Path

import pytest

from bigupload.errors import ConfigError, JournalError, ResumeError
from bigupload.journal import (
    SCHEMA_VERSION,
    DestinationGuard,
    FileState,
    JobFile,
    JobState,
    JobTotals,
    Journal,
    JournalView,
    PartRecord,
    PartTotals,
    UploadState,
)
from bigupload.source import Fingerprint
from bigupload.values import CopySource

FP = Fingerprint("/data/x.bin", 100, 1, 2, 3, "abc")


def test_records_parts_and_finishes(tmp_path: Path) -> None:
    path = tmp_path / "j" / "journal.sqlite3"
    with Journal(path) as j:
        row = j.start_upload(FP, "http://e", "b", "k", 5 << 20, 20, "crc32c", None)
        j.set_upload_id(row, "U1")
        j.record_part(row, PartRecord(1, 10, '"e1"', "c1"))
        j.record_part(row, PartRecord(2, 10, '"e2"', "c2"))
        j.record_part(row, PartRecord(2, 10, '"e2b"', "c2b"))  # re-sent part replaces
    with Journal(path) as j:  # survives reopening
        rec = j.find_active("/data/x.bin", "http://e", "b", "k")
        assert rec is not None and rec.upload_id == "U1" and rec.fingerprint == FP
        assert j.parts(rec.id)[2].etag == '"e2b"'
        assert j.part_totals(rec.id) == PartTotals(parts=2, bytes=20)
        j.finish(rec.id, UploadState.COMPLETED, etag='"x"')
        assert j.find_active("/data/x.bin", "http://e", "b", "k") is None
        assert j.parts(rec.id) == {}
        assert j.get(rec.id).state is UploadState.COMPLETED


def test_private_permissions(tmp_path: Path) -> None:
    """The journal, its WAL and shared-memory files, and the lock files are the user's alone."""
    os.umask(0o022)
    path = tmp_path / "state" / "journal.sqlite3"
    with Journal(path) as j:
        row = j.start_upload(FP, "http://e", "b", "k", 5 << 20, 20, "crc32c", None)
        j.record_part(row, PartRecord(1, 10, '"e1"', "c1"))
        with j.claim("http://e", "b", "k"):
            files = [p for p in path.parent.rglob("*") if p.is_file()]
            assert {p.name for p in files} >= {"journal.sqlite3", "journal.sqlite3-wal",
                                               "journal.sqlite3-shm"}
            for p in files:
                assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    for d in (path.parent, path.parent / "journal.sqlite3.locks"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700


def valid_journal(path: Path) -> Path:
    with Journal(path) as j:
        for n in range(200):
            row = j.start_upload(FP, "http://e", "b", f"k{n}", 5 << 20, 20, "crc32c", None)
            j.record_part(row, PartRecord(1, 10, '"e1"', "c1"))
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return path


@pytest.mark.parametrize("damage", ["truncated", "empty", "garbled", "foreign"])
def test_damaged_journal_is_refused_never_replaced(tmp_path: Path, damage: str) -> None:
    """Refused with one clear message, never silently started over: the unfinished uploads
    it records would otherwise be forgotten (and billed forever)."""
    path = valid_journal(tmp_path / "journal.sqlite3")
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "garbled":
        path.write_bytes(data[:4096] + bytes(b ^ 0x5A for b in data[4096:12288]) + data[12288:])
    else:  # some other SQLite database
        path.unlink()
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE photos (id INTEGER)")
        db.commit()
        db.close()
    before = path.read_bytes()
    with pytest.raises(ResumeError, match="corrupt or not a bigupload journal|is empty") as failure:
        Journal(path).close()
    assert "move it aside" in str(failure.value).lower()
    assert path.read_bytes() == before


def test_a_failed_journal_write_is_a_resume_error(tmp_path: Path) -> None:
    """A full disk (here: SQLite's page limit) surfaces as ResumeError, not sqlite3's own."""
    with Journal(tmp_path / "j.sqlite3") as j:
        row = j.start_upload(FP, "http://e", "b", "k", 5 << 20, 20, "crc32c", None)
        pages = j.db.connection.execute("PRAGMA page_count").fetchone()[0]
        j.db.connection.execute(f"PRAGMA max_page_count={pages}")
        with pytest.raises(ResumeError, match="full.*resumes once the journal can be written"):
            for n in range(1, 10_001):
                j.record_part(row, PartRecord(n, 10, '"e" * 20', "c" * 40))


def test_corrupt_journal_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ResumeError, match="corrupt or not a bigupload journal"):
        Journal(path)
    assert path.read_bytes().startswith(b"this is not")  # never silently replaced


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    Journal(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value=? WHERE name='schema_version'", (str(SCHEMA_VERSION + 1),))
    db.commit()
    db.close()
    with pytest.raises(ResumeError, match="newer"):
        Journal(path)


def test_unwritable_directory(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        target = Path("/proc/bigupload-cannot-exist/journal.sqlite3")
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        target = locked / "sub" / "journal.sqlite3"
    with pytest.raises(ResumeError, match="cannot open journal"):
        Journal(target)


def test_claim_is_exclusive_per_destination_and_released(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    other = Journal(tmp_path / "j.sqlite3")
    with journal.claim("http://e", "b", "k"):
        with pytest.raises(ResumeError, match=rf"pid {os.getpid()}\)"):
            with other.claim("http://e", "b", "k"):
                pass
        with other.claim("http://e", "b", "other-key"):  # another destination is free
            pass
    with other.claim("http://e", "b", "k"):  # released on exit
        pass
    lock_dir = tmp_path / "j.sqlite3.locks"
    assert oct(lock_dir.stat().st_mode & 0o777) == "0o700"
    journal.close()
    other.close()


# The schema of version 2, as bigupload 0.1 wrote it (version 1 is the same without the
# jobs and job_files tables). Written out here, not taken from journal.py, so that the
# migration is tested against the files users actually have.
V2_UPLOADS = """
CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE uploads (
    id INTEGER PRIMARY KEY, state TEXT NOT NULL, source_path TEXT NOT NULL,
    size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, inode INTEGER NOT NULL,
    device INTEGER NOT NULL, sample_hash TEXT NOT NULL, endpoint TEXT NOT NULL,
    bucket TEXT NOT NULL, key TEXT NOT NULL, upload_id TEXT, part_size INTEGER NOT NULL,
    part_count INTEGER NOT NULL, checksum_algorithm TEXT NOT NULL, sse_c_key_hash TEXT,
    created_at REAL NOT NULL, updated_at REAL NOT NULL, etag TEXT, error TEXT
);
CREATE INDEX uploads_destination ON uploads (source_path, endpoint, bucket, key, state);
CREATE TABLE parts (
    upload INTEGER NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    number INTEGER NOT NULL, size INTEGER NOT NULL, etag TEXT NOT NULL,
    checksum TEXT NOT NULL, PRIMARY KEY (upload, number)
) WITHOUT ROWID;
"""
V2_JOBS = """
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY, state TEXT NOT NULL, description TEXT NOT NULL,
    spec TEXT NOT NULL, spec_hash TEXT NOT NULL, created_at REAL NOT NULL,
    updated_at REAL NOT NULL, error TEXT
);
CREATE INDEX jobs_spec ON jobs (spec_hash, state);
CREATE TABLE job_files (
    job INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE, seq INTEGER NOT NULL,
    source TEXT NOT NULL, bucket TEXT NOT NULL, key TEXT NOT NULL, size INTEGER NOT NULL,
    settings TEXT, state TEXT NOT NULL, etag TEXT, error TEXT, exit_code INTEGER,
    PRIMARY KEY (job, seq)
) WITHOUT ROWID;
CREATE INDEX job_files_state ON job_files (job, state, seq);
"""


def old_journal(path: Path, version: int) -> Path:
    """A journal as bigupload wrote it at ``version``, with one active upload (two parts
    acknowledged) and, from version 2, a job with one file."""
    db = sqlite3.connect(path)
    db.executescript(V2_UPLOADS + (V2_JOBS if version >= 2 else ""))
    db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(version),))
    db.execute("INSERT INTO uploads VALUES (7, 'active', '/data/x.bin', 100, 1, 2, 3, 'abc', "
               "'http://e', 'b', 'k', 'U1', 5242880, 20, 'crc32c', NULL, 1000.0, 1001.0, NULL, NULL)")
    db.execute("INSERT INTO parts VALUES (7, 1, 10, '\"e1\"', 'c1'), (7, 2, 10, '\"e2\"', 'c2')")
    if version >= 2:
        db.execute("INSERT INTO jobs VALUES (3, 'partial', 'd', '{}', 'h', 1000.0, 1001.0, NULL)")
        db.execute("INSERT INTO job_files VALUES (3, 0, '/s', 'b', 'j', 1, NULL, 'failed', NULL, 'no', 3)")
    db.commit()
    db.close()
    return path


@pytest.mark.parametrize("version", [1, 2])
def test_old_journal_is_migrated_and_reads_back(tmp_path: Path, version: int) -> None:
    """An upload journalled before schema 3 reads back as it was, resuming with the
    checksum type it began with (COMPOSITE) and no recorded destination state; jobs are
    kept (v2) or become possible (v1)."""
    path = old_journal(tmp_path / "journal.sqlite3", version)
    with Journal(path) as j:
        rec = j.find_active("/data/x.bin", "http://e", "b", "k")
        assert rec is not None and rec.id == 7 and rec.upload_id == "U1" and rec.fingerprint == FP
        assert (rec.part_size, rec.part_count, rec.checksum_algorithm) == (5 << 20, 20, "crc32c")
        assert (rec.created_at, rec.updated_at, rec.etag, rec.error) == (1000.0, 1001.0, None, None)
        assert rec.checksum_type == "COMPOSITE"
        assert rec.guard == DestinationGuard.unknown() and not rec.guard.known
        assert sorted(j.parts(7)) == [1, 2] and j.parts(7)[2].etag == '"e2"'
        if version >= 2:
            job = j.job(3)
            assert job is not None and job.state is JobState.PARTIAL
            (failed,) = j.job_files(3, (FileState.FAILED,))
            assert (failed.key, failed.error, failed.exit_code) == ("j", "no", 3)
        else:
            assert j.jobs() == []
        # the new columns are writable on the migrated row
        j.set_guard(7, DestinationGuard.present('"old"'))
        assert j.get(7).guard.etag == '"old"'
    db = sqlite3.connect(path)
    assert db.execute("SELECT value FROM meta WHERE name='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    db.close()


def test_version_3_journal_is_migrated_to_copy_sources(tmp_path: Path) -> None:
    """A journal as version 3 wrote it (with checksum types and guards) gains the
    copy_source column: its rows are file uploads (no copy source) with what they had,
    and a copy's row written afterwards reads back with its source."""
    path = old_journal(tmp_path / "journal.sqlite3", 2)
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE uploads ADD COLUMN checksum_type TEXT NOT NULL DEFAULT 'COMPOSITE'")
    db.execute("ALTER TABLE uploads ADD COLUMN guard TEXT")
    db.execute("UPDATE uploads SET checksum_type='FULL_OBJECT', guard='' WHERE id=7")
    db.execute("UPDATE meta SET value='3' WHERE name='schema_version'")
    db.commit()
    db.close()
    source = CopySource("src", "a/b", 12 << 20, '"e-2"',
                        datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
                        version_id="v1")
    with Journal(path) as j:
        rec = j.get(7)
        assert rec.copy_source is None and rec.fingerprint == FP
        assert rec.checksum_type == "FULL_OBJECT" and rec.guard == DestinationGuard.absent()
        row = j.start_upload(source.fingerprint(), "http://e", "dst", "k", 5 << 20, 3, "crc32c",
                             None, copy_source=source)
        copy = j.find_active("s3://src/a/b", "http://e", "dst", "k")
        assert copy is not None and copy.id == row and copy.copy_source == source
        assert copy.fingerprint.size == 12 << 20 and copy.fingerprint.sample_hash == '"e-2"'
    db = sqlite3.connect(path)
    assert db.execute("SELECT value FROM meta WHERE name='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    db.close()


def test_a_job_never_has_two_files_for_one_key(tmp_path: Path) -> None:
    """The unique index job_files_key: a new job whose list sends two files to one key is
    refused whole (no job row is left behind), and adding a walk's entries again with
    ``new_only`` adds only the keys the job does not have."""
    def f(seq: int, source: str, key: str) -> JobFile:
        return JobFile(seq, source, "b", key, seq + 1, None)

    with Journal(tmp_path / "j.sqlite3") as j:
        with pytest.raises(ConfigError, match="two files would be uploaded to s3://b/k"):
            j.start_job("d", "{}", "h", iter([f(0, "/s/a", "k"), f(1, "/s/b", "k")]))
        assert j.jobs() == []
        job = j.start_job("d", "{}", "h", iter([f(0, "/s/a", "a"), f(1, "/s/b", "b")]))
        assert j.add_job_files(job, iter([f(2, "/s/b", "b"), f(3, "/s/c", "c")]),
                               new_only=True) == 1
        assert j.job_keys(job) == {("b", "a"), ("b", "b"), ("b", "c")}
        assert j.job_has_file(job, "b", "c") and not j.job_has_file(job, "b", "d")
        assert j.job_totals(job) == JobTotals(files=3, bytes=1 + 2 + 4, done_files=0,
                                              done_bytes=0, failed_files=0)


def test_version_4_journal_gains_the_job_indexes(tmp_path: Path) -> None:
    """Schema 5: a version-4 journal gets job_files_key and the covering job_files_state
    (with the size), its job's files kept as they were."""
    path = old_journal(tmp_path / "journal.sqlite3", 2)
    with Journal(path):
        pass  # brought to the current version; now take it back to version 4's indexes
    db = sqlite3.connect(path)
    db.execute("DROP INDEX job_files_key")
    db.execute("DROP INDEX job_files_state")
    db.execute("CREATE INDEX job_files_state ON job_files (job, state, seq)")
    db.execute("UPDATE meta SET value='4' WHERE name='schema_version'")
    db.commit()
    db.close()
    with Journal(path) as j:
        (failed,) = j.job_files(3, (FileState.FAILED,))
        assert failed.key == "j" and j.job_totals(3).failed_files == 1
    db = sqlite3.connect(path)
    columns = {name: [r[2] for r in db.execute(f"PRAGMA index_info({name})")]
               for name in ("job_files_key", "job_files_state")}
    assert columns == {"job_files_key": ["bucket", "key", "job"],
                       "job_files_state": ["job", "state", "seq", "size"]}
    assert db.execute("SELECT value FROM meta WHERE name='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    db.close()


def test_version_4_journal_is_migrated_to_content_md5(tmp_path: Path) -> None:
    """A journal as version 4 wrote it gains uploads.content_md5: its rows were sent
    without Content-MD5 and resume so; a row started with it reads back with it."""
    path = old_journal(tmp_path / "journal.sqlite3", 2)
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE uploads ADD COLUMN checksum_type TEXT NOT NULL DEFAULT 'COMPOSITE'")
    db.execute("ALTER TABLE uploads ADD COLUMN guard TEXT")
    db.execute("ALTER TABLE uploads ADD COLUMN copy_source TEXT")
    db.execute("UPDATE meta SET value='4' WHERE name='schema_version'")
    db.commit()
    db.close()
    with Journal(path) as j:
        assert j.get(7).content_md5 is False and j.get(7).fingerprint == FP
        row = j.start_upload(FP, "http://e", "b", "k2", 5 << 20, 20, "crc32c", None,
                             content_md5=True)
    with Journal(path) as j:
        assert j.get(row).content_md5 is True
    db = sqlite3.connect(path)
    assert db.execute("SELECT value FROM meta WHERE name='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    db.close()


def test_migration_is_one_transaction(tmp_path: Path) -> None:
    """A migration that fails at its last step leaves the version-2 journal as it was:
    no new column half-added, the version unchanged."""
    path = old_journal(tmp_path / "journal.sqlite3", 2)
    db = sqlite3.connect(path)
    db.execute("CREATE TRIGGER refuse BEFORE UPDATE ON meta BEGIN SELECT RAISE(ABORT, 'refused'); END")
    db.commit()
    db.close()
    with pytest.raises(JournalError, match="refused"):
        Journal(path)
    db = sqlite3.connect(path)
    columns = {r[1] for r in db.execute("PRAGMA table_info(uploads)")}
    assert "checksum_type" not in columns and "guard" not in columns
    assert "copy_source" not in columns and "content_md5" not in columns
    assert db.execute("SELECT value FROM meta WHERE name='schema_version'").fetchone()[0] == "2"
    db.close()


@pytest.mark.parametrize("guard", [DestinationGuard.unknown(), DestinationGuard.absent(),
                                   DestinationGuard.present('"9b2cf535f27731c974343645a3985328"'),
                                   DestinationGuard.present('"abc-3"')])
def test_guard_round_trip(tmp_path: Path, guard: DestinationGuard) -> None:
    """Each state of the destination comes back as it went in, through start_upload,
    set_guard and a reopened file."""
    path = tmp_path / "j.sqlite3"
    with Journal(path) as j:
        first = j.start_upload(FP, "http://e", "b", "k", 5 << 20, 20, "crc32c", None,
                               checksum_type="FULL_OBJECT", guard=guard)
        second = j.start_upload(FP, "http://e", "b", "k2", 5 << 20, 20, "sha256", None)
        j.set_guard(second, guard)
    with Journal(path) as j:
        assert j.get(first).guard == guard and j.get(second).guard == guard
        assert j.get(first).checksum_type == "FULL_OBJECT"
        assert j.get(second).checksum_type == "COMPOSITE"  # the default: what callers sent before
    assert DestinationGuard.from_column(guard.to_column()) == guard


def test_guard_column_values(tmp_path: Path) -> None:
    """NULL is unknown, '' is absent, anything else is the ETag: what another reader of
    the file (or an older row) sees."""
    path = tmp_path / "j.sqlite3"
    with Journal(path) as j:
        rows = [j.start_upload(FP, "http://e", "b", f"k{n}", 5 << 20, 20, "crc32c", None, guard=g)
                for n, g in enumerate([DestinationGuard.unknown(), DestinationGuard.absent(),
                                       DestinationGuard.present('"e"')])]
    db = sqlite3.connect(path)
    assert [db.execute("SELECT guard FROM uploads WHERE id=?", (r,)).fetchone()[0] for r in rows] == \
        [None, "", '"e"']
    db.close()


@pytest.mark.parametrize("existed,etag", [(True, None), (True, ""), (False, '"e"'), (None, '"e"')])
def test_guard_refuses_contradictions(existed: bool | None, etag: str | None) -> None:
    with pytest.raises(ValueError):
        DestinationGuard(existed, etag)


def test_bad_checksum_type_is_refused(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite3") as j, pytest.raises(ValueError, match="checksum type"):
        j.start_upload(FP, "http://e", "b", "k", 5 << 20, 20, "crc32c", None, checksum_type="FULL")


@pytest.mark.parametrize("state", [UploadState.FAILED, UploadState.SUPERSEDED, UploadState.ABORTED])
def test_closed_states_keep_their_reason_and_are_not_resumable(tmp_path: Path, state: UploadState) -> None:
    path = tmp_path / "j.sqlite3"
    with Journal(path) as j:
        row = j.start_upload(FP, "http://e", "b", "k", 5 << 20, 20, "crc32c", None)
        j.record_part(row, PartRecord(1, 10, '"e1"', "c1"))
        j.finish(row, state, error="the destination changed since the upload began")
    with Journal(path) as j:
        assert j.find_active("/data/x.bin", "http://e", "b", "k") is None
        assert j.uploads(UploadState.ACTIVE) == []
        rec = j.get(row)
        assert rec.state is state and rec.error == "the destination changed since the upload began"
        assert j.parts(row) == {}
        with pytest.raises(ValueError, match="ACTIVE"):
            j.finish(row, UploadState.ACTIVE)


def test_forget_filters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Filters combine with AND; no filter forgets nothing; parts and job files go with
    their rows; upload rows of a forgotten job stay."""
    clock = [1_000_000.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])  # the journal stamps rows with it
    with Journal(tmp_path / "j.sqlite3") as j:
        rows = {}
        for state in UploadState:
            rows[state] = j.start_upload(FP, "http://e", "b", state.value, 5 << 20, 20, "crc32c", None)
            j.record_part(rows[state], PartRecord(1, 10, '"e1"', "c1"))
            if state is not UploadState.ACTIVE:
                j.finish(rows[state], state, error="why")
        clock[0] += 3600  # the rows above are an hour old; the next ones new
        fresh = j.start_upload(FP, "http://e", "b", "fresh", 5 << 20, 20, "crc32c", None)
        j.finish(fresh, UploadState.COMPLETED, etag='"x"')
        jobs = {}
        for state in JobState:
            jobs[state] = j.start_job(state.value, "{}", state.value)
            j.add_job_files(jobs[state], [JobFile(0, "/s", "b", state.value, 1, None)])
            j.set_job_state(jobs[state], state)

        def left() -> set[int]:
            return {r.id for r in j.uploads()}

        assert j.forget_uploads() == 0 and j.forget_jobs() == 0
        assert j.forget_uploads(states=[UploadState.COMPLETED], older_than=1800) == 1
        assert left() == set(rows.values()) - {rows[UploadState.COMPLETED]} | {fresh}
        assert j.forget_uploads(ids=[rows[UploadState.ACTIVE], fresh], states=[UploadState.FAILED]) == 0
        assert j.forget_uploads(ids=[]) == 0
        assert j.forget_uploads(states=[UploadState.FAILED, UploadState.SUPERSEDED]) == 2
        assert left() == {rows[UploadState.ACTIVE], rows[UploadState.ABORTED], fresh}
        assert j.forget_uploads(older_than=1800, states=[UploadState.ABORTED]) == 1
        assert j.forget_uploads(ids=[rows[UploadState.ACTIVE]]) == 1
        assert j.db.connection.execute("SELECT COUNT(*) FROM parts").fetchone()[0] == 0
        assert left() == {fresh}

        assert j.forget_jobs(states=[JobState.COMPLETED, JobState.PARTIAL], older_than=1) == 0
        clock[0] += 10
        assert j.forget_jobs(states=[JobState.COMPLETED, JobState.PARTIAL], older_than=1) == 2
        assert [job.id for job in j.jobs()] == [jobs[JobState.ACTIVE]]
        assert j.db.connection.execute("SELECT COUNT(*) FROM job_files").fetchone()[0] == 1
        assert j.forget_jobs(ids=[jobs[JobState.ACTIVE]]) == 1
        assert j.db.connection.execute("SELECT COUNT(*) FROM job_files").fetchone()[0] == 0
        assert left() == {fresh}  # upload rows are not a job's to take along


def test_journalled_uploads_reads_rows_by_name(tmp_path: Path) -> None:
    from bigupload.testing import journalled_uploads

    path = tmp_path / "j.sqlite3"
    assert journalled_uploads(path) == []
    with Journal(path) as j:
        row = j.start_upload(FP, "http://e", "b", "k", 5 << 20, 20, "crc32c", None,
                             guard=DestinationGuard.absent())
        j.finish(row, UploadState.SUPERSEDED, error="restarted")
        (seen,) = journalled_uploads(path)  # while the writer holds it open
    assert (seen.id, seen.state, seen.error, seen.guard, seen.checksum_type) == \
        (row, UploadState.SUPERSEDED, "restarted", DestinationGuard.absent(), "COMPOSITE")


def test_a_failed_commit_is_a_journal_error(tmp_path: Path) -> None:
    """A transaction whose commit fails (here: a deferred foreign-key check, the way a
    full disk or an I/O error fails a commit) is a JournalError saying what is safe, not
    sqlite3's own exception, and leaves nothing half-written."""
    with Journal(tmp_path / "j.sqlite3") as j:
        j.db.connection.execute("PRAGMA defer_foreign_keys=ON")
        with pytest.raises(JournalError, match="FOREIGN KEY.*nothing was sent"):
            j.add_job_files(99, [JobFile(0, "/s", "b", "k", 1, None)])  # no job 99
        assert j.db.connection.execute("SELECT COUNT(*) FROM job_files").fetchone()[0] == 0


def test_view_reads_what_the_writer_holds_while_it_writes(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    with Journal(path) as j:
        active = j.start_upload(FP, "http://e", "b", "k", 5 << 20, 20, "crc32c", None)
        j.record_part(active, PartRecord(1, 10, '"e1"', "c1"))
        j.record_part(active, PartRecord(2, 7, '"e2"', "c2"))
        closed = j.start_upload(FP, "http://e", "b", "k2", 5 << 20, 20, "crc32c", None)
        j.finish(closed, UploadState.COMPLETED, etag='"x"')
        job = j.start_job("d", "{}", "h")
        files = [JobFile(0, "/s", "b", "j0", 1, None), JobFile(1, "/t", "b", "j1", 2, None)]
        j.add_job_files(job, files)
        j.set_file_states(job, [files[0].settled(FileState.DONE, etag='"f"')])
        with JournalView(path) as view:  # the writer still holds the file open
            assert [u.id for u in view.uploads()] == [active, closed]
            (unfinished,) = view.unfinished()
            assert unfinished.record == j.get(active)
            assert unfinished.parts == PartTotals(parts=2, bytes=17)
            assert view.parts(active) == j.parts(active)
            assert view.parts_recorded() == 2
            assert view.jobs() == j.jobs() and view.job(job) == j.job(job)
            assert view.job_totals(job) == JobTotals(files=2, bytes=3, done_files=1,
                                                     done_bytes=1, failed_files=0)
            assert view.files_in_state(FileState.DONE) == 1
            assert [f.key for f in view.job_files(job, (FileState.PENDING,))] == ["j1"]
            assert view.in_job("/t", "b", "j1") and not view.in_job("/s", "b", "j0")
            with pytest.raises(sqlite3.OperationalError, match="readonly"):
                view._db.connection.execute("DELETE FROM parts")  # the file is opened read-only
        assert len(j.parts(active)) == 2


def test_view_never_creates_or_migrates(tmp_path: Path) -> None:
    """A missing journal stays missing, an older one stays as it was: only a writer
    creates or migrates."""
    missing = tmp_path / "state" / "journal.sqlite3"
    with pytest.raises(JournalError, match="cannot open journal"):
        JournalView(missing)
    assert not missing.parent.exists()
    old = old_journal(tmp_path / "old.sqlite3", 2)
    before = old.read_bytes()
    with pytest.raises(JournalError, match="schema version 2"):
        JournalView(old)
    assert old.read_bytes() == before
    foreign = tmp_path / "photos.sqlite3"
    db = sqlite3.connect(foreign)
    db.execute("CREATE TABLE photos (id INTEGER)")
    db.commit()
    db.close()
    with pytest.raises(JournalError, match="no bigupload schema"):
        JournalView(foreign)


def test_version_1_journal_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    with Journal(path):
        pass
    db = sqlite3.connect(path)  # make it look like a version-1 journal
    db.execute("DROP TABLE job_files")
    db.execute("DROP TABLE jobs")
    db.execute("UPDATE meta SET value='1' WHERE name='schema_version'")
    db.commit()
    db.close()
    with Journal(path) as j:
        job = j.start_job("d", "{}", "h")
        j.add_job_files(job, [JobFile(0, "/s", "b", "k", 1, None)])
        assert j.job_files(job, (FileState.PENDING,))[0].key == "k"
    db = sqlite3.connect(path)
    assert db.execute("SELECT value FROM meta WHERE name='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    db.close()


def test_a_copy_source_is_the_same_object_only_if_nothing_changed() -> None:
    """A copy's source is compared on its version, size, ETag and LastModified; its JSON
    column reads back as the same value (a naive LastModified is UTC)."""
    when = datetime.datetime(2026, 1, 2, 3, 4, 5, 600000, tzinfo=datetime.timezone.utc)
    source = CopySource("b", "k", 10, '"abc"', when)
    assert source.differences(CopySource("b", "k", 10, '"abc"', when.replace(tzinfo=None))) == []
    assert source.differences(CopySource("b", "k", 11, '"abd"', when, "v2")) == [
        "version None -> v2", "size 10 -> 11 bytes", 'ETag "abc" -> "abd"']
    later = CopySource("b", "k", 10, '"abc"', when + datetime.timedelta(seconds=1))
    assert source.differences(later) == ["modification time"]
    assert CopySource.from_column(source.to_column()) == source
    assert CopySource.from_column(CopySource("b", "k", 0, '"e"').to_column()).last_modified is None
    assert source.fingerprint() == Fingerprint("s3://b/k", 10, 1767323045_600000000, 0, 0, '"abc"')


def test_a_source_path_that_is_not_utf8_is_journalled_exactly(tmp_path: Path) -> None:
    """A file (or a directory above it) named with byte 0xff: its upload row used to be an
    internal error (SQLite text cannot hold Python's surrogate escapes). The path is kept
    as its bytes, found again by the same path, and read back exactly; a file literally
    named with the escaped form is another file."""
    odd = os.fsdecode(b"/data/\xffdir/x.bin")
    escaped = "/data/\\udcffdir/x.bin"
    fp = Fingerprint(odd, 100, 1, 2, 3, "abc")
    with Journal(tmp_path / "j.db") as j:
        row = j.start_upload(fp, "http://e", "b", "k", 5 << 20, 20, "crc32c", None)
        found = j.find_active(odd, "http://e", "b", "k")
        assert found is not None and found.id == row and found.fingerprint == fp
        assert j.find_active(escaped, "http://e", "b", "k") is None
        assert not j.in_job(odd, "b", "k")
        (record,) = j.uploads(UploadState.ACTIVE)
        assert os.fsencode(record.fingerprint.path) == b"/data/\xffdir/x.bin"


def test_a_forgotten_job_id_is_never_handed_out_again(tmp_path: Path) -> None:
    """SQLite reuses the highest rowid once it is deleted: ``forget job 2`` then a new job
    made another job 2, and ``resume 2`` or a note saying "job 2" meant another one. Ids
    only grow, across reopening too."""
    path = tmp_path / "j.db"
    with Journal(path) as j:
        first = j.start_job("a", "{}", "h1")
        second = j.start_job("b", "{}", "h2")
        assert j.forget_jobs(ids=(second,)) == 1
        third = j.start_job("c", "{}", "h3")
        assert third > second > first
        assert j.forget_jobs(ids=(first, third)) == 2
    with Journal(path) as j:
        fourth = j.start_job("d", "{}", "h4")
        assert fourth > third
        assert [job.id for job in j.jobs()] == [fourth]
