"""The ``bigupload`` command: argument parsing, output and exit codes. No engine logic.

Every option can also be set with a ``BIGUPLOAD_<OPTION>`` environment variable
(``BIGUPLOAD_PART_SIZE=64MiB``); the command line wins. With ``--json`` stdout carries
one JSON object per line and logs go to stderr."""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import logging
import os
import re
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TextIO

from .redact import redact

EXIT_CODES = """exit codes:
  0    success
  1    internal error (a bug: please report it, with --debug output)
  2    usage or configuration error (nothing was sent)
  3    source problem: missing, unreadable or not a regular file, changed mid-upload
  4    authentication or permission problem, or the server's TLS certificate failed
       verification (check AWS_CA_BUNDLE, or the endpoint's certificate)
  5    transient failure after retries (the journal is kept: run the same command to resume)
  6    integrity failure: the server saw different bytes, or the object does not match
  7    the store refused the request (no such bucket, upload gone, invalid request)
  8    resume refused: the file changed since the upload began, or the journal disagrees
  9    partial: a batch finished, but some files failed (listed; `bigupload resume ID` retries them)
  10   the Dask cluster could not run the work (--dask); see the message for what was kept
  11   --no-overwrite: the key already exists; nothing was written
  130  interrupted (the journal is flushed: run the same command, or `bigupload resume`, to resume)
"""
EXIT_PARTIAL = 9

BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
log = logging.getLogger("bigupload")


