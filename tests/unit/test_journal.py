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
    path = tmp_path / "state" / "journal.sqlite3"
    Journal(path).close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700


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
