"""The drivers of the server-side copy kinds (``copy_machine``), the job they run
(``CopyJob``: the source as its HEAD described it, the plan, the destination's options),
and ``Copy``, which plans a copy and picks its kind (``COPY_DRIVERS``).

A copy runs on the same endpoint and credentials as everything else, through the same
scheduler (its requests hold connection slots and are retried as uploads' are), and
sends no byte of the object: CopyObject and UploadPartCopy bodies are empty. The
multipart copy shares the resumable multipart kinds' steps (``JournalledMultipartDriver``:
journal row, destination lock, sweep, listing, completion under the destination's guard)
with the parts copied instead of read: only what touches the source is its own, below."""

from __future__ import annotations

import collections
import dataclasses
import logging
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

from ..client import CopyStore, ObjectStore
from ..config import ChecksumAlgorithm, UploadConfig
from ..errors import ClusterError, ConfigError, SourceError, StoreError
from ..progress import NullProgress, Progress
from ..scheduler import Scheduler, task_group
from ..values import CopySourceInfo, ObjectOptions, Part, PartRecord, Plan, RemotePart
from .copy_machine import (
    CopyObjectMachine,
    MultipartCopyMachine,
    choose_copy_kind,
    copy_algorithm,
    copy_options,
    plan_copy,
)
from .driver import Driver, Services
from .listing import PartsListing
from .machine import Kind, Step
from .multipart import JournalledMultipartDriver
from .result import UploadResult

if TYPE_CHECKING:
    from ..journal import Journal, UploadRecord

log = logging.getLogger("bigupload")


