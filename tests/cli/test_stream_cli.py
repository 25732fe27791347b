"""``bigupload cp - s3://b/k`` and other streams through the real command, against
SeaweedFS: bytes read back with boto3, the command's peak RSS from wait4, the aborts a
stopped stream leaves (none on the server, its journal row closed), and standard input
that is a regular file, which stays resumable."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from bigupload.journal import UploadState
from bigupload.testing import SeaweedServer, journalled_parts, journalled_uploads
from bigupload.values import STREAM_SOURCE
from tests.conftest import MiB, list_uploads

COMMAND = [sys.executable, "-m", "bigupload.cli"]


def blocks(size: int, seed: int = 7) -> Iterator[bytes]:
    """``size`` bytes of 1 MiB blocks that all differ (a counter in each), made as needed."""
    import random

    block = random.Random(seed).randbytes(MiB)
    for n, start in enumerate(range(0, size, MiB)):
        yield (n.to_bytes(8, "little") + block[8:])[: size - start]


def md5_of_object(server: SeaweedServer, bucket: str, key: str) -> tuple[int, str]:
    body = server.boto3_client().get_object(Bucket=bucket, Key=key)["Body"]
    digest, size = hashlib.md5(), 0
    for chunk in iter(lambda: body.read(MiB), b""):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


# Spawns the command and reports its peak RSS from wait4. A child's ru_maxrss starts at
# the high-water mark of the process that spawned it (vfork, then exec, records the old
# address space's): spawned from pytest, which has held hundreds of MiB by the time this
# runs, the command would inherit those. This launcher is a fresh, small process (about
# 15 MiB, which the figure includes: it errs high).
LAUNCHER = """
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(proc.pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


class Child:
    """The command as a child process whose standard input the test writes; stdout and
    stderr go to files (no pipe to fill up). With ``measure``, it runs under ``LAUNCHER``
    and its peak RSS is kept (signals then reach the launcher, not the command)."""

    def __init__(self, argv: list[str], tmp: Path, *, measure: bool = False) -> None:
        self.out = open(tmp / "stdout", "w+")
        self.err = open(tmp / "stderr", "w+")
        self.rss_file = tmp / "maxrss"
        launcher = [sys.executable, "-c", LAUNCHER, str(self.rss_file)] if measure else []
        self.proc = subprocess.Popen([*launcher, *COMMAND, *argv], stdin=subprocess.PIPE,
                                     stdout=self.out, stderr=self.err)
        self.max_rss_mib = 0.0

    def feed(self, chunks: Iterator[bytes], digest: Any = None) -> None:
        stdin: IO[bytes] | None = self.proc.stdin
        assert stdin is not None
        try:
            for chunk in chunks:
                if digest is not None:
                    digest.update(chunk)
                stdin.write(chunk)
        finally:
            stdin.close()

    def wait(self, timeout: float = 300) -> tuple[int, str, str]:
        """Wait for the command: (exit code, stdout, stderr)."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError("the command did not finish") from None
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        if self.rss_file.exists():
            self.max_rss_mib = int(self.rss_file.read_text()) / 1024  # KiB on Linux
        with self.out, self.err:
            self.out.seek(0)
            self.err.seek(0)
            return self.proc.returncode, self.out.read(), self.err.read()


def common(server: SeaweedServer, journal: Path) -> list[str]:
    return ["--endpoint-url", server.endpoint_url, "--journal", str(journal), "--json"]


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("concurrency,part", [(8, 32 * MiB), (4, 16 * MiB)])
def test_a_300_mib_stream_arrives_whole_within_its_memory(seaweed: SeaweedServer,
                                                          seaweed_bucket: str, tmp_path: Path,
                                                          concurrency: int, part: int) -> None:
    """The defaults (8 x 32 MiB), and smaller settings."""
    size = 300 * MiB + 12345
    child = Child(["cp", "-", f"s3://{seaweed_bucket}/stream.tar", "--concurrency",
                   str(concurrency), "--part-size", f"{part // MiB}MiB",
                   *common(seaweed, tmp_path / "j")], tmp_path, measure=True)
    fed = hashlib.md5()
    feeder = threading.Thread(target=child.feed, args=(blocks(size), fed))
    feeder.start()
    code, out, err = child.wait()
    feeder.join()
    assert code == 0, err
    event = json.loads(out)
    assert event["event"] == "uploaded" and event["size"] == size
    assert event["parts"] == -(-size // part) and event["checksum_type"] == "FULL_OBJECT"
    assert md5_of_object(seaweed, seaweed_bucket, "stream.tar") == (size, fed.hexdigest())
    limit_mib = concurrency * part / MiB + 100
    assert 0 < child.max_rss_mib < limit_mib, f"peak RSS {child.max_rss_mib:.0f} MiB"
    assert not list_uploads(seaweed, seaweed_bucket)
    assert [(r.fingerprint.path, r.state) for r in journalled_uploads(tmp_path / "j")] == [
        (STREAM_SOURCE, UploadState.COMPLETED)]


@pytest.mark.integration
@pytest.mark.parametrize("size", [0, 3 * MiB + 1])
def test_an_empty_or_small_stream_is_one_put(seaweed: SeaweedServer, seaweed_bucket: str,
                                             tmp_path: Path, size: int) -> None:
    child = Child(["cp", "-", f"s3://{seaweed_bucket}/small", "--content-type", "text/plain",
                   "--metadata", "origin=pipe", *common(seaweed, tmp_path / "j")], tmp_path)
    fed = hashlib.md5()
    child.feed(blocks(size), fed)
    code, out, err = child.wait()
    assert code == 0, err
    event = json.loads(out)
    assert event["size"] == size and event["parts"] == 1 and event["upload_id"] is None
    assert md5_of_object(seaweed, seaweed_bucket, "small") == (size, fed.hexdigest())
    head = seaweed.boto3_client().head_object(Bucket=seaweed_bucket, Key="small")
    assert head["ETag"] == f'"{fed.hexdigest()}"'  # one PutObject: the MD5 of the bytes
    assert head["ContentType"] == "text/plain" and head["Metadata"] == {"origin": "pipe"}
    assert journalled_uploads(tmp_path / "j") == []


@pytest.mark.integration
def test_a_fifo_is_a_stream(seaweed: SeaweedServer, seaweed_bucket: str,
                            tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    size = 11 * MiB + 5
    fed = hashlib.md5()

    def write() -> None:
        with open(fifo, "wb") as w:
            for chunk in blocks(size):
                fed.update(chunk)
                w.write(chunk)

    writer = threading.Thread(target=write)
    writer.start()
    result = subprocess.run([*COMMAND, "cp", str(fifo), f"s3://{seaweed_bucket}/fifo",
                             "--part-size", "5MiB", *common(seaweed, tmp_path / "j")],
                            capture_output=True, text=True, timeout=120)
    writer.join()
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["parts"] == 3
    assert md5_of_object(seaweed, seaweed_bucket, "fifo") == (size, fed.hexdigest())


@pytest.mark.integration
def test_an_interrupted_stream_is_aborted_not_kept(seaweed: SeaweedServer, seaweed_bucket: str,
                                                   tmp_path: Path) -> None:
    """SIGINT mid-stream: exit 130, the upload aborted on the server, the row closed, and
    the message says the stream cannot be resumed (not 'run again to resume')."""
    journal = tmp_path / "j"
    child = Child(["cp", "-", f"s3://{seaweed_bucket}/cut", "--part-size", "5MiB",
                   "--concurrency", "2", *common(seaweed, journal)], tmp_path)
    stop = threading.Event()

    def endless() -> Iterator[bytes]:
        while not stop.is_set():
            yield from blocks(8 * MiB)

    feeder = threading.Thread(target=lambda: _feed_until_closed(child, endless()))
    feeder.start()
    deadline = time.monotonic() + 60
    while not any(u["Key"] == "cut" for u in list_uploads(seaweed, seaweed_bucket)):
        assert time.monotonic() < deadline and child.proc.poll() is None
        time.sleep(0.05)
    time.sleep(0.5)  # some parts on their way
    child.proc.send_signal(signal.SIGINT)
    code, out, err = child.wait(timeout=60)
    stop.set()
    feeder.join()
    assert code == 130, err
    assert "a stream cannot be resumed" in err and "run the same command" not in err
    assert len(err.strip().splitlines()) == 1, err  # the one `bigupload: interrupted; …`
    assert err.startswith("bigupload: interrupted; ")
    assert json.loads(out.splitlines()[-1])["event"] == "interrupted"
    assert not list_uploads(seaweed, seaweed_bucket)
    [row] = journalled_uploads(journal)
    assert row.fingerprint.path == STREAM_SOURCE and row.state is UploadState.ABORTED
    assert row.error == "a stream cannot be resumed: interrupted"


@pytest.mark.integration
def test_a_killed_stream_is_aborted_by_resume(seaweed: SeaweedServer, seaweed_bucket: str,
                                              tmp_path: Path) -> None:
    """SIGKILL leaves the upload and its row; `bigupload resume` cannot resume a stream:
    it aborts the upload, closes the row and says so (exit 8)."""
    journal = tmp_path / "j"
    child = Child(["cp", "-", f"s3://{seaweed_bucket}/killed", "--part-size", "5MiB",
                   *common(seaweed, journal)], tmp_path)
    feeder = threading.Thread(target=lambda: _feed_until_closed(child, blocks(1 << 40)))
    feeder.start()
    deadline = time.monotonic() + 60
    while not any(u["Key"] == "killed" for u in list_uploads(seaweed, seaweed_bucket)):
        assert time.monotonic() < deadline and child.proc.poll() is None
        time.sleep(0.05)
    child.proc.kill()
    child.wait(timeout=60)
    feeder.join()
    [row] = journalled_uploads(journal)
    assert row.state is UploadState.ACTIVE and row.upload_id
    status = subprocess.run([*COMMAND, "status", "--journal", str(journal)],
                            capture_output=True, text=True, timeout=60)
    assert "a stream whose run was killed (bigupload resume aborts it)" in status.stdout
    result = subprocess.run([*COMMAND, "resume", *common(seaweed, journal)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 8, result.stderr
    assert "a stream cannot be resumed" in result.stderr
    assert not list_uploads(seaweed, seaweed_bucket)
    [row] = journalled_uploads(journal)
    assert row.state is UploadState.ABORTED


def _feed_until_closed(child: Child, chunks: Iterator[bytes]) -> None:
    try:
        child.feed(chunks)
    except (BrokenPipeError, OSError):
        pass  # the command stopped reading


@pytest.mark.integration
def test_a_failing_stream_is_aborted(seaweed: SeaweedServer, seaweed_bucket: str,
                                     tmp_path: Path) -> None:
    """The server refuses the completion for good (a wrong full-object CRC is what
    SeaweedFS refuses; here the key is made to exist under --no-overwrite): the upload is
    aborted, the row closed, the exit code the usual one."""
    journal = tmp_path / "j"
    child = Child(["cp", "-", f"s3://{seaweed_bucket}/taken", "--part-size", "5MiB",
                   "--no-overwrite", *common(seaweed, journal)], tmp_path)

    def chunks() -> Iterator[bytes]:
        yield from blocks(6 * MiB)
        deadline = time.monotonic() + 60  # once the upload exists, take the key
        while not any(u["Key"] == "taken" for u in list_uploads(seaweed, seaweed_bucket)):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        seaweed.boto3_client().put_object(Bucket=seaweed_bucket, Key="taken", Body=b"first")
        yield from blocks(6 * MiB, seed=8)

    child.feed(chunks())
    code, out, err = child.wait()
    assert code == 11, err  # --no-overwrite: the key exists
    assert "not overwritten" in err and "aborted" in err
    assert not list_uploads(seaweed, seaweed_bucket)
    assert seaweed.boto3_client().get_object(Bucket=seaweed_bucket,
                                             Key="taken")["Body"].read() == b"first"
    [row] = journalled_uploads(journal)
    assert row.state is UploadState.SUPERSEDED


@pytest.mark.integration
@pytest.mark.slow
def test_standard_input_that_is_a_file_is_resumable(seaweed: SeaweedServer, seaweed_bucket: str,
                                                    make_file: Any, tmp_path: Path) -> None:
    """``bigupload cp - s3://… < big.bin`` is the file: killed part-way, the same command
    resumes it and sends only the rest."""
    path = make_file(120 * MiB + 3)
    journal = tmp_path / "j"
    argv = [*COMMAND, "cp", "-", f"s3://{seaweed_bucket}/big.bin", "--part-size", "5MiB",
            "--concurrency", "2", *common(seaweed, journal)]
    with open(path, "rb") as stdin:
        proc = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while journalled_parts(journal) < 5:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.01)
        proc.kill()
        proc.communicate(timeout=60)
    [row] = journalled_uploads(journal)
    assert row.fingerprint.path == str(path) and row.state is UploadState.ACTIVE
    time.sleep(1.5)  # SeaweedFS lists a part a moment after acknowledging it
    with open(path, "rb") as stdin:
        result = subprocess.run(argv, stdin=stdin, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    event = json.loads(result.stdout)
    assert event["resumed_parts"] >= 5 and event["sent_bytes"] < path.stat().st_size
    assert md5_of_object(seaweed, seaweed_bucket, "big.bin") == (
        path.stat().st_size, hashlib.md5(path.read_bytes()).hexdigest())


def test_stream_usage_errors(tmp_path: Path) -> None:
    endpoint = ["--endpoint-url", "http://127.0.0.1:9"]
    cases = [
        (["cp", "-", "s3://bucket/dir/"], "give the whole key"),
        (["cp", "-", "s3://bucket/k", "--restart"], "a stream cannot be resumed"),
        (["cp", "-", "s3://bucket/k", "--expected-size", "5XB"], "--expected-size"),
        (["cp", "-", "s3://bucket/k", "--part-size", "5MiB", "--expected-size", "100GiB"],
         "S3 allows 10000"),
    ]
    with tempfile.TemporaryFile() as empty:
        for argv, message in cases:
            result = subprocess.run([*COMMAND, *argv, *endpoint], stdin=subprocess.PIPE,
                                    capture_output=True, text=True, timeout=60)
            assert result.returncode == 2, (argv, result.stderr)
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1 and message in lines[0], (argv, result.stderr)
        file = tmp_path / "f"
        file.write_bytes(b"x")
        result = subprocess.run([*COMMAND, "cp", str(file), "s3://bucket/k", "--expected-size",
                                 "1MiB", *endpoint], stdin=empty, capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 2 and "applies to streams" in result.stderr


def test_dry_run_of_a_stream(tmp_path: Path) -> None:
    result = subprocess.run([*COMMAND, "cp", "-", "s3://bucket/k", "--dry-run", "--json"],
                            stdin=subprocess.PIPE, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["stream"] is True and plan["part_size"] == 32 * MiB
    assert plan["largest_part_size"] == 5 * 1024 * MiB and plan["capacity"] > 17 * 1024 ** 4


@pytest.mark.integration
def test_a_running_stream_is_neither_called_killed_nor_aborted(seaweed: SeaweedServer,
                                                                seaweed_bucket: str,
                                                                tmp_path: Path) -> None:
    """A stream still being sent holds its destination's lock: `status` says it is being
    sent (not killed), `resume` leaves it alone, and the stream then completes."""
    journal = tmp_path / "j"
    child = Child(["cp", "-", f"s3://{seaweed_bucket}/live", "--part-size", "5MiB",
                   *common(seaweed, journal)], tmp_path)
    gate = threading.Event()
    fed = hashlib.md5()

    def chunks() -> Iterator[bytes]:
        yield from blocks(12 * MiB)
        gate.wait(120)  # the stream waits here, alive, while status and resume run
        yield from blocks(3 * MiB, seed=9)

    feeder = threading.Thread(target=lambda: child.feed(chunks(), fed))
    feeder.start()
    try:
        deadline = time.monotonic() + 60
        while not any(u["Key"] == "live" for u in list_uploads(seaweed, seaweed_bucket)):
            assert time.monotonic() < deadline and child.proc.poll() is None
            time.sleep(0.05)
        status = subprocess.run([*COMMAND, "status", "--journal", str(journal)],
                                capture_output=True, text=True, timeout=60)
        assert "still being sent by another bigupload process" in status.stdout, status.stdout
        assert "killed" not in status.stdout
        as_json = subprocess.run([*COMMAND, "status", "--journal", str(journal), "--json"],
                                 capture_output=True, text=True, timeout=60)
        assert json.loads(as_json.stdout.splitlines()[0])["running"] is True
        result = subprocess.run([*COMMAND, "resume", *common(seaweed, journal)],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert "still being sent" in result.stderr and "aborted" not in result.stderr
        second = subprocess.run([*COMMAND, "cp", "-", f"s3://{seaweed_bucket}/live",
                                 *common(seaweed, journal)], input=b"x", capture_output=True,
                                timeout=120)  # the next stream to that key: refused
        assert second.returncode == 8 and b"another bigupload process" in second.stderr
        assert any(u["Key"] == "live" for u in list_uploads(seaweed, seaweed_bucket))
    finally:  # the stream is let go and waited for even when a check above failed
        gate.set()
        code, out, err = child.wait()
        feeder.join()
    assert code == 0, err
    assert md5_of_object(seaweed, seaweed_bucket, "live") == (15 * MiB, fed.hexdigest())
    assert not list_uploads(seaweed, seaweed_bucket)
    [row] = journalled_uploads(journal)
    assert row.state is UploadState.COMPLETED


@pytest.mark.integration
def test_an_overestimated_expected_size_does_not_allocate_its_parts(
        seaweed: SeaweedServer, seaweed_bucket: str, tmp_path: Path) -> None:
    """`echo hello | bigupload cp - … --expected-size 40TiB` plans parts of about 4 GiB;
    the buffer grows with the six bytes read, so memory follows the data."""
    child = Child(["cp", "-", f"s3://{seaweed_bucket}/hello", "--expected-size", "40TiB",
                   *common(seaweed, tmp_path / "j")], tmp_path, measure=True)
    child.feed(iter([b"hello\n"]))
    code, out, err = child.wait()
    assert code == 0, err
    assert json.loads(out)["size"] == 6
    assert md5_of_object(seaweed, seaweed_bucket, "hello") == (
        6, hashlib.md5(b"hello\n").hexdigest())
    assert 0 < child.max_rss_mib < 300, f"peak RSS {child.max_rss_mib:.0f} MiB"


@pytest.mark.integration
def test_a_closed_standard_input_is_a_source_error(seaweed: SeaweedServer, seaweed_bucket: str,
                                                   tmp_path: Path) -> None:
    """`bigupload cp - s3://… <&-`: fd 0 is closed, and the event loop's epoll descriptor
    would take its number (and be read, for ever): one line, exit 3, nothing sent."""
    try:
        result = subprocess.run(["sh", "-c", 'exec "$@" <&-', "sh", *COMMAND, "cp", "-",
                                 f"s3://{seaweed_bucket}/closed",
                                 *common(seaweed, tmp_path / "j")],
                                capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        raise AssertionError("the command hung on a closed standard input") from None
    assert result.returncode == 3, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "standard input is closed" in lines[0], result.stderr
    assert not list_uploads(seaweed, seaweed_bucket)


@pytest.mark.integration
def test_a_fifo_to_a_prefix_gets_its_name(seaweed: SeaweedServer, seaweed_bucket: str,
                                          tmp_path: Path) -> None:
    """A key ending in / gets the source's name, for a FIFO as for a file (standard input
    has none: see test_stream_usage_errors); its content type is guessed from that name."""
    fifo = tmp_path / "data.csv"
    os.mkfifo(fifo)

    done = threading.Event()

    def write() -> None:  # waits for a reader, but not for ever: the command may refuse
        while not done.is_set():
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # ENXIO: no reader yet
                time.sleep(0.05)
                continue
            os.set_blocking(fd, True)
            with open(fd, "wb") as w:
                w.write(b"a,b\n1,2\n")
            return

    writer = threading.Thread(target=write)
    writer.start()
    try:
        result = subprocess.run([*COMMAND, "cp", str(fifo), f"s3://{seaweed_bucket}/x/",
                                 *common(seaweed, tmp_path / "j")],
                                capture_output=True, text=True, timeout=120)
    finally:
        done.set()
        writer.join()
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["key"] == "x/data.csv"
    head = seaweed.boto3_client().head_object(Bucket=seaweed_bucket, Key="x/data.csv")
    assert head["ContentLength"] == 8 and head["ContentType"] == "text/csv"


def test_help_says_an_interrupted_stream_is_aborted() -> None:
    result = subprocess.run([*COMMAND, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "130 interrupted" in text and "a stream cannot be resumed: its upload is aborted" in text
