"""The value types the engine passes around, and nothing that does I/O: a leaf that the
pure modules (planning, reconciliation, verification, the upload machines) import.

- the plan: ``Part``, ``Plan``, and a stream's ``StreamPlan`` (``plan.py`` makes them);
- the file: ``Fingerprint`` (``source.py`` takes it);
- a server-side copy's source: ``CopySource`` (its identity, journalled) and
  ``CopySourceInfo`` (what its HEAD tells);
- the journal's part of a row: ``PartRecord``, ``DestinationGuard``;
- the wire: what a store is told (``ObjectOptions``, ``Precondition``, ``CompletedPart``)
  and what it answers (``PartReceipt``, ``ServerSide``, ``RemotePart``, ``PartListing``, ``Owner``,
  ``ObjectInfo``, ``ObjectSummary``, ``MultipartUpload``);
- the rules for values S3 accepts: ``check_key``; ``sse_c_key_hash`` recognises an SSE-C
  key without keeping it.

The modules that made these types first re-export them, so ``bigupload.client.ObjectInfo``
and ``bigupload.journal.PartRecord`` still name the same classes."""

from __future__ import annotations

import base64
import dataclasses
import datetime
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from .config import MAX_PARTS, ChecksumAlgorithm, UploadConfig

MAX_KEY_BYTES = 1024


def check_key(key: str) -> str | None:
    """Why ``key`` cannot be an S3 key, or None."""
    if not key:
        return "empty key"
    try:
        length = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        return "not valid UTF-8 (a file name in another encoding?), and S3 keys are UTF-8"
    if length > MAX_KEY_BYTES:
        return f"key is {length} bytes; S3 allows {MAX_KEY_BYTES:,}"
    return None


def sse_c_key_hash(key: bytes | None) -> str | None:
    """A salted digest that recognises the same SSE-C key without storing it."""
    if key is None:
        return None
    return hashlib.sha256(b"bigupload sse-c key check\0" + key).hexdigest()[:32]


# the plan

@dataclasses.dataclass(frozen=True, slots=True)
class Part:
    number: int  # 1-based, as S3 counts
    offset: int
    length: int


