"""UploadPart's parameters against SeaweedFS: SHA-1 checksums (composite only) and
Content-MD5 per part (and on a single PUT), each of which the server verifies (a wrong
value is BadDigest). Its answers' fields, which SeaweedFS does not send, are checked
against a stub in tests/cli/test_s3_fields.py."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import crc32c
import pytest

from bigupload import ChecksumAlgorithm, UploadConfig, Uploader, tlssend
from bigupload.client import AioS3Store, ObjectOptions
from bigupload.errors import IntegrityError
from bigupload.testing import SeaweedServer, tls_certificates
from tests.conftest import MiB, list_uploads, read_object

pytestmark = pytest.mark.integration


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bigupload.cli", *args], capture_output=True,
                          text=True, timeout=300)


def test_sha1_multipart_is_composite(
        seaweed: SeaweedServer, seaweed_bucket: str, make_file: Any, tmp_path: Path) -> None:
    path = make_file(12 * MiB + 7)
    data = path.read_bytes()
    result = cli("cp", str(path), f"s3://{seaweed_bucket}/sha1.bin", "--checksum", "sha1",
                 "--part-size", "5MiB", "--endpoint-url", seaweed.endpoint_url,
                 "--journal", str(tmp_path / "j.db"), "--json")
    assert result.returncode == 0, result.stderr
    event = json.loads(result.stdout)
    assert read_object(seaweed, seaweed_bucket, "sha1.bin") == data
    # S3's composite SHA-1: the SHA-1 of the concatenated raw part SHA-1s, then -N
    parts = [data[i:i + 5 * MiB] for i in range(0, len(data), 5 * MiB)]
    composite = hashlib.sha1(b"".join(hashlib.sha1(p).digest() for p in parts)).digest()
    expected = base64.b64encode(composite).decode() + "-3"
    assert event["checksum_algorithm"] == "sha1" and event["checksum_type"] == "COMPOSITE"
    assert event["checksum"] == expected and event["verified"] is True
    head = seaweed.boto3_client().head_object(Bucket=seaweed_bucket, Key="sha1.bin",
                                              ChecksumMode="ENABLED")
    assert head["ChecksumSHA1"] == expected
    assert not list_uploads(seaweed, seaweed_bucket)


def test_sha1_full_object_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    file = tmp_path / "f.bin"
    file.write_bytes(b"x" * 100)
    result = cli("cp", str(file), "s3://bucket/k", "--checksum", "sha1", "--checksum-type",
                 "full-object", "--endpoint-url", "http://127.0.0.1:9")
    assert result.returncode == 2
    assert result.stderr.strip() == ("bigupload: error: sha1 checksums can only be composite "
                                     "(S3's rule)")


def test_sha1_single_put(seaweed: SeaweedServer, seaweed_bucket: str, make_file: Any,
                         tmp_path: Path) -> None:
    path = make_file(1000)
    result = cli("cp", str(path), f"s3://{seaweed_bucket}/small", "--checksum", "sha1",
                 "--endpoint-url", seaweed.endpoint_url, "--journal", str(tmp_path / "j.db"),
                 "--json")
    assert result.returncode == 0, result.stderr
    event = json.loads(result.stdout)
    assert event["checksum"] == base64.b64encode(hashlib.sha1(path.read_bytes()).digest()).decode()
    assert event["verified"] is True


def test_a_wrong_sha1_is_bad_digest(seaweed: SeaweedServer, seaweed_bucket: str) -> None:
    """SeaweedFS checks x-amz-checksum-sha1: what --checksum sha1 sends protects the part."""
    options = ObjectOptions(checksum=ChecksumAlgorithm.SHA1, checksum_type="COMPOSITE")
    wrong = base64.b64encode(hashlib.sha1(b"other bytes").digest()).decode()

    async def go() -> None:
        async with AioS3Store.open(UploadConfig(endpoint_url=seaweed.endpoint_url)) as store:
            upload_id = await store.create_multipart(seaweed_bucket, "k", options)
            with pytest.raises(IntegrityError, match="BadDigest"):
                await store.upload_part(seaweed_bucket, "k", upload_id, 1, b"abc", wrong, options)
            right = base64.b64encode(hashlib.sha1(b"abc").digest()).decode()
            receipt = await store.upload_part(seaweed_bucket, "k", upload_id, 1, b"abc", right,
                                              options)
            assert receipt.checksum == right
            await store.abort(seaweed_bucket, "k", upload_id, options)

    anyio.run(go)


def test_content_md5_upload(seaweed: SeaweedServer, seaweed_bucket: str, make_file: Any,
                            tmp_path: Path) -> None:
    """--content-md5 on a multipart upload and on a single PUT: SeaweedFS checks each."""
    for size, key in ((12 * MiB + 3, "md5-multi"), (4000, "md5-single")):
        path = make_file(size, name=key)
        result = cli("cp", str(path), f"s3://{seaweed_bucket}/{key}", "--content-md5",
                     "--part-size", "5MiB", "--endpoint-url", seaweed.endpoint_url,
                     "--journal", str(tmp_path / "j.db"), "--json")
        assert result.returncode == 0, result.stderr
        assert read_object(seaweed, seaweed_bucket, key) == path.read_bytes()


def test_a_wrong_content_md5_is_bad_digest(seaweed: SeaweedServer, seaweed_bucket: str) -> None:
    options = ObjectOptions(checksum=ChecksumAlgorithm.CRC32C, checksum_type="COMPOSITE")
    crc = base64.b64encode(crc32c.crc32c(b"abc").to_bytes(4, "big")).decode()

    def md5(data: bytes) -> str:
        return base64.b64encode(hashlib.md5(data).digest()).decode()

    async def go() -> None:
        async with AioS3Store.open(UploadConfig(endpoint_url=seaweed.endpoint_url)) as store:
            upload_id = await store.create_multipart(seaweed_bucket, "k", options)
            with pytest.raises(IntegrityError, match="BadDigest"):
                await store.upload_part(seaweed_bucket, "k", upload_id, 1, b"abc", crc, options,
                                        content_md5=md5(b"abd"))
            receipt = await store.upload_part(seaweed_bucket, "k", upload_id, 1, b"abc", crc,
                                              options, content_md5=md5(b"abc"))
            assert receipt.etag == f'"{hashlib.md5(b"abc").hexdigest()}"'
            with pytest.raises(IntegrityError, match="BadDigest"):
                await store.put_object(seaweed_bucket, "small", b"abc", crc, options,
                                       content_md5=md5(b"abd"))
            await store.abort(seaweed_bucket, "k", upload_id, options)

    anyio.run(go)


def test_a_part_refused_for_its_md5_is_read_and_sent_again(
        seaweed: SeaweedServer, seaweed_bucket: str, make_file: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A BadDigest for Content-MD5 is an integrity failure like a checksum's: the part is
    read again (its MD5 with it) and sent again."""
    from bigupload.upload import parts

    path = make_file(11 * MiB)
    real = parts.part_digests
    spoiled: list[int] = []
    reads: list[int] = []

    def first_md5_wrong(source: Any, part: Any, algorithm: Any, content_md5: bool) -> Any:
        reads.append(part.number)
        raw, md5 = real(source, part, algorithm, content_md5)
        if part.number == 2 and not spoiled:
            spoiled.append(part.number)
            return raw, base64.b64encode(hashlib.md5(b"not the part").digest()).decode()
        return raw, md5

    monkeypatch.setattr(parts, "part_digests", first_md5_wrong)
    config = UploadConfig(endpoint_url=seaweed.endpoint_url, part_size=5 * MiB,
                          content_md5=True, backoff_base_s=0.01)

    async def go() -> Any:
        async with Uploader(config, journal=tmp_path / "j.db") as up:
            return await up.upload_file(path, seaweed_bucket, "retried")

    result = anyio.run(go)
    assert spoiled == [2] and result.parts == 3
    assert sorted(reads) == [1, 2, 2, 3]  # refused, so read again (its MD5 too) and resent
    assert read_object(seaweed, seaweed_bucket, "retried") == path.read_bytes()


