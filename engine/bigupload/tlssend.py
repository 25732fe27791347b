"""Request bodies over TLS without asyncio's in-memory TLS: a part (or a single PutObject)
is sent from a worker thread on a blocking ``ssl.SSLSocket``.

asyncio (and uvloop) encrypt into a memory BIO and copy the records out into ``bytes``
before the socket sees them, and aiohttp's fallback writer reads each chunk into a fresh
``bytes``: two copies and a page-sized allocation per chunk that a plain socket does not
need. Here each request reads its file range with ``preadv`` into one buffer that belongs
to the connection (no allocation per chunk), and hands that buffer to ``SSLSocket.sendall``:
OpenSSL encrypts it into its record buffer and the kernel copies the record out, as
urllib3 and the CRT do. The GIL is released in both calls, so parts in flight run on
every core.

What is sent is exactly what botocore (or ``sigv4``, for ``LeanPut``) signed: the same
method, URL and headers; only the transport differs. Answers go back as botocore answers
(``botocore_response``) so botocore parses them, and failures are raised as the botocore
exceptions aiobotocore would raise for the same event (``SSLError`` for a refused
handshake, ``EndpointConnectionError`` when nothing answers, ``ConnectionClosedError`` when
the connection breaks, ``ReadTimeoutError``), so ``client.map_error`` classifies them as it
classifies the aiohttp path's and the retries are unchanged.

Connections: one HTTP/1.1 keep-alive connection per request in flight, pooled per host
and port, at most ``max_idle`` idle ones kept. A pooled connection the server closed
meanwhile is noticed before use (readable while idle) and replaced; a reused connection
that breaks before any answer byte arrived is retried once on a new one.

Trailing checksums (``aws-chunked`` framing, ``STREAMING-UNSIGNED-PAYLOAD-TRAILER``): the
checksum is computed in the same pass that feeds the socket and follows the body; the
chunk framing is written into the buffer around the data, so each chunk is still one
``sendall``. ``Trailer`` describes it; the caller signs the headers (``trailer_headers``).

With ``--max-bandwidth`` (``bandwidth.CURRENT``, read on the event loop when the request
is made and handed to its thread), each ``sendall`` goes out in slices of the bucket's
size, the thread waiting for each slice's tokens (a wait that a cancel cuts short).

Only sockets this module opened are touched; kernel TLS (``TCP_ULP`` "tls", then
``sendfile``) would remove OpenSSL's copy too, but this module does not use it: the kernels
it was built on lack it, and code that cannot be tested here is not shipped."""

from __future__ import annotations

import base64
import collections
import dataclasses
import os
import select
import socket
import ssl
import threading
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import anyio

from . import bandwidth
from .errors import SourceError
from .source import FileRange

CHUNK = 1 << 20  # bytes per preadv + sendall (256 KiB and 4 MiB measured no better)
SEND_BUFFER = 4 << 20  # SO_SNDBUF, as httpbody does for sendfile: fewer wake-ups
HEAD_LIMIT = 64 << 10  # an answer's head larger than this is not an S3 answer
ERROR_BODY_LIMIT = 1 << 20  # error documents are small; more than this is not read
_PREFIX = 16  # room before the data for an aws-chunked size line ("%x\r\n")
_SUFFIX = 2  # and after it for its CRLF


@dataclasses.dataclass(frozen=True)
class Trailer:
    """A trailing checksum: ``name`` is the trailer header (``x-amz-checksum-crc32c``),
    ``width`` the length of its base64 value (so the framed length is known before the
    value), ``new_hasher`` makes a fresh hasher (``update``, ``digest``) for each attempt."""

    name: str
    width: int
    new_hasher: Callable[[], Any]


def framed_length(length: int, trailer_name: str, value_width: int, chunk: int = CHUNK) -> int:
    """The Content-Length of ``length`` bytes sent as aws-chunked with a trailer: each
    chunk ``%x\\r\\n<data>\\r\\n``, then ``0\\r\\n``, ``name:value\\r\\n`` and ``\\r\\n``."""
    total = 0
    left = length
    while left > 0:
        n = min(chunk, left)
        total += len(f"{n:x}") + 2 + n + 2
        left -= n
    return total + 3 + len(trailer_name) + 1 + value_width + 2 + 2


