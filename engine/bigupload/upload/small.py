"""A small file of a batch job: the single-request kind (``PutMachine``, the same
transitions and guards as ``put.PutDriver``) with its bytes read inline, driven without
a ``Transfer``, a ``Job`` or a worker thread.

Why a driver of its own: a batch of tiny files is bounded by the client's CPU per file,
and the generic path spends it on two thread hops per file (the fingerprint, then the
checksum read) and a per-file journal query, where the file itself is read and
checksummed in microseconds (bench/NOTES.md, "Batch of small files").

    read (open, fstat, read, fstat: never a mix of two versions) + checksum, inline
    [LOOK] -> PUT (the bytes read, retried) -> VERIFY -> DONE

What it keeps of the generic path: --no-overwrite's LOOK and If-None-Match, the
checksum (every algorithm) and Content-MD5 of exactly the bytes sent, a BadDigest
re-reading the file before the next attempt (a change since the first read is a
SourceError), the byte budget held while the request is out, and a file changed between
the read and the answer reported as ``PutMachine.sent`` reports it. A file larger than
``INLINE_BYTES`` by the time it is opened (it grew since the walk) is not this kind:
``read_small`` says so (None) and the caller sends it through ``Transfer``."""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Awaitable, Callable, Mapping

import anyio.lowlevel

from .. import checksum as ck
from ..config import ChecksumAlgorithm, UploadConfig
from ..errors import SourceError
from ..plan import plan
from ..source import SmallRead, read_small, stat_changes
from ..values import ObjectOptions, PartReceipt
from .driver import Driver, Services, put_object
from .machine import Step
from .put_machine import PutMachine
from .result import UploadResult

# Files up to this size are read whole on the event loop (a read from the page cache of
# this much costs tens of microseconds, a thread hop about as much); larger ones go
# through ``Transfer`` (sendfile from the file, the checksum read in a thread).
INLINE_BYTES = 256 * 1024


def digest_bytes(data: bytes, algorithm: ChecksumAlgorithm,
                 content_md5: bool) -> tuple[bytes, str | None]:
    """The raw checksum of ``data`` (empty for none) and, with ``content_md5``, its MD5 as
    Content-MD5 wants it (base64 of the 16 bytes)."""
    raw = b""
    if algorithm is not ChecksumAlgorithm.NONE:
        hasher = ck.Hasher(algorithm)
        hasher.update(data)
        raw = hasher.digest()
    md5 = base64.b64encode(hashlib.md5(data).digest()).decode() if content_md5 else None
    return raw, md5


class SmallPut(Driver):
    """One small file, already read (``source.read_small``), to one key."""

    machine: PutMachine

    def __init__(self, read: SmallRead, bucket: str, key: str, config: UploadConfig,
                 options: ObjectOptions, services: Services) -> None:
        self.started = time.monotonic()
        self.path = read.fingerprint.path
        self._read = read
        machine = PutMachine(bucket, key, config, plan(read.fingerprint.size, config), options)
        super().__init__(machine, services)
        machine.checksummed(*digest_bytes(read.data, machine.algorithm,
                                          machine.options.content_md5))

    def steps(self) -> Mapping[Step, Callable[[], Awaitable[None]]]:
        return {Step.LOOK: self._look, Step.PUT: self._put, Step.VERIFY: self._verify}

    async def upload(self) -> UploadResult:
        await self.run()
        return self.machine.result(time.monotonic() - self.started)

    async def _look(self) -> None:
        self.machine.looked_at(await self.head())

    async def _put(self) -> None:
        m = self.machine
        first = self._read.fingerprint
        length = m.whole.length

        async def attempt(n: int) -> PartReceipt:
            # one turn of the loop with the connection slot held, before sending: a job
            # stopped by another file's fatal failure cancels this request here instead
            # of sending it (the slot's release woke this task before the job's task
            # group heard of the failure; the generic path's thread hop did the same)
            await anyio.lowlevel.checkpoint()
            if m.reread:  # a BadDigest: read the file again, it must not have changed
                again = read_small(self.path, INLINE_BYTES)
                if again is None or (changes := first.differences(again.fingerprint)):
                    what = ", ".join(changes) if again is not None else "it grew"
                    raise SourceError(f"{self.path}: changed while being read ({what})")
                self._read = again
                m.checksummed(*digest_bytes(again.data, m.algorithm, m.options.content_md5))
            return await put_object(self.store, m, self._read.data, m.md5)

        self.progress.start(m.where, length, 0)
        budget = self.scheduler.budget_for(m.plan.part_size)
        await budget.acquire(length)
        try:
            receipt = await self.scheduler.retrying(f"PutObject {m.where}", attempt)
            self.progress.advance(length)
        finally:
            budget.release(length)
            self.progress.close()
        m.sent(receipt, stat_changes(self.path, first), self.path)

    async def _verify(self) -> None:
        self.machine.checked(await self.head())
