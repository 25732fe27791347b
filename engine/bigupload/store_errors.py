"""How a failed request becomes one of our errors: ``map_error`` takes what botocore,
aiohttp, ``ssl`` or the OS raised (``http_error`` an S3 error answer LeanPut read itself)
and gives classify.py's table the answer's code and HTTP status, or ``NO_ANSWER``; the
messages name what to check (the option behind a timeout, the CA bundle behind a refused
certificate, ``http://`` for an endpoint that does not speak TLS, a web server that is not
an S3 API). Exceptions it does not know are re-raised unchanged: a bug is never disguised
as the store refusing the request."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from .classify import NO_ANSWER
from .errors import BigUploadError, ConfigError, NotFoundError, StoreError, store_error

CERTIFICATE_HINT = ("check AWS_CA_BUNDLE or the server's certificate "
                    "(--no-verify-ssl skips the check, unsafe)")


def map_error(exc: BaseException, operation: str, bucket: str, key: str = "",
              upload_id: str | None = None, part_number: int | None = None, *,
              timeouts: tuple[float, float] | None = None) -> BigUploadError:
    """Translate a botocore/aiohttp/OS exception into our error tree: the adapter that
    gives classify.py's table an answer's code and HTTP status (``NO_ANSWER`` for a failure
    without one). Only the exception types known to come from the store or the network
    are mapped; anything else (a TypeError, an AttributeError: a bug) is re-raised
    unchanged, never disguised as the store refusing the request (httpx's
    ``map_httpcore_exceptions`` does the same). A timeout names the option that set it,
    with its value when ``timeouts`` (connect, read, in seconds) is given."""
    import botocore.exceptions as bce

    where = _where(operation, bucket, key, part_number)
    ctx: dict[str, Any] = dict(operation=operation, bucket=bucket, key=key,
                               upload_id=upload_id, part_number=part_number)
    if isinstance(exc, bce.ClientError):
        err = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        status = status if isinstance(status, int) else None
        return _answer_error(str(err.get("Code") or status or ""), status,
                             str(err.get("Message") or ""), where, ctx)
    if isinstance(exc, (bce.NoCredentialsError, bce.PartialCredentialsError)):
        return store_error(f"{where}: no AWS credentials found (set AWS_ACCESS_KEY_ID/"
                           "AWS_SECRET_ACCESS_KEY, a profile, or an instance role)",
                           code="NoCredentials", **ctx)
    if isinstance(exc, bce.ProfileNotFound):  # a setting, not the store's answer: exit 2
        return ConfigError(f"AWS profile {exc.kwargs.get('profile')!r} not found in the AWS "
                           "config or credentials files (check --profile or AWS_PROFILE)")
    if (failure := _certificate_failure(exc)) is not None:
        # DESIGN.md: TLS trust is an authentication problem (exit 4), and no retry helps
        return store_error(f"{where}: TLS certificate verification failed for {_origin(exc)}: "
                           f"{failure.verify_message or failure.reason}; {CERTIFICATE_HINT}",
                           code="CertificateVerifyFailed", **ctx)
    if _plain_http_answer(exc):  # https:// to a plain-http port: a setting, exit 2
        origin = _origin(exc)
        error = ConfigError(f"{where}: {origin} does not speak TLS (it answered the TLS "
                            f"handshake in plain text); for plain http use --endpoint-url "
                            f"http://{origin.partition('://')[2] or 'HOST:PORT'}")
        error.fatal_for_job = True
        return error
    if isinstance(exc, bce.SSLError):
        return store_error(f"{where}: TLS error: {exc}", code="SSLError", **ctx)
    if (which := _timeout(exc)) is not None:
        return store_error(f"{where}: {timed_out(which, timeouts)}", code=type(exc).__name__,
                           status=NO_ANSWER, **ctx)
    if isinstance(exc, bce.EndpointConnectionError):
        return store_error(f"{where}: cannot connect to the endpoint: {exc}",
                           code="ConnectionError", status=NO_ANSWER, **ctx)
    import aiohttp  # raised as is by LeanPut, which talks to aiohttp without botocore

    if isinstance(exc, (bce.ConnectionError, bce.HTTPClientError, bce.ReadTimeoutError,
                        bce.ConnectTimeoutError, asyncio.TimeoutError, ConnectionError, OSError,
                        aiohttp.ClientError)):
        return store_error(f"{where}: network error: {exc or type(exc).__name__}",
                           code=type(exc).__name__, status=NO_ANSWER, **ctx)
    from botocore.parsers import ResponseParserError

    if isinstance(exc, ResponseParserError):
        return store_error(f"{where}: malformed response: {exc}", code="MalformedResponse", **ctx)
    if isinstance(exc, (bce.ParamValidationError, bce.BotoCoreError)):
        return store_error(f"{where}: {exc}", code=type(exc).__name__, **ctx)
    raise exc


def _timeout(exc: BaseException) -> str | None:
    """Which of our timeouts ran out behind ``exc``: "connect", "read" or None. botocore
    raises ConnectTimeoutError and ReadTimeoutError (aiobotocore and tlssend alike);
    LeanPut meets aiohttp's own, an ``asyncio.TimeoutError`` whose text says which."""
    import botocore.exceptions as bce

    if isinstance(exc, bce.ConnectTimeoutError):
        return "connect"
    if isinstance(exc, bce.ReadTimeoutError):
        return "read"
    if isinstance(exc, TimeoutError):  # asyncio's, aiohttp's and socket's, on 3.11
        return "connect" if str(exc).lower().startswith("connect") else "read"
    return None


