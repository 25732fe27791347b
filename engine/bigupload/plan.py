"""Pure part planning: ``plan(size, config) -> Plan`` for a file, ``plan_stream(config,
expected) -> StreamPlan`` for a stream of unknown size. Deterministic, so a resumed run
splits the file exactly as the first run did. Touches neither files nor network.

Rules (S3): parts of 5 MiB to 5 GiB except the last, which may be smaller; at most
10,000 parts. Without an explicit part size the default grows (in whole MiB) until the
file fits in 10,000 parts.

A stream's size is known only when it ends, so its part size grows as it goes: it
doubles every 1,000 parts (``STREAM_GROWTH_EVERY``) from the starting size, up to 5 GiB
or the explicit memory limit. From the default 32 MiB, 10,000 parts then carry about
17.5 TiB (``StreamPlan.capacity``), against 312 GiB at a fixed 32 MiB. Reaching S3's
largest object (10,000 parts of 5 GiB) would need 5 GiB parts from the start: only an
expected size says that is worth the memory. With ``--expected-size`` the first parts are
sized as for a file of that size, and growth starts only past it (if the stream turns
out longer than said, it still goes on)."""

from __future__ import annotations

from .config import (
    DEFAULT_PART_SIZE,
    MAX_OBJECT_SIZE,
    MAX_PART_SIZE,
    MAX_PARTS,
    MIN_PART_SIZE,
    MiB,
    UploadConfig,
    format_size,
)
from .errors import ConfigError
from .values import STREAM_GROWTH_EVERY, Part, Plan, StreamPlan

__all__ = ["Part", "Plan", "StreamPlan", "auto_part_size", "plan", "plan_stream"]


def auto_part_size(size: int) -> int:
    """The default part size, grown in whole MiB so ``size`` fits in 10,000 parts."""
    needed = -(-size // MAX_PARTS)
    return max(DEFAULT_PART_SIZE, -(-needed // MiB) * MiB)


def smallest_part_size(size: int) -> int:
    """The smallest part size, in whole MiB (as one would type it) and at least S3's
    minimum, that splits ``size`` bytes into at most 10,000 parts."""
    needed = -(-size // MAX_PARTS)
    return max(MIN_PART_SIZE, -(-needed // MiB) * MiB)


def plan(size: int, config: UploadConfig) -> Plan:
    """Split ``size`` bytes into parts; ConfigError if no valid split exists."""
    if size < 0:
        raise ConfigError("size must not be negative")
    if size > MAX_OBJECT_SIZE:
        raise ConfigError(
            f"{format_size(size)} exceeds the largest multipart object "
            f"({MAX_PARTS} parts of {format_size(MAX_PART_SIZE)})"
        )
    part_size = config.part_size if config.part_size is not None else auto_part_size(size)
    if -(-size // part_size) > MAX_PARTS:
        raise ConfigError(
            f"part size {format_size(part_size)} would need {-(-size // part_size)} parts for "
            f"{format_size(size)}; S3 allows {MAX_PARTS} (use --part-size "
            f"{smallest_part_size(size) // MiB}MiB or more, or omit it)"
        )
    threshold = config.multipart_threshold if config.multipart_threshold is not None else part_size
    # PutObject takes at most 5 GiB, whatever threshold was asked for.
    single_put_limit = min(threshold, MAX_PART_SIZE)
    return Plan(size=size, part_size=part_size, multipart=size > single_put_limit)


def plan_stream(config: UploadConfig, expected_size: int | None = None) -> StreamPlan:
    """The parts of a stream (see the module's docstring); ConfigError if the expected size
    cannot be carried, or one part would not fit in the memory limit."""
    if expected_size is None:
        start = config.part_size if config.part_size is not None else DEFAULT_PART_SIZE
        steady = STREAM_GROWTH_EVERY
    else:
        start = plan(expected_size, config).part_size  # the checks of a file that size
        steady = max(STREAM_GROWTH_EVERY, min(MAX_PARTS, -(-expected_size // start)))
    config.effective_memory_limit(start)  # a part must fit in the memory limit
    largest = MAX_PART_SIZE
    if config.memory_limit is not None:  # an explicit limit bounds the part size too
        largest = max(start, min(MAX_PART_SIZE, config.memory_limit // MiB * MiB))
    return StreamPlan(start=start, steady=steady, largest=largest, expected=expected_size)
