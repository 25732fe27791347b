"""Uploads spread over a Dask LocalCluster of worker processes, against SeaweedFS (and
moto) on 127.0.0.1: one large file over the workers, a worker SIGKILLed mid-upload, the
coordinator SIGKILLed and finished by ``bigupload resume``, stray part uploads caught
before completion, KilledWorker aborting everything, and a batch of small and large files
crashed and resumed. Every check is on the bytes the server holds.

Dask's worker processes re-import this module: it has no side effects at import."""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import dask
import psutil
import pytest
from distributed import Client, LocalCluster

from bigupload import UploadConfig, Uploader
from bigupload import checksum as ck
from bigupload.cluster import DaskExecutor
from bigupload.errors import ClusterError
from bigupload.journal import Journal, PartRecord, UploadState
from bigupload.remote import PartsTask
from bigupload.scheduler import primary_error
from bigupload.testing import (
    TEST_CREDENTIALS,
    MotoServer,
    SeaweedServer,
    journalled_files_done,
    journalled_parts,
)
from tests.conftest import MiB, list_uploads, random_file, read_object

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WORKER_ENV = {**TEST_CREDENTIALS, "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
              "AWS_CONFIG_FILE": "/nonexistent", "DASK_LOGGING__DISTRIBUTED": "error"}


def local_cluster(workers: int = 2, **config: Any) -> LocalCluster:
    with dask.config.set(config):
        return LocalCluster(n_workers=workers, threads_per_worker=2, processes=True,
                            host="127.0.0.1", dashboard_address="127.0.0.1:0", worker_dashboard_address=None,
                            silence_logs=logging.ERROR, env=WORKER_ENV)


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with local_cluster() as c:
        yield c


def worker_pids(cluster: LocalCluster) -> dict[str, int]:
    with Client(cluster) as client:
        return dict(client.run(os.getpid))


def cfg(server: SeaweedServer | MotoServer, **kwargs: Any) -> UploadConfig:
    return UploadConfig(endpoint_url=server.endpoint_url, backoff_base_s=0.01,
                        part_size=5 * MiB, **kwargs)


async def upload(server: SeaweedServer | MotoServer, executor: DaskExecutor, path: Path,
                 bucket: str, key: str, journal: Path, *,
                 during: Callable[[], Any] | None = None, **kwargs: Any) -> Any:
    """Upload on the cluster; ``during`` runs in a thread alongside (to kill something)."""
    async with Uploader(cfg(server, **kwargs), journal=journal, executor=executor) as up:
        if during is None:
            return await up.upload_file(path, bucket, key)
        result: list[Any] = []
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(anyio.to_thread.run_sync, during)

                async def run() -> None:
                    result.append(await up.upload_file(path, bucket, key))

                tg.start_soon(run)
        except BaseExceptionGroup as group:
            raise primary_error(group) from None
        return result[0]


def wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


def test_large_file_spread_over_workers(cluster: LocalCluster, seaweed: SeaweedServer,
                                        seaweed_bucket: str, tmp_path: Path) -> None:
    path = random_file(tmp_path / "big.bin", 64 * MiB + 123)
    before = {a: n for a, n in _executed(cluster).items()}
    result = anyio.run(lambda: upload(seaweed, DaskExecutor(cluster.scheduler_address), path,
                                      seaweed_bucket, "big.bin", tmp_path / "j.db", concurrency=2))
    assert read_object(seaweed, seaweed_bucket, "big.bin") == path.read_bytes()
    assert result.parts == 13 and result.sent_bytes == path.stat().st_size
    assert not list_uploads(seaweed, seaweed_bucket)
    ran = {a: n - before.get(a, 0) for a, n in _executed(cluster).items()}
    assert sum(1 for n in ran.values() if n > 0) == 2, ran  # both workers uploaded parts
    with Journal(tmp_path / "j.db") as journal:
        (record,) = journal.uploads()
        assert record.state is UploadState.COMPLETED


def _executed(cluster: LocalCluster) -> dict[str, int]:
    """Tasks each worker has run: how the test sees that the work was spread."""
    with Client(cluster) as client:
        return dict(client.run(_count_executed))


def _count_executed(dask_worker: Any) -> int:
    return sum(1 for key in dask_worker.state.log if "bigupload-upload_parts" in str(key))


