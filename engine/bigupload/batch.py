"""Batch jobs: directories, manifests and lists of items uploaded as one resumable job.

A job's file list is fixed and journalled (with the job's spec, so it can be resumed)
before anything is sent. One ``Uploader`` runs it: every file goes through the same
``Transfer`` as a single file (multipart above the threshold, one PutObject below), and
every request shares the scheduler's connection and memory bounds. Small and large files
run side by side: a few large files at once, each already parallel over its parts, and
many small ones.

What becomes of each file is journalled as it happens. A file that fails for good
(missing, unreadable, access denied on its key) is recorded with its reason and the job
goes on; a failure that would hit every file (credentials, no such bucket, a journal that
cannot be written, the store unreachable after retries) stops the job, which stays
resumable. With a cluster executor (``--dask``) small files go to the workers in shards of
up to ``SHARD_FILES`` files or ``SHARD_BYTES``, and large files' parts as part ranges; this
process still journals every outcome. Keys are built from relative paths with ``/`` on every platform and are never
used to build local paths."""

from __future__ import annotations

import collections
import dataclasses
import fnmatch
import hashlib
import json
import logging
import os
import stat
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import anyio

from .client import ObjectInfo, ObjectOptions, ObjectStore, ObjectSummary
from .config import ChecksumAlgorithm, ServerSideEncryption, UploadConfig
from .errors import (
    AuthError,
    BigUploadError,
    ClusterError,
    ConfigError,
    ExistsError,
    IntegrityError,
    JournalError,
    ResumeError,
    SourceError,
    StoreError,
)
from .journal import FileChange, FileState, JobFile, JobRecord, JobState, Journal, UploadState
from .plan import plan
from .progress import NullProgress, Progress
from .remote import Executor, FileTask
from .scheduler import task_group
from .source import SourceFile, check_regular_file
from .transfer import Transfer, UploadResult
from .upload.existing import same_object
from .upload.listing import confirm_aborted
from .upload.parts import abort_upload
from .values import check_key, sse_c_key_hash

if TYPE_CHECKING:
    from .scheduler import Scheduler

log = logging.getLogger("bigupload")

LARGE_FILES_AT_ONCE = 2  # each is already parallel over its parts
PAGE = 1000  # job files read from the journal at a time
SHARD_FILES = 64  # small files per cluster task: amortises the task's round trip (~ms)
SHARD_BYTES = 256 * 1024 * 1024
# What became of each file is committed in groups: one commit per small file cost 0.3 ms
# on the event loop (measured). A crash forgets at most this much, and those files (small:
# large ones journal their parts as they go) are sent again on resume, which is harmless.
MARK_EVERY_S = 0.25
MARK_BATCH = 256
FATAL_AUTH_CODES = frozenset({
    "InvalidAccessKeyId", "SignatureDoesNotMatch", "NoCredentials", "ExpiredToken",
    "InvalidToken", "TokenRefreshRequired", "ProfileNotFound", "AccountProblem",
})
FATAL_CODES = frozenset({"NoSuchBucket", "NotS3", "SSLError", "InvalidBucketName"})
GIVE_UP_AFTER = 10  # store failures in a row, with no success yet, that stop the job
OBJECT_SETTINGS = ("content_type", "metadata", "storage_class")
SAME = "same object there"  # --skip-existing
EXISTS = "exists, not overwritten"  # --no-overwrite


@dataclasses.dataclass(frozen=True)
class BatchItem:
    """One file of a batch: where it comes from, where it goes, and optional per-object
    settings that override the job's."""

    source: str
    bucket: str
    key: str
    content_type: str | None = None
    metadata: Mapping[str, str] | None = None
    storage_class: str | None = None

    def settings(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in OBJECT_SETTINGS if getattr(self, name) is not None}


@dataclasses.dataclass(frozen=True)
class Entry:
    """A file found by a walk or a manifest; ``error`` when it cannot be uploaded at all
    (a broken link, a name that is not UTF-8): it joins the job as a failure."""

    item: BatchItem
    size: int
    error: str | None = None


@dataclasses.dataclass(frozen=True)
class ItemResult:
    source: str
    bucket: str
    key: str
    size: int
    state: FileState
    etag: str | None = None
    error: str | None = None
    exit_code: int | None = None
    upload: UploadResult | None = None  # for files uploaded by this run


