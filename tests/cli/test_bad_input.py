"""The bad-input matrix, as a user meets it: each case gets one line on stderr starting
``bigupload: error:``, its documented exit code, no traceback, and nothing sent or lost.
Every case is counted, and the count printed, so the soak report can quote it."""

from __future__ import annotations

import http.server
import os
import resource
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bigupload.journal import SCHEMA_VERSION, Journal
from bigupload.testing import TEST_CREDENTIALS, MotoServer, SeaweedServer
from tests.cli.test_cli import cli
from tests.conftest import MiB, list_uploads, read_object
from tests.faultproxy import FaultProxy, on

pytestmark = pytest.mark.integration


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int, *fragments: str) -> None:
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = [line for line in result.stderr.strip().splitlines() if line.startswith("bigupload: error:")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture
def special_files(tmp_path: Path) -> Iterator[dict[str, str]]:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    sock_path = tmp_path / "sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    loop = tmp_path / "loop"
    os.symlink(loop, loop)
    yield {"fifo": str(fifo), "socket": str(sock_path), "device": "/dev/null", "loop": str(loop)}
    sock.close()


# a FIFO or a character device is read as a stream (tests/cli/test_stream_cli.py)
@pytest.mark.parametrize("kind,message", [
    ("socket", "not a regular file"), ("loop", "too many levels of symbolic links"),
])
def test_special_sources_are_refused(special_files: dict[str, str], kind: str, message: str) -> None:
    result = cli("cp", special_files[kind], "s3://bucket/key", "--endpoint-url", "http://127.0.0.1:9")
    assert_one_line_error(result, 3, message)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file: EACCES cannot happen")
def test_unreadable_source(tmp_path: Path) -> None:
    path = tmp_path / "secret.bin"
    path.write_bytes(b"x")
    path.chmod(0)
    result = cli("cp", str(path), "s3://bucket/key", "--endpoint-url", "http://127.0.0.1:9")
    assert_one_line_error(result, 3, "permission denied")


@pytest.mark.parametrize("args,message", [
    (["--part-size", "6GiB"], "outside S3's limits"),
    (["--part-size", "5MiB"], "10000"),  # on a 60 GiB (sparse) file: 12,288 parts
    (["--concurrency", "100000"], "concurrency must be 1..1024"),
    (["--concurrency", "-1"], "concurrency"),
    (["--max-attempts", "0"], "max attempts"),
    (["--memory-limit", "1MiB"], "smaller than one part"),
    (["--part-size", "5.5.5MiB"], "malformed size"),
    (["--checksum", "crc16"], "unknown checksum"),
    (["--metadata", "novalue"], "K=V"),
])
def test_bad_settings(tmp_path: Path, args: list[str], message: str) -> None:
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.truncate(60 << 30)
    result = cli("cp", str(big), "s3://bucket/key", "--endpoint-url", "http://127.0.0.1:9", *args)
    assert_one_line_error(result, 2, message)


@pytest.mark.parametrize("url,message", [
    ("s3://", "invalid bucket name"), ("s3:///key", "invalid bucket name"),
    ("s3://ab/key", "invalid bucket name"), ("s3://bucket..name/key", "invalid bucket name"),
    ("https://bucket/key", "not an S3 URL"), ("s3://bucket/" + "é" * 513, "1,024"),
    ("s3://bucket/k\udcff", "not valid UTF-8"),  # a key from bytes that are not UTF-8
])
def test_malformed_destinations(tmp_path: Path, url: str, message: str) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"x")
    result = cli("cp", str(path), url, "--endpoint-url", "http://127.0.0.1:9")
    assert_one_line_error(result, 2, message)


def test_resume_of_an_upload_the_server_no_longer_has_is_exit_8_as_the_table_says(
        moto_server: MotoServer, moto_bucket: str, tmp_path: Path) -> None:
    """The journal says an upload is unfinished; the server no longer has it (a lifecycle
    rule, another tool's abort). ``bigupload resume`` refuses to start a new one (an old
    intent): exit 8, "resume refused ... the journal disagrees", and the README table and
    --help say so (they listed "upload gone" under 7 only); the row is closed."""
    from bigupload.cli import EXIT_CODES
    from bigupload.journal import DestinationGuard, Journal, UploadState
    from bigupload.source import SourceFile

    path = tmp_path / "f.bin"
    with open(path, "wb") as f:
        f.truncate(12 * MiB)
    client: Any = moto_server.boto3_client()
    upload_id = client.create_multipart_upload(Bucket=moto_bucket, Key="k")["UploadId"]
    client.abort_multipart_upload(Bucket=moto_bucket, Key="k", UploadId=upload_id)
    journal = tmp_path / "j.db"
    with SourceFile(str(path)) as source, Journal(journal) as j:
        row = j.start_upload(source.fingerprint(), moto_server.endpoint_url, moto_bucket, "k",
                             5 * MiB, 3, "crc32c", None, guard=DestinationGuard.absent())
        j.set_upload_id(row, upload_id)
    result = cli("resume", "--journal", str(journal))
    assert_one_line_error(result, 8, f"the server no longer has upload {upload_id}",
                          "bigupload cp again")
    with Journal(journal) as j:
        assert j.get(row).state is UploadState.ABORTED
    assert list_uploads(moto_server, moto_bucket) == []
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    (row8,) = [line for line in readme.splitlines() if line.startswith("| 8 |")]
    (row7,) = [line for line in readme.splitlines() if line.startswith("| 7 |")]
    assert "no longer has the journalled upload" in row8, row8
    assert "upload gone" not in row7 or "mid-run" in row7, row7
    assert "no longer has the journalled" in " ".join(EXIT_CODES.split())


