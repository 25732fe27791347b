"""A batch job's spec and its place in the journal: the spec is what a resume needs to
run the job again (where its files come from, the endpoint, the settings that decide what
each object becomes), never a secret (an SSE-C key is kept as a salted hash).

Invariants: the spec is stored as sorted JSON and found again by its hash, so the same
command run again resumes the job it started: a setting added later goes into the spec
only when set, so that the specs (and hashes) of jobs started before it stay the same.
A job's file list is journalled before anything is sent, and two files never go to the
same key."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import logging
import os
from collections.abc import Iterable, Iterator
from typing import Any

import anyio

from ..config import ChecksumAlgorithm, ServerSideEncryption, UploadConfig
from ..errors import ResumeError
from ..journal import FileState, JobFile, JobRecord, Journal
from ..values import sse_c_key_hash
from .sources import Entry

log = logging.getLogger("bigupload")
ADD_BATCH = 10_000  # a resumed job's new files are added in transactions of this many


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
        **({"content_md5": True} if config.content_md5 else {}),
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
    """The job as ``status`` shows it. A directory or manifest whose path is not UTF-8
    is shown escaped (``\\xff``): the description is for reading, and SQLite text cannot
    hold surrogate escapes (the spec's JSON keeps the exact path)."""
    origin = spec["origin"]
    if spec["kind"] == "directory":
        return f"{_readable(origin['root'])} -> s3://{origin['bucket']}/{origin['prefix']}"
    if spec["kind"] == "manifest":
        return f"manifest {_readable(origin['manifest'])}"
    if spec["kind"] == "prefix":
        return (f"s3://{origin['source_bucket']}/{origin['source_prefix']} -> "
                f"s3://{origin['bucket']}/{origin['prefix']} (server-side)")
    return f"{origin['count']} item(s)"


def _readable(path: str) -> str:
    return os.fsencode(path).decode("utf-8", "backslashreplace")  # the byte: \\xff


def entries_to_files(entries: Iterable[Entry], first_seq: int) -> Iterator[JobFile]:
    """Journal rows for entries, one at a time; an entry with an error stays pending with
    it, so the run reports it among the job's failures."""
    for seq, e in enumerate(entries, first_seq):
        settings = e.item.settings()
        yield JobFile(
            seq=seq, source=e.item.source, bucket=e.item.bucket, key=e.item.key, size=e.size,
            settings=json.dumps(settings, sort_keys=True) if settings else None,
            state=FileState.PENDING, error=e.error,
        )


def open_job(journal: Journal, spec: dict[str, Any],
             entries: Iterable[Entry]) -> tuple[JobRecord, bool]:
    """The unfinished job started by the same spec (a re-run of the same command resumes
    it: ``entries`` are then not read here; ``add_new_files`` adds those it does not have,
    once its known files are sent), or a new job, its file list journalled from
    ``entries`` as they come, in one transaction (a walk is never held as a list).
    Returns (job, resumed)."""
    digest = spec_hash(spec)
    existing = journal.find_job(digest)
    if existing is not None:
        return existing, True
    job_id = journal.start_job(describe(spec), json.dumps(spec, sort_keys=True), digest,
                               entries_to_files(entries, 0))
    job = journal.job(job_id)
    assert job is not None
    return job, False


async def add_new_files(journal: Journal, job_id: int, entries: Iterable[Entry]) -> int:
    """Add the entries whose keys job ``job_id`` does not have yet (the same walk again
    finds the files added since), ``ADD_BATCH`` at a time: each batch is read (walked) in
    a worker thread and journalled in one transaction. Returns how many were added."""
    added = 0
    seq = journal.next_seq(job_id)
    it = iter(entries)
    while chunk := await anyio.to_thread.run_sync(lambda: list(itertools.islice(it, ADD_BATCH))):
        added += journal.add_job_files(job_id, entries_to_files(chunk, seq), new_only=True)
        seq += len(chunk)
    if added:
        log.info("job %d: %d new file(s) added", job_id, added)
    return added
