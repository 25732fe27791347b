"""The narrow ``ObjectStore`` protocol the engine talks to, and its aiobotocore adapter.

The adapter owns every network call and maps botocore/aiohttp failures onto our error
tree, so no botocore type leaks upward. botocore's own retries are off (we retry per
part with backoff in the scheduler), and so are its extra body hashes: each part carries
our precomputed checksum header, botocore adds no CRC of its own, and SigV4 is given
UNSIGNED-PAYLOAD instead of a SHA-256 over the body.

Over https, file bodies of UploadPart and PutObject (LeanPut's too) are sent by
``tlssend`` from a worker thread, after botocore signed them and before botocore parses
the answer (a ``before-send`` hook); the control calls stay on aiohttp. There a part's
checksum follows its body as a trailing checksum (``Trailers``: the endpoint's answers
decide whether it takes that form), computed in the pass that sends it, and the caller
reads it from ``PartReceipt.sent``."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import logging
import os
import ssl
import sys
from urllib.parse import quote, urlsplit
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import anyio

from . import answers, sigv4, tlshooks
from .config import ChecksumAlgorithm, UploadConfig
from .errors import (BigUploadError, ConfigError, IntegrityError, NotFoundError, StoreError)
from .source import FileRange
from .store_errors import http_error, map_error, our_error
# the wire's value types live in values.py; imported from here before they moved
from .values import CopySource, CopySourceInfo
from .values import (
    CompletedPart as CompletedPart,
    MultipartUpload as MultipartUpload,
    ObjectInfo as ObjectInfo,
    ObjectOptions as ObjectOptions,
    ObjectSummary as ObjectSummary,
    Owner as Owner,
    PartListing as PartListing,
    PartReceipt as PartReceipt,
    Precondition as Precondition,
    RemotePart as RemotePart,
    ServerSide as ServerSide,
)

log = logging.getLogger("bigupload")

class ObjectStore(Protocol):
    """What the engine needs from an S3-compatible store. Errors are ours (errors.py)."""

    endpoint: str

    async def create_multipart(self, bucket: str, key: str, options: ObjectOptions) -> str: ...

    def checksums_while_sending(self, algorithm: ChecksumAlgorithm) -> bool:
        """Whether ``upload_part`` computes ``algorithm`` itself in the pass that sends the
        part (a trailing checksum): the caller then passes no checksum and reads the value
        from ``PartReceipt.sent``."""
        ...

    async def upload_part(
        self, bucket: str, key: str, upload_id: str, number: int, body: Any,
        checksum: str | None, options: ObjectOptions, *, content_md5: str | None = None,
    ) -> PartReceipt:
        """Upload one part. With ``checksum`` None and an algorithm in ``options``, the
        store computes the checksum (``checksums_while_sending``) and reports it in
        ``PartReceipt.sent``. ``content_md5`` (base64) goes as its Content-MD5 (always in
        the header form: the checksum is then a header too)."""
        ...

    async def list_parts(
        self, bucket: str, key: str, upload_id: str, options: ObjectOptions, *,
        max_parts: int | None = None, part_number_marker: int | None = None,
    ) -> PartListing:
        """Every page; or, with ``max_parts`` or ``part_number_marker``, that one page."""
        ...

    async def complete(
        self, bucket: str, key: str, upload_id: str, parts: Sequence[CompletedPart],
        options: ObjectOptions, *, full_checksum: str | None = None, size: int | None = None,
        condition: Precondition | None = None,
    ) -> str: ...

    async def abort(self, bucket: str, key: str, upload_id: str,
                    options: ObjectOptions) -> str | None:
        """Abort the upload; the answer's RequestCharged, if any."""
        ...

    async def put_object(
        self, bucket: str, key: str, body: Any, checksum: str | None, options: ObjectOptions,
        *, condition: Precondition | None = None, content_md5: str | None = None,
    ) -> PartReceipt: ...

    async def head(self, bucket: str, key: str, options: ObjectOptions) -> ObjectInfo | None: ...

    async def list_uploads(self, bucket: str, prefix: str = "",
                           options: ObjectOptions | None = None) -> list[MultipartUpload]: ...

    async def list_objects(self, bucket: str, prefix: str = "") -> list[ObjectSummary]: ...


@runtime_checkable
class CopyStore(ObjectStore, Protocol):
    """A store that copies server-side, within its own endpoint: every read of the source
    names its version (if any) and is conditional on its ETag, so the server refuses
    (412) rather than copy from a newer object."""

    async def describe(self, bucket: str, key: str, version_id: str | None,
                       options: ObjectOptions) -> CopySourceInfo | None: ...

    async def tags(self, source: CopySource, options: ObjectOptions) -> dict[str, str]: ...

    async def copy_object(self, bucket: str, key: str, source: CopySource,
                          options: ObjectOptions, *, replace_metadata: bool,
                          condition: Precondition | None = None) -> PartReceipt: ...

    async def upload_part_copy(self, bucket: str, key: str, upload_id: str, number: int,
                               source: CopySource, first: int, last: int,
                               options: ObjectOptions) -> PartReceipt: ...


