"""The embeddable entry points: ``Uploader`` (an async context manager that shares one
client, journal and scheduler across uploads and batch jobs), ``upload_file`` and
``upload_file_sync``."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
from collections.abc import Iterable
from types import TracebackType
from typing import Any

import anyio

from .batch import (
    BatchItem,
    BatchProgress,
    BatchResult,
    Entry,
    JobRunner,
    entry_for,
    config_for_job,
    make_spec,
    open_job,
)
from .client import AioS3Store, ObjectStore
from .config import UploadConfig
from .errors import ConfigError, ResumeError
from .journal import JobRecord, JobState, Journal, UploadRecord
from .progress import Progress
from .remote import Executor
from .scheduler import Scheduler
from .source import SourceFile
from .transfer import UploadResult, Transfer


class Uploader:
    """Shares one S3 client, journal and scheduler across uploads::

        async with Uploader(UploadConfig(endpoint_url=...)) as up:
            result = await up.upload_file("big.bin", "bucket", "key")

    ``store`` and ``journal`` may be given (tests, custom stores); otherwise an
    aiobotocore client is opened from ``config`` and the default journal is used.

    ``executor`` spreads the uploading over a cluster: a ``cluster.DaskExecutor`` (opened
    and closed with the uploader), or a Dask address as a string (``tcp://host:8786``, or
    ``local:N`` for N worker processes here). This process stays the coordinator: it owns
    the journal and creates, completes and aborts every multipart upload."""

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
        self._journal_arg = journal
        self._journal: Journal | None = None
        self._stack = contextlib.AsyncExitStack()
        self.scheduler = Scheduler(self.config)

    @property
    def store(self) -> ObjectStore:
        if self._store is None:
            raise RuntimeError("Uploader is not open: use 'async with Uploader(...)'")
        return self._store

    @property
    def journal(self) -> Journal:
        if self._journal is None:
            raise RuntimeError("Uploader is not open: use 'async with Uploader(...)'")
        return self._journal

    async def __aenter__(self) -> Uploader:
        try:
            if isinstance(self._journal_arg, Journal):
                self._journal = self._journal_arg
            else:
                self._journal = Journal(self._journal_arg)
                self._stack.callback(self._journal.close)
            if self._store is None:
                self._store = await self._stack.enter_async_context(AioS3Store.open(self.config))
            if self._executor_arg is not None:
                self.executor = await self._open_executor(self._executor_arg)
        except BaseException:
            await self._stack.aclose()
            raise
        return self

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

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._stack.aclose()

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
        with SourceFile(os.fspath(path)) as source:
            transfer = Transfer(
                source, bucket, key, config=self.config, store=self.store, journal=self.journal,
                scheduler=self.scheduler, progress=progress, restart=restart,
                adopt_upload_id=upload_id, executor=self.executor,
            )
            return await transfer.run()

    async def resume_upload(self, record: UploadRecord, *, progress: Progress | None = None) -> UploadResult:
        """Finish one journalled single-file upload (``bigupload resume``). This is an old
        intent: it completes the journalled upload, under the guard recorded when it began,
        and never starts a new one (a row whose upload the server no longer has is closed)."""
        with SourceFile(record.fingerprint.path) as source:
            transfer = Transfer(
                source, record.bucket, record.key, config=self.config, store=self.store,
                journal=self.journal, scheduler=self.scheduler, progress=progress,
                executor=self.executor, from_journal=True,
            )
            return await transfer.run()

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
            entries.append(entry_for(dataclasses.replace(item, source=os.path.abspath(item.source))))
        digest = hashlib.sha256(json.dumps(
            [(e.item.source, e.item.bucket, e.item.key, e.item.settings()) for e in entries],
            sort_keys=True).encode()).hexdigest()
        spec = make_spec("items", {"count": len(entries), "items": digest}, self.config,
                         self.store.endpoint, skip_existing=skip_existing)
        return await self.run_job(spec, entries, fail_fast=fail_fast, progress=progress)

    async def run_job(self, spec: dict[str, Any], entries: Iterable[Entry], *,
                      fail_fast: bool = False, progress: BatchProgress | None = None) -> BatchResult:
        """Start the job ``spec`` describes (or continue the unfinished one with the same
        spec, adding any new entries) and run it. ``upload_many`` and the CLI's directory
        and manifest modes go through here."""
        job, _ = open_job(self.journal, spec, entries)
        return await self._run(job, spec, retry_failed=False, fail_fast=fail_fast, progress=progress)

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

    async def _run(self, job: JobRecord, spec: dict[str, Any], *, retry_failed: bool,
                   fail_fast: bool, progress: BatchProgress | None) -> BatchResult:
        if spec["endpoint"] != self.store.endpoint:
            raise ResumeError(f"job {job.id} uploads to {spec['endpoint']}, not to "
                              f"{self.store.endpoint}; resume it with --endpoint-url {spec['endpoint']}")
        runner = JobRunner(job=job, spec=spec, config=config_for_job(self.config, spec),
                           store=self.store, journal=self.journal, scheduler=self.scheduler,
                           progress=progress, fail_fast=fail_fast, executor=self.executor,
                           executor_slots=getattr(self.executor, "slots", 1))
        return await runner.run(retry_failed=retry_failed)


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
