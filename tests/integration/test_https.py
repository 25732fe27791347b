"""Uploads over HTTPS, as users meet them: SeaweedFS's S3 gateway serving TLS with a
certificate from a CA made for the test. Objects must be byte-identical (read back with
boto3), the certificate is verified by default (an untrusted one is exit 4, TLS), the
thread-and-blocking-socket send path (``tlssend``) and aiohttp's (``BIGUPLOAD_TLS_SEND=0``)
both work, trailing checksums are accepted and fall back to the header form where a server
does not echo them, an error answer on the TLS path is the same exception the aiobotocore
path gives, and a connection reset half-way through a body is retried."""

from __future__ import annotations

import base64
import http.server
import os
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import crc32c
import pytest

from bigupload import UploadConfig, Uploader, tlssend
from bigupload.client import AioS3Store, ObjectOptions
from bigupload.errors import AuthError, StoreError
from bigupload.source import FileRange
from bigupload.testing import TEST_CREDENTIALS, SeaweedServer, tls_certificates
from tests.cli.test_cli import cli
from tests.conftest import MiB, fresh_bucket, random_file
from tests.faultproxy import FaultProxy, on

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, str]:
    return tls_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def tls_seaweed(certificates: tuple[str, str, str]) -> Iterator[SeaweedServer]:
    _, cert, key = certificates
    with SeaweedServer(tls=(cert, key)) as server:
        yield server  # type: ignore[misc]


@pytest.fixture
def bucket(tls_seaweed: SeaweedServer) -> Iterator[str]:
    yield from fresh_bucket(tls_seaweed)


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, bool]]:
    """Every request ``tlssend`` sent: (method, URL, with a trailing checksum)."""
    seen: list[tuple[str, str, bool]] = []
    original = tlssend.TlsSender.exchange

    async def exchange(self: tlssend.TlsSender, method: str, url: str, headers: Any, body: Any,
                       trailer: Any = None) -> tlssend.Answer:
        seen.append((method, url, trailer is not None))
        return await original(self, method, url, headers, body, trailer)

    monkeypatch.setattr(tlssend.TlsSender, "exchange", exchange)
    return seen


