"""Prefix copies as batch jobs: ``cp s3://a/photos/ s3://b/photos/ --recursive`` is one
resumable job of the kind ``prefix``, run by the same ``JobRunner`` as a directory, each
object copied server-side (``upload.copy.Copy``) instead of uploaded.

- ``list_prefix``: the job's entries, from a listing of the source prefix (filters as for
  directories, keys under the destination prefix);
- ``copied_already``: ``--skip-existing`` for a copy: is the object at the destination
  a copy of the source? The same size, and the same ETag or the same whole-object
  checksum (``copy_machine.judge_copy``); nothing is downloaded.

Invariants: the source and destination prefixes never overlap (a job would otherwise
list its own copies on the next run); a job file's ``source`` is the object's
``s3://bucket/key``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from ..client import ObjectStore
from ..config import ChecksumAlgorithm
from ..errors import ConfigError
from ..scheduler import Scheduler
from ..upload.copy_machine import judge_copy
from ..values import CopySourceInfo, ObjectInfo, ObjectSummary
from .sources import BatchItem, Entry, check_key, matches

PREFIX = "prefix"  # the job kind


def split_source(url: str) -> tuple[str, str]:
    """A job file's source, ``s3://bucket/key``, as (bucket, key)."""
    bucket, _, key = url.removeprefix("s3://").partition("/")
    return bucket, key


def check_prefixes(source_bucket: str, source_prefix: str, bucket: str, prefix: str) -> None:
    """ConfigError when the destination lies inside the source (or the other way round):
    the next run of the job would find its own copies among the sources."""
    if source_bucket == bucket and (prefix.startswith(source_prefix)
                                    or source_prefix.startswith(prefix)):
        raise ConfigError(f"s3://{source_bucket}/{source_prefix} and s3://{bucket}/{prefix} "
                          "overlap: copy to a prefix outside the source")


async def list_prefix(store: ObjectStore, scheduler: Scheduler, source_bucket: str,
                      source_prefix: str, bucket: str, prefix: str, *,
                      include: Sequence[str] = (), exclude: Sequence[str] = (),
                      ) -> tuple[list[Entry], int]:
    """The objects under ``s3://source_bucket/source_prefix`` as a job's entries, each to
    ``prefix`` plus its key relative to ``source_prefix``; and how many the filters left out."""
    check_prefixes(source_bucket, source_prefix, bucket, prefix)
    objects = await scheduler.retrying(
        f"ListObjectsV2 s3://{source_bucket}/{source_prefix}",
        lambda n: store.list_objects(source_bucket, source_prefix))
    entries: list[Entry] = []
    excluded = 0
    for summary in sorted(objects, key=lambda o: o.key):
        relative = summary.key[len(source_prefix):]
        if (include and not matches(relative, include)) or matches(relative, exclude):
            excluded += 1
            continue
        key = prefix + relative
        item = BatchItem(f"s3://{source_bucket}/{summary.key}", bucket, key)
        problem = check_key(key)
        entries.append(Entry(item, summary.size,
                             f"s3://{bucket}/{key}: {problem}" if problem else None))
    return entries, excluded


async def copied_already(remote: ObjectSummary | ObjectInfo, origin: CopySourceInfo,
                         head: Callable[[], Awaitable[ObjectInfo | None]]) -> bool:
    """Whether ``remote`` (a listing's entry, or a HEAD) is a copy of ``origin``: the same
    size, then the same ETag (the same bytes copied the same way), else the same
    whole-object checksum from a HEAD."""
    if remote.size != origin.source.size:
        return False
    if remote.etag == origin.source.etag:
        return True
    info = remote if isinstance(remote, ObjectInfo) else await head()
    if info is None:
        return False
    verdict = judge_copy(info, origin, ChecksumAlgorithm.NONE, frozenset())
    return verdict.ours and "checksum" in verdict.compared
