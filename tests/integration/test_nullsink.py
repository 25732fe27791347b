"""The benchmark's null sink must keep speaking enough S3 for every client, or `make bench`
measures failures: an upload through it completes and HEAD reports what was sent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from bigupload import Uploader, UploadConfig

from tests.conftest import MiB




@pytest.mark.parametrize("size", [12 * MiB + 5, 3 * MiB])
def test_upload_through_the_null_sink(nullsink: str, make_file: Any, tmp_path: Path, size: int) -> None:
    path = make_file(size)
    config = UploadConfig(endpoint_url=nullsink, part_size=5 * MiB)

    async def go() -> Any:
        async with Uploader(config, journal=tmp_path / "j.db") as up:
            return await up.upload_file(path, "bench", "k")

    result = anyio.run(go)
    assert result.size == size and result.parts == -(-size // (5 * MiB))


def test_boto3_defaults_through_the_null_sink(nullsink: str, make_file: Any) -> None:
    """boto3's defaults exercise Expect: 100-continue and its own checksum framing."""
    import boto3

    path = make_file(12 * MiB + 5)
    client = boto3.client("s3", endpoint_url=nullsink)
    client.upload_file(str(path), "bench", "b3")
    assert client.head_object(Bucket="bench", Key="b3")["ContentLength"] == 12 * MiB + 5
    client.close()
