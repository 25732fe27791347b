"""What every multipart kind's driver shares (a file's, a stream's): the journal row's
CreateMultipartUpload, the completion under the destination's guard, the HEAD after a
412, the verification, and ``close``, which executes a machine's decision to end the
upload. The kinds add how a row is found or begun and how parts reach the server
(``multipart``: from the file, resumable; ``stream``: read once, never resumed).

An upload id is journalled the moment it exists; this process alone creates, completes
and aborts, and it aborts only when the machine says ``Close``."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, NoReturn

from ..errors import StoreError
from ..journal import UploadState
from .driver import Driver, Services
from .listing import confirm_aborted, sweep_lost_creates
from .machine import Close, Reaction, may_have_created
from .multipart_machine import MultipartMachine
from .parts import abort_upload

if TYPE_CHECKING:
    from ..journal import Journal

log = logging.getLogger("bigupload")
_NO_CONDITIONS: set[str] = set()  # endpoints that answered a conditional write with 501


class MultipartCore(Driver):
    """The steps CREATE, COMPLETE, CONTESTED and VERIFY, and ``close``."""

    machine: MultipartMachine

    def __init__(self, machine: MultipartMachine, services: Services) -> None:
        if services.journal is None:
            raise AssertionError(f"a multipart upload to {machine.where} needs a journal")
        super().__init__(machine, services)
        self.journal: Journal = services.journal

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
            await sweep_lost_creates(self.journal.get(m.row), m.options, store=self.store,
                                     scheduler=self.scheduler, journal=self.journal,
                                     keep=upload_id, adopt=False)
        m.created(upload_id)

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
        m = self.machine
        decision = m.contested_answer(await self.head())
        if decision is not None:
            await self.close(decision)
        upload_id = m.upload_id
        assert upload_id is not None
        uploads = await self.scheduler.retrying(
            f"ListMultipartUploads {m.where}",
            lambda n: self.store.list_uploads(m.bucket, m.key, m.options))
        listed = any(u.upload_id == upload_id and u.key == m.key for u in uploads)
        if m.contested_listed(listed):
            await abort_upload(self.store, self.scheduler, m.bucket, m.key, upload_id, m.options)
            if await confirm_aborted(self.store, self.scheduler, [(m.bucket, m.key, upload_id)],
                                     {m.bucket: m.key}, m.options):
                raise StoreError(
                    f"{m.where}: upload {upload_id} is still listed after being aborted; "
                    f"check with: bigupload ls-uploads {m.where}",
                    operation="AbortMultipartUpload", bucket=m.bucket, key=m.key,
                    upload_id=upload_id)

    async def _verify(self) -> None:
        m = self.machine
        decision = m.verify_answer(await self.head())
        if decision is not None:
            await self.close(decision)
        assert m.info is not None
        self.journal.finish(m.row, UploadState.COMPLETED, etag=m.info.etag, size=m.plan.size)
