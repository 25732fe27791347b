"""One object's upload as a small state machine:

    RECONCILE -> CREATE -> PARTS -> COMPLETE -> VERIFY -> DONE      (multipart)
    PUT -> VERIFY -> DONE                                         (single request)
    any phase -> ABORT, only when the upload cannot be resumed

With an ``executor`` (a Dask cluster, ``remote.py``) the parts are uploaded by cluster
workers through the same ``PartSender``; this process still owns the journal and alone
creates, completes and aborts.

An upload id is journalled the moment it exists, with what the destination was when the
upload began (its guard: absent, or the ETag it had). The completion is conditional on
that guard (``If-None-Match: *`` or ``If-Match``), so a journal row resumed days later can
never replace an object written meanwhile: the upload is aborted instead and the row
closed as superseded. Cancellation, a crash or a transient failure leave the upload
resumable; it is aborted only when resuming cannot help (the source or the destination
changed, or the server rejected the completion). Concurrency comes from the scheduler:
this module starts no tasks itself."""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import logging
import mimetypes
import time
from typing import Any

import anyio

from . import checksum as ck
from . import verify
from .client import (
    CompletedPart,
    ObjectInfo,
    ObjectOptions,
    ObjectStore,
    PartListing,
    Precondition,
    RemotePart,
)
from .config import ChecksumAlgorithm, UploadConfig, format_size
from .errors import (
    AuthError,
    ClusterError,
    DestinationChangedError,
    ExistsError,
    IntegrityError,
    NotFoundError,
    ResumeError,
    SourceChangedError,
    SourceError,
    StoreError,
)
from .journal import DestinationGuard, Journal, PartRecord, UploadRecord, UploadState
from .plan import Part, Plan, plan
from .progress import NullProgress, Progress
from .remote import Executor, PartsTask
from .resume import reconcile
from .scheduler import Scheduler
from .source import Fingerprint, SourceFile

log = logging.getLogger("bigupload")
CLOCK_SKEW_S = verify.CLOCK_SKEW_S
CHECK_ROUNDS = 3
LISTING_LAG_S = 1.0
LISTING_TRIES = 3


class Phase(enum.Enum):
    RECONCILE = "reconcile"
    CREATE = "create"
    PARTS = "parts"
    COMPLETE = "complete"
    PUT = "put"
    VERIFY = "verify"
    DONE = "done"
    ABORT = "abort"


@dataclasses.dataclass(frozen=True)
class UploadResult:
    """What an upload did. ``checksum`` is the object's checksum as S3 reports it
    (``b64-N`` for a composite multipart checksum); ``full_object_checksum`` is the CRC
    of the whole file, combined from the part CRCs without re-reading the file.
    ``verified`` says whether the stored bytes were compared with the file (a checksum the
    server computed, or an MD5 ETag); with ``--checksum none`` and ETags that are not MD5s
    only the size was compared."""

    bucket: str
    key: str
    etag: str
    size: int
    part_size: int
    parts: int
    checksum_algorithm: str
    checksum: str | None
    full_object_checksum: str | None
    upload_id: str | None
    resumed_parts: int
    sent_bytes: int
    elapsed_s: float
    verified: bool = True  # False: only the size could be compared (--checksum none, ...)
    checksum_type: str | None = None  # FULL_OBJECT or COMPOSITE (multipart), as uploaded
    notices: tuple[str, ...] = ()  # what differs from what was asked (a resume's settings)


def sse_c_key_hash(key: bytes | None) -> str | None:
    """A salted digest that recognises the same SSE-C key without storing it."""
    if key is None:
        return None
    return hashlib.sha256(b"bigupload sse-c key check\0" + key).hexdigest()[:32]


def part_checksum(source: SourceFile, part: Part, algorithm: ChecksumAlgorithm) -> bytes:
    """The raw checksum of one part's bytes (empty for ``none``). Blocking: run in a thread."""
    hasher = ck.Hasher(algorithm)
    if algorithm is not ChecksumAlgorithm.NONE:
        source.scan(part, hasher.update)
    return hasher.digest()


class PartSender:
    """Checksums and uploads parts of one file to one multipart upload, with retries.
    The same code runs here and, for a cluster, on the workers (``remote.upload_parts``)."""

    def __init__(self, source: SourceFile, bucket: str, key: str, upload_id: str, *,
                 algorithm: ChecksumAlgorithm, options: ObjectOptions, store: ObjectStore,
                 scheduler: Scheduler) -> None:
        self.source = source
        self.bucket = bucket
        self.key = key
        self.upload_id = upload_id
        self.algorithm = algorithm
        self.options = options
        self.store = store
        self.scheduler = scheduler

    async def send(self, part: Part) -> PartRecord:
        """Upload one part; its record once acknowledged. The body is a ``FileRange``: the
        HTTP layer sends it from the file, so if the file changes between the checksum and
        the send, the server's checksum check fails the part (BadDigest) and the retry
        checksums it again."""
        raw = b""
        body = self.source.range(part)
        reread = True  # checksum on the first attempt, and again after a digest mismatch
        where = f"s3://{self.bucket}/{self.key}"

        async def attempt(n: int) -> PartRecord:
            nonlocal raw, reread
            if reread:  # a store that checksums in the pass that sends is given none
                raw = b"" if self.store.checksums_while_sending(self.algorithm) else \
                    await self.scheduler.in_thread(part_checksum, self.source, part, self.algorithm)
                reread = False
            header = ck.encode(raw) if raw else None
            try:
                receipt = await self.store.upload_part(
                    self.bucket, self.key, self.upload_id, part.number, body, header, self.options
                )
            except IntegrityError:
                reread = True  # the bytes may have been corrupted on our side
                raise
            raw = raw or receipt.sent or b""
            expected = ck.encode(raw)
            if receipt.checksum is not None and expected and receipt.checksum != expected:
                reread = True
                raise IntegrityError(
                    f"UploadPart {where} part {part.number}: server checksum "
                    f"{receipt.checksum} != ours {expected}",
                    operation="UploadPart", bucket=self.bucket, key=self.key,
                    upload_id=self.upload_id, part_number=part.number, retryable=True,
                )
            return PartRecord(part.number, part.length, receipt.etag, expected)

        return await self.scheduler.retrying(f"UploadPart {where} part {part.number}", attempt)


