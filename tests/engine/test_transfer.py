"""The transfer and scheduler against the in-memory FakeStore: retries, bounds,
interruption and resume, what is (not) re-sent, and what is aborted."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from bigupload import ChecksumAlgorithm, Uploader, UploadConfig
from bigupload import checksum as ck
from bigupload.errors import AuthError, IntegrityError, NotFoundError, SourceChangedError, SourceError, StoreError
from bigupload.journal import Journal, UploadState
from bigupload.scheduler import Scheduler
from tests.fakestore import FakeStore

MiB = 1 << 20
BUCKET, KEY = "bucket", "dir/object.bin"
FAST = dict(backoff_base_s=0.001, backoff_max_s=0.01)


def config(**kwargs: Any) -> UploadConfig:
    return UploadConfig(part_size=kwargs.pop("part_size", 5 * MiB), **{**FAST, **kwargs})


async def upload(path: Path, store: FakeStore, journal: Path, **kwargs: Any) -> Any:
    cfg = kwargs.pop("cfg", config())
    async with Uploader(cfg, store=store, journal=journal) as up:
        return await up.upload_file(path, BUCKET, KEY, **kwargs)


def stored(store: FakeStore) -> bytes:
    return store.objects[(BUCKET, KEY)][0]


def run(fn: Callable[[], Any]) -> Any:
    return anyio.run(fn)


def interrupted_upload(path: Path, store: FakeStore, journal: Path, cfg: UploadConfig,
                       stop_when: Callable[[str, dict[str, Any]], bool], timeout: float = 10) -> bool:
    """Upload until a request makes ``stop_when(op, ctx)`` true, then cancel the upload as
    Ctrl-C would; the store's faults are cleared after. True if it was cancelled."""
    async def main() -> bool:
        async with Uploader(cfg, store=store, journal=journal) as up:
            with anyio.move_on_after(timeout) as scope:
                store.faults.append(lambda op, ctx: scope.cancel() if stop_when(op, ctx) else None)
                await up.upload_file(path, BUCKET, KEY)
            return bool(scope.cancelled_caught)

    try:
        return bool(run(main))
    finally:
        store.faults.clear()


def test_multipart_upload_is_byte_identical(make_file: Any, tmp_path: Path) -> None:
    path = make_file(23 * MiB + 5)
    store = FakeStore()
    result = run(lambda: upload(path, store, tmp_path / "j.db"))
    assert stored(store) == path.read_bytes()
    assert result.parts == 5 and result.resumed_parts == 0 and result.sent_bytes == path.stat().st_size
    raw = ck.compute(ChecksumAlgorithm.CRC32C, path.read_bytes())
    assert result.full_object_checksum == ck.encode(raw)
    assert result.checksum == store.objects[(BUCKET, KEY)][2]
    with Journal(tmp_path / "j.db") as j:
        assert [u.state for u in j.uploads()] == [UploadState.COMPLETED]


@pytest.mark.parametrize("algorithm", list(ChecksumAlgorithm))
def test_every_checksum_algorithm(make_file: Any, tmp_path: Path, algorithm: ChecksumAlgorithm) -> None:
    path = make_file(11 * MiB)
    store = FakeStore()
    result = run(lambda: upload(path, store, tmp_path / "j.db", cfg=config(checksum=algorithm)))
    assert stored(store) == path.read_bytes()
    assert result.checksum_algorithm == algorithm.value


def test_small_and_empty_files_use_one_put(make_file: Any, tmp_path: Path) -> None:
    for size in (0, 1, 5 * MiB - 1, 5 * MiB):
        path = make_file(size, name=f"f{size}")
        store = FakeStore()
        result = run(lambda: upload(path, store, tmp_path / "j.db"))
        assert stored(store) == path.read_bytes()
        assert store.calls["put_object"] == 1 and store.calls["create"] == 0
        assert result.parts == 1


def test_bounds_on_connections_and_memory(make_file: Any, tmp_path: Path) -> None:
    path = make_file(60 * MiB)
    store = FakeStore()
    store.part_delay_s = 0.02
    cfg = config(concurrency=6, memory_limit=15 * MiB)

    async def go() -> Any:
        async with Uploader(cfg, store=store, journal=tmp_path / "j.db") as up:
            result = await up.upload_file(path, BUCKET, KEY)
            assert up.scheduler._budget is not None
            assert up.scheduler._budget.peak <= 15 * MiB
            return result

    run(go)
    assert store.max_in_flight == 3  # 15 MiB of 5 MiB parts, though 6 connections allowed
    assert stored(store) == path.read_bytes()


