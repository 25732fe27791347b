"""The error classification (classify.py) as its callers meet it: S3's answers, parsed by
botocore or by LeanPut, become errors whose class and attributes are what S3 documents
them to mean (the expected values below are written from S3's error-code reference, not
read from the table); failures without an answer are told apart by whether a connection
was ever made; unknown exceptions are re-raised unchanged, so a bug is exit 1 "internal
error" through the CLI; and the scheduler, the transfer and the batch runner act on the
attributes (501 is not retried, throttling answers back off and slow down, a refused
checksum type falls back, a failure every file would meet stops a job)."""

from __future__ import annotations

import pickle
import ssl
import subprocess
import sys
import types
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import botocore.exceptions as bce
import pytest
from aiohttp.client_reqrep import ConnectionKey

from bigupload import UploadConfig, Uploader
from bigupload.client import AioS3Store, LeanPut, ObjectOptions
from bigupload.errors import AuthError, IntegrityError, NotFoundError, StoreError
from bigupload.journal import Journal, UploadState
from bigupload.scheduler import Scheduler
from bigupload.store_errors import map_error
from tests.fakestore import FakeStore

MiB = 1 << 20
ENDPOINT = "http://127.0.0.1:9"
FAST = dict(backoff_base_s=0.001, backoff_max_s=0.01)
FLAGS = ("retryable", "throttle", "fatal_for_job", "upload_gone", "precondition_failed",
         "conditional_conflict", "conditions_unsupported", "unsupported_option", "redirect",
         "never_reached_server", "object_missing")


def config(**kwargs: Any) -> UploadConfig:
    return UploadConfig(part_size=kwargs.pop("part_size", 5 * MiB), **{**FAST, **kwargs})


def client_error(code: str, message: str, status: int) -> bce.ClientError:
    return bce.ClientError({"Error": {"Code": code, "Message": message},
                            "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject")


def flags(error: StoreError) -> set[str]:
    return {name for name in FLAGS if getattr(error, name)}


# (code as botocore parses it, HTTP status, operation, message) -> class, exit code, flags set
ANSWERS = [
    ("SlowDown", 503, "UploadPart", "Please reduce your request rate.",
     StoreError, 5, {"retryable", "throttle", "fatal_for_job"}),
    ("503", 503, "HeadObject", "", StoreError, 5, {"retryable", "throttle", "fatal_for_job"}),
    ("TooManyRequests", 429, "PutObject", "", StoreError, 5,
     {"retryable", "throttle", "fatal_for_job"}),
    ("InternalError", 500, "CompleteMultipartUpload", "We encountered an internal error.",
     StoreError, 5, {"retryable", "fatal_for_job"}),
    ("ServiceUnavailable", 503, "UploadPart", "Reduce your request rate.",
     StoreError, 5, {"retryable", "fatal_for_job"}),
    ("SomeGatewayError", 502, "UploadPart", "", StoreError, 5, {"retryable", "fatal_for_job"}),
    ("NotImplemented", 501, "CompleteMultipartUpload",
     "A header you provided implies functionality that is not implemented.",
     StoreError, 7, {"conditions_unsupported", "unsupported_option"}),
    ("PreconditionFailed", 412, "CompleteMultipartUpload",
     "At least one of the pre-conditions you specified did not hold",
     StoreError, 7, {"precondition_failed"}),
    ("Precondition", 412, "PutObject", "", StoreError, 7, {"precondition_failed"}),
    ("ConditionalRequestConflict", 409, "CompleteMultipartUpload", "",
     StoreError, 5, {"retryable", "conditional_conflict", "fatal_for_job"}),
    ("NoSuchUpload", 404, "UploadPart", "The specified multipart upload does not exist.",
     NotFoundError, 7, {"upload_gone"}),
    ("404", 404, "HeadObject", "Not Found", NotFoundError, 7, {"object_missing"}),
    ("404", 404, "PutObject", "", NotFoundError, 7, set()),  # not an S3 API
    ("NoSuchBucket", 404, "PutObject", "The specified bucket does not exist",
     NotFoundError, 7, {"fatal_for_job"}),
    ("AccessDenied", 403, "PutObject", "Access Denied", AuthError, 4, set()),
    ("403", 403, "HeadObject", "Forbidden", AuthError, 4, set()),
    ("InvalidAccessKeyId", 403, "PutObject", "", AuthError, 4, {"fatal_for_job"}),
    ("SignatureDoesNotMatch", 403, "PutObject", "", AuthError, 4, {"fatal_for_job"}),
    ("ExpiredToken", 400, "PutObject", "", AuthError, 4, {"fatal_for_job"}),
    ("BadDigest", 400, "UploadPart", "The Content-MD5 you specified did not match",
     IntegrityError, 6, {"retryable"}),
    ("PermanentRedirect", 301, "PutObject", "", StoreError, 7, {"redirect"}),
    ("TemporaryRedirect", 307, "PutObject", "", StoreError, 7, {"redirect"}),
    ("AuthorizationHeaderMalformed", 400, "PutObject",
     "the region 'us-east-1' is wrong; expecting 'eu-west-1'", StoreError, 7, {"redirect"}),
    ("InvalidArgument", 400, "CreateMultipartUpload",
     "The FULL_OBJECT checksum type is not supported for this algorithm",
     StoreError, 7, {"unsupported_option"}),
    ("InvalidRequest", 400, "CreateMultipartUpload", "Checksum type mismatch",
     StoreError, 7, {"unsupported_option"}),
    ("InvalidArgument", 400, "CreateMultipartUpload", "Invalid storage class.",
     StoreError, 7, set()),
    ("EntityTooSmall", 400, "CompleteMultipartUpload", "", StoreError, 7, set()),
    ("InvalidBucketName", 400, "PutObject", "", StoreError, 7, {"fatal_for_job"}),
]


@pytest.mark.parametrize("code,status,operation,message,cls,exit_code,expected", ANSWERS)
def test_answers_become_errors_with_their_meaning(code: str, status: int, operation: str,
                                                   message: str, cls: type[StoreError],
                                                   exit_code: int, expected: set[str]) -> None:
    error = map_error(client_error(code, message, status), operation, "b", "k")
    assert type(error) is cls and error.exit_code == exit_code
    assert isinstance(error, StoreError) and flags(error) == expected
    assert (error.code, error.status, error.operation) == (code, status, operation)
    # however it is made (a fake store, a re-raise), the same answer means the same
    made = cls(str(error), code=code, status=status, operation=operation)
    assert flags(made) == expected
    assert flags(pickle.loads(pickle.dumps(error))) == expected  # across a Dask cluster


def test_lean_put_reads_answers_as_botocore_does() -> None:
    """LeanPut parses S3's XML itself; a body without a code gives the status as code."""
    from bigupload.store_errors import http_error

    xml = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
    lean = http_error(503, xml, "PutObject", "b", "k")
    boto = map_error(client_error("SlowDown", "Please reduce your request rate.", 503),
                     "PutObject", "b", "k")
    assert (type(lean), str(lean), flags(lean)) == (type(boto), str(boto), flags(boto))
    bare = http_error(501, b"", "PutObject", "b", "k")
    assert bare.code == "501" and flags(bare) == {"conditions_unsupported", "unsupported_option"}


def _refused() -> aiohttp.ClientConnectorError:
    key = ConnectionKey("127.0.0.1", 9, False, True, None, None, None)
    return aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "Connection refused"))