@pytest.mark.parametrize("how", ["put", "multipart", "directory", "manifest"])
@pytest.mark.parametrize("value", ["caf\u00e9", "\u65e5\u672c", "a\nb", "tab\there"])
def test_metadata_that_is_not_printable_ascii_is_refused_before_anything_is_created(
        moto_server: MotoServer, moto_bucket: str, tmp_path: Path, value: str, how: str) -> None:
    """S3 user metadata travels in HTTP headers: US-ASCII only. Refused as a setting (exit
    2, one line), before a multipart upload or a batch job exists, not as botocore's
    ParamValidationError at the first request (exit 7, three lines, a failed job)."""
    import json

    (tmp_path / "dir").mkdir()
    path = tmp_path / "dir" / "f.bin"
    with open(path, "wb") as f:
        f.truncate(6 * MiB)
    journal = tmp_path / "j.db"
    args = {"put": [str(path), f"s3://{moto_bucket}/k"],
            "multipart": [str(path), f"s3://{moto_bucket}/k", "--multipart-threshold", "5MiB",
                          "--part-size", "5MiB"],
            "directory": ["-r", str(tmp_path / "dir"), f"s3://{moto_bucket}/p/"]}
    if how == "manifest":
        manifest = tmp_path / "list.jsonl"
        manifest.write_text(json.dumps({"source": str(path), "key": "k",
                                        "metadata": {"note": value}}) + "\n")
        argv = ["--manifest", str(manifest), f"s3://{moto_bucket}/"]
    else:
        argv = [*args[how], "--metadata", f"note={value}"]
    result = cli("cp", *argv, "--endpoint-url", moto_server.endpoint_url,
                 "--journal", str(journal))
    assert_one_line_error(result, 2, "S3 user metadata must be printable US-ASCII")
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert list_uploads(moto_server, moto_bucket) == []
    assert "Contents" not in moto_server.boto3_client().list_objects_v2(Bucket=moto_bucket)
    if journal.exists():
        with sqlite3.connect(journal) as db:
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
            for table in {"jobs", "uploads"} & tables:
                assert db.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,), table


@pytest.mark.parametrize("size", [0, 5 * MiB - 1, 5 * MiB, 5 * MiB + 1])
@pytest.mark.parametrize("multipart", [False, True])
def test_boundary_sizes_succeed(moto_server: MotoServer, moto_bucket: str, make_file: Any,
                                size: int, multipart: bool) -> None:
    """moto enforces the 5 MiB minimum for every part but the last."""
    path = make_file(size)
    extra = ["--part-size", "5MiB", "--multipart-threshold", "0"] if multipart else []
    result = cli("cp", str(path), f"s3://{moto_bucket}/k", "--endpoint-url", moto_server.endpoint_url,
                 *extra)
    assert result.returncode == 0, result.stderr
    assert read_object(moto_server, moto_bucket, "k") == path.read_bytes()
    assert list_uploads(moto_server, moto_bucket) == []


def test_wrong_credentials(seaweed: SeaweedServer, seaweed_bucket: str, make_file: Any) -> None:
    """The test SeaweedFS was started with the test credentials, so it checks signatures."""
    env = {**os.environ, "AWS_SECRET_ACCESS_KEY": "not-the-secret"}
    result = cli("cp", str(make_file(1024)), f"s3://{seaweed_bucket}/k", "--endpoint-url",
                 seaweed.endpoint_url, env=env)
    assert_one_line_error(result, 4, "SignatureDoesNotMatch")
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "nobody"}
    result = cli("cp", str(make_file(1024)), f"s3://{seaweed_bucket}/k", "--endpoint-url",
                 seaweed.endpoint_url, env=env)
    assert result.returncode == 4, result.stderr
    env = {k: v for k, v in os.environ.items() if k not in TEST_CREDENTIALS}
    result = cli("cp", str(make_file(1024)), f"s3://{seaweed_bucket}/k", "--endpoint-url",
                 seaweed.endpoint_url, env=env)
    assert_one_line_error(result, 4, "no AWS credentials found")


