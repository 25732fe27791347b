"""Parts on the wire and on disk, for every kind of upload:

- ``digest_parts``: the one reader that checksums parts of the file (their checksums,
  their MD5s, the whole file's MD5), in one pass through the scan buffer;
- ``PartSender``: checksums and uploads one part with retries; the same code runs here
  and, for a cluster, on the workers (``remote.upload_parts``);
- ``abort_upload``: AbortMultipartUpload, finished even while being cancelled.

Blocking reads run in the scheduler's threads; nothing here creates tasks."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Sequence

import anyio

from .. import checksum as ck
from ..client import ObjectStore
from ..config import ChecksumAlgorithm
from ..errors import IntegrityError, NotFoundError
from ..scheduler import Scheduler
from ..source import SourceFile
from ..values import ObjectOptions, Part, PartRecord


@dataclasses.dataclass(frozen=True)
class Digests:
    checksums: list[bytes]  # raw, one per part (when asked)
    md5s: list[str]  # hex, one per part (when asked)
    whole_md5: str | None  # hex, of every part's bytes in order (when asked)


def digest_parts(source: SourceFile, parts: Sequence[Part], algorithm: ChecksumAlgorithm, *,
                 checksums: bool = True, part_md5: bool = False,
                 whole_md5: bool = False) -> Digests:
    """Read the parts once, feeding each chunk to what was asked for: each part's raw
    checksum in ``algorithm`` (empty bytes for none, without reading), each part's MD5,
    the MD5 of them all. Blocking: run it in a thread."""
    whole = hashlib.md5() if whole_md5 else None
    raws: list[bytes] = []
    md5s: list[str] = []
    for part in parts:
        hasher = ck.Hasher(algorithm) if checksums else None
        md5 = hashlib.md5() if part_md5 else None
        updates: list[Callable[[memoryview], object]] = []
        if hasher is not None and algorithm is not ChecksumAlgorithm.NONE:
            updates.append(hasher.update)
        if md5 is not None:
            updates.append(md5.update)
        if whole is not None:
            updates.append(whole.update)
        if len(updates) == 1:
            source.scan(part, updates[0])
        elif updates:
            source.scan(part, _fan_out(updates))
        if hasher is not None:
            raws.append(hasher.digest())
        if md5 is not None:
            md5s.append(md5.hexdigest())
    return Digests(raws, md5s, whole.hexdigest() if whole is not None else None)


def _fan_out(updates: list[Callable[[memoryview], object]]) -> Callable[[memoryview], None]:
    def consume(chunk: memoryview) -> None:
        for update in updates:
            update(chunk)

    return consume


def part_checksum(source: SourceFile, part: Part, algorithm: ChecksumAlgorithm) -> bytes:
    """The raw checksum of one part's bytes (empty for ``none``). Blocking: run in a thread."""
    return digest_parts(source, [part], algorithm).checksums[0]


class PartSender:
    """Checksums and uploads parts of one file to one multipart upload, with retries."""

    def __init__(self, source: SourceFile, bucket: str, key: str, upload_id: str, *,
                 algorithm: ChecksumAlgorithm, options: ObjectOptions, store: ObjectStore,
                 scheduler: Scheduler) -> None:
        self.source = source
        self.bucket = bucket
        self.key = key
        self.upload_id = upload_id
        self.algorithm = algorithm
        self.options = options
        self.store = store
        self.scheduler = scheduler

    async def send(self, part: Part) -> PartRecord:
        """Upload one part; its record once acknowledged. The body is a ``FileRange``: the
        HTTP layer sends it from the file, so if the file changes between the checksum and
        the send, the server's checksum check fails the part (BadDigest) and the retry
        checksums it again."""
        raw = b""
        body = self.source.range(part)
        reread = True  # checksum on the first attempt, and again after a digest mismatch
        where = f"s3://{self.bucket}/{self.key}"

        async def attempt(n: int) -> PartRecord:
            nonlocal raw, reread
            if reread:  # a store that checksums in the pass that sends is given none
                raw = b"" if self.store.checksums_while_sending(self.algorithm) else \
                    await self.scheduler.in_thread(part_checksum, self.source, part,
                                                   self.algorithm)
                reread = False
            header = ck.encode(raw) if raw else None
            try:
                receipt = await self.store.upload_part(
                    self.bucket, self.key, self.upload_id, part.number, body, header, self.options
                )
            except IntegrityError:
                reread = True  # the bytes may have been corrupted on our side
                raise
            raw = raw or receipt.sent or b""
            expected = ck.encode(raw)
            if receipt.checksum is not None and expected and receipt.checksum != expected:
                reread = True
                raise IntegrityError(
                    f"UploadPart {where} part {part.number}: server checksum "
                    f"{receipt.checksum} != ours {expected}",
                    operation="UploadPart", bucket=self.bucket, key=self.key,
                    upload_id=self.upload_id, part_number=part.number, retryable=True,
                )
            return PartRecord(part.number, part.length, receipt.etag, expected)

        return await self.scheduler.retrying(f"UploadPart {where} part {part.number}", attempt)


async def abort_upload(store: ObjectStore, scheduler: Scheduler, bucket: str, key: str,
                       upload_id: str, options: ObjectOptions) -> None:
    """AbortMultipartUpload with retries, finished even if we are being cancelled (an
    upload left behind is billed forever); an upload that is already gone is fine."""
    with anyio.CancelScope(shield=True):
        try:
            await scheduler.retrying(f"AbortMultipartUpload s3://{bucket}/{key}",
                                     lambda n: store.abort(bucket, key, upload_id, options))
        except NotFoundError:
            pass
