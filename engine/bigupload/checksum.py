"""Checksums: picks the backend (native extension, then the ``crc32c`` package with
zlib, then pure Python), overridable with ``BIGUPLOAD_CHECKSUM_BACKEND``; encodes values
as S3 header strings; combines part CRCs into whole-object values.

A fallback is logged once at first use, never silent. The composite checksum that S3
reports for a multipart object is the checksum of the concatenated raw part checksums,
suffixed ``-N``."""

from __future__ import annotations

import base64
import functools
import hashlib
import logging
import os
import zlib
from collections.abc import Callable, Sequence
from typing import Any

from .config import ChecksumAlgorithm
from .errors import ConfigError

log = logging.getLogger("bigupload")

Buffer = Any  # any object supporting the buffer protocol
CrcFunc = Callable[[Buffer, int], int]

_POLYS = {  # reflected polynomial, width
    ChecksumAlgorithm.CRC32: (0xEDB88320, 32),
    ChecksumAlgorithm.CRC32C: (0x82F63B78, 32),
    ChecksumAlgorithm.CRC64NVME: (0x9A6C9329AC4BC9B5, 64),
}
BACKENDS = ("native", "package", "python")


def _python_crc(poly: int, width: int) -> CrcFunc:
    mask = (1 << width) - 1
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)

    def crc(data: Buffer, value: int = 0) -> int:
        reg = value ^ mask
        for b in memoryview(data).cast("B"):
            reg = table[(reg ^ b) & 0xFF] ^ (reg >> 8)
        return reg ^ mask

    return crc


def _crc_functions(backend: str) -> dict[ChecksumAlgorithm, CrcFunc]:
    if backend == "native":
        from . import _native

        return {
            ChecksumAlgorithm.CRC32C: _native.crc32c,
            ChecksumAlgorithm.CRC32: _native.crc32,
            ChecksumAlgorithm.CRC64NVME: _native.crc64nvme,
        }
    python = {alg: _python_crc(*_POLYS[alg]) for alg in _POLYS}
    if backend == "package":
        import crc32c

        python[ChecksumAlgorithm.CRC32C] = crc32c.crc32c
        python[ChecksumAlgorithm.CRC32] = zlib.crc32
    return python


@functools.lru_cache(maxsize=None)
def backend() -> str:
    """The backend in use: ``native`` unless unavailable or overridden."""
    wanted = os.environ.get("BIGUPLOAD_CHECKSUM_BACKEND", "").strip().lower()
    if wanted:
        if wanted not in BACKENDS:
            raise ConfigError(f"BIGUPLOAD_CHECKSUM_BACKEND must be one of {', '.join(BACKENDS)}")
        if wanted != "native":
            log.warning("checksums: using the %s backend (BIGUPLOAD_CHECKSUM_BACKEND)", wanted)
        return wanted
    try:
        from . import _native  # noqa: F401
    except ImportError as exc:
        log.warning("checksums: native extension unavailable (%s); using the crc32c package", exc)
        return "package"
    return "native"


@functools.lru_cache(maxsize=None)
def _functions(name: str) -> dict[ChecksumAlgorithm, CrcFunc]:
    return _crc_functions(name)


def crc_function(algorithm: ChecksumAlgorithm, backend_name: str | None = None) -> CrcFunc:
    """The CRC function for ``algorithm`` in the given (default: active) backend."""
    return _functions(backend_name or backend())[algorithm]


def width(algorithm: ChecksumAlgorithm) -> int:
    """Size in bytes of the raw checksum value."""
    return {ChecksumAlgorithm.SHA256: 32, ChecksumAlgorithm.CRC64NVME: 8}.get(algorithm, 4)


def compute(algorithm: ChecksumAlgorithm, data: Buffer) -> bytes:
    """Raw big-endian checksum of ``data`` (the bytes S3 base64-encodes in its headers)."""
    if algorithm is ChecksumAlgorithm.SHA256:
        return hashlib.sha256(data).digest()
    if algorithm is ChecksumAlgorithm.NONE:
        return b""
    return crc_function(algorithm)(data, 0).to_bytes(width(algorithm), "big")


class Hasher:
    """Incremental form of ``compute``: ``update`` chunks in order, then ``digest``."""

    def __init__(self, algorithm: ChecksumAlgorithm) -> None:
        self.algorithm = algorithm
        self._sha = hashlib.sha256() if algorithm is ChecksumAlgorithm.SHA256 else None
        self._crc = None if algorithm in (ChecksumAlgorithm.SHA256, ChecksumAlgorithm.NONE) \
            else crc_function(algorithm)
        self._value = 0

    def update(self, data: Buffer) -> None:
        if self._crc is not None:
            self._value = self._crc(data, self._value)
        elif self._sha is not None:
            self._sha.update(data)

    def digest(self) -> bytes:
        if self._sha is not None:
            return self._sha.digest()
        if self._crc is None:
            return b""
        return self._value.to_bytes(width(self.algorithm), "big")


def encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def decode(value: str) -> bytes:
    return base64.b64decode(value.split("-", 1)[0])


def composite(algorithm: ChecksumAlgorithm, part_checksums: Sequence[bytes]) -> str:
    """The value S3 reports for a multipart object with COMPOSITE checksums: ``b64-N``."""
    return f"{encode(compute(algorithm, b''.join(part_checksums)))}-{len(part_checksums)}"


def _multmodp(a: int, b: int, poly: int, nbits: int) -> int:
    product = 0
    bit = 1 << (nbits - 1)
    while bit:
        if a & bit:
            product ^= b
        b = (b >> 1) ^ poly if b & 1 else b >> 1
        bit >>= 1
    return product


def combine(algorithm: ChecksumAlgorithm, crc_a: int, crc_b: int, len_b: int) -> int:
    """CRC of ``a || b`` from the CRCs of ``a`` and ``b`` and the length of ``b``."""
    if backend() == "native":
        from . import _native

        fn = {
            ChecksumAlgorithm.CRC32C: _native.crc32c_combine,
            ChecksumAlgorithm.CRC32: _native.crc32_combine,
            ChecksumAlgorithm.CRC64NVME: _native.crc64nvme_combine,
        }[algorithm]
        return fn(crc_a, crc_b, len_b)
    poly, nbits = _POLYS[algorithm]
    xpow = 1 << (nbits - 2)  # x^1, squared up to x^(2^k)
    shift = 1 << (nbits - 1)  # x^0
    n = 8 * len_b
    while n:
        if n & 1:
            shift = _multmodp(xpow, shift, poly, nbits)
        xpow = _multmodp(xpow, xpow, poly, nbits)
        n >>= 1
    return _multmodp(shift, crc_a, poly, nbits) ^ crc_b


def full_object(algorithm: ChecksumAlgorithm, parts: Sequence[tuple[bytes, int]]) -> str | None:
    """Whole-object CRC (base64) from ``(raw part checksum, part length)`` pairs, without
    re-reading data; None for algorithms that do not combine (SHA-256, none)."""
    if algorithm not in _POLYS:
        return None
    total = 0
    for raw, length in parts:
        total = combine(algorithm, total, int.from_bytes(raw, "big"), length)
    return encode(total.to_bytes(width(algorithm), "big"))
