"""The driver of the multipart kind (``MultipartMachine``): the journal row found,
replaced or begun under the destination's lock, then each step the machine asks for
(CREATE, COMPLETE, CONTESTED and VERIFY are ``MultipartCore``'s, shared with streams).

An upload id is journalled the moment it exists, with what the destination was when the
upload began (its guard); every acknowledged part is journalled as it arrives (here or
from a cluster worker: ``Executor``). This process alone creates, completes and aborts,
and it aborts only when the machine says ``Close``."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

from ..errors import ClusterError, NotFoundError, SourceError
from ..journal import UploadState
from ..remote import PartsTask
from ..values import Part, PartRecord, sse_c_key_hash
from .driver import Job, Services
from .listing import FilePartsListing, PartsListing, wait_for_listing
from .machine import Close, Reaction, Step
from .multipart_core import MultipartCore
from .multipart_machine import MultipartMachine
from .parts import PartSender, abort_upload
from .result import UploadResult

if TYPE_CHECKING:
    from ..journal import UploadRecord

log = logging.getLogger("bigupload")


class JournalledMultipartDriver(MultipartCore):
    """What the resumable multipart kinds share (a file's parts, a copy's ranges): the
    journal row under the destination's lock, the sweep, the listing, the send loop and
    each acknowledged part journalled. A kind gives its job's ``elapsed``, the row's
    ``_begin``, its ``listing`` and how parts are sent (``_send``, ``_send_parts``)."""

    RESENT = ("sent", "sending")  # how the warning names a part sent again
    listing: PartsListing

    def elapsed(self) -> float:
        raise NotImplementedError

    def steps(self) -> Mapping[Step, Callable[[], Awaitable[None]]]:
        return {Step.SWEEP: self._sweep, Step.LIST: self._list, Step.CREATE: self._create,
                Step.SEND: self._send, Step.COMPLETE: self._complete,
                Step.CONTESTED: self._contested, Step.VERIFY: self._verify}

    async def upload(self) -> UploadResult:
        m = self.machine
        with self.journal.claim(self.store.endpoint, m.bucket, m.key):
            await self._begin()
            self.tell()
            await self.run()
        return m.result(self.elapsed())

    # the journal row

    async def _begin(self) -> None:
        """Find the journal row and take it up, or begin a new one."""
        raise NotImplementedError

    async def _abandon(self, record: UploadRecord, reason: str) -> None:
        """Leave a journalled upload for a new one: abort it on the server too, or it would
        stay there, billed, with no row left to resume it."""
        m = self.machine
        if record.upload_id:
            await abort_upload(self.store, self.scheduler, m.bucket, m.key, record.upload_id,
                               m.options)
            log.info("aborted the previous upload %s", record.upload_id)
        else:
            await self.listing.sweep(record, keep=None, adopt=False)
        self.journal.finish(record.id, UploadState.SUPERSEDED, error=reason)

    async def _start_over(self) -> None:
        """The server no longer has the journalled upload: its row is closed with that
        reason, and a new upload of the same source begins, guarded by what the
        destination is now."""
        m = self.machine
        reason = m.gone_reason()
        self.journal.finish(m.row, UploadState.ABORTED, error=reason)
        log.warning("%s: %s; starting a new one", m.where, reason)
        record = self.journal.get(m.row)
        guard = m.start_over(await self.head())
        row = self.journal.start_upload(
            record.fingerprint, record.endpoint, m.bucket, m.key, record.part_size,
            record.part_count, record.checksum_algorithm, record.sse_c_key_hash,
            checksum_type=record.checksum_type, guard=guard, copy_source=record.copy_source,
            content_md5=record.content_md5,
        )
        m.started(row, time.time())

    # the steps

    async def _sweep(self) -> None:
        m = self.machine
        found = await self.listing.sweep(self.journal.get(m.row), keep=None, adopt=True)
        if found is not None:
            self.journal.set_upload_id(m.row, found)
        m.swept(found)

    async def _list(self) -> None:
        m = self.machine
        journalled = self.journal.parts(m.row)
        await wait_for_listing(m.last_write)
        reaction: Reaction | Close | None
        try:
            listed = await self.listing.parts(journalled)
        except NotFoundError as exc:
            reaction = m.listing_failed(exc, journalled)
            if isinstance(reaction, Close):
                await self.close(reaction)
            if reaction is Reaction.RAISE:
                raise
        else:
            reaction = None
        # acted on outside the handler: the requests starting over sends would otherwise
        # carry the handled ListParts error as their context
        if reaction is Reaction.START_OVER:
            await self._start_over()
        if reaction is not None:
            return
        await self.listing.settle(journalled, listed)
        m.listed()
        if m.parts:
            log.info("resuming %s: %d of %d parts already on the server", m.where,
                     len(m.parts), m.plan.part_count)

    async def _send(self) -> None:
        raise NotImplementedError

    async def _send_until_listed(self) -> None:
        """Send what is missing, check the listing, and send again what differs, until the
        machine is satisfied with what the server lists."""
        m = self.machine
        while True:
            if m.to_send:
                await self._send_parts(m.take_to_send())
                continue
            await self.listing.check()
            if m.listing_checked():
                return
            done, doing = self.RESENT
            log.warning("%s: %d part(s) on the server differ from what was %s; %s them again",
                        m.where, len(m.to_send), done, doing)

    async def _send_parts(self, numbers: list[int]) -> None:
        """Send these parts; each is journalled (``_part_sent``) as it is acknowledged."""
        raise NotImplementedError

    def _part_sent(self, record: PartRecord) -> None:
        """Journal a part the server acknowledged (here or on a cluster worker)."""
        self.journal.record_part(self.machine.row, record)
        self.machine.part_sent(record)
        self.progress.advance(record.size)


class MultipartDriver(JournalledMultipartDriver):
    """A file's multipart upload: the row keyed by the file's path and fingerprint, parts
    read from the file (here or on cluster workers), and the file checked unchanged."""

    def __init__(self, job: Job, services: Services) -> None:
        machine = MultipartMachine(job.bucket, job.key, job.config, job.plan, job.options,
                                   restart=job.restart, adopt_upload_id=job.adopt_upload_id,
                                   from_journal=job.from_journal)
        super().__init__(machine, services)
        self.job = job
        self.source = job.source
        self.executor = services.executor
        self.listing = FilePartsListing(machine, job.source, store=self.store,
                                        scheduler=self.scheduler, journal=self.journal)

    def elapsed(self) -> float:
        return self.job.elapsed()

    async def _begin(self) -> None:
        """Find the journal row and take it up, or begin a new one (the journal's plan
        then wins over today's settings)."""
        m, job, endpoint = self.machine, self.job, self.store.endpoint
        record = self.journal.find_active(job.fingerprint.path, endpoint, m.bucket, m.key)
        if record is not None and (reason := m.abandon_reason(record)):
            await self._abandon(record, reason)
            record = None
        if record is not None:
            m.resume(record, job.fingerprint)
            return
        m.no_row(job.fingerprint.path)
        guard = m.begin(await self.head())
        if m.adopt_upload_id:
            m.adopted(await self.listing.fetch(m.adopt_upload_id))
        row = self.journal.start_upload(
            job.fingerprint, endpoint, m.bucket, m.key, job.plan.part_size, job.plan.part_count,
            m.algorithm.value, sse_c_key_hash(job.config.sse_c_key),
            checksum_type=m.checksum_type or "COMPOSITE", guard=guard,
            content_md5=job.config.content_md5,
        )
        m.started(row, time.time())
        if m.upload_id is not None:
            self.journal.set_upload_id(row, m.upload_id)

    async def _send(self) -> None:
        """Send what is missing, then check the listing (re-sending what differs) until
        the machine is satisfied; then the file must still be the one planned."""
        m = self.machine
        self.progress.start(m.where, m.plan.size, m.done_bytes())
        try:
            await self._send_until_listed()
        except (ClusterError, NotFoundError) as exc:
            decision = m.parts_failed(exc)
            if decision is None:
                raise
            await self.close(decision)
        except SourceError as exc:  # a short read: did the file shrink, or vanish?
            changes = await self.scheduler.in_thread(self.source.changes, self.job.fingerprint)
            if (decision := m.source_failed(exc, changes)) is None:
                raise
            await self.close(decision)
        finally:
            self.progress.close()
        changes = await self.scheduler.in_thread(self.source.changes, self.job.fingerprint)
        decision = m.source_checked(changes, self.source.path)
        if decision is not None:
            await self.close(decision)

    async def _send_parts(self, numbers: list[int]) -> None:
        """Send these parts, here or on the cluster; each is journalled as it is acknowledged."""
        m, job = self.machine, self.job
        assert m.upload_id is not None
        if self.executor is not None:
            task = PartsTask(
                fingerprint=job.fingerprint, bucket=m.bucket, key=m.key, upload_id=m.upload_id,
                part_size=m.plan.part_size, algorithm=m.algorithm, options=m.options,
                config=job.config,
            )
            if await self.executor.send_parts(task, numbers, self._part_sent):
                return
            log.info("no cluster worker can read %s: sending it from here", self.source.path)
        sender = PartSender(self.source, m.bucket, m.key, m.upload_id, algorithm=m.algorithm,
                            options=m.options, store=self.store, scheduler=self.scheduler)

        async def send(part: Part) -> None:
            self._part_sent(await sender.send(part))

        try:
            await self.scheduler.run_parts([m.plan.part(n) for n in numbers], m.plan.part_size,
                                           send)
        finally:
            m.answered(sender.server_side)
