"""Defects of the outside review (issue 13, transfer items) and the guarded completion
(issue 14), against the in-memory FakeStore, which honours conditional writes like S3
(or answers 501 like a server without them) and checks FULL_OBJECT checksums."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from bigupload import ChecksumAlgorithm, Uploader
from bigupload.client import ObjectOptions
from bigupload.errors import DestinationChangedError, ResumeError, SourceError, StoreError
from bigupload.journal import DestinationGuard, Journal, UploadState
from tests.engine.test_transfer import BUCKET, KEY, config, interrupted_upload, run, stored, upload
from tests.fakestore import FakeStore

MiB = 1 << 20


def states(journal: Path) -> list[UploadState]:
    with Journal(journal) as j:
        return [u.state for u in j.uploads()]


def interrupt_before_complete(path: Path, store: FakeStore, journal: Path, **kwargs: Any) -> None:
    """Every part sent and journalled, then the run stops at CompleteMultipartUpload (a
    transient failure, given up at once): the row stays active, the upload on the server."""
    def fail(op: str, ctx: dict[str, Any]) -> None:
        if op == "complete":
            raise StoreError("InternalError", code="InternalError", retryable=True)

    store.faults.append(fail)
    try:
        with pytest.raises(StoreError):
            run(lambda: upload(path, store, journal, cfg=config(max_attempts=1, **kwargs)))
    finally:
        store.faults.remove(fail)


def test_a_journalled_upload_is_resumed_even_when_the_file_now_fits_one_put(
        make_file: Any, tmp_path: Path) -> None:
    """Item 10: interrupted with 5 MiB parts, re-run with defaults (one PUT for 20 MiB):
    the journalled multipart upload is finished, not left billed beside a PutObject."""
    path = make_file(20 * MiB)
    store, journal = FakeStore(), tmp_path / "j.db"
    assert interrupted_upload(path, store, journal, config(),
                              lambda op, ctx: op == "upload_part" and ctx["number"] == 3)

    async def again() -> Any:
        async with Uploader(config(part_size=None), store=store, journal=journal) as up:
            return await up.upload_file(path, BUCKET, KEY)

    result = run(again)
    assert store.calls["put_object"] == 0 and result.parts == 4
    assert stored(store) == path.read_bytes() and not store.uploads
    assert states(journal) == [UploadState.COMPLETED]


def test_a_vanished_upload_is_not_taken_for_a_same_size_object(
        make_file: Any, tmp_path: Path) -> None:
    """Item 6: every part journalled, the upload gone, and another object of the same size
    at the key (with no checksum reported): its ETag is not ours, so it is refused."""
    path = make_file(11 * MiB)
    store, journal = FakeStore(), tmp_path / "j.db"
    interrupt_before_complete(path, store, journal)
    store.uploads.clear()
    other = os.urandom(11 * MiB)
    store.objects[(BUCKET, KEY)] = (other, '"0123456789abcdef0123456789abcdef"', None)
    store.sizes[(BUCKET, KEY)] = len(other)
    with pytest.raises(ResumeError, match="not this file"):
        run(lambda: upload(path, store, journal))
    assert store.objects[(BUCKET, KEY)][0] == other
    assert states(journal) == [UploadState.ABORTED]


def test_a_vanished_upload_that_was_completed_is_accepted(make_file: Any, tmp_path: Path) -> None:
    """The other side of item 6: our own completed object (its answer lost) is accepted."""
    path = make_file(11 * MiB)
    store, journal = FakeStore(), tmp_path / "j.db"
    interrupt_before_complete(path, store, journal)
    (upload_id,) = store.uploads
    parts = [p for _, p in sorted(store.uploads[upload_id].items())]
    from bigupload.client import CompletedPart

    run(lambda: store.complete(BUCKET, KEY, upload_id,
                               [CompletedPart(n + 1, p.etag, p.checksum)
                                for n, p in enumerate(parts)],
                               ObjectOptions()))
    result = run(lambda: upload(path, store, journal))
    assert result.resumed_parts == 3 and result.verified
    assert states(journal) == [UploadState.COMPLETED]


def test_single_put_of_a_file_changed_in_flight_is_a_source_error(
        make_file: Any, tmp_path: Path) -> None:
    """Item 8: a BadDigest on a single PUT re-reads the file instead of retrying with the
    stale checksum, and a file changed while it was sent is reported."""
    path = make_file(1 * MiB)
    store = FakeStore()
    changed = {"done": False}

    def change(op: str, ctx: dict[str, Any]) -> None:
        if op == "put_object" and not changed["done"]:
            changed["done"] = True
            with open(path, "r+b") as f:
                f.write(b"changed!")

    store.faults.append(change)
    with pytest.raises(SourceError, match="changed"):
        run(lambda: upload(path, store, tmp_path / "j.db"))
    assert store.calls["put_object"] == 1  # the retry found the change before sending


def test_a_file_changed_right_after_its_single_put_is_reported(
        make_file: Any, tmp_path: Path) -> None:
    path = make_file(1 * MiB)
    store = FakeStore()
    original = store.put_object

    async def put_then_change(*args: Any, **kwargs: Any) -> Any:
        receipt = await original(*args, **kwargs)
        with open(path, "r+b") as f:
            f.write(b"changed!")
        return receipt

    store.put_object = put_then_change  # type: ignore[method-assign]
    with pytest.raises(SourceError, match="changed while it was being uploaded"):
        run(lambda: upload(path, store, tmp_path / "j.db"))


def test_a_last_resend_that_fixed_the_parts_completes(make_file: Any, tmp_path: Path) -> None:
    """Item 9: the listing after the last round of re-sending decides."""
    path = make_file(11 * MiB)
    store = FakeStore()
    wrong = {"left": 3}

    def misreport(op: str, ctx: dict[str, Any]) -> None:
        if op != "list_parts_page":
            return
        parts = store.uploads.get(ctx["upload_id"], {})
        if wrong["left"] and 2 in parts:
            wrong["left"] -= 1
            store.uploads[ctx["upload_id"]][2].size = 1  # listed with a wrong size: sent again

    store.faults.append(misreport)
    result = run(lambda: upload(path, store, tmp_path / "j.db"))
    assert wrong["left"] == 0 and stored(store) == path.read_bytes() and result.parts == 3


def test_adopting_another_upload_aborts_the_journalled_one(make_file: Any, tmp_path: Path) -> None:
    """Item 11: --upload-id without --restart used to close the journalled upload in the
    journal only, leaving it billed on the server."""
    path = make_file(11 * MiB)
    store, journal = FakeStore(), tmp_path / "j.db"
    interrupt_before_complete(path, store, journal)
    (first,) = store.uploads
    other = run(lambda: store.create_multipart(BUCKET, KEY, ObjectOptions()))
    run(lambda: upload(path, store, journal, upload_id=other))
    assert first not in store.uploads and not store.uploads
    assert stored(store) == path.read_bytes()
    assert states(journal) == [UploadState.SUPERSEDED, UploadState.COMPLETED]


def test_the_orphan_sweep_never_takes_another_rows_upload(make_file: Any, tmp_path: Path) -> None:
    """Item 12: a run killed during its Create is resumed; the sweep may adopt or abort
    only uploads no journal row knows, never the journalled upload of another file."""
    a, b = make_file(11 * MiB, "a.bin", seed=1), make_file(11 * MiB, "b.bin", seed=2)
    store, journal = FakeStore(), tmp_path / "j.db"
    interrupt_before_complete(a, store, journal)
    (of_a,) = store.uploads
    with Journal(journal) as j:  # b's run died after sending Create, before journalling its id
        from bigupload.source import SourceFile

        with SourceFile(str(b)) as source:
            fingerprint = source.fingerprint()
        j.start_upload(fingerprint, store.endpoint, BUCKET, KEY, 5 * MiB, 3, "crc32c", None,
                       checksum_type="FULL_OBJECT", guard=DestinationGuard.absent())
    lost = run(lambda: store.create_multipart(BUCKET, KEY, ObjectOptions()))
    result = run(lambda: upload(b, store, journal))
    assert result.upload_id == lost
    assert of_a in store.uploads  # a's upload is untouched, still resumable


def test_a_create_that_never_reached_the_server_leaves_nothing_to_resume(
        make_file: Any, tmp_path: Path) -> None:
    """Item 15 and issue 14: connection refused at Create closes the row as failed; the
    next run neither sweeps nor lists anything before its real work."""
    path = make_file(11 * MiB)
    store, journal = FakeStore(), tmp_path / "j.db"

    def refuse(op: str, ctx: dict[str, Any]) -> None:
        if op == "create":
            raise StoreError("cannot connect", code="ConnectionError", retryable=True)

    store.faults.append(refuse)
    with pytest.raises(StoreError):
        run(lambda: upload(path, store, journal, cfg=config(max_attempts=2)))
    assert states(journal) == [UploadState.FAILED]
    store.faults.clear()
    run(lambda: upload(path, store, journal))
    assert store.calls["list_uploads"] == 0 and stored(store) == path.read_bytes()


def test_an_adopted_upload_keeps_its_own_checksum_algorithm(make_file: Any, tmp_path: Path) -> None:
    """Item 16: an upload another tool created with CRC32 is adopted with CRC32."""
    path = make_file(11 * MiB)
    store = FakeStore()
    other = run(lambda: store.create_multipart(
        BUCKET, KEY, ObjectOptions(checksum=ChecksumAlgorithm.CRC32, checksum_type="COMPOSITE")))
    result = run(lambda: upload(path, store, tmp_path / "j.db", upload_id=other))
    assert result.checksum_algorithm == "crc32" and stored(store) == path.read_bytes()
    assert any("crc32" in n for n in result.notices)


def test_changed_settings_on_resume_are_said(make_file: Any, tmp_path: Path) -> None:
    """Item 17: a resume keeps the journal's checksum and part size, and says so."""
    path = make_file(21 * MiB)
    store, journal = FakeStore(), tmp_path / "j.db"
    interrupt_before_complete(path, store, journal)
    result = run(lambda: upload(path, store, journal, cfg=config(
        checksum=ChecksumAlgorithm.CRC32, part_size=6 * MiB)))
    assert result.checksum_algorithm == "crc32c" and result.part_size == 5 * MiB
    assert len(result.notices) == 2
    assert "checksum crc32c" in result.notices[0] and "5.0 MiB" in result.notices[1]


