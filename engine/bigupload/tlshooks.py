"""botocore's side of the HTTPS send path (``tlssend``): which client gets a sender, the
hooks that hand UploadPart and PutObject bodies to it (``before-send``) and turn an
UploadPart into the trailing-checksum form before botocore signs it (``before-sign``),
and whether an endpoint takes trailing checksums (``Trailers``).

A call that wants a trailing checksum sets ``TRAILER_CALL`` (a context variable: each
botocore call runs in its own task, so concurrent parts never see each other's) around
its botocore call; the hooks read it, and the sender leaves the checksum it computed over
the bytes it sent in it. ``AioS3Store.upload_part`` decides the form and falls back."""

from __future__ import annotations

import contextvars
import logging
import os
import ssl
from typing import Any

from .config import ChecksumAlgorithm, UploadConfig
from .errors import SourceError
from .source import FileRange

log = logging.getLogger("bigupload")


def sender_for(config: UploadConfig, tls: ssl.SSLContext | bool, endpoint: str) -> Any:
    """The ``tlssend.TlsSender`` for an https endpoint (None: bodies go through aiohttp):
    off with ``BIGUPLOAD_TLS_SEND=0``, and when a proxy is configured for the endpoint
    (aiohttp then tunnels through it; this path does not)."""
    if not endpoint.startswith("https://"):
        return None
    from . import tlssend

    if not tlssend.enabled():
        return None
    from botocore.utils import get_environ_proxies

    if get_environ_proxies(endpoint):
        return None
    if not isinstance(tls, ssl.SSLContext):
        return None
    return tlssend.TlsSender(tls, connect_timeout=config.connect_timeout_s,
                             read_timeout=config.read_timeout_s, max_idle=config.concurrency + 2,
                             concurrency=config.concurrency + 2)


def send_handler(sender: Any) -> Any:
    """botocore's before-send hook: an UploadPart or PutObject with a file body over https
    is sent by ``sender``; its answer goes back to botocore, which parses it as its own.
    An UploadPart signed for a trailing checksum (``sign_trailer``) is framed as such."""
    from . import tlssend

    async def send(request: Any, **kwargs: Any) -> Any:
        if not tlssend.sends(request):
            return None
        headers = request.headers
        trailer = None
        call = TRAILER_CALL.get()
        if call is not None and call.signed:
            trailer = call.trailer()
            headers = dict(headers.items())
            for name in [n for n in headers if n.lower() == "content-length"]:
                del headers[name]
            headers["Content-Length"] = str(tlssend.framed_length(
                len(request.body), trailer.name, trailer.width))
        answer = await sender.exchange(request.method, str(request.url), headers,
                                       request.body, trailer)
        if call is not None and call.signed:
            call.sent = answer.sent_checksum
        return tlssend.botocore_response(str(request.url), answer)

    return send


class Trailers:
    """Whether an endpoint takes trailing checksums on UploadPart (``aws-chunked`` bodies,
    ``STREAMING-UNSIGNED-PAYLOAD-TRAILER``): unknown (None) until the first answer, True
    once an answer echoed the checksum that followed a body, False after a refusal or an
    answer that did not echo it (the checksum then goes as a header, as before). S3,
    SeaweedFS and the null sink echo it."""

    ALGORITHMS = frozenset({ChecksumAlgorithm.CRC32C, ChecksumAlgorithm.CRC32,
                            ChecksumAlgorithm.CRC64NVME, ChecksumAlgorithm.SHA256})

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.state: bool | None = None

    def usable(self, algorithm: ChecksumAlgorithm) -> bool:
        return algorithm in self.ALGORITHMS

    def accepted(self) -> None:
        self.state = True

    def refused(self, exc: BaseException | None) -> None:
        if self.state is None:
            why = f"refused ({exc})" if exc else "not echoed"
            log.info("%s: trailing checksums %s: sending them as headers", self.endpoint, why)
        self.state = False


class TrailerCall:
    """One UploadPart sent with a trailing checksum: set around the botocore call, read by
    its before-sign and before-send hooks (each call runs in its own task and context)."""

    def __init__(self, algorithm: ChecksumAlgorithm) -> None:
        self.algorithm = algorithm
        self.signed = False
        self.sent: bytes | None = None

    @property
    def name(self) -> str:
        return f"x-amz-checksum-{self.algorithm.value}"

    def width(self) -> int:
        from . import checksum as ck

        return len(ck.encode(ck.Hasher(self.algorithm).digest()))

    def trailer(self) -> Any:
        from . import checksum as ck
        from . import tlssend

        algorithm = self.algorithm
        return tlssend.Trailer(self.name, self.width(), lambda: ck.Hasher(algorithm))


TRAILER_CALL: contextvars.ContextVar[TrailerCall | None] = contextvars.ContextVar(
    "bigupload_trailer_call", default=None)


def sign_trailer(request: Any, **kwargs: Any) -> None:
    """botocore's before-sign hook for UploadPart: turn the request into the trailing
    checksum form before it is signed (the framing headers are signed; the payload hash
    is STREAMING-UNSIGNED-PAYLOAD-TRAILER, which botocore's signer picks from the context)."""
    from . import tlssend

    call = TRAILER_CALL.get()
    if call is None or not tlssend.sends(request):
        return
    headers = request.headers
    for name, value in tlssend.trailer_headers(len(request.body), call.name, call.width(),
                                               headers.get("Content-Encoding")).items():
        if name not in ("Content-Length", "X-Amz-Content-SHA256"):
            if name in headers:
                del headers[name]
            headers[name] = value
    request.context["checksum"] = {"request_algorithm": {
        "in": "trailer", "algorithm": call.algorithm.value, "name": call.name}}
    call.signed = True


def range_checksum(body: Any, algorithm: ChecksumAlgorithm) -> bytes:
    """The checksum of a request body (a ``FileRange`` or bytes), read as ``SourceFile.scan``
    reads. Blocking: run in a thread."""
    from . import checksum as ck

    hasher = ck.Hasher(algorithm)
    if not isinstance(body, FileRange):
        hasher.update(body)
        return hasher.digest()
    buffer = memoryview(bytearray(min(1 << 20, max(1, body.length))))
    done = 0
    while done < body.length:
        want = min(len(buffer), body.length - done)
        n = os.preadv(body.fd, [buffer[:want]], body.offset + done)
        if n == 0:
            raise SourceError(f"{body.path}: file shrank during the upload")
        hasher.update(buffer[:n])
        done += n
    return hasher.digest()