class Transfer:
    """Uploads one file to one key. Only the scheduler runs its part jobs concurrently;
    all state changes happen on the event loop, so no locks are needed. ``journal`` may be
    None only where no multipart upload can happen (a cluster worker's small files).
    ``from_journal`` marks a run of ``bigupload resume``: an old intent, which may finish
    the journalled upload but never starts a new one."""

    def __init__(
        self,
        source: SourceFile,
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
    ) -> None:
        self.source = source
        self.bucket = bucket
        self.key = key
        self.config = config
        self.store = store
        self._journal = journal
        self.scheduler = scheduler
        self.executor = executor
        self.progress = progress or NullProgress()
        self.restart = restart
        self.adopt_upload_id = adopt_upload_id
        self.from_journal = from_journal
        self.phase = Phase.RECONCILE
        self.algorithm = config.checksum
        self.checksum_type = default_checksum_type(config)
        self.sent_bytes = 0
        self.resumed_parts = 0
        self.upload_id: str | None = None
        self.guard = DestinationGuard.unknown()
        self.notices: list[str] = []
        self.verified = True
        self._row = 0
        self._resumed_row = False
        self._created_at = 0.0  # when the journal row began (epoch seconds)
        self._last_write = 0.0  # when a resumed upload's journal row last changed
        self._parts: dict[int, PartRecord] = {}
        content_type = config.content_type or mimetypes.guess_type(source.path)[0]
        self.options = ObjectOptions.from_config(config, content_type or "application/octet-stream")
        self.options = dataclasses.replace(self.options, checksum_type=self.checksum_type)

    @property
    def journal(self) -> Journal:
        if self._journal is None:
            raise AssertionError(f"a multipart upload to {self._where} needs a journal")
        return self._journal

    @property
    def _where(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    async def run(self) -> UploadResult:
        started = time.monotonic()
        fingerprint = await self.scheduler.in_thread(self.source.fingerprint)
        the_plan = plan(fingerprint.size, self.config)
        # every local check before anything is journalled or sent: a refused command
        # leaves no trace
        self.config.effective_memory_limit(the_plan.part_size)
        # the journal first: an unfinished multipart upload of this file is resumed even
        # when today's settings would send the file in one request
        journalled = self._journal is not None and self.journal.find_active(
            fingerprint.path, self.store.endpoint, self.bucket, self.key) is not None
        if not the_plan.multipart and not journalled and self.adopt_upload_id is None:
            # one request and no state on the server: no destination lock needed (a batch
            # of 200,000 small files would otherwise leave as many lock files)
            self.phase = Phase.PUT
            info = await self._put_single(fingerprint, the_plan)
        else:
            with self.journal.claim(self.store.endpoint, self.bucket, self.key):
                the_plan = await self._prepare(fingerprint, the_plan)
                info = await self._multipart(fingerprint, the_plan)
        self.phase = Phase.DONE
        return self._result(the_plan, info, time.monotonic() - started)

    def _notice(self, text: str) -> None:
        """Something the user asked for that this run does differently: one log line, and
        a line in the result (``--json``)."""
        log.warning("%s", text)
        self.notices.append(text)

    # single request

    async def _put_single(self, fingerprint: Fingerprint, the_plan: Plan) -> ObjectInfo:
        whole = the_plan.part(1)
        condition = await self._overwrite_check()

        def checksum_unchanged() -> bytes:  # one thread hop: small files are mostly overhead
            raw = part_checksum(self.source, whole, self.algorithm)
            if changes := fingerprint.differences(self.source.fingerprint()):
                raise SourceError(f"{self.source.path}: changed while being read ({', '.join(changes)})")
            return raw

        raw = b""
        reread = True  # a BadDigest means the bytes changed: checksum them again

        async def attempt(n: int) -> Any:
            nonlocal raw, reread
            if reread:
                raw = await self.scheduler.in_thread(checksum_unchanged)
                reread = False
            try:
                return await self.store.put_object(self.bucket, self.key, body, self._header(raw),
                                                   self.options, condition=condition)
            except IntegrityError:
                reread = True
                raise
            except StoreError as exc:
                if condition is not None and exc.precondition_failed:
                    raise ExistsError(f"{self._where} exists, not overwritten (--no-overwrite)") from exc
                raise

        self.progress.start(self._where, whole.length, 0)
        body = self.source.range(whole)
        budget = self.scheduler.budget_for(max(the_plan.part_size, whole.length))
        await budget.acquire(whole.length)
        try:
            receipt = await self.scheduler.retrying(f"PutObject {self._where}", attempt)
            self.sent_bytes = whole.length
            self.progress.advance(whole.length)
        finally:
            budget.release(whole.length)
            self.progress.close()
        self._parts = {1: PartRecord(1, whole.length, receipt.etag, ck.encode(raw))}
        # the server checked the bytes against our checksum; what is left to catch is a
        # file rewritten while it was sent (without a checksum, nothing else would)
        if changes := self.source.stat_changes(fingerprint):
            raise SourceError(
                f"{self.source.path} changed while it was being uploaded ({', '.join(changes)}); "
                f"the object at {self._where} may not match the file: run the command again")
        self.phase = Phase.VERIFY
        expected = ck.encode(raw) or None
        if expected is not None and receipt.checksum == expected:
            # the server computed this checksum over the bytes it stored (S3, SeaweedFS echo
            # it): as strong as a HEAD, one round trip less per file
            return ObjectInfo(whole.length, receipt.etag, receipt.checksum, "FULL_OBJECT")
        return await self._verify(verify.Expected(
            size=whole.length, algorithm=self._algorithm_name(),
            checksums=frozenset({expected} if expected else ())))

    def _header(self, raw: bytes) -> str | None:
        return ck.encode(raw) if self.algorithm is not ChecksumAlgorithm.NONE else None

    def _algorithm_name(self) -> str | None:
        return None if self.algorithm is ChecksumAlgorithm.NONE else self.algorithm.s3_name

    async def _overwrite_check(self) -> Precondition | None:
        """With --no-overwrite: refuse at once if the key exists (a HEAD, so a large file
        is not sent only to be refused), and make the write itself conditional."""
        if not self.config.no_overwrite:
            return None
        if await self._head() is not None:
            raise ExistsError(f"{self._where} exists, not overwritten (--no-overwrite)")
        return Precondition(if_none_match=True)

    async def _head(self) -> ObjectInfo | None:
        return await self.scheduler.retrying(
            f"HeadObject {self._where}", lambda n: self.store.head(self.bucket, self.key, self.options))

    # multipart

    async def _prepare(self, fingerprint: Fingerprint, the_plan: Plan) -> Plan:
        """Find or create the journal row; returns the plan to follow (the journal's on resume)."""
        record = self.journal.find_active(fingerprint.path, self.store.endpoint, self.bucket, self.key)
        if record is not None and (self.restart or (
                self.adopt_upload_id and record.upload_id != self.adopt_upload_id)):
            await self._abandon(record, "restarted" if self.restart else
                                f"replaced by upload {self.adopt_upload_id} (--upload-id)")
            record = None
        if record is not None:
            return self._resume_row(record, fingerprint, the_plan)
        if self.from_journal:
            raise ResumeError(f"no unfinished upload of {fingerprint.path} to {self._where} "
                              "in the journal")
        # what the destination is now: the completion will be conditional on it
        existing = await self._head()
        if existing is not None and self.config.no_overwrite:
            raise ExistsError(f"{self._where} exists, not overwritten (--no-overwrite)")
        guard = DestinationGuard.absent() if existing is None else DestinationGuard.present(existing.etag)
        if self.adopt_upload_id:
            await self._adopt_settings(self.adopt_upload_id)
        self.guard = guard
        self._row = self.journal.start_upload(
            fingerprint, self.store.endpoint, self.bucket, self.key, the_plan.part_size,
            the_plan.part_count, self.algorithm.value, sse_c_key_hash(self.config.sse_c_key),
            checksum_type=self.checksum_type or "COMPOSITE", guard=guard,
        )
        self._created_at = time.time()
        if self.adopt_upload_id:
            self.upload_id = self.adopt_upload_id
            self.journal.set_upload_id(self._row, self.adopt_upload_id)
        return Plan(size=fingerprint.size, part_size=the_plan.part_size, multipart=True)

    def _resume_row(self, record: UploadRecord, fingerprint: Fingerprint, the_plan: Plan) -> Plan:
        """Take up a journalled upload: same file, same SSE-C key, the journal's settings."""
        if changes := record.fingerprint.differences(fingerprint):
            raise SourceChangedError(
                f"{fingerprint.path} changed since its upload to {self._where} began "
                f"({', '.join(changes)}); nothing was sent. Run again with --restart to "
                "abort the old upload and start over"
            )
        if record.sse_c_key_hash != sse_c_key_hash(self.config.sse_c_key):
            raise ResumeError(
                f"the unfinished upload to {self._where} was started with a different "
                "SSE-C key (or none); use the same key, or --restart"
            )
        self._row = record.id
        self._resumed_row = True
        self._created_at = record.created_at
        self._last_write = record.updated_at
        self.upload_id = record.upload_id
        self.guard = record.guard
        algorithm = ChecksumAlgorithm(record.checksum_algorithm)
        if algorithm is not self.config.checksum and not self.from_journal:
            self._notice(f"resuming {self._where} with checksum {algorithm.value}, not "
                         f"{self.config.checksum.value}: the upload began with it (--restart to change)")
        if record.part_size != the_plan.part_size and not self.from_journal:
            text = (f"resuming {self._where} with the journal's part size "
                    f"{format_size(record.part_size)}, not {format_size(the_plan.part_size)}")
            if self.config.part_size is not None:
                self._notice(text + " (--restart to change)")
            else:
                log.info("%s", text)
        self.algorithm = algorithm
        self.checksum_type = None if algorithm is ChecksumAlgorithm.NONE else record.checksum_type
        self.options = dataclasses.replace(self.options, checksum=algorithm,
                                           checksum_type=self.checksum_type)
        self.config.effective_memory_limit(record.part_size)
        return Plan(size=fingerprint.size, part_size=record.part_size, multipart=True)

    async def _adopt_settings(self, upload_id: str) -> None:
        """An upload made elsewhere (``--upload-id``) keeps the checksum algorithm and type
        it was created with: ListParts (or the listed parts) say which."""
        listing = await self._list(upload_id)
        name = listing.checksum_algorithm
        if name is None:
            return
        try:
            algorithm = ChecksumAlgorithm(name.lower())
        except ValueError:
            raise ResumeError(f"upload {upload_id} uses the checksum algorithm {name}, which "
                              "bigupload cannot compute") from None
        if algorithm is not self.algorithm:
            self._notice(f"upload {upload_id} was created with checksum {algorithm.value}: "
                         f"using it instead of {self.algorithm.value}")
        self.algorithm = algorithm
        self.checksum_type = listing.checksum_type or (
            "FULL_OBJECT" if algorithm is ChecksumAlgorithm.CRC64NVME else "COMPOSITE")
        self.options = dataclasses.replace(self.options, checksum=algorithm,
                                           checksum_type=self.checksum_type)

    async def _abandon(self, record: UploadRecord, reason: str) -> None:
        """Leave a journalled upload for a new one: abort it on the server too, or it would
        stay there, billed, with no row left to resume it."""
        if record.upload_id:
            await self._abort_upload(record.upload_id)
            log.info("aborted the previous upload %s", record.upload_id)
        else:
            await self._sweep_created(record, keep=None, adopt=False)
        self.journal.finish(record.id, UploadState.SUPERSEDED, error=reason)

    async def _create(self) -> str:
        """CreateMultipartUpload, journalled at once. A retried call may have created
        uploads whose answers were lost: those are found and aborted. An attempt that
        certainly created nothing (refused by the server, or no connection) closes the
        journal row as failed, so nothing is left to resume or sweep."""
        attempts = 0
        maybe_created = False

        async def attempt(n: int) -> str:
            nonlocal attempts, maybe_created
            attempts = n
            self.journal.touch(self._row)  # widens the window _sweep_created searches
            try:
                return await self.store.create_multipart(self.bucket, self.key, self.options)
            except StoreError as exc:
                maybe_created = maybe_created or _may_have_created(exc)
                raise

        try:
            upload_id = await self.scheduler.retrying(f"CreateMultipartUpload {self._where}", attempt)
        except StoreError as exc:
            if self.checksum_type == "FULL_OBJECT" and exc.unsupported_option:
                log.warning("%s refused ChecksumType=FULL_OBJECT (%s): using COMPOSITE checksums",
                            self.store.endpoint, exc.code)
                self.checksum_type = "COMPOSITE"
                self.options = dataclasses.replace(self.options, checksum_type="COMPOSITE")
                self.journal.set_checksum_type(self._row, "COMPOSITE")
                return await self._create()
            if not maybe_created:
                self.journal.finish(self._row, UploadState.FAILED, error=str(exc))
            raise
        self.journal.set_upload_id(self._row, upload_id)
        if attempts > 1:
            await self._sweep_created(self.journal.get(self._row), keep=upload_id, adopt=False)
        return upload_id

    async def _sweep_created(self, record: UploadRecord, *, keep: str | None, adopt: bool) -> str | None:
        """Deal with uploads that our own CreateMultipartUpload calls made but whose answer
        we never saw (a lost response that was retried, or a run killed mid-call); left
        alone they would be billed forever. They are the uploads to this exact key that the
        server initiated between the journal row's creation and its last Create attempt
        (within ``CLOCK_SKEW_S``) and that no journal row knows; the destination lock keeps
        other bigupload processes out of that window. With ``adopt`` the newest is returned
        to be resumed (its parts are verified like any listed part); every other one,
        except ``keep``, is aborted."""
        try:
            uploads = await self.scheduler.retrying(
                f"ListMultipartUploads {self._where}",
                lambda n: self.store.list_uploads(self.bucket, self.key),
            )
        except StoreError as exc:
            if exc.retryable:
                raise  # the server cannot be reached: that is the error to report
            log.warning("cannot list multipart uploads to look for one a lost "
                        "CreateMultipartUpload answer may have left (%s); check with: "
                        "bigupload ls-uploads s3://%s/%s", exc.code or exc, self.bucket, self.key)
            return None
        known = self.journal.known_upload_ids(self.store.endpoint, self.bucket, self.key)
        low, high = record.created_at - CLOCK_SKEW_S, record.updated_at + CLOCK_SKEW_S
        ours = sorted(
            (u for u in uploads if u.key == self.key and u.upload_id != keep
             and u.upload_id not in known
             and u.initiated is not None and low <= u.initiated.timestamp() <= high),
            key=lambda u: (u.initiated, u.upload_id),
        )
        adopted = ours.pop().upload_id if adopt and ours else None
        if adopted:
            log.info("adopting upload %s, created by a run that stopped before journalling it", adopted)
        for upload in ours:
            await self._abort_upload(upload.upload_id)
            log.info("aborted upload %s, left by a CreateMultipartUpload whose answer was lost",
                     upload.upload_id)
        return adopted

    async def _multipart(self, fingerprint: Fingerprint, the_plan: Plan) -> ObjectInfo:
        if self.upload_id is None and self._resumed_row:  # killed during Create, or before it
            self.upload_id = await self._sweep_created(self.journal.get(self._row), keep=None,
                                                       adopt=True)
            if self.upload_id is not None:
                self.journal.set_upload_id(self._row, self.upload_id)
        to_send = await self._reconcile(the_plan)
        if to_send is None:  # the previous run completed it
            return await self._verify_completed(the_plan)
        if self.upload_id is None:
            self.phase = Phase.CREATE
            self.upload_id = await self._create()
        self.phase = Phase.PARTS
        done_bytes = sum(p.size for p in self._parts.values())
        self.progress.start(self._where, the_plan.size, done_bytes)
        try:
            await self._send_parts(the_plan, fingerprint, to_send)
            await self._check_listed(the_plan, fingerprint)
        except ClusterError as exc:
            if exc.abort:  # running it again cannot help: leave nothing billed
                await self._abort(f"the cluster could not run it: {exc}")
                await self._check_aborted()
            raise
        except NotFoundError as exc:
            if exc.upload_gone:
                # aborted behind our back (a lifecycle rule, another tool); abort anyway in
                # case the answer was wrong, so nothing is left billed
                await self._abort(str(exc))
                raise NotFoundError(
                    f"{exc}; the journal entry was closed, run again to start a new upload",
                    operation=exc.operation, bucket=self.bucket, key=self.key,
                    upload_id=self.upload_id, code=exc.code,
                ) from exc
            raise
        finally:
            self.progress.close()
        after = await self.scheduler.in_thread(self.source.fingerprint)
        if changes := fingerprint.differences(after):
            await self._abort(f"source changed during the upload ({', '.join(changes)})")
            raise SourceError(
                f"{self.source.path} changed during the upload ({', '.join(changes)}); "
                "the upload was aborted and no object was written"
            )
        return await self._complete(the_plan)

    async def _reconcile(self, the_plan: Plan) -> list[int] | None:
        """Parts still to send; None if the upload turns out to be completed already."""
        self.phase = Phase.RECONCILE
        journalled = self.journal.parts(self._row)
        if self.upload_id is None:
            self._parts = {}
            return list(range(1, the_plan.part_count + 1))
        # parts answered just before a crash may not be listed yet: wait out the lag
        await anyio.sleep(max(0.0, self._last_write + LISTING_LAG_S - time.time()))
        try:
            listed = await self._list_parts(journalled)
        except NotFoundError as exc:
            if not exc.upload_gone or self.adopt_upload_id:
                raise
            self._parts = journalled
            if len(journalled) == the_plan.part_count:
                return None  # maybe completed by a run that died before journalling it
            return await self._upload_gone(the_plan)
        send = await self._settle(the_plan, journalled, listed)
        self.resumed_parts = len(self._parts)
        if self._parts:
            log.info("resuming %s: %d of %d parts already on the server", self._where,
                     len(self._parts), the_plan.part_count)
        return send

    async def _upload_gone(self, the_plan: Plan) -> list[int]:
        """The server no longer has the journalled upload (a lifecycle rule, another tool's
        abort). Its row is closed with that reason. ``bigupload resume`` (an old intent)
        stops there; the user's own ``cp`` starts a new upload, guarded by what the
        destination is now."""
        reason = f"the server no longer has upload {self.upload_id} (NoSuchUpload)"
        self.journal.finish(self._row, UploadState.ABORTED, error=reason)
        if self.from_journal:
            raise ResumeError(f"{self._where}: {reason}; the journal entry was closed. Run the "
                              "original bigupload cp again to start a new upload")
        log.warning("%s: %s; starting a new one", self._where, reason)
        record = self.journal.get(self._row)
        existing = await self._head()
        self.guard = DestinationGuard.absent() if existing is None else DestinationGuard.present(existing.etag)
        self._row = self.journal.start_upload(
            record.fingerprint, record.endpoint, self.bucket, self.key, record.part_size,
            record.part_count, record.checksum_algorithm, record.sse_c_key_hash,
            checksum_type=record.checksum_type, guard=self.guard,
        )
        self._created_at = time.time()
        self.upload_id = None
        self._parts = {}
        return list(range(1, the_plan.part_count + 1))

    async def _list(self, upload_id: str) -> PartListing:
        return await self.scheduler.retrying(
            f"ListParts {self._where}",
            lambda n: self.store.list_parts(self.bucket, self.key, upload_id, self.options))

    async def _list_parts(self, journalled: dict[int, PartRecord]) -> list[RemotePart]:
        """ListParts, all pages. Some servers list a part a moment after acknowledging it
        (SeaweedFS: up to about a second, measured): while journalled parts are missing
        from the listing, list again after ``LISTING_LAG_S``, a few times, before
        believing they are gone. S3 itself is strongly consistent and never waits here."""
        assert self.upload_id is not None
        for attempt in range(LISTING_TRIES):
            listed = (await self._list(self.upload_id)).parts
            missing = set(journalled) - {p.number for p in listed}
            if not missing or attempt == LISTING_TRIES - 1:
                return listed
            log.debug("%d journalled part(s) not listed yet; listing again", len(missing))
            await anyio.sleep(LISTING_LAG_S)
        raise AssertionError("unreachable")

    async def _settle(self, the_plan: Plan, journalled: dict[int, PartRecord],
                      listed: list[RemotePart]) -> list[int]:
        """Make ``self._parts`` what the server holds and the file confirms; returns the
        part numbers to send (again)."""
        result = reconcile(the_plan, journalled, listed)
        for number in result.stale:
            self.journal.drop_part(self._row, number)
        self._parts = dict(result.keep)
        send = list(result.send)
        for number, candidates in sorted(result.verify.items()):
            record = await self._verify_listed_part(the_plan.part(number), candidates)
            if record is None:
                send.append(number)
            else:
                self._parts[number] = record
                self.journal.record_part(self._row, record)
        return sorted(send)

    async def _check_listed(self, the_plan: Plan, fingerprint: Fingerprint) -> None:
        """Before completing, compare what the server lists with what we journalled: a
        response with a wrong ETag, or a stray upload of a part number, is caught here and
        the part verified or sent again, instead of completing a wrong object. One ListParts
        page per 1,000 parts; after the last round of re-sending, one more listing decides."""
        assert self.upload_id is not None
        upload_id = self.upload_id
        for round_ in range(CHECK_ROUNDS + 1):
            listed = await self._list_parts(self._parts)
            send = await self._settle(the_plan, dict(self._parts), listed)
            if not send:
                return
            if round_ == CHECK_ROUNDS:
                break
            log.warning("%s: %d part(s) on the server differ from what was sent; sending them "
                        "again", self._where, len(send))
            await self._send_parts(the_plan, fingerprint, send)
        raise IntegrityError(
            f"{self._where}: the server's parts still differ from the file after "
            f"{CHECK_ROUNDS} rounds of re-sending; the upload is kept for inspection "
            f"(bigupload parts s3://{self.bucket}/{self.key} --upload-id {upload_id})",
            operation="ListParts", bucket=self.bucket, key=self.key, upload_id=upload_id,
        )

    async def _verify_listed_part(self, part: Part, candidates: list[RemotePart]) -> PartRecord | None:
        """The listed candidate for ``part`` whose checksum (where the server lists one) or
        MD5 ETag matches the local bytes; None when none does."""
        def digest() -> tuple[bytes, str]:
            hasher, md5 = ck.Hasher(self.algorithm), hashlib.md5()

            def consume(chunk: memoryview) -> None:
                hasher.update(chunk)
                md5.update(chunk)

            self.source.scan(part, consume)
            return hasher.digest(), f'"{md5.hexdigest()}"'

        raw, etag = await self.scheduler.in_thread(digest)
        checksum = ck.encode(raw)
        for remote in reversed(candidates):  # the newest upload of a number is listed last
            if remote.checksum is not None:
                ok = remote.checksum == checksum
            else:  # SSE-KMS/SSE-C ETags are not MD5s: such parts fail this check and are re-sent
                ok = remote.etag.lower() == etag
            if ok:
                return PartRecord(part.number, part.length, remote.etag, checksum)
        log.info("part %d on the server differs from the file; sending it again", part.number)
        return None

    async def _send_parts(self, the_plan: Plan, fingerprint: Fingerprint, numbers: list[int]) -> None:
        """Send these parts, here or on the cluster; each is journalled as it is acknowledged."""
        if self.executor is not None:
            assert self.upload_id is not None
            task = PartsTask(
                fingerprint=fingerprint, bucket=self.bucket, key=self.key, upload_id=self.upload_id,
                part_size=the_plan.part_size, algorithm=self.algorithm, options=self.options,
                config=self.config,
            )
            if await self.executor.send_parts(task, numbers, self._part_sent):
                return
            log.info("no cluster worker can read %s: sending it from here", self.source.path)
        await self.scheduler.run_parts([the_plan.part(n) for n in numbers], the_plan.part_size,
                                       self._send_part)

    async def _send_part(self, part: Part) -> None:
        assert self.upload_id is not None
        sender = PartSender(self.source, self.bucket, self.key, self.upload_id,
                            algorithm=self.algorithm, options=self.options, store=self.store,
                            scheduler=self.scheduler)
        self._part_sent(await sender.send(part))

    def _part_sent(self, record: PartRecord) -> None:
        """Journal a part the server acknowledged (here or on a cluster worker)."""
        self.journal.record_part(self._row, record)
        self._parts[record.number] = record
        self.sent_bytes += record.size
        self.progress.advance(record.size)

    async def _complete(self, the_plan: Plan) -> ObjectInfo:
        self.phase = Phase.COMPLETE
        assert self.upload_id is not None
        upload_id = self.upload_id
        missing = [n for n in range(1, the_plan.part_count + 1) if n not in self._parts]
        if missing:
            raise AssertionError(f"parts {missing[:5]} missing before completion")
        parts = [CompletedPart(n, self._parts[n].etag, self._parts[n].checksum or None)
                 for n in range(1, the_plan.part_count + 1)]
        full = self._full_object() if self.checksum_type == "FULL_OBJECT" else None
        condition = await self._completion_condition()

        async def attempt(n: int) -> str:
            return await self.store.complete(self.bucket, self.key, upload_id, parts, self.options,
                                             full_checksum=full, size=the_plan.size,
                                             condition=condition)

        try:
            etag = await self.scheduler.retrying(f"CompleteMultipartUpload {self._where}", attempt)
        except NotFoundError as exc:
            if not exc.upload_gone:
                raise
            return await self._verify_completed(the_plan)  # a retried completion that had succeeded
        except StoreError as exc:
            if condition is not None and exc.conditions_unsupported:
                _NO_CONDITIONS.add(self.store.endpoint)
                log.warning("%s does not support conditional writes (%s): comparing the "
                            "destination by HEAD before completing instead (racy)",
                            self.store.endpoint, exc.code)
                return await self._complete(the_plan)
            if condition is not None and exc.precondition_failed:
                return await self._destination_changed(the_plan, str(exc))
            if exc.retryable or exc.fatal_for_job or isinstance(exc, AuthError):
                raise
            await self._abort(f"completion rejected: {exc}")
            raise
        return await self._finish(the_plan, etag)

    async def _completion_condition(self) -> Precondition | None:
        """The precondition that makes completing safe: the key must still be what it was
        when this upload began (absent, or the object with the recorded ETag). Rows from
        before guards were recorded, and servers without conditional writes, are checked
        with a HEAD right before completing instead: racy, but a stale journal row still
        cannot overwrite an object written after the upload began."""
        guard = self.guard
        if guard.existed is None or self.store.endpoint in _NO_CONDITIONS:
            current = await self._head()
            if guard.existed is None:  # legacy row: anything written since the row began wins
                if current is not None and current.last_modified is not None and \
                        current.last_modified.timestamp() > self._created_at + CLOCK_SKEW_S:
                    await self._destination_changed_abort(
                        f"written at {current.last_modified.isoformat()}, after the upload began")
                guard = DestinationGuard.absent() if current is None else DestinationGuard.present(current.etag)
            elif self.store.endpoint in _NO_CONDITIONS:
                now = DestinationGuard.absent() if current is None else DestinationGuard.present(current.etag)
                if now != guard:
                    await self._destination_changed_abort(_describe_change(guard, now))
                return None
        if self.config.no_overwrite or not guard.existed:
            return Precondition(if_none_match=True)
        return Precondition(if_match=guard.etag)

    async def _destination_changed(self, the_plan: Plan, detail: str) -> ObjectInfo:
        """412 at completion. A retried completion whose first answer was lost also gets
        412 (the object it made now exists): if the object is ours, the upload is done."""
        current = await self._head()
        verdict = self._judge(the_plan, current) if current is not None else None
        if verdict is not None and verdict.ours and verdict.content_checked:
            return await self._finish(the_plan, "")
        await self._destination_changed_abort(detail)
        raise AssertionError("unreachable")

    async def _destination_changed_abort(self, detail: str) -> None:
        """Someone wrote the key after this upload began: abort, close the row, say so."""
        reason = f"{self._where} changed since this upload began ({detail})"
        if self.upload_id is not None:
            await self._abort_upload(self.upload_id)
        self.journal.finish(self._row, UploadState.SUPERSEDED, error=reason)
        if self.config.no_overwrite:
            raise ExistsError(f"{self._where} exists, not overwritten (--no-overwrite); the "
                              "upload was aborted")
        raise DestinationChangedError(f"{reason}; nothing written; --restart to upload again")

    async def _finish(self, the_plan: Plan, etag: str) -> ObjectInfo:
        info = await self._verify(self._expected(the_plan))
        self.journal.finish(self._row, UploadState.COMPLETED, etag=info.etag)
        return info

    async def _verify_completed(self, the_plan: Plan) -> ObjectInfo:
        """The upload id is gone but every part was journalled: accept the object only if
        it is ours, on everything that can be compared (checksum, MD5 ETag, size, time)."""
        info = await self._head()
        verdict = self._judge(the_plan, info) if info is not None else None
        if info is None or verdict is None or not verdict.ours:
            why = "; ".join(verdict.problems) if verdict else "no object there"
            self.journal.finish(self._row, UploadState.ABORTED, error=f"upload vanished ({why})")
            raise ResumeError(
                f"upload {self.upload_id} to {self._where} no longer exists and the object there is "
                f"not this file ({why}); run the command again to start a new upload"
            )
        log.info("%s was already completed by an earlier run", self._where)
        self.resumed_parts = the_plan.part_count
        self.verified = verdict.content_checked
        self.journal.finish(self._row, UploadState.COMPLETED, etag=info.etag)
        return info

    def _expected(self, the_plan: Plan, *, ownership: bool = False) -> verify.Expected:
        """What our object must look like. ``ownership`` (an object we did not see being
        completed: is it ours?) adds its MD5 ETag and its age; after our own completion the
        server already matched every part's ETag, and some servers' multipart ETags are
        not MD5s of part MD5s, so there the checksum and the size decide."""
        checksums = {c for c in (self._expected_composite(), self._full_object()) if c}
        md5_etags = self.options.sse != "aws:kms" and self.options.sse_c_key is None
        etag = None
        if ownership and md5_etags and len(self._parts) == the_plan.part_count:
            etag = verify.multipart_etag([self._parts[n].etag for n in sorted(self._parts)])
        return verify.Expected(
            size=the_plan.size, algorithm=self._algorithm_name(), checksums=frozenset(checksums),
            etag=etag, not_before=(self._created_at or None) if ownership else None,
        )

    def _judge(self, the_plan: Plan, info: ObjectInfo) -> verify.Verdict:
        return verify.judge(info, self._expected(the_plan, ownership=True))

    def _expected_composite(self) -> str | None:
        if self.algorithm is ChecksumAlgorithm.NONE:
            return None
        raws = [ck.decode(self._parts[n].checksum) for n in sorted(self._parts)]
        return ck.composite(self.algorithm, raws)

    def _full_object(self) -> str | None:
        if self.algorithm is ChecksumAlgorithm.NONE:
            return None
        return ck.full_object(self.algorithm, [(ck.decode(p.checksum), p.size)
                                               for _, p in sorted(self._parts.items())])

    async def _verify(self, expected: verify.Expected) -> ObjectInfo:
        """HEAD the object and compare it with what we sent (``verify.judge``)."""
        self.phase = Phase.VERIFY
        info = await self._head()
        if info is None:
            raise IntegrityError(f"{self._where}: object missing right after upload",
                                 operation="HeadObject", bucket=self.bucket, key=self.key)
        verdict = verify.judge(info, expected)
        if not verdict.ours:
            raise IntegrityError(f"{self._where}: the stored object does not match the file: "
                                 + "; ".join(verdict.problems), operation="HeadObject",
                                 bucket=self.bucket, key=self.key)
        self.verified = verdict.content_checked
        return info

    async def _abort(self, reason: str) -> None:
        """Abort an upload that cannot be resumed, so it is not billed forever."""
        self.phase = Phase.ABORT
        if self.upload_id is not None:
            await self._abort_upload(self.upload_id)
        self.journal.finish(self._row, UploadState.ABORTED, error=reason)

    async def _check_aborted(self) -> None:
        """After aborting, make sure the server no longer lists the upload."""
        upload_id = self.upload_id
        for attempt in range(LISTING_TRIES):
            uploads = await self.scheduler.retrying(
                f"ListMultipartUploads {self._where}",
                lambda n: self.store.list_uploads(self.bucket, self.key))
            if not any(u.upload_id == upload_id for u in uploads):
                return
            await anyio.sleep(LISTING_LAG_S)
            await self._abort_upload(upload_id or "")
        raise StoreError(f"{self._where}: upload {upload_id} is still listed after being aborted; "
                         f"check with: bigupload ls-uploads s3://{self.bucket}/{self.key}",
                         operation="AbortMultipartUpload", bucket=self.bucket, key=self.key,
                         upload_id=upload_id)

    async def _abort_upload(self, upload_id: str) -> None:
        """AbortMultipartUpload, finished even if we are being cancelled; an upload that is
        already gone is fine."""
        with anyio.CancelScope(shield=True):
            try:
                await self.store.abort(self.bucket, self.key, upload_id, self.options)
            except NotFoundError:
                pass

    def _result(self, the_plan: Plan, info: ObjectInfo, elapsed: float) -> UploadResult:
        return UploadResult(
            bucket=self.bucket,
            key=self.key,
            etag=info.etag,
            size=the_plan.size,
            part_size=the_plan.part_size if the_plan.multipart else the_plan.size,
            parts=the_plan.part_count if the_plan.multipart else 1,
            checksum_algorithm=self.algorithm.value,
            checksum=info.checksum or (self._expected_composite() if the_plan.multipart else
                                       (self._parts[1].checksum or None)),
            full_object_checksum=self._full_object(),
            upload_id=self.upload_id,
            resumed_parts=self.resumed_parts,
            sent_bytes=self.sent_bytes,
            elapsed_s=round(elapsed, 3),
            # with --checksum none nothing tied the parts to the file's bytes
            verified=self.verified and self.algorithm is not ChecksumAlgorithm.NONE,
            checksum_type=self.checksum_type if the_plan.multipart else None,
            notices=tuple(self.notices),
        )


_NO_CONDITIONS: set[str] = set()  # endpoints that answered a conditional write with 501


def default_checksum_type(config: UploadConfig) -> str | None:
    """FULL_OBJECT for the CRCs (the server then checks the whole object's CRC), COMPOSITE
    for SHA-256 (S3 allows nothing else), CRC64NVME always FULL_OBJECT."""
    if config.checksum is ChecksumAlgorithm.NONE:
        return None
    if config.checksum is ChecksumAlgorithm.SHA256:
        return "COMPOSITE"
    if config.checksum is ChecksumAlgorithm.CRC64NVME:
        return "FULL_OBJECT"
    return config.checksum_type or "FULL_OBJECT"


def _may_have_created(exc: StoreError) -> bool:
    """Whether a failed CreateMultipartUpload may still have created an upload: a timeout or
    a 5xx may have; a refusal (4xx, or a throttling 503) or a connection that never opened
    has not."""
    return exc.retryable and not exc.never_reached_server and not exc.throttle


def _describe_change(before: DestinationGuard, now: DestinationGuard) -> str:
    if not before.existed:
        return f"an object with ETag {now.etag} was written"
    if not now.existed:
        return "the object was deleted"
    return f"ETag {before.etag} became {now.etag}"
