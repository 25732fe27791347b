"""The batch job's pure parts: the failure policy (recorded, or the job stops), the job
spec (whose hash finds a job again, so it must not change between versions), and the
result made from a settled journal row."""

from __future__ import annotations

import pytest

from bigupload.batch import FailurePolicy, ItemResult, is_fatal, make_spec, spec_hash
from bigupload.batch.policy import GIVE_UP_AFTER
from bigupload.config import ChecksumAlgorithm, UploadConfig
from bigupload.errors import (
    AuthError,
    BigUploadError,
    ClusterError,
    IntegrityError,
    JournalError,
    NotFoundError,
    SourceError,
    StoreError,
)
from bigupload.journal import FileState, JobFile


@pytest.mark.parametrize("exc,fatal", [
    (JournalError("disk full"), True),
    (ClusterError("lost"), True),
    (AuthError("bad key", code="InvalidAccessKeyId"), True),
    (AuthError("denied", code="AccessDenied"), False),  # this key only
    (NotFoundError("no bucket", code="NoSuchBucket"), True),
    (StoreError("slow down, after retries", code="SlowDown", retryable=True), True),
    (StoreError("refused", code="InvalidRequest"), False),
    (IntegrityError("bad digest", code="BadDigest", retryable=True), False),
    (SourceError("missing"), False),
])
def test_is_fatal(exc: BigUploadError, fatal: bool) -> None:
    assert is_fatal(exc) is fatal


def refused(n: int) -> StoreError:
    return StoreError(f"refused {n}", operation="PutObject", bucket="b", key=f"k{n}",
                      code="InvalidRequest")


def test_the_first_files_all_refused_stop_the_job() -> None:
    policy = FailurePolicy(fail_fast=False)
    for n in range(GIVE_UP_AFTER - 1):
        policy.failed(refused(n))
    with pytest.raises(StoreError, match=f"first {GIVE_UP_AFTER} files all failed") as stop:
        policy.failed(refused(99))
    assert (stop.value.bucket, stop.value.key, stop.value.code) == ("b", "k99", "InvalidRequest")
    assert stop.value.__cause__ is not None


def test_a_success_means_failures_are_the_files_own() -> None:
    policy = FailurePolicy(fail_fast=False)
    policy.succeeded()
    for n in range(3 * GIVE_UP_AFTER):
        policy.failed(refused(n))
    policy = FailurePolicy(fail_fast=False)
    for n in range(3 * GIVE_UP_AFTER):  # not the store's doing: never stops the job
        policy.failed(SourceError(f"missing {n}"))
        policy.failed(IntegrityError(f"changed {n}"))


def test_fail_fast_stops_at_the_first_failure() -> None:
    first = SourceError("missing")
    with pytest.raises(SourceError) as stop:
        FailurePolicy(fail_fast=True).failed(first)
    assert stop.value is first


def test_spec_and_its_hash_are_stable() -> None:
    """A job is found again by its spec's hash: these values were computed by the
    bigupload that stored the journals users have, and must not change."""
    config = UploadConfig(part_size=8 << 20, checksum=ChecksumAlgorithm.CRC32C,
                          content_type="text/plain", metadata={"a": "1"},
                          storage_class="STANDARD_IA")
    spec = make_spec("directory", {"root": "/data", "bucket": "b", "prefix": "p/"}, config,
                     "http://127.0.0.1:9", skip_existing=True)
    assert spec == {
        "endpoint": "http://127.0.0.1:9", "kind": "directory", "skip_existing": True,
        "origin": {"bucket": "b", "prefix": "p/", "root": "/data"},
        "options": {"checksum": "crc32c", "content_type": "text/plain",
                    "expected_bucket_owner": None, "metadata": {"a": "1"},
                    "multipart_threshold": None, "part_size": 8388608, "request_payer": False,
                    "sse": None, "sse_c_key_hash": None, "sse_kms_key_id": None,
                    "storage_class": "STANDARD_IA"},
    }
    assert spec_hash(spec) == "a9a36900d5a03bb23dcc37c27f8ea6f4"
    later = make_spec("items", {"count": 2, "items": "abc"},
                      UploadConfig(no_overwrite=True, checksum_type="COMPOSITE"), "http://e",
                      skip_existing=False)
    assert later["options"]["no_overwrite"] is True
    assert later["options"]["checksum_type"] == "COMPOSITE"
    assert spec_hash(later) == "0bb19134283ffe00bcb8095556adeed5"


def test_item_result_of_a_settled_row() -> None:
    row = JobFile(3, "/s/a", "b", "a", 10, None)
    failed = ItemResult.of(row.settled(FileState.FAILED, error="gone", exit_code=3))
    assert failed == ItemResult("/s/a", "b", "a", 10, FileState.FAILED, error="gone",
                                exit_code=3)
    retried = row.settled(FileState.FAILED, error="gone", exit_code=3).settled(
        FileState.SKIPPED)
    assert ItemResult.of(retried) == ItemResult("/s/a", "b", "a", 10, FileState.SKIPPED)