def _checksum_param(algorithm: ChecksumAlgorithm) -> str:
    return "Checksum" + algorithm.s3_name


def _response_checksum(response: Mapping[str, Any], algorithm: ChecksumAlgorithm | None = None) -> str | None:
    names = [algorithm] if algorithm else list(ChecksumAlgorithm)
    for alg in names:
        if alg is not ChecksumAlgorithm.NONE and response.get(_checksum_param(alg)):
            return str(response[_checksum_param(alg)])
    return None


def _any_checksum(response: Mapping[str, Any], preferred: ChecksumAlgorithm) -> tuple[str | None, str | None]:
    """(S3 algorithm name, value) of the checksum an answer carries: ``preferred`` if it is
    there, else whichever other one is (an object or upload made by another tool)."""
    for alg in [preferred, *ChecksumAlgorithm]:
        if alg is not ChecksumAlgorithm.NONE and response.get(_checksum_param(alg)):
            return alg.s3_name, str(response[_checksum_param(alg)])
    return None, None


# botocore's method names -> S3's operation names, for StoreError.operation and messages
# (the retry lines and the rest of the engine speak S3's names)
S3_OPERATIONS = {
    "create_multipart_upload": "CreateMultipartUpload",
    "upload_part": "UploadPart",
    "list_parts": "ListParts",
    "complete_multipart_upload": "CompleteMultipartUpload",
    "abort_multipart_upload": "AbortMultipartUpload",
    "put_object": "PutObject",
    "head_object": "HeadObject",
    "list_multipart_uploads": "ListMultipartUploads",
    "list_objects_v2": "ListObjectsV2",
    "copy_object": "CopyObject",
    "upload_part_copy": "UploadPartCopy",
    "get_object_tagging": "GetObjectTagging",
}

def _required(response: Mapping[str, Any], field: str, operation: str, bucket: str, key: str) -> Any:
    """A field every S3 answer to ``operation`` has; its absence means the endpoint is not
    an S3 API (a web server answering 200 to anything), which no retry will change."""
    value = response.get(field)
    if not value:
        raise StoreError(
            f"{operation} s3://{bucket}/{key}: the answer has no {field}; the endpoint does not "
            "look like an S3 API (check --endpoint-url)",
            operation=operation, bucket=bucket, key=key, code="NotS3", retryable=False,
        )
    return value


def _no_expect_continue(params: dict[str, Any], **kwargs: Any) -> None:
    params.get("headers", {}).pop("Expect", None)


def _ca_bundle(session: Any, config: UploadConfig) -> str | bool:
    """What both HTTP stacks trust, resolved as botocore resolves it (``AWS_CA_BUNDLE`` or
    the profile's ``ca_bundle``, then ``REQUESTS_CA_BUNDLE``): a readable PEM file, True
    for the default bundle, False with --no-verify-ssl. A bundle that is set but empty,
    missing or unreadable is a ConfigError naming where it was set, before anything is sent."""
    if not config.verify_tls:
        return False
    value = session.get_config_variable("ca_bundle")
    source = "AWS_CA_BUNDLE" if "AWS_CA_BUNDLE" in os.environ else "ca_bundle (in the AWS profile)"
    if value is None:
        value, source = os.environ.get("REQUESTS_CA_BUNDLE"), "REQUESTS_CA_BUNDLE"
    if value is None:
        return True
    if not str(value).strip():
        raise ConfigError(f"{source} is set but empty: unset it, or point it at a PEM file of "
                          "the certificates to trust")
    try:
        ssl.create_default_context(cafile=str(value))
    except ssl.SSLError as exc:  # an OSError too: first
        raise ConfigError(f"{source}={value}: not a PEM bundle of certificates ({exc})") from exc
    except OSError as exc:
        raise ConfigError(f"{source}={value}: cannot read the CA bundle "
                          f"({exc.strerror or exc})") from exc
    return str(value)


def _tls_context(trust: str | bool) -> ssl.SSLContext:
    """The TLS settings of the botocore client (``trust`` from ``_ca_bundle``; True is
    botocore's default bundle, not the system's), for LeanPut and tlssend."""
    from .tlssend import ssl_context

    return ssl_context(trust)


