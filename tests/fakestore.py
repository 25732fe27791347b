"""An in-memory ObjectStore with scriptable faults, for engine tests. It checks what a
real S3 checks (checksum header, 5 MiB minimum at completion, part ETags), lists part
checksums as S3 does, and records every request so tests can assert what was (and was
not) sent. It copies server-side too (``CopyStore``), each read of a source conditional
on its ETag as S3's (``copy_conditions=False`` ignores the condition, as moto does)."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime
import hashlib
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import anyio
import xxhash

from bigupload import checksum as ck
from bigupload.client import (
    CompletedPart,
    CopySource,
    CopySourceInfo,
    MultipartUpload,
    ObjectInfo,
    ObjectOptions,
    ObjectSummary,
    PartListing,
    PartReceipt,
    Precondition,
    RemotePart,
)
from bigupload.config import ChecksumAlgorithm
from bigupload.errors import IntegrityError, NotFoundError, StoreError

Fault = Callable[[str, dict[str, Any]], None]  # raises to inject a failure


@dataclasses.dataclass
class StoredPart:
    data: bytes  # empty in lightweight mode
    size: int
    etag: str
    checksum: str | None


class FakeStore:
    endpoint = "fake://store"

    def __init__(self, page_size: int = 1000, min_part: int = 5 << 20,
                 lightweight: bool = False, list_checksums: bool = True,
                 conditional_writes: bool = True, copy_conditions: bool = True,
                 copy_part_checksums: bool = True) -> None:
        """``lightweight`` keeps only sizes and uses xxh3 ETags, for many-GiB tests.
        ``list_checksums``: ListParts reports each part's checksum, as S3 does (computed
        over the bytes stored, so a test that changes a stored part's bytes changes it
        too); False lists none, as SeaweedFS and moto. ``conditional_writes=False``
        answers If-None-Match / If-Match with 501, as servers without conditional writes do."""
        self.lightweight = lightweight
        self.list_checksums = list_checksums
        self.conditional_writes = conditional_writes
        self.modified: dict[tuple[str, str], datetime.datetime] = {}
        self.page_size = page_size
        self.min_part = min_part
        self.uploads: dict[str, dict[int, StoredPart]] = {}
        self.upload_meta: dict[str, tuple[str, str, ChecksumAlgorithm]] = {}
        self.upload_types: dict[str, str | None] = {}
        self.objects: dict[tuple[str, str], tuple[bytes, str, str | None]] = {}
        self.sizes: dict[tuple[str, str], int] = {}
        self.calls: collections.Counter[str] = collections.Counter()
        self.sent_parts: list[int] = []
        self.put_keys: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.faults: list[Fault] = []
        self.initiated: dict[str, datetime.datetime] = {}
        self.part_delay_s = 0.0
        self._next = 0
        # server-side copies: ``copy_part_checksums=False`` answers UploadPartCopy without
        # the part's checksum, as moto does
        self.copy_conditions = copy_conditions
        self.copy_part_checksums = copy_part_checksums
        self.attributes: dict[tuple[str, str], tuple[str | None, dict[str, str], dict[str, str]]] = {}
        self.algorithms: dict[tuple[str, str], str] = {}  # the checksum's algorithm (S3 name)
        self.copied_parts: list[int] = []

    @contextlib.contextmanager
    def _counted(self) -> Iterator[None]:
        """Count a request in flight (``max_in_flight`` is what tests check)."""
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            yield
        finally:
            self.in_flight -= 1

    def _fault(self, op: str, **ctx: Any) -> None:
        self.calls[op] += 1
        for fault in self.faults:
            fault(op, ctx)

    async def create_multipart(self, bucket: str, key: str, options: ObjectOptions) -> str:
        self._fault("create", bucket=bucket, key=key)
        self._next += 1
        upload_id = f"upload-{self._next}"
        self.uploads[upload_id] = {}
        self.upload_meta[upload_id] = (bucket, key, options.checksum)
        self.upload_types[upload_id] = options.checksum_type
        self.initiated[upload_id] = datetime.datetime.now(datetime.timezone.utc)
        return upload_id

    def _upload(self, upload_id: str) -> dict[int, StoredPart]:
        if upload_id not in self.uploads:
            raise NotFoundError("NoSuchUpload", code="NoSuchUpload", upload_id=upload_id)
        return self.uploads[upload_id]

    def checksums_while_sending(self, algorithm: Any) -> bool:
        return False  # the caller computes every checksum and sends it as a header

    async def upload_part(self, bucket: str, key: str, upload_id: str, number: int, body: Any,
                          checksum: str | None, options: ObjectOptions) -> PartReceipt:
        self._fault("upload_part", number=number, upload_id=upload_id)
        with self._counted():
            data = _body_bytes(body)
            if self.part_delay_s:
                await anyio.sleep(self.part_delay_s)
            parts = self._upload(upload_id)
            algorithm = self.upload_meta[upload_id][2]
            if algorithm is not ChecksumAlgorithm.NONE:
                actual = ck.encode(ck.compute(algorithm, data))
                if checksum != actual:
                    raise IntegrityError("BadDigest", code="BadDigest", retryable=True)
            if self.lightweight:
                etag = f'"{xxhash.xxh3_128_hexdigest(data)}"'
                parts[number] = StoredPart(b"", len(data), etag, checksum)
            else:
                etag = f'"{hashlib.md5(data).hexdigest()}"'
                parts[number] = StoredPart(data, len(data), etag, checksum)
            self.sent_parts.append(number)
            return PartReceipt(etag, checksum)

    async def list_parts(self, bucket: str, key: str, upload_id: str,
                         options: ObjectOptions) -> PartListing:
        parts = self._upload(upload_id)
        listed: list[RemotePart] = []
        numbers = sorted(parts)
        for start in range(0, max(len(numbers), 1), self.page_size):  # one call per page
            self._fault("list_parts_page", upload_id=upload_id)
            for n in numbers[start:start + self.page_size]:
                listed.append(RemotePart(n, parts[n].size, parts[n].etag,
                                         self._listed_checksum(upload_id, parts[n])))
        algorithm = self.upload_meta[upload_id][2]
        return PartListing(listed, None if algorithm is ChecksumAlgorithm.NONE else algorithm.s3_name,
                           self.upload_types.get(upload_id))

    def _check_condition(self, bucket: str, key: str, condition: Precondition | None) -> None:
        """As S3: 412 when the key's state is not the one the write is conditional on."""
        if condition is None or not condition.params():
            return
        if not self.conditional_writes:
            self.calls["refused_condition"] += 1
            raise StoreError("NotImplemented", code="NotImplemented")
        current = self.objects.get((bucket, key))
        if (condition.if_none_match and current is not None) or (
                condition.if_match is not None and (current is None or current[1] != condition.if_match)):
            raise StoreError("PreconditionFailed", code="PreconditionFailed")

    def _listed_checksum(self, upload_id: str, part: StoredPart) -> str | None:
        """What S3 lists for a part: the checksum of the bytes it holds, for an upload
        created with a checksum algorithm."""
        algorithm = self.upload_meta[upload_id][2]
        if not self.list_checksums or algorithm is ChecksumAlgorithm.NONE:
            return None
        if self.lightweight:
            return part.checksum
        return ck.encode(ck.compute(algorithm, part.data))

    async def complete(self, bucket: str, key: str, upload_id: str,
                       parts: Sequence[CompletedPart], options: ObjectOptions, *,
                       full_checksum: str | None = None, size: int | None = None,
                       condition: Precondition | None = None) -> str:
        self._fault("complete", upload_id=upload_id)
        stored = self._upload(upload_id)
        self._check_condition(bucket, key, condition)
        data = []
        for i, p in enumerate(parts):
            if p.number not in stored or stored[p.number].etag != p.etag:
                raise StoreError("InvalidPart", code="InvalidPart")
            if i < len(parts) - 1 and stored[p.number].size < self.min_part:
                raise StoreError("EntityTooSmall", code="EntityTooSmall")
            data.append(stored[p.number].data)
        body = b"".join(data)
        size = sum(stored[p.number].size for p in parts)
        algorithm = self.upload_meta[upload_id][2]
        checksum = None
        if algorithm is not ChecksumAlgorithm.NONE and self.upload_types.get(upload_id) == "FULL_OBJECT":
            checksum = ck.full_object(algorithm, [(ck.decode(stored[p.number].checksum or ""),
                                                   stored[p.number].size) for p in parts])
            if full_checksum is not None and full_checksum != checksum:
                raise IntegrityError("BadDigest", code="BadDigest", retryable=False)
        elif algorithm is not ChecksumAlgorithm.NONE:
            checksum = ck.composite(algorithm, [ck.decode(stored[p.number].checksum or "")
                                                for p in parts])
        etag = _multipart_etag([stored[p.number].etag for p in parts])
        self.objects[(bucket, key)] = (body, etag, checksum)
        self._attributes(bucket, key, options, algorithm)
        self.sizes[(bucket, key)] = size
        self.modified[(bucket, key)] = datetime.datetime.now(datetime.timezone.utc)
        del self.uploads[upload_id]
        return etag

    async def abort(self, bucket: str, key: str, upload_id: str, options: ObjectOptions) -> None:
        self._fault("abort", upload_id=upload_id)
        self._upload(upload_id)
        del self.uploads[upload_id]

    async def put_object(self, bucket: str, key: str, body: Any, checksum: str | None,
                         options: ObjectOptions, *, condition: Precondition | None = None) -> PartReceipt:
        self._fault("put_object", key=key)
        self._check_condition(bucket, key, condition)
        with self._counted():
            data = _body_bytes(body)
            if self.part_delay_s:
                await anyio.sleep(self.part_delay_s)
            if checksum is not None and options.checksum is not ChecksumAlgorithm.NONE:
                if checksum != ck.encode(ck.compute(options.checksum, data)):
                    raise IntegrityError("BadDigest", code="BadDigest", retryable=True)
            etag = f'"{hashlib.md5(data).hexdigest()}"'
            self.objects[(bucket, key)] = (data, etag, checksum)
            self._attributes(bucket, key, options, options.checksum if checksum else None)
            self.sizes[(bucket, key)] = len(data)
            self.modified[(bucket, key)] = datetime.datetime.now(datetime.timezone.utc)
            self.put_keys.append(key)
            return PartReceipt(etag, checksum)

    async def head(self, bucket: str, key: str, options: ObjectOptions) -> ObjectInfo | None:
        self._fault("head")
        if (bucket, key) not in self.objects:
            return None
        _, etag, checksum = self.objects[(bucket, key)]
        kind = None if checksum is None else "COMPOSITE" if "-" in checksum else "FULL_OBJECT"
        return ObjectInfo(self.sizes[(bucket, key)], etag, checksum, kind,
                          last_modified=self.modified.get((bucket, key)),
                          checksum_algorithm=self.algorithms.get((bucket, key)) if checksum
                          else None)

    async def list_uploads(self, bucket: str, prefix: str = "") -> list[MultipartUpload]:
        self._fault("list_uploads")
        return [MultipartUpload(k, u, self.initiated[u])
                for u, (b, k, _) in self.upload_meta.items()
                if u in self.uploads and b == bucket and k.startswith(prefix)]

    async def list_objects(self, bucket: str, prefix: str = "") -> list[ObjectSummary]:
        self._fault("list_objects")
        return [ObjectSummary(k, self.sizes[(b, k)], etag) for (b, k), (_, etag, _) in
                sorted(self.objects.items()) if b == bucket and k.startswith(prefix)]


    # server-side copies

    def _attributes(self, bucket: str, key: str, options: ObjectOptions,
                    algorithm: ChecksumAlgorithm | None) -> None:
        tags = dict(urllib.parse.parse_qsl(options.tagging or ""))
        self.attributes[(bucket, key)] = (options.content_type, dict(options.metadata), tags)
        if algorithm is not None and algorithm is not ChecksumAlgorithm.NONE:
            self.algorithms[(bucket, key)] = algorithm.s3_name
        else:
            self.algorithms.pop((bucket, key), None)

    def seed(self, bucket: str, key: str, data: bytes, *,
             algorithm: ChecksumAlgorithm = ChecksumAlgorithm.CRC32C,
             content_type: str | None = "text/plain", metadata: dict[str, str] | None = None,
             tags: dict[str, str] | None = None) -> str:
        """Store an object as a single PutObject would (its checksum in ``algorithm``);
        its ETag."""
        checksum = None if algorithm is ChecksumAlgorithm.NONE else \
            ck.encode(ck.compute(algorithm, data))
        etag = f'"{hashlib.md5(data).hexdigest()}"'
        self.objects[(bucket, key)] = (data, etag, checksum)
        self.sizes[(bucket, key)] = len(data)
        self.modified[(bucket, key)] = datetime.datetime.now(datetime.timezone.utc)
        options = ObjectOptions(content_type=content_type, metadata=metadata or {},
                                tagging=urllib.parse.urlencode(tags or {}) or None)
        self._attributes(bucket, key, options, algorithm)
        return etag

    def _source(self, source: CopySource) -> bytes:
        """The source's bytes, if its ETag is still the one the copy names (412 otherwise,
        unless ``copy_conditions`` is off); NoSuchKey when it is gone."""
        stored = self.objects.get((source.bucket, source.key))
        if stored is None:
            raise NotFoundError("NoSuchKey", code="NoSuchKey")
        if self.copy_conditions and stored[1] != source.etag:
            raise StoreError("PreconditionFailed", code="PreconditionFailed")
        return stored[0]

    async def describe(self, bucket: str, key: str, version_id: str | None,
                       options: ObjectOptions) -> CopySourceInfo | None:
        self._fault("describe", bucket=bucket, key=key)
        info = await self.head(bucket, key, options)
        if info is None:
            return None
        content_type, metadata, tags = self.attributes.get((bucket, key), (None, {}, {}))
        return CopySourceInfo(CopySource(bucket, key, info.size, info.etag, info.last_modified),
                              content_type=content_type, metadata=metadata,
                              tag_count=len(tags), checksum=info.checksum,
                              checksum_type=info.checksum_type,
                              checksum_algorithm=info.checksum_algorithm)

    async def tags(self, source: CopySource, options: ObjectOptions) -> dict[str, str]:
        self._fault("tags", key=source.key)
        return dict(self.attributes.get((source.bucket, source.key), (None, {}, {}))[2])

    async def copy_object(self, bucket: str, key: str, source: CopySource,
                          options: ObjectOptions, *, replace_metadata: bool,
                          condition: Precondition | None = None) -> PartReceipt:
        self._fault("copy_object", key=key)
        data = self._source(source)
        self._check_condition(bucket, key, condition)
        algorithm = options.checksum
        checksum = None if algorithm is ChecksumAlgorithm.NONE else \
            ck.encode(ck.compute(algorithm, data))
        etag = f'"{hashlib.md5(data).hexdigest()}"'
        attributes = self.attributes.get((source.bucket, source.key), (None, {}, {}))
        self.objects[(bucket, key)] = (data, etag, checksum)
        self.sizes[(bucket, key)] = len(data)
        self.modified[(bucket, key)] = datetime.datetime.now(datetime.timezone.utc)
        self._attributes(bucket, key, options, algorithm)
        if not replace_metadata:
            self.attributes[(bucket, key)] = attributes
        else:
            self.attributes[(bucket, key)] = (options.content_type, dict(options.metadata),
                                              attributes[2])
        return PartReceipt(etag, checksum)

    async def upload_part_copy(self, bucket: str, key: str, upload_id: str, number: int,
                               source: CopySource, first: int, last: int,
                               options: ObjectOptions) -> PartReceipt:
        self._fault("upload_part_copy", number=number, upload_id=upload_id)
        with self._counted():
            if self.part_delay_s:
                await anyio.sleep(self.part_delay_s)
            parts = self._upload(upload_id)
            data = self._source(source)[first:last + 1]
            algorithm = self.upload_meta[upload_id][2]
            checksum = None if algorithm is ChecksumAlgorithm.NONE else \
                ck.encode(ck.compute(algorithm, data))
            etag = f'"{hashlib.md5(data).hexdigest()}"'
            parts[number] = StoredPart(data, len(data), etag, checksum)
            self.copied_parts.append(number)
            return PartReceipt(etag, checksum if self.copy_part_checksums else None)


def _multipart_etag(part_etags: list[str]) -> str:
    """S3's multipart ETag: the MD5 of the binary part MD5s, then ``-N`` (xxh3 ETags of the
    lightweight mode are hashed the same way)."""
    def digest(etag: str) -> bytes:  # an opaque (SSE-KMS style) ETag is hashed as text
        try:
            return bytes.fromhex(etag.strip('"'))
        except ValueError:
            return hashlib.md5(etag.encode()).digest()

    digests = b"".join(digest(e) for e in part_etags)
    return f'"{hashlib.md5(digests).hexdigest()}-{len(part_etags)}"'


def _body_bytes(body: Any) -> bytes:
    """What the HTTP layer would send: a ``FileRange`` is read from the file, at call time."""
    if hasattr(body, "read"):
        body.seek(0)
        return bytes(body.read())
    return bytes(body)
