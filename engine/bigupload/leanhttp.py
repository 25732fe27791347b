"""A minimal HTTP/1.1 client for ``LeanPut``'s PutObject requests: keep-alive connections
over asyncio protocols, one request at a time on each, the request written as signed.

Why not aiohttp: against the null sink a small PUT costs about 190 µs of CPU through an
aiohttp session and about 60 µs here, and a session that trusts the environment
(``trust_env``) re-reads ``~/.netrc`` and the proxy variables on every request, another
330 µs (bench/NOTES.md, "Batch of small files"). Here the proxy variables are read once
per origin; an origin that goes through a proxy is sent by an aiohttp session (made on
first use, told the proxy explicitly), as before.

What it keeps of a client: a connect timeout and a read timeout (between two reads of
the answer), both ``TimeoutError`` naming which ran out (``client.map_error`` reads the
name); connection failures as ``ConnectError`` (a certificate refused is its cause, as
aiohttp wraps it); the answer framed by Content-Length, chunked, or the connection's end;
a connection used again only after a complete answer that allows it, and never after a
failure or a cancellation (it is aborted: the server stops waiting for the body).
Bodies: ``bytes`` (small files read inline), or a ``FileRange`` sent by sendfile(2) on
plain TCP (``httpbody``), or read in chunks in a thread over TLS. ``--max-bandwidth``
(``bandwidth.CURRENT``) is taken in slices before each is written."""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import anyio

from . import bandwidth
from .errors import SourceError
from .source import FileRange

IDLE_PER_ORIGIN = 64  # connections kept open between requests, per origin
CHUNK = 1 << 20  # a file range's read size where sendfile cannot be used (TLS)


class ConnectError(ConnectionError):
    """No connection could be made to ``host``:``port`` (the cause says why)."""

    def __init__(self, host: str, port: int, reason: BaseException) -> None:
        super().__init__(f"cannot connect to {host}:{port}: {reason or type(reason).__name__}")
        self.host = host
        self.port = port


class ConnectTimeoutError(TimeoutError):
    """The connection was not made within the connect timeout."""


class Answer:
    """An HTTP answer: status, headers (lower-case names), body."""

    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    async def read(self) -> bytes:
        return self.body