@contextlib.asynccontextmanager
async def _lean_session(config: UploadConfig, trust: str | bool | ssl.SSLContext) -> AsyncIterator[Any]:
    """The HTTP client of ``LeanPut`` (``leanhttp.Client``): the same timeouts and TLS
    trust as the botocore client (``trust`` from ``_ca_bundle``, or the context made from
    it), proxies from the environment (read once per origin)."""
    from .leanhttp import Client

    tls: ssl.SSLContext | bool = trust if isinstance(trust, ssl.SSLContext) else False
    if trust and not isinstance(trust, ssl.SSLContext):
        tls = _tls_context(trust)
    client = Client(connect_timeout=config.connect_timeout_s, read_timeout=config.read_timeout_s,
                    tls=tls, user_agent="bigupload/0.1")
    try:
        yield client
    finally:
        await client.aclose()


def botocore_config(config: UploadConfig) -> Any:
    """AioConfig for bulk uploads: pool sized to the concurrency, no botocore retries, no
    duplicate body hashing."""
    from aiobotocore.config import AioConfig

    return AioConfig(
        max_pool_connections=config.concurrency + 2,
        connect_timeout=config.connect_timeout_s,
        read_timeout=config.read_timeout_s,
        retries={"total_max_attempts": 1, "mode": "standard"},  # "max_attempts" counts retries
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        s3={"payload_signing_enabled": False},
        user_agent_extra="bigupload/0.1",
    )


class LeanPut:
    """PutObject without botocore's per-request machinery, for batches of small files.

    botocore spends about 1.7 ms of CPU on every request (event hooks, endpoint rules, the
    user-agent string, signing), measured against the null sink: 550 small PUTs a second
    on one core, where the bytes cost almost nothing. This path signs with ``sigv4`` and
    sends through ``leanhttp`` (keep-alive connections of its own; file ranges still go by
    sendfile, small files' bytes read inline in one write). It learns each bucket's URL from botocore itself: the first PutObject to a
    bucket goes through botocore, and the URL of that very request (captured for that call
    alone, never from a list shared with concurrent calls) gives the base (path or
    virtual-host style, whatever botocore resolved), once the bucket is seen where S3
    addressing puts it. The path is sent exactly as signed, as botocore sends its own. A
    request the lean path cannot sign correctly (a bucket in another region) turns it off
    for that bucket."""

    def __init__(self, session: Any, credentials: Any, region: str, sender: Any = None, *,
                 timeouts: tuple[float, float] | None = None) -> None:
        self._session = session
        self._timeouts = timeouts  # (connect, read) seconds, named in timeout messages
        self._sender = sender  # tlssend.TlsSender: file bodies over https go through it
        self._credentials = credentials
        self._region = region
        self._bases: dict[str, str | None] = {}  # bucket -> URL base, None: not lean

    def base(self, bucket: str) -> str | None:
        return self._bases.get(bucket)

    def knows(self, bucket: str) -> bool:
        """Whether the bucket's way is settled (a base learnt, or the lean path off)."""
        return bucket in self._bases

    def learn(self, bucket: str, key: str, urls: Sequence[str]) -> None:
        """Settle the bucket's URL base from the URLs botocore sent for one PutObject of
        ``key`` (``capture_put_urls``): the path must be the key exactly, under the bucket
        where botocore puts it (first path segment, or first host label). Anything else (no
        URL, a redirect's second URL, an endpoint with a path) turns the lean path off for
        the bucket rather than guess."""
        if bucket not in self._bases:
            self._bases[bucket] = _url_base(urls[0], bucket, key) if len(urls) == 1 else None

    def disable(self, bucket: str) -> None:
        self._bases[bucket] = None

    @staticmethod
    def usable(options: ObjectOptions) -> bool:
        return all(v.isascii() and k.isascii() for k, v in options.metadata.items())

    async def put(self, base: str, bucket: str, key: str, body: Any, checksum: str | None,
                  options: ObjectOptions, condition: Precondition | None = None,
                  content_md5: str | None = None) -> PartReceipt:
        url = base + quote(key, safe="/~")
        split = urlsplit(url)
        headers: dict[str, str] = dict(condition.headers()) if condition else {}
        headers.update(options.put_headers())
        if checksum is not None:
            headers[f"x-amz-checksum-{options.checksum.value}"] = checksum
        if content_md5 is not None:
            headers["Content-MD5"] = content_md5
        frozen = self._credentials.get_frozen_credentials()
        if asyncio.iscoroutine(frozen):
            frozen = await frozen
        signed = sigv4.sign("PUT", split.netloc, split.path, headers, access_key=frozen.access_key,
                            secret_key=frozen.secret_key, token=frozen.token, region=self._region)
        handling = sys.exc_info()[1]
        try:
            if self._sender is not None and url.startswith("https://") and isinstance(body, FileRange):
                sent = await self._sender.exchange("PUT", url, signed, body)
                content, status, answer = sent.body, sent.status, sent.headers
            else:
                # the path exactly as signed (leanhttp sends the URL as given)
                async with self._session.put(url, data=body, headers=signed) as response:
                    content = await response.read()
                    status = response.status
                    answer = response.headers
        except (BigUploadError, asyncio.CancelledError):
            raise
        except Exception as exc:
            if (ours := our_error(exc, handling)) is not None:
                raise ours from exc
            raise map_error(exc, "PutObject", bucket, key, timeouts=self._timeouts) from exc
        if status >= 300:
            raise http_error(status, content, "PutObject", bucket, key)
        etag = answer.get("etag")  # aiohttp's headers and tlssend's: both find lower case
        if not etag:
            _required({}, "ETag", "PutObject", bucket, key)
        return PartReceipt(etag=str(etag), checksum=answer.get(f"x-amz-checksum-{options.checksum.value}"),
                           server_side=answers.server_side_headers(answer))


