"""Running a batch job: ``JobRunner`` takes a job's unfinished files from the journal and
sends each through the same ``Transfer`` as a single file (multipart above the threshold,
one PutObject below), with the uploader's store, journal and scheduler, so every request
shares the scheduler's connection and memory bounds. A prefix copy's objects (``copies``)
go through the same ``Copy`` as a single object's server-side copy instead.

Small and large files run side by side: ``LARGE_FILES_AT_ONCE`` large files (each already
parallel over its parts) and many small ones. With a cluster executor (``--dask``) small
files go to the workers in shards of up to ``SHARD_FILES`` files or ``SHARD_BYTES``, and
large files' parts as part ranges; this process still journals every outcome.

What becomes of each file is journalled as it happens, in groups (``MARK_EVERY_S``,
``MARK_BATCH``); ``policy`` decides whether a failure is the file's or stops the job. A
job stopped by a cluster that cannot run it aborts the multipart uploads of its files;
any other stop leaves the job resumable."""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import mimetypes
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from ..client import CopyStore, ObjectInfo, ObjectOptions, ObjectStore
from ..config import UploadConfig
from ..errors import (
    BigUploadError,
    ClusterError,
    ConfigError,
    ExistsError,
    SourceError,
)
from ..journal import (
    FileState,
    JobFile,
    JobRecord,
    JobState,
    JobTotals,
    Journal,
    UploadState,
)
from ..plan import plan
from ..remote import Executor, FileTask
from ..scheduler import Scheduler, task_group
from ..source import SourceFile, check_regular_file, read_small
from ..transfer import Copy, Transfer, UploadResult
from ..upload.copy import describe_source
from ..upload.copy_machine import plan_copy
from ..upload.driver import Services
from ..upload.listing import confirm_aborted
from ..upload.parts import abort_upload
from ..upload.small import INLINE_BYTES, SmallPut
from ..values import Plan
from .copies import PREFIX, copied_already, split_source
from .existing import EXISTS, SAME, ExistingObjects
from .policy import FailurePolicy, is_fatal
from .results import BatchProgress, BatchResult, ItemResult, NullBatchProgress
from .sources import BatchItem, check_key

log = logging.getLogger("bigupload")

LARGE_FILES_AT_ONCE = 2  # each is already parallel over its parts
PAGE = 1000  # job files read from the journal at a time
LOOKAHEAD = 4 * PAGE  # files of one kind read ahead while looking for the other kind
WAIT_S = 0.05  # how often a small-file worker looks again while large files fill the lookahead
FAILURES_KEPT = 100  # failures a run's result lists; the journal has them all
SHARD_FILES = 64  # small files per cluster task: amortises the task's round trip (~ms)
SHARD_BYTES = 256 * 1024 * 1024
# What became of each file is committed in groups: one commit per small file cost 0.3 ms
# on the event loop (measured). A crash forgets at most this much, and those files (small:
# large ones journal their parts as they go) are sent again on resume, which is harmless.
MARK_EVERY_S = 0.25
MARK_BATCH = 256


