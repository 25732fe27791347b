"""``--max-bandwidth``: the rate parser and the token bucket every request body draws from.

One ``TokenBucket`` per scheduler (``Scheduler.bandwidth``), so one limit covers every
connection and every file of an ``Uploader``; with Dask each worker process has its own
scheduler, so the limit applies per worker. The scheduler sets ``CURRENT`` around each
attempt; the body writers (``httpbody``'s sendfile and chunk paths, ``tlssend``'s worker
thread) read it and take tokens for each slice of at most ``slice_size`` bytes before
sending it, so a limited upload is smooth (no part sent in one burst at line rate).

The bucket lets a taker go into debt and wait it off: ``reserve`` takes the tokens at once
and says how long to wait, so takers are served in order and the long-run rate is exact
(at most ``burst`` bytes above ``rate * elapsed``). It is thread-safe and takes its clock
as an argument (tests drive it without sleeping).

Units: bytes per second as sizes are written (``50MB/s`` = ``50MiB/s`` = 50 x 1024 x 1024,
as ``--part-size``), bits per second in decimal as networks count them (``400Mbit/s`` =
400,000,000 bits = 50,000,000 bytes per second). A lowercase ``b`` alone (``50Mb/s``) is
refused: it means bits to some and bytes to others."""

from __future__ import annotations

import contextvars
import re
import threading
import time
from collections.abc import Callable

import anyio

from .errors import ConfigError

KiB = 1024
MIN_RATE = KiB  # bytes per second
MAX_SLICE = 256 * KiB
_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}
_RATE_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)([a-z]*)\s*(/s|/sec)?", re.IGNORECASE)


def parse_rate(text: str | int) -> int:
    """``50MB/s``, ``50MiB/s``, ``400Mbit/s``, ``1Gbps``, ``1048576`` -> bytes per second."""
    if isinstance(text, int):
        value = float(text)
    else:
        match = _RATE_RE.fullmatch(text.strip())
        if not match:
            raise ConfigError(f"malformed rate {text!r} (examples: 50MB/s, 50MiB/s, 400Mbit/s)")
        number, prefix, unit = match.group(1), match.group(2).lower(), match.group(3)
        power = _POWERS[prefix]
        if unit.lower() in ("bit", "bits", "bps"):
            value = float(number) * 1000 ** power / 8
        elif unit in ("", "B") or unit.lower() == "ib":
            value = float(number) * KiB ** power
        elif unit == "b":
            raise ConfigError(f"rate {text!r}: write {number}{prefix.upper()}B/s for bytes or "
                              f"{number}{prefix.upper()}bit/s for bits")
        else:
            raise ConfigError(f"malformed rate {text!r} (examples: 50MB/s, 50MiB/s, 400Mbit/s)")
    if value < MIN_RATE:
        raise ConfigError(f"rate {text!r} is below the minimum of 1 KiB/s")
    return int(value)


def format_rate(rate: int) -> str:
    """``10.0 MiB/s``: binary units, as the bars show rates."""
    size = float(rate)
    for unit in ("B/s", "KiB/s", "MiB/s", "GiB/s"):
        if size < 1024 or unit == "GiB/s":
            return f"{size:.0f} {unit}" if unit == "B/s" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def slice_size(rate: int) -> int:
    """Bytes taken and sent at a time: about 1/16 s of the whole rate, at most 256 KiB."""
    return max(KiB, min(MAX_SLICE, rate // 16))


class TokenBucket:
    """``rate`` bytes per second, at most ``burst`` (default: one slice) sent ahead."""

    def __init__(self, rate: int, *, burst: int | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.slice = slice_size(rate)
        self.burst = burst if burst is not None else self.slice
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens = float(self.burst)
        self._last = clock()

    def reserve(self, nbytes: int) -> float:
        """Take ``nbytes`` tokens now (going into debt if need be); the seconds to wait
        before sending them."""
        with self._lock:
            now = self._clock()
            self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= nbytes
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def give_back(self, nbytes: int) -> None:
        """Tokens taken for bytes that were not sent (the taker was cancelled)."""
        with self._lock:
            self._tokens = min(float(self.burst), self._tokens + nbytes)

    async def take(self, nbytes: int) -> None:
        """Wait until ``nbytes`` may be sent (event loop)."""
        delay = self.reserve(nbytes)
        if delay > 0:
            try:
                await anyio.sleep(delay)
            except BaseException:
                self.give_back(nbytes)
                raise

    def take_blocking(self, nbytes: int, interrupt: threading.Event | None = None) -> bool:
        """Wait until ``nbytes`` may be sent (a worker thread); False if ``interrupt`` was
        set meanwhile (the request was cancelled)."""
        delay = self.reserve(nbytes)
        if delay <= 0:
            return True
        if interrupt is None:
            time.sleep(delay)
            return True
        if interrupt.wait(delay):
            self.give_back(nbytes)
            return False
        return True


# the bucket of the request being made in this context (set by ``Scheduler.retrying``)
CURRENT: contextvars.ContextVar[TokenBucket | None] = contextvars.ContextVar(
    "bigupload_bandwidth", default=None)

# --read-timeout, for the body writers of the request being made in this context (set by
# ``Scheduler.retrying`` with ``CURRENT``): how long ``httpbody`` waits for the socket to
# take one more byte of a body before the attempt fails as a read timeout. aiohttp's own
# read timeout only starts once the body is sent, and a server that stops reading would
# otherwise hold the attempt forever. None: the default of ``UploadConfig``.
SEND_TIMEOUT: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "bigupload_send_timeout", default=None)