def _url_base(url: str, bucket: str, key: str) -> str | None:
    """The base that, followed by the quoted key, gives ``url``; None unless the bucket is
    where S3 addressing puts it: ``/bucket/`` as the whole path before the key (path style)
    or the first host label with the key straight after ``/`` (virtual-host style)."""
    split = urlsplit(url)
    quoted = quote(key, safe="/~")
    if not split.path.endswith("/" + quoted):
        return None
    prefix = split.path[: len(split.path) - len(quoted)]
    virtual = prefix == "/" and (split.hostname or "").startswith(bucket + ".")
    if prefix != f"/{bucket}/" and not virtual:
        return None
    return f"{split.scheme}://{split.netloc}{prefix}"


# The URLs botocore sends while one PutObject call runs: set by ``AioS3Store.put_object``
# around that call only, so concurrent calls (each its own task, its own context) never
# see each other's URLs, and nothing is kept once the call returns.
_PUT_URLS: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "bigupload_put_urls", default=None)


def _capture_put_url(request: Any, **kwargs: Any) -> None:
    """botocore's before-send hook for PutObject: record the URL for the running call."""
    urls = _PUT_URLS.get()
    if urls is not None:
        urls.append(str(request.url))


class AioS3Store:
    """``ObjectStore`` over one aiobotocore S3 client. Create with ``AioS3Store.open``."""

    def __init__(self, client: Any, endpoint: str, lean: LeanPut | None = None,
                 trailers: tlshooks.Trailers | None = None, *,
                 timeouts: tuple[float, float] | None = None) -> None:
        self._client = client
        self._timeouts = timeouts  # (connect, read) seconds, named in timeout messages
        self.endpoint = endpoint
        self._lean = lean
        self._trailers = trailers  # trailing checksums on UploadPart (tlssend only)

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, config: UploadConfig) -> AsyncIterator[AioS3Store]:
        from aiobotocore.session import AioSession
        import botocore.exceptions as bce

        try:
            session = AioSession(profile=config.profile)
            trust = _ca_bundle(session, config)
            client_cm = session.create_client(
                "s3",
                endpoint_url=config.endpoint_url,
                region_name=config.region,
                config=botocore_config(config),
                verify=trust,
            )
        except bce.BotoCoreError as exc:
            raise map_error(exc, "", "") from exc
        from . import httpbody, redact

        httpbody.register()
        redact.add_secret(config.sse_c_key)
        async with contextlib.AsyncExitStack() as stack:
            try:  # the profile is first read here: a missing one is ProfileNotFound
                client = await stack.enter_async_context(client_cm)
                credentials = await session.get_credentials()
            except bce.BotoCoreError as exc:
                raise map_error(exc, "", "") from exc
            if credentials is not None:
                frozen = await credentials.get_frozen_credentials()
                redact.add_secret(frozen.secret_key)
                redact.add_secret(frozen.token)
            # botocore asks for ``Expect: 100-continue`` on every file-like body: one more
            # round trip per part that buys nothing when the request is already signed and
            # the part is checksummed, so it is dropped.
            client.meta.events.register_last("before-call.s3", _no_expect_continue)
            endpoint = config.endpoint_url or client.meta.endpoint_url
            timeouts = (config.connect_timeout_s, config.read_timeout_s)
            # one load of the CA bundle for both of our own HTTP paths, and none for http
            tls = _tls_context(trust) if str(client.meta.endpoint_url).startswith("https://") \
                else False
            sender = tlshooks.sender_for(config, tls, str(client.meta.endpoint_url))
            trailers = None
            try:
                if sender is not None:
                    handler = tlshooks.send_handler(sender)
                    for operation in ("UploadPart", "PutObject"):
                        client.meta.events.register(f"before-send.s3.{operation}", handler)
                    if os.environ.get("BIGUPLOAD_TRAILING_CHECKSUM", "1") != "0":
                        trailers = tlshooks.Trailers(str(endpoint))
                        client.meta.events.register("before-sign.s3.UploadPart", tlshooks.sign_trailer)
                if credentials is None or os.environ.get("BIGUPLOAD_LEAN_PUT", "1") == "0":
                    yield cls(client, str(endpoint), None, trailers, timeouts=timeouts)
                    return
                async with _lean_session(config, tls) as http:
                    lean = LeanPut(http, credentials, client.meta.region_name or "us-east-1",
                                   sender, timeouts=timeouts)
                    client.meta.events.register("before-send.s3.PutObject", _capture_put_url)
                    yield cls(client, str(endpoint), lean, trailers, timeouts=timeouts)
            finally:
                if sender is not None:
                    sender.close()

    async def _call(self, operation: str, bucket: str, key: str = "", *,
                    upload_id: str | None = None, part_number: int | None = None,
                    **params: Any) -> dict[str, Any]:
        """Call botocore's ``operation`` (its method name); errors are ours, named with
        S3's operation name, and unknown exceptions pass through unchanged."""
        method = getattr(self._client, operation)
        handling = sys.exc_info()[1]
        try:
            result: dict[str, Any] = await method(Bucket=bucket, **params)
            return result
        except (BigUploadError, asyncio.CancelledError):
            raise
        except Exception as exc:
            if (ours := our_error(exc, handling)) is not None:
                raise ours from exc  # e.g. the file shrank while aiohttp was sending it
            raise map_error(exc, S3_OPERATIONS.get(operation, operation), bucket, key, upload_id,
                            part_number, timeouts=self._timeouts) from exc

    async def create_multipart(self, bucket: str, key: str, options: ObjectOptions) -> str:
        response = await self._call("create_multipart_upload", bucket, key, Key=key, **options.on_create())
        return str(_required(response, "UploadId", "CreateMultipartUpload", bucket, key))

    def checksums_while_sending(self, algorithm: ChecksumAlgorithm) -> bool:
        return (self._trailers is not None and self._trailers.usable(algorithm)
                and self._trailers.state is not False)

    async def upload_part(self, bucket: str, key: str, upload_id: str, number: int, body: Any,
                          checksum: str | None, options: ObjectOptions, *,
                          content_md5: str | None = None) -> PartReceipt:
        algorithm = options.checksum
        if checksum is not None or algorithm is ChecksumAlgorithm.NONE:
            return await self._upload_part(bucket, key, upload_id, number, body, checksum, options,
                                           content_md5)
        trailers = self._trailers
        if trailers is None or not trailers.usable(algorithm) or trailers.state is False \
                or not isinstance(body, FileRange) or content_md5 is not None:
            # the caller left the checksum to us, and it cannot follow the body (nor goes a
            # trailing checksum with a Content-MD5): compute it first and send it as a
            # header, as the caller would have
            from . import checksum as ck

            raw = await anyio.to_thread.run_sync(tlshooks.range_checksum, body, algorithm)
            receipt = await self._upload_part(bucket, key, upload_id, number, body,
                                              ck.encode(raw), options, content_md5)
            return dataclasses.replace(receipt, sent=raw)
        call = tlshooks.TrailerCall(algorithm)
        token = tlshooks.TRAILER_CALL.set(call)
        try:
            receipt = await self._upload_part(bucket, key, upload_id, number, body, None, options)
        except StoreError as exc:
            if trailers.state is not None or isinstance(exc, NotFoundError) or (
                    exc.retryable and not isinstance(exc, IntegrityError)):
                raise  # not about the form: the upload is gone, or a transient failure
            # while the endpoint is on probation, a refusal of the trailer form may be a
            # server that does not take it: once more with the checksum as a header
            trailers.refused(exc)
            return await self.upload_part(bucket, key, upload_id, number, body, None, options)
        finally:
            tlshooks.TRAILER_CALL.reset(token)
        if call.sent is None:
            raise AssertionError("the trailer form was signed but not sent")
        from . import checksum as ck

        if receipt.checksum != ck.encode(call.sent):
            if trailers.state is None and receipt.checksum is None:
                # a server that does not echo the trailing checksum may not have read the
                # framing either (and stored it as data): send the part again with the
                # checksum as a header, and keep to that form for this endpoint
                trailers.refused(None)
                return await self.upload_part(bucket, key, upload_id, number, body, None, options)
            return dataclasses.replace(receipt, sent=call.sent)  # the caller compares
        trailers.accepted()
        return dataclasses.replace(receipt, sent=call.sent)

    async def _upload_part(self, bucket: str, key: str, upload_id: str, number: int, body: Any,
                           checksum: str | None, options: ObjectOptions,
                           content_md5: str | None = None) -> PartReceipt:
        params = options.every_request()
        if checksum is not None:
            params[_checksum_param(options.checksum)] = checksum
        if content_md5 is not None:
            params["ContentMD5"] = content_md5  # botocore then adds no MD5 of its own
        response = await self._call(
            "upload_part", bucket, key, upload_id=upload_id, part_number=number,
            Key=key, UploadId=upload_id, PartNumber=number, Body=body, **params,
        )
        etag = _required(response, "ETag", "UploadPart", bucket, key)
        return PartReceipt(etag=str(etag), checksum=_response_checksum(response, options.checksum),
                           server_side=answers.server_side(response))

    async def list_parts(self, bucket: str, key: str, upload_id: str, options: ObjectOptions,
                         *, max_parts: int | None = None,
                         part_number_marker: int | None = None) -> PartListing:
        """Every part, following NextPartNumberMarker across pages (S3 pages at 1,000); or,
        with ``max_parts`` or ``part_number_marker``, the one page they ask for (the
        listing then says where the next begins). A part's checksum is read in whatever
        algorithm the server lists it (``options`` may not know it yet: an upload adopted
        with --upload-id). The SSE-C key goes along: S3 wants it to list the parts of an
        SSE-C upload created with a checksum algorithm."""
        one_page = max_parts is not None or part_number_marker is not None
        params = {**options.every_request(sse_c=False), **options.sse_c_encoded()}
        if max_parts is not None:
            params["MaxParts"] = max_parts
        parts: list[RemotePart] = []
        marker = part_number_marker or 0
        pages: list[dict[str, Any]] = []
        while True:
            response = await self._call(
                "list_parts", bucket, key, upload_id=upload_id,
                Key=key, UploadId=upload_id, PartNumberMarker=marker, **params,
            )
            _required(response, "UploadId", "ListParts", bucket, key)
            pages.append(response)
            declared = next((str(page["ChecksumAlgorithm"]) for page in pages
                             if page.get("ChecksumAlgorithm")), None)
            parts += [answers.remote_part(p, options.checksum, declared)
                      for p in response.get("Parts", [])]
            if one_page or not response.get("IsTruncated"):
                return answers.part_listing(pages, parts, bucket, key, upload_id, marker,
                                            truncated=one_page and bool(response.get("IsTruncated")))
            next_marker = answers.whole(response.get("NextPartNumberMarker")) or 0
            if next_marker <= marker:  # a server that would loop forever
                raise StoreError(f"ListParts s3://{bucket}/{key}: truncated page without progress",
                                 operation="ListParts", bucket=bucket, key=key, upload_id=upload_id,
                                 code="MalformedResponse", retryable=True)
            marker = next_marker

    async def complete(self, bucket: str, key: str, upload_id: str, parts: Sequence[CompletedPart],
                       options: ObjectOptions, *, full_checksum: str | None = None,
                       size: int | None = None, condition: Precondition | None = None) -> str:
        """CompleteMultipartUpload. ``full_checksum`` (with ``size``) is the whole object's
        CRC for a FULL_OBJECT upload, which the server checks against what it assembled;
        ``condition`` makes the completion conditional on the key's state."""
        extra: dict[str, Any] = dict(condition.params()) if condition else {}
        if full_checksum is not None:
            extra[_checksum_param(options.checksum)] = full_checksum
            extra["ChecksumType"] = "FULL_OBJECT"
            if size is not None:
                extra["MpuObjectSize"] = size
        listed = []
        for p in parts:
            entry: dict[str, Any] = {"PartNumber": p.number, "ETag": p.etag}
            if p.checksum:
                entry[_checksum_param(options.checksum)] = p.checksum
            listed.append(entry)
        response = await self._call(
            "complete_multipart_upload", bucket, key, upload_id=upload_id,
            Key=key, UploadId=upload_id, MultipartUpload={"Parts": listed}, **options.every_request(),
            **extra,
        )
        return str(response.get("ETag", ""))

    async def abort(self, bucket: str, key: str, upload_id: str,
                    options: ObjectOptions) -> str | None:
        """AbortMultipartUpload (it takes no SSE-C key); the answer's RequestCharged."""
        params = options.every_request(sse_c=False)
        response = await self._call("abort_multipart_upload", bucket, key, upload_id=upload_id,
                                    Key=key, UploadId=upload_id, **params)
        # S3 answers 204 and no body (moto even labels it text/html, so the content type
        # proves nothing); a 2xx with a body is a web server answering anything, and
        # "aborted" would tell the user billing stopped when nothing was sent to S3
        meta = response.get("ResponseMetadata", {})
        length = str(meta.get("HTTPHeaders", {}).get("content-length") or "0")
        if meta.get("HTTPStatusCode") != 204 and length.isdigit() and int(length) > 0:
            raise StoreError(
                f"AbortMultipartUpload s3://{bucket}/{key}: HTTP {meta.get('HTTPStatusCode')} with a "
                "body instead of 204 No Content; the endpoint does not look like an S3 API "
                "(check --endpoint-url)",
                operation="AbortMultipartUpload", bucket=bucket, key=key, upload_id=upload_id,
                code="NotS3", retryable=False,
            )
        return answers.text(response.get("RequestCharged"))

    async def put_object(self, bucket: str, key: str, body: Any, checksum: str | None,
                         options: ObjectOptions, *, condition: Precondition | None = None,
                         content_md5: str | None = None) -> PartReceipt:
        lean = self._lean
        if lean is not None and lean.usable(options) and (base := lean.base(bucket)):
            try:
                return await lean.put(base, bucket, key, body, checksum, options, condition,
                                      content_md5)
            except StoreError as exc:
                if not exc.redirect:
                    raise
                lean.disable(bucket)
                log.info("s3://%s: PutObject goes through botocore (%s)", bucket, exc.code)
        if lean is None or lean.knows(bucket):
            return await self._botocore_put(bucket, key, body, checksum, options, condition,
                                            content_md5)
        urls: list[str] = []
        token = _PUT_URLS.set(urls)
        try:
            receipt = await self._botocore_put(bucket, key, body, checksum, options, condition,
                                               content_md5)
        finally:
            _PUT_URLS.reset(token)
        lean.learn(bucket, key, urls)
        return receipt

    async def _botocore_put(self, bucket: str, key: str, body: Any, checksum: str | None,
                            options: ObjectOptions, condition: Precondition | None,
                            content_md5: str | None) -> PartReceipt:
        params = options.on_create()
        params.pop("ChecksumAlgorithm", None)
        params.pop("ChecksumType", None)
        if condition is not None:
            params.update(condition.params())
        if checksum is not None:
            params[_checksum_param(options.checksum)] = checksum
        if content_md5 is not None:
            params["ContentMD5"] = content_md5
        response = await self._call("put_object", bucket, key, Key=key, Body=body, **params)
        etag = _required(response, "ETag", "PutObject", bucket, key)
        return PartReceipt(etag=str(etag), checksum=_response_checksum(response, options.checksum),
                           server_side=answers.server_side(response))

    async def head(self, bucket: str, key: str, options: ObjectOptions) -> ObjectInfo | None:
        try:
            response = await self._call("head_object", bucket, key, Key=key, ChecksumMode="ENABLED",
                                        **options.every_request())
        except NotFoundError as exc:
            if exc.object_missing:
                return None
            raise
        algorithm, checksum = _any_checksum(response, options.checksum)
        return ObjectInfo(
            size=int(response["ContentLength"]),
            # every S3 object has an ETag; an answer without one is not from an S3 API
            etag=str(_required(response, "ETag", "HeadObject", bucket, key)),
            checksum=checksum,
            checksum_type=response.get("ChecksumType"),
            last_modified=response.get("LastModified"),
            checksum_algorithm=algorithm,
        )

    async def list_uploads(self, bucket: str, prefix: str = "",
                           options: ObjectOptions | None = None) -> list[MultipartUpload]:
        """All unfinished multipart uploads under ``prefix``, across pages (the request
        takes ``options``' RequestPayer and ExpectedBucketOwner, and no SSE-C key)."""
        uploads: list[MultipartUpload] = []
        params: dict[str, Any] = {"Prefix": prefix}
        if options is not None:
            params.update(options.every_request(sse_c=False))
        while True:
            response = await self._call("list_multipart_uploads", bucket, prefix, **params)
            _required(response, "Bucket", "ListMultipartUploads", bucket, prefix)
            uploads += [answers.multipart_upload(u) for u in response.get("Uploads", [])]
            if not response.get("IsTruncated"):
                return uploads
            params["KeyMarker"] = response.get("NextKeyMarker", "")
            params["UploadIdMarker"] = response.get("NextUploadIdMarker", "")

    async def list_objects(self, bucket: str, prefix: str = "") -> list[ObjectSummary]:
        """Every object under ``prefix`` (ListObjectsV2, 1,000 a page)."""
        objects: list[ObjectSummary] = []
        params: dict[str, Any] = {"Prefix": prefix}
        while True:
            response = await self._call("list_objects_v2", bucket, prefix, **params)
            for o in response.get("Contents", []):
                objects.append(ObjectSummary(str(o["Key"]), int(o["Size"]), str(o.get("ETag", ""))))
            token = response.get("NextContinuationToken")
            if not response.get("IsTruncated") or not token:
                return objects
            params["ContinuationToken"] = token

    # server-side copies (``CopyStore``)

    async def describe(self, bucket: str, key: str, version_id: str | None,
                       options: ObjectOptions) -> CopySourceInfo | None:
        """HEAD a copy's source (that version, if given): its identity, content type, user
        metadata, tag count and checksum; None when there is no such object."""
        params = options.every_request(sse_c=False)
        if version_id is not None:
            params["VersionId"] = version_id
        try:
            response = await self._call("head_object", bucket, key, Key=key,
                                        ChecksumMode="ENABLED", **params)
        except NotFoundError as exc:
            if exc.object_missing:
                return None
            raise
        algorithm, checksum = _any_checksum(response, options.checksum)
        etag = _quoted(str(_required(response, "ETag", "HeadObject", bucket, key)))
        source = CopySource(bucket=bucket, key=key, size=int(response["ContentLength"]),
                            etag=etag, last_modified=response.get("LastModified"),
                            version_id=response.get("VersionId") or version_id)
        return CopySourceInfo(source=source, content_type=response.get("ContentType"),
                              metadata=dict(response.get("Metadata") or {}),
                              tag_count=int(response.get("TagCount") or 0), checksum=checksum,
                              checksum_type=response.get("ChecksumType"),
                              checksum_algorithm=algorithm)

    async def tags(self, source: CopySource, options: ObjectOptions) -> dict[str, str]:
        """The source's tags (GetObjectTagging, that version)."""
        params = options.every_request(sse_c=False)
        if source.version_id is not None:
            params["VersionId"] = source.version_id
        response = await self._call("get_object_tagging", source.bucket, source.key,
                                    Key=source.key, **params)
        return {str(t["Key"]): str(t["Value"]) for t in response.get("TagSet", [])}

    async def copy_object(self, bucket: str, key: str, source: CopySource,
                          options: ObjectOptions, *, replace_metadata: bool,
                          condition: Precondition | None = None) -> PartReceipt:
        """CopyObject (at most 5 GiB), conditional on the source's ETag. The server copies
        the content type, metadata and tags, unless ``replace_metadata``: then the content
        type and metadata are ``options``'. Our checksum algorithm asks the server for a
        new whole-object checksum (S3 computes it; some servers keep the source's)."""
        params = options.on_create()
        params.pop("ChecksumType", None)
        params.pop("Tagging", None)  # TaggingDirective COPY, the default
        if replace_metadata:
            params["MetadataDirective"] = "REPLACE"
            params.setdefault("Metadata", {})
        else:
            params.pop("ContentType", None)
            params.pop("Metadata", None)
        if condition is not None:
            params.update(condition.params())
        response = await self._call("copy_object", bucket, key, Key=key,
                                    CopySource=_copy_source(source),
                                    CopySourceIfMatch=source.etag, **params)
        result = response.get("CopyObjectResult") or {}
        etag = _required(result, "ETag", "CopyObject", bucket, key)
        return PartReceipt(etag=_quoted(str(etag)),
                           checksum=_response_checksum(result, options.checksum))

    async def upload_part_copy(self, bucket: str, key: str, upload_id: str, number: int,
                               source: CopySource, first: int, last: int,
                               options: ObjectOptions) -> PartReceipt:
        """UploadPartCopy of the source's bytes ``first``..``last`` (inclusive), conditional
        on its ETag. The answer carries the part's checksum when the upload declared an
        algorithm (S3 and SeaweedFS do; moto does not)."""
        response = await self._call(
            "upload_part_copy", bucket, key, upload_id=upload_id, part_number=number,
            Key=key, UploadId=upload_id, PartNumber=number, CopySource=_copy_source(source),
            CopySourceRange=f"bytes={first}-{last}", CopySourceIfMatch=source.etag,
            **options.every_request(),
        )
        result = response.get("CopyPartResult") or {}
        etag = _required(result, "ETag", "UploadPartCopy", bucket, key)
        return PartReceipt(etag=_quoted(str(etag)),
                           checksum=_response_checksum(result, options.checksum))


def _copy_source(source: CopySource) -> dict[str, str]:
    """botocore's ``CopySource``: it quotes the key into ``x-amz-copy-source`` itself."""
    named = {"Bucket": source.bucket, "Key": source.key}
    if source.version_id is not None:
        named["VersionId"] = source.version_id
    return named


def _quoted(etag: str) -> str:
    """An ETag as HEAD and ListParts give it, in quotes (SeaweedFS answers a copy without)."""
    return etag if etag.startswith('"') else f'"{etag}"'
