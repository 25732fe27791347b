"""The aiobotocore adapter without a server: how the lean PutObject path learns a bucket's
URL base (only from the URL of that very request, whatever runs concurrently), and how
``map_error`` names and classifies failures (S3's operation names, hints that do not
repeat the server, unknown exceptions passed through unchanged)."""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import quote

import aiohttp
import anyio
import botocore.exceptions as bce
import pytest
from aiohttp.client_reqrep import ConnectionKey

from bigupload.client import (
    _PUT_URLS,
    AioS3Store,
    LeanPut,
    ObjectOptions,
    _capture_put_url,
    _url_base,
    map_error,
)
from bigupload.errors import AuthError, NotFoundError, StoreError

ENDPOINT = "http://127.0.0.1:9000"


@pytest.mark.parametrize("url,bucket,key,base", [
    (f"{ENDPOINT}/site/index.html?x-id=PutObject", "site", "index.html", f"{ENDPOINT}/site/"),
    ("https://site.s3.example.com/docs/index.html", "site", "docs/index.html",
     "https://site.s3.example.com/"),
    ("https://a.b.s3.example.com/k", "a.b", "k", "https://a.b.s3.example.com/"),
    (f"{ENDPOINT}/site/photo%20%281%29.jpg", "site", "photo (1).jpg", f"{ENDPOINT}/site/"),
    (f"{ENDPOINT}/site/a/../b.bin", "site", "a/../b.bin", f"{ENDPOINT}/site/"),
    # not the bucket where S3 addressing puts it: never a base
    (f"{ENDPOINT}/site/docs/index.html", "site", "index.html", None),
    (f"{ENDPOINT}/primary/f1.bin", "backup", "f1.bin", None),
    ("https://primary.s3.example.com/f1.bin", "backup", "f1.bin", None),
    (f"{ENDPOINT}/prefix/site/k", "site", "k", None),  # an endpoint with a path
    (f"{ENDPOINT}/site/other", "site", "k", None),
])
def test_url_base_only_where_the_bucket_belongs(url: str, bucket: str, key: str,
                                                base: str | None) -> None:
    assert _url_base(url, bucket, key) == base


def test_learning_needs_exactly_one_url_of_that_request() -> None:
    lean = LeanPut(None, None, "us-east-1")
    lean.learn("a", "k", [])  # the hook saw nothing: do not guess
    lean.learn("b", "k", [f"{ENDPOINT}/b/k", f"{ENDPOINT}/b/k"])  # redirected: another region
    lean.learn("c", "index.html", [f"{ENDPOINT}/c/docs/index.html"])
    lean.learn("d", "k", [f"{ENDPOINT}/d/k"])
    assert [lean.base(b) for b in "abcd"] == [None, None, None, f"{ENDPOINT}/d/"]
    assert all(lean.knows(b) for b in "abcd")
    lean.learn("d", "k", [f"{ENDPOINT}/x/k"])  # settled: never relearnt
    assert lean.base("d") == f"{ENDPOINT}/d/"


class FakeBotocore:
    """Stands in for the aiobotocore client: each PutObject "sends" its URL through the
    same before-send hook AioS3Store registers, then waits until the test lets it answer,
    so the test chooses how concurrent requests interleave."""

    def __init__(self) -> None:
        self.release: dict[str, anyio.Event] = {}
        self.sent = 0

    async def put_object(self, *, Bucket: str, Key: str, Body: Any, **params: Any) -> dict[str, Any]:
        _capture_put_url(type("Request", (), {"url": f"{ENDPOINT}/{Bucket}/{quote(Key, safe='/~')}"
                                                     "?x-id=PutObject"})())
        self.sent += 1
        await self.release.setdefault(f"{Bucket}/{Key}", anyio.Event()).wait()
        return {"ETag": '"etag"'}


@pytest.mark.parametrize("first,second", [
    (("site", "docs/index.html"), ("site", "index.html")),
    (("primary", "f1.bin"), ("backup", "f1.bin")),
    (("site", "index.html"), ("site", "docs/index.html")),
])
def test_concurrent_botocore_puts_each_learn_from_their_own_url(
        first: tuple[str, str], second: tuple[str, str]) -> None:
    """``first`` is sent before ``second`` but answers after it: each bucket's base comes
    from its own request, never from the other's URL that was sent earlier."""
    client = FakeBotocore()
    lean = LeanPut(None, None, "us-east-1")
    store = AioS3Store(client, ENDPOINT, lean)

    async def go() -> None:
        async with anyio.create_task_group() as tg:
            for bucket, key in (first, second):
                tg.start_soon(store.put_object, bucket, key, b"x", None, ObjectOptions())
                while client.sent < (1 if (bucket, key) == first else 2):
                    await anyio.sleep(0)
            client.release.setdefault("/".join(second), anyio.Event()).set()
            while not lean.knows(second[0]):
                await anyio.sleep(0)
            client.release.setdefault("/".join(first), anyio.Event()).set()

    anyio.run(go)
    assert lean.base(second[0]) == f"{ENDPOINT}/{second[0]}/"
    assert lean.base(first[0]) == f"{ENDPOINT}/{first[0]}/"
    assert _PUT_URLS.get() is None


