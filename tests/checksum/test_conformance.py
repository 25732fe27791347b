"""One conformance suite, run for real against every checksum backend (native, package,
pure Python), every native implementation this CPU offers (each is forced in turn, and
the test checks it is the one in use), and both combine implementations (native and
Python, selected per call).

The oracles are independent of the code under test: ``reference_crc`` below computes a
CRC one bit at a time from the catalogue definition (normal, MSB-first polynomial,
explicit input and output reflection), and is itself checked against the catalogue's
check values, zlib and the ``crc32c`` package. Combine is checked against the oracle's
CRC of the concatenation."""

from __future__ import annotations

import base64
import functools
import hashlib
import os
import random
import zlib
from collections.abc import Callable, Iterator

import crc32c as crc32c_package
import pytest

# imported unconditionally: the build is optional, so a broken native build shows up here
# as a collection error instead of passing silently on the fallbacks
from bigupload import _native
from bigupload import checksum as ck
from bigupload.config import ChecksumAlgorithm

ALGS = ("crc32c", "crc32", "crc64nvme")
CHECK_123456789 = {"crc32c": 0xE3069283, "crc32": 0xCBF43926, "crc64nvme": 0xAE8B14860A799888}
# the CRC catalogue (Williams model): width, normal polynomial; init and xorout all ones,
# input and output reflected, for all three (CRC-32/ISCSI, CRC-32/ISO-HDLC, CRC-64/NVME)
CATALOGUE = {"crc32c": (32, 0x1EDC6F41), "crc32": (32, 0x04C11DB7),
             "crc64nvme": (64, 0xAD93D23594C93659)}


def _reflect(value: int, bits: int) -> int:
    return int(format(value, f"0{bits}b")[::-1], 2)


@functools.lru_cache(maxsize=None)
def reference_crc(alg: str, data: bytes) -> int:
    """Bit at a time, MSB first, from the polynomial definition. Slow: cached, and fed
    buffers of tens of KiB at most."""
    width, poly = CATALOGUE[alg]
    top, mask = 1 << (width - 1), (1 << width) - 1
    reg = mask  # init
    for byte in data:
        reg ^= _reflect(byte, 8) << (width - 8)
        for _ in range(8):
            reg = ((reg << 1) ^ poly) & mask if reg & top else (reg << 1) & mask
    return _reflect(reg, width) ^ mask


def oracle(alg: str, data: bytes) -> int:
    """The fast independent oracle where one exists (zlib, the crc32c package), else the
    bitwise reference."""
    if alg == "crc32c":
        return int(crc32c_package.crc32c(data))
    if alg == "crc32":
        return zlib.crc32(data)
    return reference_crc(alg, bytes(data))


def test_reference_is_right() -> None:
    rng = random.Random(1)
    for alg in ALGS:
        assert reference_crc(alg, b"123456789") == CHECK_123456789[alg]
        assert reference_crc(alg, b"") == 0
    for length in (1, 2, 7, 8, 9, 100, 1000):
        data = rng.randbytes(length)
        assert reference_crc("crc32", data) == zlib.crc32(data)
        assert reference_crc("crc32c", data) == crc32c_package.crc32c(data)


# -- the native extension, every implementation this CPU offers ---------------------------

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
SLOW_ORACLE_MAX = 13_000  # CRC64NVME's oracle is bitwise: past every folding width, kept short


def test_random_buffers_against_oracle(native_fn: tuple[str, Callable[..., int]]) -> None:
    alg, fn = native_fn
    rng = random.Random(7)
    for length in LENGTHS:
        data = rng.randbytes(length)
        if alg == "crc64nvme" and length > SLOW_ORACLE_MAX:
            continue
        assert fn(data) == oracle(alg, data), length


def test_every_split_point_and_unaligned_offsets(native_fn: tuple[str, Callable[..., int]]) -> None:
    alg, fn = native_fn
    rng = random.Random(11)
    data = rng.randbytes(600)
    whole = fn(data)
    assert whole == oracle(alg, data)
    for split in range(len(data) + 1):
        assert fn(data[split:], fn(data[:split])) == whole, split
    size = 70_000 if alg != "crc64nvme" else 5_000
    big = bytearray(rng.randbytes(size + 16))
    view = memoryview(big)
    for offset in range(16):
        chunk = view[offset: offset + size]
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


def test_native_reports_cpu() -> None:
    features = _native.cpu_features()
    assert set(features) == {"sse4.2", "pclmulqdq", "avx512", "vpclmulqdq"}
    assert set(_native.backend()) == set(ALGS)


# -- every backend of bigupload.checksum ---------------------------------------------------

