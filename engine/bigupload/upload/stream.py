"""The driver of the stream kind (``StreamMachine``): a source read once into part
buffers and sent from them.

- LOOK and READ: HEAD the destination, then read the first part and one byte past it;
- PUT: a stream that ended inside its first part goes in one PutObject from its buffer;
- CREATE: a journal row (``STREAM_SOURCE``: only so that an upload a killed run left
  can be found and aborted), then CreateMultipartUpload (``MultipartCore``);
- SEND: one task reads parts in order into buffers from ``PartBuffers`` (checksumming
  each chunk as it arrives) and hands them to ``concurrency`` tasks that send each part
  from its buffer, with retries; a buffer goes back to be filled again only once its
  part's request has returned;
- COMPLETE, CONTESTED, VERIFY: ``MultipartCore``'s.

Memory: the buffers' bytes are reserved in the scheduler's byte budget before they are
allocated, so the stream holds at most the memory limit (by default ``concurrency`` times
the current part size, growing with it). Whatever stops the upload ends it: aborted,
confirmed gone, its journal row closed (``_stop``)."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import logging
import mimetypes
import mmap
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Union

import anyio
import anyio.abc

from .. import checksum as ck
from ..client import ObjectStore
from ..config import ChecksumAlgorithm, UploadConfig
from ..errors import BigUploadError, IntegrityError, StoreError
from ..journal import Journal, UploadRecord, UploadState
from ..plan import plan_stream
from ..scheduler import ByteBudget, Scheduler, task_group
from ..stream import BufferBody, StreamSource
from ..values import (
    STREAM_SOURCE,
    Fingerprint,
    ObjectOptions,
    Part,
    PartReceipt,
    PartRecord,
    StreamPlan,
    sse_c_key_hash,
)
from .driver import Services, put_object
from .listing import confirm_aborted, sweep_lost_creates
from .machine import Step
from .multipart_core import MultipartCore
from .parts import abort_upload
from .result import UploadResult
from .stream_machine import NOT_RESUMABLE, StreamMachine

log = logging.getLogger("bigupload")


@dataclasses.dataclass(frozen=True)
class StreamJob:
    """One stream as asked and planned."""

    source: StreamSource
    bucket: str
    key: str
    config: UploadConfig
    plan: StreamPlan
    options: ObjectOptions
    started: float = 0.0  # time.monotonic() when the upload began

    def elapsed(self) -> float:
        return time.monotonic() - self.started


def plan_stream_job(source: StreamSource, bucket: str, key: str, config: UploadConfig,
                    expected_size: int | None = None) -> StreamJob:
    """Plan the stream's parts and make every local check before anything is read,
    journalled or sent."""
    started = time.monotonic()
    the_plan = plan_stream(config, expected_size)
    content_type = config.content_type or mimetypes.guess_type(source.name)[0]
    options = ObjectOptions.from_config(config, content_type or "application/octet-stream")
    return StreamJob(source, bucket, key, config, the_plan, options, started)


PartBuffer = Union[bytearray, mmap.mmap]
_NORESERVE = getattr(mmap, "MAP_NORESERVE", 0)


@dataclasses.dataclass(frozen=True)
class Filled:
    """A part read into its buffer: ``part.length`` bytes, with their raw checksum (and
    their Content-MD5 with --content-md5)."""

    part: Part
    buffer: PartBuffer
    raw: bytes
    md5: str | None = None

    def body(self) -> BufferBody:
        return BufferBody(memoryview(self.buffer)[:self.part.length])


def new_buffer(size: int) -> PartBuffer:
    """A part's buffer whose memory follows the bytes written into it: an anonymous
    mapping, whose pages the kernel provides (zeroed) only when first written, so a part
    planned far larger than what arrives (an overestimated ``--expected-size``) costs only
    what was read. A zero-filled bytearray would touch every page of it at once."""
    if size < mmap.PAGESIZE:
        return bytearray(size)
    try:
        return mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _NORESERVE)
    except (OSError, AttributeError):  # no anonymous mappings here
        return bytearray(size)


class PartBuffers:
    """Part-sized buffers, reused from part to part. A buffer's bytes are reserved in the
    scheduler's byte budget from ``take`` (before it is filled) to ``give`` (once its part
    is acknowledged, or abandoned), so the buffers being filled or sent stay within the
    memory limit; a given-back buffer is kept to be filled again, never allocated anew.
    A new buffer's memory follows the bytes read into it (``new_buffer``), never the part
    size an overestimated ``--expected-size`` planned. When the part size grows, the
    smaller buffers are dropped as they come back."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self.size = 0  # the part size: every kept buffer has it
        self._budget: ByteBudget | None = None
        self._free: list[PartBuffer] = []
        self._held = 0  # bytes reserved for the buffers out

    async def take(self, size: int) -> PartBuffer:
        budget = self._budget = self.scheduler.budget_for(size)  # the default limit grows
        if size > self.size:
            self.size, self._free = size, []
        await budget.acquire(size)
        self._held += size
        if size < self.size:  # a probe past the last part: a few bytes
            return bytearray(size)
        return self._free.pop() if self._free else new_buffer(size)

    def give(self, buffer: PartBuffer) -> None:
        if self._budget is None or not self._held:
            return  # closed
        self._held -= len(buffer)
        self._budget.release(len(buffer))
        if len(buffer) == self.size:
            self._free.append(buffer)

    def close(self) -> None:
        """Release what is still reserved (buffers never given back: a stopped upload's)."""
        if self._budget is not None and self._held:
            self._budget.release(self._held)
        self._held = 0
        self._free = []
        self._budget = None


