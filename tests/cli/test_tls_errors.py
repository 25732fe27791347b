"""TLS trust and a wrong endpoint as a user meets them: a certificate that fails
verification is an authentication problem (exit 4) naming what to check, for botocore's
requests and for the lean PutObject path alike; an AWS_CA_BUNDLE that is empty or
unreadable is a configuration error (exit 2) naming the variable, before anything is sent;
an endpoint that answers 404 to everything is pointed out as not an S3 API."""

from __future__ import annotations

import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from bigupload import UploadConfig
from bigupload.client import LeanPut, ObjectOptions, _lean_session
from bigupload.errors import AuthError
from bigupload.testing import SeaweedServer
from tests.cli.test_cli import cli
from tests.faultproxy import FaultProxy, self_signed_tls

pytestmark = pytest.mark.integration


@pytest.fixture
def tls_proxy(seaweed: SeaweedServer, tmp_path: Path) -> Iterator[tuple[FaultProxy, str]]:
    context, cert = self_signed_tls(str(tmp_path))
    with FaultProxy(int(seaweed.endpoint_url.rsplit(":", 1)[1]), tls=context) as proxy:
        yield proxy, cert


def test_an_untrusted_certificate_is_exit_4_with_what_to_check(
        tls_proxy: tuple[FaultProxy, str], seaweed_bucket: str, tmp_path: Path) -> None:
    proxy, _ = tls_proxy
    src = tmp_path / "f.bin"
    src.write_bytes(b"x" * 1000)
    result = cli("cp", str(src), f"s3://{seaweed_bucket}/k", "--endpoint-url", proxy.endpoint_url)
    assert result.returncode == 4, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert (f"TLS certificate verification failed for {proxy.endpoint_url}: self-signed certificate; "
            "check AWS_CA_BUNDLE or the server's certificate (--no-verify-ssl skips the check, unsafe)"
            ) in lines[0]
    assert proxy.log == []  # no request got through


def test_the_lean_path_refuses_an_untrusted_certificate_the_same_way(
        tls_proxy: tuple[FaultProxy, str], seaweed_bucket: str) -> None:
    """LeanPut's own aiohttp session, with the default trust (which does not hold the
    test's self-signed certificate)."""
    proxy, _ = tls_proxy

    async def go() -> None:
        async with _lean_session(UploadConfig(), True) as http:
            lean = LeanPut(http, _Credentials(), "us-east-1")
            await lean.put(f"{proxy.endpoint_url}/{seaweed_bucket}/", seaweed_bucket, "k", b"x",
                           None, ObjectOptions())

    with pytest.raises(AuthError) as caught:
        anyio.run(go)
    assert caught.value.exit_code == 4 and caught.value.operation == "PutObject"
    assert f"TLS certificate verification failed for {proxy.endpoint_url}: self-signed" in str(caught.value)
    assert "AWS_CA_BUNDLE" in str(caught.value)
    assert proxy.log == []


class _Credentials:
    def get_frozen_credentials(self) -> Any:
        return type("Frozen", (), {"access_key": "a", "secret_key": "s", "token": None})()


@pytest.mark.parametrize("bundle,message", [
    ("", "AWS_CA_BUNDLE is set but empty"),
    ("  ", "AWS_CA_BUNDLE is set but empty"),
    ("{tmp}/missing.pem", "AWS_CA_BUNDLE={tmp}/missing.pem: cannot read the CA bundle (No such file"),
    ("{tmp}/garbage.pem", "AWS_CA_BUNDLE={tmp}/garbage.pem: not a PEM bundle of certificates"),
])
def test_a_bad_ca_bundle_is_a_configuration_error(
        tls_proxy: tuple[FaultProxy, str], seaweed_bucket: str, tmp_path: Path,
        bundle: str, message: str) -> None:
    proxy, _ = tls_proxy
    (tmp_path / "garbage.pem").write_text("not a certificate\n")
    src = tmp_path / "f.bin"
    src.write_bytes(b"x" * 1000)
    result = cli("cp", str(src), f"s3://{seaweed_bucket}/k", "--endpoint-url", proxy.endpoint_url,
                 env={**os.environ, "AWS_CA_BUNDLE": bundle.format(tmp=tmp_path)})
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message.format(tmp=tmp_path) in lines[0], lines
    assert proxy.log == []


class _NotFound(http.server.BaseHTTPRequestHandler):
    """A web server that is not S3: 404 and an HTML page for everything."""

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b"<html><body><h1>404 Not Found</h1></body></html>"
        self.send_response(404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def not_s3() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize("size", [1000, 6 << 20])
def test_a_404_from_a_web_server_points_at_the_endpoint(not_s3: str, tmp_path: Path, size: int) -> None:
    src = tmp_path / "f.bin"
    src.write_bytes(b"x" * size)
    result = cli("cp", str(src), "s3://bucket/k", "--endpoint-url", not_s3, "--part-size", "5MiB",
                 "--journal", str(tmp_path / "j.sqlite3"))
    assert result.returncode == 7, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "HTTP 404 without an S3 error code" in lines[0] and "check --endpoint-url" in lines[0]
    operation = "PutObject" if size < 5 << 20 else "CreateMultipartUpload"
    assert lines[0].startswith(f"bigupload: error: {operation} s3://bucket/k"), lines


@pytest.mark.parametrize("what", ["put", "multipart", "directory", "ls-uploads"])
def test_https_to_a_plain_http_port_says_so_as_a_setting(not_s3: str, tmp_path: Path,
                                                         what: str) -> None:
    """An https:// endpoint whose port speaks plain http is a configuration mistake, not
    the store refusing (it was exit 7 "TLS error: ... WRONG_VERSION_NUMBER"): exit 2, one
    line that says to try http://, and nothing sent (the handshake failed)."""
    endpoint = not_s3.replace("http://", "https://")
    (tmp_path / "dir").mkdir()
    src = tmp_path / "dir" / "f.bin"
    src.write_bytes(b"x" * (6 << 20 if what == "multipart" else 1000))
    argv = {"put": ["cp", str(src), "s3://bucket/k"],
            "multipart": ["cp", str(src), "s3://bucket/k", "--part-size", "5MiB",
                          "--multipart-threshold", "5MiB"],
            "directory": ["cp", "-r", str(tmp_path / "dir"), "s3://bucket/p/"],
            "ls-uploads": ["ls-uploads", "s3://bucket"]}[what]
    journal = [] if what == "ls-uploads" else ["--journal", str(tmp_path / "j.db")]
    result = cli(*argv, "--endpoint-url", endpoint, *journal)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("bigupload: error: "), lines
    assert f"{endpoint} does not speak TLS" in lines[0], lines
    assert f"use --endpoint-url {not_s3}" in lines[0], lines
    assert "Traceback" not in result.stderr