BACKEND_PAIRS = [(b, a) for a in ALGS for b in ck.available(ChecksumAlgorithm(a))]


def test_available_backends() -> None:
    """No dependency provides CRC64NVME: its backends are the extension and Python."""
    assert ck.available(ChecksumAlgorithm.CRC32C) == ["native", "package", "python"]
    assert ck.available(ChecksumAlgorithm.CRC32) == ["native", "package", "python"]
    assert ck.available(ChecksumAlgorithm.CRC64NVME) == ["native", "python"]
    with pytest.raises(ValueError):
        ck.crc_function(ChecksumAlgorithm.CRC64NVME, "package")


@pytest.mark.parametrize(("backend", "alg"), BACKEND_PAIRS, ids=lambda v: str(v))
def test_every_backend_against_oracle(backend: str, alg: str) -> None:
    fn = ck.crc_function(ChecksumAlgorithm(alg), backend)
    assert fn(b"123456789", 0) == CHECK_123456789[alg]
    rng = random.Random(5)
    for length in [*range(0, 33), 100, 1001, 5000]:  # every tail length of slicing-by-8
        data = rng.randbytes(length)
        assert fn(data, 0) == oracle(alg, data), length
    data = rng.randbytes(3001)
    whole = oracle(alg, data)
    for split in (0, 1, 5, 8, 13, 1500, 3000, 3001):  # incremental, from any offset
        assert fn(memoryview(data)[split:], fn(data[:split], 0)) == whole, split


@pytest.mark.parametrize("backend", ["native", "python"])
@pytest.mark.parametrize("alg", ALGS)
def test_combine_per_backend(backend: str, alg: str) -> None:
    """Each combine, chosen explicitly, against the oracle's CRC of the concatenation."""
    algorithm = ChecksumAlgorithm(alg)
    rng = random.Random(3)
    size = 300_000 if alg != "crc64nvme" else 3_000
    data = rng.randbytes(size)
    for split in [0, 1, 7, 8, 1000, size // 2, size - 1, size]:
        a, b = data[:split], data[split:]
        got = ck.combine(algorithm, oracle(alg, a), oracle(alg, b), len(b), backend)
        assert got == oracle(alg, data), split


@pytest.mark.parametrize("alg", ALGS)
def test_full_object_with_python_combine(alg: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``full_object`` with the extension overridden runs the Python combine."""
    monkeypatch.setenv("BIGUPLOAD_CHECKSUM_BACKEND", "python")
    algorithm = ChecksumAlgorithm(alg)
    data = random.Random(9).randbytes(5000)
    parts = [data[i:i + 1200] for i in range(0, len(data), 1200)]
    raws = [oracle(alg, p).to_bytes(ck.width(algorithm), "big") for p in parts]
    expected = ck.encode(oracle(alg, data).to_bytes(ck.width(algorithm), "big"))
    assert ck.full_object(algorithm, list(zip(raws, map(len, parts), strict=True))) == expected


def test_composite_matches_s3_definition() -> None:
    parts = [b"a" * 10, b"b" * 20]
    raws = [crc32c_package.crc32c(p).to_bytes(4, "big") for p in parts]
    expected = ck.encode(crc32c_package.crc32c(b"".join(raws)).to_bytes(4, "big")) + "-2"
    assert ck.composite(ChecksumAlgorithm.CRC32C, raws) == expected


def test_sha1_digests() -> None:
    """SHA-1 as S3 takes it: the raw 20-byte digest, whole or fed in pieces; composite only
    (it does not combine into a full-object value). FIPS 180 vector for "abc"."""
    assert ck.compute(ChecksumAlgorithm.SHA1, b"abc") == \
        bytes.fromhex("a9993e364706816aba3e25717850c26c9cd0d89d")
    hasher = ck.Hasher(ChecksumAlgorithm.SHA1)
    for piece in (b"a", b"", b"bc"):
        hasher.update(piece)
    assert hasher.digest() == ck.compute(ChecksumAlgorithm.SHA1, b"abc")
    assert ck.width(ChecksumAlgorithm.SHA1) == 20
    raws = [bytes.fromhex("a9993e364706816aba3e25717850c26c9cd0d89d")] * 2
    assert ck.full_object(ChecksumAlgorithm.SHA1, [(r, 3) for r in raws]) is None
    # composite of two "abc" parts: SHA-1 of the two digests, computed by hand
    assert ck.composite(ChecksumAlgorithm.SHA1, raws) == \
        base64.b64encode(hashlib.sha1(raws[0] + raws[1]).digest()).decode() + "-2"