@pytest.mark.parametrize("exc,reached", [
    (_refused(), False),
    (ConnectionRefusedError(111, "Connection refused"), False),
    (bce.EndpointConnectionError(endpoint_url=ENDPOINT), False),
    (bce.ConnectTimeoutError(endpoint_url=ENDPOINT), False),
    (bce.ReadTimeoutError(endpoint_url=ENDPOINT), True),
    (aiohttp.ServerDisconnectedError(), True),
    (ConnectionResetError(104, "Connection reset by peer"), True),
    (TimeoutError(), True),
])
def test_failures_without_an_answer_are_retried_and_say_whether_a_connection_was_made(
        exc: BaseException, reached: bool) -> None:
    error = map_error(exc, "CreateMultipartUpload", "b", "k")
    assert type(error) is StoreError and error.exit_code == 5
    assert error.retryable and error.fatal_for_job and not error.throttle
    assert error.never_reached_server is not reached


def test_a_broken_tls_session_stops_a_job_without_retrying() -> None:
    error = map_error(bce.SSLError(endpoint_url=ENDPOINT, error=ssl.SSLError(1, "bad record mac")),
                      "PutObject", "b", "k")
    assert type(error) is StoreError and not error.retryable and error.fatal_for_job


def test_our_own_errors_keep_the_class_rule_for_jobs() -> None:
    """Errors the engine makes itself, without an S3 code: a retryable one is an outage
    (stops a job) unless it is about this file's bytes."""
    assert StoreError("truncated page", code="MalformedResponse", retryable=True).fatal_for_job
    mismatch = IntegrityError("server checksum differs", retryable=True)
    assert mismatch.retryable and not mismatch.fatal_for_job
    assert not StoreError("still listed after abort").retryable


@pytest.mark.parametrize("bug", [TypeError("unexpected keyword"), KeyError("ETag"),
                                 AssertionError("invariant")])
