"""``Transfer``: upload one file (or one stream) to one key, the entry the ``Uploader``
and batch jobs use. It plans the file, picks the kind of upload
(``upload.machine.choose_kind``) and runs that kind's driver: the upload itself is
``upload``'s, as state machines (pure) and drivers (I/O); see ``upload/__init__.py`` for
the map. A stream is a kind by its source (``Kind.STREAM``, ``upload.stream``): it has
no file to plan or journal to consult, so nothing else is chosen for it.

With an ``executor`` (a Dask cluster, ``remote.py``) a multipart upload's parts are sent
by cluster workers; this process still owns the journal and alone creates, completes and
aborts. Concurrency comes from the scheduler: nothing here starts tasks.

A server-side copy (``s3://a/k`` to ``s3://b/k``) is ``Copy``: its own kinds and drivers
(``upload/copy_machine.py``, ``upload/copy.py``), registered in ``COPY_DRIVERS``.

The names other modules imported from here before ``upload`` existed are re-exported."""

from __future__ import annotations

from collections.abc import Callable

from .client import ObjectStore
from .config import UploadConfig
from .journal import Journal
from .progress import NullProgress, Progress
from .remote import Executor
from .scheduler import Scheduler
from .source import SourceFile
from .stream import StreamSource
from .upload.copy import COPY_DRIVERS, Copy
from .upload.driver import Driver, Job, Services, plan_job
from .upload.machine import Kind, Phase, choose_kind, default_checksum_type
from .upload.multipart import MultipartDriver
from .upload.parts import PartSender, part_checksum
from .upload.put import PutDriver
from .upload.result import UploadResult
from .upload.stream import StreamDriver, plan_stream_job
from .values import sse_c_key_hash

__all__ = [
    "COPY_DRIVERS", "Copy", "DRIVERS", "PartSender", "Phase", "Transfer", "UploadResult",
    "default_checksum_type", "part_checksum", "sse_c_key_hash",
]

# one driver per kind of file upload; a stream's (Kind.STREAM) is StreamDriver
DRIVERS: dict[Kind, Callable[[Job, Services], Driver]] = {
    Kind.PUT: PutDriver, Kind.MULTIPART: MultipartDriver,
}


class Transfer:
    """Uploads one file (or stream) to one key. ``journal`` may be None only where no
    multipart upload can happen (a cluster worker's small files). ``from_journal`` marks a
    run of ``bigupload resume``: an old intent, which may finish the journalled upload but
    never starts a new one. ``restart`` aborts the journalled upload and starts over;
    ``adopt_upload_id`` takes up an existing multipart upload; neither applies to a
    stream, whose ``expected_size`` (if known) sizes its parts."""

    def __init__(
        self,
        source: SourceFile | StreamSource,
        bucket: str,
        key: str,
        *,
        config: UploadConfig,
        store: ObjectStore,
        journal: Journal | None,
        scheduler: Scheduler,
        progress: Progress | None = None,
        restart: bool = False,
        adopt_upload_id: str | None = None,
        executor: Executor | None = None,
        from_journal: bool = False,
        expected_size: int | None = None,
    ) -> None:
        self.source = source
        self.expected_size = expected_size
        self.bucket = bucket
        self.key = key
        self.config = config
        self.restart = restart
        self.adopt_upload_id = adopt_upload_id
        self.from_journal = from_journal
        self.services = Services(store, scheduler, journal, progress or NullProgress(), executor)
        self.driver: Driver | None = None

    @property
    def phase(self) -> Phase | None:
        """Where the upload is (None before it is planned)."""
        return self.driver.machine.phase if self.driver is not None else None

    async def run(self) -> UploadResult:
        if isinstance(self.source, StreamSource):
            stream = plan_stream_job(self.source, self.bucket, self.key, self.config,
                                     self.expected_size)
            self.driver = StreamDriver(stream, self.services)
            return await self.driver.upload()
        job = await plan_job(self.source, self.bucket, self.key, self.config,
                             self.services.scheduler, restart=self.restart,
                             adopt_upload_id=self.adopt_upload_id, from_journal=self.from_journal)
        self.driver = DRIVERS[self._kind(job)](job, self.services)
        return await self.driver.upload()

    def _kind(self, job: Job) -> Kind:
        journal, store = self.services.journal, self.services.store
        # the journal first: an unfinished multipart upload of this file is resumed even
        # when today's settings would send the file in one request
        journalled = journal is not None and journal.find_active(
            job.fingerprint.path, store.endpoint, job.bucket, job.key) is not None
        return choose_kind(job.plan, journalled=journalled,
                           adopting=job.adopt_upload_id is not None)
