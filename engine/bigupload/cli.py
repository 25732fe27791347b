"""The ``bigupload`` command: argument parsing, output and exit codes. No engine logic.

Every setting can also be set with a ``BIGUPLOAD_<OPTION>`` environment variable
(``BIGUPLOAD_PART_SIZE=64MiB``), parsed by ``from_env`` when the parser is built; the
command line wins. With ``--json`` stdout carries one JSON object per line and logs go to
stderr."""

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
from typing import Any, NoReturn, TypeVar

from .config import ChecksumAlgorithm, parse_size
from .errors import BigUploadError, Cancelled, ConfigError
from .redact import redact
from .terminal import (
    BatchReporter,
    Output,
    OutputClosed,
    TqdmProgress,
    log_handler,
    output_closed,
    show_job_summary,
    show_uploaded,
)

DESCRIPTION = """Fast, resumable, parallel multipart uploads to S3 and S3-compatible stores.

Each setting can also come from the environment as BIGUPLOAD_<OPTION>
(BIGUPLOAD_PART_SIZE=64MiB, BIGUPLOAD_JSON=1); the command line wins.
Switches there take 1/true/yes/on or 0/false/no/off."""
PROGRESS = ("auto", "always", "never")
CHECKSUM_TYPES = ("full-object", "composite")
SSE = ("AES256", "aws:kms")

EXIT_CODES = """exit codes:
  0    success
  1    internal error (a bug: please report it, with --debug output)
  2    usage or configuration error (nothing was sent)
  3    source problem: missing, unreadable, not a regular file, or changed
  4    authentication or permission problem, or the server's TLS certificate
       failed verification (check AWS_CA_BUNDLE, or the endpoint's certificate)
  5    transient failure after retries (the journal is kept: run the same
       command to resume)
  6    integrity failure: the server saw different bytes, or the object differs
  7    the store refused the request (no such bucket, upload gone, invalid)
  8    resume refused: the file changed since the upload began, or the journal
       disagrees
  9    partial: a batch finished, but some files failed (listed; `bigupload
       resume ID` retries them)
  10   the Dask cluster could not run the work (--dask); the message says what
       was kept
  11   --no-overwrite: the key already exists; nothing was written
  130  interrupted (the journal is flushed: run the same command, or `bigupload
       resume`, to resume)
  141  stdout was closed (piped into `head`): stopped quietly, as Unix tools do
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


T = TypeVar("T")
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


def env_name(option: str) -> str:
    """``--part-size`` -> ``BIGUPLOAD_PART_SIZE``."""
    return "BIGUPLOAD_" + option.lstrip("-").upper().replace("-", "_")


def from_env(option: str, parse: Callable[[str], T], fallback: T) -> T:
    """The default of ``option``: its ``BIGUPLOAD_*`` variable parsed by ``parse``, or
    ``fallback`` when unset or empty. A value ``parse`` refuses is a UsageError naming the
    variable, raised while the parser is built, so even ``--help`` says so (exit 2)."""
    name = env_name(option)
    raw = os.environ.get(name, "")
    if not raw.strip():
        return fallback
    try:
        return parse(raw.strip())
    except (ValueError, ConfigError) as exc:
        raise UsageError(f"{name}={raw!r}: {exc}") from None


def env_flag(text: str) -> bool:
    if text.lower() in TRUE_WORDS:
        return True
    if text.lower() in FALSE_WORDS:
        return False
    raise ValueError(f"expected one of {'/'.join(TRUE_WORDS)} or {'/'.join(FALSE_WORDS)}")


def env_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError("expected a whole number") from None


def env_size(text: str) -> str:
    parse_size(text)  # refused here, named by its variable; parsed again with the options
    return text


def env_text(text: str) -> str:
    return text


def env_choice(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}")
        return text
    return parse


def env_checksum(text: str) -> str:
    return ChecksumAlgorithm.parse(text).value


def add(group: argparse._ActionsContainer, option: str, parse: Callable[[str], object] = env_text,
        fallback: object = None, *, aliases: tuple[str, ...] = (), **kwargs: Any) -> None:
    """An option whose default comes from its ``BIGUPLOAD_*`` variable (see ``from_env``)."""
    group.add_argument(option, *aliases, default=from_env(option, parse, fallback), **kwargs)


def parse_s3_url(url: str, *, key_required: bool, form: str = "s3://bucket/key") -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key), validating the bucket name and key length.
    ``form`` is what the command expects, as its usage writes it."""
    if not url.startswith("s3://"):
        raise UsageError(f"not an S3 URL: {url!r} (expected {form})")
    bucket, _, key = url[5:].partition("/")
    if not BUCKET_RE.match(bucket) or ".." in bucket:
        raise UsageError(f"invalid bucket name {bucket!r} (3-63 lowercase letters, digits, '.', '-')")
    if key_required and not key:
        raise UsageError(f"missing key in {url!r} (expected s3://bucket/key)")
    if len(key.encode("utf-8")) > 1024:
        raise UsageError(f"object key is {len(key.encode('utf-8'))} bytes; S3 allows 1,024")
    return bucket, key


