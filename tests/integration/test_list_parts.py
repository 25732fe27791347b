"""ListParts against SeaweedFS and moto: one page at a time with --max-parts and
--part-number-marker (the next marker said), every page without them, and what these
servers list (sizes, ETags, LastModified, the upload's storage class; neither lists part
checksums, Initiator, Owner or the abort rule: tests/cli/test_s3_fields.py has a stub that does)."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from typing import Any

import anyio
import pytest

from bigupload import UploadConfig, Uploader
from bigupload.testing import MotoServer, SeaweedServer

pytestmark = pytest.mark.integration


def cli(*args: str) -> list[dict[str, Any]]:
    result = subprocess.run([sys.executable, "-m", "bigupload.cli", *args], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.fixture(params=["seaweed", "moto"])
def server_and_upload(
        request: pytest.FixtureRequest) -> tuple[SeaweedServer | MotoServer, str, str]:
    server = request.getfixturevalue("moto_server" if request.param == "moto" else "seaweed")
    bucket = request.getfixturevalue(f"{request.param}_bucket")
    client = server.boto3_client()
    upload_id = client.create_multipart_upload(Bucket=bucket, Key="k",
                                               ChecksumAlgorithm="CRC32")["UploadId"]
    for n in range(1, 6):  # tiny parts: both check the 5 MiB minimum only at completion
        client.upload_part(Bucket=bucket, Key="k", UploadId=upload_id, PartNumber=n,
                           Body=bytes([n]) * n, ChecksumAlgorithm="CRC32")
    return server, bucket, upload_id


def test_pages_with_max_parts_and_marker(server_and_upload: Any) -> None:
    server, bucket, upload_id = server_and_upload
    common = [f"s3://{bucket}/k", "--upload-id", upload_id, "--endpoint-url",
              server.endpoint_url, "--json"]
    *first, summary = cli("parts", *common, "--max-parts", "2")
    assert [p["part_number"] for p in first] == [1, 2]
    assert summary["is_truncated"] is True and summary["next_part_number_marker"] == 2
    *second, summary = cli("parts", *common, "--max-parts", "2", "--part-number-marker", "2")
    assert [p["part_number"] for p in second] == [3, 4]
    assert summary["next_part_number_marker"] == 4
    *last, summary = cli("parts", *common, "--part-number-marker", "4")
    assert [(p["part_number"], p["size"]) for p in last] == [(5, 5)]
    assert summary["is_truncated"] is False
    *every, summary = cli("parts", *common)
    assert [p["size"] for p in every] == [1, 2, 3, 4, 5] and summary["parts"] == 5
    # LastModified as ISO 8601 in UTC, whatever zone the server wrote it in
    modified = datetime.datetime.fromisoformat(every[0]["last_modified"].replace("Z", "+00:00"))
    assert modified.utcoffset() == datetime.timedelta(0)
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs(modified - now) < datetime.timedelta(hours=1)
    assert summary["upload_id"] == upload_id and summary["key"] == "k"


def test_the_api_pages_the_same_way(server_and_upload: Any) -> None:
    server, bucket, upload_id = server_and_upload

    async def go() -> list[list[int]]:
        pages = []
        async with Uploader(UploadConfig(endpoint_url=server.endpoint_url)) as up:
            marker = 0
            while True:
                page = await up.list_parts(bucket, "k", upload_id, max_parts=2,
                                           part_number_marker=marker)
                pages.append([p.number for p in page.parts])
                if not page.is_truncated:
                    return pages
                assert page.next_part_number_marker is not None
                marker = page.next_part_number_marker

    assert anyio.run(go) == [[1, 2], [3, 4], [5]]
