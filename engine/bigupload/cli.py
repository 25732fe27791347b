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
  4    authentication or permission problem
  5    transient failure after retries (the journal is kept: run the same command to resume)
  6    integrity failure: the server saw different bytes, or the object does not match
  7    the store refused the request (no such bucket, upload gone, invalid request)
  8    resume refused: the file changed since the upload began, or the journal disagrees
  130  interrupted (the journal is flushed: run the same command to resume)
"""

BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
log = logging.getLogger("bigupload")


class UsageError(Exception):
    """Bad command-line input: exit code 2."""


def env_default(name: str, fallback: Any = None) -> Any:
    return os.environ.get("BIGUPLOAD_" + name.upper().replace("-", "_"), fallback)


def parse_s3_url(url: str, *, key_required: bool) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key), validating the bucket name and key length."""
    if not url.startswith("s3://"):
        raise UsageError(f"not an S3 URL: {url!r} (expected s3://bucket/key)")
    bucket, _, key = url[5:].partition("/")
    if not BUCKET_RE.match(bucket) or ".." in bucket:
        raise UsageError(f"invalid bucket name {bucket!r} (3-63 lowercase letters, digits, '.', '-')")
    if key_required and not key:
        raise UsageError(f"missing key in {url!r} (expected s3://bucket/key)")
    if len(key.encode("utf-8")) > 1024:
        raise UsageError(f"object key is {len(key.encode('utf-8'))} bytes; S3 allows 1,024")
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
    parser.add_argument("--version", action="version", version="bigupload 0.1.0")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    cp = sub.add_parser("cp", parents=[common], help="upload a file (resumes an unfinished upload)",
                        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    cp.add_argument("source")
    cp.add_argument("destination", help="s3://bucket/key (a key ending in / gets the file name)")
    t = cp.add_argument_group("tuning")
    t.add_argument("--part-size", default=env_default("part_size"), help="e.g. 64MiB (default: 32MiB, "
                   "grown so the file fits in 10,000 parts)")
    t.add_argument("--concurrency", type=int, default=int(env_default("concurrency", 8)),
                   help="parts in flight (default 8)")
    t.add_argument("--memory-limit", default=env_default("memory_limit"),
                   help="most part data held at once (default concurrency x part size)")
    t.add_argument("--multipart-threshold", default=env_default("multipart_threshold"),
                   help="files up to this size go in one PutObject (default: one part)")
    t.add_argument("--checksum", default=env_default("checksum", "crc32c"),
                   help="crc32c (default), crc32, crc64nvme, sha256 or none")
    t.add_argument("--max-attempts", type=int, default=int(env_default("max_attempts", 5)))
    o = cp.add_argument_group("object")
    o.add_argument("--content-type", default=env_default("content_type"), help="default: guessed")
    o.add_argument("--metadata", action="append", default=[], metavar="K=V")
    o.add_argument("--storage-class", default=env_default("storage_class"))
    o.add_argument("--sse", choices=["AES256", "aws:kms"], default=env_default("sse"))
    o.add_argument("--sse-kms-key-id", default=env_default("sse_kms_key_id"))
    o.add_argument("--sse-c-key-file", default=env_default("sse_c_key_file"),
                   help="file holding a 32-byte SSE-C key (sent with every part)")
    o.add_argument("--request-payer", action="store_true")
    o.add_argument("--expected-bucket-owner", default=env_default("expected_bucket_owner"))
    r = cp.add_argument_group("resume")
    r.add_argument("--restart", action="store_true", help="abort the unfinished upload and start over")
    r.add_argument("--upload-id", help="adopt this existing multipart upload (parts are verified)")
    cp.add_argument("--dry-run", action="store_true", help="print the plan and send nothing")
    cp.add_argument("--progress", choices=["auto", "always", "never"],
                    default=env_default("progress", "auto"))

    ls = sub.add_parser("ls-uploads", parents=[common], help="list unfinished multipart uploads")
    ls.add_argument("url", help="s3://bucket[/prefix]")
    parts = sub.add_parser("parts", parents=[common], help="list the parts of a multipart upload")
    parts.add_argument("url", help="s3://bucket/key")
    parts.add_argument("--upload-id", required=True)
    abort = sub.add_parser("abort", parents=[common], help="abort a multipart upload")
    abort.add_argument("url", help="s3://bucket/key")
    abort.add_argument("--upload-id", required=True)
    sub.add_parser("status", parents=[common], help="unfinished uploads in the journal")
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
    for item in args.metadata:
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

    return UploadConfig(
        part_size=size(args.part_size),
        concurrency=args.concurrency,
        memory_limit=size(args.memory_limit),
        multipart_threshold=size(args.multipart_threshold),
        checksum=ChecksumAlgorithm.parse(args.checksum),
        max_attempts=args.max_attempts,
        endpoint_url=endpoint,
        region=args.region,
        profile=args.profile,
        verify_tls=not args.no_verify_ssl,
        content_type=args.content_type,
        metadata=metadata,
        storage_class=args.storage_class,
        sse=ServerSideEncryption(args.sse) if args.sse else None,
        sse_kms_key_id=args.sse_kms_key_id,
        sse_c_key=sse_c_key,
        request_payer=args.request_payer,
        expected_bucket_owner=args.expected_bucket_owner,
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


async def cmd_cp(args: argparse.Namespace, out: Output) -> int:
    from .config import format_size
    from .plan import plan
    from .source import check_regular_file
    from .uploader import Uploader

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
    show = args.progress == "always" or (args.progress == "auto" and sys.stderr.isatty() and not args.json)
    async with Uploader(config, journal=args.journal) as uploader:
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
             f"checksum {result.checksum_algorithm} {result.checksum}",
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
        parts = await store.list_parts(bucket, key, args.upload_id, ObjectOptions())
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
    from .config import format_size
    from .journal import Journal, iter_unfinished

    with Journal(args.journal) as journal:
        rows = list(iter_unfinished(journal))
    for record, parts, done in rows:
        pct = 100 * done / record.fingerprint.size if record.fingerprint.size else 100.0
        out.emit("unfinished",
                 f"{record.fingerprint.path} -> s3://{record.bucket}/{record.key}: {parts}/"
                 f"{record.part_count} parts, {format_size(done)} of "
                 f"{format_size(record.fingerprint.size)} ({pct:.0f}%), upload id {record.upload_id}",
                 source=record.fingerprint.path, bucket=record.bucket, key=record.key,
                 endpoint=record.endpoint, upload_id=record.upload_id, parts_done=parts,
                 parts=record.part_count, bytes_done=done, size=record.fingerprint.size)
    if not out.as_json:
        out.emit("summary", f"{len(rows)} unfinished upload(s)")
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace, Output], Awaitable[int]]] = {
    "cp": cmd_cp, "ls-uploads": cmd_ls_uploads, "parts": cmd_parts, "abort": cmd_abort,
    "status": cmd_status,
}


def _interrupted(args: argparse.Namespace) -> str:
    if args.command == "cp":
        return ("interrupted; the journal is saved: run the same command again to resume "
                "(or add --restart to start over)")
    return "interrupted"


def run(args: argparse.Namespace, out: Output) -> int:
    """Run a command under the event loop, turning SIGINT/SIGTERM into a clean stop."""
    import anyio

    from .errors import Cancelled
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
