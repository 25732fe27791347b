"""Against a real SeaweedFS on 127.0.0.1: bytes on the server equal bytes on disk, the
server validates our checksum headers, and the header sent is ours (no second body hash)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import anyio
import crc32c
import pytest

from bigupload import ChecksumAlgorithm, Uploader, UploadConfig
from bigupload import checksum as ck
from bigupload.client import AioS3Store, CompletedPart, ObjectOptions
from bigupload.errors import IntegrityError, NotFoundError
from bigupload.testing import SeaweedServer
from tests.conftest import MiB, list_uploads, read_object

pytestmark = pytest.mark.integration


def cfg(server: SeaweedServer, **kwargs: Any) -> UploadConfig:
    return UploadConfig(endpoint_url=server.endpoint_url, backoff_base_s=0.01, **kwargs)


@pytest.mark.parametrize("algorithm", [ChecksumAlgorithm.CRC32C, ChecksumAlgorithm.CRC32,
                                       ChecksumAlgorithm.NONE])
def test_multipart_roundtrip(seaweed: SeaweedServer, seaweed_bucket: str, make_file: Any,
                             tmp_path: Path, algorithm: ChecksumAlgorithm) -> None:
    path = make_file(37 * MiB + 11)

    async def go() -> Any:
        async with Uploader(cfg(seaweed, part_size=8 * MiB, checksum=algorithm),
                            journal=tmp_path / "j.db") as up:
            return await up.upload_file(path, seaweed_bucket, "a/b c/ünïcode.bin")

    result = anyio.run(go)
    assert read_object(seaweed, seaweed_bucket, "a/b c/ünïcode.bin") == path.read_bytes()
    assert result.parts == 5 and result.size == path.stat().st_size
    head = seaweed.boto3_client().head_object(Bucket=seaweed_bucket, Key="a/b c/ünïcode.bin",
                                              ChecksumMode="ENABLED")
    if algorithm is not ChecksumAlgorithm.NONE:
        assert head[f"Checksum{algorithm.s3_name}"] == result.checksum
        whole = ck.compute(algorithm, path.read_bytes())
        assert result.full_object_checksum == ck.encode(whole)
    assert not list_uploads(seaweed, seaweed_bucket)


def test_single_put_and_empty_file(seaweed: SeaweedServer, seaweed_bucket: str, make_file: Any,
                                   tmp_path: Path) -> None:
    for size in (0, 1000, 5 * MiB):
        path = make_file(size, name=f"f{size}")
        result = anyio.run(lambda: _upload(seaweed, path, seaweed_bucket, f"k{size}", tmp_path))
        assert read_object(seaweed, seaweed_bucket, f"k{size}") == path.read_bytes()
        assert result.parts == 1


async def _upload(server: SeaweedServer, path: Path, bucket: str, key: str, tmp_path: Path,
                  **kwargs: Any) -> Any:
    async with Uploader(cfg(server, **kwargs), journal=tmp_path / "j.db") as up:
        return await up.upload_file(path, bucket, key)


def test_header_sent_is_ours_and_body_not_hashed_twice(seaweed: SeaweedServer, seaweed_bucket: str,
                                                       make_file: Any) -> None:
    """The UploadPart request carries exactly our precomputed CRC32C, UNSIGNED-PAYLOAD for
    SigV4, and no checksum of botocore's own (no trailer, no second algorithm)."""
    data = make_file(6 * MiB).read_bytes()
    captured: list[dict[str, str]] = []

    async def go() -> None:
        async with AioS3Store.open(cfg(seaweed)) as store:
            store._client.meta.events.register(
                "before-send.s3.UploadPart",
                lambda request, **kw: captured.append({
                    k.lower(): v.decode() if isinstance(v, bytes) else v
                    for k, v in request.headers.items()}))
            options = ObjectOptions(checksum=ChecksumAlgorithm.CRC32C)
            upload_id = await store.create_multipart(seaweed_bucket, "h", options)
            ours = ck.encode(ck.compute(ChecksumAlgorithm.CRC32C, data))
            await store.upload_part(seaweed_bucket, "h", upload_id, 1, bytearray(data), ours, options)
            with pytest.raises(IntegrityError):  # the server really checks the header
                wrong = ck.encode(b"\0\0\0\0")
                await store.upload_part(seaweed_bucket, "h", upload_id, 2, bytearray(data), wrong, options)
            await store.abort(seaweed_bucket, "h", upload_id, options)

    anyio.run(go)
    headers = captured[0]
    assert headers["x-amz-checksum-crc32c"] == ck.encode(ck.compute(ChecksumAlgorithm.CRC32C, data))
    assert headers["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
    assert not [h for h in headers if h.startswith("x-amz-checksum-") and h != "x-amz-checksum-crc32c"]
    assert "x-amz-trailer" not in headers and "content-md5" not in headers


def test_adopt_existing_upload_verifies_parts(seaweed: SeaweedServer, seaweed_bucket: str,
                                              make_file: Any, tmp_path: Path) -> None:
    """--upload-id: an upload started by another tool; listed parts are checked against the
    file's MD5 (ETag) before they are kept, and a wrong one is re-sent."""
    path = make_file(20 * MiB)
    data = path.read_bytes()
    client = seaweed.boto3_client()
    upload_id = client.create_multipart_upload(Bucket=seaweed_bucket, Key="adopt")["UploadId"]
    client.upload_part(Bucket=seaweed_bucket, Key="adopt", UploadId=upload_id, PartNumber=1,
                       Body=data[: 8 * MiB])
    client.upload_part(Bucket=seaweed_bucket, Key="adopt", UploadId=upload_id, PartNumber=2,
                       Body=b"wrong" * (8 * MiB // 5))

    async def go() -> Any:
        async with Uploader(cfg(seaweed, part_size=8 * MiB, checksum=ChecksumAlgorithm.NONE),
                            journal=tmp_path / "j.db") as up:
            return await up.upload_file(path, seaweed_bucket, "adopt", upload_id=upload_id)

    result = anyio.run(go)
    assert result.resumed_parts == 1
    assert result.sent_bytes == len(data) - 8 * MiB
    assert read_object(seaweed, seaweed_bucket, "adopt") == data


def test_server_refuses_a_wrong_full_object_checksum(seaweed: SeaweedServer, seaweed_bucket: str,
                                                     make_file: Any) -> None:
    """SeaweedFS checks the whole-object CRC that a FULL_OBJECT completion carries: a wrong
    one is BadDigest and writes no object; the right one (combined from the part CRCs, never
    re-reading the file) is accepted and reported back by HEAD."""
    data = make_file(11 * MiB).read_bytes()
    chunks = [data[: 6 * MiB], data[6 * MiB:]]

    async def go(full_value: str) -> None:
        async with AioS3Store.open(cfg(seaweed)) as store:
            options = ObjectOptions(checksum=ChecksumAlgorithm.CRC32C, checksum_type="FULL_OBJECT")
            upload_id = await store.create_multipart(seaweed_bucket, "full", options)
            parts = []
            for n, chunk in enumerate(chunks, 1):
                value = ck.encode(ck.compute(ChecksumAlgorithm.CRC32C, chunk))
                receipt = await store.upload_part(seaweed_bucket, "full", upload_id, n,
                                                  bytearray(chunk), value, options)
                parts.append(CompletedPart(n, receipt.etag, value))
            try:
                await store.complete(seaweed_bucket, "full", upload_id, parts, options,
                                     full_checksum=full_value, size=len(data))
            finally:
                with contextlib.suppress(NotFoundError):
                    await store.abort(seaweed_bucket, "full", upload_id, options)

    wrong = ck.encode(b"\1\2\3\4")
    with pytest.raises(IntegrityError):
        anyio.run(go, wrong)
    assert not [o for o in seaweed.boto3_client().list_objects_v2(Bucket=seaweed_bucket)
                .get("Contents", [])]
    right = ck.encode(crc32c.crc32c(data).to_bytes(4, "big"))  # an independent oracle
    anyio.run(go, right)
    head = seaweed.boto3_client().head_object(Bucket=seaweed_bucket, Key="full", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32C"] == right