class VersionAction(argparse.Action):
    """``--version``: the version, then which backend computes each checksum (native SIMD,
    a package or pure Python), computed only when asked so start-up stays light."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        from . import __version__
        from .checksum import backends

        lines = [f"bigupload {__version__}"]
        lines += [f"  {name:<10} {backend}" for name, backend in backends().items()]
        parser.exit(0, "\n".join(lines) + "\n")


class UsageError(Exception):
    """Bad command-line input: exit code 2."""


def env_default(name: str, fallback: Any = None) -> Any:
    return os.environ.get("BIGUPLOAD_" + name.upper().replace("-", "_"), fallback)


def parse_s3_url(url: str, *, key_required: bool) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key), validating the bucket name and the key."""
    from .values import check_key

    if not url.startswith("s3://"):
        raise UsageError(f"not an S3 URL: {url!r} (expected s3://bucket/key)")
    bucket, _, key = url[5:].partition("/")
    if not BUCKET_RE.match(bucket) or ".." in bucket:
        raise UsageError(f"invalid bucket name {bucket!r} (3-63 lowercase letters, digits, '.', '-')")
    if key_required and not key:
        raise UsageError(f"missing key in {url!r} (expected s3://bucket/key)")
    if key and (problem := check_key(key)):
        raise UsageError(f"invalid object key: {problem}")
    return bucket, key


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    g = common.add_argument_group("connection and output")
    g.add_argument("--endpoint-url", default=env_default("endpoint_url", os.environ.get("AWS_ENDPOINT_URL")),
                   help="S3-compatible endpoint (also AWS_ENDPOINT_URL)")
    g.add_argument("--region", default=env_default("region"))
    g.add_argument("--profile", default=env_default("profile"))
    g.add_argument("--no-verify-ssl", action="store_true", default=bool(env_default("no_verify_ssl")),
                   help="do not verify TLS certificates (prints a warning)")
    g.add_argument("--journal", default=env_default("journal"),
                   help="journal file (default: $XDG_STATE_HOME/bigupload/journal.sqlite3)")
    g.add_argument("--json", action="store_true", default=bool(env_default("json")),
                   help="one JSON object per line on stdout; logs on stderr")
    g.add_argument("--debug", action="store_true", default=bool(env_default("debug")),
                   help="verbose logs and tracebacks")

    parser = argparse.ArgumentParser(
        prog="bigupload",
        description="Fast, resumable, parallel multipart uploads to S3 and S3-compatible stores.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=VersionAction, nargs=0,
                        help="print the version and the checksum backend of each algorithm")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    tuning = argparse.ArgumentParser(add_help=False)
    t = tuning.add_argument_group("tuning")
    t.add_argument("--concurrency", type=int, default=int(env_default("concurrency", 8)),
                   help="requests in flight, across all files (default 8)")
    t.add_argument("--memory-limit", default=env_default("memory_limit"),
                   help="most part data held at once (default concurrency x part size)")
    t.add_argument("--max-attempts", type=int, default=int(env_default("max_attempts", 5)))
    t.add_argument("--sse-c-key-file", default=env_default("sse_c_key_file"),
                   help="file holding a 32-byte SSE-C key (sent with every part)")
    t.add_argument("--fail-fast", action="store_true", default=bool(env_default("fail_fast")),
                   help="batch: stop at the first file that fails (default: record it, go on)")
    t.add_argument("--progress", choices=["auto", "always", "never"],
                   default=env_default("progress", "auto"))
    t.add_argument("--dask", metavar="ADDRESS", default=env_default("dask"),
                   help="upload on a Dask cluster: a scheduler address (tcp://host:8786) or "
                   "local:N for N worker processes here; --concurrency is then per worker. "
                   "Needs pip install 'bigupload[dask]' (see README, Running on a cluster)")

    cp = sub.add_parser(
        "cp", parents=[common, tuning], epilog=EXIT_CODES,
        help="upload a file, a directory (--recursive) or a manifest; resumes an unfinished one",
        usage="bigupload cp [options] FILE s3://bucket/key\n"
              "       bigupload cp [options] DIR s3://bucket/prefix/ --recursive\n"
              "       bigupload cp [options] --manifest FILE [s3://bucket/prefix/]",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    cp.add_argument("paths", nargs="*", metavar="SOURCE DESTINATION",
                    help="a file or directory, and s3://bucket/key (a key ending in / gets the "
                    "file name; a directory goes under the key as a prefix)")
    t = cp.add_argument_group("sizes and checksums")
    t.add_argument("--part-size", default=env_default("part_size"), help="e.g. 64MiB (default: 32MiB, "
                   "grown so the file fits in 10,000 parts)")
    t.add_argument("--multipart-threshold", default=env_default("multipart_threshold"),
                   help="files up to this size go in one PutObject (default: one part)")
    t.add_argument("--checksum-type", choices=["full-object", "composite"],
                   default=env_default("checksum_type"),
                   help="how a multipart object's checksum covers it: one CRC of the whole object "
                        "(full-object, the default for CRCs; the server checks it) or a checksum "
                        "of the part checksums (composite; the only kind for sha1/sha256)")
    t.add_argument("--checksum", default=env_default("checksum", "crc32c"),
                   help="crc32c (default), crc32, crc64nvme, sha256 or none")
    b = cp.add_argument_group("batches (directories and manifests)")
    b.add_argument("-r", "--recursive", action="store_true", help="upload a directory tree")
    b.add_argument("--manifest", default=env_default("manifest"), metavar="FILE",
                   help="upload the files a manifest lists: lines of SOURCE<TAB>KEY, or JSON "
                   'objects {"source", "key", "content_type", "metadata", "storage_class"}')
    b.add_argument("--include", action="append", default=[], metavar="GLOB",
                   help="only files whose relative path (or name) matches; repeatable")
    b.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                   help="skip files whose relative path (or name) matches; repeatable")
    b.add_argument("--follow-symlinks", action="store_true", default=bool(env_default("follow_symlinks")),
                   help="follow symbolic links (default: skip them)")
    b.add_argument("--skip-existing", "--sync", action="store_true", dest="skip_existing",
                   default=bool(env_default("skip_existing")),
                   help="skip a file whose object exists with the same size and checksum or ETag")
    o = cp.add_argument_group("object")
    o.add_argument("--content-type", default=env_default("content_type"), help="default: guessed")
    o.add_argument("--metadata", action="append", default=[], metavar="K=V")
    o.add_argument("--storage-class", default=env_default("storage_class"))
    o.add_argument("--sse", choices=["AES256", "aws:kms"], default=env_default("sse"))
    o.add_argument("--sse-kms-key-id", default=env_default("sse_kms_key_id"))
    o.add_argument("--request-payer", action="store_true")
    o.add_argument("--expected-bucket-owner", default=env_default("expected_bucket_owner"))
    r = cp.add_argument_group("resume")
    r.add_argument("--restart", action="store_true", help="abort the unfinished upload and start over")
    o.add_argument("--no-overwrite", action="store_true", default=bool(env_default("no_overwrite")),
                   help="never replace an existing object (exit 11 for a file; skipped in a batch)")
    r.add_argument("--upload-id", help="adopt this existing multipart upload (parts are verified)")
    cp.add_argument("--dry-run", action="store_true", help="print the plan and send nothing")

    resume = sub.add_parser("resume", parents=[common, tuning], epilog=EXIT_CODES,
                            formatter_class=argparse.RawDescriptionHelpFormatter,
                            help="continue unfinished uploads: every batch job and single file, "
                            "or one job by id")
    resume.add_argument("job", nargs="?", type=int, metavar="JOB_ID",
                        help="a job id from `bigupload status`; a finished job with failures "
                        "retries them")

    ls = sub.add_parser("ls-uploads", parents=[common], help="list unfinished multipart uploads")
    ls.add_argument("url", help="s3://bucket[/prefix]")
    parts = sub.add_parser("parts", parents=[common], help="list the parts of a multipart upload")
    parts.add_argument("url", help="s3://bucket/key")
    parts.add_argument("--upload-id", required=True)
    abort = sub.add_parser("abort", parents=[common], help="abort a multipart upload")
    abort.add_argument("url", help="s3://bucket/key")
    abort.add_argument("--upload-id", required=True)
    status = sub.add_parser("status", parents=[common], help="batch jobs and unfinished uploads in the journal")
    status.add_argument("job", nargs="?", type=int, metavar="JOB_ID", help="one job, with its failures")
    status.add_argument("--all", action="store_true",
                        help="closed rows too: finished jobs, and single-file uploads that completed, "
                        "failed, were aborted or superseded, with their reason")
    forget = sub.add_parser(
        "forget", parents=[common], help="remove rows from the journal; never touches the server",
        usage="bigupload forget [options] (upload ID... | job ID...)\n"
              "       bigupload forget [options] [--finished] [--failed] [--older-than AGE]",
        description="Remove upload rows and batch jobs from the journal, as `bigupload status` "
        "shows them. Nothing on the server is changed: to stop paying for an unfinished "
        "upload, `bigupload abort` it.")
    forget.add_argument("ids", nargs="*", metavar="upload ID | job ID",
                        help="rows named as status names them: `upload 12 13 job 3`; an active "
                        "row is only forgotten when named here")
    forget.add_argument("--finished", action="store_true",
                        help="completed upload rows and completed jobs")
    forget.add_argument("--failed", action="store_true",
                        help="failed, aborted and superseded upload rows, and partial jobs (their "
                        "list of failures goes too: `bigupload resume ID` can no longer retry them)")
    forget.add_argument("--older-than", metavar="AGE",
                        help="30d, 12h or 90m: only rows last changed longer ago than that; alone, "
                        "every closed row that old")
    return parser


class Output:
    """Human lines or JSON lines on stdout."""

    def __init__(self, as_json: bool, stream: TextIO | None = None) -> None:
        self.as_json = as_json
        self.stream = stream or sys.stdout

    def emit(self, event: str, text: str, **fields: Any) -> None:
        line = json.dumps({"event": event, **fields}, default=str) if self.as_json else text
        self.stream.write(redact(line) + "\n")
        self.stream.flush()


