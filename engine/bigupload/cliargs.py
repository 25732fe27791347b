"""The command line: the argparse parser of every command, with each setting's default
read from its ``BIGUPLOAD_<OPTION>`` variable (``from_env``: a malformed value is one line
naming the variable, exit 2, even with ``--help``), and the translation of parsed
arguments into what the engine takes (``UploadConfig``, S3 URLs, row ids, ages).

Every argparse error is one line too (``Parser.error``), and each command's ``--help``
lists only its own options, in groups, one line each."""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn, TypeVar

from .bandwidth import parse_rate
from .checksum import backends
from .config import ChecksumAlgorithm, ServerSideEncryption, UploadConfig, parse_size
from .errors import ConfigError
from .values import check_key

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
  7    the store refused the request (no such bucket, upload gone mid-run,
       invalid)
  8    resume refused: the file changed since the upload began, a copy's source
       changed (the copy was aborted), the server no longer has the journalled
       upload (run the original cp again), or the journal disagrees
  9    partial: a batch finished, but some files failed (listed; `bigupload
       resume ID` retries them)
  10   the Dask cluster could not run the work (--dask); the message says what
       was kept
  11   --no-overwrite: the key already exists; nothing was written
  130  interrupted (the journal is flushed: run the same command, or `bigupload
       resume`, to resume; a stream cannot be resumed: its upload is aborted)
  141  stdout was closed (piped into `head`): stopped quietly, as Unix tools do
"""
BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class UsageError(Exception):
    """Bad command-line input: exit code 2."""


class VersionAction(argparse.Action):
    """``--version``: the version, then which backend computes each checksum (native SIMD,
    a package or pure Python), looked up only when asked."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: str | Sequence[Any] | None, option_string: str | None = None) -> None:
        from . import __version__  # the package's own __init__, not imported by modules

        lines = [f"bigupload {__version__}"]
        lines += [f"  {name:<10} {backend}" for name, backend in backends().items()]
        print("\n".join(lines))  # stdout, as --help: `bigupload --version | head -1` works
        parser.exit(0)


T = TypeVar("T")
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


def env_name(option: str) -> str:
    """``--part-size`` -> ``BIGUPLOAD_PART_SIZE``."""
    return "BIGUPLOAD_" + option.lstrip("-").upper().replace("-", "_")


# every BIGUPLOAD_* name a setting reads, filled by ``from_env`` as the parser is built
SETTING_NAMES: set[str] = set()
# read elsewhere: knobs of the engine (checksum.py, client.py, tlssend.py, uploader.py) and
# of the crash-torture test, which runs the CLI with its own variable in the environment
OTHER_NAMES = frozenset({"BIGUPLOAD_CHECKSUM_BACKEND", "BIGUPLOAD_TRAILING_CHECKSUM",
                         "BIGUPLOAD_LEAN_PUT", "BIGUPLOAD_TLS_SEND", "BIGUPLOAD_EVENT_LOOP",
                         "BIGUPLOAD_SOAK_KILLS"})
# options given on the command line only (README): one run's intent, never a standing default
COMMAND_LINE_ONLY = ("--dry-run", "--restart", "--upload-id", "--recursive", "--include",
                     "--exclude", "--metadata")


def check_environment(environ: Mapping[str, str] | None = None, *,
                      dry_run: bool | None = None) -> list[str]:
    """The BIGUPLOAD_* variables no setting reads, as warnings (one line each, naming the
    closest known name: the prefix is ours, so an unknown name is most likely a typo, but
    a warning lets a run go on as before). BIGUPLOAD_DRY_RUN on a command that would send
    (``dry_run`` False: ``cp`` without --dry-run) is refused, a UsageError: ignoring it
    would send what its user meant only to plan. Call after the arguments are parsed."""
    import difflib

    environ = os.environ if environ is None else environ
    known = SETTING_NAMES | OTHER_NAMES
    suffixes = {name.removeprefix("BIGUPLOAD_"): name for name in known}
    warnings = []
    for name in sorted(environ):
        if not name.startswith("BIGUPLOAD_") or name in known or not environ[name].strip():
            continue
        option = next((o for o in COMMAND_LINE_ONLY if env_name(o) == name), None)
        if option == "--dry-run" and dry_run is False:
            raise UsageError(f"{name} is not read (a dry run is asked for on the command line "
                             f"only): give --dry-run, or unset {name}")
        if option == "--dry-run" and dry_run:
            continue
        if option is not None:
            warnings.append(f"{name} is ignored: {option} is given on the command line only")
            continue
        close = difflib.get_close_matches(name.removeprefix("BIGUPLOAD_"), sorted(suffixes),
                                          n=1, cutoff=0.75)
        hint = f"did you mean {suffixes[close[0]]}?" if close else "see: bigupload --help"
        warnings.append(f"{name} is not a bigupload setting and is ignored ({hint})")
    return warnings


