"""What the ``bigupload`` command shows, and nothing the engine needs: lines or JSON lines
on stdout (``Output``; a reader that has gone stops the command with exit 141), progress
bars on stderr, and a logging handler that writes through the bars.

Bars and summaries use one convention: binary units, ``MiB`` and ``MiB/s``. A bar's rate
counts only the bytes sent by this run: bytes an earlier run left on the server (a resumed
file, a skipped one) move the bar without counting as speed. tqdm is imported when the
first bar is drawn, so commands without bars start without it."""

from __future__ import annotations

import dataclasses
import datetime
import functools
import io
import json
import logging
import os
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from .bandwidth import format_rate
from .batch import BatchItem, BatchResult, ItemResult
from .config import format_size
from .journal import FileState, JobState, UploadState
from .progress import NullProgress, Progress
from .redact import redact
from .reports import AbortReport, ForgetReport, ResumedFile, StatusReport, UploadStatus
from .values import STREAM_SOURCE, MultipartUpload, Owner, PartListing, RemotePart

if TYPE_CHECKING:
    from . import UploadResult

MiB = 1 << 20
log = logging.getLogger("bigupload")
EXIT_OUTPUT_CLOSED = 141  # 128 + SIGPIPE, what a Unix tool killed by it exits with
BAR_FORMAT = ("{desc}: {percentage:3.0f}%|{bar}| {mib_n}/{mib_total} MiB "
              "[{elapsed}<{remaining}, {mib_rate} MiB/s{postfix}]")
# a stream's size is known only when it ends: bytes and rate, no bar and no ETA
STREAM_BAR_FORMAT = "{desc}: {mib_n} MiB [{elapsed}, {mib_rate} MiB/s{postfix}]"


class OutputClosed(Exception):
    """stdout's reader has gone (``bigupload parts … | head -1``): the command stops
    quietly with exit 141. Not one of our errors: nothing went wrong with the upload."""


class Output:
    """Human lines or JSON lines (``{"event": …}``) on stdout, secrets redacted."""

    def __init__(self, as_json: bool, stream: TextIO | None = None) -> None:
        self.as_json = as_json
        self.stream = stream or sys.stdout

    def emit(self, event: str, text: str, **fields: Any) -> None:
        # a file name that is not UTF-8 shows escaped (bad\udcffname), as JSON has it: its
        # surrogate escapes would fail a strict stdout, or write bytes a terminal cannot show
        line = (json.dumps({"event": event, **fields}, default=str) if self.as_json
                else text.encode("utf-8", "backslashreplace").decode("utf-8"))
        try:
            self.stream.write(redact(line) + "\n")
            self.stream.flush()
        except BrokenPipeError:
            raise OutputClosed from None


