"""Against moto's server mode: it pages ListParts at 1,000 and enforces the 5 MiB minimum
part size at completion."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from bigupload import ChecksumAlgorithm, Uploader, UploadConfig
from bigupload.client import AioS3Store, ObjectOptions
from bigupload.cli import main as cli_main
from bigupload.errors import NotFoundError
from bigupload.testing import MotoServer
from tests.conftest import MiB, list_uploads, read_object

pytestmark = pytest.mark.integration


def test_roundtrip(moto_server: MotoServer, moto_bucket: str, make_file: Any, tmp_path: Path) -> None:
    path = make_file(12 * MiB + 1)

    async def go() -> Any:
        config = UploadConfig(endpoint_url=moto_server.endpoint_url, part_size=5 * MiB)
        async with Uploader(config, journal=tmp_path / "j.db") as up:
            return await up.upload_file(path, moto_bucket, "obj")

    result = anyio.run(go)
    assert read_object(moto_server, moto_bucket, "obj") == path.read_bytes()
    assert result.parts == 3
    assert not list_uploads(moto_server, moto_bucket)


def test_list_parts_follows_pages_past_1000(moto_server: MotoServer, moto_bucket: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    client = moto_server.boto3_client()
    upload_id = client.create_multipart_upload(Bucket=moto_bucket, Key="many")["UploadId"]
    for n in range(1, 1106):  # tiny parts: moto checks the minimum only at completion
        client.upload_part(Bucket=moto_bucket, Key="many", UploadId=upload_id, PartNumber=n,
                           Body=n.to_bytes(4, "big"))
    first_page = client.list_parts(Bucket=moto_bucket, Key="many", UploadId=upload_id)
    assert first_page["IsTruncated"] and len(first_page["Parts"]) == 1000

    async def go() -> Any:
        async with AioS3Store.open(UploadConfig(endpoint_url=moto_server.endpoint_url)) as store:
            return (await store.list_parts(moto_bucket, "many", upload_id,
                                          ObjectOptions(checksum=ChecksumAlgorithm.NONE))).parts

    parts = anyio.run(go)
    assert [p.number for p in parts] == list(range(1, 1106))
    assert all(p.size == 4 for p in parts)
    code = cli_main(["parts", f"s3://{moto_bucket}/many", "--upload-id", upload_id,
                     "--endpoint-url", moto_server.endpoint_url, "--json"])
    assert code == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if '"part"' in line]
    assert len(lines) == 1105
    client.abort_multipart_upload(Bucket=moto_bucket, Key="many", UploadId=upload_id)


def test_no_such_bucket(moto_server: MotoServer, make_file: Any, tmp_path: Path) -> None:
    path = make_file(20 * MiB)

    async def go() -> Any:
        config = UploadConfig(endpoint_url=moto_server.endpoint_url)
        async with Uploader(config, journal=tmp_path / "j.db") as up:
            return await up.upload_file(path, "bucket-that-does-not-exist", "k")

    with pytest.raises(NotFoundError, match="NoSuchBucket") as info:
        anyio.run(go)
    assert info.value.exit_code == 7
