"""How a part crosses aiohttp without being copied into Python memory.

aiobotocore hands a request body that is not an ``io.IOBase`` straight to aiohttp, and
aiohttp picks a writer for it from its payload registry by type. ``FileRangePayload`` is
registered there for our ``FileRange``: on a plain TCP connection of the stock asyncio
loop it flushes the request head and calls ``loop.sendfile``, so the kernel copies the
part from the page cache into the socket and nothing else touches it (the loop's own
sendfile sends only the first bytes: it flushes the request head and says whether the
transport can; the rest goes by sendfile(2) onto the socket, waiting for it to be
writable between calls as asyncio does, but with a bound). Elsewhere (TLS,
uvloop, which has no sendfile) it reads the range in ``FALLBACK_CHUNK`` pieces in a worker
thread and writes them, waiting for the transport to drain, so at most a few chunks are
held at a time.

A stream's part is in a buffer already (``stream.BufferBody``): ``BufferPayload`` writes
it from there in ``BUFFER_CHUNK`` slices, waiting for the transport to drain after each,
so the transport never holds more than a slice of it (asyncio's transport copies what
the socket does not take at once).

With ``--max-bandwidth`` (the bucket in ``bandwidth.CURRENT``, set by the scheduler around
each attempt), every path sends the body in slices of ``TokenBucket.slice`` bytes, taking
the slice's tokens before each: sendfile is called once per slice instead of once per part.

Every path bounds its waits on the socket by ``--read-timeout`` (``bandwidth.SEND_TIMEOUT``):
aiohttp's read timeout only starts once the body is sent, and a server that accepts a
connection and stops reading would otherwise hold the attempt forever. No byte taken for
that long fails the attempt as a read timeout, retryable, as ``tlssend``'s socket timeout
does for https.

Imported lazily by the aiobotocore adapter, so ``bigupload --help`` never loads aiohttp."""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any

import aiohttp.payload
import anyio

from . import bandwidth
from .config import UploadConfig
from .errors import SourceError
from .source import FileRange
from .stream import BufferBody

FALLBACK_CHUNK = 4 << 20
SEND_BUFFER = 4 << 20
BUFFER_CHUNK = 1 << 20
FIRST_SENDFILE = 64 << 10


class FileRangePayload(aiohttp.payload.Payload):
    """aiohttp payload for a ``FileRange``; holds no resources of its own."""

    _autoclose = True

    def __init__(self, value: FileRange, *args: Any, **kwargs: Any) -> None:
        super().__init__(value, *args, **kwargs)
        self._size = value.length

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        raise TypeError("a file range is binary")

    async def write(self, writer: Any) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(self, writer: Any, content_length: int | None) -> None:
        body: FileRange = self._value
        length = body.length if content_length is None else min(body.length, content_length)
        if length <= 0:
            return
        writer.send_headers()
        transport = writer.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("connection closed before the body was sent")
        bucket = bandwidth.CURRENT.get()
        try:
            if not await send_file_range(transport, body, length, bucket):
                await _write_chunks(writer, body, length, bucket)
        except BaseException:
            # The request can never be completed: end the connection so the server stops
            # waiting for the rest of the body, and nothing reuses it.
            transport.abort()
            raise


