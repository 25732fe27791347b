from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bigupload import upload_file_sync
from bigupload.config import ChecksumAlgorithm, GiB, KiB, MiB, UploadConfig, format_size, parse_size
from bigupload.errors import ConfigError


@pytest.mark.parametrize("text,expected", [
    ("64MiB", 64 * MiB), ("64MB", 64 * MiB), ("64M", 64 * MiB), ("5GiB", 5 * GiB),
    ("1048576", MiB), ("8 KiB", 8 * KiB), ("1.5GiB", 3 * GiB // 2), ("0", 0), ("10b", 10),
])
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["64XB", "", "MiB", "-5MiB", "1.3B", "5 5", "iB"])
def test_parse_size_rejects_malformed(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_size(text)


def test_format_size() -> None:
    assert format_size(16 * MiB) == "16.0 MiB"
    assert format_size(12) == "12 B"


@pytest.mark.parametrize("kwargs,match", [
    ({"concurrency": 0}, "concurrency"),
    ({"concurrency": 100_000}, "concurrency"),
    ({"memory_limit": MiB}, "smaller than one part"),
    ({"memory_limit": 8 * MiB, "part_size": 16 * MiB}, "smaller than one part"),
    ({"max_attempts": 0}, "attempts"),
    ({"sse_c_key": b"short"}, "32 bytes"),
    ({"sse_kms_key_id": "k"}, "aws:kms"),
    ({"checksum": ChecksumAlgorithm.SHA1, "checksum_type": "FULL_OBJECT"},
     "sha1 checksums can only be composite"),
    ({"checksum": ChecksumAlgorithm.SHA256, "checksum_type": "FULL_OBJECT"},
     "sha256 checksums can only be composite"),
])
def test_invalid_config(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        UploadConfig(**kwargs)  # type: ignore[arg-type]


def test_checksum_names() -> None:
    assert ChecksumAlgorithm.parse("CRC32C") is ChecksumAlgorithm.CRC32C
    assert ChecksumAlgorithm.CRC64NVME.s3_name == "CRC64NVME"
    assert ChecksumAlgorithm.parse("sha1").s3_name == "SHA1"  # botocore's ChecksumSHA1
    with pytest.raises(ConfigError, match="unknown checksum"):
        ChecksumAlgorithm.parse("md5")


def test_effective_memory_limit() -> None:
    assert UploadConfig(concurrency=4).effective_memory_limit(16 * MiB) == 64 * MiB
    assert UploadConfig(memory_limit=32 * MiB).effective_memory_limit(16 * MiB) == 32 * MiB
    with pytest.raises(ConfigError):
        UploadConfig(memory_limit=32 * MiB).effective_memory_limit(64 * MiB)


def test_sse_c_key_is_not_in_repr() -> None:
    assert "sse_c_key" not in repr(UploadConfig(sse_c_key=b"k" * 32))


def test_sse_c_over_plain_http_is_refused_by_the_engine(tmp_path: Path) -> None:
    """Issue 13 item 4: the API refuses what the CLI refuses, before anything is sent."""
    key = b"k" * 32
    with pytest.raises(ConfigError, match="SSE-C over plain http"):
        UploadConfig(endpoint_url="http://127.0.0.1:9", sse_c_key=key)
    with pytest.raises(ConfigError, match="SSE-C over plain http"):
        UploadConfig(endpoint_url="HTTP://127.0.0.1:9", sse_c_key=key)
    with pytest.raises(ConfigError, match="SSE-C over plain http"):
        dataclasses.replace(UploadConfig(sse_c_key=key), endpoint_url="http://127.0.0.1:9")
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 10)
    with pytest.raises(ConfigError, match="SSE-C over plain http"):
        upload_file_sync(path, "bucket", "key", config=UploadConfig(
            endpoint_url="http://127.0.0.1:9", sse_c_key=key), journal=tmp_path / "j.sqlite3")
    assert UploadConfig(endpoint_url="https://127.0.0.1:9", sse_c_key=key).sse_c_key == key
    assert UploadConfig(sse_c_key=key).endpoint_url is None  # AWS itself: https


@pytest.mark.parametrize("url,match", [
    ("127.0.0.1:9000", "no scheme: write http://127.0.0.1:9000"),
    ("localhost:9000", "no scheme: write http://localhost:9000"),
    ("s3.example.com", "no scheme: write http://s3.example.com"),
    ("ftp://127.0.0.1:9000", "not http"),
    ("http://", "not http"),
])
def test_endpoint_without_a_scheme_says_what_to_write(url: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        UploadConfig(endpoint_url=url)
