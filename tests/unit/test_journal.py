from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest

from bigupload.errors import ResumeError
from bigupload.journal import SCHEMA_VERSION, Journal, PartRecord, UploadState
from bigupload.source import Fingerprint

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
        assert j.part_totals(rec.id) == (2, 20)
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
        pages = j._db.execute("PRAGMA page_count").fetchone()[0]
        j._db.execute(f"PRAGMA max_page_count={pages}")
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