def output_closed() -> int:
    """Point stdout at /dev/null, so that the interpreter's last flush of what is still
    buffered does not fail again, and return 141."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, io.UnsupportedOperation):
        pass  # stdout is not a file descriptor (tests capture it): nothing to flush later
    return EXIT_OUTPUT_CLOSED


@functools.cache
def _bar_class() -> Any:
    from tqdm import tqdm

    class MiBBar(tqdm):  # type: ignore[misc]  # tqdm is untyped
        """A tqdm bar counting bytes, shown in MiB and MiB/s (tqdm's own unit scaling
        divides sizes by 1024 but rates by 1000, and calls both MB)."""

        @property
        def format_dict(self) -> dict[str, Any]:
            d: dict[str, Any] = super().format_dict
            rate = d["rate"]
            if rate is None and d["elapsed"]:  # as tqdm computes it before any smoothing
                rate = (d["n"] - d["initial"]) / d["elapsed"]
            d.update(mib_n=f"{d['n'] / MiB:.1f}",
                     mib_total="?" if d["total"] is None else f"{d['total'] / MiB:.1f}",
                     mib_rate=f"{rate / MiB:.1f}" if rate else "?")
            return d

        def add_done(self, nbytes: int) -> None:
            """Bytes that were already done (an earlier run's parts, a skipped file): the
            bar moves, the rate and ETA do not count them."""
            self.n += nbytes
            self.last_print_n += nbytes
            self.initial += nbytes
            self.refresh()

    return MiBBar


def make_bar(description: str, total_bytes: int | None, done_bytes: int, **kwargs: Any) -> Any:
    """A bar on stderr starting at ``done_bytes`` of ``total_bytes`` (None: a stream)."""
    return _bar_class()(total=total_bytes, initial=done_bytes, desc=description,
                        bar_format=BAR_FORMAT if total_bytes is not None else STREAM_BAR_FORMAT,
                        file=sys.stderr, dynamic_ncols=True, **kwargs)


def log_handler(bars: bool) -> logging.Handler:
    """The handler of the command's log lines on stderr: through the bars when they may
    be shown (``BarLogHandler``), plain otherwise."""
    return BarLogHandler(sys.stderr) if bars else logging.StreamHandler(sys.stderr)


class BarLogHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Log records written through tqdm while bars may be shown: the bars are cleared,
    the line written, the bars drawn again, so a log line never cuts through a bar."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # logging's own rule: a failing handler must not raise
            self.handleError(record)


def limit_text(limit: int | None) -> str:
    """``limit 10.0 MiB/s`` (--max-bandwidth), for a bar's postfix and the plan; or ''."""
    return f"limit {format_rate(limit)}" if limit else ""


class TqdmProgress:
    """``Progress`` as one bar on stderr: bytes, rate and ETA (a stream: bytes and rate),
    and the bandwidth limit."""

    def __init__(self, limit: int | None = None) -> None:
        self._bar: Any = None
        self._limit = limit

    def start(self, description: str, total_bytes: int | None, done_bytes: int) -> None:
        self._bar = make_bar(description, total_bytes, done_bytes)
        if self._limit:
            self._bar.set_postfix_str(limit_text(self._limit), refresh=False)

    def advance(self, nbytes: int) -> None:
        if self._bar is not None:
            self._bar.update(nbytes)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class BatchReporter:
    """``BatchProgress`` for the CLI: one overall bar (bytes, rate, ETA, files in its
    postfix) and a bar per large file, on stderr; with --json, a ``job`` event and a
    ``file`` event per file on stdout."""

    def __init__(self, out: Output, bars: bool, limit: int | None = None) -> None:
        self.out = out
        self.bars = bars
        self._limit = limit
        self._overall: Any = None
        self._files = 0
        self._done = 0
        self._failed = 0
        self._positions: set[int] = set()

    def start_job(self, job_id: int, files: int, total_bytes: int, done_files: int,
                  done_bytes: int) -> None:
        """The job's totals: when it starts, and again when a resumed job found new files
        (another ``job`` event; the bar's total grows)."""
        self._files, self._done = files, done_files
        if self.out.as_json:
            self.out.emit("job", "", job_id=job_id, files=files, total_bytes=total_bytes,
                          done_files=done_files, done_bytes=done_bytes)
        if self._overall is not None:
            self._overall.total = total_bytes
            self._postfix()
            self._overall.refresh()
        elif self.bars:
            self._overall = make_bar(f"job {job_id}", total_bytes, done_bytes, position=0)
            self._postfix()

    def _postfix(self) -> None:
        if self._overall is not None:
            failed = f", {self._failed} failed" if self._failed else ""
            limit = f", {limit_text(self._limit)}" if self._limit else ""
            self._overall.set_postfix_str(f"{self._done}/{self._files} files{failed}{limit}",
                                          refresh=False)

    def advance(self, nbytes: int) -> None:
        if self._overall is not None:
            self._overall.update(nbytes)

    def add_done(self, nbytes: int) -> None:
        if self._overall is not None and nbytes:
            self._overall.add_done(nbytes)

    def file_progress(self, item: BatchItem, size: int, multipart: bool) -> Progress:
        if not self.bars:
            return NullProgress()
        if not multipart:
            return _OverallOnly(self)
        position = min(set(range(1, len(self._positions) + 2)) - self._positions)
        self._positions.add(position)
        return _FileBar(self, position)

    def release(self, position: int) -> None:
        self._positions.discard(position)

    def file_done(self, result: ItemResult) -> None:
        if result.state is FileState.FAILED:
            self._failed += 1
            if self._overall is not None:
                self._overall.write(redact(f"bigupload: failed: {result.source}: {result.error}"),
                                    file=sys.stderr)
        else:
            self._done += 1
            if result.state is FileState.SKIPPED:
                self.add_done(result.size)
        self._postfix()
        if self.out.as_json:
            self.out.emit("file", "", state=result.state.value, source=result.source,
                          bucket=result.bucket, key=result.key, size=result.size,
                          etag=result.etag, error=result.error, exit_code=result.exit_code)

    def close(self) -> None:
        if self._overall is not None:
            self._overall.close()
            self._overall = None


class _OverallOnly:
    """A file's progress counted on the overall bar only (small files)."""

    def __init__(self, reporter: BatchReporter) -> None:
        self.reporter = reporter

    def start(self, description: str, total_bytes: int | None, done_bytes: int) -> None:
        self.reporter.add_done(done_bytes)  # an earlier run sent these

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

    def start(self, description: str, total_bytes: int | None, done_bytes: int) -> None:
        super().start(description, total_bytes, done_bytes)
        self.bar = make_bar(description, total_bytes, done_bytes, position=self.position,
                            leave=False)

    def advance(self, nbytes: int) -> None:
        super().advance(nbytes)
        if self.bar is not None:
            self.bar.update(nbytes)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        self.reporter.release(self.position)


def mib_per_s(nbytes: int, seconds: float) -> float:
    return nbytes / seconds / MiB if seconds else 0.0


def show_uploaded(out: Output, source: str, bucket: str, key: str, result: UploadResult) -> None:
    """The line (or ``uploaded`` event) for one file: the rate counts only what this run
    sent, in MiB/s like the bars."""
    resumed = f", {result.resumed_parts} parts resumed" if result.resumed_parts else ""
    out.emit("uploaded",
             f"uploaded {source} -> s3://{bucket}/{key}: {format_size(result.size)} in "
             f"{result.parts} part(s), {result.elapsed_s:.1f}s "
             f"({mib_per_s(result.sent_bytes, result.elapsed_s):.1f} MiB/s sent){resumed}; "
             + (f"checksum {result.checksum_algorithm} {result.checksum}" if result.verified
                else "not verified (only the size was compared)"),
             **dataclasses.asdict(result))


def show_copied(out: Output, source: str, result: UploadResult) -> None:
    """The line (or ``copied`` event) for a server-side copy: what the server copied this
    run, and whether the copy was compared with the source."""
    where = f"s3://{result.bucket}/{result.key}"
    how = (f"{result.parts} UploadPartCopy part(s)" if result.upload_id else "one CopyObject")
    resumed = f", {result.resumed_parts} parts resumed" if result.resumed_parts else ""
    out.emit("copied",
             f"copied {source} -> {where} server-side: {format_size(result.size)} in {how}, "
             f"{result.elapsed_s:.1f}s{resumed}; "
             + (f"checksum {result.checksum_algorithm} {result.checksum}, same as the source"
                if result.verified and result.checksum else
                "same MD5 ETag as the source" if result.verified else
                "not compared with the source (only the size: it reports no checksum in "
                "the copy's algorithm, nor an MD5 ETag)"),
             **dataclasses.asdict(result))


def show_job_summary(out: Output, result: BatchResult) -> None:
    """A run of a job, told apart from the job: ``uploaded`` counts the whole job (earlier
    runs too), ``uploaded_now`` and the rates only what this run sent. The run's first
    failures are listed (each was a ``file`` event with --json as it happened); ``status
    JOB`` lists them all."""
    uploaded_now = result.uploaded_now
    earlier = result.uploaded - uploaded_now
    unlisted = result.failed_now - len(result.failures)
    if not out.as_json:  # JSON has them in the summary
        for failure in result.failures:
            out.emit("failure", f"failed: {failure.source} -> s3://{failure.bucket}/"
                     f"{failure.key}: {failure.error}")
        if unlisted > 0:
            out.emit("failure", f"... and {unlisted} more failure(s): bigupload status "
                     f"{result.job_id} lists them all")
    files_per_s = uploaded_now / result.elapsed_s if result.elapsed_s else 0.0
    out.emit(
        "summary",
        f"job {result.job_id} {result.state.value}: {result.files} file(s), {uploaded_now} "
        f"uploaded" + (f" ({earlier} more by earlier runs)" if earlier else "")
        + f", {result.skipped} skipped, {result.failed} failed; "
        f"{format_size(result.sent_bytes)} sent in {result.elapsed_s:.1f}s ({files_per_s:.0f} "
        f"files/s, {mib_per_s(result.sent_bytes, result.elapsed_s):.1f} MiB/s)"
        + (f"; retry the failures with: bigupload resume {result.job_id}" if result.failed
           else ""),
        job_id=result.job_id, state=result.state.value, files=result.files,
        uploaded=result.uploaded, uploaded_now=uploaded_now, skipped=result.skipped,
        failed=result.failed, total_bytes=result.total_bytes, sent_bytes=result.sent_bytes,
        elapsed_s=result.elapsed_s,
        failures=[{"source": f.source, "bucket": f.bucket, "key": f.key, "error": f.error,
                   "exit_code": f.exit_code} for f in result.failures],
        failures_unlisted=max(0, unlisted),
    )


def show_status(out: Output, report: StatusReport, *, one_job: bool, closed: bool) -> None:
    """``bigupload status``: jobs (one with its failures), then single-file upload rows by
    id, with endpoint and destination, and a count (not in JSON)."""
    for job in report.jobs:
        pct = 100 * job.done_bytes / job.bytes if job.bytes else 100.0
        failed = f", {job.failed_files} failed" if job.failed_files else ""
        out.emit("job", f"job {job.id} [{job.state.value}] {job.description}: "
                 f"{job.done_files}/{job.files} files, {format_size(job.done_bytes)} of "
                 f"{format_size(job.bytes)} ({pct:.0f}%){failed}"
                 + (f": {job.error}" if job.error else ""),
                 job_id=job.id, state=job.state.value, description=job.description,
                 files=job.files, done_files=job.done_files, failed_files=job.failed_files,
                 bytes=job.bytes, done_bytes=job.done_bytes, reason=job.error,
                 updated_at=job.updated_at)
        for f in job.failures:
            out.emit("failure", f"  failed: {f.source} -> s3://{f.bucket}/{f.key}: {f.error}",
                     job_id=job.id, source=f.source, bucket=f.bucket, key=f.key, error=f.error,
                     exit_code=f.exit_code)
    if one_job:
        return
    for row in report.unfinished:
        pct = 100 * row.bytes_done / row.size if row.size else 100.0
        done = (f"{row.parts_done}/{row.parts} parts, {format_size(row.bytes_done)} of "
                f"{format_size(row.size)} ({pct:.0f}%)")
        if row.source == STREAM_SOURCE:
            done = ("a stream still being sent by another bigupload process" if row.running
                    else "a stream whose run was killed (bigupload resume aborts it)")
        out.emit("unfinished",
                 f"upload {row.id} [{row.state.value}] {_destination(row)}: {done}, "
                 + (f"upload id {row.upload_id}" if row.upload_id else "no upload id recorded"),
                 id=row.id, state=row.state.value, source=row.source, bucket=row.bucket,
                 key=row.key, endpoint=row.endpoint, upload_id=row.upload_id,
                 parts_done=row.parts_done, parts=row.parts, bytes_done=row.bytes_done,
                 size=row.size, reason=None, updated_at=row.updated_at, running=row.running)
    for row in report.closed:
        outcome = (f"{format_size(row.size)}, ETag {row.etag}"
                   if row.state is UploadState.COMPLETED else row.error or "no reason recorded")
        out.emit("closed",
                 f"upload {row.id} [{row.state.value}] {_destination(row)}: {outcome} "
                 f"({age(row.updated_at)} ago)",
                 id=row.id, state=row.state.value, source=row.source, bucket=row.bucket,
                 key=row.key, endpoint=row.endpoint, upload_id=row.upload_id, etag=row.etag,
                 size=row.size, reason=row.error, updated_at=row.updated_at)
    if not out.as_json:
        out.emit("summary", f"{len(report.jobs)} job(s), {len(report.unfinished)} unfinished "
                 "single-file upload(s)"
                 + (f", {len(report.closed)} closed single-file upload row(s)" if closed else ""))


def _destination(row: UploadStatus) -> str:
    return f"{row.source} -> s3://{row.bucket}/{row.key} on {row.endpoint}"


def age(timestamp: float) -> str:
    """How long ago, in the units ``forget --older-than`` takes."""
    seconds = max(0.0, time.time() - timestamp)
    for unit, length in (("d", 86400), ("h", 3600)):
        if seconds >= length:
            return f"{int(seconds // length)}{unit}"
    return f"{int(seconds // 60)}m"


def show_forgotten(out: Output, report: ForgetReport) -> None:
    """``bigupload forget``: a warning for each active row (with the command that stops its
    upload's billing), then what went; the server was not changed."""
    for row in report.active_uploads:
        where = f"s3://{row.bucket}/{row.key}"
        if row.upload_id:
            stop = (f"bigupload abort {where} --upload-id {row.upload_id} "
                    f"--endpoint-url {row.endpoint}")
            text = f"to stop its billing: {stop}"
        else:
            stop = f"bigupload ls-uploads {where} --endpoint-url {row.endpoint}"
            text = f"no upload id was recorded; to find one on the server: {stop}"
        log.warning("upload %d was active: the upload to %s on the server (if any) is left as "
                    "is; %s", row.id, where, text)
        if out.as_json:
            out.emit("warning", "", id=row.id, state=row.state.value, bucket=row.bucket,
                     key=row.key, endpoint=row.endpoint, upload_id=row.upload_id, command=stop)
    for job_id in report.active_jobs:
        log.warning("job %d was active: its unfinished large-file uploads stay in the journal as "
                    "single-file uploads (bigupload status lists them, bigupload resume finishes "
                    "them)", job_id)
        if out.as_json:
            out.emit("warning", "", job_id=job_id, state=JobState.ACTIVE.value)
    if report.uploads == 0 and report.jobs == 0:
        out.emit("summary", "nothing to forget", forgotten_uploads=0, forgotten_jobs=0,
                 server_changed=False)
    else:
        out.emit("summary", f"forgot {report.uploads} upload row(s) and {report.jobs} job(s); "
                 "nothing on the server was changed", forgotten_uploads=report.uploads,
                 forgotten_jobs=report.jobs, server_changed=False)


def show_resumed_file(out: Output, report: ResumedFile) -> None:
    """A single-file upload that ``resume`` finished (a failed one is the caller's to say,
    as an error; a skipped one is a warning)."""
    where = f"s3://{report.bucket}/{report.key}"
    if report.skipped:
        log.warning("skipping %s: %s", where, report.skipped)  # stderr, as every log
        if out.as_json:
            out.emit("skipped", "", id=report.id, source=report.source, bucket=report.bucket,
                     key=report.key, endpoint=report.endpoint, reason=report.skipped,
                     exit_code=report.exit_code or 0)
    elif report.result is not None:
        result = report.result
        out.emit("done", f"{report.source} -> {where}: {format_size(result.size)} in "
                 f"{result.parts} parts, {result.resumed_parts} already on the server",
                 **dataclasses.asdict(result))


# S3's multipart calls: ``parts``, ``ls-uploads``, ``abort``. JSON fields are S3's names
# in snake_case (``PartNumber`` -> ``part_number``, ``ETag`` -> ``etag``, ``ChecksumSHA1``
# -> ``checksum_sha1``), timestamps ISO 8601 in UTC; a field S3 did not send is null.

def iso_utc(moment: datetime.datetime | None) -> str | None:
    """``2025-01-02T03:04:05.123000Z``; a time without a zone is taken as UTC."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.astimezone(datetime.timezone.utc).isoformat().replace("+00:00", "Z")


def owner_fields(owner: Owner | None) -> dict[str, str | None] | None:
    return None if owner is None else {"id": owner.id, "display_name": owner.display_name}


def _owner_text(owner: Owner | None) -> str:
    if owner is None:
        return "-"
    if owner.display_name and owner.id:
        return f"{owner.id} ({owner.display_name})"
    return owner.id or owner.display_name or "-"


def part_fields(part: RemotePart) -> dict[str, object]:
    return {"part_number": part.number, "last_modified": iso_utc(part.last_modified),
            "etag": part.etag, "size": part.size,
            **{f"checksum_{name.lower()}": value for name, value in part.checksums.items()}}


def show_parts(out: Output, listing: PartListing) -> None:
    """``bigupload parts``: a row per part (number, size, last modified, ETag, checksums),
    then a line of the upload's own fields and, for a page, the marker that continues it."""
    if not out.as_json:
        out.emit("header", f"{'part':>6} {'size':>12}  {'last modified':<24}  {'etag':<34}  "
                 "checksum")
    for p in listing.parts:
        sums = " ".join(f"{name}:{value}" for name, value in p.checksums.items())
        out.emit("part", f"{p.number:>6} {p.size:>12}  {iso_utc(p.last_modified) or '-':<24}  "
                 f"{p.etag:<34}  {sums}".rstrip(), **part_fields(p))
    size = sum(p.size for p in listing.parts)
    algorithm = listing.checksum_algorithm
    about = [f"checksum {algorithm} ({listing.checksum_type or 'type not listed'})"
             if algorithm else "no checksum algorithm listed",
             f"storage class {listing.storage_class or '-'}",
             f"initiator {_owner_text(listing.initiator)}", f"owner {_owner_text(listing.owner)}"]
    if listing.abort_date or listing.abort_rule_id:
        about.append(f"aborted on {iso_utc(listing.abort_date) or '-'} by lifecycle rule "
                     f"{listing.abort_rule_id or '-'}")
    if listing.request_charged:
        about.append(f"request charged to the {listing.request_charged}")
    more = (f"; more parts: --part-number-marker {listing.next_part_number_marker}"
            if listing.is_truncated else "")
    out.emit("summary", f"{len(listing.parts)} part(s), {size} bytes ({format_size(size)}); "
             f"upload {listing.upload_id} of s3://{listing.bucket}/{listing.key}: "
             + ", ".join(about) + more,
             bucket=listing.bucket, key=listing.key, upload_id=listing.upload_id,
             initiator=owner_fields(listing.initiator), owner=owner_fields(listing.owner),
             storage_class=listing.storage_class, checksum_algorithm=algorithm,
             checksum_type=listing.checksum_type, abort_date=iso_utc(listing.abort_date),
             abort_rule_id=listing.abort_rule_id, request_charged=listing.request_charged,
             part_number_marker=listing.part_number_marker,
             next_part_number_marker=listing.next_part_number_marker,
             max_parts=listing.max_parts, is_truncated=listing.is_truncated,
             parts=len(listing.parts), bytes=size)


def show_uploads(out: Output, bucket: str, uploads: tuple[MultipartUpload, ...]) -> None:
    """``bigupload ls-uploads``: one line per unfinished upload, then a count (not in JSON)."""
    for u in uploads:
        checksum = f"  {u.checksum_algorithm}" if u.checksum_algorithm else ""
        out.emit("upload", f"{iso_utc(u.initiated) or '-'}  s3://{bucket}/{u.key}  "
                 f"{u.upload_id}{checksum}",
                 bucket=bucket, key=u.key, upload_id=u.upload_id, initiated=iso_utc(u.initiated),
                 storage_class=u.storage_class, owner=owner_fields(u.owner),
                 initiator=owner_fields(u.initiator), checksum_algorithm=u.checksum_algorithm,
                 checksum_type=u.checksum_type)
    if not out.as_json:
        out.emit("summary", f"{len(uploads)} unfinished upload(s)")


def show_aborted(out: Output, report: AbortReport) -> None:
    charged = (f"; request charged to the {report.request_charged}"
               if report.request_charged else "")
    out.emit("aborted", f"aborted {report.upload_id} (s3://{report.bucket}/{report.key})"
             + charged, bucket=report.bucket, key=report.key, upload_id=report.upload_id,
             journal_rows=list(report.rows_closed), request_charged=report.request_charged)