def test_worker_killed_mid_upload(seaweed: SeaweedServer, seaweed_bucket: str,
                                  tmp_path: Path) -> None:
    path = random_file(tmp_path / "big.bin", 120 * MiB)
    journal = tmp_path / "j.db"
    with local_cluster() as cluster:
        pids = worker_pids(cluster)
        victim = sorted(pids.values())[0]

        def kill_one() -> None:
            wait_for(lambda: journalled_parts(journal) >= 3)
            os.kill(victim, signal.SIGKILL)

        result = anyio.run(lambda: upload(seaweed, DaskExecutor(cluster.scheduler_address), path,
                                          seaweed_bucket, "big.bin", journal, during=kill_one,
                                          concurrency=1))
        assert not psutil.pid_exists(victim) or psutil.Process(victim).status() == "zombie"
    assert read_object(seaweed, seaweed_bucket, "big.bin") == path.read_bytes()
    assert result.parts == 24
    assert not list_uploads(seaweed, seaweed_bucket)


class StrayExecutor(DaskExecutor):
    """After the first round of parts, a stray task uploads part 2 again: the same bytes
    (a rerun of a killed worker's task) or different bytes of the same size."""

    def __init__(self, address: str, server: SeaweedServer | MotoServer, path: Path,
                 different: bool) -> None:
        super().__init__(address)
        self.server = server
        self.path = path
        self.different = different
        self.strays = 0

    async def send_parts(self, task: PartsTask, numbers: Sequence[int],
                         on_part: Callable[[PartRecord], None]) -> bool:
        sent = await super().send_parts(task, numbers, on_part)
        if self.strays == 0:
            self.strays += 1
            with open(self.path, "rb") as f:
                f.seek(task.part_size)
                body = f.read(task.part_size)
            if self.different:
                body = bytes(b ^ 0xFF for b in body[:64]) + body[64:]
            crc = ck.encode(ck.compute(task.algorithm, body))  # the upload declared CRC32C
            await anyio.to_thread.run_sync(lambda: self.server.boto3_client().upload_part(
                Bucket=task.bucket, Key=task.key, UploadId=task.upload_id, PartNumber=2, Body=body,
                ChecksumAlgorithm="CRC32C", ChecksumCRC32C=crc))
        return sent


@pytest.mark.parametrize("server_name,different", [("seaweed", True), ("seaweed", False),
                                                   ("moto_server", True)])
def test_stray_part_fixed_before_completion(cluster: LocalCluster, server_name: str,
                                            different: bool, request: pytest.FixtureRequest,
                                            tmp_path: Path) -> None:
    server = request.getfixturevalue(server_name)
    bucket = request.getfixturevalue("seaweed_bucket" if server_name == "seaweed" else "moto_bucket")
    path = random_file(tmp_path / "big.bin", 16 * MiB + 5)
    executor = StrayExecutor(cluster.scheduler_address, server, path, different)
    result = anyio.run(upload, server, executor, path, bucket, "k", tmp_path / "j.db")
    assert executor.strays == 1
    assert read_object(server, bucket, "k") == path.read_bytes()
    assert not list_uploads(server, bucket)
    if server_name == "moto_server":  # S3 semantics: the stray replaced part 2; sent again
        assert result.sent_bytes == path.stat().st_size + 5 * MiB


def test_killed_worker_aborts_everything(seaweed: SeaweedServer, seaweed_bucket: str,
                                         tmp_path: Path) -> None:
    path = random_file(tmp_path / "big.bin", 120 * MiB)
    journal = tmp_path / "j.db"
    # no task may outlive a worker: the first death of a worker running one is KilledWorker
    with local_cluster(**{"distributed.scheduler.allowed-failures": 0}) as cluster:
        pids = worker_pids(cluster)

        def kill_all() -> None:
            wait_for(lambda: journalled_parts(journal) >= 2)
            for pid in pids.values():
                os.kill(pid, signal.SIGKILL)

        with pytest.raises(ClusterError, match="killed every worker") as info:
            anyio.run(lambda: upload(seaweed, DaskExecutor(cluster.scheduler_address), path,
                                     seaweed_bucket, "big.bin", journal, during=kill_all,
                                     concurrency=1))
        assert info.value.abort and info.value.exit_code == 10
    assert not list_uploads(seaweed, seaweed_bucket)
    with Journal(journal) as j:
        (record,) = j.uploads()
        assert record.state is UploadState.ABORTED and record.upload_id