class FileQueue:
    """A job's files to run, read from the journal a page at a time (by position), split
    into small (one PutObject) and large (multipart) queues. At most ``LOOKAHEAD`` files
    wait in either queue, so what is held does not grow with the job: a small-file worker
    whose queue is empty while large files fill theirs waits for the large-file workers;
    a large-file worker with no large file waiting takes a small one."""

    def __init__(self, journal: Journal, job_id: int, states: tuple[FileState, ...],
                 config: UploadConfig, planner: Callable[[int, UploadConfig], Plan] = plan,
                 ) -> None:
        self._journal = journal
        self._job_id = job_id
        self._states = states
        self._config = config
        self._plan = planner  # plan_copy for a prefix copy: one CopyObject up to 5 GiB
        self._after = -1
        self._done = False
        self.queues: dict[bool, collections.deque[JobFile]] = {True: collections.deque(),
                                                               False: collections.deque()}

    def is_large(self, f: JobFile) -> bool:
        try:
            return self._plan(f.size, self._config).multipart
        except ConfigError:
            return False  # too big for S3: the transfer says so, as that file's failure

    def reopen(self) -> None:
        """Files were added after the last page: read on from where the queue stopped."""
        self._done = False

    def _fill(self, large: bool) -> None:
        """Read pages until ``large``'s queue has a file, the job has none left, or the
        other queue holds ``LOOKAHEAD`` files."""
        queue, other = self.queues[large], self.queues[not large]
        while not queue and not self._done and len(other) < LOOKAHEAD:
            page = self._journal.job_files(self._job_id, self._states, after=self._after,
                                           limit=PAGE)
            if not page:
                self._done = True
                break
            self._after = page[-1].seq
            for f in page:
                self.queues[self.is_large(f)].append(f)

    async def next(self, large: bool) -> JobFile | None:
        """The next file for a worker of that kind (a large-file worker may get a small
        one), or None when the job has none left to hand out."""
        while True:
            self._fill(large)
            if self.queues[large]:
                return self.queues[large].popleft()
            if large and self.queues[False]:
                return self.queues[False].popleft()
            if self._done:
                return None
            await anyio.sleep(WAIT_S)  # large files fill the lookahead: wait for their workers

    async def shard(self) -> list[JobFile]:
        """The next small files for one cluster task: up to ``SHARD_FILES`` files or
        ``SHARD_BYTES`` (at least one file, if any is left)."""
        shard: list[JobFile] = []
        size = 0
        while len(shard) < SHARD_FILES and size < SHARD_BYTES:
            f = await self.next(False)
            if f is None:
                break
            shard.append(f)
            size += f.size
        return shard