def trailer_headers(length: int, trailer_name: str, value_width: int,
                    content_encoding: str | None = None) -> dict[str, str]:
    """The headers of an aws-chunked body with an unsigned trailer (to be signed)."""
    return {
        "Content-Encoding": (f"{content_encoding},aws-chunked" if content_encoding
                             else "aws-chunked"),
        "Content-Length": str(framed_length(length, trailer_name, value_width)),
        "X-Amz-Decoded-Content-Length": str(length),
        "X-Amz-Trailer": trailer_name,
        "X-Amz-Content-SHA256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    }


@dataclasses.dataclass
class Answer:
    """An HTTP answer: status, headers (lower-case names) and body (error documents; an
    UploadPart or PutObject success has none worth keeping)."""

    status: int
    headers: dict[str, str]
    body: bytes
    keep_alive: bool = True
    sent_checksum: bytes | None = None  # the trailer's raw value, when one was sent


class _Connection:
    """One TLS connection and the buffers that belong to it (used by one thread at a time)."""

    def __init__(self, sock: ssl.SSLSocket, key: tuple[str, int]) -> None:
        self.sock = sock
        self.key = key
        self.buffer: bytearray | None = None
        self.used = False  # has carried a request already (so it may have gone stale)
        self.aborted = False
        self.woken = threading.Event()  # set by abort: a wait for tokens ends at once
        self.bucket: bandwidth.TokenBucket | None = None  # --max-bandwidth, this request's

    def send_buffer(self, size: int) -> memoryview:
        if self.buffer is None or len(self.buffer) < size:
            self.buffer = bytearray(size)
        return memoryview(self.buffer)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def abort(self) -> None:
        """From another thread: make the thread using this connection fail fast."""
        self.aborted = True
        self.woken.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def stale(self) -> bool:
        """An idle connection that is readable was closed by the server (or sent junk).
        ``poll``, not ``select``: a process with many files open has descriptors past
        select's limit of 1024."""
        if self.sock.fileno() < 0:
            return True
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        try:
            return bool(poller.poll(0))
        except OSError:
            return True


class _Call:
    """One request's link between the event loop and its thread: which connection the
    thread is using, and whether the caller gave up on it (cancelled: the thread stops at
    its next socket call or chunk, and closes the connection)."""

    def __init__(self) -> None:
        self.conn: _Connection | None = None
        self.cancelled = False
        self.finished = threading.Event()  # set when the thread is done with the request

    def cancel(self) -> None:
        self.cancelled = True
        if self.conn is not None:
            self.conn.abort()


class _Broken(Exception):
    """The connection failed; ``answered`` says whether any answer byte had arrived."""

    def __init__(self, error: BaseException, *, answered: bool, connecting: bool = False) -> None:
        super().__init__(str(error))
        self.error = error
        self.answered = answered
        self.connecting = connecting


def ssl_context(trust: str | bool) -> ssl.SSLContext:
    """The TLS settings of aiobotocore's own connections for the same ``verify`` value:
    botocore's urllib3-style context, hostname checked and the bundle loaded (``True``:
    botocore's default bundle) when verifying, nothing checked with ``False``."""
    from botocore.httpsession import create_urllib3_context, get_cert_path

    context: ssl.SSLContext = create_urllib3_context()
    if trust:
        context.check_hostname = True
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(get_cert_path(trust), None, None)
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def host_header(url: str) -> str:
    """The Host header botocore signs: the port only when it is not the scheme's default."""
    split = urlsplit(url)
    host = split.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if split.port is not None and split.port != {"http": 80, "https": 443}.get(split.scheme):
        host = f"{host}:{split.port}"
    return host


class TlsSender:
    """Sends requests with file bodies over pooled blocking TLS connections, each request
    in a worker thread. Open one per client; ``close`` closes the idle connections."""

    def __init__(self, trust: str | bool | ssl.SSLContext, *, connect_timeout: float,
                 read_timeout: float, max_idle: int, concurrency: int) -> None:
        self.context = trust if isinstance(trust, ssl.SSLContext) else ssl_context(trust)
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_idle = max_idle
        self._idle: dict[tuple[str, int], collections.deque[_Connection]] = {}
        self._limiter = anyio.CapacityLimiter(max(1, concurrency))
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            idle = [c for q in self._idle.values() for c in q]
            self._idle.clear()
        for conn in idle:
            conn.close()

    # the pool (any thread)

    def _take(self, key: tuple[str, int]) -> _Connection | None:
        while True:
            with self._lock:
                queue = self._idle.get(key)
                conn = queue.pop() if queue else None
            if conn is None or not conn.stale():
                return conn
            conn.close()

    def _give_back(self, conn: _Connection) -> None:
        with self._lock:
            queue = self._idle.setdefault(conn.key, collections.deque())
            if sum(len(q) for q in self._idle.values()) < self.max_idle:
                queue.append(conn)
                return
        conn.close()

    def _connect(self, key: tuple[str, int], server_hostname: str) -> _Connection:
        try:
            raw = socket.create_connection(key, timeout=self.connect_timeout)
        except OSError as exc:
            raise _Broken(exc, answered=False, connecting=True) from exc
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                if raw.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) < SEND_BUFFER:
                    raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
            except OSError:
                pass
            sock = self.context.wrap_socket(raw, server_hostname=server_hostname)
        except ssl.SSLError:
            raw.close()
            raise  # a handshake refused: botocore's SSLError, by the caller
        except OSError as exc:
            raw.close()
            raise _Broken(exc, answered=False, connecting=True) from exc
        sock.settimeout(self.read_timeout)
        return _Connection(sock, key)

    # a request (worker thread)

    def _exchange(self, call: _Call, key: tuple[str, int], server_hostname: str, head: bytes,
                  body: FileRange | None, trailer: Trailer | None, method: str,
                  bucket: bandwidth.TokenBucket | None = None) -> Answer:
        """Send one request and read its answer, on a pooled connection or a new one; a
        reused connection that fails before answering is replaced once."""
        try:
            return self._attempts(call, key, server_hostname, head, body, trailer, method,
                                  bucket)
        finally:
            call.finished.set()

    def _attempts(self, call: _Call, key: tuple[str, int], server_hostname: str, head: bytes,
                  body: FileRange | None, trailer: Trailer | None, method: str,
                  bucket: bandwidth.TokenBucket | None = None) -> Answer:
        for attempt in (0, 1):
            conn = self._take(key) if attempt == 0 else None
            if conn is None:
                conn = self._connect(key, server_hostname)
            call.conn = conn
            if call.cancelled:  # given up while this thread was connecting
                conn.abort()
            reused = conn.used
            conn.used = True
            conn.bucket = bucket
            try:
                return _request(conn, head, body, trailer, method)
            except _Broken as broken:
                conn.close()
                if conn.aborted or broken.answered or not reused or attempt:
                    raise
            except BaseException:
                conn.close()
                raise
        raise AssertionError("unreachable")

    async def _in_thread(self, call: _Call, *args: Any) -> Answer:
        """``_exchange`` in a worker thread. Cancelling the caller shuts the connection
        down, so the thread fails at its next socket call; it is waited for, never left
        running (it reads from the caller's file descriptor, which the caller may close)."""
        try:
            answer: Answer = await anyio.to_thread.run_sync(
                self._exchange, call, *args, limiter=self._limiter, abandon_on_cancel=True)
            return answer
        except anyio.get_cancelled_exc_class():
            call.cancel()
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(call.finished.wait)
            if call.conn is not None:
                call.conn.close()  # the thread may have finished before it saw the cancel
            raise

    async def exchange(self, method: str, url: str, headers: Mapping[str, Any],
                       body: FileRange | None, trailer: Trailer | None = None) -> Answer:
        """Send ``method url`` with ``headers`` (as signed) and ``body``; the answer.
        Raises botocore's exceptions for network failures, SourceError when the file
        shrank under the request."""
        import botocore.exceptions as bce

        split = urlsplit(url)
        host = split.hostname or ""
        key = (host, split.port or 443)
        target = split.path or "/"
        if split.query:
            target += "?" + split.query
        head = _request_head(method, target, host_header(url), headers,
                             body.length if body is not None else 0)
        call = _Call()
        try:
            answer = await self._in_thread(call, key, host, head, body, trailer, method,
                                           bandwidth.CURRENT.get())
        except _Broken as broken:
            raise _botocore_error(broken, url) from broken.error
        except ssl.SSLError as exc:  # the handshake: untrusted certificate, no common cipher
            raise bce.SSLError(endpoint_url=url, error=exc) from exc
        conn = call.conn
        assert conn is not None
        if answer.keep_alive:
            self._give_back(conn)
        else:
            conn.close()
        return answer


