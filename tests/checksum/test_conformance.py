"""One conformance suite, run for real against every checksum backend and every native
implementation this CPU offers (each is forced in turn, and the test checks it is the
one in use)."""

from __future__ import annotations

import os
import random
import zlib
from collections.abc import Callable, Iterator

import crc32c as crc32c_package
import pytest

from bigupload import _native
from bigupload import checksum as ck
from bigupload.config import ChecksumAlgorithm

ALGS = ("crc32c", "crc32", "crc64nvme")
CHECK_123456789 = {"crc32c": 0xE3069283, "crc32": 0xCBF43926, "crc64nvme": 0xAE8B14860A799888}


def _native_variants() -> list[tuple[str, str]]:
    return [(alg, impl) for alg in ALGS for impl in _native.implementations(alg)]


@pytest.fixture(params=_native_variants(), ids=lambda v: f"{v[0]}-{v[1]}")
def native_fn(request: pytest.FixtureRequest) -> Iterator[tuple[str, Callable[..., int]]]:
    alg, impl = request.param
    previous = _native.set_implementation(alg, impl)
    assert _native.backend()[alg] == impl
    try:
        yield alg, getattr(_native, alg)
    finally:
        _native.set_implementation(alg, previous)


def oracle(alg: str, data: bytes) -> int:
    if alg == "crc32c":
        return int(crc32c_package.crc32c(data))
    if alg == "crc32":
        return zlib.crc32(data)
    return ck.crc_function(ChecksumAlgorithm.CRC64NVME, "python")(data, 0)


def test_known_vectors(native_fn: tuple[str, Callable[..., int]]) -> None:
    alg, fn = native_fn
    assert fn(b"123456789") == CHECK_123456789[alg]
    assert fn(b"") == 0
    if alg == "crc32c":  # RFC 3720 B.4
        assert fn(bytes(32)) == 0x8A9136AA
        assert fn(b"\xff" * 32) == 0x62A8AB43
        assert fn(bytes(range(32))) == 0x46DD794E


LENGTHS = [1, 3, 8, 15, 16, 17, 31, 63, 64, 65, 127, 128, 255, 256, 257, 511, 1024, 4095,
           4096, 12287, 12288, 12289, 65535, 65536, 65537, 1 << 20, (1 << 20) + 77]


def test_random_buffers_against_oracle(native_fn: tuple[str, Callable[..., int]]) -> None:
    alg, fn = native_fn
    rng = random.Random(7)
    for length in LENGTHS:
        data = rng.randbytes(length)
        if alg == "crc64nvme" and length > 70000:
            data = data[:70000]  # the pure-Python oracle is slow
        assert fn(data) == oracle(alg, data), length


def test_every_split_point_and_unaligned_offsets(native_fn: tuple[str, Callable[..., int]]) -> None:
    alg, fn = native_fn
    rng = random.Random(11)
    data = rng.randbytes(600)
    whole = fn(data)
    for split in range(len(data) + 1):
        assert fn(data[split:], fn(data[:split])) == whole, split
    big = bytearray(rng.randbytes(70_000 + 16))
    view = memoryview(big)
    for offset in range(16):
        chunk = view[offset: offset + 70_000]
        assert fn(chunk) == oracle(alg, bytes(chunk)), offset


def test_accepts_buffer_types(native_fn: tuple[str, Callable[..., int]]) -> None:
    alg, fn = native_fn
    data = os.urandom(100_000)
    assert fn(bytearray(data)) == fn(memoryview(data)) == fn(data)
    with pytest.raises(TypeError):
        fn("text")
    with pytest.raises(ValueError):
        fn(b"x", -1)
    with pytest.raises(ValueError):
        fn(b"x", 1 << 64)


@pytest.mark.parametrize("alg", ALGS)
def test_combine_matches_whole_buffer(alg: str) -> None:
    fn = getattr(_native, alg)
    combine = getattr(_native, f"{alg}_combine")
    rng = random.Random(3)
    data = rng.randbytes(300_000)
    for split in [0, 1, 7, 4096, 150_000, 299_999, 300_000]:
        a, b = data[:split], data[split:]
        assert combine(fn(a), fn(b), len(b)) == fn(data)
    # and the pure-Python combine agrees
    algorithm = ChecksumAlgorithm(alg)
    parts = [data[i:i + 70_000] for i in range(0, len(data), 70_000)]
    raws = [fn(p).to_bytes(ck.width(algorithm), "big") for p in parts]
    assert ck.full_object(algorithm, list(zip(raws, map(len, parts)))) == ck.encode(
        fn(data).to_bytes(ck.width(algorithm), "big"))


@pytest.mark.parametrize("backend", ck.BACKENDS)
@pytest.mark.parametrize("alg", ALGS)
def test_every_backend_agrees(backend: str, alg: str) -> None:
    fn = ck.crc_function(ChecksumAlgorithm(alg), backend)
    rng = random.Random(5)
    for length in [0, 1, 9, 100, 5000]:
        data = rng.randbytes(length)
        assert fn(data, 0) == oracle(alg, data)
    assert fn(b"123456789", 0) == CHECK_123456789[alg]


def test_backend_override_and_fallback_logged(monkeypatch: pytest.MonkeyPatch,
                                              caplog: pytest.LogCaptureFixture) -> None:
    ck.backend.cache_clear()
    try:
        monkeypatch.setenv("BIGUPLOAD_CHECKSUM_BACKEND", "package")
        with caplog.at_level("WARNING", logger="bigupload"):
            assert ck.backend() == "package"
        assert "package backend" in caplog.text
        # python-backend combine (no native) still gives the right whole-object value
        data = os.urandom(5000)
        a, b = data[:1234], data[1234:]
        crc = crc32c_package.crc32c
        assert ck.combine(ChecksumAlgorithm.CRC32C, crc(a), crc(b), len(b)) == crc(data)
    finally:
        ck.backend.cache_clear()


def test_composite_matches_s3_definition() -> None:
    parts = [b"a" * 10, b"b" * 20]
    raws = [crc32c_package.crc32c(p).to_bytes(4, "big") for p in parts]
    expected = ck.encode(crc32c_package.crc32c(b"".join(raws)).to_bytes(4, "big")) + "-2"
    assert ck.composite(ChecksumAlgorithm.CRC32C, raws) == expected


def test_native_reports_cpu() -> None:
    features = _native.cpu_features()
    assert set(features) == {"sse4.2", "pclmulqdq", "avx512", "vpclmulqdq"}
    assert set(_native.backend()) == set(ALGS)
