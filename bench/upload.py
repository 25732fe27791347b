"""Upload one file to a throwaway SeaweedFS with the bigupload CLI and report wall time,
MB/s, client CPU seconds per GiB (user+sys of the client process, from wait4) and the
client's peak RSS. Peers and the null sink arrive with the benchmark harness (issue 3).

    python bench/upload.py [--size-mib 2048] [--rounds 3] [-- extra cp options]"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bigupload.testing import TEST_CREDENTIALS, SeaweedServer


def run_once(argv: list[str]) -> tuple[float, float, float]:
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"upload failed: {argv}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("extra", nargs="*")
    args = parser.parse_args()
    os.environ.update(TEST_CREDENTIALS)
    size = args.size_mib << 20
    with tempfile.TemporaryDirectory(prefix="bigupload-bench-") as tmp, SeaweedServer() as server:
        server.create_bucket("bench")
        path = Path(tmp) / "data.bin"
        with open(path, "wb") as f:
            for _ in range(args.size_mib // 64):
                f.write(os.urandom(64 << 20))
        # Warm the page cache in chunks: the child's ru_maxrss includes this process's
        # resident size at fork (the pre-exec image), so this process must stay small.
        with open(path, "rb") as f:
            while f.read(8 << 20):
                pass
        results = []
        for i in range(args.rounds):
            argv = [sys.executable, "-m", "bigupload.cli", "cp", str(path), f"s3://bench/r{i}",
                    "--endpoint-url", server.endpoint_url, "--journal", f"{tmp}/j.sqlite3",
                    "--progress", "never", *args.extra]
            results.append(run_once(argv))
            server.boto3_client().delete_object(Bucket="bench", Key=f"r{i}")
        wall = statistics.median(r[0] for r in results)
        cpu = statistics.median(r[1] for r in results)
        rss = max(r[2] for r in results)
        print(f"bigupload {' '.join(args.extra) or '(defaults)'}: {args.size_mib} MiB to SeaweedFS, "
              f"median of {args.rounds}: {wall:.2f} s, {size / wall / 1e6:.0f} MB/s, "
              f"client CPU {cpu / (size / 2**30):.2f} s/GiB, peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
