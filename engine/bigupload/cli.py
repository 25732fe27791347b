"""The ``bigupload`` command: parse (``cliargs``), call the engine (``Uploader``), render
(``terminal``), and turn what stopped it into one line and an exit code (``EXIT_CODES``).
No orchestration here: what a command does to the journal or the server is the engine's.

Every setting can also be set with a ``BIGUPLOAD_<OPTION>`` environment variable
(``BIGUPLOAD_PART_SIZE=64MiB``); the command line wins. With ``--json`` stdout carries one
JSON object per line and logs go to stderr."""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import re
import signal
import sys
import traceback
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence

import anyio

from . import batch
from .cliargs import EXIT_CODES as EXIT_CODES  # re-exported with the parser, for tests
from .cliargs import (
    UsageError,
    build_parser,
    check_environment,
    connection_config,
    expected_size,
    keep_negative_values,
    make_config,
    parse_age,
    parse_row_ids,
    parse_s3_url,
)
from .config import format_size
from .errors import BigUploadError, Cancelled, SourceError
from .plan import plan, plan_stream
from .redact import RedactingFormatter, add_secret, redact
from .reports import ResumedFile, ResumedJob
from .scheduler import task_group
from .source import check_regular_file
from .stream import is_stream_path, stdin_file
from .terminal import (
    BatchReporter,
    Output,
    OutputClosed,
    TqdmProgress,
    limit_text,
    log_handler,
    output_closed,
    show_aborted,
    show_copied,
    show_forgotten,
    show_job_summary,
    show_parts,
    show_resumed_file,
    show_status,
    show_uploaded,
    show_uploads,
)
from .uploader import Uploader, event_loop_options

EXIT_PARTIAL = 9
log = logging.getLogger("bigupload")


def show_progress(args: argparse.Namespace) -> bool:
    """Bars on stderr: ``--progress always``, or ``auto`` on a terminal without --json."""
    progress = getattr(args, "progress", "never")
    return bool(progress == "always"
                or (progress == "auto" and sys.stderr.isatty() and not args.json))


def freeze_gc() -> None:
    """Once the S3 client is open: botocore's models are loaded and live until exit, so
    keep the cyclic GC from walking them again and again while parts are in flight (about
    4% of the CPU otherwise), and let it run again (``entry`` turned it off for start-up)."""
    gc.freeze()
    gc.enable()


async def cmd_cp(args: argparse.Namespace, out: Output) -> int:
    if args.manifest is not None:
        if len(args.paths) > 1:
            raise UsageError("with --manifest, give at most a destination (s3://bucket/prefix/)")
        return await cmd_batch(args, out, None, args.paths[0] if args.paths else None)
    if len(args.paths) != 2:
        raise UsageError("cp needs a SOURCE and a DESTINATION (s3://bucket/key), "
                         "or --manifest FILE")
    source, destination = args.paths
    if source.startswith("s3://") or re.match(r"https?://", source):
        return await cmd_copy(args, out, source, destination)
    if source == "-":  # standard input: a file given with `<` is that file, resumable
        if sys.__stdin__ is None:  # closed (`<&-`): Python found no fd 0 at start-up, and
            # the event loop's own descriptors have taken the number since
            raise SourceError("standard input is closed: nothing to read (give the data on "
                              "a pipe, or name a file)")
        source = stdin_file() or "-"
        if source != "-" and args.expected_size is not None:
            log.info("standard input is the file %s: its own size is used, not "
                     "--expected-size", source)
            args.expected_size = None
    if source == "-" or is_stream_path(source):
        return await cmd_stream(args, out, source, destination)
    if args.expected_size is not None:
        raise UsageError("--expected-size applies to streams (-, a FIFO): a file's size is known")
    if os.path.isdir(source):
        if not args.recursive:
            raise SourceError(f"{source}: is a directory (use --recursive to upload what it "
                              "holds)")
        return await cmd_batch(args, out, source, destination)
    if args.include or args.exclude or args.skip_existing:
        raise UsageError("--include, --exclude and --skip-existing apply to directories and "
                         "manifests")
    bucket, key = parse_s3_url(destination, key_required=False)
    if not key or key.endswith("/"):
        key += os.path.basename(source.rstrip("/"))
    config = make_config(args)
    size = check_regular_file(source).st_size
    the_plan = plan(size, config)
    if args.dry_run:
        out.emit("plan", f"{source} -> s3://{bucket}/{key}: {format_size(size)}, "
                 + (f"{the_plan.part_count} parts of {format_size(the_plan.part_size)}"
                    if the_plan.multipart else "one PutObject")
                 + f", checksum {config.checksum.value}, concurrency {config.concurrency}"
                 + (f", {limit_text(config.max_bandwidth)}" if config.max_bandwidth else ""),
                 source=source, bucket=bucket, key=key, size=size,
                 multipart=the_plan.multipart, part_size=the_plan.part_size,
                 parts=the_plan.part_count, checksum=config.checksum.value,
                 max_bandwidth=config.max_bandwidth)
        return 0
    async with Uploader(config, journal=args.journal, executor=args.dask) as uploader:
        await uploader.connect()
        freeze_gc()
        result = await uploader.upload_file(
            source, bucket, key,
            progress=TqdmProgress(config.max_bandwidth) if show_progress(args) else None,
            restart=args.restart, upload_id=args.upload_id)
    show_uploaded(out, source, bucket, key, result)
    for notice in result.notices:
        log.info("%s", notice)
    return 0


