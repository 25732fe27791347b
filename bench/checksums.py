"""Checksum throughput, GB/s on 8 MiB buffers, one thread and two: every native
implementation this CPU offers, against the crc32c package and zlib."""

from __future__ import annotations

import os
import threading
import time
import zlib
from collections.abc import Callable

import crc32c

from bigupload import _native

BUF = os.urandom(8 << 20)


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


def main() -> None:
    print(f"cpu features: {_native.cpu_features()}")
    rows: list[tuple[str, Callable[[bytes], object]]] = []
    for alg in ("crc32c", "crc32", "crc64nvme"):
        for impl in _native.implementations(alg):
            def fn(data: bytes, alg: str = alg, impl: str = impl) -> object:
                return getattr(_native, alg)(data)
            rows.append((f"native {alg} [{impl}]", fn))
    rows += [("crc32c package", crc32c.crc32c), ("zlib.crc32", zlib.crc32)]
    print(f"{'checksum':32} {'1 thread':>10} {'2 threads':>10}")
    for name, fn in rows:
        if name.startswith("native"):
            alg, impl = name.split()[1], name.split("[")[1].rstrip("]")
            previous = _native.set_implementation(alg, impl)
        print(f"{name:32} {rate(fn, 1):>8.1f}   {rate(fn, 2):>8.1f}")
        if name.startswith("native"):
            _native.set_implementation(alg, previous)


if __name__ == "__main__":
    main()