def test_unknown_exceptions_are_re_raised_unchanged(bug: Exception) -> None:
    with pytest.raises(type(bug)) as caught:
        map_error(bug, "UploadPart", "b", "k", "upload-1", 3)
    assert caught.value is bug

    async def put() -> None:
        lean = LeanPut(Session(bug), Credentials(), "us-east-1")
        await lean.put(f"{ENDPOINT}/b/", "b", "k", b"x", None, ObjectOptions())

    with pytest.raises(type(bug)) as through_lean:
        anyio.run(put)
    assert through_lean.value is bug


BROKEN_CLIENT = """
import sys
import aiobotocore.client

async def broken(self, operation_name, api_params):
    raise TypeError("an internal bug")

aiobotocore.client.AioBaseClient._make_api_call = broken
from bigupload.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_bug_inside_an_s3_call_is_an_internal_error_through_the_cli(tmp_path: Path) -> None:
    """Not exit 7, "the store refused": the one line says it is a bug, and which."""
    source = tmp_path / "f.bin"
    source.write_bytes(b"x" * 1000)
    result = subprocess.run(
        [sys.executable, "-c", BROKEN_CLIENT, "cp", str(source), "s3://bucket/key",
         "--endpoint-url", ENDPOINT, "--max-attempts", "2"],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("bigupload: error:")]
    assert lines == ["bigupload: error: internal error: TypeError: an internal bug "
                     "(rerun with --debug)"], result.stderr
    assert "Traceback" not in result.stderr


def test_501_is_not_retried() -> None:
    scheduler = Scheduler(config(max_attempts=5))
    attempts: list[int] = []

    async def complete(n: int) -> None:
        attempts.append(n)
        raise map_error(client_error("NotImplemented", "A header you provided implies "
                                     "functionality that is not implemented.", 501),
                        "CompleteMultipartUpload", "b", "k")

    with pytest.raises(StoreError) as caught:
        anyio.run(scheduler.retrying, "CompleteMultipartUpload", complete)
    assert attempts == [1] and scheduler.retries == 0
    assert caught.value.exit_code == 7 and caught.value.conditions_unsupported


@pytest.mark.parametrize("code,status,throttle", [
    ("SlowDown", 503, True), ("", 503, True), ("TooManyRequests", 429, True),
    ("Throttling", 400, True), ("InternalError", 500, False), ("RequestTimeout", 400, False),
])
def test_throttling_answers_back_off_and_slow_down(code: str, status: int, throttle: bool) -> None:
    """Retried either way; a throttling answer also halves the connections."""
    scheduler = Scheduler(config(concurrency=8))

    async def put(n: int) -> str:
        if n == 1:
            raise map_error(client_error(code, "", status), "PutObject", "b", "k")
        return "stored"

    assert anyio.run(scheduler.retrying, "PutObject", put) == "stored"
    assert scheduler.retries == 1
    assert scheduler.throttled == int(throttle)
    assert int(scheduler.connections.total_tokens) == (4 if throttle else 8)


# the engine acting on the attributes


async def upload(path: Path, store: FakeStore, journal: Path, cfg: UploadConfig) -> Any:
    async with Uploader(cfg, store=store, journal=journal) as up:
        return await up.upload_file(path, "bucket", "key")


class RefusingFullObject(FakeStore):
    """A server that refuses ``ChecksumType=FULL_OBJECT`` at CreateMultipartUpload."""

    def __init__(self, refusal: bce.ClientError) -> None:
        super().__init__()
        self.refusal = refusal
        self.refused = 0

    async def create_multipart(self, bucket: str, key: str, options: ObjectOptions) -> str:
        if options.checksum_type == "FULL_OBJECT":
            self.refused += 1
            raise map_error(self.refusal, "CreateMultipartUpload", bucket, key)
        return await super().create_multipart(bucket, key, options)


@pytest.mark.parametrize("code,status,message", [
    ("InvalidArgument", 400, "The FULL_OBJECT checksum type is not supported"),
    ("NotImplemented", 501, "A header you provided implies functionality that is not implemented"),
])
def test_a_refused_checksum_type_falls_back_to_composite(tmp_path: Path, code: str, status: int,
                                                         message: str) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(bytes(range(256)) * (48 * 1024))  # 12 MiB: 3 parts
    store = RefusingFullObject(client_error(code, message, status))
    result = anyio.run(upload, path, store, tmp_path / "j.db", config(max_attempts=3))
    assert store.refused == 1  # not retried as it was
    assert result.checksum_type == "COMPOSITE" and result.verified
    assert store.objects[("bucket", "key")][0] == path.read_bytes()


def test_other_refusals_at_create_do_not_fall_back(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(bytes(12 * MiB))
    store = RefusingFullObject(client_error("InvalidArgument", "Invalid storage class.", 400))
    with pytest.raises(StoreError, match="Invalid storage class") as caught:
        anyio.run(upload, path, store, tmp_path / "j.db", config())
    assert caught.value.exit_code == 7 and store.refused == 1 and not store.uploads


def test_expired_credentials_at_completion_leave_the_upload_resumable(tmp_path: Path) -> None:
    """Completion refused for the credentials, not for the upload: nothing is aborted, and
    the next run, with fresh credentials, completes it without sending a part again."""
    path = tmp_path / "f.bin"
    path.write_bytes(bytes(range(256)) * (48 * 1024))
    store, journal = FakeStore(), tmp_path / "j.db"

    def expired(op: str, ctx: dict[str, Any]) -> None:
        if op == "complete":
            raise map_error(client_error("ExpiredToken", "The provided token has expired.", 400),
                            "CompleteMultipartUpload", "bucket", "key")

    store.faults.append(expired)
    with pytest.raises(AuthError):
        anyio.run(upload, path, store, journal, config())
    assert len(store.uploads) == 1  # not aborted
    with Journal(journal) as j:
        assert [u.state for u in j.uploads()] == [UploadState.ACTIVE]
    store.faults.clear()
    result = anyio.run(upload, path, store, journal, config())
    assert result.resumed_parts == 3 and store.objects[("bucket", "key")][0] == path.read_bytes()


def _untrusted() -> aiohttp.ClientConnectorCertificateError:
    failure = ssl.SSLCertVerificationError(
        1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    failure.verify_message = "self-signed certificate"
    key = ConnectionKey("127.0.0.1", 8443, True, True, None, None, None)
    return aiohttp.ClientConnectorCertificateError(key, failure)


def test_an_untrusted_certificate_stops_a_batch_job_at_once(tmp_path: Path) -> None:
    """Every file would meet it: the job stops at the first, not after 10 in a row."""
    root = tmp_path / "src"
    root.mkdir()
    for i in range(30):
        (root / f"{i:02}").write_bytes(b"x" * 10)
    store = FakeStore()

    def untrusted(op: str, ctx: dict[str, Any]) -> None:
        raise map_error(_untrusted(), "PutObject", "bucket", ctx.get("key", ""))

    store.faults.append(untrusted)

    async def job() -> Any:
        async with Uploader(config(concurrency=1), store=store, journal=tmp_path / "j.db") as up:
            return await up.upload_many([(str(root / f"{i:02}"), "bucket", f"p/{i:02}")
                                         for i in range(30)])

    with pytest.raises(AuthError) as caught:
        anyio.run(job)
    assert str(caught.value).startswith("PutObject s3://bucket/p/")
    assert "TLS certificate verification failed" in str(caught.value)
    assert store.calls["put_object"] <= 2  # the files in flight, not 10 in a row


class Credentials:
    def get_frozen_credentials(self) -> Any:
        return types.SimpleNamespace(access_key="AKIDEXAMPLE", secret_key="secret", token=None)


class Session:
    """Stands in for LeanPut's aiohttp session: every PUT gets one answer, or raises."""

    def __init__(self, answer: BaseException | tuple[int, bytes]) -> None:
        self.answer = answer
        self.puts = 0

    @asynccontextmanager
    async def put(self, url: Any, *, data: Any, headers: Any) -> AsyncIterator[Any]:
        self.puts += 1
        if isinstance(self.answer, BaseException):
            raise self.answer
        status, body = self.answer

        async def read() -> bytes:
            return body

        yield types.SimpleNamespace(status=status, headers={}, read=read)


class Botocore:
    def __init__(self) -> None:
        self.puts = 0

    async def put_object(self, **params: Any) -> dict[str, Any]:
        self.puts += 1
        return {"ETag": '"etag"'}


@pytest.mark.parametrize("status,code", [(301, "PermanentRedirect"), (307, "TemporaryRedirect"),
                                         (400, "AuthorizationHeaderMalformed")])
def test_a_redirected_lean_put_goes_through_botocore(status: int, code: str) -> None:
    """The lean path signed for an address the bucket is not at: botocore, which follows
    redirects and regions, sends it, and the lean path is off for that bucket."""
    session = Session((status, f"<Error><Code>{code}</Code></Error>".encode()))
    lean = LeanPut(session, Credentials(), "us-east-1")
    lean.learn("b", "k", [f"{ENDPOINT}/b/k"])
    client = Botocore()
    store = AioS3Store(client, ENDPOINT, lean)

    async def put_twice() -> None:
        for key in ("k", "k2"):
            await store.put_object("b", key, b"x", None, ObjectOptions())

    anyio.run(put_twice)
    assert (session.puts, client.puts) == (1, 2) and lean.knows("b") and lean.base("b") is None