@dataclasses.dataclass(frozen=True)
class CopyJob:
    """One copy as asked and planned. ``config`` carries the copy's checksum algorithm
    (``copy_algorithm``); ``replace_metadata`` whether the destination's content type and
    metadata are ``options``' rather than the source's."""

    origin: CopySourceInfo
    bucket: str
    key: str
    config: UploadConfig
    plan: Plan
    options: ObjectOptions
    replace_metadata: bool
    restart: bool = False
    from_journal: bool = False
    started: float = 0.0

    @property
    def where(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def elapsed(self) -> float:
        return time.monotonic() - self.started


async def describe_source(store: CopyStore, scheduler: Scheduler, bucket: str, key: str,
                          version_id: str | None, options: ObjectOptions,
                          ) -> CopySourceInfo | None:
    """HEAD the copy's source, retried; a redirect means the server cannot reach it."""
    try:
        return await scheduler.retrying(
            f"HeadObject s3://{bucket}/{key}",
            lambda n: store.describe(bucket, key, version_id, options))
    except StoreError as exc:
        if not exc.redirect:
            raise
        raise StoreError(
            f"s3://{bucket}/{key}: {store.endpoint} redirects requests for this bucket "
            f"({exc.code}): it is in another region or behind another endpoint, and a "
            "server-side copy needs both buckets on one endpoint (download and upload "
            "instead)", operation="HeadObject", bucket=bucket, key=key, code=exc.code,
            retryable=False) from exc


async def plan_copy_job(store: CopyStore, scheduler: Scheduler, source_bucket: str,
                        source_key: str, bucket: str, key: str, config: UploadConfig, *,
                        version_id: str | None = None, follow_source_checksum: bool = True,
                        restart: bool = False, from_journal: bool = False) -> CopyJob:
    """HEAD the source and plan the copy; every check before anything is journalled or
    written, so a refused copy leaves no trace."""
    started = time.monotonic()
    if config.sse_c_key is not None:
        raise ConfigError("server-side copies do not take --sse-c-key-file (an SSE-C source "
                          "or destination is not supported)")
    if (source_bucket, source_key) == (bucket, key):
        raise ConfigError(f"s3://{bucket}/{key} is both the source and the destination")
    probe = ObjectOptions.from_config(config, None)
    origin = await describe_source(store, scheduler, source_bucket, source_key, version_id,
                                   probe)
    if origin is None:
        version = f" (version {version_id})" if version_id else ""
        raise SourceError(f"s3://{source_bucket}/{source_key}{version}: no such object")
    settings = copy_algorithm(config, origin, follow_source=follow_source_checksum)
    options, replace = copy_options(settings, origin)
    return CopyJob(origin, bucket, key, settings, plan_copy(origin.source.size, settings),
                   options, replace, restart=restart, from_journal=from_journal,
                   started=started)


class CopyObjectDriver(Driver):
    """Runs a ``CopyObjectMachine``: one CopyObject, then a HEAD to verify."""

    machine: CopyObjectMachine

    def __init__(self, job: CopyJob, services: Services, store: CopyStore) -> None:
        machine = CopyObjectMachine(job.bucket, job.key, job.config, job.plan, job.options,
                                    job.origin, replace_metadata=job.replace_metadata)
        super().__init__(machine, services)
        self.machine = machine
        self.copy_job = job
        self.copier = store  # services.store, as the store that can copy

    def steps(self) -> Mapping[Step, Callable[[], Awaitable[None]]]:
        return {Step.LOOK: self._look, Step.COPY: self._copy, Step.CONTESTED: self._contested,
                Step.VERIFY: self._verify}

    async def upload(self) -> UploadResult:
        await self.run()
        return self.machine.result(self.copy_job.elapsed())

    async def _look(self) -> None:
        self.machine.looked_at(await self.head())

    async def _copy(self) -> None:
        m = self.machine

        async def attempt(n: int) -> None:
            m.copied(await self.copier.copy_object(m.bucket, m.key, m.source, m.options,
                                                   replace_metadata=m.replace_metadata,
                                                   condition=m.condition))

        self.progress.start(m.where, m.plan.size, 0)
        try:
            await self.scheduler.retrying(f"CopyObject {m.where}", attempt)
            self.progress.advance(m.plan.size)
        except StoreError as exc:
            if not m.copy_failed(exc):
                raise
        finally:
            self.progress.close()

    async def _contested(self) -> None:
        m = self.machine
        now = await describe_source(self.copier, self.scheduler, m.source.bucket, m.source.key,
                                    m.source.version_id, m.options)
        raise m.contested_answer(now)

    async def _verify(self) -> None:
        self.machine.checked(await self.head())


class CopyPartsListing(PartsListing):
    """ListParts of a multipart copy: a listed part the journal does not confirm cannot be
    checked against local bytes, so the machine keeps it only if listed with a checksum."""

    def __init__(self, machine: MultipartCopyMachine, *, store: ObjectStore,
                 scheduler: Scheduler, journal: Journal) -> None:
        super().__init__(machine, store=store, scheduler=scheduler, journal=journal)
        self.copy_machine = machine

    async def verify_listed_part(self, part: Part,
                                 candidates: list[RemotePart]) -> PartRecord | None:
        record = self.copy_machine.listed_candidate(
            part.number, part.length, [(c.etag, c.checksum) for c in candidates])
        if record is None:
            log.info("part %d: listed, not journalled, no checksum to keep it by: copying "
                     "it again", part.number)
        return record


class MultipartCopyDriver(JournalledMultipartDriver):
    """Runs a ``MultipartCopyMachine``: the resumable multipart steps, with the journal row
    keyed by the source's URL and carrying its identity, and parts copied by the server."""

    RESENT = ("copied", "copying")

    machine: MultipartCopyMachine

    def __init__(self, job: CopyJob, services: Services, store: CopyStore) -> None:
        machine = MultipartCopyMachine(job.bucket, job.key, job.config, job.plan, job.options,
                                       job.origin, restart=job.restart,
                                       from_journal=job.from_journal)
        super().__init__(machine, services)
        self.machine = machine
        self.copy_job = job
        self.copier = store  # services.store, as the store that can copy
        self.listing = CopyPartsListing(machine, store=store, scheduler=self.scheduler,
                                        journal=self.journal)

    def elapsed(self) -> float:
        return self.copy_job.elapsed()

    async def _begin(self) -> None:
        """Find this copy's journal row (by the source's URL and the destination) and take
        it up, or begin a new one recording the source's identity."""
        m, job, endpoint = self.machine, self.copy_job, self.store.endpoint
        source = job.origin.source
        record = self.journal.find_active(source.url, endpoint, m.bucket, m.key)
        if record is not None and (reason := m.abandon_reason(record)):
            await self._abandon(record, reason)
            record = None
        if record is not None:
            decision = m.resume_copy(record)
            if decision is not None:
                await self.close(decision)
            return
        m.no_row(source.url)
        guard = m.begin(await self.head())
        if job.origin.tag_count and m.options.tagging is None:
            m.options = dataclasses.replace(m.options, tagging=await self._tags())
        row = self.journal.start_upload(
            source.fingerprint(), endpoint, m.bucket, m.key, job.plan.part_size,
            job.plan.part_count, m.algorithm.value, None,
            checksum_type=m.checksum_type or "COMPOSITE", guard=guard, copy_source=source)
        m.started(row, time.time())

    async def _tags(self) -> str | None:
        """The source's tags, URL-encoded for CreateMultipartUpload; None (said) when they
        cannot be read: the copy goes on without them."""
        m = self.machine
        try:
            tags = await self.scheduler.retrying(
                f"GetObjectTagging {m.source.url}", lambda n: self.copier.tags(m.source, m.options))
        except StoreError as exc:
            if exc.retryable:
                raise
            m.say(f"the tags of {m.source.url} were not copied: {exc}")
            return None
        return urllib.parse.urlencode(tags) or None

    async def _send(self) -> None:
        """Copy what is missing, then check the listing (copying again what differs)
        until the machine is satisfied; then the source must still be the one planned."""
        m = self.machine
        self.progress.start(m.where, m.plan.size, m.done_bytes())
        try:
            await self._send_until_listed()
        except (StoreError, ClusterError) as exc:
            decision = m.copy_failed(exc)
            if decision is None:
                raise
            await self.close(decision)
        finally:
            self.progress.close()
        now = await describe_source(self.copier, self.scheduler, m.source.bucket, m.source.key,
                                    m.source.version_id, m.options)
        decision = m.source_confirmed(now)
        if decision is not None:
            await self.close(decision)

    async def _send_parts(self, numbers: list[int]) -> None:
        """Copy these parts, at most ``concurrency`` at once (each request also holds a
        connection slot); each is journalled as it is answered."""
        m = self.machine
        upload_id = m.upload_id
        assert upload_id is not None
        pending = collections.deque(numbers)

        async def copy(number: int) -> PartRecord:
            first, last = m.part_range(number)
            receipt = await self.scheduler.retrying(
                f"UploadPartCopy {m.where} part {number}",
                lambda n: self.copier.upload_part_copy(m.bucket, m.key, upload_id, number,
                                                       m.source, first, last, m.options))
            return m.part_copied(number, receipt)

        async def worker() -> None:
            while pending:
                self._part_sent(await copy(pending.popleft()))

        async with task_group() as tg:
            for _ in range(min(self.scheduler.config.concurrency, len(numbers))):
                tg.start_soon(worker)


COPY_DRIVERS: dict[Kind, Callable[[CopyJob, Services, CopyStore], Driver]] = {
    Kind.COPY: CopyObjectDriver, Kind.MULTIPART_COPY: MultipartCopyDriver,
}


class Copy:
    """Copies one object to one key on the same endpoint, server-side: plans it (a HEAD of
    the source), picks the kind (``choose_copy_kind``) and runs its driver. A journalled
    multipart copy of the same source to the same key is resumed; ``from_journal``
    (``bigupload resume``) resumes only, and copies the journalled version if the source
    has versions. ``follow_source_checksum``: use the source's CRC algorithm when it
    reports a whole-object CRC, so the copy is verified against it."""

    def __init__(self, source_bucket: str, source_key: str, bucket: str, key: str, *,
                 config: UploadConfig, store: ObjectStore, journal: Journal | None,
                 scheduler: Scheduler, progress: Progress | None = None,
                 version_id: str | None = None, follow_source_checksum: bool = True,
                 restart: bool = False, from_journal: bool = False) -> None:
        self.source_bucket = source_bucket
        self.source_key = source_key
        self.bucket = bucket
        self.key = key
        self.config = config
        self.version_id = version_id
        self.follow_source_checksum = follow_source_checksum
        self.restart = restart
        self.from_journal = from_journal
        self.services = Services(store, scheduler, journal, progress or NullProgress())

    async def run(self) -> UploadResult:
        store, journal = self.services.store, self.services.journal
        if not isinstance(store, CopyStore):
            raise ConfigError(f"{store.endpoint}: this store cannot copy server-side")
        record = journal.find_active(f"s3://{self.source_bucket}/{self.source_key}",
                                     store.endpoint, self.bucket, self.key) \
            if journal is not None else None
        version_id = self.version_id
        if self.from_journal and record is not None and record.copy_source is not None:
            version_id = record.copy_source.version_id  # finish what began, that version
        resumed = None if self.restart else record  # --restart: decided afresh
        job = await plan_copy_job(store, self.services.scheduler, self.source_bucket,
                                  self.source_key, self.bucket, self.key,
                                  self._settings(resumed), version_id=version_id,
                                  follow_source_checksum=self.follow_source_checksum
                                  and resumed is None, restart=self.restart,
                                  from_journal=self.from_journal)
        kind = choose_copy_kind(job.plan, journalled=record is not None)
        return await COPY_DRIVERS[kind](job, self.services, store).upload()

    def _settings(self, record: UploadRecord | None) -> UploadConfig:
        """A journalled copy resumes with the algorithm it began with (the machine says so
        when it differs from one the caller chose; one it followed from the source was
        never chosen, and is taken from the journal without a word)."""
        if record is None or not self.follow_source_checksum:
            return self.config
        return dataclasses.replace(self.config, checksum=ChecksumAlgorithm(
            record.checksum_algorithm), checksum_type=None)
