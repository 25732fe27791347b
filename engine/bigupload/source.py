"""Reading the local file: opening and validating it, checksumming a part through a small
per-thread buffer, handing a part to the HTTP layer as a ``FileRange`` (sent with
sendfile(2), never copied into Python memory), and the fingerprint that tells whether
the file changed between or during runs. Knows nothing about S3.

Why not mmap: a file truncated under a mapping kills the process with SIGBUS; ``pread``
returns a short read we can report. Measured on 2 GiB from page cache, CRC32C over
``pread`` into one 1 MiB buffer costs 0.09 CPU s/GiB, over a 16 MiB mmap per part 0.13.

The fingerprint is (size, mtime_ns, inode, device) plus an xxh3-128 digest of up to 16
samples of 64 KiB spread over the file: cheap even for 50 GiB files, and it catches a
rewrite that kept the size and reset the mtime."""

from __future__ import annotations

import dataclasses
import errno
import os
import stat
import threading
from collections.abc import Callable

import xxhash

from .errors import SourceError
from .values import Fingerprint as Fingerprint  # re-exported: it lived here
from .values import Part

SAMPLE_BYTES = 64 * 1024
SAMPLE_COUNT = 16
SCAN_CHUNK = 1 << 20  # fits in L2 next to the CRC's working set; fewest syscalls that do
_scan_buffers = threading.local()


def _describe_oserror(path: str, exc: OSError) -> str:
    reason = {
        errno.ENOENT: "no such file",
        errno.EACCES: "permission denied",
        errno.EISDIR: "is a directory",
        errno.ELOOP: "too many levels of symbolic links",
    }.get(exc.errno or 0, exc.strerror or str(exc))
    return f"{path}: {reason}"


def check_regular_file(path: str) -> os.stat_result:
    """stat() the path and insist on a regular file; SourceError otherwise."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise SourceError(_describe_oserror(path, exc)) from exc
    if stat.S_ISDIR(st.st_mode):
        raise SourceError(f"{path}: is a directory (use --recursive to upload a directory)")
    if not stat.S_ISREG(st.st_mode):
        raise SourceError(f"{path}: not a regular file (FIFO, socket or device)")
    return st


class SourceFile:
    """An open, validated regular file. Close it, or use it as a context manager."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        check_regular_file(self.path)
        try:
            self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            raise SourceError(_describe_oserror(path, exc)) from exc
        st = os.fstat(self._fd)
        if not stat.S_ISREG(st.st_mode):  # replaced between stat and open
            os.close(self._fd)
            raise SourceError(f"{path}: not a regular file")
        self.size = st.st_size

    def __enter__(self) -> SourceFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def scan(self, part: Part, consume: Callable[[memoryview], object]) -> None:
        """Feed the part's bytes to ``consume`` (a hash's update, say) in chunks read through
        one reused per-thread buffer, so no part-sized copy exists. A short read means the
        file shrank: SourceError."""
        buffer = getattr(_scan_buffers, "buffer", None)
        if buffer is None:
            buffer = _scan_buffers.buffer = memoryview(bytearray(SCAN_CHUNK))
        done = 0
        while done < part.length:
            want = min(SCAN_CHUNK, part.length - done)
            try:
                n = os.preadv(self._fd, [buffer[:want]], part.offset + done)
            except OSError as exc:
                raise SourceError(f"{self.path}: read failed: {exc.strerror}") from exc
            if n == 0:
                raise SourceError(
                    f"{self.path}: file shrank during the upload (short read at part {part.number})"
                )
            consume(buffer[:n])
            done += n

    def range(self, part: Part) -> FileRange:
        """The part as a request body that streams from the file (see ``FileRange``)."""
        return FileRange(self._fd, self.path, part.offset, part.length)

    def stat_changes(self, fingerprint: Fingerprint) -> list[str]:
        """What ``stat`` alone shows changed since ``fingerprint`` (size, mtime, inode): one
        system call, cheap enough to run on the event loop after every small file."""
        return stat_changes(self.path, fingerprint)

    def changes(self, fingerprint: Fingerprint) -> list[str]:
        """How the file at the path differs from ``fingerprint`` now, in words ("deleted"
        when nothing is there any more); SourceError when it is there but cannot be read."""
        try:
            return fingerprint.differences(self.fingerprint())
        except SourceError as exc:
            if isinstance(exc.__cause__, FileNotFoundError):
                return ["deleted"]
            raise

    def fingerprint(self) -> Fingerprint:
        """Fingerprint of the file as it is now (re-stats the path, so a replaced file shows)."""
        try:
            st = os.stat(self.path)
        except OSError as exc:
            raise SourceError(_describe_oserror(self.path, exc)) from exc
        digest = xxhash.xxh3_128()
        buffer = bytearray(SAMPLE_BYTES)
        for offset in sample_offsets(st.st_size):
            length = min(SAMPLE_BYTES, st.st_size - offset)
            try:
                n = os.preadv(self._fd, [memoryview(buffer)[:length]], offset)
            except OSError as exc:
                raise SourceError(f"{self.path}: read failed: {exc.strerror}") from exc
            digest.update(memoryview(buffer)[:n])
        return Fingerprint(
            path=self.path,
            size=st.st_size,
            mtime_ns=st.st_mtime_ns,
            inode=st.st_ino,
            device=st.st_dev,
            sample_hash=digest.hexdigest(),
        )


