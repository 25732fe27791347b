"""Shared fixtures: local S3-compatible servers (SeaweedFS, moto) on 127.0.0.1 started
once per session and stopped by PID, a fresh bucket per test, test credentials, and
files of random bytes."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bigupload.testing import TEST_CREDENTIALS, MotoServer, SeaweedServer


@pytest.fixture(autouse=True)
def _test_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Never touch real AWS configuration or the user's journal."""
    for name, value in TEST_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


@pytest.fixture(scope="session")
def seaweed() -> Iterator[SeaweedServer]:
    with SeaweedServer() as server:
        yield server  # type: ignore[misc]


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server  # type: ignore[misc]


def fresh_bucket(server: SeaweedServer | MotoServer) -> Iterator[str]:
    """A new bucket on ``server`` for one test, emptied (uploads aborted, objects deleted)
    and removed afterwards."""
    name = f"t-{uuid.uuid4().hex[:16]}"
    client = server.boto3_client()
    client.create_bucket(Bucket=name)
    yield name
    for upload in client.list_multipart_uploads(Bucket=name).get("Uploads", []):
        client.abort_multipart_upload(Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"])
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
        for obj in page.get("Contents", []):
            client.delete_object(Bucket=name, Key=obj["Key"])
    client.delete_bucket(Bucket=name)


NULLSINK = Path(__file__).resolve().parents[1] / "bench" / "nullsink.py"


@pytest.fixture
def nullsink() -> Iterator[str]:
    """http://127.0.0.1:PORT of the bench's null sink (bench/nullsink.py): enough S3 for
    every client, bodies read and thrown away; stopped by PID."""
    proc = subprocess.Popen([sys.executable, str(NULLSINK)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        ready, port = proc.stdout.readline().split()
        assert ready == "READY"
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture
def seaweed_bucket(seaweed: SeaweedServer) -> Iterator[str]:
    yield from fresh_bucket(seaweed)


@pytest.fixture
def moto_bucket(moto_server: MotoServer) -> Iterator[str]:
    yield from fresh_bucket(moto_server)


def random_file(path: Path, size: int, seed: int = 0) -> Path:
    """A file of ``size`` pseudo-random bytes (fast: repeats a 1 MiB random block with a
    per-block counter so no two parts are equal)."""
    import random

    rng = random.Random(seed)
    block = rng.randbytes(1 << 20)
    with open(path, "wb") as f:
        written = 0
        counter = 0
        while written < size:
            chunk = (counter.to_bytes(8, "little") + block[8:])[: size - written]
            f.write(chunk)
            written += len(chunk)
            counter += 1
    return path


@pytest.fixture
def make_file(tmp_path: Path):  # type: ignore[no-untyped-def]
    def make(size: int, name: str = "data.bin", seed: int = 0) -> Path:
        return random_file(tmp_path / name, size, seed)

    return make


def read_object(server: SeaweedServer | MotoServer, bucket: str, key: str) -> bytes:
    return bytes(server.boto3_client().get_object(Bucket=bucket, Key=key)["Body"].read())


def list_uploads(server: SeaweedServer | MotoServer, bucket: str) -> list[dict[str, object]]:
    return list(server.boto3_client().list_multipart_uploads(Bucket=bucket).get("Uploads", []))


MiB = 1 << 20