def make_config(args: argparse.Namespace) -> Any:
    from .config import ChecksumAlgorithm, ServerSideEncryption, UploadConfig, parse_size

    metadata = {}
    for item in getattr(args, "metadata", []):
        name, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--metadata wants K=V, got {item!r}")
        metadata[name] = value
    sse_c_key = None
    if args.sse_c_key_file:
        try:
            with open(args.sse_c_key_file, "rb") as f:
                sse_c_key = f.read()
        except OSError as exc:
            raise UsageError(f"cannot read --sse-c-key-file: {exc.strerror}") from exc
        if len(sse_c_key) == 33 and sse_c_key.endswith(b"\n"):
            sse_c_key = sse_c_key[:32]
    endpoint = args.endpoint_url
    if sse_c_key is not None and endpoint and endpoint.startswith("http://"):
        raise UsageError("SSE-C over plain http would send the key in the clear; use https")

    def size(value: str | None) -> int | None:
        return None if value is None else parse_size(value)

    def opt(name: str) -> Any:  # ``resume`` has no object options: the job's own apply
        return getattr(args, name, None)

    return UploadConfig(
        part_size=size(opt("part_size")),
        concurrency=args.concurrency,
        memory_limit=size(args.memory_limit),
        multipart_threshold=size(opt("multipart_threshold")),
        checksum=ChecksumAlgorithm.parse(opt("checksum") or "crc32c"),
        max_attempts=args.max_attempts,
        endpoint_url=endpoint,
        region=args.region,
        profile=args.profile,
        verify_tls=not args.no_verify_ssl,
        content_type=opt("content_type"),
        metadata=metadata,
        storage_class=opt("storage_class"),
        sse=ServerSideEncryption(opt("sse")) if opt("sse") else None,
        sse_kms_key_id=opt("sse_kms_key_id"),
        sse_c_key=sse_c_key,
        request_payer=bool(opt("request_payer")),
        expected_bucket_owner=opt("expected_bucket_owner"),
        no_overwrite=bool(opt("no_overwrite")),
        checksum_type=opt("checksum_type").upper().replace("-", "_") if opt("checksum_type") else None,
    )


def connection_config(args: argparse.Namespace) -> Any:
    from .config import UploadConfig

    return UploadConfig(endpoint_url=args.endpoint_url, region=args.region, profile=args.profile,
                        verify_tls=not args.no_verify_ssl)


class TqdmProgress:
    """A tqdm bar on stderr: bytes, rate and ETA."""

    def __init__(self) -> None:
        self._bar: Any = None

    def start(self, description: str, total_bytes: int, done_bytes: int) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=total_bytes, initial=done_bytes, unit="B", unit_scale=True,
                         unit_divisor=1024, desc=description, file=sys.stderr, dynamic_ncols=True)

    def advance(self, nbytes: int) -> None:
        if self._bar is not None:
            self._bar.update(nbytes)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def show_progress(args: argparse.Namespace) -> bool:
    return bool(args.progress == "always"
                or (args.progress == "auto" and sys.stderr.isatty() and not args.json))


async def cmd_cp(args: argparse.Namespace, out: Output) -> int:
    from .config import format_size
    from .plan import plan
    from .source import check_regular_file
    from .uploader import Uploader

    if args.manifest is not None:
        if len(args.paths) > 1:
            raise UsageError("with --manifest, give at most a destination (s3://bucket/prefix/)")
        return await cmd_batch(args, out, None, args.paths[0] if args.paths else None)
    if len(args.paths) != 2:
        raise UsageError("cp needs a SOURCE and a DESTINATION (s3://bucket/key), or --manifest FILE")
    args.source, args.destination = args.paths
    if os.path.isdir(args.source):
        if not args.recursive:
            from .errors import SourceError

            raise SourceError(f"{args.source}: is a directory (use --recursive to upload what it holds)")
        return await cmd_batch(args, out, args.source, args.destination)
    if args.include or args.exclude or args.skip_existing:
        raise UsageError("--include, --exclude and --skip-existing apply to directories and manifests")
    bucket, key = parse_s3_url(args.destination, key_required=False)
    if not key or key.endswith("/"):
        key += os.path.basename(args.source.rstrip("/"))
    config = make_config(args)
    st = check_regular_file(args.source)
    the_plan = plan(st.st_size, config)
    if args.dry_run:
        out.emit("plan", f"{args.source} -> s3://{bucket}/{key}: {format_size(st.st_size)}, "
                 + (f"{the_plan.part_count} parts of {format_size(the_plan.part_size)}"
                    if the_plan.multipart else "one PutObject")
                 + f", checksum {config.checksum.value}, concurrency {config.concurrency}",
                 source=args.source, bucket=bucket, key=key, size=st.st_size,
                 multipart=the_plan.multipart, part_size=the_plan.part_size,
                 parts=the_plan.part_count, checksum=config.checksum.value)
        return 0
    show = show_progress(args)
    async with Uploader(config, journal=args.journal, executor=args.dask) as uploader:
        # botocore's models are loaded and live until exit: keep the cyclic GC from walking
        # them again and again while parts are in flight (about 4% of the CPU otherwise)
        gc.freeze()
        gc.enable()
        result = await uploader.upload_file(args.source, bucket, key,
                                            progress=TqdmProgress() if show else None,
                                            restart=args.restart, upload_id=args.upload_id)
    rate = result.sent_bytes / result.elapsed_s / 1e6 if result.elapsed_s else 0.0
    resumed = f", {result.resumed_parts} parts resumed" if result.resumed_parts else ""
    out.emit("uploaded",
             f"uploaded {args.source} -> s3://{bucket}/{key}: {format_size(result.size)} in "
             f"{result.parts} part(s), {result.elapsed_s:.1f}s ({rate:.0f} MB/s sent){resumed}; "
             + (f"checksum {result.checksum_algorithm} {result.checksum}" if result.verified
                else "not verified (only the size was compared)"),
             **dataclasses.asdict(result))
    for notice in result.notices:
        log.info("%s", notice)
    return 0


