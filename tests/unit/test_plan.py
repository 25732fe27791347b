from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bigupload.config import GiB, MAX_OBJECT_SIZE, MAX_PART_SIZE, MAX_PARTS, MIN_PART_SIZE, MiB, UploadConfig
from bigupload.errors import ConfigError
from bigupload.plan import Part, auto_part_size, plan


@settings(max_examples=300, deadline=None)
@given(size=st.integers(min_value=0, max_value=MAX_OBJECT_SIZE))
def test_default_plan_obeys_s3_rules(size: int) -> None:
    p = plan(size, UploadConfig())
    assert p.part_count <= MAX_PARTS
    assert MIN_PART_SIZE <= p.part_size <= MAX_PART_SIZE
    if p.multipart:
        last = p.part(p.part_count)
        assert last.offset + last.length == size
        assert 0 < last.length <= p.part_size
        assert p.part(1).offset == 0
    else:
        assert size <= p.part_size


@settings(max_examples=100, deadline=None)
@given(size=st.integers(min_value=1, max_value=200 * GiB),
       part_mib=st.integers(min_value=5, max_value=5 * 1024))
def test_explicit_part_size_covers_file_contiguously_or_refuses(size: int, part_mib: int) -> None:
    config = UploadConfig(part_size=part_mib * MiB, multipart_threshold=0)
    try:
        p = plan(size, config)
    except ConfigError as exc:
        assert "10000 parts" in str(exc) or "S3 allows 10000" in str(exc)
        assert -(-size // (part_mib * MiB)) > MAX_PARTS
        return
    end = 0
    for part in p.parts() if p.part_count < 50 else [p.part(1), p.part(p.part_count)]:
        if p.part_count < 50:
            assert part.offset == end
        end = part.offset + part.length
    assert end == size


def test_plan_is_deterministic() -> None:
    config = UploadConfig()
    assert plan(123 * GiB + 7, config) == plan(123 * GiB + 7, config)


def test_part_size_grows_for_huge_files() -> None:
    assert auto_part_size(300 * GiB) == 32 * MiB  # 10,000 x 32 MiB = 312.5 GiB
    assert auto_part_size(400 * GiB) == 41 * MiB
    assert plan(MAX_OBJECT_SIZE, UploadConfig()).part_count == MAX_PARTS
    assert auto_part_size(1 * GiB) == 32 * MiB


def test_threshold_and_empty_files() -> None:
    assert not plan(0, UploadConfig()).multipart
    assert not plan(32 * MiB, UploadConfig()).multipart
    assert plan(32 * MiB + 1, UploadConfig()).multipart
    assert plan(32 * MiB + 1, UploadConfig()).part_count == 2
    # PutObject takes at most 5 GiB whatever the threshold
    assert plan(6 * GiB, UploadConfig(multipart_threshold=10 * GiB)).multipart


def test_a_single_request_plan_is_the_whole_file() -> None:
    """Above the part size but under the threshold: one part, the whole file."""
    single = plan(50 * MiB, UploadConfig(part_size=32 * MiB, multipart_threshold=64 * MiB))
    assert not single.multipart
    assert single.parts() == [Part(1, 0, 50 * MiB)]


@pytest.mark.parametrize("part_size", [MIN_PART_SIZE - 1, MAX_PART_SIZE + 1])
def test_explicit_part_size_outside_limits_is_refused(part_size: int) -> None:
    with pytest.raises(ConfigError, match="outside S3's limits"):
        UploadConfig(part_size=part_size)


def test_too_many_parts_is_refused_before_anything_is_sent() -> None:
    with pytest.raises(ConfigError, match="10000"):
        plan(100 * GiB, UploadConfig(part_size=5 * MiB))


def test_object_too_large() -> None:
    with pytest.raises(ConfigError, match="exceeds"):
        plan(MAX_OBJECT_SIZE + 1, UploadConfig())
