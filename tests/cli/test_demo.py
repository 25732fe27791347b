"""``examples/demo.py`` (``make demo``) hashes its 1 GiB file and the 1 GiB download in
chunks, never holding either whole (issue 13 item 20)."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.py"


@pytest.fixture(scope="module")
def demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bigupload_demo", DEMO)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Body(io.BytesIO):
    """A download body that records how much each read asked for."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.asked: list[int | None] = []

    def read(self, size: int | None = -1) -> bytes:
        self.asked.append(size)
        return super().read(size)


def test_the_download_is_hashed_in_chunks(demo: ModuleType) -> None:
    data = bytes(range(256)) * 20_000  # 5 MiB: several chunks
    body = Body(data)
    assert demo.sha256_stream(body.read) == hashlib.sha256(data).hexdigest()
    assert body.asked and all(size is not None and 0 < size <= 1 << 20 for size in body.asked)


def test_hashing_a_large_file_keeps_memory_flat(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:  # sparse: 512 MiB of zeros that take no disk
        f.truncate(512 << 20)
    code = ("import importlib.util, resource, sys\n"
            f"spec = importlib.util.spec_from_file_location('demo', {str(DEMO)!r})\n"
            "demo = importlib.util.module_from_spec(spec); spec.loader.exec_module(demo)\n"
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            f"print(demo.sha256_file(__import__('pathlib').Path({str(big)!r})))\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300, check=True)
    digest, grown_kib = result.stdout.split()
    zeros = hashlib.sha256()
    for _ in range(512):
        zeros.update(bytes(1 << 20))
    assert digest == zeros.hexdigest()
    assert int(grown_kib) < 64 * 1024, f"peak RSS grew by {int(grown_kib) >> 10} MiB"