def timed_out(which: str, timeouts: tuple[float, float] | None) -> str:
    """``timed out after 2 s (--read-timeout)``: a timeout told with the option that sets it."""
    connect = which == "connect"
    option = "--connect-timeout" if connect else "--read-timeout"
    if timeouts is None:
        return f"timed out ({option})"
    seconds = timeouts[0] if connect else timeouts[1]
    what = "connecting " if connect else ""
    return f"timed out {what}after {seconds:g} s ({option})"


def _where(operation: str, bucket: str, key: str, part_number: int | None = None) -> str:
    where = f"{operation} s3://{bucket}/{key}" if bucket else operation or "S3 client"
    return f"{where} part {part_number}" if part_number else where


def _answer_error(code: str, status: int | None, message: str, where: str,
                  ctx: dict[str, Any]) -> StoreError:
    """Our error for an S3 error answer (``<Error><Code>``, or a bodiless status), from
    either HTTP stack; its class and meaning come from the classification table."""
    text = f"{where}: {code}: {message or code}"
    error = store_error(text, code=code, status=status, **ctx)
    if error.upload_gone and "aborted" not in message.lower():
        error.args = (text + " (the upload was aborted or completed)",)
    if (isinstance(error, NotFoundError) and code == str(status) == "404"
            and not error.object_missing):
        # S3 answers every 404 with a body naming the error (HEAD, which has no body,
        # excepted): a bare 404 comes from a server that is not an S3 API
        error.args = (f"{where}: HTTP 404 without an S3 error code: the endpoint does not look "
                      "like an S3 API (check --endpoint-url)",)
    return error


def _wrapped(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception behind it, each once: botocore wraps aiohttp's error,
    which wraps the ``ssl`` or ``OSError`` one, as cause, context or attribute (aiohttp's
    ``certificate_error`` and ``os_error``, botocore's ``kwargs['error']``)."""
    seen: set[int] = set()
    pending: list[Any] = [exc]
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        kwargs = getattr(current, "kwargs", None)
        pending += [current.__cause__, current.__context__,
                    getattr(current, "certificate_error", None),
                    getattr(current, "os_error", None),
                    kwargs.get("error") if isinstance(kwargs, dict) else None]


def _certificate_failure(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate check that failed behind ``exc``, if that is what it is (aiohttp's
    own error is an ``ssl`` subclass that wraps it: the wrapped one is taken)."""
    for current in _wrapped(exc):
        if isinstance(current, ssl.SSLCertVerificationError) and getattr(
                current, "certificate_error", None) is None:
            return current
    return None


# what OpenSSL says when the answer to its ClientHello is not a TLS record at all (a plain
# HTTP server's "HTTP/1.1 400 ..."): 1.1 and 3.0 name the version, 3.2+ the record layer
_NOT_TLS = frozenset({"WRONG_VERSION_NUMBER", "PACKET_LENGTH_TOO_LONG", "RECORD_LAYER_FAILURE",
                      "UNKNOWN_PROTOCOL", "HTTP_REQUEST"})


def _plain_http_answer(exc: BaseException) -> bool:
    """Whether a TLS handshake behind ``exc`` failed on an answer that is not TLS."""
    return any(isinstance(current, ssl.SSLError) and getattr(current, "reason", None) in _NOT_TLS
               for current in _wrapped(exc))


def _origin(exc: BaseException) -> str:
    """scheme://host:port of the endpoint whose certificate was refused."""
    kwargs = getattr(exc, "kwargs", None)
    url = kwargs.get("endpoint_url") if isinstance(kwargs, dict) else None
    if url:
        split = urlsplit(str(url))
        return f"{split.scheme}://{split.netloc}"
    host, port = getattr(exc, "host", None), getattr(exc, "port", None)
    return f"https://{host}:{port}" if host else "the endpoint"


def our_error(exc: BaseException, handled: BaseException | None) -> BigUploadError | None:
    """Our own error, when aiohttp wrapped one raised by the body writer (``httpbody``).
    ``handled`` is the exception already being handled when the request began: a request
    sent from an ``except`` block carries it as context, and it is no part of this request's
    failure (a handled NoSuchUpload must not come back when the next request fails)."""
    seen: set[int] = set() if handled is None else {id(handled)}
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, BigUploadError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def http_error(status: int, content: bytes, operation: str, bucket: str, key: str) -> StoreError:
    """Our error for an S3 error answer (``<Error><Code>…``) that LeanPut received, read as
    botocore reads one (a body without a code: the status is the code)."""
    import re

    text = content.decode("utf-8", "replace")
    code = re.search(r"<Code>([^<]*)</Code>", text)
    message = re.search(r"<Message>([^<]*)</Message>", text)
    ctx: dict[str, Any] = dict(operation=operation, bucket=bucket, key=key)
    return _answer_error(code.group(1) if code else str(status), status,
                         message.group(1) if message else "", _where(operation, bucket, key), ctx)