async def cmd_stream(args: argparse.Namespace, out: Output, source: str,
                     destination: str) -> int:
    """Standard input (``-``), or a FIFO or device, read once and uploaded as it comes."""
    args.stream = True  # an interruption's message says that nothing is kept
    if args.include or args.exclude or args.skip_existing or args.recursive:
        raise UsageError("--recursive, --include, --exclude and --skip-existing apply to "
                         "directories and manifests, not to a stream")
    if args.restart or args.upload_id:
        raise UsageError("--restart and --upload-id apply to files: a stream cannot be resumed")
    bucket, key = parse_s3_url(destination, key_required=source == "-")
    if not key or key.endswith("/"):  # a FIFO or device adds its name, as a file does
        if source == "-":
            raise UsageError(f"standard input has no name to add to {destination}: give the "
                             "whole key (s3://bucket/key)")
        key += os.path.basename(source.rstrip("/"))
    name = "standard input" if source == "-" else source
    config = make_config(args)
    expected = expected_size(args)
    the_plan = plan_stream(config, expected)
    if args.dry_run:
        growth = ("" if the_plan.largest == the_plan.start else
                  f", growing after part {the_plan.steady:,} up to {format_size(the_plan.largest)}")
        out.emit("plan", f"{name} -> s3://{bucket}/{key}: a stream"
                 + (f" of about {format_size(expected)}" if expected is not None else "")
                 + f", parts of {format_size(the_plan.start)}{growth}, at most "
                 f"{format_size(the_plan.capacity())}, checksum {config.checksum.value}, "
                 f"concurrency {config.concurrency}"
                 + (f", {limit_text(config.max_bandwidth)}" if config.max_bandwidth else ""),
                 source=source, bucket=bucket, key=key, size=expected, multipart=None,
                 part_size=the_plan.start, parts=None, checksum=config.checksum.value,
                 stream=True, largest_part_size=the_plan.largest,
                 capacity=the_plan.capacity(), max_bandwidth=config.max_bandwidth)
        return 0
    if source == "-" and sys.stdin is not None and sys.stdin.isatty():
        log.info("reading standard input from the terminal (end it with Ctrl-D)")
    async with Uploader(config, journal=args.journal, executor=args.dask) as uploader:
        await uploader.connect()
        freeze_gc()
        result = await uploader.upload_stream(
            0 if source == "-" else source, bucket, key, expected_size=expected, name=name,
            progress=TqdmProgress(config.max_bandwidth) if show_progress(args) else None)
    show_uploaded(out, name, bucket, key, result)
    return 0