def from_env(option: str, parse: Callable[[str], T], fallback: T) -> T:
    """The default of ``option``: its ``BIGUPLOAD_*`` variable parsed by ``parse``, or
    ``fallback`` when unset or empty. A value ``parse`` refuses is a UsageError naming the
    variable, raised while the parser is built, so even ``--help`` says so (exit 2)."""
    name = env_name(option)
    SETTING_NAMES.add(name)
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


def seconds(text: str) -> float:
    """A timeout: a positive, finite number of seconds (``2``, ``0.5``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def env_seconds(text: str) -> float:
    try:
        return seconds(text)
    except argparse.ArgumentTypeError as exc:
        raise ValueError(str(exc)) from None


def env_rate(text: str) -> str:
    parse_rate(text)  # refused here, named by its variable; parsed again with the options
    return text


def env_checksum(text: str) -> str:
    return ChecksumAlgorithm.parse(text).value


def add(group: argparse._ActionsContainer, option: str, parse: Callable[[str], object] = env_text,
        fallback: object = None, *, aliases: tuple[str, ...] = (), **kwargs: Any) -> None:
    """An option whose default comes from its ``BIGUPLOAD_*`` variable (see ``from_env``)."""
    group.add_argument(option, *aliases, default=from_env(option, parse, fallback), **kwargs)


def parse_s3_url(url: str, *, key_required: bool, form: str = "s3://bucket/key") -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key), validating the bucket name and the key.
    ``form`` is what the command expects, as its usage writes it."""
    if not url.startswith("s3://"):
        raise UsageError(f"not an S3 URL: {url!r} (expected {form})")
    bucket, _, key = url[5:].partition("/")
    if not BUCKET_RE.match(bucket) or ".." in bucket:
        raise UsageError(f"invalid bucket name {bucket!r} "
                         "(3-63 lowercase letters, digits, '.', '-')")
    if key_required and not key:
        raise UsageError(f"missing key in {url!r} (expected s3://bucket/key)")
    if key and (problem := check_key(key)):
        raise UsageError(f"invalid object key: {problem}")
    return bucket, key


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


SIZED_OPTIONS = ("--part-size", "--multipart-threshold", "--memory-limit", "--concurrency",
                 "--max-attempts", "--connect-timeout", "--read-timeout", "--expected-size",
                 "--older-than")


def keep_negative_values(argv: Sequence[str]) -> list[str]:
    """argparse takes ``-5MiB`` (or an age, ``-1d``) for an option (only ``-5`` looks like a
    number to it), so ``--part-size -5MiB`` would be "expected one argument": the value is
    kept with its option, for the size (or age) parser to refuse as negative."""
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
    add(g, "--debug", env_flag, False, action="store_true",
        help="verbose logs; tracebacks on errors")


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
    add(g, "--connect-timeout", env_seconds, 10.0, type=seconds, metavar="SECONDS",
        help="seconds to connect (default 10)")
    add(g, "--read-timeout", env_seconds, 120.0, type=seconds, metavar="SECONDS",
        help="seconds a server may be silent (default 120)")
    add(g, "--max-attempts", env_int, 5, type=int, metavar="N",
        help="tries per request (default 5)")


def add_access(group: argparse._ActionsContainer, *, sse_c: str | None) -> None:
    """Who pays and whose bucket it must be, sent on every request about an upload; and
    the SSE-C key, where S3's call takes one (``sse_c``: its help line)."""
    add(group, "--request-payer", env_flag, False, action="store_true",
        help="pay for a requester-pays bucket (RequestPayer)")
    add(group, "--expected-bucket-owner", metavar="ID",
        help="refuse a bucket of another account (403)")
    if sse_c:
        add(group, "--sse-c-key-file", metavar="FILE", help=sse_c)


