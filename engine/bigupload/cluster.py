"""Running uploads on a Dask cluster: ``DaskExecutor``, the ``Executor`` (``remote.py``)
that hands part ranges and small files to Dask workers. Needs the ``dask`` extra
(``pip install 'bigupload[dask]'``); nothing else in bigupload imports this module.

Bounds: each worker uploads with its own ``concurrency`` connections (``worker_env``),
and at most ``slots`` tasks are in flight (each worker's task threads, plus one queued
per worker so none waits on a round trip to us), so the whole cluster never has more than
workers x concurrency requests in flight. A throttling answer halves a worker's
connections (``Scheduler``).

Placement: before sending a file's work, every worker reports whether it sees the file
at that path with the size and modification time we see (``remote.visible``). Files seen
everywhere go anywhere; files seen on some hosts only are pinned to those hosts (so a
worker restarted on the same host still qualifies); files no worker sees are sent by the
coordinator itself.

Failures: a killed worker's tasks are rerun by Dask elsewhere (a part or small file sent
twice is harmless). A task that killed every worker it ran on (``KilledWorker``) means
running again cannot help: ``ClusterError(abort=True)``, and the coordinator aborts the
uploads the work created. Losing the scheduler is ``ClusterError(abort=False)``: the
journal keeps everything, and ``bigupload resume`` finishes the job."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any, TypeVar

import anyio
from distributed import Client, Future, LocalCluster
from distributed.client import FutureCancelledError
from distributed.comm.addressing import get_address_host
from distributed.comm.core import CommClosedError
from distributed.diagnostics.plugin import WorkerPlugin
from distributed.scheduler import KilledWorker

from . import remote
from .errors import ClusterError, ConfigError
from .remote import FileOutcome, FileTask, PartsTask
from .scheduler import task_group
from .values import PartRecord

log = logging.getLogger("bigupload")
T = TypeVar("T")
CONNECT_TIMEOUT_S = 30
LOST = (CommClosedError, FutureCancelledError, OSError, TimeoutError)


class _CloseStores(WorkerPlugin):
    """Closes a worker's S3 clients when the worker shuts down."""

    name = "bigupload-close-stores"

    async def teardown(self, worker: Any) -> None:
        await remote.close_worker_envs()


