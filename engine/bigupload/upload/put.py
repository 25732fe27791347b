"""The driver of the single-request kind (``PutMachine``): one PutObject, held in the
byte budget while it is sent, then verified. No journal row and no destination lock: a
batch of 200,000 small files would otherwise leave as many lock files."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from ..errors import SourceError
from ..values import PartReceipt
from .driver import Driver, Job, Services, put_object
from .machine import Step
from .parts import part_digests
from .put_machine import PutMachine
from .result import UploadResult


class PutDriver(Driver):
    machine: PutMachine

    def __init__(self, job: Job, services: Services) -> None:
        machine = PutMachine(job.bucket, job.key, job.config, job.plan, job.options)
        super().__init__(machine, services)
        self.job = job
        self.source = job.source

    def steps(self) -> Mapping[Step, Callable[[], Awaitable[None]]]:
        return {Step.LOOK: self._look, Step.PUT: self._put, Step.VERIFY: self._verify}

    async def upload(self) -> UploadResult:
        await self.run()
        return self.machine.result(self.job.elapsed())

    async def _look(self) -> None:
        self.machine.looked_at(await self.head())

    async def _put(self) -> None:
        m, source, fingerprint = self.machine, self.source, self.job.fingerprint
        whole = m.whole

        def checksum_unchanged() -> tuple[bytes, str | None]:  # one thread hop: small files
            digests = part_digests(source, whole, m.algorithm, m.options.content_md5)
            if changes := fingerprint.differences(source.fingerprint()):
                raise SourceError(f"{source.path}: changed while being read ({', '.join(changes)})")
            return digests

        async def attempt(n: int) -> PartReceipt:
            if m.reread:
                m.checksummed(*await self.scheduler.in_thread(checksum_unchanged))
            return await put_object(self.store, m, body, m.md5)

        self.progress.start(m.where, whole.length, 0)
        body = source.range(whole)
        budget = self.scheduler.budget_for(max(m.plan.part_size, whole.length))
        await budget.acquire(whole.length)
        try:
            receipt = await self.scheduler.retrying(f"PutObject {m.where}", attempt)
            self.progress.advance(whole.length)
        finally:
            budget.release(whole.length)
            self.progress.close()
        m.sent(receipt, source.stat_changes(fingerprint), source.path)

    async def _verify(self) -> None:
        self.machine.checked(await self.head())


async def put_file(job: Job, services: Services) -> UploadResult:
    """A file that needs no journal (a cluster worker's small file): one PutObject."""
    if job.plan.multipart:
        raise AssertionError(f"a multipart upload to {job.where} needs a journal")
    return await PutDriver(job, services).upload()