async def send_file_range(transport: asyncio.BaseTransport, body: FileRange, length: int,
                          bucket: bandwidth.TokenBucket | None = None) -> bool:
    """Send the range with sendfile(2), a slice at a time under a bandwidth limit; False
    when this transport cannot. A socket that takes no byte for ``--read-timeout`` seconds
    (a server that stopped reading) fails the attempt as a read timeout."""
    loop = asyncio.get_running_loop()
    if type(loop).sendfile is asyncio.AbstractEventLoop.sendfile:  # uvloop: not implemented
        return False
    _widen_send_buffer(transport)
    timeout = _send_timeout()
    with open(body.fd, "rb", buffering=0, closefd=False) as file, _Waiter(loop, transport) as waiter:
        step = length if bucket is None else bucket.slice
        sent = 0
        while sent < length:
            want = min(step, length - sent)
            if bucket is not None:
                await bucket.take(want)
            n = 0
            if not sent:
                # The first bytes go through the loop's own sendfile: it says whether this
                # transport can (plain TCP, not TLS) and flushes the request head the
                # transport still holds. asyncio waits on the socket for as long as it
                # takes, hence the bound, and the few bytes asked, which a live server's
                # socket buffers take at once.
                # (in this task, not wait_for's: a second cancellation, as anyio delivers,
                # must not leave asyncio's sendfile running on a transport being aborted)
                try:
                    with anyio.fail_after(timeout):
                        n = await loop.sendfile(transport, file, body.offset,  # type: ignore[arg-type]
                                                min(want, FIRST_SENDFILE), fallback=False)
                except (asyncio.SendfileNotAvailableError, NotImplementedError):
                    return False
                except TimeoutError:
                    raise _stalled(timeout) from None
                except RuntimeError:
                    return False  # another transport asyncio cannot sendfile on
                if n < min(want, FIRST_SENDFILE):
                    sent = n
                    break  # end of file
            n += await waiter.sendfile(body.fd, body.offset + sent + n, want - n, timeout)
            sent += n
            if n != want:
                break
    if sent != length:
        raise SourceError(f"{body.path}: file shrank during the upload (sent {sent} of {length} bytes)")
    return True


def _send_timeout() -> float:
    timeout = bandwidth.SEND_TIMEOUT.get()
    return UploadConfig.read_timeout_s if timeout is None else timeout


def _stalled(timeout: float) -> TimeoutError:
    """The read timeout of a body the server stopped taking: ``client.map_error`` names
    it as ``timed out after N s (--read-timeout)``, retryable."""
    return TimeoutError(f"the server took no byte of the request body for {timeout:g} s")


class _Waiter:
    """sendfile(2) straight onto the transport's socket once its buffer is empty, waiting
    for the socket to be writable at most ``timeout`` seconds each time (asyncio's own
    ``sock_sendfile`` waits without a bound). The loop refuses to watch a transport's file
    descriptor, so the waits are on a duplicate of it, made at the first wait."""

    def __init__(self, loop: asyncio.AbstractEventLoop, transport: asyncio.BaseTransport) -> None:
        self.loop = loop
        sock = transport.get_extra_info("socket")
        self.fd = -1 if sock is None else sock.fileno()
        self.dup = -1

    def __enter__(self) -> _Waiter:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.dup >= 0:
            os.close(self.dup)
            self.dup = -1

    async def sendfile(self, fd: int, offset: int, count: int, timeout: float) -> int:
        """Send ``count`` bytes of ``fd`` from ``offset``; fewer at the end of the file."""
        if self.fd < 0:
            raise ConnectionResetError("the connection has no socket")
        done = 0
        while done < count:
            try:
                n = os.sendfile(self.fd, fd, offset + done, count - done)
            except (BlockingIOError, InterruptedError):
                n = -1
            if n == 0:
                break  # end of file
            if n > 0:
                done += n
                if done == count:
                    break
            # as asyncio does: wait for the socket after every call, so one large part on
            # a fast socket does not keep the loop from the other transfers
            await self._writable(timeout)
        return done

    async def _writable(self, timeout: float) -> None:
        if self.dup < 0:
            self.dup = os.dup(self.fd)
        # a plain future and a timer, awaited in this task: this runs once per socket
        # wakeup, where a cancel scope costs measurable CPU per GiB
        ready: asyncio.Future[bool] = self.loop.create_future()
        self.loop.add_writer(self.dup, _wake, ready, True)
        timer = self.loop.call_later(timeout, _wake, ready, False)
        try:
            if not await ready:
                raise _stalled(timeout)
        finally:
            timer.cancel()
            self.loop.remove_writer(self.dup)