async def cmd_batch(args: argparse.Namespace, out: Output, root: str | None,
                    destination: str | None) -> int:
    """A directory (``root``) or a manifest, as one resumable job."""
    import anyio

    from . import batch
    from .config import format_size
    from .uploader import Uploader

    if args.restart or args.upload_id:
        raise UsageError("--restart and --upload-id apply to single files")
    bucket, prefix = (None, "") if destination is None else parse_s3_url(destination, key_required=False)
    prefix = batch.destination_prefix(prefix)
    config = make_config(args)
    report = batch.WalkReport()
    if root is not None:
        assert bucket is not None
        origin: dict[str, Any] = {"root": os.path.abspath(root), "bucket": bucket, "prefix": prefix,
                                  "include": args.include, "exclude": args.exclude,
                                  "follow_symlinks": args.follow_symlinks}
        kind = "directory"

        def find() -> list[batch.Entry]:
            return list(batch.walk_directory(root, bucket, prefix, include=args.include,
                                             exclude=args.exclude, follow_symlinks=args.follow_symlinks,
                                             report=report))
    else:
        origin = {"manifest": os.path.abspath(args.manifest), "bucket": bucket, "prefix": prefix}
        kind = "manifest"

        def find() -> list[batch.Entry]:
            return batch.read_manifest(args.manifest, bucket, prefix)

    entries = await anyio.to_thread.run_sync(find)
    for count, what in ((report.symlinks, "symbolic link(s) skipped (use --follow-symlinks)"),
                        (report.special, "special file(s) skipped (FIFOs, sockets, devices)"),
                        (report.loops, "directory link loop(s) not followed"),
                        (report.excluded, "file(s) left out by --include/--exclude")):
        if count:  # files the user may expect to see uploaded: said even with --json
            (log.info if what.endswith("--include/--exclude") else log.warning)("%d %s", count, what)
    if args.dry_run:
        total = sum(e.size for e in entries)
        out.emit("plan", f"{len(entries)} file(s), {format_size(total)} -> "
                 f"{describe_destination(bucket, prefix)}", files=len(entries), bytes=total,
                 bucket=bucket, prefix=prefix)
        for e in entries:
            out.emit("file", f"  {e.item.source} -> s3://{e.item.bucket}/{e.item.key}"
                     + (f"  ({e.error})" if e.error else ""),
                     source=e.item.source, bucket=e.item.bucket, key=e.item.key, size=e.size,
                     error=e.error)
        return 0
    async with Uploader(config, journal=args.journal, executor=args.dask) as uploader:
        gc.freeze()
        gc.enable()
        spec = batch.make_spec(kind, origin, config, uploader.store.endpoint,
                               skip_existing=args.skip_existing)
        job, resumed = batch.open_job(uploader.journal, spec, entries)
        if resumed:
            log.info("resuming job %d (%s)", job.id, job.description)
        return await run_job(uploader, job.id, args, out, retry_failed=False)


def describe_destination(bucket: str | None, prefix: str) -> str:
    return f"s3://{bucket}/{prefix}" if bucket else "the manifest's destinations"


async def run_job(uploader: Any, job_id: int, args: argparse.Namespace, out: Output, *,
                  retry_failed: bool) -> int:
    """Run one job with progress and a summary; exit 9 when some files failed."""
    from .config import format_size
    from .errors import BigUploadError

    reporter = BatchReporter(out, show_progress(args))
    try:
        result = await uploader.resume_job(job_id, retry_failed=retry_failed,
                                           fail_fast=args.fail_fast, progress=reporter)
    except BigUploadError as exc:
        if exc.exit_code != 130 and exc.args:
            exc.args = (f"{exc.args[0]} [job {job_id} is kept: bigupload resume {job_id}]",)
        raise
    rate = result.sent_bytes / result.elapsed_s / 1e6 if result.elapsed_s else 0.0
    per_file = len(result.items) / result.elapsed_s if result.elapsed_s else 0.0
    if not out.as_json:  # JSON has them in the summary
        for failure in result.failures:
            out.emit("failure", f"failed: {failure.source} -> s3://{failure.bucket}/{failure.key}: "
                     f"{failure.error}")
    out.emit(
        "summary",
        f"job {result.job_id} {result.state.value}: {result.files} file(s), {result.uploaded} "
        f"uploaded, {result.skipped} skipped, {result.failed} failed; {format_size(result.sent_bytes)} "
        f"sent in {result.elapsed_s:.1f}s ({per_file:.0f} files/s, {rate:.0f} MB/s)"
        + (f"; retry the failures with: bigupload resume {result.job_id}" if result.failed else ""),
        job_id=result.job_id, state=result.state.value, files=result.files,
        uploaded=result.uploaded, skipped=result.skipped, failed=result.failed,
        total_bytes=result.total_bytes, sent_bytes=result.sent_bytes, elapsed_s=result.elapsed_s,
        failures=[{"source": f.source, "bucket": f.bucket, "key": f.key, "error": f.error,
                   "exit_code": f.exit_code} for f in result.failures],
    )
    return EXIT_PARTIAL if result.failed else 0


