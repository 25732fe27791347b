"""Secrets never printed or stored; TLS verified by default; SSE-C only over TLS; keys that
look like paths are S3 keys, never local paths. Through a TLS-terminating fault proxy
(self-signed certificate) in front of SeaweedFS, which supports SSE-C."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bigupload.testing import MotoServer, SeaweedServer
from tests.cli.test_cli import cli
from tests.conftest import MiB, list_uploads, read_object
from tests.faultproxy import FaultProxy, self_signed_tls

pytestmark = pytest.mark.integration

SESSION_TOKEN = "FQoGZXIvYXdzEXAMPLE-session-token-bigupload-0123456789"


@pytest.fixture
def tls_proxy(seaweed: SeaweedServer, tmp_path: Path) -> Iterator[tuple[FaultProxy, str]]:
    context, cert = self_signed_tls(str(tmp_path))
    with FaultProxy(int(seaweed.endpoint_url.rsplit(":", 1)[1]), tls=context) as proxy:
        yield proxy, cert


def test_tls_is_verified_by_default(tls_proxy: tuple[FaultProxy, str], seaweed_bucket: str,
                                    make_file: Any, tmp_path: Path) -> None:
    proxy, cert = tls_proxy
    path = make_file(1 * MiB)
    dest = f"s3://{seaweed_bucket}/k"
    refused = cli("cp", str(path), dest, "--endpoint-url", proxy.endpoint_url)
    assert refused.returncode == 4, refused.stderr  # TLS trust: an authentication problem
    assert "TLS certificate verification failed" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert proxy.records("PutObject") == []  # nothing sent
    trusted = cli("cp", str(path), dest, "--endpoint-url", proxy.endpoint_url,
                  env={**os.environ, "AWS_CA_BUNDLE": cert})
    assert trusted.returncode == 0, trusted.stderr
    assert "verification is OFF" not in trusted.stderr
    unverified = cli("cp", str(path), dest, "--endpoint-url", proxy.endpoint_url, "--no-verify-ssl")
    assert unverified.returncode == 0, unverified.stderr
    assert "TLS certificate verification is OFF" in unverified.stderr


def test_sse_c_over_plain_http_is_refused(seaweed: SeaweedServer, make_file: Any, tmp_path: Path) -> None:
    key_file = tmp_path / "sse.key"
    key_file.write_bytes(os.urandom(32))
    result = cli("cp", str(make_file(1024)), "s3://bucket/k", "--endpoint-url", seaweed.endpoint_url,
                 "--sse-c-key-file", str(key_file))
    assert result.returncode == 2
    assert "SSE-C over plain http" in result.stderr


def scan(texts: dict[str, bytes], secrets: dict[str, bytes]) -> None:
    for where, text in texts.items():
        for name, secret in secrets.items():
            assert secret not in text, f"{name} found in {where}"


def test_secrets_never_appear_in_output_logs_or_journal(
        tls_proxy: tuple[FaultProxy, str], seaweed: SeaweedServer, seaweed_bucket: str,
        make_file: Any, tmp_path: Path) -> None:
    """An SSE-C multipart upload with --debug, its JSON output, a failure, status and the
    journal files: none holds the secret key, the session token or the SSE-C key in any
    encoding in which it is sent."""
    proxy, _ = tls_proxy
    sse_key = os.urandom(32)
    key_file = tmp_path / "sse.key"
    key_file.write_bytes(sse_key)
    journal_dir = tmp_path / "state"
    # SeaweedFS checks signatures and knows no session tokens: runs with one are refused,
    # after their requests (token header included) were dumped by --debug
    env = {**os.environ, "AWS_SESSION_TOKEN": SESSION_TOKEN}
    common = ["--endpoint-url", proxy.endpoint_url, "--no-verify-ssl", "--journal",
              str(journal_dir / "journal.sqlite3")]
    path = make_file(12 * MiB)
    runs = {
        "cp --debug": cli("cp", str(path), f"s3://{seaweed_bucket}/enc", *common, "--debug",
                          "--sse-c-key-file", str(key_file), "--part-size", "5MiB"),
        "cp --json": cli("cp", str(path), f"s3://{seaweed_bucket}/enc2", *common, "--json",
                         "--sse-c-key-file", str(key_file), "--part-size", "5MiB"),
        "token --debug": cli("cp", str(path), f"s3://{seaweed_bucket}/enc3", *common, "--debug",
                             "--sse-c-key-file", str(key_file), "--part-size", "5MiB", env=env),
        "failure --debug": cli("cp", str(path), "s3://no-such-bucket-here/k", *common, "--debug",
                               "--sse-c-key-file", str(key_file), "--part-size", "5MiB", env=env),
        "status --json": cli("status", *common[3:], "--json", env=env),  # journal only
    }
    assert runs["cp --debug"].returncode == 0, runs["cp --debug"].stderr[-2000:]
    assert runs["cp --json"].returncode == 0, runs["cp --json"].stderr
    assert runs["status --json"].returncode == 0, runs["status --json"].stderr
    assert runs["failure --debug"].returncode in (4, 7)
    assert runs["token --debug"].returncode == 4
    assert "x-amz-security-token" in runs["token --debug"].stderr
    assert "x-amz-server-side-encryption-customer-key" in runs["cp --debug"].stderr  # headers were dumped
    texts = {f"{name} {stream}": getattr(result, stream).encode()
             for name, result in runs.items() for stream in ("stdout", "stderr")}
    for file in journal_dir.rglob("*"):
        if file.is_file():
            texts[str(file)] = file.read_bytes()
    secret = os.environ["AWS_SECRET_ACCESS_KEY"].encode()
    scan(texts, {
        "secret access key": secret, "session token": SESSION_TOKEN.encode(),
        "SSE-C key": sse_key, "SSE-C key (base64)": base64.b64encode(sse_key),
        "SSE-C key (hex)": sse_key.hex().encode(),
    })
    client = seaweed.boto3_client()
    stored = client.get_object(Bucket=seaweed_bucket, Key="enc", SSECustomerAlgorithm="AES256",
                               SSECustomerKey=sse_key)["Body"].read()
    assert stored == path.read_bytes()


@pytest.mark.parametrize("key", ["../../escape.bin", "/leading-slash.bin", "a/../b.bin",
                                 "dir//double.bin", "tab\there.bin", "ünïcødé/ключ.bin"])
def test_keys_that_look_like_paths_are_passed_through_exactly(
        moto_server: MotoServer, moto_bucket: str, make_file: Any, tmp_path: Path, key: str) -> None:
    path = make_file(6 * MiB + 1)
    workdir = tmp_path / "work"
    workdir.mkdir()
    before = set(tmp_path.rglob("*"))
    result = cli("cp", str(path), f"s3://{moto_bucket}/{key}", "--endpoint-url",
                 moto_server.endpoint_url, "--part-size", "5MiB", "--journal",
                 str(tmp_path / "j.sqlite3"), cwd=workdir)
    assert result.returncode == 0, result.stderr
    keys = [o["Key"] for o in moto_server.boto3_client().list_objects_v2(Bucket=moto_bucket)["Contents"]]
    assert keys == [key]
    assert read_object(moto_server, moto_bucket, key) == path.read_bytes()
    created = {p for p in set(tmp_path.rglob("*")) - before}
    assert all(p.name.startswith("j.sqlite3") or p.parent.name == "j.sqlite3.locks" for p in created), created
    assert list_uploads(moto_server, moto_bucket) == []
