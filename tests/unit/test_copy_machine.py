"""The copy kinds' pure decisions: the plan (one CopyObject up to 5 GiB unless told),
the kind, the algorithm that follows the source, what is carried over, and when a copy
counts as compared with its source."""

from __future__ import annotations

import datetime

import pytest

from bigupload.config import ChecksumAlgorithm, GiB, MiB, UploadConfig
from bigupload.errors import ExistsError, SourceChangedError, StoreError
from bigupload.upload.copy_machine import (
    CopyObjectMachine,
    choose_copy_kind,
    copy_algorithm,
    copy_options,
    judge_copy,
    plan_copy,
)
from bigupload.upload.machine import Kind, Step
from bigupload.values import CopySource, CopySourceInfo, ObjectInfo, ObjectOptions

WHEN = datetime.datetime(2026, 5, 1, tzinfo=datetime.timezone.utc)
MD5 = '"9e107d9d372bb6826bd81d3542a419d6"'


def origin(checksum: str | None = None, algorithm: str | None = None,
           checksum_type: str | None = None, etag: str = MD5, size: int = 100) -> CopySourceInfo:
    return CopySourceInfo(CopySource("a", "k", size, etag, WHEN), content_type="text/csv",
                          metadata={"m": "1"}, tag_count=2, checksum=checksum,
                          checksum_type=checksum_type, checksum_algorithm=algorithm)


@pytest.mark.parametrize("size, settings, multipart", [
    (5 * GiB, {}, False),  # the largest CopyObject
    (5 * GiB + 1, {}, True),
    (100 * MiB, {"multipart_threshold": 64 * MiB}, True),
    (64 * MiB, {"multipart_threshold": 64 * MiB}, False),
    (1, {"multipart_threshold": 0}, True),
    (0, {}, False),
])
def test_plan(size: int, settings: dict[str, int], multipart: bool) -> None:
    the_plan = plan_copy(size, UploadConfig(**settings))
    assert the_plan.multipart is multipart
    assert choose_copy_kind(the_plan, journalled=False) is (
        Kind.MULTIPART_COPY if multipart else Kind.COPY)
    assert choose_copy_kind(the_plan, journalled=True) is Kind.MULTIPART_COPY


def test_a_multipart_copy_is_planned_in_parts_as_a_file() -> None:
    the_plan = plan_copy(500 * GiB, UploadConfig())
    # 500 GiB / 10,000 = 51.2 MiB, rounded up to whole MiB
    assert the_plan.part_count <= 10_000 and the_plan.part_size == 52 * MiB


def test_the_algorithm_follows_a_whole_object_crc_only() -> None:
    config = UploadConfig()
    assert copy_algorithm(config, origin("AAAAAAAAAAA=", "CRC64NVME", "FULL_OBJECT"),
                          follow_source=True).checksum is ChecksumAlgorithm.CRC64NVME
    assert copy_algorithm(config, origin("AAAAAA==", "CRC32"),
                          follow_source=True).checksum is ChecksumAlgorithm.CRC32
    # composite, SHA-256, none, or not asked to: the configured one
    for info in (origin("AAAAAA==-3", "CRC32", "COMPOSITE"), origin("x" * 44, "SHA256"), origin()):
        assert copy_algorithm(config, info, follow_source=True) is config
    assert copy_algorithm(config, origin("AAAAAA==", "CRC32"), follow_source=False) is config
    typed = UploadConfig(checksum_type="COMPOSITE")
    assert copy_algorithm(typed, origin("AAAAAA==", "CRC32"), follow_source=True) is typed


def test_what_is_carried_over() -> None:
    options, replace = copy_options(UploadConfig(storage_class="GLACIER_IR"), origin())
    assert (options.content_type, dict(options.metadata)) == ("text/csv", {"m": "1"})
    assert not replace
    assert options.storage_class == "GLACIER_IR"
    options, replace = copy_options(UploadConfig(content_type="x/y"), origin())
    assert (options.content_type, dict(options.metadata), replace) == ("x/y", {"m": "1"}, True)
    options, replace = copy_options(UploadConfig(metadata={"n": "2"}), origin())
    assert (options.content_type, dict(options.metadata), replace) == ("text/csv", {"n": "2"}, True)


def test_a_copy_is_compared_with_its_source_only() -> None:
    crc = ChecksumAlgorithm.CRC32C
    same = ObjectInfo(100, MD5, "AAAAAA==", "FULL_OBJECT", checksum_algorithm="CRC32C")
    verdict = judge_copy(same, origin("AAAAAA==", "CRC32C"), crc, frozenset())
    assert verdict.ours and verdict.compared == ("size", "checksum", "etag")
    wrong = ObjectInfo(100, '"0f"', "BBBBBB==", "FULL_OBJECT", checksum_algorithm="CRC32C")
    verdict = judge_copy(wrong, origin("AAAAAA==", "CRC32C"), crc, frozenset())
    assert not verdict.ours and "the source's AAAAAA==" in verdict.problems[0]
    # the source reports no CRC32C: the parts' value must hold, but compares nothing
    verdict = judge_copy(wrong, origin(etag='"abc-2"'), crc, frozenset({"BBBBBB=="}))
    assert verdict.ours and not verdict.content_checked
    verdict = judge_copy(wrong, origin(etag='"abc-2"'), crc, frozenset({"CCCCCC=="}))
    assert not verdict.ours
    # an ETag that differs says nothing (SSE-KMS); the size always counts
    verdict = judge_copy(ObjectInfo(99, '"0f"', None, None), origin(), crc, frozenset())
    assert verdict.problems == ("size 99 != 100",) and not verdict.content_checked


def machine(no_overwrite: bool = False) -> CopyObjectMachine:
    config = UploadConfig(no_overwrite=no_overwrite)
    return CopyObjectMachine("b", "k", config, plan_copy(100, config), ObjectOptions(), origin(),
                             replace_metadata=False)


def test_a_refused_copy_object_asks_whose_condition_failed() -> None:
    m = machine(no_overwrite=True)
    assert m.next_step() is Step.LOOK
    m.looked_at(None)
    assert m.next_step() is Step.COPY
    assert m.copy_failed(StoreError("412", code="PreconditionFailed"))
    assert m.next_step() is Step.CONTESTED
    assert isinstance(m.contested_answer(origin(etag='"other"')), SourceChangedError)
    assert isinstance(m.contested_answer(None), SourceChangedError)  # deleted
    assert isinstance(m.contested_answer(origin()), ExistsError)  # unchanged: the key exists
    assert not m.copy_failed(StoreError("500", code="InternalError"))
    with pytest.raises(ExistsError):
        machine(no_overwrite=True).looked_at(ObjectInfo(1, MD5, None, None))
