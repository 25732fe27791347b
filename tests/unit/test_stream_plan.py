"""A stream's part plan (``plan.plan_stream``): sizes that grow as the stream goes, so a
stream of unknown size far past 10,000 starting parts still fits in S3's 10,000 parts.
The oracles are sums written out here, not the plan's own arithmetic."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bigupload.config import (
    MAX_OBJECT_SIZE,
    MAX_PART_SIZE,
    MAX_PARTS,
    MIN_PART_SIZE,
    GiB,
    MiB,
    TiB,
    UploadConfig,
)
from bigupload.errors import ConfigError
from bigupload.plan import plan_stream


def parts_needed(sizes: list[int], total: int) -> int | None:
    """How many of ``sizes`` (part 1 first) a stream of ``total`` bytes fills."""
    held = 0
    for count, size in enumerate(sizes, 1):
        held += size
        if held >= total:
            return count
    return None


def test_the_default_plan_carries_a_stream_far_past_10000_starting_parts() -> None:
    p = plan_stream(UploadConfig())
    assert p.start == 32 * MiB
    sizes = [p.part_size(n) for n in range(1, MAX_PARTS + 1)]
    # doubling every 1,000 parts: 1,000 of 32 MiB, 1,000 of 64 MiB, ... capped at 5 GiB
    assert sizes[:1000] == [32 * MiB] * 1000 and sizes[1000:2000] == [64 * MiB] * 1000
    assert sizes[7999] == 4096 * MiB and sizes[8000:] == [5 * GiB] * 2000
    assert all(MIN_PART_SIZE <= s <= MAX_PART_SIZE for s in sizes)
    expected_capacity = 1000 * MiB * (32 + 64 + 128 + 256 + 512 + 1024 + 2048 + 4096) \
        + 2000 * 5 * GiB
    assert p.capacity() == expected_capacity  # about 17.5 TiB
    assert p.capacity() > 17 * TiB
    past = MAX_PARTS * p.start + 1  # what a fixed 32 MiB part size cannot carry
    assert parts_needed(sizes, past) == p.parts_for(past) == 3376
    assert p.parts_for(p.capacity()) == MAX_PARTS and p.parts_for(p.capacity() + 1) is None


@settings(max_examples=60, deadline=None)
@given(part_mib=st.integers(min_value=5, max_value=5 * 1024))
def test_any_starting_size_goes_past_10000_parts_of_itself(part_mib: int) -> None:
    p = plan_stream(UploadConfig(part_size=part_mib * MiB))
    sizes = [p.part_size(n) for n in range(1, MAX_PARTS + 1)]
    assert sizes == sorted(sizes) and sizes[0] == part_mib * MiB
    assert all(s <= MAX_PART_SIZE for s in sizes)
    if part_mib * MiB < MAX_PART_SIZE:
        assert sum(sizes) > MAX_PARTS * part_mib * MiB
    else:  # 5 GiB parts from the start: S3's largest object
        assert sum(sizes) == MAX_OBJECT_SIZE


def test_an_explicit_memory_limit_caps_the_part_size() -> None:
    p = plan_stream(UploadConfig(memory_limit=1 * GiB))
    assert max(p.part_size(n) for n in range(1, MAX_PARTS + 1)) == 1 * GiB
    assert p.capacity() == 1000 * MiB * (32 + 64 + 128 + 256 + 512) + 5000 * GiB
    # a limit below two parts: the parts grow up to it
    capped = plan_stream(UploadConfig(part_size=8 * MiB, memory_limit=12 * MiB))
    assert capped.capacity() == 1000 * 8 * MiB + 9000 * 12 * MiB
    fixed = plan_stream(UploadConfig(part_size=8 * MiB, memory_limit=8 * MiB))
    assert fixed.capacity() == MAX_PARTS * 8 * MiB


def test_an_expected_size_sizes_the_parts_up_front() -> None:
    p = plan_stream(UploadConfig(), 400 * GiB)
    assert p.start == 41 * MiB  # as for a 400 GiB file
    assert p.parts_for(400 * GiB) == -(-400 * GiB // (41 * MiB)) <= MAX_PARTS
    # past the expected size the parts still grow, instead of failing at once
    assert p.part_size(p.steady + 1) == 82 * MiB
    small = plan_stream(UploadConfig(), 1 * GiB)
    assert small.start == 32 * MiB and small.steady == 1000  # growth never starts earlier


@pytest.mark.parametrize("config,expected,message", [
    (UploadConfig(part_size=5 * MiB), 100 * GiB, "S3 allows 10000"),
    (UploadConfig(), MAX_OBJECT_SIZE + 1, "exceeds the largest"),
    (UploadConfig(memory_limit=16 * MiB), None, "smaller than one part"),
])
def test_plans_that_cannot_work_are_refused(config: UploadConfig, expected: int | None,
                                            message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        plan_stream(config, expected)
