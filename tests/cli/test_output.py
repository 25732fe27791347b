"""What the command writes: into a closed pipe it stops quietly with exit 141, as Unix
tools do (issue 13 item 14)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bigupload.cli import EXIT_CODES, main
from bigupload.testing import SeaweedServer


def run_into_closed_pipe(*args: str) -> subprocess.CompletedProcess[str]:
    """The command with stdout a pipe whose reader has already gone (`… | head -0`)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run([sys.executable, "-m", "bigupload.cli", *args], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    root.mkdir()
    for i in range(50):
        (root / f"f{i}.txt").write_text(str(i))
    return root


@pytest.mark.parametrize("as_json", [[], ["--json"]])
def test_a_dry_run_into_a_closed_pipe_stops_quietly(tree: Path, as_json: list[str]) -> None:
    result = run_into_closed_pipe("cp", str(tree), "s3://bucket/p/", "-r", "--dry-run", *as_json)
    assert result.returncode == 141
    assert result.stderr == ""


class ClosedStdout(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_main_returns_141_when_stdout_is_closed(tree: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdout", ClosedStdout())
    assert main(["cp", str(tree), "s3://bucket/p/", "-r", "--dry-run"]) == 141
    assert capsys.readouterr().err == ""


def test_141_is_in_the_exit_code_table() -> None:
    assert "\n  141  stdout was closed" in EXIT_CODES
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "| 141 |" in readme


@pytest.fixture
def upload_with_parts(seaweed: SeaweedServer, seaweed_bucket: str) -> Iterator[tuple[str, str]]:
    client: Any = seaweed.boto3_client()
    upload_id = client.create_multipart_upload(Bucket=seaweed_bucket, Key="k")["UploadId"]
    for number in (1, 2, 3):
        client.upload_part(Bucket=seaweed_bucket, Key="k", UploadId=upload_id,
                           PartNumber=number, Body=b"x" * 1000)
    yield seaweed_bucket, upload_id


@pytest.mark.integration
@pytest.mark.parametrize("as_json", [[], ["--json"]])
def test_parts_and_ls_uploads_into_a_closed_pipe_stop_quietly(
        seaweed: SeaweedServer, upload_with_parts: tuple[str, str], as_json: list[str]) -> None:
    bucket, upload_id = upload_with_parts
    common = ["--endpoint-url", seaweed.endpoint_url, *as_json]
    result = run_into_closed_pipe("parts", f"s3://{bucket}/k", "--upload-id", upload_id, *common)
    assert (result.returncode, result.stderr) == (141, "")
    result = run_into_closed_pipe("ls-uploads", f"s3://{bucket}", *common)
    assert (result.returncode, result.stderr) == (141, "")