# the command line: coordinator crashes


def cli(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bigupload.cli", *args], capture_output=True,
                          text=True, timeout=300, **kwargs)


def start_cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "bigupload.cli", *args], text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def kill_coordinator(proc: subprocess.Popen[str], linger_s: float) -> None:
    """SIGKILL the coordinator; its cluster's processes may go on uploading for
    ``linger_s`` (the zombie case), then they are killed too, by PID."""
    tree = psutil.Process(proc.pid).children(recursive=True)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.stderr is not None
    proc.stderr.close()
    time.sleep(linger_s)
    for child in tree:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(tree, timeout=10)


def test_coordinator_killed_then_resume(seaweed: SeaweedServer, seaweed_bucket: str,
                                        tmp_path: Path) -> None:
    path = random_file(tmp_path / "big.bin", 150 * MiB + 7)
    journal = tmp_path / "j.db"
    common = ["--journal", str(journal), "--endpoint-url", seaweed.endpoint_url,
              "--progress", "never"]
    proc = start_cli("cp", str(path), f"s3://{seaweed_bucket}/big.bin", "--dask", "local:2",
                     "--part-size", "5MiB", "--concurrency", "1", *common)
    wait_for(lambda: journalled_parts(journal) >= 4 or proc.poll() is not None)
    assert proc.poll() is None, "the upload finished before it could be interrupted"
    kill_coordinator(proc, linger_s=0.5)
    at_kill = journalled_parts(journal)
    assert 4 <= at_kill < 31
    with sqlite3.connect(journal) as db:
        bytes_at_kill = int(db.execute("SELECT SUM(size) FROM parts").fetchone()[0])
    done = cli("resume", "--json", "--dask", "local:2", *common)
    assert done.returncode == 0, done.stderr
    (result,) = [e for e in map(json.loads, done.stdout.splitlines()) if e["event"] == "done"]
    # every part journalled before the kill was kept; parts sent after the last journal
    # write (the workers went on) were verified against the file and kept or sent again
    assert result["resumed_parts"] >= at_kill
    assert result["sent_bytes"] <= path.stat().st_size - bytes_at_kill
    assert read_object(seaweed, seaweed_bucket, "big.bin") == path.read_bytes()
    assert not list_uploads(seaweed, seaweed_bucket)


def test_batch_sharded_crash_and_resume(seaweed: SeaweedServer, seaweed_bucket: str,
                                        tmp_path: Path) -> None:
    root = tmp_path / "src"
    files: dict[str, Path] = {}
    for i in range(300):
        p = root / f"d{i % 7}" / f"small {i:03}.bin"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(os.urandom(1 + (i * 997) % 60_000))
        files[f"d{i % 7}/small {i:03}.bin"] = p
    (root / "large").mkdir()
    for n in range(3):
        files[f"large/big{n}.bin"] = random_file(root / "large" / f"big{n}.bin", 30 * MiB + n, seed=n)
    journal = tmp_path / "j.db"
    common = ["--journal", str(journal), "--endpoint-url", seaweed.endpoint_url,
              "--progress", "never"]
    proc = start_cli("cp", str(root), f"s3://{seaweed_bucket}/set/", "-r", "--dask", "local:3",
                     "--part-size", "5MiB", "--concurrency", "1", *common)
    wait_for(lambda: journalled_files_done(journal) >= 30 or proc.poll() is not None)
    assert proc.poll() is None, "the job finished before it could be interrupted"
    kill_coordinator(proc, linger_s=0.2)
    assert journalled_files_done(journal) < len(files)
    done = cli("resume", "--json", "--dask", "local:2", *common)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.splitlines()[-1])
    assert summary["event"] == "summary" and summary["state"] == "completed", summary
    client = seaweed.boto3_client()
    keys = {o["Key"] for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=seaweed_bucket) for o in page.get("Contents", [])}
    assert keys == {"set/" + k for k in files}
    for name, p in files.items():
        assert read_object(seaweed, seaweed_bucket, "set/" + name) == p.read_bytes(), name
    assert not list_uploads(seaweed, seaweed_bucket)
    status = cli("status", "--json", "--journal", str(journal))
    assert status.returncode == 0
    assert not [e for e in map(json.loads, status.stdout.splitlines())
                if e.get("event") == "job" and e.get("state") == "active"]

