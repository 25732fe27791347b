"""How S3's answers become our values: botocore's parsed answers (and the raw headers
LeanPut receives) read into ``values``' types, field by field, for ListParts,
ListMultipartUploads, UploadPart and PutObject. Pure: no I/O.

S3 leaves out what it has not got, and some S3-compatible servers send empty elements
(SeaweedFS: ``<Delimiter></Delimiter>``): both read as None."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .config import ChecksumAlgorithm
from .values import MultipartUpload, Owner, PartListing, RemotePart, ServerSide


def server_side(response: Mapping[str, Any]) -> ServerSide:
    """A write's answer (botocore's parsed UploadPart or PutObject) about encryption and
    charging."""
    enabled = response.get("BucketKeyEnabled")
    return ServerSide(
        server_side_encryption=text(response.get("ServerSideEncryption")),
        sse_kms_key_id=text(response.get("SSEKMSKeyId")),
        bucket_key_enabled=None if enabled is None else bool(enabled),
        sse_customer_algorithm=text(response.get("SSECustomerAlgorithm")),
        sse_customer_key_md5=text(response.get("SSECustomerKeyMD5")),
        request_charged=text(response.get("RequestCharged")))


def server_side_headers(headers: Mapping[str, str]) -> ServerSide:
    """The same, from the raw headers of an answer LeanPut received."""
    prefix = "x-amz-server-side-encryption"
    enabled = headers.get(f"{prefix}-bucket-key-enabled")
    return server_side({
        "ServerSideEncryption": headers.get(prefix),
        "SSEKMSKeyId": headers.get(f"{prefix}-aws-kms-key-id"),
        "BucketKeyEnabled": None if enabled is None else enabled.lower() == "true",
        "SSECustomerAlgorithm": headers.get(f"{prefix}-customer-algorithm"),
        "SSECustomerKeyMD5": headers.get(f"{prefix}-customer-key-md5"),
        "RequestCharged": headers.get("x-amz-request-charged")})


def text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def whole(value: Any) -> int | None:
    return int(value) if value not in (None, "") else None


def owner(value: Any) -> Owner | None:
    if not isinstance(value, Mapping) or not (value.get("ID") or value.get("DisplayName")):
        return None
    return Owner(text(value.get("ID")), text(value.get("DisplayName")))


# the members of a listed part that are checksums: ChecksumCRC32C, ChecksumSHA1, and any
# algorithm S3 adds (botocore's model lists SHA512, MD5 and the XXHASHes already)
_NOT_PART_CHECKSUMS = frozenset({"ChecksumAlgorithm", "ChecksumType"})


def remote_part(part: Mapping[str, Any], preferred: ChecksumAlgorithm,
                declared: str | None) -> RemotePart:
    """A listed part; its ``checksum`` in ``preferred`` if listed, else in the upload's
    declared algorithm, else whichever is there."""
    checksums = {name[len("Checksum"):]: str(value) for name, value in part.items()
                 if name.startswith("Checksum") and name not in _NOT_PART_CHECKSUMS and value}
    names = [preferred.s3_name if preferred is not ChecksumAlgorithm.NONE else None, declared]
    checksum = next((checksums[n] for n in names if n in checksums),
                    next(iter(checksums.values()), None))
    return RemotePart(number=int(part["PartNumber"]), size=int(part["Size"]),
                      etag=str(part["ETag"]), checksum=checksum,
                      last_modified=part.get("LastModified"), checksums=checksums)


def part_listing(pages: Sequence[Mapping[str, Any]], parts: list[RemotePart], bucket: str,
                 key: str, upload_id: str, first_marker: int, *, truncated: bool) -> PartListing:
    """The pages of one ListParts as one listing: the upload's fields as the first page
    gives them (or the first page that has them), where the last page ends."""
    def first(field: str) -> Any:
        return next((page[field] for page in pages if page.get(field) not in (None, "")), None)

    return PartListing(
        parts=tuple(parts), checksum_algorithm=text(first("ChecksumAlgorithm")),
        checksum_type=text(first("ChecksumType")), bucket=bucket, key=key,
        upload_id=str(first("UploadId") or upload_id), initiator=owner(first("Initiator")),
        owner=owner(first("Owner")), storage_class=text(first("StorageClass")),
        abort_date=first("AbortDate"), abort_rule_id=text(first("AbortRuleId")),
        request_charged=text(first("RequestCharged")),
        part_number_marker=whole(pages[0].get("PartNumberMarker")) or first_marker,
        next_part_number_marker=whole(pages[-1].get("NextPartNumberMarker")),
        max_parts=whole(pages[0].get("MaxParts")), is_truncated=truncated,
    )


def multipart_upload(upload: Mapping[str, Any]) -> MultipartUpload:
    """One upload of ListMultipartUploads."""
    return MultipartUpload(
        str(upload["Key"]), str(upload["UploadId"]), upload.get("Initiated"),
        storage_class=text(upload.get("StorageClass")), owner=owner(upload.get("Owner")),
        initiator=owner(upload.get("Initiator")),
        checksum_algorithm=text(upload.get("ChecksumAlgorithm")),
        checksum_type=text(upload.get("ChecksumType")))
