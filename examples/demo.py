"""The README's first command (`make demo`): start a throwaway SeaweedFS on 127.0.0.1,
upload a 1 GiB file with the progress bar, interrupt it part-way (SIGINT, as Ctrl-C
would), show the journal, run the same command again to resume, verify the object
byte for byte, and stop the server."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bigupload.config import DEFAULT_PART_SIZE
from bigupload.testing import TEST_CREDENTIALS, SeaweedServer, journalled_parts

SIZE = int(os.environ.get("DEMO_SIZE_MIB", "1024")) * 1024 * 1024


CHUNK = 1 << 20


def sha256_stream(read: Callable[[int], bytes]) -> str:
    """SHA-256 of what ``read(CHUNK)`` returns until it returns nothing, one chunk in
    memory at a time (a 1 GiB file and its download are never held whole)."""
    digest = hashlib.sha256()
    while chunk := read(CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return sha256_stream(f.read)


def say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def make_file(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        for _ in range(size // (64 << 20)):
            f.write(os.urandom(64 << 20))
        f.write(os.urandom(size % (64 << 20)))


def main() -> int:
    os.environ.update(TEST_CREDENTIALS)
    workdir = Path(tempfile.mkdtemp(prefix="bigupload-demo-"))
    try:
        say("starting SeaweedFS on 127.0.0.1 (weed mini, telemetry off)")
        with SeaweedServer() as server:
            server.create_bucket("demo")
            print(f"endpoint {server.endpoint_url}")
            source = workdir / "big.bin"
            say(f"writing {SIZE >> 20} MiB of random bytes to {source}")
            make_file(source, SIZE)
            journal = workdir / "journal.sqlite3"
            command = [sys.executable, "-m", "bigupload.cli", "cp", str(source), "s3://demo/big.bin",
                       "--endpoint-url", server.endpoint_url, "--journal", str(journal),
                       "--progress", "always"]
            print("$ bigupload " + " ".join(command[3:]))
            say("uploading, and interrupting it at about 40% (as Ctrl-C would)")
            parts = -(-SIZE // DEFAULT_PART_SIZE)
            proc = subprocess.Popen(command)
            while journalled_parts(journal) < parts * 0.4 and proc.poll() is None:
                time.sleep(0.01)
            proc.send_signal(signal.SIGINT)
            code = proc.wait()
            print(f"exit code {code} (130 = interrupted, resumable)")
            say("what the journal says is unfinished")
            subprocess.run([sys.executable, "-m", "bigupload.cli", "status", "--journal", str(journal)],
                           check=True)
            say("running the same command again: it resumes")
            subprocess.run(command, check=True)
            say("verifying the object against the file")
            local = sha256_file(source)
            body = server.boto3_client().get_object(Bucket="demo", Key="big.bin")["Body"]
            remote = sha256_stream(body.read)
            print(f"local  sha256 {local}\nremote sha256 {remote}")
            if local != remote:
                print("MISMATCH")
                return 1
            print("byte-identical")
            say("stopping the server")
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