def add_sending(parser: argparse.ArgumentParser, *, batches: bool) -> None:
    g = parser.add_argument_group("sending")
    add(g, "--concurrency", env_int, 8, type=int, metavar="N",
        help="requests in flight, all files (default 8)")
    add(g, "--memory-limit", env_size, metavar="SIZE",
        help="part data held at once (default N x part)")
    add(g, "--max-bandwidth", env_rate, metavar="RATE",
        help="all files together: 50MB/s, 400Mbit/s")
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
        "       bigupload cp [options] - s3://bucket/key   (standard input, a stream)\n"
        "       bigupload cp [options] DIR s3://bucket/prefix/ --recursive\n"
        "       bigupload cp [options] --manifest FILE [s3://bucket/prefix/]\n"
        "       bigupload cp [options] s3://bucket/key s3://bucket/key   (server-side)",
        "upload a file, a stream, a directory or a manifest, or copy an object",
        "Upload a file, a stream (- reads standard input), a directory (-r) or a\n"
        "manifest, or copy an object server-side; or resume it. A copy uses the source's\n"
        "CRC algorithm unless --checksum is given. A stream cannot be resumed.")
    cp.add_argument("paths", nargs="*", metavar="SOURCE DESTINATION",
                    help="FILE, -, DIR or s3://b/k; s3://bucket/key[/]")
    g = cp.add_argument_group("this run")
    g.add_argument("--dry-run", action="store_true", help="print the plan; send nothing")
    g.add_argument("--restart", action="store_true", help="abort the unfinished upload; start over")
    g.add_argument("--upload-id", metavar="ID", help="adopt this multipart upload (parts verified)")
    g = cp.add_argument_group("sizes and checksums")
    add(g, "--part-size", env_size, metavar="SIZE", help="e.g. 64MiB (default 32MiB, grown to fit)")
    add(g, "--multipart-threshold", env_size, metavar="SIZE",
        help="larger files go multipart (default: a part)")
    add(g, "--checksum", env_checksum, None, metavar="ALG",
        help="default crc32c; crc32 crc64nvme sha256 sha1 none")
    add(g, "--checksum-type", env_choice(*CHECKSUM_TYPES), choices=CHECKSUM_TYPES, metavar="TYPE",
        help="full-object (default for CRCs) or composite")
    add(g, "--content-md5", env_flag, False, action="store_true",
        help="each part's MD5 as Content-MD5 (server checks)")
    add(g, "--expected-size", env_size, metavar="SIZE",
        help="a stream's size, if known: sizes its parts")
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
                     "continue unfinished uploads: every job and file, or one job.\n"
                     "Each goes to the endpoint it began with: an --endpoint-url or\n"
                     "AWS_ENDPOINT_URL that differs leaves it (a warning, exit 2).")
    resume.add_argument("job", nargs="?", type=int, metavar="JOB_ID",
                        help="one job (a partial job retries its failures)")
    g = resume.add_argument_group("the objects (a job keeps the payer and owner it began with)")
    add_access(g, sse_c="the SSE-C key the uploads began with")
    add_sending(resume, batches=True)
    add_connection(resume)
    add_journal(resume)
    add_output(resume)

    status = command("status", "bigupload status [options] [JOB_ID]",
                     "jobs and unfinished uploads in the journal (no server)")
    status.add_argument("job", nargs="?", type=int, metavar="JOB_ID",
                        help="one job, with its failures")
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
    add_access(ls.add_argument_group("access"), sse_c=None)  # S3 takes no SSE-C key here
    add_connection(ls)
    add_output(ls)

    parts = command(
        "parts", "bigupload parts [options] s3://bucket/key --upload-id ID\n"
        "       bigupload parts ... [--max-parts N] [--part-number-marker M]",
        "list the parts of a multipart upload on the server",
        "List the parts of a multipart upload (ListParts), every page; with --max-parts\n"
        "or --part-number-marker, that one page, and the marker that continues it.")
    parts.add_argument("url", metavar="s3://bucket/key")
    parts.add_argument("--upload-id", required=True, metavar="ID", help="the upload (required)")
    g = parts.add_argument_group("one page")
    g.add_argument("--max-parts", type=int, metavar="N",
                   help="at most N parts (S3: 1..1000), one page")
    g.add_argument("--part-number-marker", type=int, metavar="M",
                   help="the parts after part M, one page")
    add_access(parts.add_argument_group("access"),
               sse_c="the key of an SSE-C upload (https only)")
    add_connection(parts)
    add_output(parts)

    abort = command("abort", "bigupload abort [options] s3://bucket/key --upload-id ID",
                    "abort a multipart upload on the server (its journal row too)")
    abort.add_argument("url", metavar="s3://bucket/key")
    abort.add_argument("--upload-id", required=True, metavar="ID", help="the upload (required)")
    add_access(abort.add_argument_group("access"), sse_c=None)  # S3 takes no SSE-C key here
    add_connection(abort)
    add_journal(abort)
    add_output(abort)
    return parser


