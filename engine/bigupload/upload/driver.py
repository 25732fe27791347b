"""What every driver shares: the job (what was asked, planned), the services it runs on
(store, scheduler, journal, executor, progress), and the loop that asks the machine for
its next step and executes it.

A driver is the only place an upload does I/O. Each kind's driver maps the machine's
steps to methods that make one round of requests and feed the answers back; when a
transition says ``Close``, ``close`` is its caller's to execute (the multipart driver
aborts and journals), and a transition that raises has said the upload stays as it is."""

from __future__ import annotations

import dataclasses
import logging
import mimetypes
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from ..client import ObjectStore
from ..config import UploadConfig
from ..errors import StoreError
from ..plan import plan
from ..progress import NullProgress, Progress
from ..scheduler import Scheduler
from ..source import SourceFile
from ..values import Fingerprint, ObjectInfo, ObjectOptions, PartReceipt, Plan, Precondition
from .machine import Step, UploadMachine
from .result import UploadResult

if TYPE_CHECKING:
    from ..journal import Journal
    from ..remote import Executor

log = logging.getLogger("bigupload")


@dataclasses.dataclass(frozen=True)
class Job:
    """One upload as asked and planned. ``from_journal``: a run of ``bigupload resume``,
    an old intent, which may finish the journalled upload but never starts a new one."""

    source: SourceFile
    bucket: str
    key: str
    config: UploadConfig
    fingerprint: Fingerprint
    plan: Plan
    options: ObjectOptions
    restart: bool = False
    adopt_upload_id: str | None = None
    from_journal: bool = False
    started: float = 0.0  # time.monotonic() when the upload began

    @property
    def where(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def elapsed(self) -> float:
        return time.monotonic() - self.started


@dataclasses.dataclass(frozen=True)
class Services:
    """What a driver runs on. ``journal`` may be None only where no multipart upload can
    happen (a cluster worker's small files)."""

    store: ObjectStore
    scheduler: Scheduler
    journal: Journal | None = None
    progress: Progress = dataclasses.field(default_factory=NullProgress)
    executor: Executor | None = None


async def plan_job(source: SourceFile, bucket: str, key: str, config: UploadConfig,
                   scheduler: Scheduler, *, restart: bool = False,
                   adopt_upload_id: str | None = None, from_journal: bool = False) -> Job:
    """Fingerprint and plan the file, and make every local check before anything is
    journalled or sent: a refused command leaves no trace."""
    started = time.monotonic()
    fingerprint = await scheduler.in_thread(source.fingerprint)
    the_plan = plan(fingerprint.size, config)
    config.effective_memory_limit(the_plan.part_size)
    content_type = config.content_type or mimetypes.guess_type(source.path)[0]
    options = ObjectOptions.from_config(config, content_type or "application/octet-stream")
    return Job(source, bucket, key, config, fingerprint, the_plan, options, restart=restart,
               adopt_upload_id=adopt_upload_id, from_journal=from_journal, started=started)


class SinglePut(Protocol):
    """A machine that sends its object in one PutObject (a file's, a small file's, a
    stream that ended in its first part): what the request carries, and how a failure
    is read."""

    bucket: str
    key: str
    options: ObjectOptions
    condition: Precondition | None

    def header(self) -> str | None: ...

    def put_failed(self, exc: StoreError) -> BaseException | None: ...


async def put_object(store: ObjectStore, m: SinglePut, body: Any,
                     content_md5: str | None) -> PartReceipt:
    """One PutObject attempt for ``m``; a failure the machine reads otherwise (a 412 under
    --no-overwrite, a BadDigest to read again) is raised as what it says, from the
    store's error."""
    try:
        return await store.put_object(m.bucket, m.key, body, m.header(), m.options,
                                      condition=m.condition, content_md5=content_md5)
    except StoreError as exc:
        if (instead := m.put_failed(exc)) is not None:
            raise instead from exc
        raise


class Driver:
    """Runs one machine to DONE. Subclasses give ``steps`` and ``upload``, and keep their
    own job (a file's ``Job``, a stream's ``StreamJob``)."""

    def __init__(self, machine: UploadMachine, services: Services) -> None:
        self.machine = machine
        self.store = services.store
        self.scheduler = services.scheduler
        self.progress = services.progress

    def steps(self) -> Mapping[Step, Callable[[], Awaitable[None]]]:
        raise NotImplementedError

    async def upload(self) -> UploadResult:
        raise NotImplementedError

    async def run(self) -> None:
        """Ask the machine what to do, do it, until it is DONE."""
        steps = self.steps()
        while (step := self.machine.next_step()) is not Step.DONE:
            await steps[step]()
            self.tell()

    def tell(self) -> None:
        """Log what the transitions said (notices as warnings: they are also in the result)."""
        for message in self.machine.take_messages():
            log.log(logging.WARNING if message.notice else logging.INFO, "%s", message.text)

    async def head(self) -> ObjectInfo | None:
        m = self.machine
        return await self.scheduler.retrying(
            f"HeadObject {m.where}", lambda n: self.store.head(m.bucket, m.key, m.options))
