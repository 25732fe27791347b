"""Server-side copies refused on the command line: one line, exit 2, before any
connection is made (the endpoint below has no server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.test_cli import cli

NOWHERE = ["--endpoint-url", "http://127.0.0.1:9", "--max-attempts", "1"]


@pytest.mark.parametrize("args,message", [
    (["s3://src/k", "local.bin"], "downloads are not supported"),
    (["https://other:9000/src/k", "s3://dst/k"], "copies between endpoints are not supported"),
    (["s3://src/k", "s3://dst/k", "--upload-id", "U"], "--upload-id does not apply"),
    (["s3://src/k", "s3://dst/k", "--dask", "local:1"], "--dask does not apply"),
    (["s3://src/k", "s3://dst/k", "--include", "*.jpg"], "applies to prefix copies"),
    (["s3://src/p/", "s3://dst/q/", "-r", "--restart"], "--restart applies to single"),
    (["s3://src/k", "s3://Bad_Bucket/k"], "invalid bucket name"),
])
def test_refused(args: list[str], message: str, tmp_path: Path) -> None:
    result = cli("cp", *args, *NOWHERE, "--journal", str(tmp_path / "j.db"))
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
