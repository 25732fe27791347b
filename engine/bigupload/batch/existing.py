"""Skip-existing identity: whether a file of a job need not be sent because its
destination already holds it (``--skip-existing``) or holds anything (``--no-overwrite``).

What is at each destination is found here (one listing per bucket, or a HEAD per key);
whether it is the file is ``upload.existing.same_object``'s to say, by ``verify``'s rules,
the ones every upload uses: the same size, then the same checksum or MD5 ETag. Nothing is
downloaded; the file is read at most twice."""

from __future__ import annotations

from collections.abc import Awaitable

import anyio

from ..client import ObjectInfo, ObjectOptions, ObjectStore, ObjectSummary
from ..config import UploadConfig
from ..scheduler import Scheduler
from ..source import SourceFile
from ..upload.existing import same_object as same_object

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
