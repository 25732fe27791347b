"""Checksum throughput, GB/s on 8 MiB buffers, one thread and two: every native
implementation this CPU offers, against the crc32c package, google-crc32c, awscrt's
checksums, zlib, and xxhash's XXH3 as a yardstick. A library that is not installed is
reported as such. Runs in the peers' environment (.venv-peers), which has them all.
Writes bench/results/checksums.md as well as printing it."""

from __future__ import annotations

import importlib
import os
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path

from bigupload import _native

BUF = os.urandom(8 << 20)
RESULTS = Path(__file__).resolve().parent / "results"


def rate(fn: Callable[[bytes], object], threads: int, seconds: float = 0.5) -> float:
    counts = [0] * threads

    def loop(i: int) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            fn(BUF)
            counts[i] += 1

    workers = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(counts) * len(BUF) / (time.perf_counter() - start) / 1e9


def libraries() -> list[tuple[str, Callable[[bytes], object] | str]]:
    """(name, function) for each peer library, or (name, why it is missing)."""
    def load(module: str, attr: str) -> Callable[[bytes], object] | str:
        try:
            fn: Callable[[bytes], object] = getattr(importlib.import_module(module), attr)
            return fn
        except (ImportError, AttributeError) as exc:
            return f"not available ({exc})"

    return [
        ("crc32c package", load("crc32c", "crc32c")),
        ("google-crc32c", load("google_crc32c", "value")),
        ("awscrt crc32c", load("awscrt.checksums", "crc32c")),
        ("awscrt crc32", load("awscrt.checksums", "crc32")),
        ("awscrt crc64nvme", load("awscrt.checksums", "crc64nvme")),
        ("zlib.crc32", zlib.crc32),
        ("xxhash xxh3_64 (yardstick)", load("xxhash", "xxh3_64_intdigest")),
        ("xxhash xxh3_128 (yardstick)", load("xxhash", "xxh3_128_intdigest")),
    ]


def main() -> None:
    lines = [f"cpu features: {_native.cpu_features()}; native backend: {_native.backend()}", "",
             "| checksum, 8 MiB buffers | GB/s, 1 thread | GB/s, 2 threads |", "|---|---|---|"]
    print(lines[0])
    rows: list[tuple[str, Callable[[bytes], object] | str]] = []
    for alg in ("crc32c", "crc32", "crc64nvme"):
        for impl in _native.implementations(alg):
            def fn(data: bytes, alg: str = alg) -> object:
                return getattr(_native, alg)(data)
            rows.append((f"native {alg} [{impl}]", fn))
    rows += libraries()
    for name, fn in rows:
        if isinstance(fn, str):
            line = f"| {name} | {fn} | |"
        else:
            previous = None
            if name.startswith("native"):
                alg, impl = name.split()[1], name.split("[")[1].rstrip("]")
                previous = _native.set_implementation(alg, impl)
            line = f"| {name} | {rate(fn, 1):.1f} | {rate(fn, 2):.1f} |"
            if previous is not None:
                _native.set_implementation(alg, previous)
        lines.append(line)
        print(line, flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "checksums.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