def test_resume_refuses_to_overwrite_a_key_written_meanwhile(
        make_file: Any, tmp_path: Path) -> None:
    path = make_file(11 * MiB)
    store, journal = FakeStore(), tmp_path / "j.db"
    interrupt_before_complete(path, store, journal)
    run(lambda: store.put_object(BUCKET, KEY, b"newer", None, ObjectOptions()))
    with pytest.raises(DestinationChangedError, match="changed since this upload began"):
        run(lambda: upload(path, store, journal))
    assert stored(store) == b"newer" and not store.uploads
    assert states(journal) == [UploadState.SUPERSEDED]


@pytest.mark.parametrize("written_meanwhile", [False, True])
def test_servers_without_conditional_writes_fall_back_to_a_head(
        make_file: Any, tmp_path: Path, written_meanwhile: bool) -> None:
    path = make_file(11 * MiB)
    store, journal = FakeStore(conditional_writes=False), tmp_path / "j.db"
    store.endpoint = f"fake://no-conditions-{written_meanwhile}"
    interrupt_before_complete(path, store, journal)
    if written_meanwhile:
        run(lambda: store.put_object(BUCKET, KEY, b"newer", None, ObjectOptions()))
        with pytest.raises(DestinationChangedError):
            run(lambda: upload(path, store, journal))
        assert stored(store) == b"newer" and not store.uploads
    else:
        run(lambda: upload(path, store, journal))
        assert stored(store) == path.read_bytes()
    assert store.calls["refused_condition"] == 1  # once per endpoint, then HEAD only


