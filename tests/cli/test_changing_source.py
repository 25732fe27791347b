"""A source that changes between runs is refused before anything is sent, with a message
that says what changed and how to start over; one that changes during the upload never
becomes an object mixing old and new bytes. The real CLI, SeaweedFS behind the proxy."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bigupload.testing import SeaweedServer
from tests.cli.test_cli import cli
from tests.conftest import MiB, list_uploads, read_object
from tests.faultproxy import FaultProxy, on, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def proxy(seaweed: SeaweedServer) -> Iterator[FaultProxy]:
    with FaultProxy(int(seaweed.endpoint_url.rsplit(":", 1)[1])) as p:
        yield p


def args(path: Path, bucket: str, proxy: FaultProxy, journal: Path) -> list[str]:
    return ["cp", str(path), f"s3://{bucket}/k", "--endpoint-url", proxy.endpoint_url,
            "--journal", str(journal), "--part-size", "5MiB", "--concurrency", "2"]


def interrupted_upload(path: Path, bucket: str, proxy: FaultProxy, journal: Path) -> None:
    """Start an upload and SIGKILL it once four parts were answered."""
    process = subprocess.Popen([sys.executable, "-m", "bigupload.cli", *args(path, bucket, proxy, journal)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: sum(r.relayed for r in proxy.records("UploadPart")) >= 4)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()


def change(path: Path, how: str) -> None:
    st = path.stat()
    if how == "same size, new bytes":
        with open(path, "r+b") as f:
            f.seek(st.st_size // 2 + 12345)
            f.write(b"new bytes")
    elif how == "longer":
        with open(path, "ab") as f:
            f.write(b"appended")
    elif how == "touched":
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    elif how == "replaced":
        copy = path.with_name("copy")  # same bytes and times, a new inode renamed over it
        copy.write_bytes(path.read_bytes())
        os.utime(copy, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.replace(copy, path)


@pytest.mark.parametrize("how,words", [
    ("same size, new bytes", "modification time"),
    ("longer", "size"),
    ("touched", "modification time"),
    ("replaced", "inode (the file was replaced)"),
])
def test_change_between_runs_is_refused_before_sending(
        proxy: FaultProxy, seaweed: SeaweedServer, seaweed_bucket: str, make_file: Any,
        tmp_path: Path, how: str, words: str) -> None:
    path = make_file(40 * MiB)
    journal = tmp_path / "j.sqlite3"
    interrupted_upload(path, seaweed_bucket, proxy, journal)
    change(path, how)
    before = len(proxy.log)
    refused = cli(*args(path, seaweed_bucket, proxy, journal))
    assert refused.returncode == 8, refused.stderr
    line = refused.stderr.strip().splitlines()[-1]
    assert "changed since its upload" in line and words in line and "--restart" in line, line
    assert proxy.log[before:] == []  # not a single request
    restarted = cli(*args(path, seaweed_bucket, proxy, journal), "--restart")
    assert restarted.returncode == 0, restarted.stderr
    assert read_object(seaweed, seaweed_bucket, "k") == path.read_bytes()
    assert list_uploads(seaweed, seaweed_bucket) == []  # the old upload was aborted


def test_change_during_upload_fails_without_an_object(
        proxy: FaultProxy, seaweed: SeaweedServer, seaweed_bucket: str, make_file: Any,
        tmp_path: Path) -> None:
    path = make_file(40 * MiB)
    hold = proxy.hold(on("UploadPart", part=5))
    process = subprocess.Popen([sys.executable, "-m", "bigupload.cli",
                                *args(path, seaweed_bucket, proxy, tmp_path / "j.sqlite3")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(hold.reached.is_set)
    with open(path, "r+b") as f:  # rewrite a part that is not sent yet, keeping the size
        f.seek(7 * 5 * MiB)
        f.write(os.urandom(MiB))
    time.sleep(0.01)
    hold.release()
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 3, stderr
    assert "changed during the upload" in stderr and "no object was written" in stderr
    client = seaweed.boto3_client()
    assert client.list_objects_v2(Bucket=seaweed_bucket).get("KeyCount", 0) == 0
    assert list_uploads(seaweed, seaweed_bucket) == []