@dataclasses.dataclass(frozen=True)
class BatchResult:
    """What a run of a job did. ``items`` are the files this run handled (uploaded,
    skipped or failed); the counts cover the whole job, earlier runs included."""

    job_id: int
    state: JobState
    items: tuple[ItemResult, ...]
    files: int
    uploaded: int
    skipped: int
    failed: int
    total_bytes: int
    sent_bytes: int
    elapsed_s: float

    @property
    def failures(self) -> tuple[ItemResult, ...]:
        return tuple(r for r in self.items if r.state is FileState.FAILED)

    @property
    def ok(self) -> bool:
        return self.failed == 0


class BatchProgress(Protocol):
    """What a batch reports: the job's totals, a ``Progress`` per file, each file's fate."""

    def start_job(self, job_id: int, files: int, total_bytes: int, done_files: int,
                  done_bytes: int) -> None: ...

    def file_progress(self, item: BatchItem, size: int, multipart: bool) -> Progress: ...

    def file_done(self, result: ItemResult) -> None: ...

    def close(self) -> None: ...


class NullBatchProgress:
    def start_job(self, job_id: int, files: int, total_bytes: int, done_files: int,
                  done_bytes: int) -> None:
        pass

    def file_progress(self, item: BatchItem, size: int, multipart: bool) -> Progress:
        return NullProgress()

    def file_done(self, result: ItemResult) -> None:
        pass

    def close(self) -> None:
        pass


# finding the files


def destination_prefix(key: str) -> str:
    """``s3://b/photos`` and ``s3://b/photos/`` both put files under ``photos/``."""
    return key if not key or key.endswith("/") else key + "/"


def matches(relative: str, patterns: Sequence[str]) -> bool:
    """A glob matches the relative path (``*`` crosses ``/``), or, for a pattern without
    ``/``, the file name: ``*.tmp`` matches at any depth."""
    name = relative.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(relative, p) or ("/" not in p and fnmatch.fnmatchcase(name, p))
               for p in patterns)


@dataclasses.dataclass
class WalkReport:
    """What a walk left out, so the CLI can say so."""

    excluded: int = 0
    symlinks: int = 0  # not followed
    special: int = 0  # FIFOs, sockets, devices
    loops: int = 0  # directory links that lead back to an ancestor


def walk_directory(root: str, bucket: str, prefix: str, *, include: Sequence[str] = (),
                   exclude: Sequence[str] = (), follow_symlinks: bool = False,
                   report: WalkReport | None = None) -> Iterator[Entry]:
    """The regular files under ``root``, in name order, with their keys: ``prefix`` + the
    relative path with ``/`` separators. Symbolic links are skipped unless
    ``follow_symlinks`` (then directory loops are detected and skipped). A file is kept
    when it matches an ``include`` (or there are none) and no ``exclude``. Unreadable
    directories and broken links become entries with an error."""
    report = report if report is not None else WalkReport()
    top = os.path.abspath(root)
    try:
        st = os.stat(top)
    except OSError as exc:
        raise ConfigError(f"{root}: {exc.strerror}") from exc
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"{root}: not a directory")

    def walk(directory: str, relative: str, ancestors: frozenset[tuple[int, int]]) -> Iterator[Entry]:
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            key = prefix + relative
            yield Entry(BatchItem(directory, bucket, key), 0,
                        f"{directory}: cannot list the directory: {exc.strerror}")
            return
        for entry in entries:
            rel = relative + entry.name
            path = entry.path
            try:
                is_link = entry.is_symlink()
                if is_link and not follow_symlinks:
                    report.symlinks += 1
                    continue
                try:
                    est = entry.stat(follow_symlinks=True)
                except FileNotFoundError:
                    if is_link:
                        if not include or matches(rel, include):
                            yield Entry(BatchItem(path, bucket, prefix + rel), 0,
                                        f"{path}: broken symbolic link")
                        continue
                    continue  # vanished while walking
            except OSError as exc:
                yield Entry(BatchItem(path, bucket, prefix + rel), 0, f"{path}: {exc.strerror}")
                continue
            if stat.S_ISDIR(est.st_mode):
                ident = (est.st_dev, est.st_ino)
                if ident in ancestors:
                    report.loops += 1
                    log.warning("%s: a link back to a directory above it; not followed", path)
                    continue
                yield from walk(path, rel + "/", ancestors | {ident})
                continue
            if not stat.S_ISREG(est.st_mode):
                report.special += 1
                continue
            if (include and not matches(rel, include)) or matches(rel, exclude):
                report.excluded += 1
                continue
            key = prefix + rel
            yield Entry(BatchItem(path, bucket, key), est.st_size, check_key(key))

    yield from walk(top, "", frozenset({(st.st_dev, st.st_ino)}))