def test_access_denied(seaweed: SeaweedServer, seaweed_bucket: str, make_file: Any) -> None:
    with FaultProxy(int(seaweed.endpoint_url.rsplit(":", 1)[1])) as proxy:
        proxy.add(on("CreateMultipartUpload"), "access_denied")
        result = cli("cp", str(make_file(12 * MiB)), f"s3://{seaweed_bucket}/k", "--endpoint-url",
                     proxy.endpoint_url, "--part-size", "5MiB")
    assert_one_line_error(result, 4, "AccessDenied")
    assert list_uploads(seaweed, seaweed_bucket) == []


class NotS3(http.server.BaseHTTPRequestHandler):
    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        body = b"<html><body>Welcome to nginx!</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.parametrize("size", [1024, 12 * MiB])
def test_endpoint_that_does_not_speak_s3(make_file: Any, size: int) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotS3)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        result = cli("cp", str(make_file(size)), "s3://bucket/k", "--part-size", "5MiB",
                     "--endpoint-url", f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode in (6, 7), result.stderr
    assert_one_line_error(result, result.returncode, "does not look like an S3")


@pytest.mark.parametrize("argv", [
    ["abort", "s3://bucket/k", "--upload-id", "abc"],
    ["ls-uploads", "s3://bucket"],
    ["parts", "s3://bucket/k", "--upload-id", "abc"],
])
def test_housekeeping_against_an_endpoint_that_does_not_speak_s3(argv: list[str]) -> None:
    """A wrong port must not read as success: "aborted abc" would tell the user billing
    stopped, "0 unfinished upload(s)" that there is nothing to clean up."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotS3)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        result = cli(*argv, "--endpoint-url", f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
    assert_one_line_error(result, 7, "does not look like an S3 API")
    assert result.stdout == ""


def test_journal_in_an_unusable_place(tmp_path: Path, make_file: Any) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = cli("cp", str(make_file(1024)), "s3://bucket/k", "--endpoint-url", "http://127.0.0.1:9",
                 "--journal", str(blocker / "journal.sqlite3"))
    assert_one_line_error(result, 8, "cannot open journal")


@pytest.mark.parametrize("damage", ["garbage", "newer"])
def test_damaged_journal_via_cli(tmp_path: Path, make_file: Any, damage: str) -> None:
    journal = tmp_path / "j.sqlite3"
    with Journal(journal):  # status no longer creates one (it refuses a missing journal)
        pass
    if damage == "garbage":
        journal.write_bytes(b"\x00garbage" * 1000)
        fragment = "corrupt or not a bigupload journal"
    else:
        db = sqlite3.connect(journal)
        db.execute("UPDATE meta SET value=? WHERE name='schema_version'", (str(SCHEMA_VERSION + 1),))
        db.commit()
        db.close()
        fragment = "upgrade bigupload"
    before = journal.read_bytes()
    for argv in (["cp", str(make_file(1024)), "s3://bucket/k", "--endpoint-url", "http://127.0.0.1:9"],
                 ["status"]):
        result = cli(*argv, "--journal", str(journal))
        assert_one_line_error(result, 8, fragment)
    assert journal.read_bytes() == before


def _limit_file_size(limit: int) -> Any:
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_journal_disk_full_mid_upload_keeps_the_upload_resumable(
        seaweed: SeaweedServer, seaweed_bucket: str, make_file: Any, tmp_path: Path) -> None:
    """RLIMIT_FSIZE stands in for a full disk: the journal's WAL cannot grow. The upload
    stops with exit 8 and one line; the upload id was journalled, so once there is room
    the same command resumes it and the object is right."""
    path = make_file(100 * MiB)
    journal = tmp_path / "j.sqlite3"
    argv = [sys.executable, "-m", "bigupload.cli", "cp", str(path), f"s3://{seaweed_bucket}/k",
            "--endpoint-url", seaweed.endpoint_url, "--journal", str(journal), "--part-size", "5MiB"]
    full = subprocess.run(argv, capture_output=True, text=True, timeout=300,
                          preexec_fn=_limit_file_size(48 * 1024))
    assert_one_line_error(full, 8, "journal", "resumes once the journal can be written")
    assert len(list_uploads(seaweed, seaweed_bucket)) == 1
    resumed = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "parts already on the server" in resumed.stderr
    assert read_object(seaweed, seaweed_bucket, "k") == path.read_bytes()
    assert list_uploads(seaweed, seaweed_bucket) == []