def _wake(ready: asyncio.Future[bool], writable: bool) -> None:
    if not ready.done():
        ready.set_result(writable)


def _widen_send_buffer(transport: asyncio.BaseTransport) -> None:
    """Give the socket a send buffer of at least SEND_BUFFER before a sendfile: every time
    the buffer drains, the loop wakes up for one more sendfile call, and a larger buffer
    means fewer, larger calls (measured on the null sink: 0.75 CPU s/GiB against 0.85).
    Linux doubles the value and stops autotuning, whose default ceiling (tcp_wmem) is
    4 MiB, so no connection ends up with less than it would have had."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return
    try:
        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) < SEND_BUFFER:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
    except OSError:
        pass  # an unusual socket: keep the kernel's choice


async def _write_chunks(writer: Any, body: FileRange, length: int,
                        bucket: bandwidth.TokenBucket | None = None) -> None:
    done = 0
    step = FALLBACK_CHUNK if bucket is None else bucket.slice
    timeout = _send_timeout()
    while done < length:
        want = min(step, length - done)
        if bucket is not None:
            await bucket.take(want)
        chunk = await anyio.to_thread.run_sync(os.pread, body.fd, want, body.offset + done)
        if not chunk:
            raise SourceError(f"{body.path}: file shrank during the upload")
        await writer.write(chunk, drain=False)  # drained below, with a bound
        await _drain(writer, timeout)
        done += len(chunk)


async def _drain(writer: Any, timeout: float) -> None:
    """``writer.drain()``, failing as a read timeout when the transport's buffer does not
    shrink for ``timeout`` seconds: the server stopped taking the body. The drain runs as
    its own task, waited on and left running while the buffer shrinks: aiohttp keeps the
    future a drain waits on, and cancelling it would fail every later drain. It is only
    cancelled when this body fails, and its connection with it."""
    transport = writer.transport
    draining = asyncio.ensure_future(writer.drain())
    try:
        left = -1 if transport is None else transport.get_write_buffer_size()
        while not (await asyncio.wait({draining}, timeout=timeout))[0]:
            now = -1 if transport is None else transport.get_write_buffer_size()
            if now < 0 or now >= left:
                raise _stalled(timeout)
            left = now
        draining.result()
    finally:
        if not draining.done():
            draining.cancel()


class BufferPayload(aiohttp.payload.Payload):
    """aiohttp payload for a ``BufferBody``: the part's bytes, written from its buffer."""

    _autoclose = True

    def __init__(self, value: BufferBody, *args: Any, **kwargs: Any) -> None:
        super().__init__(value, *args, **kwargs)
        self._size = len(value)

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        raise TypeError("a part is binary")

    async def write(self, writer: Any) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(self, writer: Any, content_length: int | None) -> None:
        view = self._value.view
        length = len(view) if content_length is None else min(len(view), content_length)
        if length <= 0:
            return
        writer.send_headers()
        transport = writer.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("connection closed before the body was sent")
        _widen_send_buffer(transport)
        bucket = bandwidth.CURRENT.get()  # --max-bandwidth, as for a file range
        step = BUFFER_CHUNK if bucket is None else bucket.slice
        timeout = _send_timeout()
        try:
            for start in range(0, length, step):
                end = min(length, start + step)
                if bucket is not None:
                    await bucket.take(end - start)
                await writer.write(view[start:end], drain=False)
                await _drain(writer, timeout)
        except BaseException:
            transport.abort()  # as for a file range: the request can never be completed
            raise


_registered = False


def register() -> None:
    """Teach aiohttp to send ``FileRange`` and ``BufferBody`` bodies (idempotent)."""
    global _registered
    if not _registered:
        aiohttp.payload.register_payload(FileRangePayload, FileRange)
        aiohttp.payload.register_payload(BufferPayload, BufferBody)
        _registered = True
