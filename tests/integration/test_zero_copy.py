"""Parts travel as ``FileRange`` bodies: sent with sendfile(2) on the stock asyncio loop,
in chunks elsewhere (uvloop, TLS), never copied whole into Python memory. Against a real
SeaweedFS, which checks our CRC32C header against the bytes it received."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path
from typing import Any

import anyio
import pytest

from bigupload import ChecksumAlgorithm, Uploader, UploadConfig
from bigupload import checksum as ck
from bigupload import httpbody
from bigupload.client import AioS3Store, ObjectOptions
from bigupload.errors import SourceError
from bigupload.plan import Part
from bigupload.source import FileRange, SourceFile
from bigupload.testing import SeaweedServer
from tests.conftest import MiB, list_uploads, read_object

pytestmark = pytest.mark.integration


@pytest.fixture
def sendfile_bytes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Bytes moved by os.sendfile, as asyncio's loop.sendfile calls it."""
    sent: list[int] = []
    real = os.sendfile

    def counting(out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
        n = real(out_fd, in_fd, offset, count)
        sent.append(n)
        return n

    monkeypatch.setattr(os, "sendfile", counting)
    return sent


def _upload(server: SeaweedServer, path: Path, bucket: str, key: str, tmp_path: Path,
            use_uvloop: bool = False) -> Any:
    config = UploadConfig(endpoint_url=server.endpoint_url, part_size=5 * MiB, backoff_base_s=0.01)

    async def go() -> Any:
        async with Uploader(config, journal=tmp_path / "j.db") as up:
            return await up.upload_file(path, bucket, key)

    return anyio.run(go, backend_options={"use_uvloop": True} if use_uvloop else {})


def test_parts_are_sent_with_sendfile(seaweed: SeaweedServer, seaweed_bucket: str, make_file: Any,
                                      tmp_path: Path, sendfile_bytes: list[int]) -> None:
    path = make_file(17 * MiB + 3)
    result = _upload(seaweed, path, seaweed_bucket, "sf", tmp_path)
    assert result.parts == 4
    assert read_object(seaweed, seaweed_bucket, "sf") == path.read_bytes()
    assert sum(sendfile_bytes) == path.stat().st_size  # every part byte went by sendfile
    assert not list_uploads(seaweed, seaweed_bucket)


def test_uvloop_sends_chunks_instead(seaweed: SeaweedServer, seaweed_bucket: str, make_file: Any,
                                     tmp_path: Path, sendfile_bytes: list[int]) -> None:
    pytest.importorskip("uvloop")
    path = make_file(11 * MiB + 5, seed=3)
    result = _upload(seaweed, path, seaweed_bucket, "uv", tmp_path, use_uvloop=True)
    assert result.parts == 3
    assert read_object(seaweed, seaweed_bucket, "uv") == path.read_bytes()
    assert sendfile_bytes == []


def test_part_request_has_no_expect_continue(seaweed: SeaweedServer, seaweed_bucket: str,
                                             make_file: Any) -> None:
    """botocore asks for 100-continue on file-like bodies; we drop the extra round trip."""
    path = make_file(6 * MiB)
    captured: list[tuple[dict[str, str], object]] = []

    async def go() -> None:
        async with AioS3Store.open(UploadConfig(endpoint_url=seaweed.endpoint_url)) as store:
            store._client.meta.events.register(
                "before-send.s3.UploadPart",
                lambda request, **kw: captured.append(
                    ({k.lower(): str(v) for k, v in request.headers.items()}, request.body)))
            options = ObjectOptions(checksum=ChecksumAlgorithm.CRC32C)
            upload_id = await store.create_multipart(seaweed_bucket, "e", options)
            with SourceFile(str(path)) as source:
                body = source.range(Part(1, 0, path.stat().st_size))
                ours = ck.encode(ck.compute(ChecksumAlgorithm.CRC32C, path.read_bytes()))
                await store.upload_part(seaweed_bucket, "e", upload_id, 1, body, ours, options)
            await store.abort(seaweed_bucket, "e", upload_id, options)

    anyio.run(go)
    headers, body = captured[0]
    assert "expect" not in headers
    assert isinstance(body, FileRange)
    assert headers["content-length"] == str(6 * MiB)


def test_scan_checksums_a_part_in_chunks(make_file: Any) -> None:
    path = make_file(3 * MiB + 77, seed=5)
    data = path.read_bytes()
    with SourceFile(str(path)) as source:
        part = Part(2, MiB + 1, 2 * MiB + 13)
        hasher = ck.Hasher(ChecksumAlgorithm.CRC32C)
        source.scan(part, hasher.update)
        assert hasher.digest() == ck.compute(ChecksumAlgorithm.CRC32C, data[MiB + 1: 3 * MiB + 14])
        with pytest.raises(SourceError, match="shrank"):
            source.scan(Part(9, 3 * MiB, MiB), lambda chunk: None)


def test_file_range_reads_like_a_file(make_file: Any) -> None:
    path = make_file(1000, seed=9)
    data = path.read_bytes()
    with SourceFile(str(path)) as source:
        body = source.range(Part(2, 100, 500))
        assert len(body) == 500
        assert body.read(10) == data[100:110] and body.tell() == 10
        assert body.read() == data[110:600] and body.read() == b""
        body.seek(0)
        assert body.read() == data[100:600]


def test_sendfile_of_a_shrunken_file_fails_loudly(make_file: Any) -> None:
    """A range past the end of the file (it shrank) must not end the request quietly short."""
    path = make_file(100_000, seed=2)

    async def go() -> None:
        done = asyncio.Event()

        async def reader(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            await r.read()
            w.close()
            await w.wait_closed()
            done.set()

        server = await asyncio.start_server(reader, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        loop = asyncio.get_running_loop()
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setblocking(False)
        transport, _ = await loop.create_connection(asyncio.Protocol, sock=sock)
        with SourceFile(str(path)) as source:
            body = FileRange(source._fd, source.path, 50_000, 80_000)
            with pytest.raises(SourceError, match="shrank"):
                await httpbody.send_file_range(transport, body, body.length)
        transport.close()
        await done.wait()
        server.close()
        await server.wait_closed()

    asyncio.run(go())


def test_a_body_past_the_end_of_the_file_is_a_source_error(seaweed: SeaweedServer, seaweed_bucket: str,
                                                          make_file: Any) -> None:
    """If the file shrinks under a part being sent, the request fails with SourceError (not
    a retried network error) and the server keeps nothing for that part."""
    path = make_file(6 * MiB)

    async def go() -> None:
        async with AioS3Store.open(UploadConfig(endpoint_url=seaweed.endpoint_url)) as store:
            options = ObjectOptions(checksum=ChecksumAlgorithm.NONE)
            upload_id = await store.create_multipart(seaweed_bucket, "short", options)
            with SourceFile(str(path)) as source:
                body = FileRange(source._fd, source.path, 0, 6 * MiB + 4096)
                with pytest.raises(SourceError, match="shrank"):
                    await store.upload_part(seaweed_bucket, "short", upload_id, 1, body, None, options)
            assert not (await store.list_parts(seaweed_bucket, "short", upload_id, options)).parts
            await store.abort(seaweed_bucket, "short", upload_id, options)

    anyio.run(go)