def test_transient_faults_are_retried(make_file: Any, tmp_path: Path) -> None:
    path = make_file(30 * MiB)
    store = FakeStore()
    failures = {"n": 0}

    def flaky(op: str, ctx: dict[str, Any]) -> None:
        if op == "upload_part" and failures["n"] < 8 and ctx["number"] % 2 == 0:
            failures["n"] += 1
            raise StoreError("SlowDown", code="SlowDown", retryable=True)

    store.faults.append(flaky)
    run(lambda: upload(path, store, tmp_path / "j.db"))
    assert failures["n"] == 8
    assert stored(store) == path.read_bytes()


def test_retries_are_bounded_and_leave_upload_resumable(make_file: Any, tmp_path: Path) -> None:
    path = make_file(12 * MiB)
    store = FakeStore()

    def always(op: str, ctx: dict[str, Any]) -> None:
        if op == "upload_part" and ctx["number"] == 2:
            raise StoreError("InternalError", code="InternalError", retryable=True)

    store.faults.append(always)
    with pytest.raises(StoreError, match="gave up after 3 attempts") as info:
        run(lambda: upload(path, store, tmp_path / "j.db", cfg=config(max_attempts=3)))
    assert info.value.exit_code == 5
    assert store.calls["upload_part"] >= 3 and store.uploads  # not aborted: resumable
    store.faults.clear()
    result = run(lambda: upload(path, store, tmp_path / "j.db"))
    assert stored(store) == path.read_bytes() and result.resumed_parts == 2


def test_fatal_errors_stop_fast(make_file: Any, tmp_path: Path) -> None:
    path = make_file(40 * MiB)
    store = FakeStore()

    def denied(op: str, ctx: dict[str, Any]) -> None:
        if op == "upload_part":
            raise AuthError("AccessDenied", code="AccessDenied")

    store.faults.append(denied)
    with pytest.raises(AuthError):
        run(lambda: upload(path, store, tmp_path / "j.db"))
    assert store.calls["upload_part"] <= 8  # no retries of a non-retryable error


def test_bad_digest_rereads_and_retries(make_file: Any, tmp_path: Path) -> None:
    path = make_file(12 * MiB)
    store = FakeStore()
    seen = {"n": 0}

    def corrupt_once(op: str, ctx: dict[str, Any]) -> None:
        if op == "upload_part" and ctx["number"] == 1 and seen["n"] == 0:
            seen["n"] += 1
            raise IntegrityError("BadDigest", code="BadDigest", retryable=True)

    store.faults.append(corrupt_once)
    run(lambda: upload(path, store, tmp_path / "j.db"))
    assert stored(store) == path.read_bytes()


def test_interrupted_upload_resumes_without_resending(make_file: Any, tmp_path: Path) -> None:
    path = make_file(50 * MiB + 100)  # 11 parts
    store = FakeStore()
    journal = tmp_path / "j.db"

    assert interrupted_upload(path, store, journal, config(concurrency=2),
                              lambda op, ctx: op == "upload_part" and len(store.sent_parts) >= 5)
    first = list(store.sent_parts)
    assert 5 <= len(first) < 11 and (BUCKET, KEY) not in store.objects
    result = run(lambda: upload(path, store, journal))
    second = store.sent_parts[len(first):]
    assert stored(store) == path.read_bytes()
    assert not set(first) & set(second)  # nothing already on the server was sent again
    assert sorted(first + second) == list(range(1, 12))
    assert result.resumed_parts == len(first)
    assert result.sent_bytes == sum(min(5 * MiB, path.stat().st_size - (n - 1) * 5 * MiB) for n in second)


def test_resume_pages_through_more_than_1000_parts(tmp_path: Path) -> None:
    path = tmp_path / "sparse.bin"
    with open(path, "wb") as f:  # 1,200 parts of 5 MiB; sparse, so cheap on disk
        f.truncate(1200 * 5 * MiB)
        f.seek(1200 * 5 * MiB - 1)
        f.write(b"\x01")
    store = FakeStore(page_size=1000, lightweight=True)
    journal = tmp_path / "j.db"
    cfg = config(concurrency=8, checksum=ChecksumAlgorithm.CRC32C)

    interrupted_upload(path, store, journal, cfg,
                       lambda op, ctx: op == "upload_part" and len(store.sent_parts) >= 1100, timeout=60)
    first = len(store.sent_parts)
    store.calls.clear()
    result = run(lambda: upload(path, store, journal, cfg=cfg))
    # 1,100 listed parts over two pages, at resume and again in the check before completion
    assert store.calls["list_parts_page"] == 4
    assert result.resumed_parts == first
    assert len(store.sent_parts) - first == 1200 - first
    assert store.sizes[(BUCKET, KEY)] == 1200 * 5 * MiB


