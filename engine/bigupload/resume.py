"""Reconciliation of the journal with the server's ListParts: which parts to keep, which
to verify against the local file, which to send. Pure: no I/O.

Rules, for every planned part number:
- listed by the server and journalled, with the planned size, the journalled ETag and
  (where the server lists one) the journalled checksum: keep;
- listed but not journalled (killed between the response and the journal write, or an
  adopted upload): verify against the local bytes before keeping;
- anything else (missing, wrong size, different ETag or checksum): send again, which
  overwrites that part number on the server.
Listed part numbers beyond the plan are ignored: CompleteMultipartUpload lists only ours,
and S3 discards the rest. A duplicated part number in a listing is a server we cannot
trust: ResumeError."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from .client import RemotePart
from .errors import ResumeError
from .journal import PartRecord
from .plan import Plan


@dataclasses.dataclass(frozen=True)
class Reconciliation:
    keep: dict[int, PartRecord]
    verify: dict[int, RemotePart]  # listed, unknown to the journal: check local bytes
    send: list[int]  # ascending part numbers
    stale: list[int]  # journalled parts the server does not confirm (rows to drop)
    extra: list[int]  # listed part numbers beyond the plan


def reconcile(plan: Plan, journalled: Mapping[int, PartRecord], listed: Iterable[RemotePart]) -> Reconciliation:
    remote: dict[int, RemotePart] = {}
    extra: list[int] = []
    for part in listed:
        if part.number in remote:
            raise ResumeError(f"the server listed part {part.number} twice; refusing to resume")
        if not 1 <= part.number <= plan.part_count:
            extra.append(part.number)
            continue
        remote[part.number] = part
    keep: dict[int, PartRecord] = {}
    verify: dict[int, RemotePart] = {}
    send: list[int] = []
    stale: list[int] = []
    for number in range(1, plan.part_count + 1):
        length = plan.part(number).length
        server = remote.get(number)
        local = journalled.get(number)
        if server is None or server.size != length:
            send.append(number)
            if local is not None:
                stale.append(number)
            continue
        if local is None:
            verify[number] = server
            continue
        same = (
            local.size == length
            and local.etag == server.etag
            and (server.checksum is None or server.checksum == local.checksum)
        )
        if same:
            keep[number] = local
        else:
            send.append(number)
            stale.append(number)
    return Reconciliation(keep=keep, verify=verify, send=send, stale=stale, extra=sorted(extra))
