"""The token bucket of --max-bandwidth on an injected clock (no sleeping), and the rate
parser: the oracle is arithmetic on the rate, never the bucket itself."""

from __future__ import annotations

import pytest

from bigupload.bandwidth import TokenBucket, format_rate, parse_rate, slice_size
from bigupload.config import UploadConfig
from bigupload.errors import ConfigError

MiB = 1 << 20


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_the_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(1 * MiB, burst=256 << 10, clock=clock)
    assert bucket.reserve(256 << 10) == 0.0  # the burst goes at once
    assert bucket.reserve(256 << 10) == pytest.approx(0.25)  # then a quarter MiB a quarter s
    assert bucket.reserve(512 << 10) == pytest.approx(0.75)  # queued behind the first


def test_a_sender_that_waits_what_it_is_told_keeps_to_the_rate() -> None:
    """Many takers sending 256 KiB slices, each waiting what reserve says: the time the
    last byte may go is (bytes - burst) / rate, whatever the interleaving."""
    clock = Clock()
    rate = 10 * MiB
    bucket = TokenBucket(rate, clock=clock)
    start = clock.now
    total = 0
    pending = [0.0] * 8  # when each of 8 connections may send its next slice
    for _ in range(160):  # 40 MiB
        i = min(range(8), key=lambda k: pending[k])
        clock.now = max(clock.now, pending[i])
        delay = bucket.reserve(bucket.slice)
        pending[i] = clock.now + delay
        total += bucket.slice
    last = max(pending)
    assert last - start == pytest.approx((total - bucket.burst) / rate)


def test_idle_time_refills_only_up_to_the_burst() -> None:
    clock = Clock()
    bucket = TokenBucket(MiB, burst=64 << 10, clock=clock)
    bucket.reserve(64 << 10)
    clock.now += 3600  # an hour idle earns no more than the burst
    assert bucket.reserve(64 << 10) == 0.0
    assert bucket.reserve(64 << 10) == pytest.approx(1 / 16)


def test_tokens_of_a_cancelled_taker_come_back() -> None:
    clock = Clock()
    bucket = TokenBucket(MiB, burst=MiB, clock=clock)
    bucket.reserve(2 * MiB)
    bucket.give_back(MiB)
    assert bucket.reserve(0) == 0.0


@pytest.mark.parametrize("text,rate", [
    ("50MB/s", 50 * MiB), ("50MiB/s", 50 * MiB), ("50mib/s", 50 * MiB), ("50M", 50 * MiB),
    ("400Mbit/s", 50_000_000), ("1Gbps", 125_000_000), ("80000bit/s", 10_000),
    ("1048576", MiB), ("1.5 MiB/s", 3 * MiB // 2), ("10KB/s", 10 * 1024),
])
def test_rates_as_users_write_them(text: str, rate: int) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text,fragment", [
    ("50Mb/s", "50MB/s for bytes or 50Mbit/s for bits"), ("fast", "malformed rate"),
    ("-5MB/s", "malformed rate"), ("100", "minimum"), ("50MX/s", "malformed rate"),
])
def test_rates_that_are_refused(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        parse_rate(text)


def test_rates_are_shown_in_binary_units() -> None:
    assert format_rate(10 * MiB) == "10.0 MiB/s"
    assert format_rate(512) == "512 B/s"


def test_slices_are_small_and_follow_slow_rates() -> None:
    assert slice_size(100 * MiB) == 256 << 10
    assert slice_size(160 << 10) == 10 << 10
    assert slice_size(1024) == 1024


def test_the_config_refuses_a_rate_below_the_minimum() -> None:
    with pytest.raises(ConfigError, match="minimum"):
        UploadConfig(max_bandwidth=10)


def test_the_bar_shows_the_limit(capsys: pytest.CaptureFixture[str]) -> None:
    from bigupload.terminal import TqdmProgress

    progress = TqdmProgress(10 * MiB)
    progress.start("big.bin", 40 * MiB, 0)
    progress.advance(8 * MiB)
    progress.close()
    assert "limit 10.0 MiB/s" in capsys.readouterr().err
