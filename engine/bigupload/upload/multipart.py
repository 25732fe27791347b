"""The driver of the multipart kind (``MultipartMachine``): the journal row found,
replaced or begun under the destination's lock, then each step the machine asks for.

An upload id is journalled the moment it exists, with what the destination was when the
upload began (its guard); every acknowledged part is journalled as it arrives (here or
from a cluster worker: ``Executor``). This process alone creates, completes and aborts,
and it aborts only when the machine says ``Close``."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, NoReturn

from ..errors import ClusterError, NotFoundError, SourceError, StoreError
from ..journal import UploadState
from ..remote import PartsTask
from ..values import Part, PartRecord, sse_c_key_hash
from .driver import Driver, Job, Services
from .listing import PartsListing, confirm_aborted, wait_for_listing
from .machine import Close, Reaction, Step, may_have_created
from .multipart_machine import MultipartMachine
from .parts import PartSender, abort_upload
from .result import UploadResult

if TYPE_CHECKING:
    from ..journal import Journal, UploadRecord

log = logging.getLogger("bigupload")
_NO_CONDITIONS: set[str] = set()  # endpoints that answered a conditional write with 501


class MultipartDriver(Driver):
    machine: MultipartMachine

    def __init__(self, job: Job, services: Services) -> None:
        if services.journal is None:
            raise AssertionError(f"a multipart upload to {job.where} needs a journal")
        machine = MultipartMachine(job.bucket, job.key, job.config, job.plan, job.options,
                                   restart=job.restart, adopt_upload_id=job.adopt_upload_id,
                                   from_journal=job.from_journal)
        super().__init__(machine, job, services)
        self.journal: Journal = services.journal
        self.executor = services.executor
        self.listing = PartsListing(machine, job.source, store=self.store,
                                    scheduler=self.scheduler, journal=self.journal)

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
        return m.result(self.job.elapsed())

    async def close(self, decision: Close) -> NoReturn:
        """End the upload as the machine decided: abort it, close its row, raise."""
        m = self.machine
        if decision.abort and m.upload_id is not None:
            await abort_upload(self.store, self.scheduler, m.bucket, m.key, m.upload_id, m.options)
        self.journal.finish(m.row, UploadState(decision.outcome.value), error=decision.reason)
        if decision.confirm and m.upload_id is not None:
            left = await confirm_aborted(self.store, self.scheduler,
                                         [(m.bucket, m.key, m.upload_id)], {m.bucket: m.key},
                                         m.options)
            if left:
                raise StoreError(
                    f"{m.where}: upload {m.upload_id} is still listed after being aborted; "
                    f"check with: bigupload ls-uploads {m.where}",
                    operation="AbortMultipartUpload", bucket=m.bucket, key=m.key,
                    upload_id=m.upload_id)
        if decision.cause is not None:
            raise decision.error from decision.cause
        raise decision.error

    # the journal row

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
        )
        m.started(row, time.time())
        if m.upload_id is not None:
            self.journal.set_upload_id(row, m.upload_id)

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
        reason, and a new upload begins, guarded by what the destination is now."""
        m = self.machine
        reason = m.gone_reason()
        self.journal.finish(m.row, UploadState.ABORTED, error=reason)
        log.warning("%s: %s; starting a new one", m.where, reason)
        record = self.journal.get(m.row)
        guard = m.start_over(await self.head())
        row = self.journal.start_upload(
            record.fingerprint, record.endpoint, m.bucket, m.key, record.part_size,
            record.part_count, record.checksum_algorithm, record.sse_c_key_hash,
            checksum_type=record.checksum_type, guard=guard,
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

    async def _create(self) -> None:
        """CreateMultipartUpload, journalled at once. A retried call may have created
        uploads whose answers were lost: those are found and aborted."""
        m = self.machine
        attempts = 0
        maybe_created = False

        async def attempt(n: int) -> str:
            nonlocal attempts, maybe_created
            attempts = n
            self.journal.touch(m.row)  # widens the window the sweep searches
            try:
                return await self.store.create_multipart(m.bucket, m.key, m.options)
            except StoreError as exc:
                maybe_created = maybe_created or may_have_created(exc)
                raise

        try:
            upload_id = await self.scheduler.retrying(f"CreateMultipartUpload {m.where}", attempt)
        except StoreError as exc:
            reaction = m.create_failed(exc, maybe_created)
            if isinstance(reaction, Close):
                await self.close(reaction)
            if reaction is not Reaction.COMPOSITE:
                raise
            log.warning("%s refused ChecksumType=FULL_OBJECT (%s): using COMPOSITE checksums",
                        self.store.endpoint, exc.code)
            self.journal.set_checksum_type(m.row, "COMPOSITE")
            return
        self.journal.set_upload_id(m.row, upload_id)
        if attempts > 1:
            await self.listing.sweep(self.journal.get(m.row), keep=upload_id, adopt=False)
        m.created(upload_id)

    async def _send(self) -> None:
        """Send what is missing, then check the listing (re-sending what differs) until
        the machine is satisfied; then the file must still be the one planned."""
        m = self.machine
        self.progress.start(m.where, m.plan.size, m.done_bytes())
        try:
            while True:
                if m.to_send:
                    await self._send_parts(m.take_to_send())
                    continue
                await self.listing.check()
                if m.listing_checked():
                    break
                log.warning("%s: %d part(s) on the server differ from what was sent; sending "
                            "them again", m.where, len(m.to_send))
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

    def _part_sent(self, record: PartRecord) -> None:
        """Journal a part the server acknowledged (here or on a cluster worker)."""
        self.journal.record_part(self.machine.row, record)
        self.machine.part_sent(record)
        self.progress.advance(record.size)

    async def _complete(self) -> None:
        m = self.machine
        parts = m.completion_parts()
        full = m.full_checksum()
        conditional = self.store.endpoint not in _NO_CONDITIONS
        current = await self.head() if m.condition_needs_head(conditional) else None
        condition = m.completion_condition(current, conditional)
        if isinstance(condition, Close):
            await self.close(condition)
        upload_id = m.upload_id
        assert upload_id is not None

        async def attempt(n: int) -> str:
            return await self.store.complete(m.bucket, m.key, upload_id, parts, m.options,
                                             full_checksum=full, size=m.plan.size,
                                             condition=condition)

        try:
            await self.scheduler.retrying(f"CompleteMultipartUpload {m.where}", attempt)
        except StoreError as exc:
            reaction = m.completion_failed(exc, condition is not None)
            if isinstance(reaction, Close):
                await self.close(reaction)
            if reaction is Reaction.RAISE:
                raise
            if reaction is Reaction.NO_CONDITIONS:
                _NO_CONDITIONS.add(self.store.endpoint)
                log.warning("%s does not support conditional writes (%s): comparing the "
                            "destination by HEAD before completing instead (racy)",
                            self.store.endpoint, exc.code)
            return
        m.completed()

    async def _contested(self) -> None:
        decision = self.machine.contested_answer(await self.head())
        if decision is not None:
            await self.close(decision)

    async def _verify(self) -> None:
        m = self.machine
        decision = m.verify_answer(await self.head())
        if decision is not None:
            await self.close(decision)
        assert m.info is not None
        self.journal.finish(m.row, UploadState.COMPLETED, etag=m.info.etag)
