"""Batch jobs: directories, manifests and lists of items uploaded as one resumable job.

A job's file list is journalled (with the job's spec, so it can be resumed) before
anything is sent, read from the walk or manifest as it comes; running the same job again
sends the files the journal has first, then adds those that appeared since. Nothing is
held per file: the journal on disk is the job's only per-file state. One ``Uploader``
runs it: every file goes through the same ``Transfer`` as a single file, sharing the
scheduler's connection and memory bounds. What becomes of each file is journalled as it
happens. A file that fails for good (missing, unreadable, access denied on its key) is
recorded with its reason and the job goes on; a failure that would hit every file stops
the job, which stays resumable.

Where each concern lives:

- ``sources``: ``BatchItem``, directory walks and manifests (``Entry``), key checks;
- ``spec``: the job's spec (what a resume needs), and opening the job in the journal;
- ``policy``: whether a file's failure is recorded or stops the job;
- ``existing``: ``--skip-existing`` and ``--no-overwrite`` (is the object there this file?);
- ``results``: ``ItemResult``, ``BatchResult`` and the ``BatchProgress`` protocol;
- ``runner``: ``JobRunner``, which runs a job's files here or in shards on a cluster;
- ``copies``: prefix copies (``s3://a/p/`` to ``s3://b/p/``), jobs whose objects are
  copied server-side: their listing, and ``--skip-existing`` for a copy.

This module re-exports the names callers use; the tunables (page and shard sizes, how
often outcomes are committed) live in ``runner`` and are read from there."""

from __future__ import annotations

from .copies import PREFIX, check_prefixes, copied_already, list_prefix
from .existing import ExistingObjects, same_object
from .policy import FailurePolicy, is_fatal
from .results import BatchProgress, BatchResult, ItemResult, NullBatchProgress
from .runner import FileQueue, JobRunner
from .sources import (
    BatchItem,
    Entry,
    WalkReport,
    check_key,
    destination_prefix,
    entry_for,
    matches,
    read_manifest,
    walk_directory,
)
from .spec import (
    add_new_files,
    config_for_job,
    describe,
    entries_to_files,
    job_options,
    make_spec,
    open_job,
    spec_hash,
)

__all__ = [
    "BatchItem",
    "BatchProgress",
    "BatchResult",
    "Entry",
    "ExistingObjects",
    "FailurePolicy",
    "FileQueue",
    "ItemResult",
    "JobRunner",
    "NullBatchProgress",
    "PREFIX",
    "WalkReport",
    "add_new_files",
    "check_key",
    "check_prefixes",
    "config_for_job",
    "copied_already",
    "describe",
    "destination_prefix",
    "entries_to_files",
    "entry_for",
    "is_fatal",
    "job_options",
    "list_prefix",
    "make_spec",
    "matches",
    "open_job",
    "read_manifest",
    "same_object",
    "spec_hash",
    "walk_directory",
]
