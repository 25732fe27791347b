"""Every request parameter and response field of ListParts and UploadPart (and of the
calls beside them: ListMultipartUploads, AbortMultipartUpload, PutObject) through the
CLI's output and the API, against a stub that answers with every field the AWS reference
documents (SeaweedFS and moto leave most of them out)."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from bigupload import MultipartUpload, Owner, PartListing, UploadConfig, Uploader
from tests.conftest import MiB
from tests.faultproxy import self_signed_tls
from tests.s3stub import (
    ABORT_RULE,
    FIELD_PARTS,
    FIELDS_UPLOAD,
    INITIATOR,
    KMS_KEY,
    OWNER,
    S3Stub,
)

BUCKET, KEY = "bucket", "dir/object.bin"
URL = f"s3://{BUCKET}/{KEY}"
ACCOUNT = "111122223333"


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bigupload.cli", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})})


@pytest.fixture
def stub() -> Iterator[S3Stub]:
    with S3Stub() as server:
        server.add_fields_upload(BUCKET, KEY)
        yield server


def events(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_parts_json_has_every_field(stub: S3Stub) -> None:
    out = events(cli("parts", URL, "--upload-id", FIELDS_UPLOAD, "--endpoint-url",
                     stub.endpoint_url, "--json", "--request-payer",
                     "--expected-bucket-owner", ACCOUNT))
    *parts, summary = out
    assert [p["event"] for p in parts] == ["part"] * 5
    for listed, (number, size, algorithm, value) in zip(parts, FIELD_PARTS, strict=True):
        assert listed == {"event": "part", "part_number": number, "size": size,
                          "last_modified": "2026-10-21T09:08:07.654000Z",
                          "etag": f'"{hashlib.md5(str(number).encode()).hexdigest()}"',
                          f"checksum_{algorithm.lower()}": value}
    assert summary == {
        "event": "summary", "bucket": BUCKET, "key": KEY, "upload_id": FIELDS_UPLOAD,
        "initiator": {"id": INITIATOR[0], "display_name": INITIATOR[1]},
        "owner": {"id": OWNER[0], "display_name": OWNER[1]}, "storage_class": "STANDARD_IA",
        "checksum_algorithm": "CRC32C", "checksum_type": "COMPOSITE",
        "abort_date": "2026-10-28T00:00:00Z", "abort_rule_id": ABORT_RULE,
        "request_charged": "requester", "part_number_marker": 0, "next_part_number_marker": 5,
        "max_parts": 1000, "is_truncated": False, "parts": 5,
        "bytes": sum(size for _, size, _, _ in FIELD_PARTS)}
    (request,) = stub.requests("ListParts")
    assert request.headers["x-amz-request-payer"] == "requester"
    assert request.headers["x-amz-expected-bucket-owner"] == ACCOUNT
    assert "max-parts" not in request.query


def test_parts_table_shows_the_useful_fields(stub: S3Stub) -> None:
    result = cli("parts", URL, "--upload-id", FIELDS_UPLOAD, "--endpoint-url", stub.endpoint_url)
    assert result.returncode == 0, result.stderr
    header, *rows, summary = result.stdout.splitlines()
    assert header.split() == ["part", "size", "last", "modified", "etag", "checksum"]
    for row, (number, size, algorithm, value) in zip(rows, FIELD_PARTS, strict=True):
        assert row.split() == [str(number), str(size), "2026-10-21T09:08:07.654000Z",
                               f'"{hashlib.md5(str(number).encode()).hexdigest()}"',
                               f"{algorithm}:{value}"]
    assert summary.startswith(f"5 part(s), {sum(s for _, s, _, _ in FIELD_PARTS)} bytes")
    for said in (f"upload {FIELDS_UPLOAD} of {URL}", "checksum CRC32C (COMPOSITE)",
                 "storage class STANDARD_IA", f"initiator {INITIATOR[0]} ({INITIATOR[1]})",
                 f"owner {OWNER[0]} ({OWNER[1]})",
                 f"aborted on 2026-10-28T00:00:00Z by lifecycle rule {ABORT_RULE}",
                 "request charged to the requester"):
        assert said in summary
    assert "more parts" not in summary


def test_one_page_at_a_time(stub: S3Stub) -> None:
    common = ["--upload-id", FIELDS_UPLOAD, "--endpoint-url", stub.endpoint_url]
    *first, summary = events(cli("parts", URL, *common, "--max-parts", "2", "--json"))
    assert [p["part_number"] for p in first] == [1, 2]
    assert summary["is_truncated"] is True and summary["next_part_number_marker"] == 2
    assert summary["max_parts"] == 2 and summary["part_number_marker"] == 0
    text = cli("parts", URL, *common, "--max-parts", "2").stdout.splitlines()[-1]
    assert text.endswith("; more parts: --part-number-marker 2")
    *second, summary = events(cli("parts", URL, *common, "--max-parts", "2",
                                  "--part-number-marker", "2", "--json"))
    assert [p["part_number"] for p in second] == [3, 4] and summary["is_truncated"] is True
    *last, summary = events(cli("parts", URL, *common, "--part-number-marker", "4", "--json"))
    assert [p["part_number"] for p in last] == [5]
    assert summary["is_truncated"] is False and summary["part_number_marker"] == 4
    pages = [(r.query.get("max-parts"), r.query.get("part-number-marker"))
             for r in stub.requests("ListParts")]
    assert pages == [("2", "0"), ("2", "0"), ("2", "2"), (None, "4")]


def test_every_page_without_them(stub: S3Stub) -> None:
    stub.page_size = 2
    *parts, summary = events(cli("parts", URL, "--upload-id", FIELDS_UPLOAD, "--endpoint-url",
                                 stub.endpoint_url, "--json"))
    assert [p["part_number"] for p in parts] == [1, 2, 3, 4, 5]
    assert summary["is_truncated"] is False and summary["parts"] == 5
    assert [r.query.get("part-number-marker") for r in stub.requests("ListParts")] == \
        ["0", "2", "4"]


@pytest.mark.parametrize("argv,message", [
    (["--max-parts", "0"], "max_parts must be at least 1"),
    (["--part-number-marker", "-1"], "part_number_marker must not be negative"),
    (["--max-parts", "two"], "invalid int value"),
])
def test_bad_page_options_are_one_line_and_exit_2(argv: list[str], message: str) -> None:
    result = cli("parts", URL, "--upload-id", "U", "--endpoint-url", "http://127.0.0.1:9", *argv)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr


def test_sse_c_key_goes_with_list_parts(tmp_path: Path) -> None:
    """S3 wants the SSE-C headers on ListParts of an SSE-C upload created with a checksum
    algorithm (bigupload's always are); SSE-C needs https."""
    context, cert = self_signed_tls(str(tmp_path))
    key = bytes(range(32))
    (tmp_path / "key").write_bytes(key)
    with S3Stub(tls=context) as stub:
        stub.add_fields_upload(BUCKET, KEY)
        result = cli("parts", URL, "--upload-id", FIELDS_UPLOAD, "--endpoint-url",
                     stub.endpoint_url, "--sse-c-key-file", str(tmp_path / "key"), "--json",
                     env={"AWS_CA_BUNDLE": cert})
        assert len(events(result)) == 6
        (request,) = stub.requests("ListParts")
    assert request.headers["x-amz-server-side-encryption-customer-algorithm"] == "AES256"
    assert request.headers["x-amz-server-side-encryption-customer-key"] == \
        base64.b64encode(key).decode()
    assert request.headers["x-amz-server-side-encryption-customer-key-md5"] == \
        base64.b64encode(hashlib.md5(key).digest()).decode()
    assert base64.b64encode(key).decode() not in result.stdout + result.stderr


def test_ls_uploads_and_abort_json(stub: S3Stub) -> None:
    common = ["--endpoint-url", stub.endpoint_url, "--json", "--request-payer",
              "--expected-bucket-owner", ACCOUNT]
    (upload,) = events(cli("ls-uploads", f"s3://{BUCKET}/dir/", *common))
    assert upload == {
        "event": "upload", "bucket": BUCKET, "key": KEY, "upload_id": FIELDS_UPLOAD,
        "initiated": "2026-10-21T09:08:07.654000Z", "storage_class": "STANDARD_IA",
        "owner": {"id": OWNER[0], "display_name": OWNER[1]},
        "initiator": {"id": INITIATOR[0], "display_name": INITIATOR[1]},
        "checksum_algorithm": "CRC32C", "checksum_type": "COMPOSITE"}
    (aborted,) = events(cli("abort", URL, "--upload-id", FIELDS_UPLOAD, *common))
    assert aborted["upload_id"] == FIELDS_UPLOAD and aborted["request_charged"] == "requester"
    for request in stub.requests("ListMultipartUploads") + stub.requests("AbortMultipartUpload"):
        assert request.headers["x-amz-request-payer"] == "requester"
        assert request.headers["x-amz-expected-bucket-owner"] == ACCOUNT
    assert FIELDS_UPLOAD not in stub.uploads


def test_the_api_returns_typed_values(stub: S3Stub, tmp_path: Path) -> None:
    config = UploadConfig(endpoint_url=stub.endpoint_url, request_payer=True,
                          expected_bucket_owner=ACCOUNT)

    async def go() -> tuple[PartListing, PartListing, tuple[MultipartUpload, ...], Any]:
        async with Uploader(config, journal=tmp_path / "j.db") as up:
            every = await up.list_parts(BUCKET, KEY, FIELDS_UPLOAD)
            page = await up.list_parts(BUCKET, KEY, FIELDS_UPLOAD, max_parts=3)
            uploads = await up.list_uploads(BUCKET)
            aborted = await up.abort(BUCKET, KEY, FIELDS_UPLOAD)
            return every, page, uploads, aborted

    every, page, uploads, aborted = anyio.run(go)
    utc = datetime.timezone.utc
    assert every.initiator == Owner(*INITIATOR) and every.owner == Owner(*OWNER)
    assert every.abort_date == datetime.datetime(2026, 10, 28, tzinfo=utc)
    assert (every.abort_rule_id, every.request_charged) == (ABORT_RULE, "requester")
    assert (every.storage_class, every.checksum_algorithm, every.checksum_type) == \
        ("STANDARD_IA", "CRC32C", "COMPOSITE")
    assert [(p.number, p.size, dict(p.checksums)) for p in every.parts] == \
        [(n, size, {alg: value}) for n, size, alg, value in FIELD_PARTS]
    assert every.parts[0].last_modified == datetime.datetime(2026, 10, 21, 9, 8, 7, 654000,
                                                             tzinfo=utc)
    # a part's ``checksum`` is whatever algorithm it is listed in
    assert [p.checksum for p in every.parts] == [value for _, _, _, value in FIELD_PARTS]
    assert not every.is_truncated
    assert [p.number for p in page.parts] == [1, 2, 3] and page.is_truncated
    assert page.next_part_number_marker == 3 and page.max_parts == 3
    (upload,) = uploads
    assert (upload.key, upload.upload_id, upload.storage_class) == (KEY, FIELDS_UPLOAD,
                                                                    "STANDARD_IA")
    assert upload.owner == Owner(*OWNER) and upload.initiator == Owner(*INITIATOR)
    assert aborted.request_charged == "requester"
    with pytest.raises(AttributeError):
        every.owner = None  # type: ignore[misc]  # frozen
    assert aborted.rows_closed == ()


def test_listing_calls_open_no_journal(stub: S3Stub, tmp_path: Path) -> None:
    async def go() -> None:
        async with Uploader(UploadConfig(endpoint_url=stub.endpoint_url),
                            journal=tmp_path / "j.db") as up:
            await up.list_parts(BUCKET, KEY, FIELDS_UPLOAD)
            await up.list_uploads(BUCKET)

    anyio.run(go)
    assert not (tmp_path / "j.db").exists()


# UploadPart (and PutObject, its one-request twin): what is sent and what is answered

def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def test_upload_part_headers_and_answers(stub: S3Stub, make_file: Any, tmp_path: Path) -> None:
    """--checksum sha1 and --content-md5 go on every part, from one read of it; the
    answers' ServerSideEncryption, SSEKMSKeyId, BucketKeyEnabled and RequestCharged are in
    the result."""
    path = make_file(11 * MiB)
    data = path.read_bytes()
    (event,) = events(cli("cp", str(path), f"s3://{BUCKET}/big", "--part-size", "5MiB",
                          "--checksum", "sha1", "--content-md5", "--request-payer",
                          "--endpoint-url", stub.endpoint_url, "--journal",
                          str(tmp_path / "j.db"), "--json"))
    assert event["event"] == "uploaded" and event["parts"] == 3
    assert (event["server_side_encryption"], event["sse_kms_key_id"],
            event["bucket_key_enabled"], event["request_charged"]) == \
        ("aws:kms", KMS_KEY, True, "requester")
    assert event["sse_customer_algorithm"] is None and event["sse_customer_key_md5"] is None
    sent = sorted(stub.requests("UploadPart"), key=lambda r: int(r.query["partNumber"]))
    assert [int(r.query["partNumber"]) for r in sent] == [1, 2, 3]
    for request in sent:
        n = int(request.query["partNumber"])
        chunk = data[(n - 1) * 5 * MiB:n * 5 * MiB]
        assert request.headers["content-md5"] == _b64(hashlib.md5(chunk).digest())
        assert request.headers["x-amz-checksum-sha1"] == _b64(hashlib.sha1(chunk).digest())
        assert request.headers["x-amz-request-payer"] == "requester"
    (create,) = stub.requests("CreateMultipartUpload")
    assert create.headers["x-amz-checksum-algorithm"] == "SHA1"
    assert create.headers["x-amz-checksum-type"] == "COMPOSITE"


def test_without_content_md5_none_is_sent(stub: S3Stub, make_file: Any, tmp_path: Path) -> None:
    path = make_file(6 * MiB)
    events(cli("cp", str(path), f"s3://{BUCKET}/plain", "--part-size", "5MiB", "--endpoint-url",
               stub.endpoint_url, "--journal", str(tmp_path / "j.db"), "--json"))
    assert stub.requests("UploadPart")
    assert all("content-md5" not in r.headers for r in stub.requests("UploadPart"))


def test_single_put_headers_and_answers(stub: S3Stub, make_file: Any, tmp_path: Path) -> None:
    path = make_file(3000)
    (event,) = events(cli("cp", str(path), f"s3://{BUCKET}/small", "--content-md5",
                          "--endpoint-url", stub.endpoint_url, "--journal",
                          str(tmp_path / "j.db"), "--json"))
    (put,) = stub.requests("PutObject")
    assert put.headers["content-md5"] == _b64(hashlib.md5(path.read_bytes()).digest())
    assert (event["server_side_encryption"], event["sse_kms_key_id"],
            event["bucket_key_enabled"], event["request_charged"]) == \
        ("aws:kms", KMS_KEY, True, "requester")


def test_upload_result_carries_the_answers(stub: S3Stub, make_file: Any, tmp_path: Path) -> None:
    path = make_file(6 * MiB)

    async def go() -> Any:
        config = UploadConfig(endpoint_url=stub.endpoint_url, part_size=5 * MiB)
        async with Uploader(config, journal=tmp_path / "j.db") as up:
            return await up.upload_file(path, BUCKET, "api")

    result = anyio.run(go)
    assert result.server_side_encryption == "aws:kms" and result.sse_kms_key_id == KMS_KEY
    assert result.bucket_key_enabled is True and result.request_charged == "requester"


def test_resume_sends_the_payer_and_owner(stub: S3Stub, make_file: Any, tmp_path: Path) -> None:
    """``bigupload resume --request-payer --expected-bucket-owner``: every request that
    finishes the unfinished upload carries them (ListParts, UploadPart, completion)."""
    path = make_file(11 * MiB)
    journal = str(tmp_path / "j.db")
    stub.fail_parts = {2}
    failed = cli("cp", str(path), f"s3://{BUCKET}/resumed", "--part-size", "5MiB",
                 "--max-attempts", "1", "--endpoint-url", stub.endpoint_url, "--journal", journal)
    assert failed.returncode == 5, failed.stderr
    stub.fail_parts = set()
    stub.seen.clear()
    resumed = cli("resume", "--request-payer", "--expected-bucket-owner", ACCOUNT,
                  "--endpoint-url", stub.endpoint_url, "--journal", journal, "--json")
    (done,) = events(resumed)
    assert done["key"] == "resumed" and done["resumed_parts"] >= 1
    operations = {r.operation for r in stub.seen}
    assert {"ListParts", "UploadPart", "CompleteMultipartUpload"} <= operations
    for request in stub.seen:
        assert request.headers.get("x-amz-request-payer") == "requester", request.operation
        assert request.headers.get("x-amz-expected-bucket-owner") == ACCOUNT, request.operation


def test_content_md5_does_not_apply_to_a_server_side_copy() -> None:
    result = cli("cp", "s3://bucket/a", "s3://bucket/b", "--content-md5", "--endpoint-url",
                 "http://127.0.0.1:9")
    assert result.returncode == 2
    assert result.stderr == "bigupload: error: --content-md5 does not apply to a server-side copy\n"


@pytest.mark.parametrize("size", [11 * MiB, 3000])  # parts from a pipe, and one PUT
def test_a_stream_sends_content_md5_and_keeps_the_answers(stub: S3Stub, tmp_path: Path,
                                                          size: int) -> None:
    """``cp -``: a part read from standard input gets its Content-MD5 from the read that
    checksums it, and the answers' fields reach the result, as a file's do."""
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    result = subprocess.run(
        [sys.executable, "-m", "bigupload.cli", "cp", "-", f"s3://{BUCKET}/streamed",
         "--part-size", "5MiB", "--content-md5", "--endpoint-url", stub.endpoint_url,
         "--journal", str(tmp_path / "j.db"), "--json"],
        input=data, capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr
    event = json.loads(result.stdout)
    assert event["size"] == size
    assert (event["server_side_encryption"], event["sse_kms_key_id"],
            event["bucket_key_enabled"], event["request_charged"]) == \
        ("aws:kms", KMS_KEY, True, "requester")
    bodies = stub.requests("UploadPart") or stub.requests("PutObject")
    assert len(bodies) == -(-size // (5 * MiB))
    for request in bodies:
        n = int(request.query.get("partNumber", "1"))
        chunk = data[(n - 1) * 5 * MiB:n * 5 * MiB]
        assert request.headers["content-md5"] == _b64(hashlib.md5(chunk).digest())
