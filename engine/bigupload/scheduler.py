"""The only place that creates task groups (``task_group``, used by every module that
starts tasks, and ``Scheduler.run_parts``). It bounds the pipeline twice, across every
upload that shares it (a batch job's files included): at most ``concurrency`` requests in
flight, and at most ``memory_limit`` bytes of part data in flight, reserved *before* a part
is checksummed and released after its response (parts are sent from the file itself, so
this bounds the data queued, not Python memory). File reads and checksums run in worker
threads so the event loop never blocks on them. Retries use exponential backoff with full
jitter, a bounded number of attempts; a connection slot is held only while a request is
being made, never during the backoff.

A throttling answer (503 SlowDown and its kin: ``StoreError.throttle``, from classify.py's
table) also halves the number of connections this scheduler uses, once per round: answers
to requests sent before the last halving report the overload already acted on. Each run
of as many successful requests as there are connections gives one back, up to
``concurrency`` (additive increase, multiplicative decrease, as TCP does). Jittered
backoff alone spreads retries in time but keeps the request rate; with many hosts sharing
one prefix's budget (about 3,500 PUT/s on S3), the rate itself has to come down."""

from __future__ import annotations

import collections
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

import anyio
import anyio.abc

from . import bandwidth
from .classify import NO_ANSWER
from .config import UploadConfig
from .errors import StoreError
from .plan import Part

log = logging.getLogger("bigupload")
T = TypeVar("T")


def primary_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The exception that matters in a task group's failure: the first that is not a
    cancellation, so callers can catch our error classes directly. The other failures
    (not cancellations) are logged, since they are not raised."""
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            leaves.append(exc)

    walk(group)
    cancelled = anyio.get_cancelled_exc_class()
    failures = [exc for exc in leaves if not isinstance(exc, (cancelled, KeyboardInterrupt))]
    primary = failures[0] if failures else leaves[0]
    for other in failures[1:]:
        log.debug("also failed, not raised: %s: %s", type(other).__name__, other,
                  exc_info=other)
    return primary


@contextlib.asynccontextmanager
async def task_group() -> AsyncIterator[anyio.abc.TaskGroup]:
    """A task group whose failure is raised as its primary error (``primary_error``),
    not as an exception group: the only way the engine starts tasks."""
    try:
        async with anyio.create_task_group() as tg:
            yield tg
    except BaseExceptionGroup as group:
        raise primary_error(group) from None


def retry_reason(what: str, exc: StoreError) -> str:
    """Why a request is retried, for its retry line: the answer's code (``SlowDown``), or
    for a failure without an answer, whose code is only an exception's name, what its
    message says (``timed out after 2 s (--read-timeout)``), without the request's name."""
    if exc.status != NO_ANSWER or not str(exc):
        return exc.code or str(exc)
    text = str(exc)
    return text[len(what) + 2:] if text.startswith(what + ": ") else text