class BatchReporter:
    """Progress of a batch: one overall bar (bytes, rate, ETA, files in its postfix) and a
    bar per large file, on stderr; with --json, a ``file`` event per file on stdout."""

    def __init__(self, out: Output, bars: bool) -> None:
        self.out = out
        self.bars = bars
        self._overall: Any = None
        self._files = 0
        self._done = 0
        self._failed = 0
        self._positions: set[int] = set()

    def start_job(self, job_id: int, files: int, total_bytes: int, done_files: int,
                  done_bytes: int) -> None:
        self._files, self._done = files, done_files
        if self.out.as_json:
            self.out.emit("job", "", job_id=job_id, files=files, total_bytes=total_bytes,
                          done_files=done_files, done_bytes=done_bytes)
        if self.bars:
            from tqdm import tqdm

            self._overall = tqdm(total=total_bytes, initial=done_bytes, unit="B", unit_scale=True,
                                 unit_divisor=1024, desc=f"job {job_id}", file=sys.stderr,
                                 dynamic_ncols=True, position=0)
            self._postfix()

    def _postfix(self) -> None:
        if self._overall is not None:
            failed = f", {self._failed} failed" if self._failed else ""
            self._overall.set_postfix_str(f"{self._done}/{self._files} files{failed}", refresh=False)

    def advance(self, nbytes: int) -> None:
        if self._overall is not None:
            self._overall.update(nbytes)

    def file_progress(self, item: Any, size: int, multipart: bool) -> Any:
        if not self.bars or not multipart:
            return _OverallOnly(self)
        position = min(set(range(1, len(self._positions) + 2)) - self._positions)
        self._positions.add(position)
        return _FileBar(self, position)

    def release(self, position: int) -> None:
        self._positions.discard(position)

    def file_done(self, result: Any) -> None:
        from .journal import FileState

        if result.state is FileState.FAILED:
            self._failed += 1
            if self._overall is not None:
                self._overall.write(redact(f"bigupload: failed: {result.source}: {result.error}"),
                                    file=sys.stderr)
        else:
            self._done += 1
            if result.state is FileState.SKIPPED:
                self.advance(result.size)
        self._postfix()
        if self.out.as_json:
            self.out.emit("file", "", state=result.state.value, source=result.source,
                          bucket=result.bucket, key=result.key, size=result.size, etag=result.etag,
                          error=result.error, exit_code=result.exit_code)

    def close(self) -> None:
        if self._overall is not None:
            self._overall.close()
            self._overall = None


class _OverallOnly:
    """A file's progress counted on the overall bar only (small files)."""

    def __init__(self, reporter: BatchReporter) -> None:
        self.reporter = reporter

    def start(self, description: str, total_bytes: int, done_bytes: int) -> None:
        self.reporter.advance(done_bytes)

    def advance(self, nbytes: int) -> None:
        self.reporter.advance(nbytes)

    def close(self) -> None:
        pass


class _FileBar(_OverallOnly):
    """A large file's own bar, below the overall one; it also advances the overall bar."""

    def __init__(self, reporter: BatchReporter, position: int) -> None:
        super().__init__(reporter)
        self.position = position
        self.bar: Any = None

    def start(self, description: str, total_bytes: int, done_bytes: int) -> None:
        from tqdm import tqdm

        super().start(description, total_bytes, done_bytes)
        self.bar = tqdm(total=total_bytes, initial=done_bytes, unit="B", unit_scale=True,
                        unit_divisor=1024, desc=description, file=sys.stderr, dynamic_ncols=True,
                        position=self.position, leave=False)

    def advance(self, nbytes: int) -> None:
        super().advance(nbytes)
        if self.bar is not None:
            self.bar.update(nbytes)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        self.reporter.release(self.position)


async def cmd_resume(args: argparse.Namespace, out: Output) -> int:
    from .journal import JobState, Journal, UploadState
    from .uploader import Uploader

    with Journal(args.journal) as journal:
        if args.job is not None:
            job = journal.job(args.job)
            if job is None:
                raise UsageError(f"no job {args.job} in the journal {journal.path} (see: bigupload status)")
            jobs = [job]
        else:
            jobs = journal.jobs((JobState.ACTIVE,))
        # single-file uploads (``cp FILE``) too, when no job id was given
        singles = [] if args.job is not None else [
            r for r in journal.uploads(UploadState.ACTIVE)
            if not journal.in_job(r.fingerprint.path, r.bucket, r.key)]
    if not jobs and not singles:
        out.emit("summary", "nothing to resume (see: bigupload status)", jobs=0)
        return 0
    code = 0
    given = args.endpoint_url  # each job and upload sets its own below
    for job in jobs:
        if job.state is JobState.COMPLETED:
            out.emit("summary", f"job {job.id} is already complete", job_id=job.id, state=job.state.value)
            continue
        spec = json.loads(job.spec)
        if given and given.rstrip("/") != spec["endpoint"].rstrip("/"):
            raise UsageError(f"job {job.id} uploads to {spec['endpoint']}, not {given}")
        args.endpoint_url = spec["endpoint"]
        config = make_config(args)
        log.info("resuming job %d (%s)", job.id, job.description)
        async with Uploader(config, journal=args.journal, executor=args.dask) as uploader:
            gc.freeze()
            gc.enable()
            result = await run_job(uploader, job.id, args, out, retry_failed=True)
        code = max(code, result)
    for record in singles:
        code = max(code, await resume_single(record, given, args, out))
    return code