def entry_for(item: BatchItem) -> Entry:
    """The item with its size, or with why it cannot be uploaded (it then fails as a file
    of the job, not the whole job)."""
    try:
        st = os.stat(item.source)
    except OSError as exc:
        return Entry(item, 0, f"{item.source}: {exc.strerror}")
    if not stat.S_ISREG(st.st_mode):
        return Entry(item, 0, f"{item.source}: not a regular file")
    return Entry(item, st.st_size)


def read_manifest(path: str, bucket: str | None, prefix: str) -> list[Entry]:
    """Parse a manifest: one file per line, either ``SOURCE<TAB>KEY`` or a JSON object
    ``{"source": ..., "key": ..., "content_type"?, "metadata"?, "storage_class"?}``. A key
    is an ``s3://bucket/key`` URL, or a key under the destination (``bucket``/``prefix``).
    Relative sources are relative to the manifest's directory. Blank lines and lines
    starting with ``#`` are ignored. Any bad line is a ConfigError naming it (nothing is
    sent); a missing source is not: it joins the job as a failure."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: the manifest is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the manifest: {exc.strerror}") from exc
    base = os.path.dirname(os.path.abspath(path))
    entries: list[Entry] = []
    seen: dict[tuple[str, str], int] = {}
    problems: list[str] = []
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            item = _manifest_item(line, bucket, prefix, base)
        except ValueError as exc:
            problems.append(f"{path} line {number}: {exc}")
            continue
        where = (item.bucket, item.key)
        if where in seen:
            problems.append(f"{path} line {number}: s3://{item.bucket}/{item.key} is already the "
                            f"destination of line {seen[where]}")
            continue
        seen[where] = number
        entries.append(entry_for(item))
    if problems:
        more = f" (and {len(problems) - 1} more bad line(s))" if len(problems) > 1 else ""
        raise ConfigError(problems[0] + more)
    if not entries:
        raise ConfigError(f"{path}: the manifest lists no files")
    return entries


def _manifest_item(line: str, bucket: str | None, prefix: str, base: str) -> BatchItem:
    settings: dict[str, Any] = {}
    if line.lstrip().startswith("{"):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"invalid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(record, dict):
            raise ValueError("expected a JSON object")
        unknown = set(record) - {"source", "key", *OBJECT_SETTINGS}
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(sorted(unknown))}")
        source, key = record.get("source"), record.get("key")
        if not isinstance(source, str) or not source:
            raise ValueError('missing "source"')
        if not isinstance(key, str) or not key:
            raise ValueError('missing "key"')
        for name in ("content_type", "storage_class"):
            if name in record:
                if not isinstance(record[name], str):
                    raise ValueError(f'"{name}" must be a string')
                settings[name] = record[name]
        if "metadata" in record:
            meta = record["metadata"]
            if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                     for k, v in meta.items()):
                raise ValueError('"metadata" must be an object of strings')
            settings["metadata"] = meta
    else:
        fields = line.split("\t")
        if len(fields) != 2 or not fields[0] or not fields[1]:
            raise ValueError(f"expected SOURCE<TAB>KEY or a JSON object, got {len(fields)} field(s)")
        source, key = fields
    if key.startswith("s3://"):
        item_bucket, _, item_key = key[5:].partition("/")
        if not item_bucket or not item_key:
            raise ValueError(f"incomplete S3 URL {key!r}")
    else:
        if bucket is None:
            raise ValueError(f"key {key!r} is not an s3:// URL and no destination was given")
        item_bucket, item_key = bucket, prefix + key.lstrip("/")
    if problem := check_key(item_key):
        raise ValueError(problem)
    source = os.path.join(base, os.path.expanduser(source))
    return BatchItem(os.path.normpath(source), item_bucket, item_key, **settings)


# the job's spec: what is needed to resume it, never a secret


def job_options(config: UploadConfig) -> dict[str, Any]:
    """The settings that decide what each object becomes; a resume uses these, whatever
    its own command line says (the connection and tuning settings may change)."""
    return {
        "part_size": config.part_size,
        "multipart_threshold": config.multipart_threshold,
        "checksum": config.checksum.value,
        "content_type": config.content_type,
        "metadata": dict(config.metadata),
        "storage_class": config.storage_class,
        "sse": config.sse.value if config.sse else None,
        "sse_kms_key_id": config.sse_kms_key_id,
        "request_payer": config.request_payer,
        "expected_bucket_owner": config.expected_bucket_owner,
        "sse_c_key_hash": sse_c_key_hash(config.sse_c_key),
        # only when set, so a job started before these existed keeps its spec (and hash)
        **({"no_overwrite": True} if config.no_overwrite else {}),
        **({"checksum_type": config.checksum_type} if config.checksum_type else {}),
    }


def make_spec(kind: str, origin: dict[str, Any], config: UploadConfig, endpoint: str, *,
              skip_existing: bool) -> dict[str, Any]:
    return {"kind": kind, "origin": origin, "endpoint": endpoint, "skip_existing": skip_existing,
            "options": job_options(config)}


def spec_hash(spec: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:32]


def config_for_job(base: UploadConfig, spec: dict[str, Any]) -> UploadConfig:
    """``base`` (connection, tuning, the SSE-C key) with the job's object settings."""
    options = dict(spec["options"])
    wanted_key = options.pop("sse_c_key_hash")
    if wanted_key != sse_c_key_hash(base.sse_c_key):
        raise ResumeError("this job was started with a different SSE-C key (or none); give the "
                          "same --sse-c-key-file")
    options["checksum"] = ChecksumAlgorithm(options["checksum"])
    options["sse"] = ServerSideEncryption(options["sse"]) if options["sse"] else None
    return dataclasses.replace(base, **options)


