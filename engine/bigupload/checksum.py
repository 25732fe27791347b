"""Checksums: picks a backend per algorithm, encodes values as S3 header strings, and
combines part CRCs into whole-object values.

Each algorithm gets the fastest backend this machine has, in this order: the native
extension when it runs a hardware path (SSE4.2, PCLMULQDQ, AVX-512), then a package
(``crc32c`` for CRC32C, the standard library's zlib for CRC32; no dependency provides
CRC64NVME), then the native extension's software path, then pure Python (slicing-by-8,
a few MB/s). ``BIGUPLOAD_CHECKSUM_BACKEND=native|package|python`` forces one backend for
every algorithm (``package`` falls back to Python for CRC64NVME). The native extension is
optional at build time; when it is missing, or a fallback runs, a warning says which
backend each algorithm uses, once per process. ``backends()`` reports the choice.

The composite checksum that S3 reports for a multipart object is the checksum of the
concatenated raw part checksums, suffixed ``-N``."""

from __future__ import annotations

import base64
import functools
import hashlib
import importlib
import logging
import os
import struct
import zlib
from collections.abc import Callable, Sequence
from types import ModuleType
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
_ENV = "BIGUPLOAD_CHECKSUM_BACKEND"
_NATIVE_IMPLS = {"sw": "software", "sse42": "sse4.2", "pclmul": "pclmul",
                 "avx512": "avx512+vpclmulqdq"}
_PACKAGES = {ChecksumAlgorithm.CRC32C: "crc32c", ChecksumAlgorithm.CRC32: "zlib"}


def _python_crc(poly: int, width: int) -> CrcFunc:
    """A table-driven CRC in pure Python, eight bytes per step (slicing-by-8): about twice
    as fast as a byte at a time, and still slow (a few MB/s). ``tables[k][b]`` is the
    register contribution of byte ``b`` followed by ``k`` zero bytes."""
    mask = (1 << width) - 1
    t0 = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        t0.append(c)
    tables = [t0]
    for _ in range(7):
        prev = tables[-1]
        tables.append([(v >> 8) ^ t0[v & 0xFF] for v in prev])
    T0, T1, T2, T3, T4, T5, T6, T7 = tables

    def crc(data: Buffer, value: int = 0) -> int:
        reg = value ^ mask
        view = memoryview(data).cast("B")
        whole = len(view) & ~7
        for (q,) in struct.iter_unpack("<Q", view[:whole]):  # reflected: first byte lowest
            x = reg ^ q
            reg = (T7[x & 0xFF] ^ T6[(x >> 8) & 0xFF] ^ T5[(x >> 16) & 0xFF]
                   ^ T4[(x >> 24) & 0xFF] ^ T3[(x >> 32) & 0xFF] ^ T2[(x >> 40) & 0xFF]
                   ^ T1[(x >> 48) & 0xFF] ^ T0[x >> 56])
        for b in view[whole:]:
            reg = T0[(reg ^ b) & 0xFF] ^ (reg >> 8)
        return reg ^ mask

    return crc


@functools.lru_cache(maxsize=None)
def _native_module() -> tuple[ModuleType | None, str]:
    """The C extension and "", or None and why it cannot be loaded (not built: no compiler
    at install time). Cached: ``_native_module.cache_clear()`` looks again, for tests."""
    try:
        return importlib.import_module(f"{__package__}._native"), ""
    except ImportError as exc:
        return None, str(exc)


def _load_native() -> ModuleType | None:
    return _native_module()[0]


def _native_function(algorithm: ChecksumAlgorithm) -> CrcFunc | None:
    native = _load_native()
    fn: CrcFunc | None = None if native is None else getattr(native, algorithm.value)
    return fn


def _package_function(algorithm: ChecksumAlgorithm) -> CrcFunc | None:
    if algorithm is ChecksumAlgorithm.CRC32:
        return zlib.crc32
    if algorithm is ChecksumAlgorithm.CRC32C:
        try:
            import crc32c
        except ImportError:
            return None
        return crc32c.crc32c
    return None


@functools.lru_cache(maxsize=None)
def _python_function(algorithm: ChecksumAlgorithm) -> CrcFunc:
    return _python_crc(*_POLYS[algorithm])


def available(algorithm: ChecksumAlgorithm) -> list[str]:
    """The backends (names from ``BACKENDS``) that can compute ``algorithm`` here."""
    have = [name for name, fn in (("native", _native_function(algorithm)),
                                  ("package", _package_function(algorithm))) if fn is not None]
    return [*have, "python"]


def _native_hardware(algorithm: ChecksumAlgorithm) -> bool:
    native = _load_native()
    return native is not None and native.backend()[algorithm.value] != "sw"


def _choose(algorithm: ChecksumAlgorithm, forced: str) -> str:
    """The backend for ``algorithm``: the forced one where it can, else the fastest."""
    usable = available(algorithm)
    if forced == "native" and "native" not in usable:
        raise ConfigError(f"{_ENV}=native, but the native checksum extension is not built "
                          f"({_native_module()[1]})")
    if forced:
        return forced if forced in usable else "python"
    if _native_hardware(algorithm):
        return "native"
    return next(name for name in ("package", "native", "python") if name in usable)


