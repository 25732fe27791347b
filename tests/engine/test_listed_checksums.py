"""Resume and the check before completion when the server lists part checksums, as S3
does (SeaweedFS and moto list none, so only the fake store covers this end to end).

A listed checksum that matches the journal lets a journalled part be kept without
reading the file; one that matches the local bytes lets a part the journal does not
confirm be kept even when its ETag is not an MD5 (SSE-KMS, SSE-C); one that differs
from the local bytes gets the part sent again, whatever its ETag says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bigupload import ChecksumAlgorithm
from bigupload.journal import Journal
from bigupload.upload.listing import FilePartsListing
from tests.engine.test_transfer import (
    BUCKET,
    KEY,
    MiB,
    config,
    interrupted_upload,
    run,
    stored,
    upload,
)
from tests.fakestore import FakeStore

ALGORITHMS = [ChecksumAlgorithm.CRC32C, ChecksumAlgorithm.CRC64NVME, ChecksumAlgorithm.SHA256]


@pytest.fixture
def verified(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Part numbers the transfer re-read from the file to verify a listed part."""
    numbers: list[int] = []
    original = FilePartsListing.verify_listed_part

    async def spy(self: Any, part: Any, candidates: Any) -> Any:
        numbers.append(part.number)
        return await original(self, part, candidates)

    monkeypatch.setattr(FilePartsListing, "verify_listed_part", spy)
    return numbers


def interrupted(path: Path, store: FakeStore, journal: Path, algorithm: ChecksumAlgorithm) -> str:
    """Upload parts 1 and 2 of 4, then stop as Ctrl-C would; the upload id. (The delay
    gives part 3 a checkpoint before it is stored, where the cancellation lands.)"""
    store.part_delay_s = 0.001
    assert interrupted_upload(path, store, journal, config(concurrency=1, checksum=algorithm),
                              lambda op, ctx: op == "upload_part" and ctx["number"] == 3)
    assert sorted(store.sent_parts) == [1, 2]
    store.part_delay_s = 0
    return next(iter(store.uploads))


def forget_part(journal: Path, number: int) -> None:
    """As if killed between UploadPart's answer and the journal write."""
    with Journal(journal) as j:
        j.drop_part(j.uploads()[0].id, number)


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=lambda a: a.value)
def test_journalled_parts_with_matching_listed_checksums_are_kept_unread(
        make_file: Any, tmp_path: Path, algorithm: ChecksumAlgorithm, verified: list[int]) -> None:
    path, store, journal = make_file(20 * MiB), FakeStore(), tmp_path / "j.db"
    interrupted(path, store, journal, algorithm)
    result = run(lambda: upload(path, store, journal, cfg=config(checksum=algorithm)))
    assert sorted(store.sent_parts) == [1, 2, 3, 4]  # 1 and 2 not sent again
    assert verified == []  # nor read again: the listed checksums confirm the journal
    assert result.resumed_parts == 2
    assert stored(store) == path.read_bytes()


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=lambda a: a.value)
def test_unjournalled_part_with_opaque_etag_is_kept_by_its_checksum(
        make_file: Any, tmp_path: Path, algorithm: ChecksumAlgorithm, verified: list[int]) -> None:
    """An SSE-KMS ETag is not the MD5 of the part: only the listed checksum can show that
    the part on the server is the file's, and it is kept rather than sent again."""
    path, store, journal = make_file(20 * MiB), FakeStore(), tmp_path / "j.db"
    upload_id = interrupted(path, store, journal, algorithm)
    forget_part(journal, 2)
    store.uploads[upload_id][2].etag = '"kms-opaque-etag-2"'
    result = run(lambda: upload(path, store, journal, cfg=config(checksum=algorithm)))
    assert 2 in verified
    assert sorted(store.sent_parts) == [1, 2, 3, 4]
    assert result.resumed_parts == 2
    assert stored(store) == path.read_bytes()


def test_without_listed_checksums_an_opaque_etag_is_sent_again(make_file: Any,
                                                               tmp_path: Path) -> None:
    """The same case against a server that lists no checksums (SeaweedFS, moto): the
    part cannot be confirmed, so it is sent again. What the listed checksum saves."""
    path, store, journal = make_file(20 * MiB), FakeStore(list_checksums=False), tmp_path / "j.db"
    upload_id = interrupted(path, store, journal, ChecksumAlgorithm.CRC32C)
    forget_part(journal, 2)
    store.uploads[upload_id][2].etag = '"kms-opaque-etag-2"'
    run(lambda: upload(path, store, journal))
    assert sorted(store.sent_parts) == [1, 2, 2, 3, 4]
    assert stored(store) == path.read_bytes()


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=lambda a: a.value)
@pytest.mark.parametrize("journalled", [True, False], ids=["journalled", "unjournalled"])
def test_part_whose_listed_checksum_differs_is_sent_again(
        make_file: Any, tmp_path: Path, algorithm: ChecksumAlgorithm, journalled: bool,
        verified: list[int]) -> None:
    """The server holds other bytes under the ETag the journal (or an opaque ETag) names:
    its listed checksum differs from the local bytes', and the part is sent again."""
    path, store, journal = make_file(20 * MiB), FakeStore(), tmp_path / "j.db"
    upload_id = interrupted(path, store, journal, algorithm)
    part = store.uploads[upload_id][2]
    part.data = b"\x00" * part.size  # same size, other bytes; the ETag is left as it was
    if not journalled:
        forget_part(journal, 2)
        part.etag = '"kms-opaque-etag-2"'
    result = run(lambda: upload(path, store, journal, cfg=config(checksum=algorithm)))
    assert 2 in verified
    assert sorted(store.sent_parts) == [1, 2, 2, 3, 4]
    assert result.resumed_parts == 1
    assert stored(store) == path.read_bytes()


def test_part_changed_on_the_server_before_completion_is_sent_again(
        make_file: Any, tmp_path: Path) -> None:
    """The listing before completion compares checksums too: a part whose bytes changed
    on the server after its answer (a stray writer keeping the ETag) is sent again
    instead of completing a wrong object."""
    path, store = make_file(20 * MiB), FakeStore()
    changed: list[int] = []

    def stray_writer(op: str, ctx: dict[str, Any]) -> None:
        if op == "list_parts_page" and not changed:
            part = store.uploads[ctx["upload_id"]][3]
            part.data = b"\x01" * part.size
            changed.append(3)

    store.faults.append(stray_writer)
    run(lambda: upload(path, store, tmp_path / "j.db"))
    assert changed == [3]
    assert sorted(store.sent_parts[:4]) == [1, 2, 3, 4] and store.sent_parts[4:] == [3]
    assert stored(store) == path.read_bytes()
    assert (BUCKET, KEY) in store.objects
