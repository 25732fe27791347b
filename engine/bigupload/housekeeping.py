"""The journal's own housekeeping, which needs no server: what it says (``status``) and
removing rows from it (``forget``). ``Uploader.status`` and ``Uploader.forget`` are the
entry points; these functions take the open journal.

``forget`` never touches the server. A row named by id may be in any state: an active one
is held first (its lock), so a running upload is not forgotten under it, and it is
reported so the caller can say how to abort its upload. Filters alone take closed rows."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from .errors import ConfigError, JournalError, ResumeError
from .journal import (
    JOB_CLOSED_STATES,
    UPLOAD_CLOSED_STATES,
    FileState,
    JobRecord,
    JobState,
    Journal,
    UploadRecord,
    UploadState,
)
from .reports import FileFailure, ForgetReport, JobStatus, StatusReport, UploadStatus
from .values import STREAM_SOURCE


def status(journal: Journal, job_id: int | None = None, *, closed: bool = False) -> StatusReport:
    """Jobs (active and partial; all with ``closed``) and the single-file upload rows that
    belong to no job: the unfinished ones, and with ``closed`` the closed ones. With
    ``job_id``, that job alone, with its failures."""
    if job_id is not None:
        job = journal.job(job_id)
        if job is None:
            raise ConfigError(f"no job {job_id} in the journal {journal.path}")
        return StatusReport(jobs=(_job_status(journal, job, failures=True),))
    jobs = journal.jobs(tuple(JobState) if closed else (JobState.ACTIVE, JobState.PARTIAL))
    unfinished = tuple(
        _upload_status(journal, r) for r in journal.uploads(UploadState.ACTIVE)
        if not journal.in_job(r.fingerprint.path, r.bucket, r.key))
    closed_rows = () if not closed else tuple(sorted(
        (_upload_status(journal, r) for state in UPLOAD_CLOSED_STATES
         for r in journal.uploads(state)
         if not journal.in_job(r.fingerprint.path, r.bucket, r.key, unfinished=False)),
        key=lambda row: row.id))
    return StatusReport(jobs=tuple(_job_status(journal, job) for job in jobs),
                        unfinished=unfinished, closed=closed_rows)


def job_failures(journal: Journal, job_id: int) -> Iterator[FileFailure]:
    """The files of job ``job_id`` that failed for good, in the job's order, read a page
    at a time."""
    after = -1
    while page := journal.job_files(job_id, (FileState.FAILED,), after=after):
        after = page[-1].seq
        for f in page:
            yield FileFailure(f.source, f.bucket, f.key, f.error, f.exit_code)


def _job_status(journal: Journal, job: JobRecord, *, failures: bool = False) -> JobStatus:
    totals = journal.job_totals(job.id)
    done = totals.done_bytes + (journal.job_parts_bytes(job.id) if job.state is JobState.ACTIVE
                                else 0)
    failed = list(job_failures(journal, job.id)) if failures else []
    return JobStatus(id=job.id, state=job.state, description=job.description, files=totals.files,
                     done_files=totals.done_files, failed_files=totals.failed_files,
                     bytes=totals.bytes, done_bytes=done, error=job.error,
                     updated_at=job.updated_at, failures=tuple(failed))


def _upload_status(journal: Journal, record: UploadRecord) -> UploadStatus:
    totals = journal.part_totals(record.id) if record.state is UploadState.ACTIVE else None
    parts_done, bytes_done = (totals.parts, totals.bytes) if totals else (0, 0)
    return UploadStatus(id=record.id, state=record.state, source=record.fingerprint.path,
                        bucket=record.bucket, key=record.key, endpoint=record.endpoint,
                        upload_id=record.upload_id, size=record.fingerprint.size,
                        parts=record.part_count, parts_done=parts_done, bytes_done=bytes_done,
                        etag=record.etag, error=record.error, updated_at=record.updated_at,
                        running=record.state is UploadState.ACTIVE
                        and record.fingerprint.path == STREAM_SOURCE
                        and stream_running(journal, record) is not None)


def stream_running(journal: Journal, record: UploadRecord) -> ResumeError | None:
    """Whether a stream's row is held by a live process: its destination's lock is taken
    (the refusal, naming the process, or None). A stream holds that lock from before its
    row is written until the row is closed, so an active row whose lock is free was left
    by a run that was killed. Trying the lock takes it for an instant: a process starting
    to upload to that destination at that instant is refused (and can simply run again)."""
    try:
        with journal.claim(record.endpoint, record.bucket, record.key):
            return None
    except ResumeError as exc:
        return exc
    except JournalError:  # no lock can be taken beside this journal: none is held either
        return None


def forget(journal: Journal, *, uploads: tuple[int, ...] = (), jobs: tuple[int, ...] = (),
           finished: bool = False, failed: bool = False,
           older_than: float | None = None) -> ForgetReport:
    """Remove upload rows and jobs from the journal: those named (``uploads``, ``jobs``:
    ids as ``status`` reports them), or the closed ones ``finished`` (completed) and
    ``failed`` (failed, aborted, superseded; partial jobs, whose failures can then no
    longer be retried) select, all of them last changed more than ``older_than`` seconds
    ago. Naming nothing and selecting nothing is a ConfigError."""
    named = bool(uploads or jobs)
    if not (named or finished or failed or older_than is not None):
        raise ConfigError("forget needs rows (upload ID..., job ID... as bigupload status "
                          "shows them), --finished, --failed or --older-than AGE")
    upload_states: tuple[UploadState, ...] | None = None
    job_states: tuple[JobState, ...] | None = None
    if finished or failed:
        upload_states = ((UploadState.COMPLETED,) if finished else ()) + (
            (UploadState.FAILED, UploadState.ABORTED, UploadState.SUPERSEDED) if failed else ())
        job_states = ((JobState.COMPLETED,) if finished else ()) + (
            (JobState.PARTIAL,) if failed else ())
    elif not named:
        upload_states, job_states = UPLOAD_CLOSED_STATES, JOB_CLOSED_STATES
    cutoff = None if older_than is None else time.time() - older_than
    with contextlib.ExitStack() as held:
        active_uploads: list[UploadStatus] = []
        for row in uploads:
            try:
                record = journal.get(row)
            except JournalError:
                raise
            except ResumeError:  # no such row
                raise ConfigError(f"no upload {row} in the journal {journal.path} "
                                  "(see: bigupload status --all)") from None
            if (record.state is UploadState.ACTIVE and upload_states is None
                    and (cutoff is None or record.updated_at < cutoff)):
                held.enter_context(journal.claim(record.endpoint, record.bucket, record.key))
                active_uploads.append(_upload_status(journal, record))
        active_jobs: list[int] = []
        for job_id in jobs:
            job = journal.job(job_id)
            if job is None:
                raise ConfigError(f"no job {job_id} in the journal {journal.path} "
                                  "(see: bigupload status --all)")
            if (job.state is JobState.ACTIVE and job_states is None
                    and (cutoff is None or job.updated_at < cutoff)):
                held.enter_context(journal.claim_job(job.id))
                active_jobs.append(job.id)
        forgotten_uploads = journal.forget_uploads(
            ids=list(uploads) if named else None, states=upload_states, older_than=older_than)
        forgotten_jobs = journal.forget_jobs(
            ids=list(jobs) if named else None, states=job_states, older_than=older_than)
    return ForgetReport(uploads=forgotten_uploads, jobs=forgotten_jobs,
                        active_uploads=tuple(active_uploads), active_jobs=tuple(active_jobs))