def test_parts_listed_but_not_journalled_are_verified(make_file: Any, tmp_path: Path) -> None:
    """A kill between UploadPart's response and the journal write: the part is on the
    server but not in the journal. It is kept only if it matches the local bytes."""
    path = make_file(20 * MiB)
    store = FakeStore()
    journal = tmp_path / "j.db"

    interrupted_upload(path, store, journal, config(concurrency=1),
                       lambda op, ctx: op == "upload_part" and ctx["number"] == 3)
    upload_id = next(iter(store.uploads))
    with Journal(journal) as j:  # forget part 2, as if killed before journalling it
        rec = j.uploads()[0]
        j.drop_part(rec.id, 2)
    good = store.uploads[upload_id][2]
    store.uploads[upload_id][1].data = b"x" * (5 * MiB)  # a stray writer changed part 1
    store.uploads[upload_id][1].etag = '"stray"'
    kept = set(store.uploads[upload_id]) - {1}
    assert 2 in kept and good.etag
    sent_before = len(store.sent_parts)
    result = run(lambda: upload(path, store, journal))
    resent = store.sent_parts[sent_before:]
    assert sorted(resent) == sorted(set(range(1, 5)) - kept)  # part 2 verified and kept
    assert 1 in resent  # disagreed with the journal: sent again
    assert stored(store) == path.read_bytes()
    assert result.resumed_parts == len(kept)


def test_changed_source_is_refused_before_sending(make_file: Any, tmp_path: Path) -> None:
    path = make_file(20 * MiB)
    store = FakeStore()
    journal = tmp_path / "j.db"

    interrupted_upload(path, store, journal, config(concurrency=1), lambda op, ctx: op == "upload_part")
    with open(path, "r+b") as f:  # same size, different bytes, same mtime
        st = os.stat(path)
        f.seek(0)
        f.write(b"changed")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    calls = sum(store.calls.values())
    with pytest.raises(SourceChangedError, match="content") as info:
        run(lambda: upload(path, store, journal))
    assert info.value.exit_code == 8
    assert sum(store.calls.values()) == calls  # nothing sent
    run(lambda: upload(path, store, journal, restart=True))
    assert stored(store) == path.read_bytes()
    assert len(store.uploads) == 0  # the old upload was aborted, not orphaned


def test_change_during_upload_aborts(make_file: Any, tmp_path: Path) -> None:
    path = make_file(20 * MiB)
    store = FakeStore()

    def modify(op: str, ctx: dict[str, Any]) -> None:
        if op == "upload_part" and ctx["number"] == 4:
            with open(path, "ab") as f:
                f.write(b"more")

    store.faults.append(modify)
    with pytest.raises(SourceError, match="changed during the upload"):
        run(lambda: upload(path, store, tmp_path / "j.db", cfg=config(concurrency=1)))
    assert (BUCKET, KEY) not in store.objects and not store.uploads


def test_completed_but_not_journalled_is_success(make_file: Any, tmp_path: Path) -> None:
    path = make_file(12 * MiB)
    store = FakeStore()
    journal = tmp_path / "j.db"
    real_head = store.head

    async def crash_after_complete(bucket: str, key: str, options: Any) -> Any:
        if store.calls["complete"]:  # the HEAD after CompleteMultipartUpload, not the guard's
            raise KeyboardInterrupt  # dies after CompleteMultipartUpload, before the journal
        return await real_head(bucket, key, options)

    store.head = crash_after_complete  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        run(lambda: upload(path, store, journal))
    store.head = real_head  # type: ignore[method-assign]
    sent = len(store.sent_parts)
    result = run(lambda: upload(path, store, journal))
    assert len(store.sent_parts) == sent and store.calls["create"] == 1
    assert result.resumed_parts == 3 and stored(store) == path.read_bytes()


def test_upload_vanished_mid_upload(make_file: Any, tmp_path: Path) -> None:
    path = make_file(20 * MiB)
    store = FakeStore()

    def vanish(op: str, ctx: dict[str, Any]) -> None:
        if op == "upload_part" and ctx["number"] == 3:
            store.uploads.pop(ctx["upload_id"], None)

    store.faults.append(vanish)
    with pytest.raises(NotFoundError, match="run again to start a new upload"):
        run(lambda: upload(path, store, tmp_path / "j.db", cfg=config(concurrency=1)))
    store.faults.clear()
    run(lambda: upload(path, store, tmp_path / "j.db"))
    assert stored(store) == path.read_bytes()