def test_nothing_is_kept_once_a_bucket_is_settled() -> None:
    """A bucket whose way is settled (here: lean path off) still goes through botocore;
    its URLs are not collected anywhere, however many files it has."""
    client = FakeBotocore()
    lean = LeanPut(None, None, "us-east-1")
    lean.disable("b")
    store = AioS3Store(client, ENDPOINT, lean)
    captured: list[list[str] | None] = []

    async def go() -> None:
        for n in range(50):
            client.release.setdefault(f"b/k{n}", anyio.Event()).set()
            await store.put_object("b", f"k{n}", b"x", None, ObjectOptions())
            captured.append(_PUT_URLS.get())

    anyio.run(go)
    assert client.sent == 50 and captured == [None] * 50
    assert vars(lean).keys() == {"_session", "_credentials", "_region", "_bases", "_sender",
                                 "_timeouts"}


def client_error(code: str, message: str, status: int, operation: str = "PutObject") -> bce.ClientError:
    return bce.ClientError({"Error": {"Code": code, "Message": message},
                            "ResponseMetadata": {"HTTPStatusCode": status}}, operation)


def test_no_such_upload_hint_only_when_the_server_did_not_say_it() -> None:
    s3 = ("The specified multipart upload does not exist. The upload ID may be invalid, or the "
          "upload may have been aborted or completed.")
    said = map_error(client_error("NoSuchUpload", s3, 404), "UploadPart", "b", "k")
    assert isinstance(said, NotFoundError)
    assert str(said) == f"UploadPart s3://b/k: NoSuchUpload: {s3}"
    terse = map_error(client_error("NoSuchUpload", "", 404), "UploadPart", "b", "k")
    assert str(terse).endswith("(the upload was aborted or completed)")


def test_a_bare_404_points_at_the_endpoint() -> None:
    bare = map_error(client_error("", "", 404), "PutObject", "b", "k")  # botocore, for an HTML 404
    assert isinstance(bare, NotFoundError) and bare.exit_code == 7
    assert "--endpoint-url" in str(bare) and "without an S3 error code" in str(bare)
    for error in (map_error(client_error("404", "Not Found", 404), "HeadObject", "b", "k"),
                  map_error(client_error("NoSuchKey", "gone", 404), "GetObject", "b", "k"),
                  map_error(client_error("NoSuchBucket", "no", 404), "PutObject", "b", "k")):
        assert "--endpoint-url" not in str(error)


class Raising:
    """A client whose every call raises ``exc``."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def __getattr__(self, name: str) -> Any:
        async def call(**params: Any) -> Any:
            raise self.exc
        return call


@pytest.mark.parametrize("method,operation", [
    ("create_multipart_upload", "CreateMultipartUpload"), ("upload_part", "UploadPart"),
    ("list_parts", "ListParts"), ("complete_multipart_upload", "CompleteMultipartUpload"),
    ("abort_multipart_upload", "AbortMultipartUpload"), ("put_object", "PutObject"),
    ("head_object", "HeadObject"), ("list_objects_v2", "ListObjectsV2"),
    ("list_multipart_uploads", "ListMultipartUploads"),
])
def test_errors_name_s3_operations(method: str, operation: str) -> None:
    store = AioS3Store(Raising(client_error("SlowDown", "slow down", 503)), ENDPOINT)
    with pytest.raises(StoreError) as caught:
        anyio.run(lambda: store._call(method, "b", "k"))
    assert caught.value.operation == operation
    assert str(caught.value).startswith(f"{operation} s3://b/k: SlowDown")


@pytest.mark.parametrize("bug", [TypeError("unexpected keyword"), AttributeError("no .foo"),
                                 KeyError("Parts"), ValueError("bad")])
def test_unknown_exceptions_pass_through_unchanged(bug: Exception) -> None:
    with pytest.raises(type(bug)) as direct:
        map_error(bug, "PutObject", "b", "k")
    assert direct.value is bug
    store = AioS3Store(Raising(bug), ENDPOINT)
    with pytest.raises(type(bug)) as called:
        anyio.run(lambda: store._call("upload_part", "b", "k"))
    assert called.value is bug


def _certificate_error() -> aiohttp.ClientConnectorCertificateError:
    failure = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    failure.verify_message = "self-signed certificate"
    key = ConnectionKey("127.0.0.1", 8443, True, True, None, None, None)
    try:
        raise aiohttp.ClientConnectorCertificateError(key, failure) from failure
    except aiohttp.ClientConnectorCertificateError as exc:
        return exc


def test_certificate_failures_are_auth_errors_from_either_stack() -> None:
    from_aiohttp = _certificate_error()
    try:
        raise bce.SSLError(endpoint_url="https://127.0.0.1:8443/b/k", error=from_aiohttp)
    except bce.SSLError as exc:
        from_botocore = exc
    for exc in (from_aiohttp, from_botocore):
        error = map_error(exc, "PutObject", "b", "k")
        assert isinstance(error, AuthError) and error.exit_code == 4 and not error.retryable
        assert ("TLS certificate verification failed for https://127.0.0.1:8443: "
                "self-signed certificate; check AWS_CA_BUNDLE") in str(error)
        assert "--no-verify-ssl" in str(error)