def _request_head(method: str, target: str, host: str, headers: Mapping[str, Any],
                  length: int) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    for name, value in headers.items():
        lower = name.lower()
        if lower in ("host", "expect", "transfer-encoding", "connection"):
            continue  # ours to set; none of them is signed (botocore's SIGNED_HEADERS_BLACKLIST)
        text = value.decode() if isinstance(value, bytes) else str(value)
        if any(c in name or c in text for c in "\r\n\0"):
            raise ValueError(f"invalid character in the value of header {name!r}")  # as aiohttp
        lines.append(f"{name}: {text}")
    if not any(n.lower() == "content-length" for n in headers):
        lines.append(f"Content-Length: {length}")  # unsigned (LeanPut), as aiohttp adds it
    if not any(n.lower() == "user-agent" for n in headers):
        lines.append("User-Agent: bigupload/0.1")
    lines.append("Accept-Encoding: identity")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def _request(conn: _Connection, head: bytes, body: FileRange | None, trailer: Trailer | None,
             method: str) -> Answer:
    sock = conn.sock
    checksum: bytes | None = None
    try:
        sock.sendall(head)
        if body is not None and body.length:
            checksum = _send_body(conn, body, trailer)
    except SourceError:
        raise
    except (OSError, ssl.SSLError) as exc:
        if conn.aborted or isinstance(exc, TimeoutError):
            raise _Broken(exc, answered=False) from exc
        # the server may have answered before the body ended (a refusal) and closed: the
        # answer, if it is in the receive buffer, says why better than the broken pipe
        try:
            answer = _read_answer(sock, method)
        except _Broken:
            raise _Broken(exc, answered=False) from exc
        answer.keep_alive = False
        return answer
    answer = _read_answer(sock, method)
    answer.sent_checksum = checksum
    return answer