# over https, where parts are sent from worker threads (tlssend) and a CRC may follow the
# body as a trailing checksum: Content-MD5 and SHA-1 take the header form there

@pytest.fixture(scope="module")
def tls_seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SeaweedServer, str]]:
    ca, cert, key = tls_certificates(tmp_path_factory.mktemp("tls"))
    with SeaweedServer(tls=(cert, key)) as server:
        yield server, ca  # type: ignore[misc]


@pytest.mark.parametrize("algorithm,content_md5", [
    (ChecksumAlgorithm.CRC32C, True), (ChecksumAlgorithm.SHA1, False),
    (ChecksumAlgorithm.SHA1, True),
])
def test_over_https_content_md5_and_sha1_go_as_headers(
        tls_seaweed: tuple[SeaweedServer, str], make_file: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, algorithm: ChecksumAlgorithm, content_md5: bool) -> None:
    server, ca = tls_seaweed
    monkeypatch.setenv("AWS_CA_BUNDLE", ca)
    bucket = f"t-{uuid.uuid4().hex[:16]}"
    server.boto3_client().create_bucket(Bucket=bucket)
    seen: list[tuple[str, dict[str, str], bool]] = []
    original = tlssend.TlsSender.exchange

    async def exchange(self: tlssend.TlsSender, method: str, url: str, headers: Any, body: Any,
                       trailer: Any = None) -> tlssend.Answer:
        text = {k.lower(): v.decode() if isinstance(v, bytes) else v
                for k, v in dict(headers).items()}
        seen.append((url, text, trailer is not None))
        return await original(self, method, url, headers, body, trailer)

    monkeypatch.setattr(tlssend.TlsSender, "exchange", exchange)
    path = make_file(11 * MiB)
    data = path.read_bytes()
    config = UploadConfig(endpoint_url=server.https_endpoint_url, part_size=5 * MiB,
                          checksum=algorithm, content_md5=content_md5)

    async def go() -> Any:
        async with Uploader(config, journal=tmp_path / "j.db") as up:
            return await up.upload_file(path, bucket, "big")

    result = anyio.run(go)
    assert read_object(server, bucket, "big") == data and result.verified
    parts = sorted((s for s in seen if "partNumber=" in s[0]),
                   key=lambda s: int(s[0].split("partNumber=")[1].split("&")[0]))
    assert len(parts) == 3
    header = f"x-amz-checksum-{algorithm.value}"
    for number, (_, headers, trailer) in enumerate(parts, 1):
        chunk = data[(number - 1) * 5 * MiB:number * 5 * MiB]
        assert not trailer and header in headers
        assert headers.get("content-md5") == (
            base64.b64encode(hashlib.md5(chunk).digest()).decode() if content_md5 else None)
