"""What a file's failure does to its job: recorded and the job goes on, or the job stops
(and stays resumable).

A job stops when the failure would hit every other file too (``is_fatal``: credentials,
an https endpoint that does not speak TLS (``ConfigError.fatal_for_job``), no such
bucket, a journal that cannot be written, the cluster, the store unreachable after
retries: ``StoreError.fatal_for_job``, from classify.py's table), at the first
failure with ``fail_fast``, and when its first ``GIVE_UP_AFTER`` files all failed at the
store."""

from __future__ import annotations

from typing import Any

from ..errors import (
    BigUploadError,
    ClusterError,
    ConfigError,
    IntegrityError,
    JournalError,
    StoreError,
)

GIVE_UP_AFTER = 10  # store failures in a row, with no success yet, that stop the job


def is_fatal(exc: BigUploadError) -> bool:
    """Whether a file's failure would hit every other file too, so the job must stop
    (and stay resumable) rather than record it and go on."""
    if isinstance(exc, (JournalError, ClusterError)):
        return True
    if isinstance(exc, ConfigError):
        return exc.fatal_for_job
    return isinstance(exc, StoreError) and exc.fatal_for_job


class FailurePolicy:
    """Counts a job's outcomes in this run and says when a failure stops it."""

    def __init__(self, *, fail_fast: bool) -> None:
        self.fail_fast = fail_fast
        self._successes = 0
        self._store_failures_in_a_row = 0

    def succeeded(self) -> None:
        self._successes += 1
        self._store_failures_in_a_row = 0

    def failed(self, exc: BigUploadError) -> None:
        """Count a failure that was recorded as the file's; raise if the job must stop
        now (with ``fail_fast``, or when no file has succeeded and the store refused the
        first ``GIVE_UP_AFTER`` in a row)."""
        if isinstance(exc, StoreError) and not isinstance(exc, IntegrityError):
            self._store_failures_in_a_row += 1
        if self.fail_fast:
            raise exc
        if self._successes == 0 and self._store_failures_in_a_row >= GIVE_UP_AFTER:
            raise type(exc)(f"the first {GIVE_UP_AFTER} files all failed; stopping the job "
                            f"(last: {exc})", **_store_context(exc)) from exc


def _store_context(exc: BigUploadError) -> dict[str, Any]:
    if not isinstance(exc, StoreError):
        return {}
    return dict(operation=exc.operation, bucket=exc.bucket, key=exc.key, code=exc.code,
                status=exc.status, retryable=exc.retryable)