async def cmd_copy(args: argparse.Namespace, out: Output, source: str, destination: str) -> int:
    """A server-side copy: ``s3://a/k`` to ``s3://b/k`` on the one endpoint."""
    if not source.startswith("s3://"):
        raise UsageError(f"{source}: a copy's source is s3://bucket/key on --endpoint-url; "
                         "copies between endpoints are not supported (download and upload)")
    if not destination.startswith("s3://"):
        raise UsageError(f"{destination}: a copy's destination is s3://bucket/key (downloads "
                         "are not supported)")
    for option, given in (("--upload-id", args.upload_id), ("--dask", args.dask),
                          ("--content-md5", args.content_md5),  # no body is sent
                          ("--expected-size", args.expected_size)):
        if given:
            raise UsageError(f"{option} does not apply to a server-side copy")
    if args.recursive:
        return await cmd_copy_prefix(args, out, source, destination)
    for option, given in (("--include", args.include), ("--exclude", args.exclude),
                          ("--skip-existing", args.skip_existing)):
        if given:
            raise UsageError(f"{option} applies to prefix copies (--recursive)")
    source_bucket, source_key = parse_s3_url(source, key_required=True)
    bucket, key = parse_s3_url(destination, key_required=False)
    if not key or key.endswith("/"):
        key += source_key.rstrip("/").rsplit("/", 1)[-1]
    config = make_config(args)
    follow = args.checksum is None
    async with Uploader(config, journal=args.journal) as uploader:
        await uploader.connect()
        freeze_gc()
        if args.dry_run:
            job = await uploader.plan_copy(source_bucket, source_key, bucket, key,
                                           follow_source_checksum=follow)
            the_plan = job.plan
            out.emit("plan", f"{source} -> s3://{bucket}/{key}: server-side, "
                     f"{format_size(the_plan.size)}, "
                     + (f"{the_plan.part_count} UploadPartCopy parts of "
                        f"{format_size(the_plan.part_size)}" if the_plan.multipart
                        else "one CopyObject")
                     + f", checksum {job.config.checksum.value}",
                     source=source, bucket=bucket, key=key, size=the_plan.size,
                     multipart=the_plan.multipart, part_size=the_plan.part_size,
                     parts=the_plan.part_count, checksum=job.config.checksum.value)
            return 0
        result = await uploader.copy_object(
            source_bucket, source_key, bucket, key, restart=args.restart,
            progress=TqdmProgress() if show_progress(args) else None,
            follow_source_checksum=follow)
    show_copied(out, source, result)
    for notice in result.notices:
        log.info("%s", notice)
    return 0


async def cmd_copy_prefix(args: argparse.Namespace, out: Output, source: str,
                          destination: str) -> int:
    """``s3://a/p/`` to ``s3://b/q/``: every object under the prefix, server-side, as one
    resumable job (the same command, or ``bigupload resume``, continues it)."""
    if args.restart:
        raise UsageError("--restart applies to single files and objects")
    form = "s3://bucket/prefix/"
    source_bucket, source_prefix = parse_s3_url(source, key_required=False, form=form)
    bucket, prefix = parse_s3_url(destination, key_required=False, form=form)
    source_prefix, prefix = batch.destination_prefix(source_prefix), batch.destination_prefix(prefix)
    config = make_config(args)
    async with Uploader(config, journal=args.journal) as uploader:
        await uploader.connect()
        freeze_gc()
        entries, excluded = await uploader.list_copies(
            source_bucket, source_prefix, bucket, prefix, include=args.include,
            exclude=args.exclude)
        if excluded:
            log.info("%d object(s) left out by --include/--exclude", excluded)
        if args.dry_run:
            total = sum(e.size for e in entries)
            out.emit("plan", f"{len(entries)} object(s), {format_size(total)} -> "
                     f"s3://{bucket}/{prefix} (server-side)", files=len(entries), bytes=total,
                     bucket=bucket, prefix=prefix)
            for e in entries:
                out.emit("file", f"  {e.item.source} -> s3://{e.item.bucket}/{e.item.key}"
                         + (f"  ({e.error})" if e.error else ""), source=e.item.source,
                         bucket=e.item.bucket, key=e.item.key, size=e.size, error=e.error)
            return 0
        result = await uploader.copy_prefix(
            source_bucket, source_prefix, bucket, prefix, include=args.include,
            exclude=args.exclude, skip_existing=args.skip_existing, fail_fast=args.fail_fast,
            progress=BatchReporter(out, show_progress(args)), entries=entries,
            follow_source_checksum=args.checksum is None)
    show_job_summary(out, result)
    return EXIT_PARTIAL if result.failed else 0


