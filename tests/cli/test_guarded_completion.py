"""A resume can never write an older file over a newer object (issue 14), through the real
CLI against SeaweedFS, which honours If-None-Match / If-Match on CompleteMultipartUpload
and PutObject and verifies FULL_OBJECT checksums. boto3 is the oracle for what is stored."""

from __future__ import annotations

import base64
import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import crc32c
import pytest

from bigupload.testing import SeaweedServer, journalled_parts
from tests.conftest import MiB, list_uploads, read_object

pytestmark = pytest.mark.integration


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bigupload.cli", *args], capture_output=True,
                          text=True, timeout=300)


def rows(journal: Path) -> list[tuple[str, str | None]]:
    """(state, error) of every upload row, read-only (an absent journal has none)."""
    if not journal.exists():
        return []
    db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    try:
        return [(str(s), e) for s, e in db.execute("SELECT state, error FROM uploads ORDER BY id")]
    finally:
        db.close()


def interrupt(argv: list[str], journal: Path, min_parts: int) -> None:
    """Run the CLI and SIGKILL it once ``min_parts`` are journalled."""
    proc = subprocess.Popen([sys.executable, "-m", "bigupload.cli", *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while journalled_parts(journal) < min_parts:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)


def common(seaweed: SeaweedServer, journal: Path) -> list[str]:
    return ["--endpoint-url", seaweed.endpoint_url, "--journal", str(journal)]


def test_refused_command_leaves_no_trace_and_resume_cannot_overwrite(
        seaweed: SeaweedServer, seaweed_bucket: str, make_file: Any, tmp_path: Path) -> None:
    """Scenario 1: a command that exits 2 used to create and journal an upload first, which
    a later ``resume`` completed over a newer object."""
    a = make_file(40 * MiB, "a.bin", seed=1)
    b = make_file(6 * MiB, "b.bin", seed=2)
    journal = tmp_path / "j.sqlite3"
    url = f"s3://{seaweed_bucket}/k"
    refused = cli("cp", str(a), url, "--memory-limit", "10MiB", *common(seaweed, journal))
    assert refused.returncode == 2, refused.stderr
    assert "smaller than one part" in refused.stderr
    assert rows(journal) == [] and not list_uploads(seaweed, seaweed_bucket)
    assert cli("cp", str(b), url, *common(seaweed, journal)).returncode == 0
    resumed = cli("resume", *common(seaweed, journal))
    assert resumed.returncode == 0, resumed.stderr
    assert read_object(seaweed, seaweed_bucket, "k") == b.read_bytes()


def test_resume_after_another_write_aborts_instead_of_overwriting(
        seaweed: SeaweedServer, seaweed_bucket: str, make_file: Any, tmp_path: Path) -> None:
    """Scenario 2: interrupted upload of A to k, a successful cp of B to k, then resume."""
    a = make_file(100 * MiB, "a.bin", seed=1)
    b = make_file(6 * MiB, "b.bin", seed=2)
    journal = tmp_path / "j.sqlite3"
    url = f"s3://{seaweed_bucket}/k"
    interrupt(["cp", str(a), url, "--part-size", "5MiB", "--concurrency", "2",
               *common(seaweed, journal)], journal, min_parts=3)
    assert cli("cp", str(b), url, *common(seaweed, journal)).returncode == 0
    resumed = cli("resume", *common(seaweed, journal))
    assert resumed.returncode == 8, resumed.stderr
    assert f"{url} changed since this upload began" in resumed.stderr
    assert "nothing written" in resumed.stderr and "--restart" in resumed.stderr
    assert read_object(seaweed, seaweed_bucket, "k") == b.read_bytes()
    assert not [u for u in list_uploads(seaweed, seaweed_bucket) if u["Key"] == "k"]
    assert rows(journal)[0][0] == "superseded"
    assert "changed since this upload began" in (rows(journal)[0][1] or "")
    # nothing is left to resume, and --restart uploads A again on purpose
    assert cli("resume", *common(seaweed, journal)).returncode == 0
    assert read_object(seaweed, seaweed_bucket, "k") == b.read_bytes()
    again = cli("cp", str(a), url, "--part-size", "5MiB", "--restart", *common(seaweed, journal))
    assert again.returncode == 0, again.stderr
    assert read_object(seaweed, seaweed_bucket, "k") == a.read_bytes()


def test_resume_after_an_identical_write_aborts_its_upload(
        seaweed: SeaweedServer, seaweed_bucket: str, make_file: Any, tmp_path: Path) -> None:
    """Interrupted upload of A to k, then the same bytes written by another run (another
    journal, same parts: the same multipart ETag and checksum), then the same command:
    the completion is answered 412 while our upload is still open, so the identical object
    is not ours. The command succeeds (the object is right) and says so, but its upload is
    aborted: nothing stays billed."""
    a = make_file(30 * MiB, "a.bin", seed=1)
    journal = tmp_path / "j.sqlite3"
    url = f"s3://{seaweed_bucket}/k"
    argv = ["cp", str(a), url, "--part-size", "5MiB", "--concurrency", "1"]
    interrupt([*argv, *common(seaweed, journal)], journal, min_parts=2)
    [left] = [u["UploadId"] for u in list_uploads(seaweed, seaweed_bucket) if u["Key"] == "k"]
    other = cli(*argv, *common(seaweed, tmp_path / "other.sqlite3"))
    assert other.returncode == 0, other.stderr
    time.sleep(1.5)  # SeaweedFS lists a part a moment after acknowledging it
    again = cli(*argv, *common(seaweed, journal))
    assert again.returncode == 0, again.stderr
    assert left not in [u["UploadId"] for u in list_uploads(seaweed, seaweed_bucket)]
    assert not list_uploads(seaweed, seaweed_bucket)
    assert "an identical object was already there" in again.stderr
    assert read_object(seaweed, seaweed_bucket, "k") == a.read_bytes()
    assert rows(journal)[0][0] == "completed"


def test_resume_of_an_existing_object_guards_with_its_etag(
        seaweed: SeaweedServer, seaweed_bucket: str, make_file: Any, tmp_path: Path) -> None:
    """The destination existed when the upload began: If-Match on its ETag. Replaced since
    (by a same-size object, so only the ETag tells), the resume must not overwrite it."""
    a = make_file(30 * MiB, "a.bin", seed=1)
    journal = tmp_path / "j.sqlite3"
    client = seaweed.boto3_client()
    client.put_object(Bucket=seaweed_bucket, Key="k", Body=b"old")
    interrupt(["cp", str(a), f"s3://{seaweed_bucket}/k", "--part-size", "5MiB",
               "--concurrency", "1", *common(seaweed, journal)], journal, min_parts=2)
    client.put_object(Bucket=seaweed_bucket, Key="k", Body=b"new")
    resumed = cli("resume", *common(seaweed, journal))
    assert resumed.returncode == 8, resumed.stderr
    assert read_object(seaweed, seaweed_bucket, "k") == b"new"
    assert not list_uploads(seaweed, seaweed_bucket)


def test_resume_completes_when_the_destination_is_unchanged(
        seaweed: SeaweedServer, seaweed_bucket: str, make_file: Any, tmp_path: Path) -> None:
    a = make_file(30 * MiB, "a.bin", seed=1)
    journal = tmp_path / "j.sqlite3"
    seaweed.boto3_client().put_object(Bucket=seaweed_bucket, Key="k", Body=b"old")
    interrupt(["cp", str(a), f"s3://{seaweed_bucket}/k", "--part-size", "5MiB",
               "--concurrency", "1", *common(seaweed, journal)], journal, min_parts=2)
    resumed = cli("resume", *common(seaweed, journal), "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert read_object(seaweed, seaweed_bucket, "k") == a.read_bytes()


@pytest.mark.parametrize("size", [1 * MiB, 12 * MiB])
def test_no_overwrite_refuses_an_existing_key(seaweed: SeaweedServer, seaweed_bucket: str,
                                              make_file: Any, tmp_path: Path, size: int) -> None:
    path = make_file(size)
    journal = tmp_path / "j.sqlite3"
    client = seaweed.boto3_client()
    client.put_object(Bucket=seaweed_bucket, Key="k", Body=b"theirs")
    result = cli("cp", str(path), f"s3://{seaweed_bucket}/k", "--part-size", "5MiB",
                 "--no-overwrite", *common(seaweed, journal))
    assert result.returncode == 11, result.stderr
    assert "exists, not overwritten" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert read_object(seaweed, seaweed_bucket, "k") == b"theirs"
    assert not list_uploads(seaweed, seaweed_bucket) and rows(journal) == []
    fresh = cli("cp", str(path), f"s3://{seaweed_bucket}/new", "--part-size", "5MiB",
                "--no-overwrite", *common(seaweed, journal))
    assert fresh.returncode == 0, fresh.stderr
    assert read_object(seaweed, seaweed_bucket, "new") == path.read_bytes()


def test_no_overwrite_in_a_batch_skips_existing_keys(seaweed: SeaweedServer, seaweed_bucket: str,
                                                     tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    for name in ("a", "b", "c"):
        (tree / name).write_bytes(name.encode() * 100)
    client = seaweed.boto3_client()
    client.put_object(Bucket=seaweed_bucket, Key="p/b", Body=b"theirs")
    result = cli("cp", str(tree), f"s3://{seaweed_bucket}/p/", "-r", "--no-overwrite", "--json",
                 *common(seaweed, tmp_path / "j.sqlite3"))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["uploaded"] == 2 and summary["skipped"] == 1 and summary["failed"] == 0
    assert read_object(seaweed, seaweed_bucket, "p/b") == b"theirs"
    assert read_object(seaweed, seaweed_bucket, "p/a") == b"a" * 100


def test_multipart_objects_carry_a_full_object_crc32c(seaweed: SeaweedServer, seaweed_bucket: str,
                                                      make_file: Any, tmp_path: Path) -> None:
    path = make_file(12 * MiB + 5)
    result = cli("cp", str(path), f"s3://{seaweed_bucket}/f", "--part-size", "5MiB", "--json",
                 *common(seaweed, tmp_path / "j.sqlite3"))
    assert result.returncode == 0, result.stderr
    event = json.loads(result.stdout)
    assert event["checksum_type"] == "FULL_OBJECT" and event["parts"] == 3
    head = seaweed.boto3_client().head_object(Bucket=seaweed_bucket, Key="f",
                                              ChecksumMode="ENABLED")
    expected = crc32c.crc32c(path.read_bytes()).to_bytes(4, "big")
    assert head["ChecksumCRC32C"] == base64.b64encode(expected).decode()
    assert head.get("ChecksumType") == "FULL_OBJECT"
    composite = cli("cp", str(path), f"s3://{seaweed_bucket}/c", "--part-size", "5MiB", "--json",
                    "--checksum-type", "composite", *common(seaweed, tmp_path / "j.sqlite3"))
    assert composite.returncode == 0, composite.stderr
    assert json.loads(composite.stdout)["checksum"].endswith("-3")