def test_full_object_checksum_is_sent_and_checked(make_file: Any, tmp_path: Path) -> None:
    path = make_file(11 * MiB)
    store = FakeStore()
    result = run(lambda: upload(path, store, tmp_path / "j.db"))
    assert result.checksum_type == "FULL_OBJECT"
    assert store.objects[(BUCKET, KEY)][2] == result.full_object_checksum


def test_checksum_none_is_reported_unverified(make_file: Any, tmp_path: Path) -> None:
    """Item 7: with --checksum none nothing ties the stored bytes to the file."""
    none = config(checksum=ChecksumAlgorithm.NONE)
    for size in (1 * MiB, 11 * MiB):
        path = make_file(size, name=f"f{size}")
        result = run(lambda p=path: upload(p, FakeStore(), tmp_path / "j.db", cfg=none))
        assert result.verified is False
    path = make_file(11 * MiB, name="crc")
    assert run(lambda: upload(path, FakeStore(), tmp_path / "j.db")).verified is True


def test_a_row_without_a_guard_completes_on_a_server_without_conditional_writes(
        make_file: Any, tmp_path: Path) -> None:
    """A row journalled before guards were recorded, finished against a server that
    answers 501 to conditional writes: the HEAD decides and the completion is sent without
    a condition (sending one again would be refused again, forever)."""
    path = make_file(11 * MiB)
    store, journal = FakeStore(conditional_writes=False), tmp_path / "j.db"
    store.endpoint = "fake://no-conditions-legacy"
    interrupt_before_complete(path, store, journal)
    with Journal(journal) as j:
        (row,) = j.uploads()
        j.set_guard(row.id, DestinationGuard.unknown())
    run(lambda: upload(path, store, journal))
    assert stored(store) == path.read_bytes()
    assert states(journal) == [UploadState.COMPLETED]
    assert store.calls["refused_condition"] == 1


