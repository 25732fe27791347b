"""The upload machines' transitions, without I/O: each test feeds a machine the answers a
driver would have got (an ``ObjectInfo``, a ``StoreError``, a reconciled listing) and
checks the decision. The expected ETags are computed here with hashlib, not by the code
under test."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib

import pytest

from bigupload.config import ChecksumAlgorithm, UploadConfig
from bigupload.errors import (
    ClusterError,
    DestinationChangedError,
    ExistsError,
    IntegrityError,
    NotFoundError,
    ResumeError,
    SourceChangedError,
    SourceError,
    StoreError,
    store_error,
)
from bigupload.journal import UploadRecord, UploadState
from bigupload.resume import Reconciliation
from bigupload.upload.machine import Close, Kind, Outcome, Phase, Reaction, Step, choose_kind
from bigupload.upload.multipart_machine import CHECK_ROUNDS, MultipartMachine
from bigupload.upload.put_machine import PutMachine
from bigupload.values import (
    DestinationGuard,
    Fingerprint,
    ObjectInfo,
    ObjectOptions,
    PartReceipt,
    PartRecord,
    Plan,
    Precondition,
)

MiB = 1 << 20
PLAN = Plan(size=12 * MiB, part_size=5 * MiB, multipart=True)  # 5 + 5 + 2 MiB
LENGTHS = {1: 5 * MiB, 2: 5 * MiB, 3: 2 * MiB}
MD5S = {n: hashlib.md5(f"part {n}".encode()).hexdigest() for n in LENGTHS}
PARTS = {n: PartRecord(n, LENGTHS[n], f'"{MD5S[n]}"', "") for n in LENGTHS}
OUR_MD5 = hashlib.md5(b"".join(bytes.fromhex(MD5S[n]) for n in (1, 2, 3))).hexdigest()
OUR_ETAG = f'"{OUR_MD5}-3"'
FINGERPRINT = Fingerprint("/data/f", PLAN.size, 1, 2, 3, "abc")
NONE = ChecksumAlgorithm.NONE  # no checksums: the ETags and sizes decide


def config(**kwargs: object) -> UploadConfig:
    return UploadConfig(part_size=5 * MiB, checksum=NONE, **kwargs)  # type: ignore[arg-type]


def machine(**kwargs: object) -> MultipartMachine:
    asked = {k: kwargs.pop(k) for k in ("restart", "adopt_upload_id", "from_journal")
             if k in kwargs}
    return MultipartMachine("b", "k", config(**kwargs), PLAN, ObjectOptions(checksum=NONE),
                            **asked)  # type: ignore[arg-type]


def ready_to_complete(m: MultipartMachine, guard: DestinationGuard) -> MultipartMachine:
    """A begun upload whose three parts are on the server."""
    m.begin(None if not guard.existed else ObjectInfo(1, guard.etag or "", None, None))
    m.started(row=7, now=1000.0)
    m.created("upload-1")
    for record in PARTS.values():
        m.part_sent(record)
    m.take_to_send()
    assert m.listing_checked() and m.source_checked([], "/data/f") is None
    assert m.next_step() is Step.COMPLETE
    return m


def ours(**kwargs: object) -> ObjectInfo:
    info = ObjectInfo(size=PLAN.size, etag=OUR_ETAG, checksum=None, checksum_type=None,
                      last_modified=datetime.datetime.fromtimestamp(2000, datetime.timezone.utc))
    return dataclasses.replace(info, **kwargs)  # type: ignore[arg-type]


def record(**kwargs: object) -> UploadRecord:
    row = UploadRecord(
        id=3, state=UploadState.ACTIVE, fingerprint=FINGERPRINT, endpoint="e", bucket="b",
        key="k", upload_id="upload-1", part_size=5 * MiB, part_count=3, checksum_algorithm="none",
        sse_c_key_hash=None, created_at=1000.0, updated_at=1100.0, etag=None, error=None,
        guard=DestinationGuard.absent())
    return dataclasses.replace(row, **kwargs)  # type: ignore[arg-type]


def test_one_put_unless_parts_a_journal_row_or_an_adopted_upload_say_otherwise() -> None:
    small = Plan(size=MiB, part_size=5 * MiB, multipart=False)
    assert choose_kind(small, journalled=False, adopting=False) is Kind.PUT
    assert choose_kind(small, journalled=True, adopting=False) is Kind.MULTIPART
    assert choose_kind(small, journalled=False, adopting=True) is Kind.MULTIPART
    assert choose_kind(PLAN, journalled=False, adopting=False) is Kind.MULTIPART


# beginning


def test_the_guard_is_recorded_when_the_upload_begins() -> None:
    m = machine()
    assert m.begin(None) == DestinationGuard.absent()
    m = machine()
    assert m.begin(ObjectInfo(1, '"e1"', None, None)) == DestinationGuard.present('"e1"')
    assert m.guard == DestinationGuard.present('"e1"')
    m.started(row=7, now=1000.0)
    assert (m.row, m.created_at, m.phase, m.next_step()) == (7, 1000.0, Phase.CREATE, Step.CREATE)


def test_no_overwrite_refuses_an_existing_key_before_anything_begins() -> None:
    with pytest.raises(ExistsError):
        machine(no_overwrite=True).begin(ObjectInfo(1, '"e1"', None, None))


def test_an_adopted_upload_is_listed_first_and_keeps_its_algorithm() -> None:
    from bigupload.values import PartListing

    m = MultipartMachine("b", "k", UploadConfig(part_size=5 * MiB), PLAN, ObjectOptions(),
                         adopt_upload_id="theirs")
    m.begin(None)
    m.adopted(PartListing([], checksum_algorithm="SHA256"))
    m.started(row=1, now=0.0)
    assert (m.upload_id, m.next_step()) == ("theirs", Step.LIST)
    assert m.algorithm is ChecksumAlgorithm.SHA256 and m.checksum_type == "COMPOSITE"
    assert [msg.text for msg in m.take_messages()] == m.notices and "sha256" in m.notices[0]
    with pytest.raises(ResumeError, match="cannot compute"):
        m.adopted(PartListing([], checksum_algorithm="MD5"))


def test_resume_takes_the_journals_settings_and_refuses_a_changed_file_or_key() -> None:
    m = machine()
    m.resume(record(part_size=6 * MiB), FINGERPRINT)
    assert (m.row, m.upload_id, m.plan.part_size) == (3, "upload-1", 6 * MiB)
    assert m.next_step() is Step.LIST
    assert m.notices and "part size" in m.notices[0]  # --part-size was given, and differs
    with pytest.raises(SourceChangedError):
        machine().resume(record(fingerprint=dataclasses.replace(FINGERPRINT, size=1)), FINGERPRINT)
    with pytest.raises(ResumeError, match="SSE-C"):
        machine().resume(record(sse_c_key_hash="other"), FINGERPRINT)


def test_a_resumed_row_without_an_upload_id_sweeps_first() -> None:
    m = machine()
    m.resume(record(upload_id=None), FINGERPRINT)
    assert m.next_step() is Step.SWEEP
    m.swept(None)
    assert m.next_step() is Step.CREATE
    m = machine()
    m.resume(record(upload_id=None), FINGERPRINT)
    m.swept("left-by-a-lost-create")
    assert (m.upload_id, m.next_step()) == ("left-by-a-lost-create", Step.LIST)


def test_restart_and_another_upload_id_abandon_the_journalled_upload() -> None:
    assert machine(restart=True).abandon_reason(record()) == "restarted"
    assert "--upload-id" in (machine(adopt_upload_id="x").abandon_reason(record()) or "")
    assert machine(adopt_upload_id="upload-1").abandon_reason(record()) is None
    with pytest.raises(ResumeError, match="no unfinished upload"):
        machine(from_journal=True).no_row("/data/f")


# RECONCILE and PARTS


def test_all_parts_listed_leads_to_completion() -> None:
    m = machine()
    m.resume(record(), FINGERPRINT)
    m.reconciled(Reconciliation(keep=dict(PARTS), verify={}, send=[], stale=[], extra=[]))
    m.listed()
    assert (m.resumed_parts, m.next_step()) == (3, Step.SEND)
    assert m.take_to_send() == [] and m.listing_checked()
    assert m.source_checked([], "/data/f") is None
    assert m.next_step() is Step.COMPLETE
    assert [p.number for p in m.completion_parts()] == [1, 2, 3]


def test_parts_missing_from_the_listing_are_sent_then_checked_a_bounded_number_of_times() -> None:
    m = machine()
    m.resume(record(), FINGERPRINT)
    m.reconciled(Reconciliation(keep={1: PARTS[1]}, verify={}, send=[3], stale=[], extra=[]))
    m.part_differs(2)  # a listed candidate the local bytes did not confirm
    m.listed()
    assert m.take_to_send() == [2, 3]
    for _ in range(CHECK_ROUNDS):
        m.part_differs(2)
        assert not m.listing_checked()
        assert m.take_to_send() == [2]
    m.part_differs(2)
    with pytest.raises(IntegrityError, match="still differ"):
        m.listing_checked()


def test_no_such_upload_at_listing_verifies_a_complete_journal_and_otherwise_starts_over() -> None:
    gone = NotFoundError("gone", code="NoSuchUpload")
    m = machine()
    m.resume(record(), FINGERPRINT)
    assert m.listing_failed(gone, dict(PARTS)) is Reaction.CONTINUE
    assert (m.next_step(), m.ownership) == (Step.VERIFY, True)

    m = machine()
    m.resume(record(), FINGERPRINT)
    assert m.listing_failed(gone, {1: PARTS[1]}) is Reaction.START_OVER
    assert m.start_over(None) == DestinationGuard.absent()
    m.started(row=8, now=2000.0)
    assert (m.upload_id, m.parts, m.next_step()) == (None, {}, Step.CREATE)

    m = machine(from_journal=True)
    m.resume(record(), FINGERPRINT)
    decision = m.listing_failed(gone, {1: PARTS[1]})
    assert isinstance(decision, Close) and not decision.abort
    assert decision.outcome is Outcome.ABORTED and isinstance(decision.error, ResumeError)

    m = machine()
    m.resume(record(), FINGERPRINT)
    assert m.listing_failed(NotFoundError("no bucket", code="NoSuchBucket"), {}) is Reaction.RAISE


def test_failures_while_sending_end_the_upload_only_when_resuming_cannot_help() -> None:
    m = ready_to_complete(machine(), DestinationGuard.absent())
    decision = m.parts_failed(ClusterError("killed every worker", abort=True))
    assert isinstance(decision, Close) and decision.confirm and decision.abort
    gone = NotFoundError("gone", code="NoSuchUpload")
    decision = m.parts_failed(gone)
    assert isinstance(decision, Close) and decision.cause is gone
    assert isinstance(decision.error, NotFoundError)
    assert "journal entry was closed" in str(decision.error)
    assert m.parts_failed(ClusterError("lost the scheduler")) is None
    assert m.parts_failed(StoreError("slow", code="SlowDown", retryable=True)) is None


def test_a_source_changed_during_the_upload_aborts_it() -> None:
    m = machine()
    m.resume(record(), FINGERPRINT)
    decision = m.source_checked(["modification time"], "/data/f")
    assert isinstance(decision, Close) and decision.abort and decision.outcome is Outcome.ABORTED
    assert isinstance(decision.error, SourceError) and m.phase is Phase.ABORT


# CREATE


def test_create_failures() -> None:
    m = MultipartMachine("b", "k", UploadConfig(part_size=5 * MiB), PLAN, ObjectOptions())
    assert m.checksum_type == "FULL_OBJECT"
    refused = StoreError("ChecksumType not supported", code="InvalidRequest")
    assert m.create_failed(refused, maybe_created=False) is Reaction.COMPOSITE
    assert m.checksum_type == "COMPOSITE" and m.options.checksum_type == "COMPOSITE"
    denied = StoreError("denied", code="AccessDenied")
    decision = m.create_failed(denied, maybe_created=False)
    assert isinstance(decision, Close) and decision.outcome is Outcome.FAILED and not decision.abort
    timeout = StoreError("timeout", code="RequestTimeout", retryable=True)
    assert machine().create_failed(timeout, maybe_created=True) is Reaction.RAISE


# COMPLETE


def test_completion_is_conditional_on_the_guard() -> None:
    m = ready_to_complete(machine(), DestinationGuard.absent())
    assert not m.condition_needs_head(True)
    assert m.completion_condition(None, True) == Precondition(if_none_match=True)
    m = ready_to_complete(machine(), DestinationGuard.present('"e1"'))
    assert m.completion_condition(None, True) == Precondition(if_match='"e1"')


def test_412_at_completion_is_contested_then_superseded_unless_the_object_is_ours() -> None:
    m = ready_to_complete(machine(), DestinationGuard.absent())
    refused = StoreError("At least one of the pre-conditions failed", code="PreconditionFailed")
    assert m.completion_failed(refused, conditioned=True) is Reaction.CONTINUE
    assert m.next_step() is Step.CONTESTED
    decision = m.contested_answer(ours(etag='"someone-elses"', size=1))
    assert isinstance(decision, Close) and decision.abort and decision.outcome is Outcome.SUPERSEDED
    assert isinstance(decision.error, DestinationChangedError) and m.phase is Phase.ABORT

    m = ready_to_complete(machine(no_overwrite=True), DestinationGuard.absent())
    m.completion_failed(refused, conditioned=True)
    decision = m.contested_answer(None)
    assert isinstance(decision, Close) and isinstance(decision.error, ExistsError)

    m = ready_to_complete(machine(), DestinationGuard.absent())
    m.completion_failed(refused, conditioned=True)
    assert m.contested_answer(ours()) is None  # our bytes: was it our completion?
    assert m.contested_listed(False) is False  # our upload is gone: a lost answer, ours
    assert (m.next_step(), m.ownership) == (Step.VERIFY, False)
    assert not m.notices

    m = ready_to_complete(machine(), DestinationGuard.absent())
    m.completion_failed(refused, conditioned=True)
    assert m.contested_answer(ours()) is None
    assert m.contested_listed(True) is True  # still open: another run's identical write
    assert m.next_step() is Step.VERIFY  # after the abort, the object is verified as ours
    assert any("an identical object was already there" in n for n in m.notices)


def test_501_at_completion_falls_back_to_a_head() -> None:
    m = ready_to_complete(machine(), DestinationGuard.present('"e1"'))
    unsupported = StoreError("not implemented", code="NotImplemented")
    assert m.completion_failed(unsupported, conditioned=True) is Reaction.NO_CONDITIONS
    assert m.next_step() is Step.COMPLETE and m.condition_needs_head(False)
    assert m.completion_condition(ObjectInfo(1, '"e1"', None, None), False) is None
    decision = m.completion_condition(ObjectInfo(1, '"e2"', None, None), False)
    assert isinstance(decision, Close) and decision.outcome is Outcome.SUPERSEDED
    assert "ETag \"e1\" became \"e2\"" in decision.reason


def test_a_row_without_a_guard_on_a_server_without_conditions_completes_unconditionally() -> None:
    """A row from before guards were recorded, on a server that answers 501 to
    conditions: the HEAD decides, and no condition is sent (it would be refused again)."""
    m = ready_to_complete(machine(), DestinationGuard.absent())
    m.guard = DestinationGuard.unknown()
    assert m.condition_needs_head(False)
    assert m.completion_condition(None, False) is None
    assert m.completion_condition(None, True) == Precondition(if_none_match=True)
    newer = ObjectInfo(1, '"e1"', None, None,
                       last_modified=datetime.datetime.fromtimestamp(9999, datetime.timezone.utc))
    decision = m.completion_condition(newer, False)
    assert isinstance(decision, Close) and "after the upload began" in decision.reason


def test_no_such_upload_at_completion_verifies_whether_the_object_is_ours() -> None:
    gone = NotFoundError("gone", code="NoSuchUpload")
    m = ready_to_complete(machine(), DestinationGuard.absent())
    assert m.completion_failed(gone, conditioned=True) is Reaction.CONTINUE
    assert (m.next_step(), m.ownership) == (Step.VERIFY, True)
    assert m.verify_answer(ours()) is None
    assert (m.phase, m.resumed_parts, m.info) == (Phase.DONE, 3, ours())
    assert m.verified  # the MD5 ETag compared the bytes

    m = ready_to_complete(machine(), DestinationGuard.absent())
    m.completion_failed(gone, conditioned=True)
    decision = m.verify_answer(ours(etag='"' + "0" * 32 + '-3"'))
    assert isinstance(decision, Close) and not decision.abort
    assert isinstance(decision.error, ResumeError) and "ETag" in decision.reason

    m = ready_to_complete(machine(), DestinationGuard.absent())
    m.completion_failed(gone, conditioned=True)
    old = ours(last_modified=datetime.datetime.fromtimestamp(0, datetime.timezone.utc))
    decision = m.verify_answer(old)  # older than the upload: not ours
    assert isinstance(decision, Close) and "before this upload began" in decision.reason


def test_other_completion_failures() -> None:
    m = ready_to_complete(machine(), DestinationGuard.absent())
    assert m.completion_failed(StoreError("x", code="InternalError", retryable=True), True) \
        is Reaction.RAISE
    assert m.completion_failed(store_error("x", code="AccessDenied"), True) is Reaction.RAISE
    assert m.completion_failed(store_error("x", code="ExpiredToken"), True) is Reaction.RAISE
    assert m.completion_failed(NotFoundError("x", code="NoSuchBucket"), True) is Reaction.RAISE
    decision = m.completion_failed(StoreError("x", code="InvalidPart"), True)
    assert isinstance(decision, Close) and decision.outcome is Outcome.ABORTED
    assert "completion rejected" in decision.reason


def test_verify_after_our_own_completion() -> None:
    m = ready_to_complete(machine(), DestinationGuard.absent())
    m.completed()
    with pytest.raises(IntegrityError, match="missing"):
        m.verify_answer(None)
    with pytest.raises(IntegrityError, match="does not match"):
        m.verify_answer(ours(size=1))
    assert m.verify_answer(ours(etag='"not-an-md5"')) is None  # after our own completion
    assert m.phase is Phase.DONE and not m.verified  # only the size was compared
    result = m.result(1.5)
    assert (result.parts, result.part_size, result.upload_id) == (3, 5 * MiB, "upload-1")
    assert result.verified is False


# the single PUT


def put_machine(**kwargs: object) -> PutMachine:
    small = Plan(size=MiB, part_size=5 * MiB, multipart=False)
    return PutMachine("b", "k", UploadConfig(**kwargs), small, ObjectOptions())  # type: ignore[arg-type]


def test_put_looks_first_only_with_no_overwrite() -> None:
    assert put_machine().next_step() is Step.PUT
    m = put_machine(no_overwrite=True)
    assert m.next_step() is Step.LOOK
    with pytest.raises(ExistsError):
        m.looked_at(ObjectInfo(1, '"e"', None, None))
    m = put_machine(no_overwrite=True)
    m.looked_at(None)
    assert (m.next_step(), m.condition) == (Step.PUT, Precondition(if_none_match=True))
    assert isinstance(m.put_failed(StoreError("x", code="PreconditionFailed")), ExistsError)


def test_put_checksums_again_after_a_bad_digest() -> None:
    m = put_machine()
    assert m.reread
    m.checksummed(b"\x00\x00\x00\x01")
    assert not m.reread and m.header() == "AAAAAQ=="
    assert m.put_failed(IntegrityError("BadDigest", code="BadDigest", retryable=True)) is None
    assert m.reread


def test_put_verified_by_the_echoed_checksum_or_by_a_head() -> None:
    m = put_machine()
    m.checksummed(b"\x00\x00\x00\x01")
    m.sent(PartReceipt('"e"', "AAAAAQ=="), [], "/data/f")
    assert m.next_step() is Step.DONE and m.result(0.1).checksum == "AAAAAQ=="
    m = put_machine()
    m.checksummed(b"\x00\x00\x00\x01")
    m.sent(PartReceipt('"e"', None), [], "/data/f")
    assert m.next_step() is Step.VERIFY
    m.checked(ObjectInfo(MiB, '"e"', "AAAAAQ==", None, checksum_algorithm="CRC32C"))
    assert m.next_step() is Step.DONE and m.verified
    m = put_machine()
    with pytest.raises(SourceError, match="changed while it was being uploaded"):
        m.sent(PartReceipt('"e"', None), ["size 1 -> 2 bytes"], "/data/f")