async def cmd_batch(args: argparse.Namespace, out: Output, root: str | None,
                    destination: str | None) -> int:
    """A directory (``root``) or a manifest, as one resumable job."""
    if args.restart or args.upload_id:
        raise UsageError("--restart and --upload-id apply to single files")
    bucket, prefix = (None, "") if destination is None else parse_s3_url(
        destination, key_required=False, form="s3://bucket/prefix/")
    prefix = batch.destination_prefix(prefix)
    config = make_config(args)
    report = batch.WalkReport()
    origin: dict[str, object]
    entries: Iterable[batch.Entry]
    if root is not None:
        assert bucket is not None
        origin = {"root": os.path.abspath(root), "bucket": bucket, "prefix": prefix,
                  "include": args.include, "exclude": args.exclude,
                  "follow_symlinks": args.follow_symlinks}

        def walk() -> Iterator[batch.Entry]:
            """The walk, read by the engine as it journals the files (a new job), or
            once the journalled files are sent (a resumed one); what it left out is said
            when it ends."""
            yield from batch.walk_directory(root, bucket, prefix, include=args.include,
                                            exclude=args.exclude,
                                            follow_symlinks=args.follow_symlinks,
                                            report=report)
            walk_said(report)

        entries = walk()
        if args.dry_run:
            entries = await anyio.to_thread.run_sync(list, entries)
    else:
        origin = {"manifest": os.path.abspath(args.manifest), "bucket": bucket, "prefix": prefix}
        entries = await anyio.to_thread.run_sync(batch.read_manifest, args.manifest, bucket,
                                                 prefix)
    if args.dry_run:
        assert isinstance(entries, list)
        total = sum(e.size for e in entries)
        where = f"s3://{bucket}/{prefix}" if bucket else "the manifest's destinations"
        out.emit("plan", f"{len(entries)} file(s), {format_size(total)} -> {where}"
                 + (f", {limit_text(config.max_bandwidth)}" if config.max_bandwidth else ""),
                 files=len(entries), bytes=total, bucket=bucket, prefix=prefix,
                 max_bandwidth=config.max_bandwidth)
        for e in entries:
            out.emit("file", f"  {e.item.source} -> s3://{e.item.bucket}/{e.item.key}"
                     + (f"  ({e.error})" if e.error else ""),
                     source=e.item.source, bucket=e.item.bucket, key=e.item.key, size=e.size,
                     error=e.error)
        return 0
    async with Uploader(config, journal=args.journal, executor=args.dask) as uploader:
        await uploader.connect()
        freeze_gc()
        result = await uploader.upload_job(
            "directory" if root is not None else "manifest", origin, entries,
            skip_existing=args.skip_existing, fail_fast=args.fail_fast,
            progress=BatchReporter(out, show_progress(args), config.max_bandwidth))
    show_job_summary(out, result)
    return EXIT_PARTIAL if result.failed else 0


def walk_said(report: batch.WalkReport) -> None:
    """What a directory walk left out, once it has ended."""
    for count, what in ((report.symlinks, "symbolic link(s) skipped (use --follow-symlinks)"),
                        (report.special, "special file(s) skipped (FIFOs, sockets, devices)"),
                        (report.loops, "directory link loop(s) not followed")):
        if count:  # files the user may expect to see uploaded: said even with --json
            log.warning("%d %s", count, what)
    if report.excluded:
        log.info("%d file(s) left out by --include/--exclude", report.excluded)