@dataclasses.dataclass(frozen=True)
class SmallRead:
    """A small file read whole: its bytes and what ``fstat`` said as it was read (the
    ``Fingerprint`` has no sample hash: the bytes themselves are what is sent)."""

    data: bytes
    fingerprint: Fingerprint


def read_small(path: str, limit: int) -> SmallRead | None:
    """The file's bytes in one read, on the calling thread (a few KiB from the page cache
    cost microseconds, less than a hop to a worker thread), or None when it is larger than
    ``limit``. The file is opened without blocking (a FIFO put in its place does not hang
    the caller) and must be a regular file; ``fstat`` before and after the read must agree
    (size and mtime), so what is returned is never a mix of two versions: SourceError
    otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        raise SourceError(_describe_oserror(path, exc)) from exc
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise SourceError(f"{path}: is a directory (use --recursive to upload a directory)")
        if not stat.S_ISREG(st.st_mode):
            raise SourceError(f"{path}: not a regular file (FIFO, socket or device)")
        if st.st_size > limit:
            return None
        try:
            data = os.read(fd, st.st_size + 1)
            while len(data) <= st.st_size and (more := os.read(fd, st.st_size + 1 - len(data))):
                data += more
            after = os.fstat(fd)
        except OSError as exc:
            raise SourceError(f"{path}: read failed: {exc.strerror}") from exc
    finally:
        os.close(fd)
    if len(data) != st.st_size or (after.st_size, after.st_mtime_ns) != (st.st_size,
                                                                          st.st_mtime_ns):
        raise SourceError(f"{path}: changed while being read (size {st.st_size} -> "
                          f"{after.st_size}, {len(data)} bytes read)")
    return SmallRead(data, Fingerprint(path=path, size=st.st_size, mtime_ns=st.st_mtime_ns,
                                       inode=st.st_ino, device=st.st_dev, sample_hash=""))


def stat_changes(path: str, fingerprint: Fingerprint) -> list[str]:
    """What ``stat`` alone shows changed at ``path`` since ``fingerprint`` (size, mtime,
    inode): one system call."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise SourceError(_describe_oserror(path, exc)) from exc
    if (st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev) == (
            fingerprint.size, fingerprint.mtime_ns, fingerprint.inode, fingerprint.device):
        return []  # the common case, without making a second fingerprint
    now = dataclasses.replace(fingerprint, size=st.st_size, mtime_ns=st.st_mtime_ns,
                              inode=st.st_ino, device=st.st_dev)
    return fingerprint.differences(now)


def sample_offsets(size: int) -> list[int]:
    """Offsets of the fingerprint samples: evenly spaced, first and last included."""
    if size <= SAMPLE_BYTES * SAMPLE_COUNT:
        return list(range(0, size, SAMPLE_BYTES))
    last = size - SAMPLE_BYTES
    return [last * i // (SAMPLE_COUNT - 1) for i in range(SAMPLE_COUNT)]


class FileRange:
    """A byte range of an open file, used as a request body. The HTTP layer sends it with
    sendfile(2) straight from the page cache (``client.FileRangePayload``); botocore only
    needs a sized, seekable, readable object, and ``read`` serves anything else that asks.
    The range does not own the descriptor: the ``SourceFile`` outlives every request."""

    __slots__ = ("fd", "path", "offset", "length", "_position")

    def __init__(self, fd: int, path: str, offset: int, length: int) -> None:
        self.fd = fd
        self.path = path
        self.offset = offset
        self.length = length
        self._position = 0

    def __len__(self) -> int:
        return self.length

    def __repr__(self) -> str:
        return f"FileRange({self.path!r}, offset={self.offset}, length={self.length})"

    def read(self, size: int = -1) -> bytes:
        left = self.length - self._position
        size = left if size is None or size < 0 else min(size, left)
        data = os.pread(self.fd, size, self.offset + self._position) if size > 0 else b""
        self._position += len(data)
        return data

    def seek(self, position: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._position, os.SEEK_END: self.length}[whence]
        self._position = max(0, base + position)
        return self._position

    def tell(self) -> int:
        return self._position
