"""Is this object ours? The one set of rules for completion, resume and skip-existing.

Pure: no I/O. An object is compared on everything that can be compared:
- its size;
- its checksum, in whatever algorithm the server reports: the algorithm must be ours, and
  the value our composite (``b64-N``) or full-object CRC;
- its ETag, where ETags are MD5s (not SSE-KMS or SSE-C): a single-request object's ETag is
  the MD5 of its bytes, a multipart one's the MD5 of its part MD5s with ``-N``;
- its LastModified, which cannot be older than the upload that made it.

What could not be compared is reported too, so a caller never claims more than it knows."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
from collections.abc import Sequence

from .client import ObjectInfo

CLOCK_SKEW_S = 300.0  # SigV4 itself tolerates 15 minutes; NTP-synced clocks are far closer
_HEX = frozenset("0123456789abcdef")


def md5_hex(etag: str) -> str | None:
    """The hex MD5 an ETag stands for (``"hex"`` or ``"hex-N"``, quotes optional), or None
    when it is not an MD5 ETag."""
    value = etag.strip().strip('"').lower()
    base, _, count = value.partition("-")
    if len(base) != 32 or not set(base) <= _HEX or (count and not count.isdigit()):
        return None
    return value


def multipart_etag(part_etags: Sequence[str]) -> str | None:
    """S3's ETag for a multipart object made of parts with these ETags: the MD5 of the
    concatenated binary part MD5s, then ``-N``. None when a part ETag is not an MD5."""
    digests = []
    for etag in part_etags:
        value = md5_hex(etag)
        if value is None or "-" in value:
            return None
        digests.append(bytes.fromhex(value))
    return f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"


@dataclasses.dataclass(frozen=True)
class Expected:
    """What our object must look like. ``checksums`` are the values ours may be reported
    as (composite and full-object forms); ``etag`` the MD5 ETag it must have, if known."""

    size: int
    algorithm: str | None  # S3's name, None with --checksum none
    checksums: frozenset[str] = frozenset()
    etag: str | None = None
    not_before: float | None = None  # epoch seconds: when the upload began


@dataclasses.dataclass(frozen=True)
class Verdict:
    problems: tuple[str, ...]
    compared: tuple[str, ...]  # what matched: "size", "checksum", "etag", "time"

    @property
    def ours(self) -> bool:
        return not self.problems

    @property
    def content_checked(self) -> bool:
        """Whether the bytes themselves were compared (a checksum or an MD5 ETag)."""
        return "checksum" in self.compared or "etag" in self.compared


def judge(info: ObjectInfo, expected: Expected) -> Verdict:
    problems: list[str] = []
    compared: list[str] = []
    if info.size != expected.size:
        problems.append(f"size {info.size} != {expected.size}")
    else:
        compared.append("size")
    if info.checksum is not None:
        theirs = info.checksum_algorithm or expected.algorithm
        if expected.algorithm is None or theirs != expected.algorithm:
            problems.append(f"checksum algorithm {info.checksum_algorithm} is not ours "
                            f"({expected.algorithm or 'none'})")
        elif expected.checksums:
            # moto reports a composite checksum without its "-N" suffix
            accepted = set(expected.checksums) | {c.split("-")[0] for c in expected.checksums
                                                  if c.count("-") == 1}
            if info.checksum in accepted:
                compared.append("checksum")
            else:
                problems.append(f"checksum {info.checksum} != {sorted(expected.checksums)[0]}")
    if expected.etag is not None and (theirs := md5_hex(info.etag)) is not None:
        if theirs == expected.etag:
            compared.append("etag")
        elif "checksum" not in compared:  # a matching checksum outranks an ETag scheme
            problems.append(f"ETag {theirs} != {expected.etag}")
    if expected.not_before is not None and info.last_modified is not None:
        modified = info.last_modified
        if modified.tzinfo is None:
            modified = modified.replace(tzinfo=datetime.timezone.utc)
        if modified.timestamp() < expected.not_before - CLOCK_SKEW_S:
            problems.append(f"last modified {modified.isoformat()}, before this upload began")
        else:
            compared.append("time")
    return Verdict(tuple(problems), tuple(compared))