def existing_journal(args: argparse.Namespace) -> None:
    """``status``, ``resume`` and ``forget`` read a journal: one named with ``--journal``
    (or BIGUPLOAD_JOURNAL) that does not exist is a mistyped path, refused before it is
    created empty. Without one, the default journal is used, made if need be."""
    if args.journal is not None and not os.path.lexists(args.journal):
        raise UsageError(f"no journal at {args.journal} (--journal): {args.command} reads an "
                         "existing journal; the upload commands create one")


async def cmd_resume(args: argparse.Namespace, out: Output) -> int:
    """Every active job and unfinished single file, or one job; each goes to the endpoint
    it began with (``--endpoint-url`` only checks that). Exit with the worst outcome."""
    existing_journal(args)
    code = 0
    reported = 0
    show = show_progress(args)
    config = make_config(args)
    async with Uploader(config, journal=args.journal, executor=args.dask) as uploader:
        freeze_gc()
        resumed = uploader.resume(args.job, fail_fast=args.fail_fast,
                                  progress=BatchReporter(out, show, config.max_bandwidth),
                                  file_progress=TqdmProgress(config.max_bandwidth) if show
                                  else None)
        async with contextlib.aclosing(resumed) as reports:
            async for report in reports:
                reported += 1
                code = max(code, show_resumed(out, args, report))
    if not reported:
        out.emit("summary", "nothing to resume (see: bigupload status)", jobs=0)
    return code


def show_resumed(out: Output, args: argparse.Namespace, report: ResumedJob | ResumedFile) -> int:
    """Render what ``resume`` did with one job or file; its exit code."""
    if isinstance(report, ResumedJob):
        if report.error is not None and report.exit_code is not None:
            return fail(out, args, report.exit_code, f"job {report.job_id}: {report.error}",
                        error_type=report.error_type)
        if report.result is None:
            out.emit("summary", f"job {report.job_id} is already complete",
                     job_id=report.job_id, state="completed")
            return 0
        show_job_summary(out, report.result)
        return EXIT_PARTIAL if report.result.failed else 0
    if report.error is not None and report.exit_code is not None:
        return fail(out, args, report.exit_code, f"s3://{report.bucket}/{report.key}: "
                    f"{report.error}", error_type=report.error_type)
    show_resumed_file(out, report)
    return report.exit_code or 0 if report.skipped else 0


async def cmd_status(args: argparse.Namespace, out: Output) -> int:
    existing_journal(args)
    async with Uploader(journal=args.journal) as uploader:
        report = uploader.status(args.job, closed=args.all)
    show_status(out, report, one_job=args.job is not None, closed=args.all)
    return 0


async def cmd_forget(args: argparse.Namespace, out: Output) -> int:
    uploads, jobs = parse_row_ids(args.ids)
    older_than = None if args.older_than is None else parse_age(args.older_than)
    existing_journal(args)
    async with Uploader(journal=args.journal) as uploader:
        report = uploader.forget(uploads=tuple(uploads), jobs=tuple(jobs),
                                 finished=args.finished, failed=args.failed,
                                 older_than=older_than)
    show_forgotten(out, report)
    return 0


async def cmd_abort(args: argparse.Namespace, out: Output) -> int:
    bucket, key = parse_s3_url(args.url, key_required=True)
    async with Uploader(connection_config(args), journal=args.journal) as uploader:
        report = await uploader.abort(bucket, key, args.upload_id)
    show_aborted(out, report)
    return 0


async def cmd_ls_uploads(args: argparse.Namespace, out: Output) -> int:
    bucket, prefix = parse_s3_url(args.url, key_required=False, form="s3://bucket[/prefix]")
    async with Uploader(connection_config(args)) as uploader:
        uploads = await uploader.list_uploads(bucket, prefix)
    show_uploads(out, bucket, uploads)
    return 0


