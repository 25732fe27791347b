"""Work that runs on cluster workers, and the ``Executor`` protocol the coordinator uses to
hand it out. Nothing here imports Dask: ``cluster.py`` holds the Dask executor.

The split of duties, and why: the coordinator (the process running ``bigupload``) alone
owns the journal and calls CreateMultipartUpload, CompleteMultipartUpload and
AbortMultipartUpload. Dask's scheduler keeps no persistent state and actors die with their
worker, so resume state can only live with the coordinator. Workers only ever upload:
ranges of parts of one object (``upload_parts``) or whole small files (``put_files``),
each reading its own bytes from a path it can see, with the same checksum, retry and
memory rules as the single-host engine, and return what they did (part number, size,
ETag, checksum). A task may run twice (a killed worker's tasks are rerun elsewhere):
re-uploading a part number or re-putting a small file is harmless, and the coordinator
checks ListParts against the local bytes before completing.

Each worker process keeps one store and one scheduler per connection setting
(``worker_env``), shared by every task it runs: its ``concurrency`` bounds that worker's
requests in flight, whatever number of tasks Dask runs on it at once."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
from collections.abc import Callable, Sequence
from typing import Protocol

from .client import AioS3Store, ObjectStore
from .config import ChecksumAlgorithm, UploadConfig
from .errors import BigUploadError, SourceError
from .scheduler import Scheduler, task_group
from .source import SourceFile
from .upload.driver import Services, plan_job
from .upload.parts import PartSender
from .upload.put import put_file
from .upload.result import UploadResult
from .values import Fingerprint, ObjectOptions, Part, PartRecord, Plan


@dataclasses.dataclass(frozen=True)
class PartsTask:
    """Everything a worker needs to upload parts of one file to one multipart upload."""

    fingerprint: Fingerprint  # the coordinator's: the worker checks its file is the same
    bucket: str
    key: str
    upload_id: str
    part_size: int
    algorithm: ChecksumAlgorithm
    options: ObjectOptions
    config: UploadConfig


@dataclasses.dataclass(frozen=True)
class FileTask:
    """One small file (a single PutObject) for a worker. ``seq`` is its place in the job."""

    seq: int
    source: str
    bucket: str
    key: str
    size: int
    mtime_ns: int
    config: UploadConfig


@dataclasses.dataclass(frozen=True)
class FileOutcome:
    """What became of a ``FileTask``: a result, or the error that stopped it."""

    seq: int
    result: UploadResult | None
    error: BigUploadError | None


class Executor(Protocol):
    """Where a coordinator sends work. ``send_parts`` returns False, having sent nothing,
    when no worker can read the file (the coordinator then sends it itself); ``put_files``
    returns the outcomes and the files no worker can read. Both call back or return as
    results arrive, so the coordinator journals them at once."""

    async def send_parts(self, task: PartsTask, numbers: Sequence[int],
                         on_part: Callable[[PartRecord], None]) -> bool: ...

    async def put_files(self, files: Sequence[FileTask]) -> tuple[list[FileOutcome], list[FileTask]]: ...


@dataclasses.dataclass
class WorkerEnv:
    store: ObjectStore
    scheduler: Scheduler


_envs: dict[tuple[int, str], WorkerEnv] = {}
_env_locks: dict[int, asyncio.Lock] = {}
_stacks: list[contextlib.AsyncExitStack] = []


def _connection_key(config: UploadConfig) -> str:
    """The settings a store and scheduler depend on (not the per-object ones)."""
    return repr((config.endpoint_url, config.region, config.profile, config.verify_tls,
                 config.connect_timeout_s, config.read_timeout_s, config.concurrency,
                 config.memory_limit, config.max_attempts, config.backoff_base_s,
                 config.backoff_max_s, config.max_bandwidth))


async def worker_env(config: UploadConfig) -> WorkerEnv:
    """This process's store and scheduler for ``config``'s connection settings, opened once
    on the running event loop and kept for the tasks that follow. Credentials come from the
    worker's own environment (variables, files, instance role), never from the coordinator."""
    loop = id(asyncio.get_running_loop())
    key = (loop, _connection_key(config))
    lock = _env_locks.setdefault(loop, asyncio.Lock())
    async with lock:
        env = _envs.get(key)
        if env is None:
            stack = contextlib.AsyncExitStack()
            store = await stack.enter_async_context(AioS3Store.open(config))
            _stacks.append(stack)
            env = _envs[key] = WorkerEnv(store, Scheduler(config))
    return env


