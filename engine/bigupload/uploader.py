"""The embeddable entry points: ``Uploader`` (an async context manager that shares one
client, journal and scheduler across uploads and batch jobs, answers for the journal:
resume, status, abort, forget, and makes S3's multipart calls for a caller: list_parts,
list_uploads, abort), ``upload_file`` and ``upload_file_sync``.

The S3 client (and a cluster executor) and the journal are each opened by the first
call that needs them: ``status`` and ``forget``, which read and edit only the journal,
open no client, and ``list_parts`` and ``list_uploads`` open no journal."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Sequence,
)
from types import TracebackType
from typing import Any

import anyio

from . import housekeeping
from .batch import (
    PREFIX,
    BatchItem,
    BatchProgress,
    BatchResult,
    Entry,
    JobRunner,
    add_new_files,
    config_for_job,
    destination_prefix,
    entry_for,
    list_prefix,
    make_spec,
    open_job,
)
from .client import AioS3Store, CopyStore, ObjectStore
from .config import UploadConfig
from .errors import BigUploadError, Cancelled, ConfigError, NotFoundError, ResumeError
from .journal import JobRecord, JobState, Journal, UploadRecord, UploadState
from .progress import Progress
from .remote import Executor
from .reports import (
    AbortReport,
    FileFailure,
    ForgetReport,
    ResumedFile,
    ResumedJob,
    StatusReport,
)
from .scheduler import Scheduler
from .source import SourceFile
from .stream import StreamLike, open_stream
from .transfer import Copy, Transfer, UploadResult
from .upload.copy import CopyJob, plan_copy_job
from .upload.stream import end_stream_row
from .upload.stream_machine import NOT_RESUMABLE
from .values import STREAM_SOURCE
from .values import MultipartUpload, ObjectOptions, PartListing

log = logging.getLogger("bigupload")


class Uploader:
    """Shares one S3 client, journal and scheduler across uploads::

        async with Uploader(UploadConfig(endpoint_url=...)) as up:
            result = await up.upload_file("big.bin", "bucket", "key")

    ``store`` and ``journal`` may be given (tests, custom stores); otherwise an
    aiobotocore client is opened from ``config`` (by the first call that needs one, or
    ``connect()``) and the default journal is used.

    ``executor`` spreads the uploading over a cluster: a ``cluster.DaskExecutor`` (opened
    with the client and closed with the uploader), or a Dask address as a string
    (``tcp://host:8786``, or ``local:N`` for N worker processes here). This process stays
    the coordinator: it owns the journal and creates, completes and aborts every
    multipart upload."""

    def __init__(
        self,
        config: UploadConfig | None = None,
        *,
        store: ObjectStore | None = None,
        journal: Journal | str | os.PathLike[str] | None = None,
        executor: Executor | str | None = None,
    ) -> None:
        self.config = config or UploadConfig()
        self._executor_arg = executor
        self.executor: Executor | None = None
        self._store = store
        self._given_store = store
        self._connected = False
        self._connecting = anyio.Lock()
        self._journal_arg = journal
        self._journal: Journal | None = None
        self._open = False
        self._stack = contextlib.AsyncExitStack()
        self.scheduler = Scheduler(self.config)

    @property
    def store(self) -> ObjectStore:
        """The object store: the one given, or the client ``connect`` opened."""
        if self._store is None:
            raise RuntimeError("Uploader is not connected: use 'async with Uploader(...)', "
                               "then 'await uploader.connect()' or any upload")
        return self._store

    @property
    def journal(self) -> Journal:
        """The journal, opened by the first call that needs it: the calls that only talk
        to the server (``list_parts``, ``list_uploads``) leave no journal file behind."""
        if not self._open:
            raise RuntimeError("Uploader is not open: use 'async with Uploader(...)'")
        if self._journal is None:
            if isinstance(self._journal_arg, Journal):
                self._journal = self._journal_arg
            else:
                self._journal = Journal(self._journal_arg)
                self._stack.callback(self._journal.close)
        return self._journal

    async def __aenter__(self) -> Uploader:
        self._open = True
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None
    ) -> None:
        self._open = False
        await self._stack.aclose()

    async def connect(self) -> ObjectStore:
        """Open the S3 client (and the cluster executor, if any) now, if no call has yet;
        a bad profile, endpoint or CA bundle is then reported before anything else."""
        if not self._open:
            raise RuntimeError("Uploader is not open: use 'async with Uploader(...)'")
        async with self._connecting:
            if not self._connected:
                if self._store is None:
                    self._store = await self._stack.enter_async_context(
                        AioS3Store.open(self.config))
                await self._start_executor()
                self._connected = True
        return self.store

    async def _start_executor(self) -> Executor | None:
        if self.executor is None and self._executor_arg is not None:
            self.executor = await self._open_executor(self._executor_arg)
        return self.executor

    async def _open_executor(self, executor: Executor | str) -> Executor:
        if isinstance(executor, str):
            try:
                from .cluster import DaskExecutor
            except ImportError as exc:
                raise ConfigError("running on a Dask cluster needs the dask extra: "
                                  "pip install 'bigupload[dask]'") from exc
            executor = DaskExecutor(executor)
        if isinstance(executor, contextlib.AbstractAsyncContextManager):
            await self._stack.enter_async_context(executor)
        return executor

    @contextlib.asynccontextmanager
    async def _elsewhere(self, endpoint: str, **changes: Any) -> AsyncIterator[Uploader]:
        """An uploader for ``endpoint`` with changed settings (a journalled part size),
        with its own client, sharing this one's journal and cluster executor. A store the
        caller gave is shared instead: it is the only one there is."""
        async with self._connecting:
            executor = await self._start_executor()
        if self._given_store is None:
            changes["endpoint_url"] = endpoint
        async with Uploader(dataclasses.replace(self.config, **changes),
                            store=self._given_store, journal=self.journal) as other:
            other.executor = executor
            await other.connect()
            yield other

    # uploads

    async def upload_file(
        self,
        path: str | os.PathLike[str],
        bucket: str,
        key: str,
        *,
        progress: Progress | None = None,
        restart: bool = False,
        upload_id: str | None = None,
    ) -> UploadResult:
        """Upload one file, resuming its unfinished upload if the journal has one.
        ``restart`` aborts that upload and starts over; ``upload_id`` adopts an existing
        multipart upload, verifying every listed part against the file before keeping it."""
        store = await self.connect()
        with SourceFile(os.fspath(path)) as source:
            transfer = Transfer(
                source, bucket, key, config=self.config, store=store, journal=self.journal,
                scheduler=self.scheduler, progress=progress, restart=restart,
                adopt_upload_id=upload_id, executor=self.executor,
            )
            return await transfer.run()

    async def upload_stream(
        self,
        data: StreamLike | str | os.PathLike[str],
        bucket: str,
        key: str,
        *,
        expected_size: int | None = None,
        progress: Progress | None = None,
        name: str | None = None,
    ) -> UploadResult:
        """Upload a stream, read once front to back: a path to a FIFO or device, a file
        descriptor (left open), a binary file object (anything with ``readinto``), an
        iterable or an async iterable of bytes. Its parts are read into reused buffers
        and grow as it goes (``expected_size``, if known, sizes them up front); one that
        ends inside its first part is one PutObject. A stream cannot be resumed: if the
        upload stops, for any reason, it is aborted and the error says so. ``name`` names
        the stream in messages and guesses the content type."""
        store = await self.connect()
        source = open_stream(data, name)
        try:
            transfer = Transfer(source, bucket, key, config=self.config, store=store,
                                journal=self.journal, scheduler=self.scheduler,
                                progress=progress, executor=self.executor,
                                expected_size=expected_size)
            return await transfer.run()
        finally:
            source.close()

    async def resume_upload(self, record: UploadRecord, *,
                            progress: Progress | None = None) -> UploadResult:
        """Finish one journalled single-file upload (``bigupload resume``). This is an old
        intent: it completes the journalled upload, under the guard recorded when it began,
        and never starts a new one (a row whose upload the server no longer has is closed)."""
        store = await self.connect()
        with SourceFile(record.fingerprint.path) as source:
            transfer = Transfer(
                source, record.bucket, record.key, config=self.config, store=store,
                journal=self.journal, scheduler=self.scheduler, progress=progress,
                executor=self.executor, from_journal=True,
            )
            return await transfer.run()

    async def copy_object(
        self,
        source_bucket: str,
        source_key: str,
        bucket: str,
        key: str,
        *,
        version_id: str | None = None,
        progress: Progress | None = None,
        restart: bool = False,
        follow_source_checksum: bool = True,
    ) -> UploadResult:
        """Copy ``s3://source_bucket/source_key`` (that version, if given) to
        ``s3://bucket/key`` on this uploader's endpoint, server-side: no byte of the object
        passes through this process. Up to the multipart threshold (5 GiB unless set) one
        CopyObject; above it a journalled multipart copy, resumed by the same call after an
        interruption (``restart`` aborts it and starts over). The source's content type,
        metadata and tags are carried over unless ``config`` sets a content type or
        metadata. ``follow_source_checksum``: when the source reports a whole-object CRC,
        the copy uses its algorithm instead of ``config.checksum``, so the copy is verified
        against the source. ``UploadResult.copied_from`` names the source."""
        store = await self.connect()
        return await Copy(source_bucket, source_key, bucket, key, config=self.config,
                          store=store, journal=self.journal, scheduler=self.scheduler,
                          progress=progress, version_id=version_id,
                          follow_source_checksum=follow_source_checksum,
                          restart=restart).run()

    async def plan_copy(self, source_bucket: str, source_key: str, bucket: str, key: str, *,
                        version_id: str | None = None,
                        follow_source_checksum: bool = True) -> CopyJob:
        """What ``copy_object`` would do (a HEAD of the source, nothing written): the plan,
        the algorithm, the options."""
        store = await self.connect()
        if not isinstance(store, CopyStore):
            raise ConfigError(f"{store.endpoint}: this store cannot copy server-side")
        return await plan_copy_job(store, self.scheduler, source_bucket, source_key, bucket,
                                   key, self.config, version_id=version_id,
                                   follow_source_checksum=follow_source_checksum)

    async def resume_copy(self, record: UploadRecord, *,
                          progress: Progress | None = None) -> UploadResult:
        """Finish one journalled multipart copy (``bigupload resume``): an old intent, which
        completes the journalled copy (of the journalled version, if the source has
        versions) and never starts a new one."""
        source = record.copy_source
        if source is None:
            raise ValueError(f"journal row {record.id} is a file's upload, not a copy")
        store = await self.connect()
        return await Copy(source.bucket, source.key, record.bucket, record.key,
                          config=self.config, store=store, journal=self.journal,
                          scheduler=self.scheduler, progress=progress,
                          from_journal=True).run()

    async def list_copies(self, source_bucket: str, source_prefix: str, bucket: str,
                          prefix: str, *, include: Sequence[str] = (),
                          exclude: Sequence[str] = ()) -> tuple[list[Entry], int]:
        """The objects a prefix copy would copy (one listing of the source prefix), and
        how many ``include``/``exclude`` left out. Prefixes are taken as directories:
        ``photos`` is ``photos/``."""
        store = await self.connect()
        return await list_prefix(store, self.scheduler, source_bucket,
                                 destination_prefix(source_prefix), bucket,
                                 destination_prefix(prefix), include=include, exclude=exclude)

    async def copy_prefix(
        self,
        source_bucket: str,
        source_prefix: str,
        bucket: str,
        prefix: str,
        *,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        skip_existing: bool = False,
        fail_fast: bool = False,
        progress: BatchProgress | None = None,
        follow_source_checksum: bool = True,
        entries: Iterable[Entry] | None = None,
    ) -> BatchResult:
        """Copy every object under ``s3://source_bucket/source_prefix`` to the same relative
        key under ``s3://bucket/prefix``, server-side, as one resumable job (the same call
        again, or ``resume_job``, continues it and adds objects that appeared). Each object
        goes as ``copy_object`` would take it; ``entries`` are ``list_copies``' if already
        listed."""
        if self.config.sse_c_key is not None:
            raise ConfigError("server-side copies do not take --sse-c-key-file")
        source_prefix, prefix = destination_prefix(source_prefix), destination_prefix(prefix)
        if entries is None:
            entries, _ = await self.list_copies(source_bucket, source_prefix, bucket, prefix,
                                                include=include, exclude=exclude)
        origin = {"source_bucket": source_bucket, "source_prefix": source_prefix,
                  "bucket": bucket, "prefix": prefix, "include": list(include),
                  "exclude": list(exclude), "follow_source_checksum": follow_source_checksum}
        return await self.upload_job(PREFIX, origin, entries, skip_existing=skip_existing,
                                     fail_fast=fail_fast, progress=progress)

    async def upload_many(
        self,
        items: Iterable[BatchItem | tuple[str, str, str]],
        *,
        skip_existing: bool = False,
        fail_fast: bool = False,
        progress: BatchProgress | None = None,
    ) -> BatchResult:
        """Upload many files as one resumable job: ``BatchItem`` or ``(source, bucket,
        key)`` each. All share this uploader's connection and memory bounds. A file that
        fails for good is recorded in ``BatchResult.failures`` and the others go on
        (``fail_fast`` raises at the first). The same call again, or ``resume_job(job_id)``
        after an interruption, continues the job: finished files are not sent again."""
        entries = []
        for item in items:
            if not isinstance(item, BatchItem):
                item = BatchItem(*item)
            entries.append(entry_for(dataclasses.replace(item,
                                                         source=os.path.abspath(item.source))))
        digest = hashlib.sha256(json.dumps(
            [(e.item.source, e.item.bucket, e.item.key, e.item.settings()) for e in entries],
            sort_keys=True).encode()).hexdigest()
        return await self.upload_job("items", {"count": len(entries), "items": digest}, entries,
                                     skip_existing=skip_existing, fail_fast=fail_fast,
                                     progress=progress)

    async def upload_job(self, kind: str, origin: dict[str, Any], entries: Iterable[Entry], *,
                         skip_existing: bool = False, fail_fast: bool = False,
                         progress: BatchProgress | None = None) -> BatchResult:
        """Files as one resumable job of ``kind`` (``directory``, ``manifest``, ``items``)
        made from ``origin`` (what was walked or read): the same kind and origin with the
        same settings and endpoint continue the unfinished job, adding new entries."""
        store = await self.connect()
        spec = make_spec(kind, origin, self.config, store.endpoint, skip_existing=skip_existing)
        return await self.run_job(spec, entries, fail_fast=fail_fast, progress=progress)

    async def run_job(self, spec: dict[str, Any], entries: Iterable[Entry], *,
                      fail_fast: bool = False,
                      progress: BatchProgress | None = None) -> BatchResult:
        """Start the job ``spec`` describes (its file list journalled from ``entries`` as
        they come), or continue the unfinished one with the same spec: its journalled
        files are sent first, and ``entries`` (a walk run again) are read once they are
        sent, for the files it does not have yet, which are then sent too. A partial job
        (some files failed) is continued too, its failed files tried again, as
        ``resume_job`` does."""
        job, resumed = open_job(self.journal, spec, entries)
        more = None
        if resumed:
            log.info("resuming job %d (%s)", job.id, job.description)

            async def more() -> int:
                return await add_new_files(self.journal, job.id, entries)

        return await self._run(job, spec, retry_failed=job.state is JobState.PARTIAL,
                               fail_fast=fail_fast, progress=progress, more=more)

    async def resume_job(self, job_id: int, *, retry_failed: bool = True, fail_fast: bool = False,
                         progress: BatchProgress | None = None) -> BatchResult:
        """Continue job ``job_id`` from the journal: files already uploaded are skipped,
        large files resume at part granularity, failed files are tried again unless
        ``retry_failed`` is False."""
        job = self.journal.job(job_id)
        if job is None:
            raise ResumeError(f"the journal {self.journal.path} has no job {job_id}")
        if job.state is JobState.COMPLETED:
            raise ResumeError(f"job {job_id} is already complete")
        return await self._run(job, json.loads(job.spec), retry_failed=retry_failed,
                               fail_fast=fail_fast, progress=progress)

    def jobs(self, *states: JobState) -> list[JobRecord]:
        """Jobs in the journal (all, or those in ``states``)."""
        return self.journal.jobs(states or tuple(JobState))

    def job_failures(self, job_id: int) -> Iterator[FileFailure]:
        """Every file of job ``job_id`` that failed for good, with why, in the job's
        order, read from the journal a page at a time (``BatchResult.failures`` lists a
        run's first ones only)."""
        return housekeeping.job_failures(self.journal, job_id)

    async def _run(self, job: JobRecord, spec: dict[str, Any], *, retry_failed: bool,
                   fail_fast: bool, progress: BatchProgress | None,
                   more: Callable[[], Awaitable[int]] | None = None) -> BatchResult:
        store = await self.connect()
        if spec["endpoint"] != store.endpoint:
            raise ResumeError(f"job {job.id} uploads to {spec['endpoint']}, not to "
                              f"{store.endpoint}; resume it with --endpoint-url "
                              f"{spec['endpoint']}")
        runner = JobRunner(job=job, spec=spec, config=config_for_job(self.config, spec),
                           store=store, journal=self.journal, scheduler=self.scheduler,
                           progress=progress, fail_fast=fail_fast, executor=self.executor,
                           executor_slots=getattr(self.executor, "slots", 1))
        try:
            return await runner.run(retry_failed=retry_failed, more=more)
        except BigUploadError as exc:  # what stops a job leaves it resumable: say how
            if not isinstance(exc, Cancelled) and exc.args:
                exc.args = (f"{exc.args[0]} [job {job.id} is kept: bigupload resume {job.id}]",)
            raise

    # the journal's unfinished work, and housekeeping

    async def resume(self, job_id: int | None = None, *, fail_fast: bool = False,
                     progress: BatchProgress | None = None,
                     file_progress: Progress | None = None,
                     ) -> AsyncGenerator[ResumedJob | ResumedFile, None]:
        """Continue what the journal says is unfinished, reporting each as it is done:
        every active job, then every unfinished single-file upload that belongs to no job;
        or job ``job_id`` alone (a partial job retries its failures). Each goes to the
        endpoint it began with, with this uploader's other settings; when this uploader
        names an endpoint, a job elsewhere is a ConfigError and a file elsewhere is
        skipped (and reported). A file that fails, or a job that stops (its ``error`` and
        ``exit_code``; the job is kept), is reported and the others go on; ``fail_fast``
        raises at the first job that stops."""
        if job_id is not None:
            job = self.journal.job(job_id)
            if job is None:
                raise ConfigError(f"no job {job_id} in the journal {self.journal.path} "
                                  "(see: bigupload status)")
            jobs = [job]
        else:
            jobs = self.journal.jobs((JobState.ACTIVE,))
        singles = [] if job_id is not None else [
            r for r in self.journal.uploads(UploadState.ACTIVE)
            if not self.journal.in_job(r.fingerprint.path, r.bucket, r.key)]
        given = self.config.endpoint_url
        for job in jobs:
            if job.state is JobState.COMPLETED:
                yield ResumedJob(job.id, job.description, None)
                continue
            endpoint = json.loads(job.spec)["endpoint"]
            if given and given.rstrip("/") != endpoint.rstrip("/"):
                raise ConfigError(f"job {job.id} uploads to {endpoint}, not {given}")
            log.info("resuming job %d (%s)", job.id, job.description)
            try:
                async with self._elsewhere(endpoint) as there:
                    result = await there.resume_job(job.id, retry_failed=True,
                                                    fail_fast=fail_fast, progress=progress)
            except Cancelled:
                raise
            except BigUploadError as exc:
                if fail_fast:
                    raise
                yield ResumedJob(job.id, job.description, None, error=str(exc),
                                 error_type=type(exc).__name__, exit_code=exc.exit_code)
                continue
            yield ResumedJob(job.id, job.description, result)
        for record in singles:
            yield await self._resume_file(record, file_progress)

    async def _resume_file(self, record: UploadRecord, progress: Progress | None) -> ResumedFile:
        report = ResumedFile(id=record.id, source=record.fingerprint.path, bucket=record.bucket,
                             key=record.key, endpoint=record.endpoint)
        given = self.config.endpoint_url
        if given and given.rstrip("/") != record.endpoint.rstrip("/"):
            return dataclasses.replace(report, skipped=f"it uploads to {record.endpoint}, "
                                       f"not {given}", exit_code=ConfigError.exit_code)
        if record.fingerprint.path == STREAM_SOURCE:  # a killed stream's row: end it
            with contextlib.ExitStack() as held:
                try:  # a live stream holds its destination: not killed, left alone
                    held.enter_context(self.journal.claim(record.endpoint, record.bucket,
                                                          record.key))
                except ResumeError as exc:
                    return dataclasses.replace(report, skipped=f"a stream still being sent: "
                                               f"{exc}")
                if self.journal.get(record.id).state is not UploadState.ACTIVE:
                    return dataclasses.replace(report, skipped="a stream that has ended")
                async with self._elsewhere(record.endpoint) as there:
                    await end_stream_row(record, there.store, there.scheduler, self.journal,
                                         ObjectOptions(request_payer=self.config.request_payer))
            return dataclasses.replace(
                report, error=f"{NOT_RESUMABLE}: its upload, left by a run that was killed, "
                "was aborted; send the stream again", error_type=ResumeError.__name__,
                exit_code=ResumeError.exit_code)
        log.info("resuming %s -> s3://%s/%s", record.fingerprint.path, record.bucket, record.key)
        try:
            # as the upload began: its part size, and each part with its Content-MD5 if so
            async with self._elsewhere(record.endpoint, part_size=record.part_size,
                                       content_md5=record.content_md5) as there:
                if record.copy_source is not None:
                    result = await there.resume_copy(record, progress=progress)
                else:
                    result = await there.resume_upload(record, progress=progress)
        except Cancelled:
            raise
        except BigUploadError as exc:
            return dataclasses.replace(report, error=str(exc), error_type=type(exc).__name__,
                                       exit_code=exc.exit_code)
        return dataclasses.replace(report, result=result)

    def status(self, job_id: int | None = None, *, closed: bool = False) -> StatusReport:
        """What the journal holds: jobs (active and partial; all with ``closed``) and
        single-file uploads outside jobs (unfinished; the closed ones too with ``closed``),
        or job ``job_id`` with its failures. Reads the journal only."""
        return housekeeping.status(self.journal, job_id, closed=closed)

    def forget(self, *, uploads: tuple[int, ...] = (), jobs: tuple[int, ...] = (),
               finished: bool = False, failed: bool = False,
               older_than: float | None = None) -> ForgetReport:
        """Remove rows from the journal, never from the server: see ``housekeeping.forget``."""
        return housekeeping.forget(self.journal, uploads=uploads, jobs=jobs, finished=finished,
                                   failed=failed, older_than=older_than)

    # the server's multipart uploads, as S3's calls

    def _request_options(self) -> ObjectOptions:
        """What every request about an upload carries: ``config``'s RequestPayer,
        ExpectedBucketOwner and SSE-C key (where the call takes one)."""
        return ObjectOptions.from_config(self.config, None)

    async def list_parts(self, bucket: str, key: str, upload_id: str, *,
                         max_parts: int | None = None,
                         part_number_marker: int | None = None) -> PartListing:
        """ListParts of ``upload_id``: every page, or with ``max_parts`` (1..1,000 on S3)
        or ``part_number_marker`` (the parts after that number) one page, which says
        where the next begins (``next_part_number_marker`` while ``is_truncated``).
        Retried like every call; reads no journal. ``config.sse_c_key`` lists an SSE-C
        upload's parts, ``config.request_payer`` a requester-pays bucket's."""
        if max_parts is not None and max_parts < 1:
            raise ConfigError(f"max_parts must be at least 1, not {max_parts}")
        if part_number_marker is not None and part_number_marker < 0:
            raise ConfigError(f"part_number_marker must not be negative: {part_number_marker}")
        store = await self.connect()
        options = self._request_options()
        return await self.scheduler.retrying(
            f"ListParts s3://{bucket}/{key}",
            lambda n: store.list_parts(bucket, key, upload_id, options, max_parts=max_parts,
                                       part_number_marker=part_number_marker))

    async def list_uploads(self, bucket: str, prefix: str = "") -> tuple[MultipartUpload, ...]:
        """The unfinished multipart uploads under ``prefix`` (ListMultipartUploads, every
        page). Retried; reads no journal."""
        store = await self.connect()
        options = self._request_options()
        return tuple(await self.scheduler.retrying(
            f"ListMultipartUploads s3://{bucket}/{prefix}",
            lambda n: store.list_uploads(bucket, prefix, options)))

    async def abort(self, bucket: str, key: str, upload_id: str) -> AbortReport:
        """Abort multipart upload ``upload_id`` on the server (its parts stop being billed),
        and close the journal's active rows for it. Retried like every call (it is the
        call that stops the billing); a retry answered NoSuchUpload means an earlier
        attempt whose answer was lost did abort it. An upload unknown at the first
        attempt is the caller's mistake (NotFoundError)."""
        store = await self.connect()
        options = self._request_options()

        async def attempt(n: int) -> str | None:
            try:
                return await store.abort(bucket, key, upload_id, options)
            except NotFoundError:
                if n == 1:
                    raise
                return None  # gone since an attempt we never heard back from

        charged = await self.scheduler.retrying(
            f"AbortMultipartUpload s3://{bucket}/{key}", attempt)
        closed = []
        for record in self.journal.uploads(UploadState.ACTIVE):
            if record.upload_id == upload_id and (record.bucket, record.key) == (bucket, key):
                self.journal.finish(record.id, UploadState.ABORTED, error="aborted by the user")
                closed.append(record.id)
        return AbortReport(bucket, key, upload_id, tuple(closed), request_charged=charged)


async def upload_file(
    path: str | os.PathLike[str],
    bucket: str,
    key: str,
    *,
    config: UploadConfig | None = None,
    store: ObjectStore | None = None,
    journal: Journal | str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
    restart: bool = False,
    upload_id: str | None = None,
) -> UploadResult:
    """Upload (or resume uploading) one file to ``s3://bucket/key``."""
    async with Uploader(config, store=store, journal=journal) as uploader:
        return await uploader.upload_file(path, bucket, key, progress=progress, restart=restart,
                                          upload_id=upload_id)


def upload_file_sync(path: str | os.PathLike[str], bucket: str, key: str, **kwargs: Any) -> UploadResult:
    """``upload_file`` for synchronous code: runs its own event loop (see ``event_loop_options``)."""

    async def main() -> UploadResult:
        return await upload_file(path, bucket, key, **kwargs)

    return anyio.run(main, backend="asyncio", backend_options=event_loop_options())


def event_loop_options() -> dict[str, Any]:
    """The stock asyncio loop, unless ``BIGUPLOAD_EVENT_LOOP=uvloop``. Only the stock loop
    implements ``loop.sendfile``, which sends parts from the page cache without a copy in
    Python (``httpbody``); on the null sink it measured 0.85 CPU s/GiB against 1.04 for
    uvloop's chunked writes, and 74 MiB peak RSS against 156 (bench/NOTES.md)."""
    if os.environ.get("BIGUPLOAD_EVENT_LOOP", "").lower() != "uvloop":
        return {}
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return {}
    return {"use_uvloop": True}
