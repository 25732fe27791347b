"""``--read-timeout`` and ``--connect-timeout`` as a user meets them: an endpoint that
accepts connections and never answers (or never accepts them) ends the command with exit 5
after the given attempts, and each retry line names the timeout that ran out. No S3
server: the endpoints here are local sockets that never answer."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bigupload.config import UploadConfig
from bigupload.errors import ConfigError, StoreError
from bigupload.scheduler import retry_reason
from bigupload.store_errors import map_error, timed_out


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # the bound only keeps a broken build from hanging the suite: the default timeouts
    # (120 s a try) would blow it, the ones given here end the command in seconds
    return subprocess.run([sys.executable, "-m", "bigupload.cli", *args], capture_output=True,
                          text=True, timeout=60, env={**os.environ, **(env or {})})


@contextlib.contextmanager
def silent_server() -> Iterator[str]:
    """http://127.0.0.1:PORT of a server that accepts every connection, reads nothing
    and never answers; its sockets are closed when the block ends."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        listener.close()
        thread.join(5)
        for conn in held:
            conn.close()


@contextlib.contextmanager
def full_backlog() -> Iterator[str]:
    """http://127.0.0.1:PORT of a listener that never accepts, its accept queue already
    full: Linux drops further SYNs, so a connect hangs until the client's timeout."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    address = listener.getsockname()
    fillers = []
    try:
        for _ in range(8):  # a backlog of 0 still queues one or two: fill it whatever it is
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(address)
            fillers.append(filler)
        yield f"http://127.0.0.1:{address[1]}"
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


@pytest.fixture
def small_file(tmp_path: Path) -> str:
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 100)
    return str(path)


@pytest.fixture
def two_parts(tmp_path: Path) -> str:
    path = tmp_path / "big.bin"
    with open(path, "wb") as f:
        f.truncate(40 << 20)  # multipart: CreateMultipartUpload meets the silence
    return str(path)


@pytest.mark.parametrize("which", ["small_file", "two_parts"])
def test_a_silent_server_is_given_up_on_after_the_read_timeout(
        request: pytest.FixtureRequest, tmp_path: Path, which: str) -> None:
    """The acceptance case of issue 17: --read-timeout 2 --max-attempts 2 against a server
    that never answers ends with exit 5 (transient: resumable), and the retry line and
    the error both say which timeout ran out, and after how long."""
    source = request.getfixturevalue(which)
    with silent_server() as endpoint:
        result = cli("cp", source, "s3://bucket/key", "--endpoint-url", endpoint,
                     "--read-timeout", "2", "--max-attempts", "2",
                     "--journal", str(tmp_path / "j.db"))
    assert result.returncode == 5, result.stderr
    lines = result.stderr.strip().splitlines()
    retries = [line for line in lines if "; retry 1/1 in" in line]
    assert len(retries) == 1, result.stderr
    assert "timed out after 2 s (--read-timeout)" in retries[0], retries[0]
    assert lines[-1].startswith("bigupload: error:"), result.stderr
    assert "timed out after 2 s (--read-timeout)" in lines[-1]
    assert "gave up after 2 attempts" in lines[-1]
    assert "Traceback" not in result.stderr


def test_the_read_timeout_comes_from_the_environment_too(small_file: str, tmp_path: Path) -> None:
    with silent_server() as endpoint:
        result = cli("cp", small_file, "s3://bucket/key", "--endpoint-url", endpoint,
                     "--max-attempts", "1", "--journal", str(tmp_path / "j.db"),
                     env={"BIGUPLOAD_READ_TIMEOUT": "1.5"})
    assert result.returncode == 5, result.stderr
    assert "timed out after 1.5 s (--read-timeout)" in result.stderr.strip().splitlines()[-1]


def test_an_endpoint_that_never_accepts_is_given_up_on_after_the_connect_timeout(
        small_file: str, tmp_path: Path) -> None:
    with full_backlog() as endpoint:
        result = cli("cp", small_file, "s3://bucket/key", "--endpoint-url", endpoint,
                     "--connect-timeout", "1", "--max-attempts", "2",
                     "--journal", str(tmp_path / "j.db"))
    assert result.returncode == 5, result.stderr
    retries = [line for line in result.stderr.splitlines() if "; retry 1/1 in" in line]
    assert len(retries) == 1, result.stderr
    assert "timed out connecting after 1 s (--connect-timeout)" in retries[0], retries[0]


@pytest.mark.parametrize("value", ["0", "-1", "soon", "inf", "nan"])
@pytest.mark.parametrize("option", ["--read-timeout", "--connect-timeout"])
def test_a_timeout_that_is_not_a_positive_number_is_refused(small_file: str, option: str,
                                                            value: str) -> None:
    result = cli("cp", small_file, "s3://bucket/key", "--endpoint-url", "http://127.0.0.1:9",
                 option, value)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bigupload: error:"), result.stderr
    assert option in lines[0] and "seconds" in lines[0]


def test_a_malformed_timeout_variable_is_named() -> None:
    result = cli("cp", "--help", env={"BIGUPLOAD_CONNECT_TIMEOUT": "0"})
    assert result.returncode == 2
    assert result.stderr.startswith("bigupload: error: BIGUPLOAD_CONNECT_TIMEOUT='0'")


@pytest.mark.parametrize("command", ["cp", "resume", "ls-uploads", "parts", "abort"])
def test_every_command_that_talks_to_the_server_takes_the_timeouts(command: str) -> None:
    result = cli(command, "--help")
    assert result.returncode == 0
    assert "--read-timeout SECONDS" in result.stdout
    assert "--connect-timeout SECONDS" in result.stdout


def test_the_config_refuses_timeouts_that_are_not_positive() -> None:
    with pytest.raises(ConfigError, match="read timeout"):
        UploadConfig(read_timeout_s=0)
    with pytest.raises(ConfigError, match="connect timeout"):
        UploadConfig(connect_timeout_s=float("nan"))


def test_botocore_and_aiohttp_timeouts_name_their_option() -> None:
    import aiohttp
    import botocore.exceptions as bce

    url = "http://127.0.0.1:9/b/k"
    cases = [
        (bce.ReadTimeoutError(endpoint_url=url), "timed out after 3 s (--read-timeout)"),
        (bce.ConnectTimeoutError(endpoint_url=url),
         "timed out connecting after 0.5 s (--connect-timeout)"),
        (aiohttp.ServerTimeoutError("Timeout on reading data from socket"),
         "timed out after 3 s (--read-timeout)"),
        (aiohttp.ConnectionTimeoutError("Connection timeout to host http://127.0.0.1:9"),
         "timed out connecting after 0.5 s (--connect-timeout)"),
        (TimeoutError(), "timed out after 3 s (--read-timeout)"),
    ]
    for exc, said in cases:
        error = map_error(exc, "PutObject", "b", "k", timeouts=(0.5, 3.0))
        assert isinstance(error, StoreError) and error.retryable, exc
        assert str(error) == f"PutObject s3://b/k: {said}", exc
        assert retry_reason("PutObject s3://b/k", error) == said
    assert timed_out("read", None) == "timed out (--read-timeout)"


def test_a_retry_line_names_an_answer_by_its_code() -> None:
    error = StoreError("UploadPart s3://b/k part 2: SlowDown: Please reduce your request rate.",
                       code="SlowDown", status=503)
    assert retry_reason("UploadPart s3://b/k part 2", error) == "SlowDown"


@contextlib.contextmanager
def deaf_server() -> Iterator[str]:
    """http://127.0.0.1:PORT of a server that reads each request's head, answers
    CreateMultipartUpload (and HEAD: 404), and never reads a request's body nor answers
    it: a body larger than the socket buffers can never be sent whole."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []

    def serve(conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            head = b""
            while b"\r\n\r\n" not in head:
                data = conn.recv(1)  # a byte at a time: nothing of the body is read
                if not data:
                    return
                head += data
            if head.startswith(b"POST ") and b"?uploads" in head.split(b"\r\n", 1)[0]:
                xml = (b"<?xml version='1.0' encoding='UTF-8'?><InitiateMultipartUploadResult>"
                       b"<Bucket>bucket</Bucket><Key>key</Key><UploadId>u1</UploadId>"
                       b"</InitiateMultipartUploadResult>")
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(xml), xml))
                serve(conn)
            elif head.startswith(b"HEAD "):  # a stream looks first: no such key
                conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                serve(conn)

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            held.append(conn)
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)  # wakes the accept: close alone does not
        listener.close()
        thread.join(5)
        for conn in held:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()