def describe(spec: dict[str, Any]) -> str:
    origin = spec["origin"]
    if spec["kind"] == "directory":
        return f"{origin['root']} -> s3://{origin['bucket']}/{origin['prefix']}"
    if spec["kind"] == "manifest":
        return f"manifest {origin['manifest']}"
    return f"{origin['count']} item(s)"


# running a job


def is_fatal(exc: BigUploadError) -> bool:
    """Whether a file's failure would hit every other file too, so the job must stop
    (and stay resumable) rather than record it and go on."""
    if isinstance(exc, (JournalError, ClusterError)):
        return True
    if isinstance(exc, AuthError):
        return exc.code in FATAL_AUTH_CODES
    if isinstance(exc, IntegrityError):
        return False
    if isinstance(exc, StoreError):
        return exc.retryable or exc.code in FATAL_CODES
    return False


class _Files:
    """A job's files to run, read from the journal a page at a time, split into small
    (one PutObject) and large (multipart) queues."""

    def __init__(self, journal: Journal, job_id: int, states: tuple[FileState, ...],
                 config: UploadConfig) -> None:
        self._journal = journal
        self._job_id = job_id
        self._states = states
        self._config = config
        self._after = -1
        self._done = False
        self.queues: dict[bool, collections.deque[JobFile]] = {True: collections.deque(),
                                                               False: collections.deque()}

    def is_large(self, f: JobFile) -> bool:
        try:
            return plan(f.size, self._config).multipart
        except ConfigError:
            return False  # too big for S3: the transfer says so, as that file's failure

    def next(self, large: bool) -> JobFile | None:
        queue = self.queues[large]
        while not queue and not self._done:
            page = self._journal.job_files(self._job_id, self._states, after=self._after, limit=PAGE)
            if not page:
                self._done = True
                break
            self._after = page[-1].seq
            for f in page:
                self.queues[self.is_large(f)].append(f)
        return queue.popleft() if queue else None