class StreamDriver(MultipartCore):
    machine: StreamMachine

    def __init__(self, job: StreamJob, services: Services) -> None:
        machine = StreamMachine(job.bucket, job.key, job.config, job.plan, job.options)
        super().__init__(machine, services)
        self.job = job
        self.source = job.source
        self.buffers = PartBuffers(self.scheduler)
        self.first: Filled | None = None  # the first part, read before the kind is chosen
        if services.executor is not None:
            log.info("%s: a stream is sent from this process, not by the cluster",
                     machine.where)

    def steps(self) -> Mapping[Step, Callable[[], Awaitable[None]]]:
        return {Step.LOOK: self._look, Step.READ: self._read_first, Step.PUT: self._put,
                Step.CREATE: self._begin_and_create, Step.SEND: self._send,
                Step.COMPLETE: self._complete, Step.CONTESTED: self._contested,
                Step.VERIFY: self._verify}

    async def upload(self) -> UploadResult:
        m = self.machine
        with self.journal.claim(self.store.endpoint, m.bucket, m.key):
            try:
                await self._end_left_over()
                await self.run()
            except BaseException as exc:
                with anyio.CancelScope(shield=True):
                    await self._stop(exc)
                raise
            finally:
                self.source.close()
                self.buffers.close()
        return m.result(self.job.elapsed())

    async def _end_left_over(self) -> None:
        """A stream to this destination whose run was killed left its row, and maybe an
        upload: nothing can resume it, so it is aborted now."""
        m = self.machine
        record = self.journal.find_active(STREAM_SOURCE, self.store.endpoint, m.bucket, m.key)
        if record is not None:
            await end_stream_row(record, self.store, self.scheduler, self.journal, m.options)

    async def _stop(self, error: BaseException) -> None:
        """The upload stopped (``error``): end it as the machine decides, and say in the
        error that a stream cannot be resumed. Never raises: ``error`` is what is reported."""
        m = self.machine
        interrupted = isinstance(error, (anyio.get_cancelled_exc_class(), KeyboardInterrupt))
        decision = m.stopped(error, interrupted=interrupted)
        if decision is None:
            return
        note = NOT_RESUMABLE
        left = False  # an upload left on the server, which the user must abort
        try:
            if decision.abort and m.upload_id is not None:
                await abort_upload(self.store, self.scheduler, m.bucket, m.key, m.upload_id,
                                   m.options)
                if await confirm_aborted(self.store, self.scheduler,
                                         [(m.bucket, m.key, m.upload_id)], {m.bucket: m.key},
                                         m.options):
                    raise StoreError(f"upload {m.upload_id} is still listed after being aborted")
                note += ": the upload was aborted"
            elif m.upload_id is None:  # a Create whose answer was lost may have made one
                await sweep_lost_creates(self.journal.get(m.row), m.options, store=self.store,
                                         scheduler=self.scheduler, journal=self.journal,
                                         keep=None, adopt=False)
        except (BigUploadError, OSError) as exc:
            left = True
            note += (f"; its upload {m.upload_id} could not be aborted ({exc}): "
                     f"bigupload abort {m.where} --upload-id {m.upload_id}")
        self.journal.finish(m.row, UploadState(decision.outcome.value), error=decision.reason)
        if isinstance(error, BigUploadError) and error.args:
            error.args = (f"{error.args[0]}; {note}", *error.args[1:])
        else:  # interrupted: the caller's one line says the stream was aborted, unless
            # its upload could not be
            log.log(logging.DEBUG if interrupted and not left else logging.WARNING, "%s: %s",
                    m.where, note)

    async def _look(self) -> None:
        self.machine.looked_at(await self.head())

    async def _read(self, part: Part) -> Filled | None:
        """Read ``part`` into a buffer (None when the stream had ended before it)."""
        m = self.machine
        buffer = await self.buffers.take(part.length)
        hasher = ck.Hasher(m.algorithm)
        md5 = hashlib.md5() if m.options.content_md5 else None
        consume: Callable[[memoryview], object] = \
            hasher.update if m.algorithm is not ChecksumAlgorithm.NONE else _ignore
        if md5 is not None:  # the MD5 in the same pass as the checksum
            consume = _both(consume, md5.update)
        length = await self.source.fill(memoryview(buffer)[:part.length], consume)
        if not length and part.number > 1:
            self.buffers.give(buffer)
            return None
        return Filled(Part(part.number, part.offset, length), buffer, hasher.digest(),
                      None if md5 is None else base64.b64encode(md5.digest()).decode())

    async def _read_first(self) -> None:
        m = self.machine
        part = m.next_part()
        first = await self._read(part)
        assert first is not None
        self.first = first
        more = first.part.length == part.length and await self.source.more()
        m.opened(first.part.length, first.raw, more)

    async def _put(self) -> None:
        m, first = self.machine, self.first
        assert first is not None

        async def attempt(n: int) -> PartReceipt:
            return await put_object(self.store, m, first.body(), first.md5)

        self.progress.start(m.where, first.part.length, 0)
        try:
            receipt = await self.scheduler.retrying(f"PutObject {m.where}", attempt)
            self.progress.advance(first.part.length)
        finally:
            self.progress.close()
        self.buffers.give(first.buffer)
        self.first = None
        m.answered(receipt.server_side)
        m.put_sent(receipt)

    async def _begin_and_create(self) -> None:
        """The journal row first (once: a refused FULL_OBJECT creates again), then Create."""
        m, job = self.machine, self.job
        if m.row == 0:
            row = self.journal.start_upload(
                Fingerprint.of_stream(), self.store.endpoint, m.bucket, m.key, job.plan.start,
                0, m.algorithm.value, sse_c_key_hash(job.config.sse_c_key),
                checksum_type=m.checksum_type or "COMPOSITE", guard=m.guard)
            m.started(row, time.time())
        await self._create()

    async def _send(self) -> None:
        """Read the stream to its end, sending each part as soon as it is read."""
        m = self.machine
        send, receive = anyio.create_memory_object_stream[Filled](0)
        self.progress.start(m.where, None, 0)
        try:
            async with task_group() as tg:
                tg.start_soon(self._read_parts, send)
                for _ in range(self.job.config.concurrency):
                    tg.start_soon(self._send_parts, receive.clone())
                receive.close()
        finally:
            self.progress.close()
        m.stream_sent()

    async def _read_parts(self, send: anyio.abc.ObjectSendStream[Filled]) -> None:
        m = self.machine
        async with send:
            if self.first is not None:
                await send.send(self.first)
                self.first = None
            while not m.ended:
                part = m.next_part()
                filled = await self._read(part)
                m.part_read(part, 0 if filled is None else filled.part.length)
                if filled is not None:
                    await send.send(filled)

    async def _send_parts(self, receive: anyio.abc.ObjectReceiveStream[Filled]) -> None:
        m = self.machine
        async with receive:
            async for filled in receive:
                try:
                    record = await self._send_part(filled)
                finally:
                    self.buffers.give(filled.buffer)
                m.part_sent(record)
                self.progress.advance(record.size)

    async def _send_part(self, filled: Filled) -> PartRecord:
        """UploadPart from the buffer, retried. The buffer holds the bytes until the part
        is acknowledged, so every retry sends them again without reading the stream."""
        m, part = self.machine, filled.part
        upload_id = m.upload_id
        assert upload_id is not None
        expected = ck.encode(filled.raw)
        header = expected if m.algorithm is not ChecksumAlgorithm.NONE else None

        async def attempt(n: int) -> PartRecord:
            receipt = await self.store.upload_part(m.bucket, m.key, upload_id, part.number,
                                                   filled.body(), header, m.options,
                                                   content_md5=filled.md5)
            if receipt.checksum is not None and expected and receipt.checksum != expected:
                raise IntegrityError(
                    f"UploadPart {m.where} part {part.number}: server checksum "
                    f"{receipt.checksum} != ours {expected}", operation="UploadPart",
                    bucket=m.bucket, key=m.key, upload_id=upload_id, part_number=part.number,
                    retryable=True)
            m.answered(receipt.server_side)
            return PartRecord(part.number, part.length, receipt.etag, expected)

        return await self.scheduler.retrying(f"UploadPart {m.where} part {part.number}", attempt)


def _ignore(chunk: memoryview) -> None:
    pass


def _both(first: Callable[[memoryview], object],
          second: Callable[[memoryview], object]) -> Callable[[memoryview], None]:
    def consume(chunk: memoryview) -> None:
        first(chunk)
        second(chunk)

    return consume


async def end_stream_row(record: UploadRecord, store: ObjectStore, scheduler: Scheduler,
                         journal: Journal, options: ObjectOptions) -> None:
    """End a stream's row that a killed run left active: abort its upload (or the one a
    lost Create answer may have made) and close the row. A stream cannot be resumed."""
    where = f"s3://{record.bucket}/{record.key}"
    if record.upload_id:
        await abort_upload(store, scheduler, record.bucket, record.key, record.upload_id,
                           options)
        log.warning("%s: aborted upload %s, left by a stream whose run was killed (%s)",
                    where, record.upload_id, NOT_RESUMABLE)
    else:  # killed during CreateMultipartUpload: the upload it may have made
        await sweep_lost_creates(record, options, store=store, scheduler=scheduler,
                                 journal=journal, keep=None, adopt=False)
    journal.finish(record.id, UploadState.ABORTED,
                   error=f"left by a run that was killed; {NOT_RESUMABLE}")