@pytest.mark.parametrize("size, stdin, operation", [(24 << 20, False, "PutObject"),
                                                   (80 << 20, False, "UploadPart"),
                                                   (80 << 20, True, "UploadPart")],
                         ids=["PutObject", "UploadPart", "stream"])
def test_a_server_that_stops_reading_the_body_is_given_up_on_after_the_read_timeout(
        tmp_path: Path, size: int, stdin: bool, operation: str) -> None:
    """A request body larger than the socket buffers, sent over plain http to a server
    that never reads it: each attempt ends after --read-timeout without a byte taken
    (aiohttp's own read timeout only starts after the body), exit 5. Before the fix the
    sendfile (and the stream's drain) waited forever: the subprocess bound fails it."""
    path = tmp_path / "big.bin"
    with open(path, "wb") as f:
        f.truncate(size)
    with deaf_server() as endpoint:
        result = subprocess.run(
            [sys.executable, "-m", "bigupload.cli", "cp", "-" if stdin else str(path),
             "s3://bucket/key", "--endpoint-url", endpoint, "--read-timeout", "2",
             "--max-attempts", "2", "--journal", str(tmp_path / "j.db")],
            input=b"\0" * size if stdin else None, capture_output=True, timeout=60)
    stderr = result.stderr.decode()
    assert result.returncode == 5, stderr
    lines = stderr.strip().splitlines()
    assert any("timed out after 2 s (--read-timeout); retry 1/1" in line for line in lines), \
        stderr
    assert lines[-1].startswith(f"bigupload: error: {operation} s3://bucket/key"), stderr
    assert "timed out after 2 s (--read-timeout) (gave up after 2 attempts)" in lines[-1]
    assert "Traceback" not in stderr


@pytest.mark.parametrize("command", [["ls-uploads", "s3://bkt/"],
                                     ["parts", "s3://bkt/k", "--upload-id", "U"],
                                     ["abort", "s3://bkt/k", "--upload-id", "U"]])
@pytest.mark.parametrize("given", ["flag", "environment"])
def test_the_multipart_calls_take_max_attempts(command: list[str], given: str) -> None:
    """ls-uploads, parts and abort are retried like every call, as many times as
    --max-attempts (or BIGUPLOAD_MAX_ATTEMPTS) says: it used to be refused as an option
    and ignored in the environment (5 tries whatever was asked)."""
    with silent_server() as endpoint:
        flag = ["--max-attempts", "2"] if given == "flag" else []
        env = {"BIGUPLOAD_MAX_ATTEMPTS": "2"} if given == "environment" else {}
        result = cli(*command, "--endpoint-url", endpoint, "--read-timeout", "0.5", *flag,
                     env=env)
    assert result.returncode == 5, result.stderr
    assert "gave up after 2 attempts" in result.stderr
    assert result.stderr.count("retry 1/1") == 1