def _send_body(conn: _Connection, body: FileRange, trailer: Trailer | None) -> bytes | None:
    """Send the range (framed as aws-chunked with ``trailer``); the trailer's raw value."""
    hasher = trailer.new_hasher() if trailer is not None else None
    view = conn.send_buffer(_PREFIX + min(CHUNK, body.length) + _SUFFIX)
    sock = conn.sock
    done = 0
    while done < body.length:
        want = min(CHUNK, body.length - done)
        got = 0
        while got < want:  # a chunk is filled completely: framed lengths were announced
            try:
                n = os.preadv(body.fd, [view[_PREFIX + got:_PREFIX + want]],
                              body.offset + done + got)
            except OSError as exc:
                raise SourceError(f"{body.path}: read failed: {exc.strerror}") from exc
            if n == 0:
                raise SourceError(f"{body.path}: file shrank during the upload "
                                  f"(read {done + got} of {body.length} bytes of a request)")
            got += n
        data = view[_PREFIX:_PREFIX + want]
        if hasher is not None:
            hasher.update(data)
            size = b"%x\r\n" % want
            start = _PREFIX - len(size)
            view[start:_PREFIX] = size
            view[_PREFIX + want:_PREFIX + want + 2] = b"\r\n"
            _send(conn, view[start:_PREFIX + want + 2])
        else:
            _send(conn, data)
        done += want
        if conn.aborted:
            raise ConnectionAbortedError("request cancelled")
    if hasher is None:
        return None
    assert trailer is not None
    raw: bytes = hasher.digest()
    value = base64.b64encode(raw).decode()
    sock.sendall(f"0\r\n{trailer.name}:{value}\r\n\r\n".encode())
    return raw


def _send(conn: _Connection, data: memoryview) -> None:
    """``sendall``, under --max-bandwidth a slice at a time after its tokens."""
    bucket = conn.bucket
    if bucket is None:
        conn.sock.sendall(data)
        return
    for start in range(0, len(data), bucket.slice):
        piece = data[start:start + bucket.slice]
        if not bucket.take_blocking(len(piece), conn.woken) or conn.aborted:
            raise ConnectionAbortedError("request cancelled")
        conn.sock.sendall(piece)