def test_rejected_completion_aborts(make_file: Any, tmp_path: Path) -> None:
    path = make_file(12 * MiB)
    store = FakeStore(min_part=64 * MiB)  # a server that rejects our part sizes
    with pytest.raises(StoreError, match="EntityTooSmall"):
        run(lambda: upload(path, store, tmp_path / "j.db"))
    assert not store.uploads  # aborted, not billed forever


def test_missing_and_special_sources(tmp_path: Path) -> None:
    store = FakeStore()
    with pytest.raises(SourceError, match="no such file"):
        run(lambda: upload(tmp_path / "absent", store, tmp_path / "j.db"))
    with pytest.raises(SourceError, match="is a directory"):
        run(lambda: upload(tmp_path, store, tmp_path / "j.db"))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(SourceError, match="not a regular file"):
        run(lambda: upload(fifo, store, tmp_path / "j.db"))
    assert sum(store.calls.values()) == 0


def test_throttling_halves_connections_then_recovers() -> None:
    scheduler = Scheduler(config(concurrency=8))

    async def main() -> list[int]:
        seen = []
        both_sent = anyio.Event()
        sent = {"n": 0}

        async def refused_once(n: int) -> None:
            if n == 1:  # two requests of the same round refused: one halving, not two
                sent["n"] += 1
                if sent["n"] == 2:
                    both_sent.set()
                await both_sent.wait()
                raise StoreError("SlowDown", code="SlowDown", retryable=True)

        async with anyio.create_task_group() as tg:
            tg.start_soon(scheduler.retrying, "a", refused_once)
            tg.start_soon(scheduler.retrying, "b", refused_once)
        seen.append(int(scheduler.connections.total_tokens))
        for _ in range(4 + 5):  # 4 successes give one back, then 5 more
            await scheduler.retrying("x", lambda n: anyio.sleep(0))
        seen.append(int(scheduler.connections.total_tokens))
        return seen

    assert run(main) == [4, 6] and scheduler.throttled == 1


def test_throttling_server_gets_fewer_requests(make_file: Any, tmp_path: Path) -> None:
    """A server that answers SlowDown whenever more than 2 parts are in flight: the upload
    completes, and after the first throttling the client stays near the server's limit."""
    path = make_file(60 * MiB)
    store = FakeStore()
    store.part_delay_s = 0.01
    refused = {"n": 0}

    def limit(op: str, ctx: dict[str, Any]) -> None:
        if op == "upload_part" and store.in_flight >= 2:
            refused["n"] += 1
            raise StoreError("SlowDown", code="SlowDown", retryable=True)

    store.faults.append(limit)
    result = run(lambda: upload(path, store, tmp_path / "j.db",
                                cfg=config(concurrency=8, max_attempts=20)))
    assert stored(store) == path.read_bytes() and result.parts == 12
    # measured: 11 to 13 refusals; 46 to 52 with the halving switched off
    assert refused["n"] < 25


@pytest.mark.parametrize("size", [11 * MiB, 1000])  # multipart, and one PutObject
def test_content_md5_is_every_body_md5_from_the_checksum_read(
        make_file: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int) -> None:
    """``content_md5``: each request carries its body's MD5 (base64), computed in the same
    read as its checksum: the file is scanned once per part, as without it."""
    import base64
    import hashlib

    from bigupload.source import SourceFile

    path = make_file(size)
    data = path.read_bytes()
    sent: list[tuple[str, int | None, str | None]] = []
    scans: list[int] = []
    real_scan = SourceFile.scan

    def counting_scan(self: SourceFile, part: Any, consume: Any) -> None:
        scans.append(part.number)
        real_scan(self, part, consume)

    monkeypatch.setattr(SourceFile, "scan", counting_scan)
    store = FakeStore()
    store.faults.append(lambda op, ctx: sent.append((op, ctx.get("number"), ctx.get("content_md5")))
                        if op in ("upload_part", "put_object") else None)
    result = run(lambda: upload(path, store, tmp_path / "j.db",
                                cfg=config(content_md5=True, checksum=ChecksumAlgorithm.SHA1)))
    assert stored(store) == data and result.checksum_algorithm == "sha1"
    assert sent and all(md5 is not None for _, _, md5 in sent)
    for op, number, md5 in sent:
        chunk = data if op == "put_object" else data[(number - 1) * 5 * MiB:number * 5 * MiB]
        assert md5 == base64.b64encode(hashlib.md5(chunk).digest()).decode()
    assert sorted(scans) == sorted(n or 1 for _, n, _ in sent)  # one read per body sent
