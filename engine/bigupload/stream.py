"""Reading a stream: a source read once, front to back, whose size is known only when it
ends: a pipe or FIFO, a character device, standard input, a binary file object, or, in
the API, an iterable or async iterator of bytes. Knows nothing about S3.

``StreamSource.fill`` reads into a buffer the caller owns (a part's, reused from part to
part) until it is full or the stream ends, handing each chunk to ``consume`` (a
checksum) as it arrives, so a part's bytes are read once and never copied again before
they are sent: ``BufferBody`` is the request body that sends a part from its buffer.

Blocking reads run in worker threads. A descriptor is polled before each read, so a read
waiting on a silent producer gives way within ``POLL_S`` once the source is closed (a
thread blocked in read(2) cannot be cancelled, and would hold the process at exit)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import stat
import threading
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from typing import Protocol, Union, runtime_checkable

import anyio

from .errors import SourceError

READ_CHUNK = 1 << 20  # the most one read(2) asks for: checksummed while in cache
POLL_S = 0.2
PIPE_SIZE = 1 << 20  # Linux's default pipe-max-size: fewer, larger reads from a pipe
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
Consume = Callable[[memoryview], object]


@runtime_checkable
class Readable(Protocol):
    def readinto(self, buffer: memoryview) -> int | None: ...


BytesLike = Union[bytes, bytearray, memoryview]
StreamLike = Union[int, Readable, Iterable[BytesLike], AsyncIterable[BytesLike]]


class _Stopped(Exception):
    """The source was closed while a read waited for data."""


class StreamSource:
    """A source read once. ``fill`` returns fewer bytes than asked only at the end; after
    that it returns 0. ``name`` says what it is in messages."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.ended = False
        self._pending = memoryview(b"")  # bytes read but not yet given out (a probe's)
        self._closed = threading.Event()

    async def fill(self, view: memoryview, consume: Consume) -> int:
        """Fill ``view`` from the stream, feeding each chunk to ``consume``; the count of
        bytes, fewer than ``len(view)`` only where the stream ended."""
        done = 0
        if self._pending:
            done = min(len(self._pending), len(view))
            view[:done] = self._pending[:done]
            consume(view[:done])
            self._pending = self._pending[done:]
        if done < len(view) and not self.ended:
            done += await self._read(view[done:], consume)
        return done

    async def more(self) -> bool:
        """Whether the stream goes on (reads one byte ahead, given out by the next ``fill``)."""
        if self._pending:
            return True
        probe = memoryview(bytearray(1))
        if await self.fill(probe, lambda chunk: None) == 0:
            return False
        self._pending = probe
        return True

    async def _read(self, view: memoryview, consume: Consume) -> int:
        """Fill ``view`` from the source (``fill`` has given out what was pending)."""
        return await self._in_thread(self._read_blocking, view, consume)

    def _read_blocking(self, view: memoryview, consume: Consume) -> int:
        raise NotImplementedError

    async def _in_thread(self, read: Callable[[memoryview, Consume], int], view: memoryview,
                         consume: Consume) -> int:
        """Run a blocking read in a worker thread. Cancelled, it is abandoned (a blocked
        read cannot be interrupted); ``close`` then makes it give way."""
        try:
            return await anyio.to_thread.run_sync(read, view, consume, abandon_on_cancel=True)
        except _Stopped:
            raise SourceError(f"{self.name}: closed while being read") from None

    def _check_open(self) -> None:
        if self._closed.is_set():
            raise _Stopped

    def close(self) -> None:
        """Stop reading: a read waiting for data gives way. The underlying file, iterator
        or descriptor is the caller's, and stays open."""
        self._closed.set()


class FdStream(StreamSource):
    """A file descriptor (a pipe, FIFO, terminal or character device), read in worker
    threads. With ``owned`` the descriptor is closed with the source, once no read uses
    it (a read abandoned in its thread closes it as it gives way: closing it under the
    read could let it read whatever file is opened next with the same number)."""

    def __init__(self, fd: int, name: str, *, owned: bool = False) -> None:
        super().__init__(name)
        self.fd = fd
        self.owned = owned
        self._lock = threading.Lock()
        self._reading = False
        self._poll = select.poll()
        self._poll.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        with contextlib.suppress(OSError):  # not a pipe, or a smaller pipe-max-size
            if stat.S_ISFIFO(os.fstat(fd).st_mode):
                fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_SIZE)

    def close(self) -> None:
        super().close()
        with self._lock:
            if not self._reading:
                self._release()

    def _release(self) -> None:
        if self.owned and self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _read_blocking(self, view: memoryview, consume: Consume) -> int:
        with self._lock:
            self._check_open()
            self._reading = True
        try:
            return self._read_fd(view, consume)
        finally:
            with self._lock:
                self._reading = False
                if self._closed.is_set():
                    self._release()

    def _read_fd(self, view: memoryview, consume: Consume) -> int:
        done = 0
        while done < len(view):
            self._check_open()
            if not self._poll.poll(int(POLL_S * 1000)):
                continue
            try:
                n = os.readv(self.fd, [view[done:done + READ_CHUNK]])
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as exc:
                raise SourceError(f"{self.name}: read failed: {exc.strerror}") from exc
            if n == 0:
                self.ended = True
                break
            consume(view[done:done + n])
            done += n
        return done