async def cmd_parts(args: argparse.Namespace, out: Output) -> int:
    bucket, key = parse_s3_url(args.url, key_required=True)
    async with Uploader(connection_config(args)) as uploader:
        listing = await uploader.list_parts(bucket, key, args.upload_id, max_parts=args.max_parts,
                                            part_number_marker=args.part_number_marker)
    show_parts(out, listing)
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace, Output], Awaitable[int]]] = {
    "cp": cmd_cp, "resume": cmd_resume, "ls-uploads": cmd_ls_uploads, "parts": cmd_parts,
    "abort": cmd_abort, "status": cmd_status, "forget": cmd_forget,
}


def _interrupted(args: argparse.Namespace) -> str:
    if args.command == "cp" and getattr(args, "stream", False):
        return ("interrupted; a stream cannot be resumed: nothing was written (the upload it "
                "began was aborted)")
    if args.command == "cp" and (args.manifest or args.recursive):
        return ("interrupted; the job is saved: run the same command again, or bigupload "
                "resume, to continue it")
    if args.command == "cp":
        return ("interrupted; the journal is saved: run the same command again to resume "
                "(or add --restart to start over)")
    if args.command == "resume":
        return "interrupted; the job is saved: run bigupload resume again to continue it"
    return "interrupted"


def run(args: argparse.Namespace, out: Output) -> int:
    """Run a command under the event loop, turning SIGINT/SIGTERM into a clean stop."""

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


def setup_logging(args: argparse.Namespace) -> None:
    # while bars may be drawn, log lines go through them instead of cutting across them
    handler = log_handler(show_progress(args))
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"
                                            if args.debug else "bigupload: %(message)s"))
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


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()
    except UsageError as exc:  # a malformed BIGUPLOAD_* variable: even --help says so
        print(f"bigupload: error: {redact(str(exc))}", file=sys.stderr)
        return 2
    args = parser.parse_args(keep_negative_values(sys.argv[1:] if argv is None else argv))
    try:
        unknown = check_environment(dry_run=getattr(args, "dry_run", None))
    except UsageError as exc:
        print(f"bigupload: error: {exc}", file=sys.stderr)
        return 2
    setup_logging(args)
    for warning in unknown:
        log.warning("%s", warning)
    if getattr(args, "no_verify_ssl", False):
        log.warning("TLS certificate verification is OFF (--no-verify-ssl)")
    out = Output(args.json)
    try:
        return run(args, out)
    except OutputClosed:
        return output_closed()
    except UsageError as exc:
        return fail(out, args, 2, str(exc), exc)
    except BigUploadError as exc:
        return fail(out, args, exc.exit_code, str(exc), exc)
    except KeyboardInterrupt as exc:
        return fail(out, args, Cancelled.exit_code, _interrupted(args), exc)
    except Exception as exc:  # a bug: say so, one line unless --debug
        return fail(out, args, 1, f"internal error: {type(exc).__name__}: {exc} "
                    "(rerun with --debug)", exc)


def fail(out: Output, args: argparse.Namespace, code: int, message: str,
         exc: BaseException | None = None, *, error_type: str | None = None) -> int:
    """Say why the command (or one file of ``resume``) stopped, in one line on stderr (and
    an event with --json), and return its exit code. Being interrupted is not an error,
    and is not called one."""
    if args.debug and exc is not None:
        sys.stderr.write(redact("".join(traceback.format_exception(exc))))
    message = redact(message)
    interrupted = code == Cancelled.exit_code
    print(f"bigupload: {message}" if interrupted else f"bigupload: error: {message}",
          file=sys.stderr)
    if out.as_json:
        try:
            out.emit("interrupted" if interrupted else "error", message, exit_code=code,
                     error=error_type or type(exc).__name__, message=message)
        except OutputClosed:
            return output_closed()
    return code


def entry() -> None:
    # The cyclic GC finds nothing to free among the objects botocore and aiohttp create at
    # import, but walking them costs 40-60 ms of a 0.3 s start; freeze_gc turns it back on.
    gc.disable()
    sys.exit(main())


if __name__ == "__main__":
    entry()
