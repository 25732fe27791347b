"""Skip-existing identity: whether a file of a job need not be sent because its
destination already holds it (``--skip-existing``) or holds anything (``--no-overwrite``).

Invariants: an object is the file only when it has the same size and then the same
checksum (from HEAD) or, where that is what the server offers, the same MD5 ETag (a
single-request object, or the MD5 of part MD5s when the part count matches our plan);
SSE-KMS and SSE-C ETags are not MD5s, so only checksums count for them. Nothing is
downloaded; the file is read at most twice."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from .. import checksum as ck
from ..client import ObjectInfo, ObjectOptions, ObjectStore, ObjectSummary
from ..config import ChecksumAlgorithm, ServerSideEncryption, UploadConfig
from ..plan import Part, plan
from ..scheduler import Scheduler
from ..source import SourceFile

SAME = "same object there"  # --skip-existing
EXISTS = "exists, not overwritten"  # --no-overwrite
# Below this many files, a job whose keys share no prefix HEADs each key rather than
# listing a whole bucket (a listing returns 1,000 objects a request).
HEAD_EACH_BELOW = 1000


class ExistingObjects:
    """What is already at each destination of a job, and whether a file need not be sent
    because of it. Lists the job's common key prefix once per bucket (1 request per 1,000
    objects); when the keys share no prefix and the job is small, HEADs each key instead
    of listing a whole bucket."""

    def __init__(self, store: ObjectStore, scheduler: Scheduler, prefixes: dict[str, str],
                 files: int, *, skip_existing: bool) -> None:
        self._store = store
        self._scheduler = scheduler
        self._prefixes = prefixes
        self._skip_existing = skip_existing
        self._use_head = files < HEAD_EACH_BELOW and any(not p for p in prefixes.values())
        self._listed: dict[str, dict[str, ObjectSummary]] = {}
        self._lock = anyio.Lock()

    async def reason_to_skip(self, bucket: str, key: str, source: SourceFile,
                             config: UploadConfig) -> str | None:
        """Why the file need not be sent: ``SAME`` (--skip-existing found this file
        there), ``EXISTS`` (--no-overwrite found an object there), or None."""
        options = ObjectOptions.from_config(config, None)
        remote = await self.lookup(bucket, key, options)
        if remote is None:
            return None
        if config.no_overwrite and not self._skip_existing:
            return EXISTS

        def head() -> Awaitable[ObjectInfo | None]:
            return self._scheduler.retrying(f"HeadObject s3://{bucket}/{key}",
                                            lambda n: self._store.head(bucket, key, options))

        if await same_object(remote, source, source.size, config, head, self._scheduler):
            return SAME
        return EXISTS if config.no_overwrite else None

    async def lookup(self, bucket: str, key: str,
                     options: ObjectOptions) -> ObjectSummary | ObjectInfo | None:
        if self._use_head:
            return await self._scheduler.retrying(f"HeadObject s3://{bucket}/{key}",
                                                  lambda n: self._store.head(bucket, key, options))
        async with self._lock:
            if bucket not in self._listed:
                prefix = self._prefixes.get(bucket, "")
                objects = await self._scheduler.retrying(
                    f"ListObjectsV2 s3://{bucket}/{prefix}",
                    lambda n: self._store.list_objects(bucket, prefix))
                self._listed[bucket] = {o.key: o for o in objects}
        return self._listed[bucket].get(key)


def _local_digests(source: SourceFile, parts: list[Part], algorithm: ChecksumAlgorithm,
                   per_part: bool, whole_md5: bool) -> tuple[str | None, list[bytes], list[str]]:
    """One pass over the file: its MD5 (if ``whole_md5``), and (if ``per_part``) each
    part's raw checksum and MD5."""
    whole = hashlib.md5() if whole_md5 else None
    raws: list[bytes] = []
    md5s: list[str] = []
    for part in parts:
        hasher, md5 = ck.Hasher(algorithm), hashlib.md5()

        def consume(chunk: memoryview, hasher: ck.Hasher = hasher, md5: Any = md5) -> None:
            if per_part:
                hasher.update(chunk)
                md5.update(chunk)
            if whole is not None:
                whole.update(chunk)

        if per_part or whole is not None:
            source.scan(part, consume)
        if per_part:
            raws.append(hasher.digest())
            md5s.append(md5.hexdigest())
    return (whole.hexdigest() if whole else None), raws, md5s


async def same_object(remote: ObjectSummary | ObjectInfo, source: SourceFile, size: int,
                      config: UploadConfig, head: Callable[[], Awaitable[ObjectInfo | None]],
                      scheduler: Scheduler) -> bool:
    """Whether the object is this file, without downloading it: same size, then the same
    checksum (from HEAD) or, where that is what the server offers, the same ETag (the
    MD5 of a single-request object, or the MD5 of part MD5s for a multipart one whose part
    count matches our plan). SSE-KMS and SSE-C ETags are not MD5s: only checksums count.
    The file is read once, or twice when the ETag neither matches nor shares our parts."""
    if remote.size != size:
        return False
    parts = plan(size, config).parts()
    raws: list[bytes] = []  # per-part checksums, once computed
    etag = remote.etag.strip('"').lower()
    md5_etags = config.sse is not ServerSideEncryption.KMS and config.sse_c_key is None
    base, _, count = etag.partition("-")
    if md5_etags and len(base) == 32 and all(c in "0123456789abcdef" for c in base):
        per_part = count.isdigit() and int(count) == len(parts)
        whole, raws, md5s = await scheduler.in_thread(_local_digests, source, parts,
                                                      config.checksum, per_part, not count)
        if not count and whole == etag:
            return True
        if count and md5s:
            combined = hashlib.md5(b"".join(bytes.fromhex(m) for m in md5s)).hexdigest()
            if f"{combined}-{len(md5s)}" == etag:
                return True
    if config.checksum is ChecksumAlgorithm.NONE:
        return False
    info = remote if isinstance(remote, ObjectInfo) else await head()
    if info is None or info.checksum is None:
        return False
    value, _, count = info.checksum.partition("-")
    if count.isdigit() and int(count) != len(parts):
        return False  # laid out differently: its checksum cannot be compared with ours
    if not raws:
        _, raws, _ = await scheduler.in_thread(_local_digests, source, parts, config.checksum,
                                               True, False)
    if count and info.checksum_type != "FULL_OBJECT":
        return ck.composite(config.checksum, raws) == info.checksum
    lengths = [p.length for p in parts]
    full = ck.full_object(config.checksum, list(zip(raws, lengths, strict=True)))
    return full == value if len(raws) > 1 else ck.encode(raws[0]) == value