async def resume_single(record: Any, given: str | None, args: argparse.Namespace, out: Output) -> int:
    """Finish one unfinished single-file upload from the journal, as the same ``cp`` would."""
    from .config import format_size
    from .errors import BigUploadError
    from .uploader import Uploader

    where = f"s3://{record.bucket}/{record.key}"
    if given and given.rstrip("/") != record.endpoint.rstrip("/"):
        log.warning("skipping %s: it uploads to %s, not %s", where, record.endpoint, given)
        return 0
    args.endpoint_url = record.endpoint
    config = dataclasses.replace(make_config(args), part_size=record.part_size)
    log.info("resuming %s -> %s", record.fingerprint.path, where)
    try:
        async with Uploader(config, journal=args.journal, executor=args.dask) as uploader:
            result = await uploader.resume_upload(
                record, progress=TqdmProgress() if show_progress(args) else None)
    except BigUploadError as exc:
        if exc.exit_code == 130:
            raise
        return fail(out, args, exc.exit_code, f"{where}: {exc}", exc)
    out.emit("done", f"{record.fingerprint.path} -> {where}: {format_size(result.size)} in "
             f"{result.parts} parts, {result.resumed_parts} already on the server",
             **dataclasses.asdict(result))
    return 0


async def cmd_ls_uploads(args: argparse.Namespace, out: Output) -> int:
    from .client import AioS3Store

    bucket, prefix = parse_s3_url(args.url, key_required=False)
    async with AioS3Store.open(connection_config(args)) as store:
        uploads = await store.list_uploads(bucket, prefix)
    for u in uploads:
        out.emit("upload", f"{u.initiated or '-'}  s3://{bucket}/{u.key}  {u.upload_id}",
                 bucket=bucket, key=u.key, upload_id=u.upload_id, initiated=u.initiated)
    if not out.as_json:
        out.emit("summary", f"{len(uploads)} unfinished upload(s)")
    return 0


async def cmd_parts(args: argparse.Namespace, out: Output) -> int:
    from .client import AioS3Store, ObjectOptions

    bucket, key = parse_s3_url(args.url, key_required=True)
    async with AioS3Store.open(connection_config(args)) as store:
        parts = (await store.list_parts(bucket, key, args.upload_id, ObjectOptions())).parts
    if not out.as_json:
        out.emit("header", f"{'part':>6} {'size':>12}  etag")
    for p in parts:
        out.emit("part", f"{p.number:>6} {p.size:>12}  {p.etag}  {p.checksum or ''}".rstrip(),
                 **dataclasses.asdict(p))
    if not out.as_json:
        out.emit("summary", f"{len(parts)} part(s), {sum(p.size for p in parts)} bytes")
    return 0


async def cmd_abort(args: argparse.Namespace, out: Output) -> int:
    from .client import AioS3Store, ObjectOptions
    from .journal import Journal, UploadState

    bucket, key = parse_s3_url(args.url, key_required=True)
    async with AioS3Store.open(connection_config(args)) as store:
        await store.abort(bucket, key, args.upload_id, ObjectOptions())
    with Journal(args.journal) as journal:
        for record in journal.uploads(UploadState.ACTIVE):
            if record.upload_id == args.upload_id and (record.bucket, record.key) == (bucket, key):
                journal.finish(record.id, UploadState.ABORTED, error="aborted by the user")
    out.emit("aborted", f"aborted {args.upload_id} (s3://{bucket}/{key})", bucket=bucket, key=key,
             upload_id=args.upload_id)
    return 0


async def cmd_status(args: argparse.Namespace, out: Output) -> int:
    """Jobs, and the single-file upload rows (by id, with endpoint and destination): the
    unfinished ones, and with ``--all`` the closed ones with their state and reason."""
    from .config import format_size
    from .journal import (
        UPLOAD_CLOSED_STATES,
        FileState,
        JobState,
        Journal,
        UploadState,
        iter_unfinished,
    )

    with Journal(args.journal) as journal:
        if args.job is not None:
            job = journal.job(args.job)
            if job is None:
                raise UsageError(f"no job {args.job} in the journal {journal.path}")
            jobs = [job]
        else:
            jobs = journal.jobs(tuple(JobState) if args.all else (JobState.ACTIVE, JobState.PARTIAL))
        for job in jobs:
            totals = journal.job_totals(job.id)
            done = totals.done_bytes + (journal.job_parts_bytes(job.id) if job.state is JobState.ACTIVE else 0)
            pct = 100 * done / totals.bytes if totals.bytes else 100.0
            failed = f", {totals.failed_files} failed" if totals.failed_files else ""
            out.emit("job", f"job {job.id} [{job.state.value}] {job.description}: "
                     f"{totals.done_files}/{totals.files} files, {format_size(done)} of "
                     f"{format_size(totals.bytes)} ({pct:.0f}%){failed}"
                     + (f": {job.error}" if job.error else ""),
                     job_id=job.id, state=job.state.value, description=job.description,
                     files=totals.files, done_files=totals.done_files,
                     failed_files=totals.failed_files, bytes=totals.bytes, done_bytes=done,
                     reason=job.error, updated_at=job.updated_at)
            if args.job is not None:
                after = -1
                while page := journal.job_files(job.id, (FileState.FAILED,), after=after):
                    after = page[-1].seq
                    for f in page:
                        out.emit("failure", f"  failed: {f.source} -> s3://{f.bucket}/{f.key}: {f.error}",
                                 job_id=job.id, source=f.source, bucket=f.bucket, key=f.key,
                                 error=f.error, exit_code=f.exit_code)
        rows = [(r, p, d) for r, p, d in iter_unfinished(journal)
                if not journal.in_job(r.fingerprint.path, r.bucket, r.key)]
        closed = [] if not args.all or args.job is not None else [
            r for state in UPLOAD_CLOSED_STATES for r in journal.uploads(state)
            if not journal.in_job(r.fingerprint.path, r.bucket, r.key, unfinished=False)]
    if args.job is not None:
        return 0
    for record, parts, done in rows:
        pct = 100 * done / record.fingerprint.size if record.fingerprint.size else 100.0
        out.emit("unfinished",
                 f"upload {record.id} [{record.state.value}] {_row_destination(record)}: {parts}/"
                 f"{record.part_count} parts, {format_size(done)} of "
                 f"{format_size(record.fingerprint.size)} ({pct:.0f}%), "
                 + (f"upload id {record.upload_id}" if record.upload_id else "no upload id recorded"),
                 id=record.id, state=record.state.value, source=record.fingerprint.path,
                 bucket=record.bucket, key=record.key, endpoint=record.endpoint,
                 upload_id=record.upload_id, parts_done=parts, parts=record.part_count,
                 bytes_done=done, size=record.fingerprint.size, reason=None,
                 updated_at=record.updated_at)
    for record in sorted(closed, key=lambda r: r.id):
        outcome = (f"{format_size(record.fingerprint.size)}, ETag {record.etag}"
                   if record.state is UploadState.COMPLETED else record.error or "no reason recorded")
        out.emit("closed",
                 f"upload {record.id} [{record.state.value}] {_row_destination(record)}: {outcome} "
                 f"({_age(record.updated_at)} ago)",
                 id=record.id, state=record.state.value, source=record.fingerprint.path,
                 bucket=record.bucket, key=record.key, endpoint=record.endpoint,
                 upload_id=record.upload_id, etag=record.etag, size=record.fingerprint.size,
                 reason=record.error, updated_at=record.updated_at)
    if not out.as_json:
        out.emit("summary", f"{len(jobs)} job(s), {len(rows)} unfinished single-file upload(s)"
                 + (f", {len(closed)} closed single-file upload row(s)" if args.all else ""))
    return 0