class ReaderStream(StreamSource):
    """A binary file object (anything with ``readinto``), read in worker threads."""

    def __init__(self, reader: Readable, name: str) -> None:
        super().__init__(name)
        self.reader = reader

    def _read_blocking(self, view: memoryview, consume: Consume) -> int:
        done = 0
        while done < len(view):
            self._check_open()
            try:
                n = self.reader.readinto(view[done:done + READ_CHUNK])
            except OSError as exc:
                raise SourceError(f"{self.name}: read failed: {exc.strerror or exc}") from exc
            if n is None:  # a non-blocking file with nothing to read yet
                self._closed.wait(0.01)
                continue
            if n == 0:
                self.ended = True
                break
            consume(view[done:done + n])
            done += n
        return done


_END = object()


def _as_bytes(chunk: object, name: str) -> memoryview:
    if isinstance(chunk, (bytes, bytearray, memoryview)):
        return memoryview(chunk).cast("B")
    raise TypeError(f"{name} yielded {type(chunk).__name__}, not bytes")


class IterableStream(StreamSource):
    """An iterable of bytes-like chunks, iterated in worker threads (a generator may
    block). A chunk larger than the room left in a part is split across parts."""

    def __init__(self, chunks: Iterable[BytesLike], name: str) -> None:
        super().__init__(name)
        self._chunks: Iterator[BytesLike] = iter(chunks)

    def _read_blocking(self, view: memoryview, consume: Consume) -> int:
        done = 0
        while done < len(view):
            self._check_open()
            try:
                chunk = next(self._chunks, _END)
            except OSError as exc:  # the source failing, as a file's read would
                raise SourceError(f"{self.name}: read failed: {exc.strerror or exc}") from exc
            if chunk is _END:
                self.ended = True
                break
            done += self._take(_as_bytes(chunk, self.name), view[done:], consume)
        return done

    def _take(self, chunk: memoryview, room: memoryview, consume: Consume) -> int:
        n = min(len(chunk), len(room))
        room[:n] = chunk[:n]
        consume(room[:n])
        self._pending = chunk[n:]  # the rest starts the next part
        return n


class AsyncIterableStream(IterableStream):
    """An async iterable of bytes-like chunks, iterated on the event loop."""

    def __init__(self, chunks: AsyncIterable[BytesLike], name: str) -> None:
        StreamSource.__init__(self, name)
        self._async_chunks: AsyncIterator[BytesLike] = aiter(chunks)

    async def _read(self, view: memoryview, consume: Consume) -> int:
        done = 0
        while done < len(view):
            try:
                chunk = await anext(self._async_chunks)
            except StopAsyncIteration:
                self.ended = True
                break
            except OSError as exc:
                raise SourceError(f"{self.name}: read failed: {exc.strerror or exc}") from exc
            done += self._take(_as_bytes(chunk, self.name), view[done:], consume)
        return done


def open_stream(data: StreamLike | str | os.PathLike[str],
                name: str | None = None) -> StreamSource:
    """The ``StreamSource`` for what the API was given: a path (a FIFO, a device; opened
    here and closed with the source), a file descriptor (left open), a binary file object,
    an iterable or an async iterable of bytes."""
    if isinstance(data, StreamSource):
        return data
    if isinstance(data, (str, os.PathLike)):
        path = os.fspath(data)
        try:  # O_NONBLOCK: opening a FIFO would otherwise wait for a writer, unpolled
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            raise SourceError(f"{path}: cannot open: {exc.strerror}") from exc
        return FdStream(fd, name or path, owned=True)
    if isinstance(data, int):
        return FdStream(data, name or f"file descriptor {data}")
    if isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError("upload_stream takes a path, a file descriptor, a binary file object "
                        "or an iterable of bytes: give bytes as [data]")
    if isinstance(data, Readable):
        return ReaderStream(data, name or str(getattr(data, "name", "stream")))
    if isinstance(data, AsyncIterable):
        return AsyncIterableStream(data, name or "async iterable")
    if isinstance(data, Iterable):
        return IterableStream(data, name or "iterable")
    raise TypeError(f"cannot stream a {type(data).__name__}")


def is_stream_path(path: str) -> bool:
    """Whether ``path`` is something to stream rather than a file to upload in parts: a
    FIFO or a character device (``/dev/stdin`` on a pipe, a named pipe)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)


def stdin_file() -> str | None:
    """The path of the regular file standard input is (``< big.iso``), or None: a pipe, a
    terminal, or a file that cannot be named again (deleted, or no /proc). A file that can
    be named is uploaded as that file, resumable; anything else is a stream."""
    try:
        st = os.fstat(0)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    try:
        if os.lseek(0, 0, os.SEEK_CUR) != 0:  # partly read already: what is left is a stream
            return None
        path = os.readlink("/proc/self/fd/0")
        again = os.stat(path)
    except OSError:
        return None
    if (again.st_dev, again.st_ino) != (st.st_dev, st.st_ino):
        return None
    return path


class BufferBody:
    """A part in its buffer, as a request body: the HTTP layer writes it from the buffer
    (``httpbody.BufferPayload``); botocore only needs a sized, seekable, readable object,
    and ``read`` (which copies) serves anything else that asks. The buffer is reused for
    a later part only once the request that sends this one has returned."""

    __slots__ = ("view", "_position")

    def __init__(self, view: memoryview) -> None:
        self.view = view
        self._position = 0

    def __len__(self) -> int:
        return len(self.view)

    def __repr__(self) -> str:
        return f"BufferBody({len(self.view)} bytes)"

    def read(self, size: int = -1) -> bytes:
        left = len(self.view) - self._position
        size = left if size is None or size < 0 else min(size, left)
        data = bytes(self.view[self._position:self._position + size])
        self._position += len(data)
        return data

    def seek(self, position: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._position, os.SEEK_END: len(self.view)}[whence]
        self._position = max(0, base + position)
        return self._position

    def tell(self) -> int:
        return self._position