class ExistingObjects:
    """For ``--skip-existing``: what is already at each destination. Lists the job's
    common key prefix once per bucket (1 request per 1,000 objects); when the keys share
    no prefix and the job is small, HEADs each key instead of listing a whole bucket."""

    def __init__(self, store: ObjectStore, scheduler: Scheduler, prefixes: dict[str, str],
                 files: int) -> None:
        self._store = store
        self._scheduler = scheduler
        self._prefixes = prefixes
        self._use_head = files < PAGE and any(not p for p in prefixes.values())
        self._listed: dict[str, dict[str, ObjectSummary]] = {}
        self._lock = anyio.Lock()

    async def lookup(self, bucket: str, key: str, options: ObjectOptions) -> ObjectSummary | ObjectInfo | None:
        if self._use_head:
            return await self._scheduler.retrying(f"HeadObject s3://{bucket}/{key}",
                                                  lambda n: self._store.head(bucket, key, options))
        async with self._lock:
            if bucket not in self._listed:
                prefix = self._prefixes.get(bucket, "")
                objects = await self._scheduler.retrying(
                    f"ListObjectsV2 s3://{bucket}/{prefix}",
                    lambda n: self._store.list_objects(bucket, prefix))
                self._listed[bucket] = {o.key: o for o in objects}
        return self._listed[bucket].get(key)


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
        self.fail_fast = fail_fast
        self.results: list[ItemResult] = []
        self.sent_bytes = 0
        self._successes = 0
        self._store_failures_in_a_row = 0
        self._existing: ExistingObjects | None = None
        self._marks: list[FileChange] = []
        self._marked_at = time.monotonic()

    async def run(self, *, retry_failed: bool) -> BatchResult:
        started = time.monotonic()
        states = (FileState.PENDING, FileState.FAILED) if retry_failed else (FileState.PENDING,)
        totals = self.journal.job_totals(self.job.id)
        if self.spec.get("skip_existing") or self.config.no_overwrite:
            self._existing = ExistingObjects(self.store, self.scheduler, self._common_prefixes(),
                                             totals.files)
        files = _Files(self.journal, self.job.id, states, self.config)
        self.progress.start_job(self.job.id, totals.files, totals.bytes, totals.done_files,
                                totals.done_bytes)
        small_workers = max(4, 2 * self.config.concurrency)
        try:
            with self.journal.claim_job(self.job.id):
                try:
                    async with task_group() as tg:
                        for _ in range(LARGE_FILES_AT_ONCE):
                            tg.start_soon(self._worker, files, True)
                        if self.executor is None:
                            for _ in range(small_workers):
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
                totals = self.journal.job_totals(self.job.id)
                state = JobState.PARTIAL if totals.failed_files else JobState.COMPLETED
                self.journal.set_job_state(self.job.id, state)
        finally:
            self.progress.close()
        counts = self._counts()
        return BatchResult(
            job_id=self.job.id, state=state, items=tuple(self.results), files=totals.files,
            uploaded=counts[FileState.DONE], skipped=counts[FileState.SKIPPED],
            failed=totals.failed_files, total_bytes=totals.bytes, sent_bytes=self.sent_bytes,
            elapsed_s=round(time.monotonic() - started, 3),
        )

    def _counts(self) -> collections.Counter[FileState]:
        return collections.Counter(self.journal.job_state_counts(self.job.id))

    def _common_prefixes(self) -> dict[str, str]:
        """Per bucket, the longest prefix ending in ``/`` shared by all the job's keys."""
        prefixes = {}
        for bucket, (low, high) in self.journal.job_key_range(self.job.id).items():
            common = os.path.commonprefix([low, high])
            prefixes[bucket] = common[: common.rfind("/") + 1]
        return prefixes

    async def _worker(self, files: _Files, large: bool) -> None:
        while (f := files.next(large)) is not None:
            await self._run_file(f, large)

    def _usable(self, f: JobFile) -> UploadConfig:
        """The file's settings, or SourceError if the walk or manifest found it unusable or
        its key is not one S3 accepts."""
        if f.error and f.exit_code is None:
            raise SourceError(f.error)
        if problem := check_key(f.key):
            raise SourceError(f"{f.source}: {problem}")
        return self._file_config(f)

    def _file_config(self, f: JobFile) -> UploadConfig:
        if not f.settings:
            return self.config
        return dataclasses.replace(self.config, **json.loads(f.settings))

    async def _run_file(self, f: JobFile, large: bool) -> None:
        item = BatchItem(f.source, f.bucket, f.key)
        try:
            config = self._usable(f)
            with SourceFile(f.source) as source:
                if self._existing is not None and (why := await self._exists(f, source, config)):
                    self._skipped(f, why)
                    return
                transfer = Transfer(source, f.bucket, f.key, config=config, store=self.store,
                                    journal=self.journal, scheduler=self.scheduler,
                                    progress=self.progress.file_progress(item, source.size, large),
                                    executor=self.executor)
                result = await transfer.run()
        except ExistsError:  # --no-overwrite: someone wrote the key in the meantime
            self._skipped(f, EXISTS)
            return
        except BigUploadError as exc:
            self._failed(f, exc)
            return
        self._uploaded(f, result)

    def _skipped(self, f: JobFile, why: str) -> None:
        """The file is not sent: the same object is there (--skip-existing), or an object
        is there and must not be replaced (--no-overwrite)."""
        note = None if why == SAME else why
        self._mark(FileChange(f.seq, FileState.SKIPPED, error=note))
        self._record(ItemResult(f.source, f.bucket, f.key, f.size, FileState.SKIPPED, error=note))

    async def _shard_worker(self, files: _Files) -> None:
        """Cluster mode: small files go to the workers a shard at a time."""
        while True:
            shard: list[JobFile] = []
            size = 0
            while len(shard) < SHARD_FILES and size < SHARD_BYTES:
                f = files.next(False)
                if f is None:
                    break
                shard.append(f)
                size += f.size
            if not shard:
                return
            await self._run_shard(shard)

    async def _run_shard(self, shard: list[JobFile]) -> None:
        by_seq = {f.seq: f for f in shard}
        tasks: list[FileTask] = []
        for f in shard:
            try:
                config = self._usable(f)
                if self._existing is not None:
                    with SourceFile(f.source) as source:
                        if why := await self._exists(f, source, config):
                            self._skipped(f, why)
                            continue
                st = await self.scheduler.in_thread(check_regular_file, f.source)
            except BigUploadError as exc:
                self._failed(f, exc)
                continue
            tasks.append(FileTask(f.seq, os.path.abspath(f.source), f.bucket, f.key, st.st_size,
                                  st.st_mtime_ns, config))
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

    def _failed(self, f: JobFile, exc: BigUploadError) -> None:
        """Record a file's failure; raise when it must stop the job."""
        if is_fatal(exc):
            raise exc
        if isinstance(exc, StoreError) and not isinstance(exc, IntegrityError):
            self._store_failures_in_a_row += 1
        self._mark(FileChange(f.seq, FileState.FAILED, error=str(exc), exit_code=exc.exit_code))
        self._record(ItemResult(f.source, f.bucket, f.key, f.size, FileState.FAILED,
                                error=str(exc), exit_code=exc.exit_code))
        log.warning("%s", exc)
        if self.fail_fast:
            raise exc
        if self._successes == 0 and self._store_failures_in_a_row >= GIVE_UP_AFTER:
            raise type(exc)(f"the first {GIVE_UP_AFTER} files all failed; stopping the job "
                            f"(last: {exc})", **_store_context(exc)) from exc

    async def _abort_uploads(self, reason: str) -> None:
        """The job cannot finish on this cluster: abort every multipart upload the journal
        holds for its files, then check the server lists none of them."""
        keys = self.journal.job_keys(self.job.id)
        ours = [u for u in self.journal.uploads(UploadState.ACTIVE)
                if u.endpoint == self.store.endpoint and (u.bucket, u.key) in keys]
        options = ObjectOptions.from_config(self.config, None)
        aborted = [(u.bucket, u.key, u.upload_id) for u in ours if u.upload_id]
        with anyio.CancelScope(shield=True):
            for u in ours:
                if u.upload_id:
                    await abort_upload(self.store, self.scheduler, u.bucket, u.key, u.upload_id, options)
                self.journal.finish(u.id, UploadState.ABORTED, error=reason)
            left = await confirm_aborted(self.store, self.scheduler, aborted,
                                         self._common_prefixes(), options)
        if left:
            log.error("still listed after being aborted: %s",
                      ", ".join(f"s3://{bucket}/{key} ({upload_id})" for bucket, key, upload_id in left))
        else:
            log.warning("aborted %d multipart upload(s) of job %d; none is left on the server",
                        len(ours), self.job.id)

    def _uploaded(self, f: JobFile, result: UploadResult) -> None:
        self._successes += 1
        self._store_failures_in_a_row = 0
        self.sent_bytes += result.sent_bytes
        self._mark(FileChange(f.seq, FileState.DONE, etag=result.etag))
        self._record(ItemResult(f.source, f.bucket, f.key, result.size, FileState.DONE,
                                etag=result.etag, upload=result))

    async def _exists(self, f: JobFile, source: SourceFile, config: UploadConfig) -> str | None:
        """Why the file need not be sent: ``SAME`` (--skip-existing found this file there),
        ``EXISTS`` (--no-overwrite found an object there), or None."""
        assert self._existing is not None
        options = ObjectOptions.from_config(config, None)
        remote = await self._existing.lookup(f.bucket, f.key, options)
        if remote is None:
            return None
        if config.no_overwrite and not self.spec.get("skip_existing"):
            return EXISTS
        same = await same_object(
            remote, source, source.size, config,
            lambda: self.scheduler.retrying(f"HeadObject s3://{f.bucket}/{f.key}",
                                            lambda n: self.store.head(f.bucket, f.key, options)),
            self.scheduler)
        if same:
            return SAME
        return EXISTS if config.no_overwrite else None

    def _mark(self, change: FileChange) -> None:
        self._marks.append(change)
        if len(self._marks) >= MARK_BATCH or time.monotonic() - self._marked_at >= MARK_EVERY_S:
            self._flush_marks()

    def _flush_marks(self) -> None:
        if self._marks:
            marks, self._marks = self._marks, []
            self.journal.set_file_states(self.job.id, marks)
        self._marked_at = time.monotonic()

    def _record(self, result: ItemResult) -> None:
        self.results.append(result)
        self.progress.file_done(result)