class JobRunner:
    """Runs one job's unfinished files with an open store, journal and scheduler."""

    def __init__(self, *, job: JobRecord, spec: dict[str, Any], config: UploadConfig,
                 store: ObjectStore, journal: Journal, scheduler: Scheduler,
                 progress: BatchProgress | None, fail_fast: bool,
                 executor: Executor | None = None, executor_slots: int = 1) -> None:
        self.job = job
        self.executor = executor
        self.executor_slots = executor_slots
        self.spec = spec
        self.config = config
        self.store = store
        self.journal = journal
        self.scheduler = scheduler
        self.progress = progress or NullBatchProgress()
        self.policy = FailurePolicy(fail_fast=fail_fast)
        # what this run settled: counts, and the first failures (the journal has every file)
        self.settled: collections.Counter[FileState] = collections.Counter()
        self.failures: list[ItemResult] = []
        self.sent_bytes = 0
        self._existing: ExistingObjects | None = None
        self.copies = spec["kind"] == PREFIX  # objects copied server-side, not files
        self._marks: list[JobFile] = []
        self._marked_at = time.monotonic()
        self._options_by_type: dict[str, ObjectOptions] = {}
        # (path, bucket, key) of every multipart upload the journal holds unfinished at
        # this endpoint as the job starts: such a file is resumed through ``Transfer``
        # even when small (only large files start new ones while the job runs)
        self._active: set[tuple[str, str, str]] = set()

    async def run(self, *, retry_failed: bool,
                  more: Callable[[], Awaitable[int]] | None = None) -> BatchResult:
        """Run the job's files in ``states`` (failed ones too with ``retry_failed``).
        ``more`` adds files found since the job began (the same walk again) and says how
        many: it runs once the journalled files are sent, so that a resumed job starts
        sending at once, and the files it adds are sent then."""
        started = time.monotonic()
        states = (FileState.PENDING, FileState.FAILED) if retry_failed else (FileState.PENDING,)
        totals = self.journal.job_totals(self.job.id)
        if self.spec.get("skip_existing") or self.config.no_overwrite:
            self._existing = ExistingObjects(self.store, self.scheduler, self._common_prefixes(),
                                             totals.files,
                                             skip_existing=bool(self.spec.get("skip_existing")))
        files = FileQueue(self.journal, self.job.id, states, self.config,
                          plan_copy if self.copies else plan)
        self._active = {(u.fingerprint.path, u.bucket, u.key)
                        for u in self.journal.uploads(UploadState.ACTIVE)
                        if u.endpoint == self.store.endpoint}
        self.progress.start_job(self.job.id, totals.files, totals.bytes, totals.done_files,
                                totals.done_bytes)
        try:
            with self.journal.claim_job(self.job.id):
                await self._run_workers(files)
                if more is not None and await more():
                    totals = self.journal.job_totals(self.job.id)
                    self.progress.start_job(self.job.id, totals.files, totals.bytes,
                                            totals.done_files, totals.done_bytes)
                    files.reopen()
                    await self._run_workers(files)
                totals = self.journal.job_totals(self.job.id)
                state = JobState.PARTIAL if totals.failed_files else JobState.COMPLETED
                self.journal.set_job_state(self.job.id, state)
        finally:
            self.progress.close()
        return self._result(state, totals, started)

    async def _run_workers(self, files: FileQueue) -> None:
        """Every file through the workers; what became of them is journalled whatever
        happens. A cluster that cannot finish the job aborts the job's uploads first."""
        try:
            async with task_group() as tg:
                for _ in range(LARGE_FILES_AT_ONCE):
                    tg.start_soon(self._worker, files, True)
                if self.executor is None or self.copies:
                    for _ in range(max(4, 2 * self.config.concurrency)):
                        tg.start_soon(self._worker, files, False)
                else:
                    for _ in range(self.executor_slots):
                        tg.start_soon(self._shard_worker, files)
        except ClusterError as exc:
            if exc.abort:
                await self._abort_uploads(str(exc))
            raise
        finally:
            self._flush_marks()

    def _result(self, state: JobState, totals: JobTotals, started: float) -> BatchResult:
        counts = collections.Counter(self.journal.job_state_counts(self.job.id))
        return BatchResult(
            job_id=self.job.id, state=state, files=totals.files,
            uploaded=counts[FileState.DONE], skipped=counts[FileState.SKIPPED],
            failed=totals.failed_files, total_bytes=totals.bytes, sent_bytes=self.sent_bytes,
            elapsed_s=round(time.monotonic() - started, 3),
            uploaded_now=self.settled[FileState.DONE],
            skipped_now=self.settled[FileState.SKIPPED],
            failed_now=self.settled[FileState.FAILED], failures=tuple(self.failures),
        )

    def _report(self, result: ItemResult) -> None:
        """Count a settled file (nothing per file is kept but the first failures) and
        tell the progress."""
        self.settled[result.state] += 1
        if result.state is FileState.FAILED and len(self.failures) < FAILURES_KEPT:
            self.failures.append(result)
        self.progress.file_done(result)

    def _common_prefixes(self) -> dict[str, str]:
        """Per bucket, the longest prefix ending in ``/`` shared by all the job's keys."""
        prefixes = {}
        for bucket, keys in self.journal.job_key_range(self.job.id).items():
            common = os.path.commonprefix([keys.low, keys.high])
            prefixes[bucket] = common[: common.rfind("/") + 1]
        return prefixes

    # one file at a time, here

    async def _worker(self, files: FileQueue, large: bool) -> None:
        while (f := await files.next(large)) is not None:
            await self._run_file(f, large and files.is_large(f))

    def _usable(self, f: JobFile) -> UploadConfig:
        """The file's settings, or SourceError if the walk or manifest found it unusable or
        its key is not one S3 accepts."""
        if f.error and f.exit_code is None:
            raise SourceError(f.error)
        if problem := check_key(f.key):
            raise SourceError(f"{f.source}: {problem}")
        if not f.settings:
            return self.config
        return dataclasses.replace(self.config, **json.loads(f.settings))

    async def _run_file(self, f: JobFile, large: bool) -> None:
        """Send (or copy) one file and journal what became of it: uploaded, skipped, or
        failed (its own failure, or one that stops the job)."""
        work = self._copy_object if self.copies else self._upload_file
        try:
            result = await work(f, large)
        except ExistsError:  # --no-overwrite: someone wrote the key in the meantime
            self._skipped(f, EXISTS)
            return
        except BigUploadError as exc:
            self._failed(f, exc)
            return
        if result is not None:  # None: the work settled the file itself
            self._uploaded(f, result)

    async def _upload_file(self, f: JobFile, large: bool) -> UploadResult | None:
        item = BatchItem(f.source, f.bucket, f.key)
        config = self._usable(f)
        if not large and f.size <= INLINE_BYTES:
            path = os.path.abspath(f.source)
            if not (self._active and (path, f.bucket, f.key) in self._active):
                if await self._run_small(f, item, path, config):
                    return None
        with SourceFile(f.source) as source:
            if self._existing is not None and (
                    why := await self._existing.reason_to_skip(f.bucket, f.key, source, config)):
                self._skipped(f, why)
                return None
            transfer = Transfer(source, f.bucket, f.key, config=config, store=self.store,
                                journal=self.journal, scheduler=self.scheduler,
                                progress=self.progress.file_progress(item, source.size, large),
                                executor=self.executor)
            return await transfer.run()

    async def _run_small(self, f: JobFile, item: BatchItem, path: str,
                         config: UploadConfig) -> bool:
        """A small file read inline and sent in one request (``upload.small``); False when
        it is not small any more (it grew since the walk): the caller sends it."""
        if self._existing is not None:
            with SourceFile(path) as source:
                if why := await self._existing.reason_to_skip(f.bucket, f.key, source, config):
                    self._skipped(f, why)
                    return True
        read = read_small(path, INLINE_BYTES)
        if read is None:
            return False
        progress = self.progress.file_progress(item, read.fingerprint.size, False)
        services = Services(self.store, self.scheduler, self.journal, progress)
        put = SmallPut(read, f.bucket, f.key, config, self._options(config, path), services)
        self._uploaded(f, await put.upload())
        return True

    def _options(self, config: UploadConfig, path: str) -> ObjectOptions:
        """The file's object options (its content type guessed from its name unless set);
        the job's own settings' options are made once per content type."""
        content_type = (config.content_type or mimetypes.guess_type(path)[0]
                        or "application/octet-stream")
        if config is not self.config:
            return ObjectOptions.from_config(config, content_type)
        options = self._options_by_type.get(content_type)
        if options is None:
            options = self._options_by_type[content_type] = ObjectOptions.from_config(
                config, content_type)
        return options

    # objects of a prefix copy, server-side

    async def _copy_object(self, f: JobFile, large: bool) -> UploadResult | None:
        source_bucket, source_key = split_source(f.source)
        config = self._usable(f)
        if self._existing is not None and (why := await self._copy_skip(f, config)):
            self._skipped(f, why)
            return None
        progress = self.progress.file_progress(BatchItem(f.source, f.bucket, f.key),
                                               f.size, large)
        return await Copy(
            source_bucket, source_key, f.bucket, f.key, config=config, store=self.store,
            journal=self.journal, scheduler=self.scheduler, progress=progress,
            follow_source_checksum=bool(self.spec["origin"].get("follow_source_checksum")),
        ).run()

    async def _copy_skip(self, f: JobFile, config: UploadConfig) -> str | None:
        """Why the object need not be copied: ``SAME`` (--skip-existing: the object there
        is a copy of the source), ``EXISTS`` (--no-overwrite: an object is there), or None."""
        assert self._existing is not None
        options = ObjectOptions.from_config(config, None)
        remote = await self._existing.lookup(f.bucket, f.key, options)
        if remote is None:
            return None
        if self.spec.get("skip_existing"):
            source_bucket, source_key = split_source(f.source)
            origin = await describe_source(self.store, self.scheduler, source_bucket,
                                           source_key, None, options) \
                if isinstance(self.store, CopyStore) else None

            def head() -> Awaitable[ObjectInfo | None]:
                return self.scheduler.retrying(
                    f"HeadObject s3://{f.bucket}/{f.key}",
                    lambda n: self.store.head(f.bucket, f.key, options))

            if origin is not None and await copied_already(remote, origin, head):
                return SAME
        return EXISTS if config.no_overwrite else None

    # small files in shards, on the cluster

    async def _shard_worker(self, files: FileQueue) -> None:
        while shard := await files.shard():
            await self._run_shard(shard)

    async def _run_shard(self, shard: list[JobFile]) -> None:
        by_seq = {f.seq: f for f in shard}
        tasks: list[FileTask] = []
        for f in shard:
            if (task := await self._file_task(f)) is not None:
                tasks.append(task)
        if not tasks:
            return
        assert self.executor is not None
        outcomes, here = await self.executor.put_files(tasks)
        for outcome in outcomes:
            f = by_seq[outcome.seq]
            if isinstance(outcome.error, ExistsError):
                self._skipped(f, EXISTS)
            elif outcome.error is not None:
                self._failed(f, outcome.error)
            elif outcome.result is not None:
                self._uploaded(f, outcome.result)
        for task in here:
            log.info("no cluster worker can read %s: sending it from here", task.source)
            await self._run_file(by_seq[task.seq], False)

    async def _file_task(self, f: JobFile) -> FileTask | None:
        """The cluster task for a small file, or None when it is settled here (skipped,
        or failed before anything was sent)."""
        try:
            config = self._usable(f)
            if self._existing is not None:
                with SourceFile(f.source) as source:
                    if why := await self._existing.reason_to_skip(f.bucket, f.key, source,
                                                                  config):
                        self._skipped(f, why)
                        return None
            st = await self.scheduler.in_thread(check_regular_file, f.source)
        except BigUploadError as exc:
            self._failed(f, exc)
            return None
        return FileTask(f.seq, os.path.abspath(f.source), f.bucket, f.key, st.st_size,
                        st.st_mtime_ns, config)

    # what became of each file

    def _skipped(self, f: JobFile, why: str) -> None:
        """The file is not sent: the same object is there (--skip-existing), or an object
        is there and must not be replaced (--no-overwrite)."""
        self._settle(f.settled(FileState.SKIPPED, error=None if why == SAME else why))

    def _failed(self, f: JobFile, exc: BigUploadError) -> None:
        """Record a file's failure; raise when it must stop the job."""
        if is_fatal(exc):
            raise exc
        self._settle(f.settled(FileState.FAILED, error=str(exc), exit_code=exc.exit_code))
        log.warning("%s", exc)
        self.policy.failed(exc)

    def _uploaded(self, f: JobFile, result: UploadResult) -> None:
        self.policy.succeeded()
        self.sent_bytes += result.sent_bytes
        self._settle(f.settled(FileState.DONE, etag=result.etag), result)

    def _settle(self, settled: JobFile, upload: UploadResult | None = None) -> None:
        """Journal what became of the file (in groups) and report it."""
        self._marks.append(settled)
        if len(self._marks) >= MARK_BATCH or time.monotonic() - self._marked_at >= MARK_EVERY_S:
            self._flush_marks()
        self._report(ItemResult.of(settled, upload))

    def _flush_marks(self) -> None:
        if self._marks:
            marks, self._marks = self._marks, []
            self.journal.set_file_states(self.job.id, marks)
        self._marked_at = time.monotonic()

    async def _abort_uploads(self, reason: str) -> None:
        """The job cannot finish on this cluster: abort every multipart upload the journal
        holds for its files, then check the server lists none of them."""
        ours = [u for u in self.journal.uploads(UploadState.ACTIVE)
                if u.endpoint == self.store.endpoint
                and self.journal.job_has_file(self.job.id, u.bucket, u.key)]
        options = ObjectOptions.from_config(self.config, None)
        aborted = [(u.bucket, u.key, u.upload_id) for u in ours if u.upload_id]
        with anyio.CancelScope(shield=True):
            for u in ours:
                if u.upload_id:
                    await abort_upload(self.store, self.scheduler, u.bucket, u.key, u.upload_id,
                                       options)
                self.journal.finish(u.id, UploadState.ABORTED, error=reason)
            left = [f"s3://{bucket}/{key} ({upload_id})" for bucket, key, upload_id in
                    await confirm_aborted(self.store, self.scheduler, aborted,
                                          self._common_prefixes(), options)]
        if left:
            log.error("still listed after being aborted: %s", ", ".join(left))
        else:
            log.warning("aborted %d multipart upload(s) of job %d; none is left on the server",
                        len(ours), self.job.id)