def make_config(args: argparse.Namespace) -> UploadConfig:
    """The settings of ``cp`` or ``resume`` (``resume`` has no object options: a job keeps
    its own, and an unfinished file's come from the journal)."""
    metadata = {}
    for item in getattr(args, "metadata", []):
        name, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--metadata wants K=V, got {item!r}")
        metadata[name] = value
    def size(value: str | None, option: str) -> int | None:
        try:
            return None if value is None else parse_size(value)
        except ConfigError as exc:
            raise ConfigError(f"{option}: {exc}") from None

    def rate(value: str | None) -> int | None:
        try:
            return None if value is None else parse_rate(value)
        except ConfigError as exc:
            raise ConfigError(f"--max-bandwidth: {exc}") from None

    def opt(name: str) -> str | None:
        value = getattr(args, name, None)
        return None if value is None else str(value)

    def flag(name: str) -> bool:
        return bool(getattr(args, name, False))

    checksum_type = opt("checksum_type")

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
        connect_timeout_s=args.connect_timeout,
        read_timeout_s=args.read_timeout,
        max_bandwidth=rate(opt("max_bandwidth")),
        content_type=opt("content_type"),
        metadata=metadata,
        storage_class=opt("storage_class"),
        sse=ServerSideEncryption(sse) if (sse := opt("sse")) else None,
        sse_kms_key_id=opt("sse_kms_key_id"),
        sse_c_key=read_sse_c_key(args),
        request_payer=flag("request_payer"),
        expected_bucket_owner=opt("expected_bucket_owner"),
        no_overwrite=flag("no_overwrite"),
        content_md5=flag("content_md5"),
        checksum_type=checksum_type.upper().replace("-", "_") if checksum_type else None,
    )


def read_sse_c_key(args: argparse.Namespace) -> bytes | None:
    """The key in ``--sse-c-key-file`` (a trailing newline dropped), if the command has it."""
    path = getattr(args, "sse_c_key_file", None)
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            key = f.read()
    except OSError as exc:
        raise UsageError(f"cannot read --sse-c-key-file: {exc.strerror}") from exc
    return key[:32] if len(key) == 33 and key.endswith(b"\n") else key


def expected_size(args: argparse.Namespace) -> int | None:
    """``--expected-size``, parsed (a stream's; None when not given)."""
    value = getattr(args, "expected_size", None)
    try:
        return None if value is None else parse_size(value)
    except ConfigError as exc:
        raise ConfigError(f"--expected-size: {exc}") from None


def connection_config(args: argparse.Namespace) -> UploadConfig:
    """The settings of the commands that only talk to the server (ls-uploads, parts,
    abort): where, and what every request about an upload carries."""
    return UploadConfig(endpoint_url=args.endpoint_url, region=args.region, profile=args.profile,
                        verify_tls=not args.no_verify_ssl, connect_timeout_s=args.connect_timeout,
                        read_timeout_s=args.read_timeout, max_attempts=args.max_attempts,
                        request_payer=bool(getattr(args, "request_payer", False)),
                        expected_bucket_owner=getattr(args, "expected_bucket_owner", None),
                        sse_c_key=read_sse_c_key(args))