def _store_context(exc: BigUploadError) -> dict[str, Any]:
    if not isinstance(exc, StoreError):
        return {}
    return dict(operation=exc.operation, bucket=exc.bucket, key=exc.key, code=exc.code,
                retryable=exc.retryable)


def _storable(text: str) -> str:
    """A file name that is not UTF-8 (surrogate escapes) cannot be stored as text: keep a
    readable escaped form (such a file is a failure anyway, since keys are UTF-8)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def entries_to_files(entries: Iterable[Entry], first_seq: int) -> list[JobFile]:
    """Journal rows for entries; an entry with an error stays pending with it, so the run
    reports it among the job's failures."""
    files = []
    for seq, e in enumerate(entries, first_seq):
        settings = e.item.settings()
        files.append(JobFile(
            seq=seq, source=_storable(e.item.source), bucket=e.item.bucket,
            key=_storable(e.item.key), size=e.size,
            settings=json.dumps(settings, sort_keys=True) if settings else None,
            state=FileState.PENDING, error=e.error,
        ))
    return files


def open_job(journal: Journal, spec: dict[str, Any], entries: Iterable[Entry]) -> tuple[JobRecord, bool]:
    """The unfinished job started by the same spec, with any new entries added (a re-run
    of the same command resumes it), or a new job. Returns (job, resumed)."""
    digest = spec_hash(spec)
    existing = journal.find_job(digest)
    if existing is not None:
        known = journal.job_keys(existing.id)
        new = [e for e in entries if (e.item.bucket, e.item.key) not in known]
        if new:
            journal.add_job_files(existing.id, entries_to_files(new, journal.next_seq(existing.id)))
            log.info("job %d: %d new file(s) added", existing.id, len(new))
        return existing, True
    entries = list(entries)
    seen: set[tuple[str, str]] = set()
    for e in entries:
        where = (e.item.bucket, e.item.key)
        if where in seen:
            raise ConfigError(f"two files would be uploaded to s3://{where[0]}/{where[1]}")
        seen.add(where)
    job_id = journal.start_job(describe(spec), json.dumps(spec, sort_keys=True), digest)
    journal.add_job_files(job_id, entries_to_files(entries, 0))
    job = journal.job(job_id)
    assert job is not None
    return job, False