def _read_answer(sock: ssl.SSLSocket, method: str) -> Answer:
    """Status line, headers and body (Content-Length or chunked framing; none for HEAD,
    1xx, 204 and 304). Interim 100 Continue answers are skipped."""
    pending = bytearray()
    answered = False
    try:
        while True:
            while (end := pending.find(b"\r\n\r\n")) < 0:
                if len(pending) > HEAD_LIMIT:
                    raise ConnectionError("the answer's head is too large")
                data = sock.recv(65536)
                if not data:
                    raise ConnectionError("the server closed the connection without answering"
                                          if not pending else "the answer's head was cut short")
                answered = True
                pending += data
            lines = bytes(pending[:end]).decode("latin-1").split("\r\n")
            del pending[:end + 4]
            parts = lines[0].split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
                raise ConnectionError(f"not an HTTP answer: {lines[0][:80]!r}")
            status = int(parts[1])
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                value = value.strip()
                headers[name] = f"{headers[name]}, {value}" if name in headers else value
            if 100 <= status < 200:
                continue
            break
        keep = parts[0] == "HTTP/1.1" and "close" not in headers.get("connection", "").lower()
        if method == "HEAD" or status in (204, 304):
            return Answer(status, headers, b"", keep)
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = _read_chunked(sock, pending)
        elif "content-length" in headers:
            length = int(headers["content-length"])
            if length > ERROR_BODY_LIMIT:
                raise ConnectionError(f"an answer of {length} bytes to an upload")
            while len(pending) < length:
                data = sock.recv(max(65536, length - len(pending)))
                if not data:
                    raise ConnectionError("the answer's body was cut short")
                pending += data
            body = bytes(pending[:length])
            keep = keep and len(pending) == length
        else:  # read to the end of the connection
            while len(pending) <= ERROR_BODY_LIMIT and (data := sock.recv(65536)):
                pending += data
            body, keep = bytes(pending), False
        return Answer(status, headers, body, keep)
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise _Broken(exc, answered=answered) from exc


def _read_chunked(sock: ssl.SSLSocket, pending: bytearray) -> bytes:
    body = bytearray()

    def line() -> bytes:
        while (end := pending.find(b"\r\n")) < 0:
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("the answer's chunked body was cut short")
            pending.extend(data)
        text = bytes(pending[:end])
        del pending[:end + 2]
        return text

    while True:
        size = int(line().split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while line():  # trailers, up to an empty line
                pass
            return bytes(body)
        while len(pending) < size + 2:
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("the answer's chunked body was cut short")
            pending.extend(data)
        body += pending[:size]
        del pending[:size + 2]
        if len(body) > ERROR_BODY_LIMIT:
            raise ConnectionError("an answer too large for an upload")


def _botocore_error(broken: _Broken, url: str) -> Any:
    """The exception aiobotocore raises for the same failure (see ``AIOHTTPSession.send``)."""
    import botocore.exceptions as bce

    error = broken.error
    if isinstance(error, TimeoutError) or isinstance(error, socket.timeout):
        if broken.connecting:
            return bce.ConnectTimeoutError(endpoint_url=url, error=error)
        return bce.ReadTimeoutError(endpoint_url=url, error=error)
    if broken.connecting:
        return bce.EndpointConnectionError(endpoint_url=url, error=error)
    request = type("Request", (), {"url": url})()
    return bce.ConnectionClosedError(endpoint_url=url, error=error, request=request)


# botocore

class _Raw:
    """What ``AioAWSResponse`` reads its content from."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    async def read(self) -> bytes:
        return self._body


def botocore_response(url: str, answer: Answer) -> Any:
    """``answer`` as aiobotocore's response type, for botocore to parse."""
    from aiobotocore.awsrequest import AioAWSResponse

    response = AioAWSResponse(url, answer.status, answer.headers, _Raw(answer.body))
    response._content = answer.body
    return response


def sends(request: Any) -> bool:
    """Whether a botocore request is one this module sends: a file range over https."""
    return isinstance(request.body, FileRange) and str(request.url).startswith("https://")


def enabled() -> bool:
    """``BIGUPLOAD_TLS_SEND=0`` turns this path off (bodies then go through aiohttp)."""
    return os.environ.get("BIGUPLOAD_TLS_SEND", "1") != "0"
