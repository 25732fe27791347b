"""The command as a user meets it: exit codes, one-line messages, --json, and a real
process killed with SIGKILL (and interrupted with SIGINT) mid-upload, then resumed."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bigupload.cli import main
from bigupload.testing import MotoServer, SeaweedServer, journalled_parts
from tests.conftest import MiB, list_uploads, read_object


def cli(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bigupload.cli", *args], capture_output=True,
                          text=True, timeout=300, **kwargs)


@pytest.mark.parametrize("args,code,message", [
    (["cp", "{missing}", "s3://bucket/key"], 3, "no such file"),
    (["cp", "{dir}", "s3://bucket/key"], 3, "is a directory (use --recursive"),
    (["cp", "{file}", "s3://bucket/key", "--part-size", "4MiB"], 2, "outside S3's limits"),
    (["cp", "{file}", "s3://bucket/key", "--part-size", "64XB"], 2, "malformed size"),
    (["cp", "{file}", "s3://bucket/key", "--concurrency", "0"], 2, "concurrency"),
    (["cp", "{file}", "s3://bucket/key", "--checksum", "md5"], 2, "unknown checksum"),
    (["cp", "{file}", "s3://bucket/key", "--memory-limit", "8MiB", "--part-size", "16MiB"], 2,
     "smaller than one part"),
    (["cp", "{file}", "bucket/key"], 2, "not an S3 URL"),
    (["cp", "{file}", "s3://Bad_Bucket/key"], 2, "invalid bucket name"),
    (["cp", "{file}", "s3://bucket/" + "k" * 1025], 2, "1,024"),
    (["parts", "s3://bucket", "--upload-id", "x"], 2, "missing key"),
])
def test_bad_input_gets_one_line_and_exit_code(tmp_path: Path, args: list[str], code: int,
                                               message: str) -> None:
    file = tmp_path / "f.bin"
    file.write_bytes(b"x" * 100)
    values = {"missing": str(tmp_path / "absent"), "dir": str(tmp_path), "file": str(file)}
    argv = [a.format(**values) for a in args] + ["--endpoint-url", "http://127.0.0.1:9"]
    result = cli(*argv)
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bigupload: error:"), result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stderr


def test_help_lists_exit_codes() -> None:
    result = cli("cp", "--help")
    assert result.returncode == 0
    for code in ("0 ", "2 ", "3 ", "4 ", "5 ", "6 ", "7 ", "8 ", "130"):
        assert f"\n  {code}" in result.stdout


def test_dry_run_prints_the_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.truncate(400 * 1024 * MiB)  # sparse 400 GiB: the part size grows
    assert main(["cp", str(big), "s3://bucket/dir/", "--dry-run", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["key"] == "dir/big.bin" and plan["parts"] <= 10_000
    assert plan["part_size"] == 41 * MiB


def test_unreachable_endpoint_is_transient(tmp_path: Path) -> None:
    file = tmp_path / "f.bin"
    file.write_bytes(b"x" * 100)
    result = cli("cp", str(file), "s3://bucket/key", "--endpoint-url", "http://127.0.0.1:9",
                 "--max-attempts", "2")
    assert result.returncode == 5, result.stderr
    assert "cannot connect" in result.stderr


@pytest.mark.integration
def test_no_such_bucket_exit_code(moto_server: MotoServer, tmp_path: Path) -> None:
    file = tmp_path / "f.bin"
    file.write_bytes(b"x" * (6 * MiB))
    result = cli("cp", str(file), "s3://no-such-bucket-here/k", "--endpoint-url",
                 moto_server.endpoint_url, "--json")
    assert result.returncode == 7
    event = json.loads(result.stdout.strip().splitlines()[-1])
    assert event["event"] == "error" and event["exit_code"] == 7 and "NoSuchBucket" in event["message"]


@pytest.mark.integration
def test_cp_json_and_housekeeping(seaweed: SeaweedServer, seaweed_bucket: str, make_file: Any) -> None:
    path = make_file(12 * MiB)
    url = f"s3://{seaweed_bucket}/x/"
    result = cli("cp", str(path), url, "--endpoint-url", seaweed.endpoint_url, "--part-size",
                 "5MiB", "--json")
    assert result.returncode == 0, result.stderr
    event = json.loads(result.stdout)
    assert event["event"] == "uploaded" and event["key"] == "x/data.bin" and event["parts"] == 3
    assert read_object(seaweed, seaweed_bucket, "x/data.bin") == path.read_bytes()
    # ls-uploads / parts / abort on an upload of another tool
    client = seaweed.boto3_client()
    upload_id = client.create_multipart_upload(Bucket=seaweed_bucket, Key="other")["UploadId"]
    client.upload_part(Bucket=seaweed_bucket, Key="other", UploadId=upload_id, PartNumber=1, Body=b"abc")
    common = ["--endpoint-url", seaweed.endpoint_url, "--json"]
    listed = cli("ls-uploads", f"s3://{seaweed_bucket}", *common)
    assert [json.loads(l)["upload_id"] for l in listed.stdout.splitlines()] == [upload_id]
    parts = cli("parts", f"s3://{seaweed_bucket}/other", "--upload-id", upload_id, *common)
    part, summary = [json.loads(line) for line in parts.stdout.splitlines()]
    assert part["event"] == "part" and part["part_number"] == 1 and part["size"] == 3
    assert summary["event"] == "summary" and summary["parts"] == 1 and summary["bytes"] == 3
    assert cli("abort", f"s3://{seaweed_bucket}/other", "--upload-id", upload_id, *common).returncode == 0
    assert not list_uploads(seaweed, seaweed_bucket)


def _start_and_stop_midway(argv: list[str], journal: Path, sig: int,
                           min_parts: int) -> tuple[int, str]:
    """Run the CLI, send ``sig`` once ``min_parts`` are journalled; (exit status, stderr)."""
    proc = subprocess.Popen([sys.executable, "-m", "bigupload.cli", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while journalled_parts(journal) < min_parts:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    return proc.returncode, stderr


def _server_parts(server: SeaweedServer, bucket: str, key: str) -> dict[int, int]:
    client = server.boto3_client()
    uploads = [u for u in list_uploads(server, bucket) if u["Key"] == key]
    assert len(uploads) == 1
    parts: dict[int, int] = {}
    kwargs: dict[str, Any] = {}
    while True:
        page = client.list_parts(Bucket=bucket, Key=key, UploadId=uploads[0]["UploadId"], **kwargs)
        parts.update({p["PartNumber"]: p["Size"] for p in page.get("Parts", [])})
        if not page.get("IsTruncated"):
            return parts
        kwargs["PartNumberMarker"] = page["NextPartNumberMarker"]


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_killed_midway_then_rerun_sends_only_the_rest(seaweed: SeaweedServer, seaweed_bucket: str,
                                                      make_file: Any, tmp_path: Path, sig: int) -> None:
    path = make_file(300 * MiB + 12345)
    size = path.stat().st_size
    journal = tmp_path / "journal.sqlite3"
    argv = ["cp", str(path), f"s3://{seaweed_bucket}/big.bin", "--endpoint-url",
            seaweed.endpoint_url, "--part-size", "5MiB", "--concurrency", "2", "--journal",
            str(journal), "--json"]
    returncode, stderr = _start_and_stop_midway(argv, journal, sig, min_parts=10)
    if sig == signal.SIGKILL:
        assert returncode == -signal.SIGKILL
    else:
        assert returncode == 130, stderr
        assert "run the same command again to resume" in stderr
    # SeaweedFS finishes storing parts whose bodies it had received after the client died:
    # wait until the listing settles, then take that as what is on the server.
    on_server = _server_parts(seaweed, seaweed_bucket, "big.bin")
    while True:
        time.sleep(0.5)
        again = _server_parts(seaweed, seaweed_bucket, "big.bin")
        if again == on_server:
            break
        on_server = again
    assert 10 <= len(on_server) < 61
    status = cli("status", "--journal", str(journal), "--json")
    assert json.loads(status.stdout)["upload_id"]

    result = cli(*argv)
    assert result.returncode == 0, result.stderr
    event = json.loads(result.stdout)
    # every part already on the server was kept (verified), none of them sent again. Under
    # load SeaweedFS can still finish storing a part it had received after the listing
    # looked settled: the re-run may find more parts than we saw, never fewer.
    assert event["resumed_parts"] >= len(on_server)
    assert event["sent_bytes"] == size - event["resumed_parts"] * 5 * MiB
    assert read_object(seaweed, seaweed_bucket, "big.bin") == path.read_bytes()
    assert not list_uploads(seaweed, seaweed_bucket)
    status = cli("status", "--journal", str(journal), "--json")
    assert status.stdout == ""


@pytest.mark.integration
def test_second_process_on_the_same_destination_is_refused(seaweed: SeaweedServer, seaweed_bucket: str,
                                                           make_file: Any, tmp_path: Path) -> None:
    """Two uploads to one key through one journal must not interleave parts: the second
    refuses (exit 8) while the first holds the destination, and the first finishes."""
    path = make_file(200 * MiB + 7)
    journal = tmp_path / "journal.sqlite3"
    argv = ["cp", str(path), f"s3://{seaweed_bucket}/twice.bin", "--endpoint-url",
            seaweed.endpoint_url, "--part-size", "5MiB", "--concurrency", "1", "--journal",
            str(journal), "--json"]
    first = subprocess.Popen([sys.executable, "-m", "bigupload.cli", *argv], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while journalled_parts(journal) < 1:
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.01)
        second = cli(*argv)
        assert second.returncode == 8, second.stderr
        assert f"(pid {first.pid})" in second.stderr and len(second.stderr.strip().splitlines()) == 1
        out, err = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    assert first.returncode == 0, err
    assert json.loads(out)["resumed_parts"] == 0
    assert read_object(seaweed, seaweed_bucket, "twice.bin") == path.read_bytes()
    assert not list_uploads(seaweed, seaweed_bucket)


@pytest.mark.integration
def test_upload_aborted_by_another_tool_is_started_over(seaweed: SeaweedServer, seaweed_bucket: str,
                                                        make_file: Any, tmp_path: Path) -> None:
    """Killed midway, its upload then aborted behind our back (the key never existed): the
    re-run finds NoSuchUpload, says so and starts a new upload. The HeadObject 404 it sends
    while starting over must not bring the handled ListParts error back (it did: exit 7)."""
    path = make_file(12 * MiB + 123)
    journal = tmp_path / "journal.sqlite3"
    argv = ["cp", str(path), f"s3://{seaweed_bucket}/ns2.bin", "--endpoint-url",
            seaweed.endpoint_url, "--part-size", "5MiB", "--concurrency", "1", "--journal",
            str(journal)]
    # slowed down so that the kill lands while parts remain to be sent
    returncode, _ = _start_and_stop_midway([*argv, "--max-bandwidth", "2MB/s"], journal,
                                           signal.SIGKILL, min_parts=1)
    assert returncode == -signal.SIGKILL
    uploads = [u for u in list_uploads(seaweed, seaweed_bucket) if u["Key"] == "ns2.bin"]
    assert len(uploads) == 1
    seaweed.boto3_client().abort_multipart_upload(Bucket=seaweed_bucket, Key="ns2.bin",
                                                  UploadId=uploads[0]["UploadId"])

    result = cli(*argv)
    assert result.returncode == 0, result.stderr
    assert "starting a new one" in result.stderr
    assert read_object(seaweed, seaweed_bucket, "ns2.bin") == path.read_bytes()
    assert not list_uploads(seaweed, seaweed_bucket)
