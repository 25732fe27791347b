"""--max-bandwidth against SeaweedFS, over http (sendfile, and aiohttp's chunk path) and
https (tlssend's worker threads, and aiohttp's TLS path), for a batch of small files
(LeanPut's PUTs) and for a stream (parts written from their buffers): the upload takes at
least (bytes / rate) * 0.9 — a lower bound, which load on the machine cannot break — and
the objects are byte-identical."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from bigupload.testing import SeaweedServer
from tests.cli.test_cli import cli
from tests.conftest import MiB, random_file, read_object
from tests.integration.test_https import _env, _read, bucket, certificates, tls_seaweed

pytestmark = pytest.mark.integration
__all__ = ["bucket", "certificates", "tls_seaweed"]  # fixtures, used by name

RATE = 10 * MiB
SIZE = 40 * MiB


@pytest.mark.parametrize("env", [{}, {"BIGUPLOAD_EVENT_LOOP": "uvloop"}],
                         ids=["sendfile", "chunks"])
def test_http_upload_keeps_to_the_limit(seaweed: SeaweedServer, seaweed_bucket: str,
                                        tmp_path: Path, env: dict[str, str]) -> None:
    path = random_file(tmp_path / "big.bin", SIZE, seed=3)
    start = time.monotonic()
    result = cli("cp", str(path), f"s3://{seaweed_bucket}/big", "--endpoint-url",
                 seaweed.endpoint_url, "--part-size", "8MiB", "--max-bandwidth", "10MiB/s",
                 "--journal", str(tmp_path / "j.db"), env=_env(None, **env))
    elapsed = time.monotonic() - start
    assert result.returncode == 0, result.stderr
    assert elapsed >= SIZE / RATE * 0.9, elapsed
    assert read_object(seaweed, seaweed_bucket, "big") == path.read_bytes()


@pytest.mark.parametrize("tls_send", ["1", "0"])
def test_https_upload_keeps_to_the_limit(tls_seaweed: SeaweedServer, bucket: str,
                                         certificates: tuple[str, str, str], tmp_path: Path,
                                         tls_send: str) -> None:
    size = 24 * MiB
    path = random_file(tmp_path / "big.bin", size, seed=4)
    start = time.monotonic()
    result = cli("cp", str(path), f"s3://{bucket}/big", "--endpoint-url",
                 tls_seaweed.https_endpoint_url, "--part-size", "8MiB",
                 "--max-bandwidth", "24Mbit/s",
                 "--journal", str(tmp_path / "j.db"),
                 env=_env(certificates[0], BIGUPLOAD_TLS_SEND=tls_send))
    elapsed = time.monotonic() - start
    assert result.returncode == 0, result.stderr
    assert elapsed >= size / 3_000_000 * 0.9, elapsed  # 24 Mbit/s: 3,000,000 bytes/s
    assert _read(tls_seaweed, bucket, "big") == path.read_bytes()


def test_small_files_share_one_limit(seaweed: SeaweedServer, seaweed_bucket: str,
                                     tmp_path: Path) -> None:
    """A directory of small files (one PutObject each, most of them through LeanPut),
    eight at a time: the limit is the job's, not each connection's."""
    root = tmp_path / "dir"
    root.mkdir()
    files = [random_file(root / f"f{i:02}.bin", MiB // 2, seed=10 + i) for i in range(40)]
    start = time.monotonic()
    result = cli("cp", str(root), f"s3://{seaweed_bucket}/d/", "--recursive",
                 "--endpoint-url", seaweed.endpoint_url, "--max-bandwidth", "5MiB/s",
                 "--journal", str(tmp_path / "j.db"), env=_env(None))
    elapsed = time.monotonic() - start
    assert result.returncode == 0, result.stderr
    assert elapsed >= 20 * MiB / (5 * MiB) * 0.9, elapsed
    for path in files:
        assert read_object(seaweed, seaweed_bucket, f"d/{path.name}") == path.read_bytes()


def test_dry_run_shows_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 100)
    result = cli("cp", str(path), "s3://bucket/key", "--dry-run", "--max-bandwidth", "400Mbit/s")
    assert result.returncode == 0, result.stderr
    assert "limit 47.7 MiB/s" in result.stdout


def test_a_malformed_rate_is_one_line_and_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 100)
    result = cli("cp", str(path), "s3://bucket/key", "--dry-run", "--max-bandwidth", "50Mb/s")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--max-bandwidth" in lines[0] and "50MB/s for bytes" in lines[0]


def test_a_stream_keeps_to_the_limit(seaweed: SeaweedServer, seaweed_bucket: str,
                                     tmp_path: Path) -> None:
    """A stream's parts are written from their buffers (httpbody.BufferPayload)."""
    data = random_file(tmp_path / "data.bin", 30 * MiB, seed=4).read_bytes()
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "bigupload.cli", "cp", "-", f"s3://{seaweed_bucket}/stream",
         "--endpoint-url", seaweed.endpoint_url, "--part-size", "8MiB", "--max-bandwidth",
         "10MiB/s", "--journal", str(tmp_path / "j.db")],
        input=data, capture_output=True, env=_env(None), timeout=300)
    elapsed = time.monotonic() - start
    assert result.returncode == 0, result.stderr.decode()
    assert elapsed >= len(data) / RATE * 0.9, elapsed
    assert read_object(seaweed, seaweed_bucket, "stream") == data