def _row_destination(record: Any) -> str:
    return f"{record.fingerprint.path} -> s3://{record.bucket}/{record.key} on {record.endpoint}"


def _age(timestamp: float) -> str:
    """How long ago, in the units ``forget --older-than`` takes."""
    import time

    seconds = max(0.0, time.time() - timestamp)
    for unit, length in (("d", 86400), ("h", 3600)):
        if seconds >= length:
            return f"{int(seconds // length)}{unit}"
    return f"{int(seconds // 60)}m"


AGE_UNITS = {"d": 86400, "h": 3600, "m": 60}


def parse_age(text: str) -> float:
    """``30d``, ``12h`` or ``90m`` -> seconds."""
    match = re.fullmatch(r"(\d+)([dhm])", text.strip())
    if not match:
        raise UsageError(f"--older-than wants a whole number of days, hours or minutes "
                         f"(30d, 12h, 90m), got {text!r}")
    return int(match.group(1)) * AGE_UNITS[match.group(2)]


def parse_row_ids(words: list[str]) -> tuple[list[int], list[int]]:
    """``upload 12 13 job 3`` -> ([12, 13], [3]): upload rows and jobs are numbered apart,
    so each number is named by the word before it, as ``status`` shows it."""
    uploads: list[int] = []
    jobs: list[int] = []
    kind: list[int] | None = None
    for word in words:
        if word in ("upload", "uploads"):
            kind = uploads
        elif word in ("job", "jobs"):
            kind = jobs
        elif word.isdigit() and kind is not None:
            kind.append(int(word))
        elif word.isdigit():
            raise UsageError(f"say `upload {word}` or `job {word}`: upload rows and jobs are "
                             "numbered separately (see bigupload status)")
        else:
            raise UsageError(f"forget takes `upload ID...` and `job ID...`, not {word!r}")
    if words and not uploads and not jobs:
        raise UsageError(f"no ids after {words[-1]!r}")
    return uploads, jobs