class ByteBudget:
    """A FIFO semaphore counted in bytes. ``peak`` records the most ever reserved."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.peak = 0
        self._waiters: collections.deque[tuple[int, anyio.Event]] = collections.deque()

    async def acquire(self, nbytes: int) -> None:
        if nbytes > self.limit:
            raise ValueError(f"{nbytes} bytes exceed the whole budget of {self.limit}")
        if not self._waiters and self.used + nbytes <= self.limit:
            self._take(nbytes)
            return
        entry = (nbytes, anyio.Event())
        self._waiters.append(entry)
        try:
            await entry[1].wait()
        except BaseException:
            if entry[1].is_set():  # granted just as we were cancelled: give it back
                self.release(nbytes)
            else:
                self._waiters.remove(entry)
            raise

    def grow(self, limit: int) -> None:
        """Raise the limit (a batch meets a file with larger parts)."""
        if limit > self.limit:
            self.limit = limit
            self.release(0)

    def release(self, nbytes: int) -> None:
        self.used -= nbytes
        while self._waiters and self.used + self._waiters[0][0] <= self.limit:
            granted, event = self._waiters.popleft()
            self._take(granted)
            event.set()

    def _take(self, nbytes: int) -> None:
        self.used += nbytes
        self.peak = max(self.peak, self.used)


class Scheduler:
    """Runs part jobs and requests under the connection and memory bounds, with retries.
    One scheduler serves every upload of an ``Uploader``, so the bounds are global."""

    def __init__(self, config: UploadConfig) -> None:
        self.config = config
        self.retries = 0
        self.throttled = 0  # times a throttling answer halved the connections
        self._successes = 0
        self._round = 0  # how many times the connections were halved
        self._budget: ByteBudget | None = None
        self._connections: anyio.CapacityLimiter | None = None
        # --max-bandwidth: one bucket for every request this scheduler makes
        self.bandwidth = (bandwidth.TokenBucket(config.max_bandwidth)
                          if config.max_bandwidth else None)

    def budget_for(self, part_size: int) -> ByteBudget:
        """The one byte budget, grown if needed so that a part of ``part_size`` fits."""
        limit = self.config.effective_memory_limit(part_size)
        if self._budget is None:
            self._budget = ByteBudget(limit)
        elif self.config.memory_limit is None:
            self._budget.grow(limit)
        return self._budget

    @property
    def connections(self) -> anyio.CapacityLimiter:
        if self._connections is None:  # created lazily: it needs a running event loop
            self._connections = anyio.CapacityLimiter(self.config.concurrency)
        return self._connections

    async def in_thread(self, fn: Callable[..., T], *args: object) -> T:
        """Run blocking work (file reads, checksums) off the event loop."""
        return await anyio.to_thread.run_sync(fn, *args)

    async def run_parts(
        self,
        parts: Sequence[Part],
        part_size: int,
        job: Callable[[Part], Awaitable[None]],
    ) -> None:
        """Run ``job(part)`` for every part: at most ``concurrency`` at once, each holding
        its length in the byte budget until its response (its requests also take a shared
        connection slot, in ``retrying``). The first failure cancels the rest and propagates."""
        budget = self.budget_for(part_size)
        pending = collections.deque(parts)

        async def worker() -> None:
            while pending:
                part = pending.popleft()
                await budget.acquire(part.length)
                try:
                    await job(part)
                finally:
                    budget.release(part.length)

        async with task_group() as tg:
            for _ in range(min(self.config.concurrency, len(parts))):
                tg.start_soon(worker)

    def _slow_down(self, sent_in_round: int) -> None:
        """Halve the connections (not below 1), unless the request was sent before the last
        halving: its answer reports the overload that halving already acted on."""
        limiter = self.connections
        if sent_in_round != self._round or limiter.total_tokens <= 1:
            return
        self._round += 1
        self._successes = 0
        self.throttled += 1
        limiter.total_tokens = max(1, int(limiter.total_tokens) // 2)
        log.info("the server is throttling: down to %d connection(s)", limiter.total_tokens)

    def _succeeded(self) -> None:
        limiter = self.connections
        if limiter.total_tokens >= self.config.concurrency:
            return
        self._successes += 1
        if self._successes >= limiter.total_tokens:
            self._successes = 0
            limiter.total_tokens = int(limiter.total_tokens) + 1

    async def retrying(
        self,
        what: str,
        attempt: Callable[[int], Awaitable[T]],
    ) -> T:
        """Call ``attempt(n)`` for n = 1.. until it succeeds, a non-retryable StoreError is
        raised, or ``max_attempts`` is reached; sleep with backoff and full jitter between."""
        config = self.config
        for n in range(1, config.max_attempts + 1):
            sent_in_round = self._round
            token = bandwidth.CURRENT.set(self.bandwidth)  # the body writers read it
            timeout = bandwidth.SEND_TIMEOUT.set(config.read_timeout_s)
            try:
                async with self.connections:
                    sent_in_round = self._round
                    result = await attempt(n)
                self._succeeded()
                return result
            except StoreError as exc:
                if exc.throttle:
                    self._slow_down(sent_in_round)
                if not exc.retryable or n == config.max_attempts:
                    if exc.retryable:
                        exc.args = (f"{exc.args[0]} (gave up after {n} attempts)",)
                    raise
                delay = random.uniform(0, min(config.backoff_max_s, config.backoff_base_s * 2**n))
                self.retries += 1
                log.info("%s: %s; retry %d/%d in %.2fs", what, retry_reason(what, exc), n,
                         config.max_attempts - 1, delay)
                await anyio.sleep(delay)
            finally:
                bandwidth.SEND_TIMEOUT.reset(timeout)
                bandwidth.CURRENT.reset(token)
        raise AssertionError("unreachable")