def only_row(journal: Path) -> Any:
    with Journal(journal) as j:
        (row,) = j.uploads()
        return row


@pytest.mark.parametrize("how", ["shrink", "delete"])
def test_a_file_that_shrinks_or_vanishes_mid_upload_aborts_it(
        make_file: Any, tmp_path: Path, how: str) -> None:
    """Outside tester: a file truncated during the upload (a short read while parts are
    sent) or deleted (found when the file is checked after the last part) can never
    complete the upload: it is aborted, nothing is left on the server and the journal row
    is closed, like a file rewritten in place; it used to stay active and billed."""
    path = make_file(16 * MiB)
    store, journal = FakeStore(), tmp_path / "j.db"
    done = {"changed": False}

    def change(op: str, ctx: dict[str, Any]) -> None:
        if op == "upload_part" and ctx["number"] == 2 and not done["changed"]:
            done["changed"] = True
            if how == "shrink":
                os.truncate(path, 6 * MiB)
            else:
                os.remove(path)

    store.faults.append(change)
    aborted = "the upload was aborted and no object was written"
    with pytest.raises(SourceError, match=aborted) as caught:
        run(lambda: upload(path, store, journal))
    assert ("shrank" if how == "shrink" else "deleted") in str(caught.value)
    assert done["changed"] and not store.uploads and (BUCKET, KEY) not in store.objects
    row = only_row(journal)
    assert row.state is UploadState.ABORTED and "source changed" in (row.error or "")


def test_a_read_error_on_an_unchanged_file_keeps_the_upload_resumable(
        make_file: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The other side: a read that fails while the file is still the one planned (an I/O
    error) leaves the upload and its row for the next run, which completes it."""
    path = make_file(16 * MiB)
    store, journal = FakeStore(), tmp_path / "j.db"
    from bigupload.source import SourceFile

    real_scan = SourceFile.scan
    calls = {"n": 0}

    def failing_scan(self: SourceFile, part: Any, consume: Any) -> None:
        calls["n"] += 1
        if part.number == 2:
            raise SourceError(f"{self.path}: read failed: Input/output error")
        real_scan(self, part, consume)

    monkeypatch.setattr(SourceFile, "scan", failing_scan)
    with pytest.raises(SourceError, match="read failed"):
        run(lambda: upload(path, store, journal))
    assert len(store.uploads) == 1 and only_row(journal).state is UploadState.ACTIVE
    monkeypatch.setattr(SourceFile, "scan", real_scan)
    run(lambda: upload(path, store, journal))
    assert stored(store) == path.read_bytes() and not store.uploads
    assert states(journal) == [UploadState.COMPLETED]