async def cmd_forget(args: argparse.Namespace, out: Output) -> int:
    """Remove rows from the journal, never from the server. Named rows may be in any
    state (an active one is held first, so a running upload is not forgotten under it,
    and the command to abort it on the server is shown); the filters alone only take
    closed rows. ``--failed`` takes partial jobs too: what failed is no longer retried."""
    import contextlib
    import time

    from .errors import JournalError, ResumeError
    from .journal import JOB_CLOSED_STATES, UPLOAD_CLOSED_STATES, JobState, Journal, UploadState

    upload_ids, job_ids = parse_row_ids(args.ids)
    age = None if args.older_than is None else parse_age(args.older_than)
    named = bool(args.ids)
    if not (named or args.finished or args.failed or age is not None):
        raise UsageError("forget needs rows (upload ID..., job ID... as bigupload status shows "
                         "them), --finished, --failed or --older-than AGE")
    upload_states: tuple[UploadState, ...] | None = None
    job_states: tuple[JobState, ...] | None = None
    if args.finished or args.failed:
        upload_states = ((UploadState.COMPLETED,) if args.finished else ()) + (
            (UploadState.FAILED, UploadState.ABORTED, UploadState.SUPERSEDED) if args.failed else ())
        job_states = ((JobState.COMPLETED,) if args.finished else ()) + (
            (JobState.PARTIAL,) if args.failed else ())
    elif not named:
        upload_states, job_states = UPLOAD_CLOSED_STATES, JOB_CLOSED_STATES
    with Journal(args.journal) as journal, contextlib.ExitStack() as held:
        cutoff = None if age is None else time.time() - age
        active_uploads = []
        for row in upload_ids:
            try:
                record = journal.get(row)
            except JournalError:
                raise
            except ResumeError:  # no such row
                raise UsageError(f"no upload {row} in the journal {journal.path} "
                                 "(see: bigupload status --all)") from None
            if (record.state is UploadState.ACTIVE and upload_states is None
                    and (cutoff is None or record.updated_at < cutoff)):
                held.enter_context(journal.claim(record.endpoint, record.bucket, record.key))
                active_uploads.append(record)
        active_jobs = []
        for job_id in job_ids:
            job = journal.job(job_id)
            if job is None:
                raise UsageError(f"no job {job_id} in the journal {journal.path} (see: bigupload status --all)")
            if (job.state is JobState.ACTIVE and job_states is None
                    and (cutoff is None or job.updated_at < cutoff)):
                held.enter_context(journal.claim_job(job.id))
                active_jobs.append(job)
        uploads = journal.forget_uploads(ids=upload_ids if named else None, states=upload_states,
                                         older_than=age)
        jobs = journal.forget_jobs(ids=job_ids if named else None, states=job_states, older_than=age)
    for record in active_uploads:
        where = f"s3://{record.bucket}/{record.key}"
        if record.upload_id:
            stop = f"bigupload abort {where} --upload-id {record.upload_id} --endpoint-url {record.endpoint}"
            text = f"to stop its billing: {stop}"
        else:
            stop = f"bigupload ls-uploads {where} --endpoint-url {record.endpoint}"
            text = f"no upload id was recorded; to find one on the server: {stop}"
        log.warning("upload %d was active: the upload to %s on the server (if any) is left as "
                    "is; %s", record.id, where, text)
        if out.as_json:
            out.emit("warning", "", id=record.id, state=record.state.value, bucket=record.bucket,
                     key=record.key, endpoint=record.endpoint, upload_id=record.upload_id, command=stop)
    for job in active_jobs:
        log.warning("job %d was active: its unfinished large-file uploads stay in the journal as "
                    "single-file uploads (bigupload status lists them, bigupload resume finishes "
                    "them)", job.id)
        if out.as_json:
            out.emit("warning", "", job_id=job.id, state=job.state.value)
    if uploads == 0 and jobs == 0:
        out.emit("summary", "nothing to forget", forgotten_uploads=0, forgotten_jobs=0,
                 server_changed=False)
        return 0
    out.emit("summary", f"forgot {uploads} upload row(s) and {jobs} job(s); nothing on the "
             "server was changed", forgotten_uploads=uploads, forgotten_jobs=jobs,
             server_changed=False)
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace, Output], Awaitable[int]]] = {
    "cp": cmd_cp, "resume": cmd_resume, "ls-uploads": cmd_ls_uploads, "parts": cmd_parts,
    "abort": cmd_abort, "status": cmd_status, "forget": cmd_forget,
}


def _interrupted(args: argparse.Namespace) -> str:
    if args.command == "cp" and (args.manifest or args.recursive):
        return ("interrupted; the job is saved: run the same command again, or bigupload resume, "
                "to continue it")
    if args.command == "cp":
        return ("interrupted; the journal is saved: run the same command again to resume "
                "(or add --restart to start over)")
    if args.command == "resume":
        return "interrupted; the job is saved: run bigupload resume again to continue it"
    return "interrupted"


def run(args: argparse.Namespace, out: Output) -> int:
    """Run a command under the event loop, turning SIGINT/SIGTERM into a clean stop."""
    import anyio

    from .errors import Cancelled
    from .scheduler import task_group
    from .uploader import event_loop_options

    async def main() -> int:
        stopped: list[int] = []
        code: list[int] = []

        async def watch_signals(scope: anyio.CancelScope) -> None:
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for signum in signals:
                    stopped.append(signum)
                    scope.cancel()
                    return

        async def command(scope: anyio.CancelScope) -> None:
            code.append(await COMMANDS[args.command](args, out))
            scope.cancel()

        async with task_group() as tg:
            tg.start_soon(watch_signals, tg.cancel_scope)
            tg.start_soon(command, tg.cancel_scope)
        if stopped or not code:
            raise Cancelled(_interrupted(args))
        return code[0]

    return anyio.run(main, backend="asyncio", backend_options=event_loop_options())


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .redact import RedactingFormatter, add_secret

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s" if args.debug else "bigupload: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING, handlers=[handler])
    # known before any client exists, so even a failure to create one cannot print them
    add_secret(os.environ.get("AWS_SECRET_ACCESS_KEY"))
    add_secret(os.environ.get("AWS_SESSION_TOKEN"))
    if not args.debug:
        logging.getLogger("bigupload").setLevel(logging.INFO if not args.json else logging.WARNING)
        for noisy in ("botocore", "aiobotocore", "urllib3"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        # Dask configures its loggers when first imported, from its config: ask it for
        # warnings only (its worker processes inherit the variable)
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    if args.no_verify_ssl:
        log.warning("TLS certificate verification is OFF (--no-verify-ssl)")
    out = Output(args.json)
    from .errors import BigUploadError

    try:
        return run(args, out)
    except UsageError as exc:
        return fail(out, args, 2, str(exc), exc)
    except BigUploadError as exc:
        return fail(out, args, exc.exit_code, str(exc), exc)
    except KeyboardInterrupt as exc:
        return fail(out, args, 130, _interrupted(args), exc)
    except Exception as exc:  # a bug: say so, one line unless --debug
        return fail(out, args, 1, f"internal error: {type(exc).__name__}: {exc} (rerun with --debug)", exc)


def fail(out: Output, args: argparse.Namespace, code: int, message: str, exc: BaseException) -> int:
    if args.debug:
        import traceback

        sys.stderr.write(redact("".join(traceback.format_exception(exc))))
    message = redact(message)
    print(f"bigupload: error: {message}", file=sys.stderr)
    if out.as_json:
        out.emit("error", message, exit_code=code, error=type(exc).__name__, message=message)
    return code


def entry() -> None:
    # The cyclic GC finds nothing to free among the objects botocore and aiohttp create at
    # import, but walking them costs 40-60 ms of a 0.3 s start; cmd_cp turns it back on.
    gc.disable()
    sys.exit(main())


if __name__ == "__main__":
    entry()
