"""How botocore's parsed answers become values (``answers``): pure, no server."""

from __future__ import annotations

import datetime

from bigupload import ChecksumAlgorithm, Owner, answers

WHEN = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)


def test_a_part_keeps_every_checksum_and_names_the_right_one() -> None:
    part = {"PartNumber": 3, "Size": 10, "ETag": '"e"', "LastModified": WHEN,
            "ChecksumCRC32": "crc", "ChecksumSHA1": "sha", "ChecksumXXHASH64": "xx"}
    listed = answers.remote_part(part, ChecksumAlgorithm.CRC32C, "SHA1")
    assert dict(listed.checksums) == {"CRC32": "crc", "SHA1": "sha", "XXHASH64": "xx"}
    assert listed.checksum == "sha"  # ours (CRC32C) is not listed: the upload's algorithm
    assert answers.remote_part(part, ChecksumAlgorithm.CRC32, "SHA1").checksum == "crc"
    assert answers.remote_part(part, ChecksumAlgorithm.NONE, None).checksum == "crc"
    assert (listed.number, listed.size, listed.etag, listed.last_modified) == (3, 10, '"e"', WHEN)
    bare = answers.remote_part({"PartNumber": 1, "Size": 1, "ETag": "x"},
                               ChecksumAlgorithm.CRC32C, "CRC32C")
    assert bare.checksum is None and dict(bare.checksums) == {}


def test_pages_become_one_listing() -> None:
    first = {"UploadId": "U", "PartNumberMarker": 0, "NextPartNumberMarker": 2, "MaxParts": 2,
             "IsTruncated": True, "Initiator": {"ID": "arn", "DisplayName": ""},
             "Owner": {"ID": "", "DisplayName": ""}, "StorageClass": "STANDARD",
             "ChecksumAlgorithm": "CRC32C", "ChecksumType": "COMPOSITE",
             "AbortDate": WHEN, "AbortRuleId": "r", "RequestCharged": "requester"}
    last = {"UploadId": "U", "PartNumberMarker": 2, "NextPartNumberMarker": 3, "MaxParts": 2,
            "IsTruncated": False}
    listing = answers.part_listing([first, last], [], "b", "k", "U", 0, truncated=False)
    assert listing.initiator == Owner("arn", None)  # SeaweedFS sends empty elements
    assert listing.owner is None
    assert (listing.part_number_marker, listing.next_part_number_marker, listing.max_parts) == \
        (0, 3, 2)
    assert (listing.abort_date, listing.abort_rule_id, listing.request_charged) == \
        (WHEN, "r", "requester")
    assert not listing.is_truncated and listing.parts == ()


def test_a_write_answer_from_botocore_or_raw_headers() -> None:
    parsed = answers.server_side({"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "k",
                                  "BucketKeyEnabled": True, "RequestCharged": "requester"})
    raw = answers.server_side_headers({"x-amz-server-side-encryption": "aws:kms",
                                       "x-amz-server-side-encryption-aws-kms-key-id": "k",
                                       "x-amz-server-side-encryption-bucket-key-enabled": "true",
                                       "x-amz-request-charged": "requester"})
    assert parsed == raw
    assert (raw.server_side_encryption, raw.bucket_key_enabled, raw.sse_customer_algorithm) == \
        ("aws:kms", True, None)
    assert answers.server_side({}).merged(raw) == raw
