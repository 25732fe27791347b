"""``--skip-existing``: is the object already at the destination this file? Decided by
``verify`` (the rules every upload uses), on the digests ``digest_parts`` reads.

Without downloading it: the same size, then the same ETag where ETags are MD5s (the MD5
of a single-request object, or the MD5 of part MD5s for a multipart object whose part
count matches our plan), then the same checksum (from HEAD, where the listing had none).
SSE-KMS and SSE-C ETags are not MD5s: only checksums count. The file is read once, or
twice when the ETag neither matches nor shares our parts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from .. import verify
from ..config import ChecksumAlgorithm, ServerSideEncryption, UploadConfig
from ..plan import plan
from ..scheduler import Scheduler
from ..source import SourceFile
from ..values import ObjectInfo, ObjectSummary
from .parts import digest_parts


async def same_object(remote: ObjectSummary | ObjectInfo, source: SourceFile, size: int,
                      config: UploadConfig, head: Callable[[], Awaitable[ObjectInfo | None]],
                      scheduler: Scheduler) -> bool:
    """Whether ``remote`` (a listing's entry, or a HEAD) holds the file's bytes; ``head``
    fetches its checksum when the ETag did not decide."""
    if remote.size != size:
        return False
    parts = plan(size, config).parts()
    lengths = [p.length for p in parts]
    raws: list[bytes] = []  # per-part checksums, once computed
    md5_etags = config.sse is not ServerSideEncryption.KMS and config.sse_c_key is None
    etag = verify.md5_hex(remote.etag) if md5_etags else None
    if etag is not None:
        count = etag.partition("-")[2]
        per_part = count.isdigit() and int(count) == len(parts)
        digests = await scheduler.in_thread(
            lambda: digest_parts(source, parts, config.checksum, checksums=per_part,
                                 part_md5=per_part, whole_md5=not count))
        raws = digests.checksums
        ours = digests.whole_md5 if not count else (
            verify.multipart_etag(digests.md5s) if digests.md5s else None)
        if ours is not None and _judge(remote, size, config, raws, lengths, ours).same_content:
            return True
    if config.checksum is ChecksumAlgorithm.NONE:
        return False
    info = remote if isinstance(remote, ObjectInfo) else await head()
    if info is None or info.checksum is None:
        return False
    if not verify.layout_matches(info.checksum, len(parts)):
        return False  # laid out differently: its checksum cannot be compared with ours
    if not raws:
        raws = (await scheduler.in_thread(
            lambda: digest_parts(source, parts, config.checksum))).checksums
    return _judge(info, size, config, raws, lengths, None).same_content


def _judge(remote: ObjectSummary | ObjectInfo, size: int, config: UploadConfig,
           raws: list[bytes], lengths: list[int], etag: str | None) -> verify.Verdict:
    info = remote if isinstance(remote, ObjectInfo) else ObjectInfo(
        size=remote.size, etag=remote.etag, checksum=None, checksum_type=None)
    parts = list(zip(raws, lengths, strict=True)) if raws else []
    return verify.judge(info, verify.existing_expected(size, config.checksum, parts, etag))