class Parser(argparse.ArgumentParser):
    """argparse, with its errors as one line (``bigupload: error: …``) and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"bigupload: error: {message} (see: {self.prog} --help)\n")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Help in two columns wide enough that each option's help fits on one line."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=30)


def add_output(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("output")
    add(g, "--json", env_flag, False, action="store_true",
        help="JSON lines on stdout; logs stay on stderr")
    add(g, "--debug", env_flag, False, action="store_true", help="verbose logs; tracebacks on errors")


def add_journal(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("journal")
    add(g, "--journal", metavar="FILE", help="default: $XDG_STATE_HOME/bigupload/…")


def add_connection(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("connection")
    add(g, "--endpoint-url", env_text, os.environ.get("AWS_ENDPOINT_URL") or None, metavar="URL",
        help="http(s)://host[:port] (or AWS_ENDPOINT_URL)")
    add(g, "--region", metavar="NAME", help="signing region (default: the AWS config's)")
    add(g, "--profile", metavar="NAME", help="AWS profile for credentials and region")
    add(g, "--no-verify-ssl", env_flag, False, action="store_true",
        help="skip TLS certificate checks (unsafe; says so)")


def add_sending(parser: argparse.ArgumentParser, *, batches: bool) -> None:
    g = parser.add_argument_group("sending")
    add(g, "--concurrency", env_int, 8, type=int, metavar="N",
        help="requests in flight, all files (default 8)")
    add(g, "--memory-limit", env_size, metavar="SIZE",
        help="part data held at once (default N x part)")
    add(g, "--max-attempts", env_int, 5, type=int, metavar="N",
        help="tries per request (default 5)")
    add(g, "--progress", env_choice(*PROGRESS), "auto", choices=PROGRESS, metavar="WHEN",
        help="bars on stderr: auto, always or never")
    add(g, "--dask", metavar="ADDRESS",
        help="on Dask: tcp://host:8786, or local:N")
    if batches:
        add(g, "--fail-fast", env_flag, False, action="store_true",
            help="stop a job at the first file that fails")


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command. Each setting's default comes from its ``BIGUPLOAD_*``
    variable, read here: a malformed one is a UsageError naming it (exit 2)."""
    parser = Parser(prog="bigupload", description=DESCRIPTION, epilog=EXIT_CODES,
                    formatter_class=HelpFormatter)
    parser.add_argument("--version", action=VersionAction, nargs=0,
                        help="the version and each checksum's backend")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, usage: str, help: str, description: str | None = None) -> Parser:
        p: Parser = sub.add_parser(name, usage=usage, help=help, description=description or help,
                                   epilog=EXIT_CODES, formatter_class=HelpFormatter)
        return p

    cp = command(
        "cp", "bigupload cp [options] FILE s3://bucket/key\n"
        "       bigupload cp [options] DIR s3://bucket/prefix/ --recursive\n"
        "       bigupload cp [options] --manifest FILE [s3://bucket/prefix/]",
        "upload a file, a directory (-r) or a manifest; or resume it")
    cp.add_argument("paths", nargs="*", metavar="SOURCE DESTINATION",
                    help="FILE or DIR, and s3://bucket/key (or prefix/)")
    g = cp.add_argument_group("this run")
    g.add_argument("--dry-run", action="store_true", help="print the plan; send nothing")
    g.add_argument("--restart", action="store_true", help="abort the unfinished upload; start over")
    g.add_argument("--upload-id", metavar="ID", help="adopt this multipart upload (parts verified)")
    g = cp.add_argument_group("sizes and checksums")
    add(g, "--part-size", env_size, metavar="SIZE", help="e.g. 64MiB (default 32MiB, grown to fit)")
    add(g, "--multipart-threshold", env_size, metavar="SIZE",
        help="larger files go multipart (default: a part)")
    add(g, "--checksum", env_checksum, "crc32c", metavar="ALG",
        help="crc32c (default), crc32, crc64nvme, sha256, none")
    add(g, "--checksum-type", env_choice(*CHECKSUM_TYPES), choices=CHECKSUM_TYPES, metavar="TYPE",
        help="full-object (default for CRCs) or composite")
    g = cp.add_argument_group("directories and manifests (one resumable job)")
    g.add_argument("-r", "--recursive", action="store_true", help="upload a directory tree")
    add(g, "--manifest", metavar="FILE", help="lines of SOURCE<TAB>KEY, or JSON lines (README)")
    g.add_argument("--include", action="append", default=[], metavar="GLOB",
                   help="only paths or names that match (repeatable)")
    g.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                   help="skip paths or names that match (repeatable)")
    add(g, "--follow-symlinks", env_flag, False, action="store_true",
        help="follow symbolic links (default: skip them)")
    add(g, "--skip-existing", env_flag, False, aliases=("--sync",), action="store_true",
        help="skip objects there with the same content")
    g = cp.add_argument_group("the object")
    add(g, "--content-type", metavar="TYPE", help="default: guessed from the file name")
    g.add_argument("--metadata", action="append", default=[], metavar="K=V",
                   help="user metadata (repeatable)")
    add(g, "--storage-class", metavar="CLASS", help="e.g. STANDARD_IA, GLACIER_IR")
    add(g, "--sse", env_choice(*SSE), choices=SSE, metavar="ALG",
        help="server-side encryption: AES256 or aws:kms")
    add(g, "--sse-kms-key-id", metavar="ID", help="the KMS key of --sse aws:kms")
    add(g, "--sse-c-key-file", metavar="FILE", help="a 32-byte SSE-C key (https only)")
    add(g, "--request-payer", env_flag, False, action="store_true",
        help="pay for a requester-pays bucket")
    add(g, "--expected-bucket-owner", metavar="ID", help="refuse a bucket of another account")
    add(g, "--no-overwrite", env_flag, False, action="store_true",
        help="never replace an object (exit 11; batch: skip)")
    add_sending(cp, batches=True)
    add_connection(cp)
    add_journal(cp)
    add_output(cp)

    resume = command("resume", "bigupload resume [options] [JOB_ID]",
                     "continue unfinished uploads: every job and file, or one job")
    resume.add_argument("job", nargs="?", type=int, metavar="JOB_ID",
                        help="one job (a partial job retries its failures)")
    g = resume.add_argument_group("the objects")
    add(g, "--sse-c-key-file", metavar="FILE", help="the SSE-C key the uploads began with")
    add_sending(resume, batches=True)
    add_connection(resume)
    add_journal(resume)
    add_output(resume)

    status = command("status", "bigupload status [options] [JOB_ID]",
                     "jobs and unfinished uploads in the journal (no server)")
    status.add_argument("job", nargs="?", type=int, metavar="JOB_ID", help="one job, with its failures")
    status.add_argument("--all", action="store_true",
                        help="closed rows too, with their state and reason")
    add_journal(status)
    add_output(status)

    forget = command(
        "forget", "bigupload forget [options] (upload ID... | job ID...)\n"
        "       bigupload forget [options] [--finished] [--failed] [--older-than AGE]",
        "remove rows from the journal; never touches the server",
        "Remove upload rows and batch jobs from the journal, as `bigupload status` shows\n"
        "them. Nothing on the server is changed: to stop paying for an unfinished upload,\n"
        "`bigupload abort` it.")
    forget.add_argument("ids", nargs="*", metavar="upload ID | job ID",
                        help="as status names them: upload 12 13 job 3")
    g = forget.add_argument_group("closed rows")
    g.add_argument("--finished", action="store_true", help="completed uploads and jobs")
    g.add_argument("--failed", action="store_true",
                   help="failed, aborted, superseded uploads; partial jobs")
    g.add_argument("--older-than", metavar="AGE", help="30d, 12h or 90m since the last change")
    add_journal(forget)
    add_output(forget)

    ls = command("ls-uploads", "bigupload ls-uploads [options] s3://bucket[/prefix]",
                 "list unfinished multipart uploads on the server")
    ls.add_argument("url", metavar="s3://bucket[/prefix]")
    add_connection(ls)
    add_output(ls)

    parts = command("parts", "bigupload parts [options] s3://bucket/key --upload-id ID",
                    "list the parts of a multipart upload on the server")
    parts.add_argument("url", metavar="s3://bucket/key")
    parts.add_argument("--upload-id", required=True, metavar="ID", help="the upload (required)")
    add_connection(parts)
    add_output(parts)

    abort = command("abort", "bigupload abort [options] s3://bucket/key --upload-id ID",
                    "abort a multipart upload on the server (its journal row too)")
    abort.add_argument("url", metavar="s3://bucket/key")
    abort.add_argument("--upload-id", required=True, metavar="ID", help="the upload (required)")
    add_connection(abort)
    add_journal(abort)
    add_output(abort)
    return parser


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

    def size(value: str | None, option: str) -> int | None:
        try:
            return None if value is None else parse_size(value)
        except ConfigError as exc:
            raise ConfigError(f"{option}: {exc}") from None

    def opt(name: str) -> Any:  # ``resume`` has no object options: the job's own apply
        return getattr(args, name, None)

    return UploadConfig(
        part_size=size(opt("part_size"), "--part-size"),
        concurrency=args.concurrency,
        memory_limit=size(args.memory_limit, "--memory-limit"),
        multipart_threshold=size(opt("multipart_threshold"), "--multipart-threshold"),
        checksum=ChecksumAlgorithm.parse(opt("checksum") or "crc32c"),
        max_attempts=args.max_attempts,
        endpoint_url=args.endpoint_url,
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


def show_progress(args: argparse.Namespace) -> bool:
    """Bars on stderr: ``--progress always``, or ``auto`` on a terminal without --json."""
    progress = getattr(args, "progress", "never")
    return bool(progress == "always"
                or (progress == "auto" and sys.stderr.isatty() and not args.json))


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
    show_uploaded(out, args.source, bucket, key, result)
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
    bucket, prefix = (None, "") if destination is None else parse_s3_url(destination, key_required=False,
                                                                             form="s3://bucket/prefix/")
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

    reporter = BatchReporter(out, show_progress(args))
    try:
        result = await uploader.resume_job(job_id, retry_failed=retry_failed,
                                           fail_fast=args.fail_fast, progress=reporter)
    except BigUploadError as exc:
        if exc.exit_code != 130 and exc.args:
            exc.args = (f"{exc.args[0]} [job {job_id} is kept: bigupload resume {job_id}]",)
        raise
    show_job_summary(out, result)
    return EXIT_PARTIAL if result.failed else 0


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

    bucket, prefix = parse_s3_url(args.url, key_required=False, form="s3://bucket[/prefix]")
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

    from .scheduler import primary_error
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

        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(watch_signals, tg.cancel_scope)
                tg.start_soon(command, tg.cancel_scope)
        except BaseExceptionGroup as group:
            raise primary_error(group) from None
        if stopped or not code:
            raise Cancelled(_interrupted(args))
        return code[0]

    return anyio.run(main, backend="asyncio", backend_options=event_loop_options())


SIZED_OPTIONS = ("--part-size", "--multipart-threshold", "--memory-limit", "--concurrency",
                 "--max-attempts")


def keep_negative_values(argv: Sequence[str]) -> list[str]:
    """argparse takes ``-5MiB`` for an option (only ``-5`` looks like a number to it), so
    ``--part-size -5MiB`` would be "expected one argument": the value is kept with its
    option, for the size parser to refuse as negative."""
    out: list[str] = []
    tokens = iter(argv)
    for token in tokens:
        if token in SIZED_OPTIONS:
            value = next(tokens, None)
            if value is not None and re.match(r"-[\d.]", value):
                out.append(f"{token}={value}")
                continue
            out.append(token)
            if value is not None:
                out.append(value)
            continue
        out.append(token)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()
    except UsageError as exc:  # a malformed BIGUPLOAD_* variable: even --help says so
        print(f"bigupload: error: {redact(str(exc))}", file=sys.stderr)
        return 2
    args = parser.parse_args(keep_negative_values(sys.argv[1:] if argv is None else argv))
    from .redact import RedactingFormatter, add_secret

    # while bars may be drawn, log lines go through them instead of cutting across them
    handler = log_handler(show_progress(args))
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
    if getattr(args, "no_verify_ssl", False):
        log.warning("TLS certificate verification is OFF (--no-verify-ssl)")
    out = Output(args.json)
    try:
        return run(args, out)
    except OutputClosed:
        return output_closed()
    except UsageError as exc:
        return fail(out, args, 2, str(exc), exc)
    except Cancelled as exc:
        return fail(out, args, exc.exit_code, str(exc), exc)
    except BigUploadError as exc:
        return fail(out, args, exc.exit_code, str(exc), exc)
    except KeyboardInterrupt as exc:
        return fail(out, args, Cancelled.exit_code, _interrupted(args), exc)
    except Exception as exc:  # a bug: say so, one line unless --debug
        return fail(out, args, 1, f"internal error: {type(exc).__name__}: {exc} (rerun with --debug)", exc)


def fail(out: Output, args: argparse.Namespace, code: int, message: str, exc: BaseException) -> int:
    """Say why the command stopped, in one line on stderr (and an event with --json), and
    return its exit code. Being interrupted is not an error, and is not called one."""
    if args.debug:
        import traceback

        sys.stderr.write(redact("".join(traceback.format_exception(exc))))
    message = redact(message)
    interrupted = code == Cancelled.exit_code
    print(f"bigupload: {message}" if interrupted else f"bigupload: error: {message}", file=sys.stderr)
    if out.as_json:
        try:
            out.emit("interrupted" if interrupted else "error", message, exit_code=code,
                     error=type(exc).__name__, message=message)
        except OutputClosed:
            return output_closed()
    return code


def entry() -> None:
    # The cyclic GC finds nothing to free among the objects botocore and aiohttp create at
    # import, but walking them costs 40-60 ms of a 0.3 s start; cmd_cp turns it back on.
    gc.disable()
    sys.exit(main())


if __name__ == "__main__":
    entry()
