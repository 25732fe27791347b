"""Pure part planning: ``plan(size, config) -> Plan``. Deterministic, so a resumed run
splits the file exactly as the first run did. Touches neither files nor network.

Rules (S3): parts of 5 MiB to 5 GiB except the last, which may be smaller; at most
10,000 parts. Without an explicit part size the default grows (in whole MiB) until the
file fits in 10,000 parts."""

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
from .values import Part, Plan

__all__ = ["Part", "Plan", "auto_part_size", "plan"]


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