@functools.lru_cache(maxsize=None)
def selection() -> dict[ChecksumAlgorithm, str]:
    """The backend name (from ``BACKENDS``) used for each CRC algorithm, chosen once per
    process (``selection.cache_clear()`` chooses again, for tests). Warns, once, when the
    choice is forced or when an algorithm runs without a hardware path."""
    forced = os.environ.get(_ENV, "").strip().lower()
    if forced and forced not in BACKENDS:
        raise ConfigError(f"{_ENV} must be one of {', '.join(BACKENDS)}")
    chosen = {alg: _choose(alg, forced) for alg in _POLYS}
    report = ", ".join(f"{alg.value}: {describe(alg, name)}" for alg, name in chosen.items())
    if forced:
        log.warning("checksums: %s=%s; %s", _ENV, forced, report)
    elif _load_native() is None:
        log.warning("checksums: the native extension is not built (%s); %s. Reinstall "
                    "bigupload where a C compiler is available for full speed",
                    _native_module()[1], report)
    elif "python" in chosen.values():
        log.warning("checksums: %s", report)
    return chosen


def describe(algorithm: ChecksumAlgorithm, backend_name: str) -> str:
    """A backend's name for people: ``native (sse4.2)``, ``package (zlib)``, ``python (slow)``."""
    if backend_name == "native":
        native = _load_native()
        assert native is not None
        return f"native ({_NATIVE_IMPLS.get(native.backend()[algorithm.value], '?')})"
    if backend_name == "package":
        return f"package ({_PACKAGES[algorithm]})"
    return "python (slow)"


def backends() -> dict[str, str]:
    """Which backend computes each CRC algorithm, for ``bigupload --version``:
    ``{"crc32c": "native (sse4.2)", "crc32": "native (avx512+vpclmulqdq)", ...}``."""
    return {alg.value: describe(alg, name) for alg, name in selection().items()}


def crc_function(algorithm: ChecksumAlgorithm, backend_name: str | None = None) -> CrcFunc:
    """The CRC function for ``algorithm`` in the given backend (default: the one chosen).
    ValueError when that backend cannot compute it here."""
    name = backend_name or selection()[algorithm]
    if name == "python":
        return _python_function(algorithm)
    fn = _native_function(algorithm) if name == "native" else _package_function(algorithm)
    if fn is None or name not in BACKENDS:
        raise ValueError(f"the {name} checksum backend cannot compute {algorithm.value} here")
    return fn


def width(algorithm: ChecksumAlgorithm) -> int:
    """Size in bytes of the raw checksum value."""
    return {ChecksumAlgorithm.SHA256: 32, ChecksumAlgorithm.SHA1: 20,
            ChecksumAlgorithm.CRC64NVME: 8}.get(algorithm, 4)


# the algorithms that are digests, not CRCs: they neither combine nor have a full-object form
_DIGESTS: dict[ChecksumAlgorithm, Callable[[], hashlib._Hash]] = {
    ChecksumAlgorithm.SHA256: hashlib.sha256, ChecksumAlgorithm.SHA1: hashlib.sha1,
}


def compute(algorithm: ChecksumAlgorithm, data: Buffer) -> bytes:
    """Raw big-endian checksum of ``data`` (the bytes S3 base64-encodes in its headers)."""
    if algorithm in _DIGESTS:
        digest = _DIGESTS[algorithm]()
        digest.update(data)
        return digest.digest()
    if algorithm is ChecksumAlgorithm.NONE:
        return b""
    return crc_function(algorithm)(data, 0).to_bytes(width(algorithm), "big")


class Hasher:
    """Incremental form of ``compute``: ``update`` chunks in order, then ``digest``."""

    def __init__(self, algorithm: ChecksumAlgorithm) -> None:
        self.algorithm = algorithm
        self._sha = _DIGESTS[algorithm]() if algorithm in _DIGESTS else None
        self._crc = crc_function(algorithm) if algorithm in _POLYS else None
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


def combine(algorithm: ChecksumAlgorithm, crc_a: int, crc_b: int, len_b: int,
            backend_name: str | None = None) -> int:
    """CRC of ``a || b`` from the CRCs of ``a`` and ``b`` and the length of ``b``.
    ``backend_name``: ``native`` or ``python`` (no package combines; ``package`` means
    Python); by default native when the extension is loaded and not overridden."""
    if backend_name is None:
        forced = os.environ.get(_ENV, "").strip().lower()
        backend_name = "native" if forced in ("", "native") and _load_native() else "python"
    if backend_name == "native":
        native = _load_native()
        if native is None:
            raise ValueError("the native checksum backend is not built")
        return int(getattr(native, f"{algorithm.value}_combine")(crc_a, crc_b, len_b))
    if backend_name not in BACKENDS:
        raise ValueError(f"unknown checksum backend {backend_name!r}")
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
    re-reading data; None for algorithms that do not combine (SHA-256, SHA-1, none)."""
    if algorithm not in _POLYS:
        return None
    if len(parts) == 1:  # one part (a single PUT): its CRC is the object's, nothing to fold
        return encode(parts[0][0])
    total = 0
    for raw, length in parts:
        total = combine(algorithm, total, int.from_bytes(raw, "big"), length)
    return encode(total.to_bytes(width(algorithm), "big"))
