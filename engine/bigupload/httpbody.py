"""How a part crosses aiohttp without being copied into Python memory.

aiobotocore hands a request body that is not an ``io.IOBase`` straight to aiohttp, and
aiohttp picks a writer for it from its payload registry by type. ``FileRangePayload`` is
registered there for our ``FileRange``: on a plain TCP connection of the stock asyncio
loop it flushes the request head and calls ``loop.sendfile``, so the kernel copies the
part from the page cache into the socket and nothing else touches it. Elsewhere (TLS,
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

Imported lazily by the aiobotocore adapter, so ``bigupload --help`` never loads aiohttp."""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any

import aiohttp.payload
import anyio

from . import bandwidth
from .errors import SourceError
from .source import FileRange
from .stream import BufferBody

FALLBACK_CHUNK = 4 << 20
SEND_BUFFER = 4 << 20
BUFFER_CHUNK = 1 << 20


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
    when this transport cannot."""
    loop = asyncio.get_running_loop()
    if type(loop).sendfile is asyncio.AbstractEventLoop.sendfile:  # uvloop: not implemented
        return False
    _widen_send_buffer(transport)
    with open(body.fd, "rb", buffering=0, closefd=False) as file:
        step = length if bucket is None else bucket.slice
        sent = 0
        while sent < length:
            want = min(step, length - sent)
            if bucket is not None:
                await bucket.take(want)
            try:
                n = await loop.sendfile(transport, file, body.offset + sent, want,  # type: ignore[arg-type]
                                        fallback=False)
            except (asyncio.SendfileNotAvailableError, RuntimeError, NotImplementedError):
                if sent:
                    raise  # half sent: the request cannot be finished another way
                return False
            sent += n
            if n != want:
                break
    if sent != length:
        raise SourceError(f"{body.path}: file shrank during the upload (sent {sent} of {length} bytes)")
    return True


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
    while done < length:
        want = min(step, length - done)
        if bucket is not None:
            await bucket.take(want)
        chunk = await anyio.to_thread.run_sync(os.pread, body.fd, want, body.offset + done)
        if not chunk:
            raise SourceError(f"{body.path}: file shrank during the upload")
        await writer.write(chunk)
        await writer.drain()
        done += len(chunk)


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
        try:
            for start in range(0, length, step):
                end = min(length, start + step)
                if bucket is not None:
                    await bucket.take(end - start)
                await writer.write(view[start:end])
                await writer.drain()
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
