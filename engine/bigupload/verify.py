"""Is this object ours? The one set of rules for completion, resume and skip-existing.

Pure: no I/O. An object is compared on everything that can be compared:
- its size;
- its checksum, in whatever algorithm the server reports: the algorithm must be ours, and
  the value our composite (``b64-N``) or full-object CRC;
- its ETag, where ETags are MD5s (not SSE-KMS or SSE-C): a single-request object's ETag is
  the MD5 of its bytes, a multipart one's the MD5 of its part MD5s with ``-N``;
- its LastModified, which cannot be older than the upload that made it.

What could not be compared is reported too, so a caller never claims more than it knows.

Who asks: an upload verifying what it has just written (``Verdict.ours``, content
checked where possible), an upload taking up an object whose completion it did not see
(the same, with the MD5 ETag and the age: ``Expected`` with ``etag`` and
``not_before``), and ``--skip-existing`` (``Verdict.same_content``: the bytes compared
equal, whoever wrote them; ``existing_expected``)."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
from collections.abc import Sequence

from . import checksum as ck
from .config import ChecksumAlgorithm
from .values import ObjectInfo

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

    @property
    def same_content(self) -> bool:
        """Whether the object holds the file's bytes, whoever wrote it (``--skip-existing``):
        the same size, and the bytes compared equal by a checksum or an MD5 ETag."""
        return "size" in self.compared and self.content_checked


def checksums(algorithm: ChecksumAlgorithm, parts: Sequence[tuple[bytes, int]], *,
              multipart: bool) -> frozenset[str]:
    """The values a server reports for an object made of parts with these raw checksums
    and lengths: one request's checksum, or a multipart object's composite (``b64-N``)
    and, for the CRCs, its full-object CRC. Empty with ``--checksum none``."""
    if algorithm is ChecksumAlgorithm.NONE or not parts:
        return frozenset()
    if not multipart:
        return frozenset({ck.encode(parts[0][0])})
    forms = {ck.composite(algorithm, [raw for raw, _ in parts])}
    if (full := ck.full_object(algorithm, parts)) is not None:
        forms.add(full)
    return frozenset(forms)


def existing_expected(size: int, algorithm: ChecksumAlgorithm,
                      parts: Sequence[tuple[bytes, int]], etag: str | None) -> Expected:
    """What an object holding the file's bytes looks like, for ``--skip-existing``: it may
    have been written in one request or in parts of our plan, by any tool, so every form
    counts (a full-object CRC some servers suffix with the part count included)."""
    forms: set[str] = set()
    if parts:
        forms |= checksums(algorithm, parts, multipart=True)
        forms |= {f"{c}-{len(parts)}" for c in forms if "-" not in c}
        if len(parts) == 1:
            forms |= checksums(algorithm, parts, multipart=False)
    name = None if algorithm is ChecksumAlgorithm.NONE else algorithm.s3_name
    return Expected(size=size, algorithm=name, checksums=frozenset(forms), etag=etag)


def layout_matches(checksum: str | None, part_count: int) -> bool:
    """Whether a reported checksum can be compared with ours: a ``-N`` suffix is a part
    count, and an object laid out in other parts has other part checksums."""
    count = (checksum or "").partition("-")[2]
    return not count.isdigit() or int(count) == part_count


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