async def close_worker_envs() -> None:
    """Close every store ``worker_env`` opened in this process (a worker's teardown)."""
    stacks = list(_stacks)
    _stacks.clear()
    _envs.clear()
    for stack in stacks:
        await stack.aclose()


def same_file_here(fingerprint: Fingerprint, source: SourceFile) -> None:
    """SourceError unless the file at this path is the one the coordinator planned. Inode
    and device are not compared: another host's mount of the same file numbers them its
    own way; size, modification time and the sampled content are."""
    here = source.fingerprint()
    changes = [c for c in fingerprint.differences(here) if not c.startswith("inode")]
    if changes:
        raise SourceError(f"{fingerprint.path} on {os.uname().nodename} is not the file the "
                          f"coordinator planned ({', '.join(changes)})")


async def upload_parts(task: PartsTask, numbers: Sequence[int],
                       env: WorkerEnv | None = None) -> list[PartRecord]:
    """A cluster task: upload these parts of ``task``'s file; their records. Raises the
    first part's error that retries could not overcome (its parts already sent are found
    by the coordinator's ListParts check)."""
    env = env or await worker_env(task.config)
    the_plan = Plan(size=task.fingerprint.size, part_size=task.part_size, multipart=True)
    records: list[PartRecord] = []
    with SourceFile(task.fingerprint.path) as source:
        await env.scheduler.in_thread(same_file_here, task.fingerprint, source)
        sender = PartSender(source, task.bucket, task.key, task.upload_id,
                            algorithm=task.algorithm, options=task.options, store=env.store,
                            scheduler=env.scheduler)

        async def send(part: Part) -> None:
            records.append(await sender.send(part))

        await env.scheduler.run_parts([the_plan.part(n) for n in numbers], task.part_size, send)
    return sorted(records, key=lambda r: r.number)


async def put_files(files: Sequence[FileTask], env: WorkerEnv | None = None) -> list[FileOutcome]:
    """A cluster task: upload these small files, each with one PutObject, at once (the
    worker's scheduler bounds the requests). A file's failure is its outcome, not the task's."""
    if not files:
        return []
    env = env or await worker_env(files[0].config)
    outcomes: list[FileOutcome] = []

    async def put(f: FileTask) -> None:
        try:
            with SourceFile(f.source) as source:
                if (source.size, os.stat(f.source).st_mtime_ns) != (f.size, f.mtime_ns):
                    raise SourceError(f"{f.source}: changed since the job listed it (size or "
                                      "modification time)")
                job = await plan_job(source, f.bucket, f.key, f.config, env.scheduler)
                result = await put_file(job, Services(env.store, env.scheduler))
                outcomes.append(FileOutcome(f.seq, result, None))
        except BigUploadError as exc:
            exc.__traceback__ = None  # travels back to the coordinator: keep it small
            outcomes.append(FileOutcome(f.seq, None, exc))

    async with task_group() as tg:
        for f in files:
            tg.start_soon(put, f)
    return outcomes


def visible(files: Sequence[tuple[str, int, int]]) -> list[bool]:
    """Run on each worker: for each (path, size, mtime_ns), whether this host sees that
    file as the coordinator does. Placement of tasks follows from it."""
    seen = []
    for path, size, mtime_ns in files:
        try:
            st = os.stat(path)
        except OSError:
            seen.append(False)
            continue
        seen.append((st.st_size, st.st_mtime_ns) == (size, mtime_ns))
    return seen


def worker_version() -> str:
    """Run on each worker at connection: the bigupload version it has installed."""
    from importlib.metadata import version

    return version("bigupload")
