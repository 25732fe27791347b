"""Reconciliation of the journal with the server's ListParts: which parts to keep, which
to verify against the local file, which to send. Pure: no I/O.

Rules, for every planned part number:
- listed by the server and journalled, with the planned size, the journalled ETag and
  (where the server lists one) the journalled checksum: keep;
- listed with the planned size but not journalled (killed between the response and the
  journal write, an adopted upload) or journalled differently (a wrong ETag in a response,
  a stray re-upload): verify against the local bytes, keep it only if they match;
- missing or with the wrong size: send again, which overwrites that part number.
Listed part numbers beyond the plan are ignored: CompleteMultipartUpload lists only ours,
and S3 discards the rest. A part number may be listed more than once: S3 keeps only the
last upload of a number, but SeaweedFS keeps every one and completes with the one whose
ETag the completion names. Each listing is then a candidate, and the journal's ETag (or
the local bytes, ``pick_candidate``) picks one.

``lost_creates`` finds the uploads a CreateMultipartUpload whose answer was lost may
have left, among the uploads listed for a key."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Mapping, Sequence

from .values import MultipartUpload, Part, PartRecord, Plan, RemotePart


@dataclasses.dataclass(frozen=True)
class Reconciliation:
    keep: dict[int, PartRecord]
    verify: dict[int, list[RemotePart]]  # listed candidates the journal does not confirm: check local bytes
    send: list[int]  # ascending part numbers
    stale: list[int]  # journalled parts the server does not confirm as journalled (rows to drop)
    extra: list[int]  # listed part numbers beyond the plan


def reconcile(plan: Plan, journalled: Mapping[int, PartRecord], listed: Iterable[RemotePart]) -> Reconciliation:
    remote: dict[int, list[RemotePart]] = {}
    extra: set[int] = set()
    for part in listed:
        if not 1 <= part.number <= plan.part_count:
            extra.add(part.number)
        elif part.size == plan.part(part.number).length:  # a wrong size is never a candidate
            remote.setdefault(part.number, []).append(part)
    keep: dict[int, PartRecord] = {}
    verify: dict[int, list[RemotePart]] = {}
    send: list[int] = []
    stale: list[int] = []
    for number in range(1, plan.part_count + 1):
        candidates = remote.get(number)
        local = journalled.get(number)
        if not candidates:
            send.append(number)
            if local is not None:
                stale.append(number)
            continue
        if local is not None and local.size == plan.part(number).length and any(
            local.etag == server.etag and (server.checksum is None or server.checksum == local.checksum)
            for server in candidates
        ):
            keep[number] = local
        else:
            verify[number] = candidates
            if local is not None:
                stale.append(number)
    return Reconciliation(keep=keep, verify=verify, send=send, stale=stale, extra=sorted(extra))


def pick_candidate(part: Part, candidates: Sequence[RemotePart], checksum: str,
                   md5_etag: str) -> PartRecord | None:
    """The listed candidate for ``part`` whose checksum (where the server lists one) or
    MD5 ETag matches the local bytes' (``checksum`` base64, ``md5_etag`` quoted hex);
    the newest upload of a number is listed last. None when none matches."""
    for remote in reversed(candidates):
        if remote.checksum is not None:
            ok = remote.checksum == checksum
        else:  # SSE-KMS/SSE-C ETags are not MD5s: such parts fail this check and are re-sent
            ok = remote.etag.lower() == md5_etag
        if ok:
            return PartRecord(part.number, part.length, remote.etag, checksum)
    return None


def lost_creates(uploads: Iterable[MultipartUpload], key: str, *, known: Collection[str],
                 since: float, until: float, keep: str | None) -> list[MultipartUpload]:
    """Uploads our own CreateMultipartUpload calls may have made without our seeing the
    answer: to this exact key, initiated between ``since`` and ``until`` (epoch seconds),
    known to no journal row and not ``keep``; oldest first."""
    return sorted(
        (u for u in uploads if u.key == key and u.upload_id != keep
         and u.upload_id not in known
         and u.initiated is not None and since <= u.initiated.timestamp() <= until),
        key=lambda u: (u.initiated, u.upload_id),
    )