class _Connection(asyncio.Protocol):
    """One connection: reads and frames one answer at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop, read_timeout: float) -> None:
        self._loop = loop
        self._read_timeout = read_timeout
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reusable = False
        self._buffer = bytearray()
        self._waiter: asyncio.Future[Answer] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._heard = 0.0  # loop time of the last read: the read timeout runs from it
        self._drained: asyncio.Future[None] | None = None
        self._paused = False
        self._head: tuple[int, dict[str, str], bool] | None = None  # status, headers, keep-alive

    # asyncio's side

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            self.closed = True  # nothing was asked: a server that talks out of turn
            if self.transport is not None:
                self.transport.abort()
            return
        self._buffer += data
        self._heard = self._loop.time()
        try:
            self._parse(eof=False)
        except ValueError as exc:
            self._fail(ConnectionError(f"malformed HTTP answer: {exc}"))

    def eof_received(self) -> bool:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            try:
                self._parse(eof=True)
            except ValueError as exc:
                self._fail(ConnectionError(f"malformed HTTP answer: {exc}"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(exc or ConnectionResetError("the server closed the connection"))
        if self._drained is not None and not self._drained.done():
            self._drained.set_exception(exc or ConnectionResetError("connection lost"))
            self._drained.exception()  # as in _fail: its writer may be gone

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    # the request's side

    def expect(self) -> asyncio.Future[Answer]:
        self._buffer.clear()
        self._head = None
        self.reusable = False
        self._waiter = self._loop.create_future()
        return self._waiter

    def start_reading(self) -> None:
        """The request is written: the read timeout runs from here (one timer per
        request, moved on when it fires early, not re-made for every read). An answer
        that came before the body was all written (a refusal) needs none."""
        if self._waiter is None or self._waiter.done():
            return
        self._heard = self._loop.time()
        self._timer = self._loop.call_at(self._heard + self._read_timeout, self._timed_out)

    async def drain(self) -> None:
        if self.closed:
            raise ConnectionResetError("connection lost while sending")
        if self._paused:
            self._drained = self._loop.create_future()
            await self._drained

    def done(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self) -> None:
        self._timer = None
        if self._waiter is None or self._waiter.done():
            return  # answered meanwhile: nothing to time out (the connection may be reused)
        if (due := self._heard + self._read_timeout) > self._loop.time():
            self._timer = self._loop.call_at(due, self._timed_out)  # heard since: wait on
            return
        self._fail(TimeoutError(f"read timed out after {self._read_timeout:g} s"))
        if self.transport is not None:
            self.transport.abort()

    def _fail(self, exc: BaseException) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)
            # a request stopped while writing its body (an error, Ctrl-C) never awaits its
            # answer: marked as seen, or asyncio logs "Future exception was never retrieved"
            self._waiter.exception()
        self.done()

    def _parse(self, *, eof: bool) -> None:
        buffer = self._buffer
        while self._head is None:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if eof:
                    raise ValueError("the connection ended before the answer's head")
                return
            lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
            del buffer[:end + 4]
            version, _, rest = lines[0].partition(" ")
            if not version.startswith("HTTP/1."):
                raise ValueError(f"status line {lines[0][:60]!r}")
            status = int(rest[:3])
            if 100 <= status < 200:
                continue  # 100 Continue and its kin: the answer follows
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
            self._head = (status, headers, keep)
        status, headers, keep = self._head
        body: bytes | None
        if status in (204, 304):
            body = b""
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            body = _dechunk(buffer)
        elif (length := headers.get("content-length")) is not None:
            size = int(length)
            body = bytes(buffer[:size]) if len(buffer) >= size else None
            if body is not None:
                del buffer[:size]
        else:
            keep = False
            body = bytes(buffer) if eof else None
        if body is None:
            if eof:
                raise ValueError("the connection ended inside the answer's body")
            return
        self.reusable = keep and not buffer and not eof
        assert self._waiter is not None
        self.done()
        self._waiter.set_result(Answer(status, headers, body))


def _dechunk(buffer: bytearray) -> bytes | None:
    """The whole body of a chunked answer once all of it is in ``buffer`` (which is then
    emptied of it), else None."""
    out = bytearray()
    position = 0
    while True:
        end = buffer.find(b"\r\n", position)
        if end < 0:
            return None
        size = int(bytes(buffer[position:end]).split(b";")[0], 16)
        start = end + 2
        if size == 0:
            trailer_end = buffer.find(b"\r\n\r\n", end)
            if trailer_end < 0:
                return None
            del buffer[:trailer_end + 4]
            return bytes(out)
        if len(buffer) < start + size + 2:
            return None
        out += buffer[start:start + size]
        position = start + size + 2


class Client:
    """Keep-alive connections per origin; ``put`` sends one request and reads its answer.
    ``tls``: the SSL context for https origins (False: no https)."""

    def __init__(self, *, connect_timeout: float, read_timeout: float,
                 tls: ssl.SSLContext | bool, user_agent: str) -> None:
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._tls = tls
        self._user_agent = user_agent
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._proxies: dict[str, Any] = {}  # origin -> (proxy, auth) or None
        self._proxied: Any = None  # aiohttp session for origins behind a proxy

    async def aclose(self) -> None:
        for connections in self._idle.values():
            for connection in connections:
                if connection.transport is not None:
                    connection.transport.close()
        self._idle.clear()
        if self._proxied is not None:
            await self._proxied.close()

    @contextlib.asynccontextmanager
    async def put(self, url: str, *, data: bytes | FileRange,
                  headers: Mapping[str, str]) -> AsyncIterator[Answer]:
        """PUT ``url`` (sent exactly as given: already quoted) with ``headers`` and ``data``."""
        split = urlsplit(url)
        origin = f"{split.scheme}://{split.netloc}"
        proxy = self._proxy(origin)
        if proxy is not None:
            async with self._through_proxy(url, data, headers, proxy) as answer:
                yield answer
            return
        yield await self._send(split.scheme, split.hostname or "", split.port, split.netloc,
                               url[len(origin):] or "/", data, headers)

    async def _send(self, scheme: str, host: str, port: int | None, netloc: str, target: str,
                    data: bytes | FileRange, headers: Mapping[str, str]) -> Answer:
        https = scheme == "https"
        key = (scheme, host, port or (443 if https else 80))
        connection = self._take(key)
        if connection is None:
            connection = await self._connect(key, https)
        length = len(data)
        lines = [f"PUT {target} HTTP/1.1\r\nHost: {netloc}\r\nUser-Agent: {self._user_agent}\r\n"
                 f"Content-Length: {length}\r\n"]
        for name, value in headers.items():
            if "\n" in value or "\r" in value or "\n" in name or "\r" in name:
                raise ValueError(f"newline in the HTTP header {name!r}")
            lines.append(f"{name}: {value}\r\n")
        lines.append("\r\n")
        head = "".join(lines).encode("latin-1")
        transport = connection.transport
        assert transport is not None
        answer = connection.expect()
        try:
            bucket = bandwidth.CURRENT.get()
            if isinstance(data, bytes) and bucket is None:
                transport.write(head + data if length <= 1 << 16 else head)
                if length > 1 << 16:
                    transport.write(data)
            else:
                transport.write(head)
                await _write_body(connection, transport, data, bucket)
            connection.start_reading()
            result = await answer
        except BaseException:
            connection.closed = True
            connection.done()
            transport.abort()
            raise
        if connection.reusable and not connection.closed:
            self._give_back(key, connection)
        else:
            transport.close()
        return result

    def _take(self, key: tuple[str, str, int]) -> _Connection | None:
        idle = self._idle.get(key)
        while idle:
            connection = idle.pop()
            if not connection.closed:
                return connection
        return None

    def _give_back(self, key: tuple[str, str, int], connection: _Connection) -> None:
        idle = self._idle.setdefault(key, [])
        if len(idle) < IDLE_PER_ORIGIN:
            idle.append(connection)
        elif connection.transport is not None:
            connection.transport.close()

    async def _connect(self, key: tuple[str, str, int], https: bool) -> _Connection:
        _, host, port = key
        loop = asyncio.get_running_loop()
        tls: ssl.SSLContext | None = None
        if https:
            if not isinstance(self._tls, ssl.SSLContext):
                raise ValueError("an https endpoint without a TLS context")
            tls = self._tls
        try:
            with anyio.fail_after(self._connect_timeout):
                _, protocol = await loop.create_connection(
                    lambda: _Connection(loop, self._read_timeout), host, port, ssl=tls,
                    server_hostname=host if tls is not None else None)
        except TimeoutError as exc:
            raise ConnectTimeoutError(
                f"connect timed out after {self._connect_timeout:g} s") from exc
        except OSError as exc:  # refused, unreachable, name unknown, certificate refused
            raise ConnectError(host, port, exc) from exc
        return protocol

    def _proxy(self, origin: str) -> Any:
        """The proxy (and its credentials) the environment sets for ``origin``, read once."""
        if origin not in self._proxies:
            import aiohttp.helpers
            import yarl

            try:
                self._proxies[origin] = aiohttp.helpers.get_env_proxy_for_url(yarl.URL(origin))
            except LookupError:
                self._proxies[origin] = None
        return self._proxies[origin]

    @contextlib.asynccontextmanager
    async def _through_proxy(self, url: str, data: bytes | FileRange, headers: Mapping[str, str],
                             proxy: Any) -> AsyncIterator[Answer]:
        import aiohttp
        import yarl

        if self._proxied is None:
            tls: ssl.SSLContext | bool = self._tls if isinstance(self._tls, ssl.SSLContext) \
                else False
            self._proxied = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=tls), auto_decompress=False,
                timeout=aiohttp.ClientTimeout(sock_connect=self._connect_timeout,
                                              sock_read=self._read_timeout),
                headers={"User-Agent": self._user_agent})
        address, auth = proxy
        # encoded=True: the path exactly as signed (yarl would resolve ``a/../b``)
        async with self._proxied.put(yarl.URL(url, encoded=True), data=data, headers=headers,
                                     proxy=address, proxy_auth=auth) as response:
            body = await response.read()
            yield Answer(response.status, {k.lower(): v for k, v in response.headers.items()},
                         body)


async def _write_body(connection: _Connection, transport: asyncio.Transport,
                      data: bytes | FileRange, bucket: bandwidth.TokenBucket | None) -> None:
    """The body after its head: in slices under a bandwidth limit, waiting for the
    transport to drain after each; a file range by sendfile where the transport can."""
    if isinstance(data, FileRange):
        from .httpbody import send_file_range

        if transport.get_extra_info("sslcontext") is None and \
                await send_file_range(transport, data, data.length, bucket):
            return
        done = 0
        step = CHUNK if bucket is None else bucket.slice
        while done < data.length:
            want = min(step, data.length - done)
            if bucket is not None:
                await bucket.take(want)
            chunk = await anyio.to_thread.run_sync(os.pread, data.fd, want, data.offset + done)
            if not chunk:
                raise SourceError(f"{data.path}: file shrank during the upload")
            transport.write(chunk)
            await connection.drain()
            done += len(chunk)
        return
    view = memoryview(data)
    step = bucket.slice if bucket is not None else CHUNK
    for start in range(0, len(view), step):
        piece = view[start:start + step]
        if bucket is not None:
            await bucket.take(len(piece))
        transport.write(piece)
        await connection.drain()