def _env(ca: str | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_CA_BUNDLE", "REQUESTS_CA_BUNDLE")}
    env.update(TEST_CREDENTIALS)
    if ca:
        env["AWS_CA_BUNDLE"] = ca
    env.update(extra)
    return env


def _read(server: SeaweedServer, bucket: str, key: str) -> bytes:
    return bytes(server.boto3_client().get_object(Bucket=bucket, Key=key)["Body"].read())


@pytest.mark.parametrize("tls_send", ["1", "0"])
def test_cli_uploads_over_https_are_byte_identical(
        tls_seaweed: SeaweedServer, bucket: str, certificates: tuple[str, str, str],
        tmp_path: Path, tls_send: str) -> None:
    ca = certificates[0]
    big = random_file(tmp_path / "big.bin", 12 * MiB + 12345, seed=1)
    small = random_file(tmp_path / "small.bin", 300_000, seed=2)
    for path, key in ((big, "big"), (small, "small")):
        result = cli("cp", str(path), f"s3://{bucket}/{key}", "--endpoint-url",
                     tls_seaweed.https_endpoint_url, "--part-size", "5MiB", "--journal",
                     str(tmp_path / "j.sqlite3"), "--progress", "never",
                     env=_env(ca, BIGUPLOAD_TLS_SEND=tls_send))
        assert result.returncode == 0, result.stderr
        assert _read(tls_seaweed, bucket, key) == path.read_bytes()


def test_a_stream_over_https_is_byte_identical(
        tls_seaweed: SeaweedServer, bucket: str, certificates: tuple[str, str, str],
        tmp_path: Path) -> None:
    """A stream's parts are sent from their buffers (``BufferBody``) by aiohttp's TLS
    transport, not by tlssend, which sends file ranges."""
    data = random_file(tmp_path / "data.bin", 11 * MiB + 7, seed=5).read_bytes()
    for key, payload in (("parts", data), ("one", data[:1000])):
        result = subprocess.run(
            [sys.executable, "-m", "bigupload.cli", "cp", "-", f"s3://{bucket}/{key}",
             "--endpoint-url", tls_seaweed.https_endpoint_url, "--part-size", "5MiB",
             "--journal", str(tmp_path / "j.sqlite3"), "--progress", "never"],
            input=payload, capture_output=True, env=_env(certificates[0]), timeout=300)
        assert result.returncode == 0, result.stderr.decode()
        assert _read(tls_seaweed, bucket, key) == payload


def test_parts_and_puts_go_through_tlssend_with_trailing_checksums(
        tls_seaweed: SeaweedServer, bucket: str, certificates: tuple[str, str, str],
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        spy: list[tuple[str, str, bool]]) -> None:
    monkeypatch.setenv("AWS_CA_BUNDLE", certificates[0])
    big = random_file(tmp_path / "big.bin", 11 * MiB, seed=3)
    small = random_file(tmp_path / "small.bin", 1000, seed=4)
    config = UploadConfig(endpoint_url=tls_seaweed.https_endpoint_url, part_size=5 * MiB)

    async def go() -> list[Any]:
        async with Uploader(config, journal=tmp_path / "j.sqlite3") as up:
            # the second small file goes by LeanPut (the bucket's URL is learnt by then)
            return [await up.upload_file(str(big), bucket, "big"),
                    await up.upload_file(str(small), bucket, "s1"),
                    await up.upload_file(str(small), bucket, "s2")]

    results = anyio.run(go)
    assert _read(tls_seaweed, bucket, "big") == big.read_bytes()
    for key in ("s1", "s2"):
        assert _read(tls_seaweed, bucket, key) == small.read_bytes()
    parts = [s for s in spy if "partNumber=" in s[1]]
    puts = [s for s in spy if "partNumber=" not in s[1]]
    assert len(parts) == 3 and all(trailer for _, _, trailer in parts)  # SeaweedFS echoed them
    assert len(puts) == 2 and not any(trailer for _, _, trailer in puts)
    # the whole-object CRC32C the server checked at completion is the file's
    expected = base64.b64encode(crc32c.crc32c(big.read_bytes()).to_bytes(4, "big")).decode()
    assert results[0].full_object_checksum == expected


def test_the_certificate_is_verified_by_default(
        tls_seaweed: SeaweedServer, bucket: str, tmp_path: Path) -> None:
    src = random_file(tmp_path / "f.bin", 1000)
    other_ca = tls_certificates(tmp_path)[0]  # a CA that did not sign the server's certificate
    for env in (_env(None), _env(other_ca)):
        result = cli("cp", str(src), f"s3://{bucket}/k", "--endpoint-url",
                     tls_seaweed.https_endpoint_url, "--journal", str(tmp_path / "j.sqlite3"),
                     env=env)
        assert result.returncode == 4, result.stderr
        assert "TLS certificate verification failed" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_tlssend_refuses_an_untrusted_certificate_as_exit_4(
        tls_seaweed: SeaweedServer, bucket: str, tmp_path: Path) -> None:
    """The refusal happens on tlssend's own connection (botocore's calls are not involved)
    and reads as the aiohttp path's does."""
    src = random_file(tmp_path / "f.bin", 1000)
    url = f"{tls_seaweed.https_endpoint_url}/{bucket}/k"

    async def go() -> None:
        sender = tlssend.TlsSender(True, connect_timeout=5, read_timeout=5, max_idle=2,
                                   concurrency=2)
        with open(src, "rb") as f:
            try:
                await sender.exchange("PUT", url, {}, FileRange(f.fileno(), str(src), 0, 1000))
            finally:
                sender.close()

    from bigupload.store_errors import map_error

    with pytest.raises(Exception) as caught:
        anyio.run(go)
    error = map_error(caught.value, "PutObject", bucket, "k")
    assert isinstance(error, AuthError) and error.exit_code == 4
    assert f"TLS certificate verification failed for {tls_seaweed.https_endpoint_url}" in str(error)


def test_a_reset_half_way_through_a_part_is_retried(
        tls_seaweed: SeaweedServer, bucket: str, tmp_path: Path) -> None:
    ca, cert, key = tls_certificates(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    src = random_file(tmp_path / "f.bin", 11 * MiB, seed=5)
    with FaultProxy(int(tls_seaweed.endpoint_url.rsplit(":", 1)[1]), tls=context) as proxy:
        proxy.add(on("UploadPart", part=2), "reset_during")
        result = cli("cp", str(src), f"s3://{bucket}/k", "--endpoint-url", proxy.endpoint_url,
                     "--part-size", "5MiB", "--journal", str(tmp_path / "j.sqlite3"),
                     "--progress", "never", env=_env(ca))
        assert result.returncode == 0, result.stderr
        part2 = [r for r in proxy.records("UploadPart") if r.part_number == 2]
        assert [r.fault for r in part2] == ["reset_during", None]
    assert _read(tls_seaweed, bucket, "k") == src.read_bytes()


# a tiny TLS server whose answers the test chooses

class _Scripted(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    answers: list[tuple[int, dict[str, str], bytes]] = []
    seen: list[tuple[dict[str, str], bytes]] = []
    connections: list[int] = []
    hang_up = False  # close each connection after one answer, without saying so

    def setup(self) -> None:
        super().setup()
        self.connections.append(1)

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.seen.append(({k.lower(): v for k, v in self.headers.items()}, body))
        status, headers, content = (self.answers.pop(0) if self.answers
                                    else (200, {"ETag": '"e"'}, b""))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)
        self.close_connection = self.close_connection or self.hang_up

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def scripted(tmp_path: Path,
             monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, type[_Scripted]]]:
    ca, cert, key = tls_certificates(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    handler = type("Handler", (_Scripted,), {"answers": [], "seen": [], "connections": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    server.block_on_close = False  # pooled keep-alive connections may still be open
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("AWS_CA_BUNDLE", ca)
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


BAD_DIGEST = (400, {"Content-Type": "application/xml"},
              b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>BadDigest</Code>"
              b"<Message>The CRC32C you specified did not match the calculated checksum.</Message>"
              b"</Error>")
ACCESS_DENIED = (403, {"Content-Type": "application/xml"},
                 b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>")


@pytest.mark.parametrize("answer", [BAD_DIGEST, ACCESS_DENIED], ids=["BadDigest", "AccessDenied"])
def test_an_error_answer_on_the_tls_path_is_the_aiobotocore_paths_error(
        scripted: tuple[str, type[_Scripted]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        answer: tuple[int, dict[str, str], bytes]) -> None:
    endpoint, handler = scripted
    src = random_file(tmp_path / "f.bin", 100_000)
    errors: dict[str, StoreError] = {}
    for tls_send in ("1", "0"):
        monkeypatch.setenv("BIGUPLOAD_TLS_SEND", tls_send)
        handler.answers.append(answer)

        async def go() -> None:
            async with AioS3Store.open(UploadConfig(endpoint_url=endpoint)) as store:
                with open(src, "rb") as f:
                    await store.upload_part("bucket", "k", "up", 3,
                                            FileRange(f.fileno(), str(src), 0, 100_000),
                                            "AAAAAA==", ObjectOptions())

        with pytest.raises(StoreError) as caught:
            anyio.run(go)
        errors[tls_send] = caught.value
    ours, theirs = errors["1"], errors["0"]
    assert type(ours) is type(theirs)
    def described(e: StoreError) -> tuple[Any, ...]:
        return e.code, e.retryable, e.exit_code, e.operation, e.part_number, str(e)

    assert described(ours) == described(theirs)
    assert [len(body) for _, body in handler.seen] == [100_000, 100_000]


def test_a_server_that_does_not_echo_a_trailing_checksum_gets_the_header_form(
        scripted: tuple[str, type[_Scripted]], tmp_path: Path) -> None:
    """It may not have understood the framing (and stored it): the part is sent again with
    the checksum as a header, and the endpoint keeps to that form."""
    endpoint, handler = scripted
    data = random_file(tmp_path / "f.bin", 3 * MiB + 5).read_bytes()
    crc = base64.b64encode(crc32c.crc32c(data).to_bytes(4, "big")).decode()

    async def go() -> list[Any]:
        async with AioS3Store.open(UploadConfig(endpoint_url=endpoint)) as store:
            with open(tmp_path / "f.bin", "rb") as f:
                body = FileRange(f.fileno(), str(tmp_path / "f.bin"), 0, len(data))
                assert store.checksums_while_sending(ObjectOptions().checksum)
                first = await store.upload_part("bucket", "k", "up", 1, body, None, ObjectOptions())
                assert not store.checksums_while_sending(ObjectOptions().checksum)
                second = await store.upload_part("bucket", "k", "up", 2, body, None,
                                                 ObjectOptions())
                return [first, second]

    receipts = anyio.run(go)
    assert [r.sent for r in receipts] == [base64.b64decode(crc)] * 2
    (framed, framed_body), (plain, plain_body), (again, again_body) = handler.seen
    assert framed["content-encoding"] == "aws-chunked"
    assert framed["x-amz-content-sha256"] == "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    assert framed["x-amz-decoded-content-length"] == str(len(data))
    assert framed_body.endswith(f"0\r\nx-amz-checksum-crc32c:{crc}\r\n\r\n".encode())
    for headers, body in ((plain, plain_body), (again, again_body)):
        assert "content-encoding" not in headers and headers["x-amz-checksum-crc32c"] == crc
        assert body == data


def _two_parts(endpoint: str, path: Path) -> None:
    async def go() -> None:
        async with AioS3Store.open(UploadConfig(endpoint_url=endpoint)) as store:
            with open(path, "rb") as f:
                body = FileRange(f.fileno(), str(path), 0, path.stat().st_size)
                for number in (1, 2):
                    await store.upload_part("bucket", "k", "up", number, body, "AAAAAA==",
                                            ObjectOptions())
    anyio.run(go)


def test_a_connection_is_kept_for_the_next_request_even_past_fd_1024(
        scripted: tuple[str, type[_Scripted]], tmp_path: Path) -> None:
    """select() cannot watch a descriptor past 1024: the check for a connection the server
    closed while idle must not take every such connection for closed."""
    endpoint, handler = scripted
    src = random_file(tmp_path / "f.bin", 1000)
    spare = [os.dup(0) for _ in range(1100)]  # the connection's socket gets a high number
    try:
        _two_parts(endpoint, src)
    finally:
        for fd in spare:
            os.close(fd)
    assert len(handler.seen) == 2 and len(handler.connections) == 1


def test_a_connection_the_server_closed_while_idle_is_replaced(
        scripted: tuple[str, type[_Scripted]], tmp_path: Path) -> None:
    endpoint, handler = scripted
    handler.hang_up = True
    src = random_file(tmp_path / "f.bin", 1000)
    _two_parts(endpoint, src)
    assert len(handler.seen) == 2 and len(handler.connections) == 2


def test_a_cancelled_send_stops_its_thread_and_closes_its_connection(tmp_path: Path) -> None:
    """A server that never reads: the send blocks until the caller gives up; the thread
    is then stopped (not left reading the caller's file) and nothing is pooled."""
    ca, cert, key = tls_certificates(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[ssl.SSLSocket] = []
    closed = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        tls = context.wrap_socket(conn, server_side=True)
        accepted.append(tls)
        closed.wait(30)  # never reads the body

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    src = random_file(tmp_path / "f.bin", 64 * MiB)
    url = f"https://127.0.0.1:{listener.getsockname()[1]}/b/k"
    sender = tlssend.TlsSender(ca, connect_timeout=5, read_timeout=60, max_idle=2, concurrency=2)
    calls: list[Any] = []
    original = tlssend._Call

    def recording() -> Any:
        calls.append(original())
        return calls[-1]

    async def go() -> None:
        with open(src, "rb") as f:
            with anyio.move_on_after(0.5) as scope:
                await sender.exchange("PUT", url, {}, FileRange(f.fileno(), str(src), 0, 64 * MiB))
            assert scope.cancelled_caught

    tlssend_call = tlssend._Call
    try:
        tlssend._Call = recording  # type: ignore[misc]
        anyio.run(go)
    finally:
        tlssend._Call = tlssend_call  # type: ignore[misc]
        closed.set()
        thread.join()
        listener.close()
        for s in accepted:
            s.close()
    (call,) = calls
    assert call.finished.is_set() and call.cancelled
    assert call.conn.sock.fileno() == -1  # closed
    assert not any(sender._idle.values())
    sender.close()
