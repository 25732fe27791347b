"""Streams (``Uploader.upload_stream``) against the in-memory FakeStore: every kind of
source, one PutObject or parts, growing parts, the memory budget, and what is aborted
when a stream stops. The expected bytes are the ones the test fed in; checksums are
computed here over them."""

from __future__ import annotations

import os
import random
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from bigupload import ChecksumAlgorithm, ServerSideEncryption, UploadConfig, Uploader
from bigupload import checksum as ck
from bigupload.errors import AuthError, ExistsError, SourceError, StoreError
from bigupload.journal import Journal, UploadState
from bigupload.upload import stream_machine
from bigupload.values import STREAM_SOURCE, Fingerprint, ObjectOptions
from tests.fakestore import FakeStore

MiB = 1 << 20
BUCKET, KEY = "bucket", "stream.bin"
FAST = dict(backoff_base_s=0.001, backoff_max_s=0.01)


def config(**kwargs: Any) -> UploadConfig:
    return UploadConfig(part_size=kwargs.pop("part_size", 5 * MiB), **{**FAST, **kwargs})


def data(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


def chunks(payload: bytes, size: int = 100_003) -> Iterator[bytes]:
    """Chunks that never line up with a part boundary."""
    for start in range(0, len(payload), size):
        yield payload[start:start + size]


async def stream(source: Any, store: FakeStore, journal: Path, **kwargs: Any) -> Any:
    cfg = kwargs.pop("cfg", config())
    async with Uploader(cfg, store=store, journal=journal) as up:
        return await up.upload_stream(source, BUCKET, KEY, **kwargs)


def stored(store: FakeStore) -> bytes:
    return store.objects[(BUCKET, KEY)][0]


def rows(journal: Path) -> list[tuple[str, UploadState, str | None]]:
    with Journal(journal) as j:
        return [(u.fingerprint.path, u.state, u.error) for u in j.uploads()]


def test_an_iterable_goes_up_in_parts_byte_identical(tmp_path: Path) -> None:
    payload = data(17 * MiB + 3)
    store = FakeStore()
    result = anyio.run(lambda: stream(chunks(payload), store, tmp_path / "j.db"))
    assert stored(store) == payload
    assert result.parts == 4 and result.size == len(payload) == result.sent_bytes
    assert [store.uploads == {}, store.calls["put_object"]] == [True, 0]
    whole = ck.encode(ck.compute(ChecksumAlgorithm.CRC32C, payload))
    assert result.full_object_checksum == whole == result.checksum
    assert result.checksum_type == "FULL_OBJECT" and result.verified
    assert rows(tmp_path / "j.db") == [(STREAM_SOURCE, UploadState.COMPLETED, None)]


def test_a_completed_stream_is_journalled_with_its_size(tmp_path: Path) -> None:
    """`status --all` showed a completed stream as 0 B: its row began before its size was
    known, and the size read is recorded when it completes."""
    payload = data(11 * MiB + 7)
    store = FakeStore()
    anyio.run(lambda: stream(chunks(payload), store, tmp_path / "j.db",
                             cfg=config(part_size=5 * MiB)))

    async def closed() -> Any:
        async with Uploader(config(), store=store, journal=tmp_path / "j.db") as up:
            return up.status(closed=True).closed

    [row] = anyio.run(closed)
    assert (row.source, row.state, row.size) == (STREAM_SOURCE, UploadState.COMPLETED,
                                                 len(payload))


@pytest.mark.parametrize("algorithm", list(ChecksumAlgorithm))
def test_every_checksum_algorithm(tmp_path: Path, algorithm: ChecksumAlgorithm) -> None:
    payload = data(11 * MiB + 1)
    store = FakeStore()
    result = anyio.run(lambda: stream(chunks(payload), store, tmp_path / "j.db",
                                      cfg=config(checksum=algorithm)))
    assert stored(store) == payload and result.parts == 3
    assert result.checksum_algorithm == algorithm.value


def test_an_async_iterator(tmp_path: Path) -> None:
    payload = data(12 * MiB + 7)

    async def produce() -> AsyncIterator[bytes]:
        for chunk in chunks(payload, 3 * MiB + 1):  # chunks larger than what a part has left
            await anyio.sleep(0)
            yield chunk

    store = FakeStore()
    result = anyio.run(lambda: stream(produce(), store, tmp_path / "j.db"))
    assert stored(store) == payload and result.parts == 3


@pytest.mark.parametrize("as_file", [False, True])
def test_a_pipe_and_a_file_object(tmp_path: Path, as_file: bool) -> None:
    payload = data(13 * MiB + 11)
    read_end, write_end = os.pipe()

    def write() -> None:
        with open(write_end, "wb") as w:
            for chunk in chunks(payload, 70_000):
                w.write(chunk)

    writer = threading.Thread(target=write)
    writer.start()
    store = FakeStore()
    with open(read_end, "rb", buffering=0) as r:
        source: Any = r if as_file else r.fileno()
        result = anyio.run(lambda: stream(source, store, tmp_path / "j.db"))
    writer.join()
    assert stored(store) == payload and result.parts == 3


@pytest.mark.parametrize("size", [0, 1, 5 * MiB - 1, 5 * MiB])
def test_a_stream_that_ends_in_its_first_part_is_one_put(tmp_path: Path, size: int) -> None:
    payload = data(size)
    store = FakeStore()
    result = anyio.run(lambda: stream(chunks(payload) if size else iter([]), store,
                                      tmp_path / "j.db"))
    assert stored(store) == payload and result.size == size and result.parts == 1
    assert store.calls["put_object"] == 1 and store.calls["create"] == 0
    assert result.upload_id is None and result.checksum_type is None
    assert result.checksum == ck.encode(ck.compute(ChecksumAlgorithm.CRC32C, payload))
    assert rows(tmp_path / "j.db") == []  # nothing journalled: nothing could be left over


def test_one_byte_past_the_first_part_is_multipart(tmp_path: Path) -> None:
    payload = data(5 * MiB + 1)
    store = FakeStore()
    result = anyio.run(lambda: stream(chunks(payload, 5 * MiB), store, tmp_path / "j.db"))
    assert stored(store) == payload and result.parts == 2 and store.calls["put_object"] == 0


def test_parts_grow_as_the_stream_goes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for module in ("bigupload.values", "bigupload.plan"):
        monkeypatch.setattr(f"{module}.STREAM_GROWTH_EVERY", 2)
    payload = data(43 * MiB)  # 5 + 5 + 10 + 10 + 13 (of 20)
    store = FakeStore()
    sizes: list[tuple[int, int]] = []
    original = store.upload_part

    async def recording(*args: Any, **kwargs: Any) -> Any:
        receipt = await original(*args, **kwargs)
        upload_id, number = args[2], args[3]
        sizes.append((number, store.uploads[upload_id][number].size))
        return receipt

    store.upload_part = recording  # type: ignore[method-assign]
    result = anyio.run(lambda: stream(chunks(payload), store, tmp_path / "j.db"))
    assert stored(store) == payload
    assert sorted(sizes) == [(1, 5 * MiB), (2, 5 * MiB), (3, 10 * MiB), (4, 10 * MiB),
                             (5, 13 * MiB)]
    assert result.part_size == 5 * MiB  # the starting size


@pytest.mark.parametrize("limit,concurrency", [(None, 3), (5 * MiB, 4), (12 * MiB, 8)])
def test_memory_stays_within_the_limit(tmp_path: Path, limit: int | None,
                                       concurrency: int) -> None:
    payload = data(40 * MiB)
    store = FakeStore()
    store.part_delay_s = 0.01  # parts in flight long enough to pile up

    async def main() -> tuple[Any, int]:
        async with Uploader(config(memory_limit=limit, concurrency=concurrency),
                            store=store, journal=tmp_path / "j.db") as up:
            result = await up.upload_stream(chunks(payload), BUCKET, KEY)
            assert up.scheduler._budget is not None
            return result, up.scheduler._budget.peak

    result, peak = anyio.run(main)
    assert stored(store) == payload and result.parts == 8
    allowed = limit if limit is not None else concurrency * 5 * MiB
    assert peak <= allowed
    assert store.max_in_flight <= allowed // (5 * MiB)


def test_a_retried_part_is_sent_again_from_its_buffer(tmp_path: Path) -> None:
    payload = data(16 * MiB)
    store = FakeStore()
    failed: list[int] = []

    def once(op: str, ctx: dict[str, Any]) -> None:
        if op == "upload_part" and ctx["number"] == 2 and not failed:
            failed.append(2)
            raise StoreError("InternalError", code="InternalError", status=500)

    store.faults.append(once)
    pulled = 0

    def counted() -> Iterator[bytes]:
        nonlocal pulled
        for chunk in chunks(payload):
            pulled += len(chunk)
            yield chunk

    result = anyio.run(lambda: stream(counted(), store, tmp_path / "j.db"))
    assert failed and stored(store) == payload and result.parts == 4
    assert pulled == len(payload)  # read once


def test_a_failing_stream_is_aborted_and_its_row_closed(tmp_path: Path) -> None:
    payload = data(30 * MiB)
    store = FakeStore()

    def refuse(op: str, ctx: dict[str, Any]) -> None:
        if op == "upload_part" and ctx["number"] == 3:
            raise AuthError("AccessDenied", code="AccessDenied", status=403)

    store.faults.append(refuse)
    with pytest.raises(AuthError) as raised:
        anyio.run(lambda: stream(chunks(payload), store, tmp_path / "j.db"))
    assert "a stream cannot be resumed: the upload was aborted" in str(raised.value)
    assert store.uploads == {} and store.calls["create"] == 1 and store.calls["abort"] == 1
    assert (BUCKET, KEY) not in store.objects
    [(source, state, error)] = rows(tmp_path / "j.db")
    assert (source, state) == (STREAM_SOURCE, UploadState.ABORTED)
    assert error is not None and "a stream cannot be resumed" in error


def test_retries_exhausted_still_abort(tmp_path: Path) -> None:
    store = FakeStore()
    store.faults.append(lambda op, ctx: (_ for _ in ()).throw(
        StoreError("SlowDown", code="InternalError", status=500)) if op == "complete" else None)
    with pytest.raises(StoreError, match="gave up after 3 attempts.*cannot be resumed"):
        anyio.run(lambda: stream(chunks(data(11 * MiB)), store, tmp_path / "j.db",
                                 cfg=config(max_attempts=3)))
    assert store.uploads == {} and rows(tmp_path / "j.db")[0][1] is UploadState.ABORTED


def test_a_source_that_fails_aborts(tmp_path: Path) -> None:
    def broken() -> Iterator[bytes]:
        yield data(12 * MiB)
        raise OSError(5, "Input/output error")

    store = FakeStore()
    with pytest.raises(SourceError, match="Input/output error.*cannot be resumed"):
        anyio.run(lambda: stream(broken(), store, tmp_path / "j.db"))
    assert store.uploads == {} and rows(tmp_path / "j.db")[0][1] is UploadState.ABORTED


def test_an_interrupted_stream_is_aborted(tmp_path: Path) -> None:
    store = FakeStore()
    gate = threading.Event()

    def endless() -> Iterator[bytes]:
        block = data(MiB)
        while True:
            if store.calls["upload_part"] >= 3:
                gate.set()
            yield block

    async def main() -> bool:
        with anyio.move_on_after(30) as scope:
            async with anyio.create_task_group() as tg:
                async def stop() -> None:
                    await anyio.to_thread.run_sync(gate.wait)
                    scope.cancel()

                tg.start_soon(stop)
                await stream(endless(), store, tmp_path / "j.db")
        return scope.cancelled_caught

    assert anyio.run(main)
    assert store.calls["abort"] == 1 and store.uploads == {}
    [(_, state, error)] = rows(tmp_path / "j.db")
    assert state is UploadState.ABORTED and error == "a stream cannot be resumed: interrupted"


def test_a_stream_longer_than_s3_allows_is_refused(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream_machine, "MAX_PARTS", 3)
    store = FakeStore()
    exact = data(15 * MiB)  # three full parts, then the end: fine
    assert anyio.run(lambda: stream(chunks(exact), store, tmp_path / "j.db")).parts == 3
    with pytest.raises(SourceError, match="stream is longer than.*--expected-size"):
        anyio.run(lambda: stream(chunks(exact + b"x"), store, tmp_path / "j.db"))
    assert store.uploads == {}


def test_no_overwrite_refuses_before_reading(tmp_path: Path) -> None:
    store = FakeStore()
    store.objects[(BUCKET, KEY)] = (b"old", '"x"', None)
    store.sizes[(BUCKET, KEY)] = 3
    pulled: list[bytes] = []

    def source() -> Iterator[bytes]:
        pulled.append(b"")
        yield b"new"

    with pytest.raises(ExistsError):
        anyio.run(lambda: stream(source(), store, tmp_path / "j.db",
                                 cfg=config(no_overwrite=True)))
    assert pulled == [] and stored(store) == b"old"


@pytest.mark.parametrize("size", [3, 11 * MiB])
def test_no_overwrite_guards_the_write_itself(tmp_path: Path, size: int) -> None:
    """The key appears while the stream is read: the conditional write refuses it."""
    store = FakeStore()
    payload = data(size)

    def source() -> Iterator[bytes]:
        yield payload[:1]
        store.objects[(BUCKET, KEY)] = (b"other", '"y"', None)
        store.sizes[(BUCKET, KEY)] = 5
        yield payload[1:]

    with pytest.raises(ExistsError):
        anyio.run(lambda: stream(source(), store, tmp_path / "j.db",
                                 cfg=config(no_overwrite=True)))
    assert stored(store) == b"other" and store.uploads == {}


@pytest.mark.parametrize("size", [3, 6 * MiB])
def test_object_options_reach_the_object(tmp_path: Path, size: int) -> None:
    """Content type, metadata, storage class and SSE, on CreateMultipartUpload or on the
    one PutObject."""
    seen: list[Any] = []
    store = FakeStore()
    create, put = store.create_multipart, store.put_object

    async def recording_create(bucket: str, key: str, options: Any) -> str:
        seen.append(options)
        return await create(bucket, key, options)

    async def recording_put(bucket: str, key: str, body: Any, checksum: Any, options: Any,
                            **kwargs: Any) -> Any:
        seen.append(options)
        return await put(bucket, key, body, checksum, options, **kwargs)

    store.create_multipart = recording_create  # type: ignore[method-assign]
    store.put_object = recording_put  # type: ignore[method-assign]
    anyio.run(lambda: stream(chunks(data(size)), store, tmp_path / "j.db",
                             cfg=config(content_type="application/x-tar",
                                        metadata={"a": "b"}, storage_class="STANDARD_IA",
                                        sse=ServerSideEncryption.AES256)))
    [options] = seen
    assert (options.content_type, dict(options.metadata), options.storage_class,
            options.sse) == ("application/x-tar", {"a": "b"}, "STANDARD_IA", "AES256")


def test_the_next_stream_aborts_what_a_killed_one_left(tmp_path: Path) -> None:
    store = FakeStore()
    journal = tmp_path / "j.db"

    async def left_over() -> str:
        upload_id = await store.create_multipart(BUCKET, KEY, ObjectOptions())
        with Journal(journal) as j:
            row = j.start_upload(Fingerprint.of_stream(), store.endpoint, BUCKET, KEY, 5 * MiB, 0,
                                 "crc32c", None)
            j.set_upload_id(row, upload_id)
        return upload_id

    killed = anyio.run(left_over)
    anyio.run(lambda: stream(chunks(data(6 * MiB)), store, journal))
    assert killed not in store.uploads and store.uploads == {}
    states = [state for _, state, _ in rows(journal)]
    assert states == [UploadState.ABORTED, UploadState.COMPLETED]


def test_bytes_are_not_a_stream(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"give bytes as \[data\]"):
        anyio.run(lambda: stream(b"abc", FakeStore(), tmp_path / "j.db"))
