"""Server-side copies against the in-memory FakeStore, which copies as S3 does (each read
of the source conditional on its ETag, part checksums in the upload's algorithm) or as
moto does (conditions ignored, no part checksums): the kind chosen, what is carried over,
interruption and resume, a source changed mid-copy or between runs, the destination's
guard. The expected values are computed here from the bytes, not by the engine."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from bigupload import ChecksumAlgorithm, UploadConfig, Uploader
from bigupload import checksum as ck
from bigupload.errors import (
    ConfigError,
    DestinationChangedError,
    ExistsError,
    SourceChangedError,
    SourceError,
    StoreError,
)
from bigupload.journal import Journal, UploadState
from tests.fakestore import FakeStore

MiB = 1 << 20
SRC, DST = ("src", "photos/a.bin"), ("dst", "copy/a.bin")
FAST = dict(backoff_base_s=0.001, backoff_max_s=0.01)
MULTIPART = dict(part_size=5 * MiB, multipart_threshold=5 * MiB)


def config(**kwargs: Any) -> UploadConfig:
    return UploadConfig(**{**FAST, **kwargs})


async def copy(store: FakeStore, journal: Path, cfg: UploadConfig | None = None,
               **kwargs: Any) -> Any:
    async with Uploader(cfg or config(), store=store, journal=journal) as up:
        return await up.copy_object(*SRC, *DST, **kwargs)


def run(fn: Callable[[], Any]) -> Any:
    return anyio.run(fn)


def states(journal: Path) -> list[UploadState]:
    with Journal(journal) as j:
        return [u.state for u in j.uploads()]


def seeded(size: int, **kwargs: Any) -> tuple[FakeStore, bytes]:
    store = FakeStore(**kwargs)
    data = os.urandom(size)
    store.seed(*SRC, data, metadata={"owner": "me"}, tags={"team": "a b"})
    return store, data


def interrupted_copy(store: FakeStore, journal: Path, cfg: UploadConfig,
                     stop_when: Callable[[str, dict[str, Any]], bool]) -> bool:
    """Copy until a request makes ``stop_when(op, ctx)`` true, then cancel as Ctrl-C would."""
    async def main() -> bool:
        async with Uploader(cfg, store=store, journal=journal) as up:
            with anyio.move_on_after(10) as scope:
                store.faults.append(lambda op, ctx: scope.cancel() if stop_when(op, ctx) else None)
                await up.copy_object(*SRC, *DST)
            return bool(scope.cancelled_caught)

    try:
        return bool(run(main))
    finally:
        store.faults.clear()


def test_a_small_object_is_one_copy_object_with_its_attributes(tmp_path: Path) -> None:
    store, data = seeded(7 * MiB)
    result = run(lambda: copy(store, tmp_path / "j.db"))
    assert store.calls["copy_object"] == 1 and store.calls["create"] == 0
    assert store.objects[DST][0] == data
    assert store.attributes[DST] == ("text/plain", {"owner": "me"}, {"team": "a b"})
    assert result.copied_from == "s3://src/photos/a.bin" and result.upload_id is None
    # compared with the source: its CRC32C (computed here) and its MD5 ETag
    assert result.verified and result.checksum == ck.encode(ck.compute(ChecksumAlgorithm.CRC32C,
                                                                       data))
    assert states(tmp_path / "j.db") == []  # nothing to resume: no journal row


def test_the_default_threshold_is_the_largest_copy_object(tmp_path: Path) -> None:
    """Up to 5 GiB a copy is one CopyObject whatever the part size; --multipart-threshold
    lowers that."""
    store, _ = seeded(40 * MiB)
    run(lambda: copy(store, tmp_path / "j.db", config(part_size=5 * MiB)))
    assert store.calls["copy_object"] == 1 and store.calls["upload_part_copy"] == 0


def test_a_large_object_is_copied_in_parts_with_a_full_object_checksum(tmp_path: Path) -> None:
    store, data = seeded(23 * MiB + 5)
    result = run(lambda: copy(store, tmp_path / "j.db", config(**MULTIPART)))
    assert store.calls["copy_object"] == 0 and sorted(store.copied_parts) == [1, 2, 3, 4, 5]
    assert store.calls["upload_part"] == 0  # no byte went through the client
    assert store.objects[DST][0] == data and not store.uploads
    whole = ck.encode(ck.compute(ChecksumAlgorithm.CRC32C, data))
    assert result.full_object_checksum == whole and result.checksum_type == "FULL_OBJECT"
    assert store.objects[DST][2] == whole and result.verified
    # the source's content type, metadata and tags, on a copy made by CreateMultipartUpload
    assert store.attributes[DST] == ("text/plain", {"owner": "me"}, {"team": "a b"})
    assert states(tmp_path / "j.db") == [UploadState.COMPLETED]


def test_content_type_and_metadata_can_be_replaced(tmp_path: Path) -> None:
    for settings, key in ((dict(), "one"), (MULTIPART, "parts")):
        store, _ = seeded(7 * MiB)
        cfg = config(content_type="x/y", metadata={"k": "v"}, **settings)
        run(lambda s=store, k=key, c=cfg: copy(s, tmp_path / f"{k}.db", c))
        content_type, metadata, _ = store.attributes[DST]
        assert (content_type, metadata) == ("x/y", {"k": "v"}), key


def test_the_copy_follows_the_source_checksum_algorithm_unless_told(tmp_path: Path) -> None:
    """A source with a whole-object CRC64NVME is copied with CRC64NVME, so the copy is
    compared with it; told to use CRC32C, the copy cannot be compared (only the size)."""
    store = FakeStore()
    data = os.urandom(12 * MiB)
    store.seed(*SRC, data, algorithm=ChecksumAlgorithm.CRC64NVME)
    result = run(lambda: copy(store, tmp_path / "a.db", config(**MULTIPART)))
    assert result.checksum_algorithm == "crc64nvme" and result.verified
    assert result.checksum == ck.encode(ck.compute(ChecksumAlgorithm.CRC64NVME, data))
    store.seed(*SRC, data, algorithm=ChecksumAlgorithm.SHA256)
    del store.objects[DST]
    result = run(lambda: copy(store, tmp_path / "b.db", config(**MULTIPART),
                              follow_source_checksum=False))
    assert result.checksum_algorithm == "crc32c" and not result.verified


def test_a_source_changed_mid_copy_is_refused_and_the_copy_aborted(tmp_path: Path) -> None:
    store, data = seeded(23 * MiB)

    def rewrite(op: str, ctx: dict[str, Any]) -> None:
        if op == "upload_part_copy" and ctx["number"] == 3:
            store.seed(*SRC, os.urandom(len(data)))

    store.faults.append(rewrite)
    with pytest.raises(SourceChangedError, match="changed during the copy") as raised:
        run(lambda: copy(store, tmp_path / "j.db", config(**MULTIPART, concurrency=1)))
    assert raised.value.exit_code == 8
    assert DST not in store.objects and not store.uploads and store.calls["abort"] == 1
    assert states(tmp_path / "j.db") == [UploadState.ABORTED]


def test_a_server_ignoring_the_condition_is_caught_before_completing(tmp_path: Path) -> None:
    """moto copies whatever the source holds: the HEAD of the source before completing
    sees the change, and nothing is written."""
    store, data = seeded(23 * MiB, copy_conditions=False, copy_part_checksums=False)

    def rewrite(op: str, ctx: dict[str, Any]) -> None:
        if op == "upload_part_copy" and ctx["number"] == 5:
            store.seed(*SRC, os.urandom(len(data)))

    store.faults.append(rewrite)
    with pytest.raises(SourceChangedError):
        run(lambda: copy(store, tmp_path / "j.db", config(**MULTIPART, concurrency=1)))
    assert DST not in store.objects and not store.uploads
    assert states(tmp_path / "j.db") == [UploadState.ABORTED]


def test_a_source_deleted_mid_copy_is_refused(tmp_path: Path) -> None:
    store, _ = seeded(23 * MiB)

    def delete(op: str, ctx: dict[str, Any]) -> None:
        if op == "upload_part_copy" and ctx["number"] == 2:
            store.objects.pop(SRC, None)

    store.faults.append(delete)
    with pytest.raises(SourceChangedError, match="deleted"):
        run(lambda: copy(store, tmp_path / "j.db", config(**MULTIPART, concurrency=1)))
    assert not store.uploads and states(tmp_path / "j.db") == [UploadState.ABORTED]


def test_an_interrupted_copy_resumes_from_the_listing(tmp_path: Path) -> None:
    store, data = seeded(48 * MiB)
    journal, cfg = tmp_path / "j.db", config(**MULTIPART, concurrency=2)
    assert interrupted_copy(store, journal, cfg,
                            lambda op, ctx: op == "upload_part_copy" and ctx["number"] == 6)
    done = set(store.copied_parts)
    assert store.uploads and DST not in store.objects and states(journal) == [UploadState.ACTIVE]
    store.copied_parts.clear()
    result = run(lambda: copy(store, journal, cfg))
    assert store.objects[DST][0] == data and not store.uploads
    assert set(store.copied_parts) | done >= set(range(1, 11))
    assert result.resumed_parts >= 4 and len(store.copied_parts) <= 10 - 4
    assert states(journal) == [UploadState.COMPLETED]


def test_bigupload_resume_finishes_a_journalled_copy(tmp_path: Path) -> None:
    store, data = seeded(23 * MiB)
    journal, cfg = tmp_path / "j.db", config(**MULTIPART, concurrency=1)
    assert interrupted_copy(store, journal, cfg,
                            lambda op, ctx: op == "upload_part_copy" and ctx["number"] == 3)

    async def resume() -> list[Any]:
        async with Uploader(config(), store=store, journal=journal) as up:
            return [report async for report in up.resume()]

    with Journal(journal) as j:
        journalled = len(j.parts(j.uploads()[0].id))
    assert journalled >= 2
    (report,) = run(resume)
    assert report.error is None and report.result is not None
    assert report.source == "s3://src/photos/a.bin"
    assert report.result.resumed_parts == journalled
    assert store.objects[DST][0] == data and states(journal) == [UploadState.COMPLETED]


def test_a_source_changed_between_runs_aborts_the_copy(tmp_path: Path) -> None:
    store, data = seeded(23 * MiB)
    journal, cfg = tmp_path / "j.db", config(**MULTIPART, concurrency=1)
    assert interrupted_copy(store, journal, cfg,
                            lambda op, ctx: op == "upload_part_copy" and ctx["number"] == 3)
    store.seed(*SRC, os.urandom(len(data)))
    with pytest.raises(SourceChangedError, match="since the copy began"):
        run(lambda: copy(store, journal, cfg))
    assert not store.uploads and DST not in store.objects
    assert states(journal) == [UploadState.ABORTED]
    # the next run copies the new object
    result = run(lambda: copy(store, journal, cfg))
    assert store.objects[DST][0] == store.objects[SRC][0] and result.resumed_parts == 0


@pytest.mark.parametrize("list_checksums", [True, False])
def test_a_listed_part_the_journal_missed(tmp_path: Path, list_checksums: bool) -> None:
    """A part copied but not journalled (killed in between): kept when the server lists
    its checksum (S3), copied again when it lists none (SeaweedFS, moto)."""
    store, data = seeded(23 * MiB, list_checksums=list_checksums)
    journal, cfg = tmp_path / "j.db", config(**MULTIPART, concurrency=1)
    assert interrupted_copy(store, journal, cfg,
                            lambda op, ctx: op == "upload_part_copy" and ctx["number"] == 3)
    with Journal(journal) as j:
        (row,) = j.uploads()
        journalled = len(j.parts(row.id))
        j.drop_part(row.id, 2)  # as if killed between the answer and the journal write
    store.copied_parts.clear()
    result = run(lambda: copy(store, journal, cfg))
    assert store.objects[DST][0] == data
    assert (2 in store.copied_parts) is not list_checksums
    assert result.resumed_parts == journalled - (0 if list_checksums else 1)


def test_a_destination_written_during_the_copy_is_not_overwritten(tmp_path: Path) -> None:
    store, _ = seeded(23 * MiB)

    def write(op: str, ctx: dict[str, Any]) -> None:
        if op == "upload_part_copy" and ctx["number"] == 4:
            store.seed(*DST, b"newer")

    store.faults.append(write)
    with pytest.raises(DestinationChangedError):
        run(lambda: copy(store, tmp_path / "j.db", config(**MULTIPART)))
    assert store.objects[DST][0] == b"newer" and not store.uploads


@pytest.mark.parametrize("settings", [{}, MULTIPART])
def test_no_overwrite(tmp_path: Path, settings: dict[str, int]) -> None:
    store, _ = seeded(12 * MiB)
    store.seed(*DST, b"there")
    with pytest.raises(ExistsError):
        run(lambda: copy(store, tmp_path / "j.db", config(no_overwrite=True, **settings)))
    assert store.objects[DST][0] == b"there" and store.calls["upload_part_copy"] == 0
    assert store.calls["copy_object"] == 0


def test_a_copy_object_refused_for_a_changed_source_says_so(tmp_path: Path) -> None:
    store, _ = seeded(7 * MiB)

    def rewrite(op: str, ctx: dict[str, Any]) -> None:
        if op == "copy_object":
            store.seed(*SRC, b"rewritten")

    store.faults.append(rewrite)
    with pytest.raises(SourceChangedError, match="before it was copied"):
        run(lambda: copy(store, tmp_path / "j.db"))
    assert DST not in store.objects


def test_what_cannot_be_copied_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    store, _ = seeded(7 * MiB)
    with pytest.raises(SourceError, match="no such object"):
        run(lambda: copy_to(store, tmp_path, ("src", "missing"), DST))
    with pytest.raises(ConfigError, match="both the source and the destination"):
        run(lambda: copy_to(store, tmp_path, SRC, SRC))
    with pytest.raises(ConfigError, match="SSE-C"):
        run(lambda: copy(store, tmp_path / "j.db", config(sse_c_key=bytes(32))))
    assert set(store.objects) == {SRC} and store.calls["create"] == 0


async def copy_to(store: FakeStore, tmp_path: Path, source: tuple[str, str],
                  destination: tuple[str, str]) -> Any:
    async with Uploader(config(), store=store, journal=tmp_path / "j.db") as up:
        return await up.copy_object(*source, *destination)


def test_a_redirected_source_is_a_clear_error(tmp_path: Path) -> None:
    store, _ = seeded(7 * MiB)

    def moved(op: str, ctx: dict[str, Any]) -> None:
        if op == "describe":
            raise StoreError("PermanentRedirect", code="PermanentRedirect")

    store.faults.append(moved)
    with pytest.raises(StoreError, match="needs both buckets on one endpoint") as raised:
        run(lambda: copy(store, tmp_path / "j.db"))
    assert raised.value.exit_code == 7 and store.calls["copy_object"] == 0


# prefix copies: one resumable job

def seeded_prefix(store: FakeStore) -> dict[str, bytes]:
    objects = {"p/a.txt": os.urandom(100), "p/sub/b.bin": os.urandom(12 * MiB),
               "p/sub/c.tmp": os.urandom(10), "p/d.bin": os.urandom(3 * MiB), "other/x": b"x"}
    for key, data in objects.items():
        store.seed("src", key, data)
    return objects


async def copy_prefix(store: FakeStore, journal: Path, cfg: UploadConfig | None = None,
                      **kwargs: Any) -> Any:
    async with Uploader(cfg or config(), store=store, journal=journal) as up:
        return await up.copy_prefix("src", "p", "dst", "q/", **kwargs)


def test_a_prefix_copy_is_one_job_of_server_side_copies(tmp_path: Path) -> None:
    store = FakeStore()
    objects = seeded_prefix(store)
    result = run(lambda: copy_prefix(store, tmp_path / "j.db", config(**MULTIPART),
                                     exclude=["*.tmp"]))
    assert (result.files, result.uploaded, result.failed) == (3, 3, 0)
    assert {k for b, k in store.objects if b == "dst"} == {"q/a.txt", "q/sub/b.bin", "q/d.bin"}
    for key in ("a.txt", "sub/b.bin", "d.bin"):
        assert store.objects[("dst", f"q/{key}")][0] == objects[f"p/{key}"]
    assert store.calls["upload_part"] == store.calls["put_object"] == 0
    assert store.calls["copy_object"] == 2 and sorted(store.copied_parts) == [1, 2, 3]
    with Journal(tmp_path / "j.db") as j:
        (job,) = j.jobs()
        assert job.description == "s3://src/p/ -> s3://dst/q/ (server-side)"


def test_an_interrupted_prefix_copy_resumes_without_copying_again(tmp_path: Path) -> None:
    store = FakeStore()
    objects = seeded_prefix(store)
    journal, cfg = tmp_path / "j.db", config(**MULTIPART, concurrency=1)

    async def interrupted() -> None:
        async with Uploader(cfg, store=store, journal=journal) as up:
            with anyio.move_on_after(10) as scope:
                store.faults.append(lambda op, ctx: scope.cancel()
                                    if op == "upload_part_copy" and ctx["number"] == 2 else None)
                await up.copy_prefix("src", "p/", "dst", "q/")
            assert scope.cancelled_caught

    run(interrupted)
    store.faults.clear()
    copied = {k for b, k in store.objects if b == "dst"}
    store.calls.clear()
    store.copied_parts.clear()

    async def resume() -> list[Any]:
        async with Uploader(config(), store=store, journal=journal) as up:
            return [report async for report in up.resume()]

    (report,) = run(resume)
    assert report.result is not None and report.result.files == 4 and not report.result.failed
    for key in ("a.txt", "sub/b.bin", "sub/c.tmp", "d.bin"):
        assert store.objects[("dst", f"q/{key}")][0] == objects[f"p/{key}"]
    # what the first run finished is not copied again; b.bin resumes from its parts
    again = store.calls["copy_object"] + (1 if store.copied_parts else 0)
    assert again == 4 - len(copied) and 1 not in store.copied_parts


def test_skip_existing_skips_what_is_already_a_copy(tmp_path: Path) -> None:
    store = FakeStore()
    objects = seeded_prefix(store)
    store.seed("dst", "q/a.txt", objects["p/a.txt"])  # the same bytes: the same ETag
    store.seed("dst", "q/d.bin", b"stale")
    result = run(lambda: copy_prefix(store, tmp_path / "j.db", skip_existing=True))
    assert (result.uploaded, result.skipped) == (3, 1)
    assert store.objects[("dst", "q/d.bin")][0] == objects["p/d.bin"]


def test_overlapping_prefixes_are_refused(tmp_path: Path) -> None:
    store = FakeStore()
    seeded_prefix(store)

    async def overlapping() -> Any:
        async with Uploader(config(), store=store, journal=tmp_path / "j.db") as up:
            return await up.copy_prefix("src", "p/", "src", "p/backup/")

    with pytest.raises(ConfigError, match="overlap"):
        run(overlapping)


def test_restart_aborts_the_journalled_copy_and_decides_afresh(tmp_path: Path) -> None:
    """--restart: the journalled copy (begun with CRC32C, the source's algorithm) is
    aborted, and the new one follows the source's algorithm as it is now."""
    store, data = seeded(23 * MiB)
    journal, cfg = tmp_path / "j.db", config(**MULTIPART, concurrency=1)
    assert interrupted_copy(store, journal, cfg,
                            lambda op, ctx: op == "upload_part_copy" and ctx["number"] == 3)
    old = set(store.uploads)
    store.seed(*SRC, data, algorithm=ChecksumAlgorithm.CRC32)
    result = run(lambda: copy(store, journal, cfg, restart=True))
    assert result.checksum_algorithm == "crc32" and result.resumed_parts == 0 and result.verified
    assert not store.uploads and not old & set(store.uploads)
    assert states(journal) == [UploadState.SUPERSEDED, UploadState.COMPLETED]