class DaskExecutor:
    """Sends upload work to a Dask cluster. ``address`` is a scheduler address
    (``tcp://host:8786``), ``local:N`` for a LocalCluster of N worker processes on this
    machine, or an asynchronous ``distributed.Client`` you opened (and will close)::

        async with Uploader(config, executor=DaskExecutor("tcp://10.0.0.5:8786")) as up:
            await up.upload_file("/shared/big.tar", "bucket", "big.tar")
    """

    def __init__(self, address: str | Client, *, tasks_per_worker: int = 2) -> None:
        self.address = address
        self.tasks_per_worker = tasks_per_worker
        self.workers = 0
        self._client: Client | None = address if isinstance(address, Client) else None
        self._cluster: LocalCluster | None = None
        self.slots = 1  # tasks in flight at most, set when the cluster is known
        self._slots: anyio.Semaphore | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            raise RuntimeError("DaskExecutor is not open: use 'async with'")
        return self._client

    async def __aenter__(self) -> DaskExecutor:
        try:
            if isinstance(self.address, str) and self.address.startswith("local:"):
                self._cluster = await LocalCluster(
                    n_workers=_local_workers(self.address), threads_per_worker=self.tasks_per_worker,
                    processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0",
                    worker_dashboard_address=None, silence_logs=logging.ERROR, asynchronous=True)
                self._client = await Client(self._cluster, asynchronous=True)
            elif isinstance(self.address, str):
                self._client = await Client(self.address, asynchronous=True,
                                            timeout=CONNECT_TIMEOUT_S)
            await self._check_workers()
            await self.client.register_plugin(_CloseStores())
        except BaseException as exc:
            await self._close()
            if isinstance(exc, LOST):
                raise ClusterError(f"cannot reach the Dask scheduler at {self.address}: {exc}") from exc
            raise
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self._close()

    async def _close(self) -> None:
        with anyio.CancelScope(shield=True):
            if self._client is not None and not isinstance(self.address, Client):
                await self._client.close()
                self._client = None
            if self._cluster is not None:
                await self._cluster.close()  # type: ignore[misc]
                self._cluster = None

    async def _check_workers(self) -> None:
        """Every worker must run this version of bigupload; set the task slots."""
        versions = await self.client.run(remote.worker_version, on_error="return")
        if not versions:
            raise ClusterError(f"the Dask cluster at {self.address} has no workers")
        mine = remote.worker_version()
        for worker, version in sorted(versions.items()):
            if isinstance(version, BaseException):
                raise ClusterError(f"worker {worker} cannot run bigupload ({version!r}); "
                                   f"install bigupload {mine} on every worker")
            if version != mine:
                raise ClusterError(f"worker {worker} has bigupload {version}, this machine "
                                   f"{mine}: install the same version everywhere")
        nthreads: dict[str, int] = await self.client.nthreads()
        self.workers = len(versions)
        threads = sum(nthreads.values()) or self.workers
        self.slots = threads + self.workers
        self._slots = anyio.Semaphore(self.slots)
        log.info("dask: %d worker(s), up to %d tasks in flight; each worker makes at most "
                 "--concurrency requests at once", self.workers, self.slots)

    async def send_parts(self, task: PartsTask, numbers: Sequence[int],
                         on_part: Callable[[PartRecord], None]) -> bool:
        fp = task.fingerprint
        (where,) = await self._placement([(fp.path, fp.size, fp.mtime_ns)])
        if where is None:
            return False
        per_task = max(1, task.config.concurrency)  # one round of the worker's connections

        async def chunk(numbers: Sequence[int]) -> None:
            for record in await self._run(remote.upload_parts, where, task, list(numbers)):
                on_part(record)

        async with task_group() as tg:
            for i in range(0, len(numbers), per_task):
                await self._slot().acquire()
                tg.start_soon(self._released, chunk(numbers[i:i + per_task]))
        return True

    async def put_files(self, files: Sequence[FileTask]) -> tuple[list[FileOutcome], list[FileTask]]:
        placements = await self._placement([(f.source, f.size, f.mtime_ns) for f in files])
        groups: dict[tuple[str, ...], list[FileTask]] = {}
        local: list[FileTask] = []
        for f, where in zip(files, placements):
            if where is None:
                local.append(f)
            else:
                groups.setdefault(tuple(where), []).append(f)
        outcomes: list[FileOutcome] = []
        for hosts, group in groups.items():
            await self._slot().acquire()
            outcomes += await self._released(self._run(remote.put_files, list(hosts), group))
        return outcomes, local

    def _slot(self) -> anyio.Semaphore:
        if self._slots is None:
            raise RuntimeError("DaskExecutor is not open: use 'async with'")
        return self._slots

    async def _released(self, work: Awaitable[T]) -> T:
        """Await ``work``, then give back the task slot its caller acquired."""
        try:
            return await work
        finally:
            self._slot().release()

    async def _run(self, fn: Callable[..., Any], hosts: list[str], *args: Any) -> Any:
        """Run ``fn(*args)`` as one Dask task (on ``hosts`` if given) and return its result;
        Dask's own failures become ClusterError."""
        future: Future[Any] = self.client.submit(
            fn, *args, key=f"bigupload-{fn.__name__}-{uuid.uuid4().hex}", pure=False,
            workers=hosts or None, allow_other_workers=False)
        try:
            return await future
        except KilledWorker as exc:
            raise ClusterError(f"a task killed every worker it ran on ({exc}); the uploads it "
                               "was part of are aborted", abort=True) from exc
        except LOST as exc:
            raise ClusterError(f"lost the Dask cluster ({type(exc).__name__}: {exc}); the journal "
                               "is kept: run `bigupload resume`") from exc
        finally:
            if not future.done():  # cancelled here: do not leave it running there
                with anyio.CancelScope(shield=True):
                    await self.client.cancel([future])

    async def _placement(self, files: list[tuple[str, int, int]]) -> list[list[str] | None]:
        """For each (path, size, mtime_ns): [] when every worker's host sees it, the hosts
        that see it when only some do, None when none does."""
        try:
            seen: dict[str, Any] = await self.client.run(remote.visible, files, on_error="return")
        except LOST as exc:
            raise ClusterError(f"lost the Dask cluster ({exc}); the journal is kept: run "
                               "`bigupload resume`") from exc
        return placements(seen, len(files))


def placements(answers: dict[str, Any], count: int) -> list[list[str] | None]:
    """From each worker's ``remote.visible`` answer (or the error it raised), where each of
    ``count`` files may go: [] anywhere, a list of hosts, or None when no host sees it. A
    host sees a file if any of its workers does."""
    hosts: dict[str, list[bool]] = {}
    for worker, answer in answers.items():
        if isinstance(answer, BaseException):
            continue  # a worker going away: its host's other workers answer for it
        host = get_address_host(worker)
        seen = hosts.setdefault(host, [False] * count)
        hosts[host] = [a or b for a, b in zip(seen, answer)]
    if not hosts:
        raise ClusterError("the Dask cluster has no workers left")
    result: list[list[str] | None] = []
    for i in range(count):
        seeing = sorted(h for h, answers in hosts.items() if answers[i])
        result.append(None if not seeing else [] if len(seeing) == len(hosts) else seeing)
    return result


def _local_workers(address: str) -> int:
    text = address.partition(":")[2]
    if not text.isdigit() or not 1 <= int(text) <= 256:
        raise ConfigError(f"--dask {address}: expected local:N with N from 1 to 256")
    return int(text)