@dataclasses.dataclass(frozen=True)
class Plan:
    size: int
    part_size: int
    multipart: bool  # False: one PutObject

    @property
    def part_count(self) -> int:
        if not self.multipart:
            return 1
        return max(1, -(-self.size // self.part_size))

    def part(self, number: int) -> Part:
        if not 1 <= number <= self.part_count:
            raise IndexError(number)
        if not self.multipart:  # one PutObject: the whole file, even above the part size
            return Part(1, 0, self.size)
        offset = (number - 1) * self.part_size
        return Part(number, offset, min(self.part_size, self.size - offset))

    def parts(self) -> list[Part]:
        return [self.part(n) for n in range(1, self.part_count + 1)]


STREAM_GROWTH_EVERY = 1_000  # parts between two doublings of a stream's part size


@dataclasses.dataclass(frozen=True)
class StreamPlan:
    """How a stream of unknown size is cut into parts: ``steady`` parts of ``start`` bytes,
    then the part size doubles every ``STREAM_GROWTH_EVERY`` parts, up to ``largest``. A
    part's size depends on its number alone, so the plan is whole before a byte is read,
    and the last part is whatever is left when the stream ends."""

    start: int
    steady: int  # parts of ``start`` bytes before the size first doubles
    largest: int  # 5 GiB, or less under an explicit memory limit
    expected: int | None = None  # the size the user expects (--expected-size), if said

    def part_size(self, number: int) -> int:
        if number <= self.steady:
            return self.start
        doublings = 1 + (number - 1 - self.steady) // STREAM_GROWTH_EVERY
        return min(self.largest, self.start << min(doublings, 40))

    def capacity(self, parts: int = MAX_PARTS) -> int:
        """What the first ``parts`` parts hold: with ``MAX_PARTS``, the longest stream the
        plan can carry."""
        return sum(self.part_size(n) for n in range(1, parts + 1))

    def parts_for(self, size: int) -> int | None:
        """How many parts a stream of ``size`` bytes takes (at least one: an empty stream
        is one empty object), or None if more than S3 allows."""
        count, held = 1, self.part_size(1)
        while held < size:
            count += 1
            if count > MAX_PARTS:
                return None
            held += self.part_size(count)
        return count


# the file

# The source of a stream's journal row. A file's row holds its absolute path; a stream
# has none, and its row exists only so that an upload a killed run left can be found and
# aborted (a stream is never resumed).
STREAM_SOURCE = "<stream>"


@dataclasses.dataclass(frozen=True)
class Fingerprint:
    path: str
    size: int
    mtime_ns: int
    inode: int
    device: int
    sample_hash: str

    def differences(self, other: Fingerprint) -> list[str]:
        """What changed from ``self`` to ``other``, in words; empty when identical."""
        changes = []
        if self.size != other.size:
            changes.append(f"size {self.size} -> {other.size} bytes")
        if self.mtime_ns != other.mtime_ns:
            changes.append("modification time")
        if (self.inode, self.device) != (other.inode, other.device):
            changes.append("inode (the file was replaced)")
        if self.sample_hash != other.sample_hash and self.size == other.size:
            changes.append("content")
        return changes

    @classmethod
    def of_stream(cls) -> Fingerprint:
        """What a stream's journal row records in place of a file's fingerprint."""
        return cls(STREAM_SOURCE, 0, 0, 0, 0, "")


# the journal's part of an upload row


@dataclasses.dataclass(frozen=True)
class DestinationGuard:
    """What the destination held when an upload began, so that completion can be made
    conditional on it: ``If-None-Match: *`` when it was absent, ``If-Match: <etag>`` when
    it held an object. ``existed`` is None when nothing was recorded (rows journalled before
    schema 3, or not looked at yet): such an upload has no precondition to complete under.

    In the journal's ``guard`` column: NULL for unknown, '' for absent, else the ETag as the
    server sent it (quotes included; an ETag is never empty)."""

    existed: bool | None
    etag: str | None = None

    def __post_init__(self) -> None:
        if self.existed and not self.etag:
            raise ValueError("a destination that existed is guarded by its ETag")
        if not self.existed and self.etag is not None:
            raise ValueError("only an existing destination has an ETag")

    @classmethod
    def unknown(cls) -> DestinationGuard:
        return cls(None)

    @classmethod
    def absent(cls) -> DestinationGuard:
        return cls(False)

    @classmethod
    def present(cls, etag: str) -> DestinationGuard:
        return cls(True, etag)

    @property
    def known(self) -> bool:
        return self.existed is not None

    def to_column(self) -> str | None:
        if self.existed is None:
            return None
        return self.etag if self.existed else ""

    @classmethod
    def from_column(cls, value: str | None) -> DestinationGuard:
        if value is None:
            return cls.unknown()
        return cls.present(value) if value else cls.absent()

    def describe(self) -> str:
        """For status lines: what the upload expects to find when it completes."""
        if self.existed is None:
            return "destination not recorded"
        return f"replaces ETag {self.etag}" if self.existed else "destination was absent"


@dataclasses.dataclass(frozen=True)
class PartRecord:
    number: int
    size: int
    etag: str
    checksum: str  # base64 of the raw part checksum, "" when the algorithm is none


# the wire


@dataclasses.dataclass(frozen=True)
class ServerSide:
    """What the server says it did with a write (UploadPart, PutObject): how it encrypted
    the bytes and whom it charged. None where it did not say (SeaweedFS and moto say
    little: S3 always names the encryption)."""

    server_side_encryption: str | None = None  # AES256, aws:kms, aws:kms:dsse
    sse_kms_key_id: str | None = None
    bucket_key_enabled: bool | None = None
    sse_customer_algorithm: str | None = None  # AES256 for an SSE-C write
    sse_customer_key_md5: str | None = None  # the SSE-C key's MD5, to check it was ours
    request_charged: str | None = None  # "requester": a requester-pays bucket billed us

    def merged(self, other: ServerSide) -> ServerSide:
        """These fields, with ``other``'s where these are None (the parts of one upload
        answer alike; the first answer that says something wins)."""
        if other == NOTHING_SAID or self == other:  # the common case, one comparison
            return self
        if self == NOTHING_SAID:
            return other
        return ServerSide(**{f.name: getattr(self, f.name) if getattr(self, f.name) is not None
                             else getattr(other, f.name) for f in dataclasses.fields(self)})


NOTHING_SAID = ServerSide()


@dataclasses.dataclass(frozen=True)
class PartReceipt:
    etag: str
    checksum: str | None  # base64, as the server echoed it
    sent: bytes | None = None  # the raw checksum the store computed over what it sent
    server_side: ServerSide = ServerSide()


@dataclasses.dataclass(frozen=True)
class Owner:
    """An account as ListParts and ListMultipartUploads name it (``Owner``, ``Initiator``:
    an IAM user's ARN for an initiator that is one). S3 sends the display name only in
    some regions, and has stopped sending it in others."""

    id: str | None
    display_name: str | None = None


@dataclasses.dataclass(frozen=True)
class RemotePart:
    """One part as ListParts lists it. ``checksum`` is in the upload's algorithm (or the
    one asked for); ``checksums`` every checksum listed, by S3's algorithm name
    (``{"CRC32C": "b64"}``): real S3 lists them, SeaweedFS and moto do not."""

    number: int
    size: int
    etag: str
    checksum: str | None
    last_modified: datetime.datetime | None = None
    checksums: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class CompletedPart:
    number: int
    etag: str
    checksum: str | None


@dataclasses.dataclass(frozen=True)
class PartListing:
    """The parts of a multipart upload (ListParts: every page, or the one asked for), with
    what the upload itself declares; None where the server does not say (SeaweedFS and moto
    leave out most of these; S3 sends them all). A page asked for (``max_parts``,
    ``part_number_marker``) continues from ``next_part_number_marker`` while
    ``is_truncated``; a listing of every page is never truncated."""

    parts: Sequence[RemotePart]
    checksum_algorithm: str | None = None  # S3's name: CRC32C, CRC32, CRC64NVME, SHA256, ...
    checksum_type: str | None = None  # COMPOSITE or FULL_OBJECT
    bucket: str = ""
    key: str = ""
    upload_id: str = ""
    initiator: Owner | None = None
    owner: Owner | None = None
    storage_class: str | None = None
    abort_date: datetime.datetime | None = None  # when a lifecycle rule will abort it
    abort_rule_id: str | None = None  # that rule
    request_charged: str | None = None  # "requester": the requester paid (--request-payer)
    part_number_marker: int | None = None  # where the listing began
    next_part_number_marker: int | None = None  # where the next page begins
    max_parts: int | None = None  # the page size the server used
    is_truncated: bool = False


@dataclasses.dataclass(frozen=True)
class ObjectInfo:
    size: int
    etag: str
    checksum: str | None  # "b64" or "b64-N" (composite)
    checksum_type: str | None  # COMPOSITE or FULL_OBJECT
    last_modified: datetime.datetime | None = None
    checksum_algorithm: str | None = None  # the algorithm of ``checksum`` (S3's name)


@dataclasses.dataclass(frozen=True)
class Precondition:
    """A conditional write: ``If-None-Match: *`` (only if the key is absent) or
    ``If-Match: <etag>`` (only if the object is still the one we saw). S3 answers 412
    PreconditionFailed when it does not hold, 409 ConditionalRequestConflict when another
    write to the key raced ours."""

    if_none_match: bool = False
    if_match: str | None = None

    def params(self) -> dict[str, str]:
        """As botocore parameters."""
        if self.if_none_match:
            return {"IfNoneMatch": "*"}
        return {"IfMatch": self.if_match} if self.if_match else {}

    def headers(self) -> dict[str, str]:
        """As raw HTTP headers (LeanPut)."""
        return {("If-None-Match" if k == "IfNoneMatch" else "If-Match"): v
                for k, v in self.params().items()}


@dataclasses.dataclass(frozen=True)
class ObjectSummary:
    """One entry of ListObjectsV2: enough to tell whether an object may equal a file."""

    key: str
    size: int
    etag: str


@dataclasses.dataclass(frozen=True)
class MultipartUpload:
    """One unfinished upload as ListMultipartUploads lists it."""

    key: str
    upload_id: str
    initiated: datetime.datetime | None
    storage_class: str | None = None
    owner: Owner | None = None
    initiator: Owner | None = None
    checksum_algorithm: str | None = None
    checksum_type: str | None = None


@dataclasses.dataclass(frozen=True)
class ObjectOptions:
    """What an object gets at creation, and what must be repeated on every part (SSE-C)."""

    checksum: ChecksumAlgorithm = ChecksumAlgorithm.CRC32C
    checksum_type: str | None = None  # FULL_OBJECT or COMPOSITE, declared at creation
    content_type: str | None = None
    metadata: Mapping[str, str] = dataclasses.field(default_factory=dict)
    storage_class: str | None = None
    sse: str | None = None
    sse_kms_key_id: str | None = None
    sse_c_key: bytes | None = dataclasses.field(default=None, repr=False)
    request_payer: bool = False
    expected_bucket_owner: str | None = None
    content_md5: bool = False  # each body's MD5 goes as Content-MD5 (the sender computes it)
    tagging: str | None = None  # URL-encoded tags (a multipart copy carries its source's)

    @classmethod
    def from_config(cls, config: UploadConfig, content_type: str | None) -> ObjectOptions:
        return cls(
            checksum=config.checksum,
            content_type=content_type,
            metadata=dict(config.metadata),
            storage_class=config.storage_class,
            sse=config.sse.value if config.sse else None,
            sse_kms_key_id=config.sse_kms_key_id,
            sse_c_key=config.sse_c_key,
            request_payer=config.request_payer,
            expected_bucket_owner=config.expected_bucket_owner,
            content_md5=config.content_md5,
        )

    def _table(self, every_request: bool | None) -> list[tuple[_Option, str]]:
        """The options of ``OBJECT_OPTIONS`` this object has, with their wire values
        (all of them, or those on every request, or those at creation only)."""
        found = []
        for option in OBJECT_OPTIONS:
            value = getattr(self, option.attribute)
            if value and every_request in (None, option.every_request):
                found.append((option, option.flag or str(value)))
        return found

    def every_request(self, *, sse_c: bool = True) -> dict[str, Any]:
        """Parameters S3 wants on every request touching the upload (SSE-C on each part;
        ``sse_c=False`` for the calls that take no key, AbortMultipartUpload and
        ListMultipartUploads, and for ListParts, which takes it as ``sse_c_encoded``)."""
        params: dict[str, Any] = {}
        if sse_c and self.sse_c_key is not None:
            # botocore base64-encodes the key and adds its MD5, but only when the MD5 is
            # not given: passing it too would send the raw bytes, which fails validation
            params["SSECustomerAlgorithm"] = "AES256"
            params["SSECustomerKey"] = self.sse_c_key
        params.update({option.param: value for option, value in self._table(True)})
        return params

    def sse_c_encoded(self) -> dict[str, str]:
        """The SSE-C key as botocore parameters it does not encode itself: botocore
        base64-encodes the key and adds its MD5 only for the calls that write or read
        object data (UploadPart, HeadObject, ...), not for ListParts."""
        if self.sse_c_key is None:
            return {}
        return {"SSECustomerAlgorithm": "AES256",
                "SSECustomerKey": base64.b64encode(self.sse_c_key).decode(),
                "SSECustomerKeyMD5":
                    base64.b64encode(hashlib.md5(self.sse_c_key).digest()).decode()}

    def on_create(self) -> dict[str, Any]:
        """botocore's parameters for CreateMultipartUpload (and, less the checksum
        algorithm, PutObject)."""
        params = self.every_request()
        if self.checksum is not ChecksumAlgorithm.NONE:
            params["ChecksumAlgorithm"] = self.checksum.s3_name
            if self.checksum_type:
                params["ChecksumType"] = self.checksum_type
        params.update({option.param: value for option, value in self._table(False)})
        if self.metadata:
            params["Metadata"] = dict(self.metadata)
        return params

    def put_headers(self) -> dict[str, str]:
        """PutObject's options as raw HTTP headers, for a request signed without botocore
        (``client.LeanPut``); the checksum header is the caller's."""
        headers = {option.header: value for option, value in self._table(None)}
        for name, value in self.metadata.items():
            headers[f"x-amz-meta-{name}"] = value
        encoded = self.sse_c_encoded()
        if encoded:
            headers["x-amz-server-side-encryption-customer-algorithm"] = "AES256"
            headers["x-amz-server-side-encryption-customer-key"] = encoded["SSECustomerKey"]
            headers["x-amz-server-side-encryption-customer-key-MD5"] = encoded["SSECustomerKeyMD5"]
        return headers


class _Option(NamedTuple):
    attribute: str  # of ObjectOptions
    param: str  # botocore's parameter
    header: str  # the HTTP header
    every_request: bool  # repeated on every request touching the upload, else at creation
    flag: str | None = None  # the wire value of a yes/no option


# Which option goes on which request, said once: botocore's parameters (``on_create``,
# ``every_request``) and the raw headers (``put_headers``) are both derived from it. Three
# options are not rows, because the two encodings differ in kind: SSE-C (botocore encodes
# the key itself; raw requests carry it base64-encoded with its MD5), the metadata (one
# ``Metadata`` map, or one ``x-amz-meta-*`` header each) and the checksum algorithm (at
# creation; a PutObject carries the checksum value instead).
OBJECT_OPTIONS = (
    _Option("request_payer", "RequestPayer", "x-amz-request-payer", True, flag="requester"),
    _Option("expected_bucket_owner", "ExpectedBucketOwner", "x-amz-expected-bucket-owner", True),
    _Option("content_type", "ContentType", "Content-Type", False),
    _Option("storage_class", "StorageClass", "x-amz-storage-class", False),
    _Option("sse", "ServerSideEncryption", "x-amz-server-side-encryption", False),
    _Option("sse_kms_key_id", "SSEKMSKeyId", "x-amz-server-side-encryption-aws-kms-key-id",
            False),
    _Option("tagging", "Tagging", "x-amz-tagging", False),
)


# a server-side copy's source


@dataclasses.dataclass(frozen=True)
class CopySource:
    """The object a server-side copy reads, as it was when the copy began: where it is,
    and the identity a resumed copy must find again (size, ETag, LastModified, version
    id). Every request that reads it is conditional on ``etag``
    (``x-amz-copy-source-if-match``) and names ``version_id`` when there is one, so a copy
    is never stitched from two versions.

    In the journal: the ``copy_source`` column, as JSON (``to_column``); a file's upload
    has NULL there. The file columns hold ``fingerprint()``, so status lines and the
    destination's row lookup work for copies as for files."""

    bucket: str
    key: str
    size: int
    etag: str
    last_modified: datetime.datetime | None = None
    version_id: str | None = None

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def differences(self, now: CopySource) -> list[str]:
        """What changed from ``self`` to ``now``, in words; empty when it is the same object."""
        changes = []
        if self.version_id != now.version_id:
            changes.append(f"version {self.version_id} -> {now.version_id}")
        if self.size != now.size:
            changes.append(f"size {self.size} -> {now.size} bytes")
        if self.etag != now.etag:
            changes.append(f"ETag {self.etag} -> {now.etag}")
        if _stamp(self.last_modified) != _stamp(now.last_modified):
            changes.append("modification time")
        return changes

    def fingerprint(self) -> Fingerprint:
        """The journal's file columns for this source: its URL as the path, its size, its
        LastModified as the mtime, its ETag as the content digest; no inode or device."""
        return Fingerprint(self.url, self.size, _stamp(self.last_modified), 0, 0, self.etag)

    def to_column(self) -> str:
        return json.dumps({"bucket": self.bucket, "key": self.key, "size": self.size,
                           "etag": self.etag, "version_id": self.version_id,
                           "last_modified": self.last_modified.isoformat()
                           if self.last_modified else None}, sort_keys=True)

    @classmethod
    def from_column(cls, text: str) -> CopySource:
        value = json.loads(text)
        modified = value.get("last_modified")
        return cls(bucket=str(value["bucket"]), key=str(value["key"]), size=int(value["size"]),
                   etag=str(value["etag"]), version_id=value.get("version_id"),
                   last_modified=datetime.datetime.fromisoformat(modified) if modified else None)


def _stamp(moment: datetime.datetime | None) -> int:
    """Nanoseconds since the epoch (a naive time is UTC, as botocore's are); 0 for none."""
    if moment is None:
        return 0
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


@dataclasses.dataclass(frozen=True)
class CopySourceInfo:
    """A HEAD of a copy's source: its identity, what a copy carries over by default (its
    content type, user metadata and, when it has any, its tags), and the checksum the
    server reports for it (which the copy's own may be compared with)."""

    source: CopySource
    content_type: str | None = None
    metadata: Mapping[str, str] = dataclasses.field(default_factory=dict)
    tag_count: int = 0
    checksum: str | None = None  # "b64", or "b64-N" for a composite one
    checksum_type: str | None = None  # COMPOSITE or FULL_OBJECT
    checksum_algorithm: str | None = None  # S3's name

    def full_object_checksum(self, algorithm: str) -> str | None:
        """The source's whole-object checksum in ``algorithm`` (S3's name), if it reports
        one: a FULL_OBJECT checksum, or a single-request object's (no part count)."""
        if self.checksum is None or self.checksum_algorithm != algorithm:
            return None
        if self.checksum_type == "COMPOSITE" or "-" in self.checksum:
            return None
        return self.checksum
