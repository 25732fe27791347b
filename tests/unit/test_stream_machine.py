"""The stream kind's transitions (``StreamMachine``), without I/O: each test feeds the
machine what a driver would have read or been answered and checks the decision. Sizes
and checksums are computed here from the bytes the test makes up."""

from __future__ import annotations

import pytest

from bigupload import checksum as ck
from bigupload.config import ChecksumAlgorithm, MiB, UploadConfig
from bigupload.errors import DestinationChangedError, ExistsError, SourceError, StoreError
from bigupload.upload.machine import Outcome, Phase, Step
from bigupload.upload.stream_machine import StreamMachine
from bigupload.values import ObjectInfo, ObjectOptions, PartReceipt, PartRecord, StreamPlan

PLAN = StreamPlan(start=5 * MiB, steady=2, largest=20 * MiB)
CRC = ChecksumAlgorithm.CRC32C


def machine(**kwargs: object) -> StreamMachine:
    config = UploadConfig(part_size=5 * MiB, **kwargs)  # type: ignore[arg-type]
    return StreamMachine("b", "k", config, PLAN, ObjectOptions(checksum=CRC))


def raw(data: bytes) -> bytes:
    return ck.compute(CRC, data)


def test_look_then_read() -> None:
    m = machine()
    assert m.next_step() is Step.LOOK
    m.looked_at(ObjectInfo(3, '"e"', None, None))
    assert m.guard.existed and m.guard.etag == '"e"'
    assert m.next_step() is Step.READ


def test_no_overwrite_refuses_before_reading() -> None:
    m = machine(no_overwrite=True)
    with pytest.raises(ExistsError):
        m.looked_at(ObjectInfo(3, '"e"', None, None))


@pytest.mark.parametrize("data", [b"", b"abc", b"x" * (5 * MiB)])
def test_a_stream_that_ends_in_its_first_part_is_one_put(data: bytes) -> None:
    m = machine(no_overwrite=True)
    m.looked_at(None)
    m.opened(len(data), raw(data), more=False)
    assert m.next_step() is Step.PUT and m.single and m.part_count == 1
    assert m.header() == ck.encode(raw(data))
    assert m.condition is not None and m.condition.if_none_match
    refused = StoreError("PreconditionFailed", code="PreconditionFailed", status=412)
    assert isinstance(m.put_failed(refused), ExistsError)
    m.put_sent(PartReceipt('"etag"', ck.encode(raw(data))))  # the server's echo verifies
    assert m.next_step() is Step.DONE
    result = m.result(1.0)
    assert (result.size, result.parts, result.part_size, result.upload_id) == (
        len(data), 1, len(data), None)
    assert result.checksum == ck.encode(raw(data)) and result.checksum_type is None


def test_one_put_without_an_echo_is_verified_by_head() -> None:
    m = machine()
    m.looked_at(None)
    m.opened(3, raw(b"abc"), more=False)
    m.put_sent(PartReceipt('"etag"', None))
    assert m.next_step() is Step.VERIFY
    m.checked(ObjectInfo(3, '"etag"', ck.encode(raw(b"abc")), "FULL_OBJECT"))
    assert m.next_step() is Step.DONE


def test_a_stream_that_goes_on_is_multipart_with_growing_parts(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bigupload.values.STREAM_GROWTH_EVERY", 2)  # 5, 5, 10, 10, 20, 20
    m = machine()
    m.looked_at(None)
    with pytest.raises(AssertionError):  # a short first part is the whole stream
        m.opened(4 * MiB, b"", more=True)
    m.opened(5 * MiB, b"", more=True)
    assert m.next_step() is Step.CREATE
    m.started(row=3, now=1000.0)
    m.created("up-1")
    assert m.next_step() is Step.SEND
    lengths = []
    for _ in range(4):
        part = m.next_part()
        lengths.append(part.length)
        m.part_read(part, part.length)
    assert lengths == [5 * MiB, 10 * MiB, 10 * MiB, 20 * MiB]  # parts 2..5
    assert not m.ended
    last = m.next_part()
    assert (last.number, last.offset) == (6, 50 * MiB)
    m.part_read(last, 7)  # short: the end
    assert m.ended and m.read_parts == 6 and m.read_bytes == 50 * MiB + 7
    for n in range(1, 7):
        m.part_sent(PartRecord(n, 1, f'"{n}"', ""))
    m.stream_sent()
    assert m.next_step() is Step.COMPLETE and m.plan.size == 50 * MiB + 7
    assert [p.number for p in m.completion_parts()] == [1, 2, 3, 4, 5, 6]


def test_ending_on_a_part_boundary() -> None:
    m = machine()
    m.looked_at(None)
    m.opened(5 * MiB, b"", more=True)
    part = m.next_part()
    m.part_read(part, part.length)
    empty = m.next_part()
    m.part_read(empty, 0)
    assert m.ended and m.read_parts == 2 and m.read_bytes == 10 * MiB


def test_completing_before_every_part_is_acknowledged_is_a_bug() -> None:
    m = machine()
    m.looked_at(None)
    m.opened(5 * MiB, b"", more=True)
    m.part_read(m.next_part(), 0)
    with pytest.raises(AssertionError):
        m.stream_sent()


def test_past_the_last_part_s3_allows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bigupload.upload.stream_machine.MAX_PARTS", 2)
    m = machine()
    m.looked_at(None)
    m.opened(5 * MiB, b"", more=True)
    second = m.next_part()
    m.part_read(second, second.length)
    probe = m.next_part()
    assert (probe.number, probe.length) == (3, 1)  # one byte, to see if the stream ends
    with pytest.raises(SourceError, match="--expected-size"):
        m.part_read(probe, 1)
    m.part_read(probe, 0)  # it ended there: fine
    assert m.ended and m.read_parts == 2


def test_stopping_ends_the_upload() -> None:
    m = machine()
    assert m.stopped(ValueError("x")) is None  # nothing begun: nothing to end
    m.looked_at(None)
    m.opened(5 * MiB, b"", more=True)
    m.started(row=3, now=1000.0)
    failed = m.stopped(StoreError("refused"))
    assert failed is not None and failed.outcome is Outcome.FAILED  # no upload was made
    assert not failed.abort and m.phase is Phase.ABORT
    m = machine()
    m.looked_at(None)
    m.opened(5 * MiB, b"", more=True)
    m.started(row=3, now=1000.0)
    m.created("up-1")
    decision = m.stopped(RuntimeError("cancelled by scope"), interrupted=True)
    assert decision is not None and decision.abort and decision.confirm
    assert decision.outcome is Outcome.ABORTED
    assert decision.reason == "a stream cannot be resumed: interrupted"
    assert m.stopped(ValueError("again")) is None  # already closed


def test_after_completion_there_is_nothing_to_abort() -> None:
    m = machine()
    m.looked_at(None)
    m.opened(5 * MiB, b"", more=True)
    m.started(row=3, now=1000.0)
    m.created("up-1")
    m.completed()
    decision = m.stopped(ValueError("verify failed"))
    assert decision is not None and not decision.abort


def test_a_superseded_stream_gives_no_restart_advice() -> None:
    m = machine()
    m.looked_at(None)
    decision = m.superseded("an object with ETag x was written")
    assert isinstance(decision.error, DestinationChangedError)
    assert "--restart" not in str(decision.error)
    assert "a stream cannot be resumed" in str(decision.error)
