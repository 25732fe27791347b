"""ObjectOptions: botocore's parameters and LeanPut's raw headers come from one table, so
they must say the same thing. The expected values are written out here by hand."""

from __future__ import annotations

import base64
import hashlib

from bigupload.config import ChecksumAlgorithm
from bigupload.values import ObjectOptions

KEY = bytes(range(32))
EVERYTHING = ObjectOptions(
    checksum=ChecksumAlgorithm.CRC32C, checksum_type="FULL_OBJECT", content_type="text/plain",
    metadata={"owner": "me"}, storage_class="STANDARD_IA", sse="aws:kms", sse_kms_key_id="kid",
    sse_c_key=KEY, request_payer=True, expected_bucket_owner="123456789012",
)


def test_every_request_carries_sse_c_and_the_request_options() -> None:
    assert EVERYTHING.every_request() == {
        "SSECustomerAlgorithm": "AES256", "SSECustomerKey": KEY, "RequestPayer": "requester",
        "ExpectedBucketOwner": "123456789012",
    }
    assert EVERYTHING.every_request(sse_c=False) == {
        "RequestPayer": "requester", "ExpectedBucketOwner": "123456789012"}
    assert ObjectOptions().every_request() == {}


def test_creation_carries_everything() -> None:
    assert EVERYTHING.on_create() == {
        "SSECustomerAlgorithm": "AES256", "SSECustomerKey": KEY, "RequestPayer": "requester",
        "ExpectedBucketOwner": "123456789012", "ChecksumAlgorithm": "CRC32C",
        "ChecksumType": "FULL_OBJECT", "ContentType": "text/plain", "Metadata": {"owner": "me"},
        "StorageClass": "STANDARD_IA", "ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "kid",
    }
    assert ObjectOptions(checksum=ChecksumAlgorithm.NONE).on_create() == {}


def test_raw_headers_say_the_same() -> None:
    assert EVERYTHING.put_headers() == {
        "Content-Type": "text/plain",
        "x-amz-meta-owner": "me",
        "x-amz-storage-class": "STANDARD_IA",
        "x-amz-server-side-encryption": "aws:kms",
        "x-amz-server-side-encryption-aws-kms-key-id": "kid",
        "x-amz-server-side-encryption-customer-algorithm": "AES256",
        "x-amz-server-side-encryption-customer-key": base64.b64encode(KEY).decode(),
        "x-amz-server-side-encryption-customer-key-MD5":
            base64.b64encode(hashlib.md5(KEY).digest()).decode(),
        "x-amz-request-payer": "requester",
        "x-amz-expected-bucket-owner": "123456789012",
    }
    assert ObjectOptions().put_headers() == {}
