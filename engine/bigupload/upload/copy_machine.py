"""The server-side copy kinds: ``s3://a/k`` to ``s3://b/k`` on one endpoint, no byte of
the object passing through the client.

    single request (CopyObjectMachine)     [LOOK] -> COPY -> VERIFY -> DONE
                                           COPY --412--> CONTESTED (HEAD the source): it
                                           changed (exit 8), or the key exists (exit 11)
    multipart      (MultipartCopyMachine)  the multipart kind's phases (RECONCILE, CREATE,
                                           PARTS, COMPLETE, VERIFY); a part is an
                                           UploadPartCopy of a byte range of the source

What differs from a file's upload, and why:

- **The source is an object**, named by ``values.CopySource``: its identity (ETag, size,
  LastModified, version id) is journalled with the upload; a resume HEADs it (that
  version, if it has one) and compares. A copy whose source changed is aborted: without a
  version id the old bytes are gone, and nothing can complete it.
- **Every read of the source is conditional on its ETag** (``x-amz-copy-source-if-match``),
  so a source rewritten mid-copy is refused (412) rather than stitched from two versions:
  the copy is aborted, exit 8. A server that ignores the condition (moto) is caught by
  one more HEAD of the source before completing.
- **Checksums are the server's.** With an algorithm declared at creation, UploadPartCopy
  answers each part's checksum (S3, SeaweedFS; moto does not): when every part has one,
  the completion carries their combined full-object CRC, which the server checks. A copy
  is *verified* only against the source: the copy's whole-object checksum equal to the
  source's (same algorithm: ``copy_algorithm`` follows the source's CRC when asked), or
  the copy's MD5 ETag equal to the source's. When the source reports a whole-object CRC
  in the copy's algorithm, the parts must combine to it before the copy is completed.
- **A listed part the journal does not confirm** cannot be checked against local bytes:
  it is kept if the server lists it with a checksum (S3 does), else copied again (which
  costs the server a copy, and the client nothing).
- **The plan**: CopyObject up to the multipart threshold, which for a copy defaults to
  5 GiB, the largest object CopyObject takes; parts above it as for files.

Pure: no I/O (the drivers are ``copy.py``)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from .. import verify
from ..config import MAX_PART_SIZE, ChecksumAlgorithm, UploadConfig
from ..errors import ExistsError, IntegrityError, SourceChangedError, StoreError
from ..plan import plan as plan_parts
from ..values import (
    CopySource,
    CopySourceInfo,
    ObjectInfo,
    ObjectOptions,
    PartReceipt,
    PartRecord,
    Plan,
    Precondition,
)
from .machine import Close, Kind, Outcome, Phase, Step, UploadMachine
from .multipart_machine import MultipartMachine
from .result import UploadResult

if TYPE_CHECKING:
    from ..journal import UploadRecord

CRCS = (ChecksumAlgorithm.CRC32, ChecksumAlgorithm.CRC32C, ChecksumAlgorithm.CRC64NVME)


def plan_copy(size: int, config: UploadConfig) -> Plan:
    """Parts as for a file, but one CopyObject up to the multipart threshold, which
    defaults to the largest object CopyObject takes (5 GiB) rather than to a part."""
    threshold = MAX_PART_SIZE if config.multipart_threshold is None else config.multipart_threshold
    return plan_parts(size, dataclasses.replace(config, multipart_threshold=threshold))


def choose_copy_kind(plan: Plan, *, journalled: bool) -> Kind:
    """One CopyObject, unless the object needs parts or the journal has an unfinished
    multipart copy of it (resumed even when today's settings would copy it in one)."""
    return Kind.MULTIPART_COPY if plan.multipart or journalled else Kind.COPY


def copy_algorithm(config: UploadConfig, origin: CopySourceInfo, *,
                   follow_source: bool) -> UploadConfig:
    """The settings the copy runs with. ``follow_source``: when the source reports a
    whole-object CRC, the copy uses that algorithm (and its default checksum type), so the
    copy's checksum can be compared with the source's."""
    if not follow_source or config.checksum_type is not None:
        return config
    for algorithm in CRCS:
        if origin.full_object_checksum(algorithm.s3_name) is not None:
            return dataclasses.replace(config, checksum=algorithm)
    return config


def copy_options(config: UploadConfig, origin: CopySourceInfo) -> tuple[ObjectOptions, bool]:
    """What the copy gets, and whether it replaces the source's content type and
    metadata: the source's are carried over unless ``--content-type`` or ``--metadata``
    says otherwise (``--metadata`` replaces the whole set, as ``aws s3 cp`` does)."""
    replace = bool(config.content_type or config.metadata)
    options = ObjectOptions.from_config(config, config.content_type or origin.content_type)
    metadata = dict(config.metadata) if config.metadata else dict(origin.metadata)
    return dataclasses.replace(options, metadata=metadata), replace


def source_changed(source: CopySource, now: CopySourceInfo | None, where: str,
                   when: str) -> SourceChangedError | None:
    """The error for a source that is no longer the object the copy began with, or None."""
    if now is None:
        return SourceChangedError(f"{source.url} was deleted {when}; the copy to {where} was "
                                  "aborted and nothing was written")
    if changes := source.differences(now.source):
        return SourceChangedError(f"{source.url} changed {when} ({', '.join(changes)}); the "
                                  f"copy to {where} was aborted and nothing was written: run "
                                  "the command again to copy the new object")
    return None


def judge_copy(info: ObjectInfo, origin: CopySourceInfo, algorithm: ChecksumAlgorithm,
               own: frozenset[str]) -> verify.Verdict:
    """Is ``info`` a copy of ``origin``? The size must match. The content is compared
    only with the source's: a whole-object checksum the copy reports in the algorithm the
    source reports one in, or an MD5 ETag equal to the source's. ``own``: what the copy's
    checksum must be in ``algorithm`` by the parts the server answered (a mismatch is a
    problem, a match is not a comparison with the source)."""
    problems: list[str] = []
    compared: list[str] = []
    size = origin.source.size
    if info.size != size:
        problems.append(f"size {info.size} != {size}")
    else:
        compared.append("size")
    if info.checksum is not None and info.checksum_algorithm is not None:
        theirs = origin.full_object_checksum(info.checksum_algorithm)
        if theirs is not None and "-" not in info.checksum:
            if info.checksum == theirs:
                compared.append("checksum")
            else:
                problems.append(f"checksum {info.checksum} != the source's {theirs}")
        elif own and info.checksum_algorithm == algorithm.s3_name:
            accepted = set(own) | {c.split("-")[0] for c in own if c.count("-") == 1}
            if info.checksum not in accepted:
                problems.append(f"checksum {info.checksum} != {sorted(own)[0]}")
    source_md5 = verify.md5_hex(origin.source.etag)
    if source_md5 is not None and "-" not in source_md5 and \
            verify.md5_hex(info.etag) == source_md5:
        compared.append("etag")  # a mismatch says nothing: SSE-KMS ETags are not MD5s
    return verify.Verdict(tuple(problems), tuple(compared))


class CopyObjectMachine(UploadMachine):
    """One CopyObject, conditional on the source's ETag (and, with --no-overwrite, on the
    key being absent). ``origin`` is the source as its HEAD described it."""

    def __init__(self, bucket: str, key: str, config: UploadConfig, plan: Plan,
                 options: ObjectOptions, origin: CopySourceInfo, *,
                 replace_metadata: bool) -> None:
        super().__init__(bucket, key, config, plan, options)
        self.phase = Phase.COPY
        self.origin = origin
        self.source = origin.source
        self.replace_metadata = replace_metadata
        self.condition: Precondition | None = None
        self.looked = not config.no_overwrite
        self.refused: str | None = None  # a 412: whose condition failed is asked next
        self.receipt: PartReceipt | None = None

    def next_step(self) -> Step:
        if self.phase is Phase.COPY:
            if not self.looked:
                return Step.LOOK
            return Step.COPY if self.refused is None else Step.CONTESTED
        if self.phase is Phase.VERIFY:
            return Step.VERIFY
        if self.phase is Phase.DONE:
            return Step.DONE
        raise AssertionError(f"a CopyObject has no step from {self.phase}")

    def looked_at(self, existing: ObjectInfo | None) -> None:
        """LOOK, finished (--no-overwrite): refuse at once if the key exists, and make
        the copy itself conditional on its absence."""
        self.looked = True
        if existing is not None:
            raise ExistsError(f"{self.where} exists, not overwritten (--no-overwrite)")
        self.condition = Precondition(if_none_match=True)

    def copy_failed(self, exc: StoreError) -> bool:
        """COPY failed: True when the machine takes it up (a 412: the source's ETag or the
        destination's absence no longer holds, CONTESTED says which), False to let it stand."""
        if exc.precondition_failed:
            self.refused = str(exc)
            return True
        return False

    def contested_answer(self, now: CopySourceInfo | None) -> BaseException:
        """CONTESTED, finished: the source's HEAD after a 412. The error to raise: the
        source changed, or else the key exists (--no-overwrite)."""
        detail, self.refused = self.refused or "412", None
        if (changed := source_changed(self.source, now, self.where, "before it was copied")):
            return changed
        if self.condition is not None:
            return ExistsError(f"{self.where} exists, not overwritten (--no-overwrite)")
        return StoreError(f"CopyObject {self.where}: refused (412) though {self.source.url} "
                          f"is unchanged: {detail}", operation="CopyObject",
                          bucket=self.bucket, key=self.key, code="PreconditionFailed")

    def copied(self, receipt: PartReceipt) -> None:
        """COPY, finished: the server made the object; VERIFY it."""
        self.receipt = receipt
        self.parts = {1: PartRecord(1, self.plan.size, receipt.etag, receipt.checksum or "")}
        self.sent_bytes = self.plan.size
        self.phase = Phase.VERIFY

    def expected(self, *, ownership: bool = False) -> verify.Expected:
        return verify.Expected(size=self.plan.size, algorithm=self.algorithm_name())

    def checked(self, info: ObjectInfo | None) -> None:
        """VERIFY, finished: the object must be there, a copy of the source."""
        if info is None:
            raise IntegrityError(f"{self.where}: object missing right after the copy",
                                 operation="HeadObject", bucket=self.bucket, key=self.key)
        own = frozenset({self.receipt.checksum} if self.receipt and self.receipt.checksum
                        else ())
        verdict = judge_copy(info, self.origin, self.algorithm, own)
        if not verdict.ours:
            raise IntegrityError(f"{self.where}: the copy does not match {self.source.url}: "
                                 + "; ".join(verdict.problems), operation="HeadObject",
                                 bucket=self.bucket, key=self.key)
        kept = info.checksum_algorithm
        if kept is not None and kept != self.algorithm_name():
            self.say(f"{self.where} has the source's {kept} checksum: the server kept it "
                     f"instead of computing {self.algorithm.value}", notice=False)
            self.use_algorithm(ChecksumAlgorithm(kept.lower()), self.checksum_type)
        self.done(info, content_checked=verdict.content_checked)

    def own_checksum(self) -> str | None:
        return None

    def full_object(self) -> str | None:
        return None

    def result(self, elapsed: float) -> UploadResult:
        return dataclasses.replace(super().result(elapsed), copied_from=self.source.url)


class MultipartCopyMachine(MultipartMachine):
    """A multipart upload whose parts are UploadPartCopy of the source's byte ranges,
    journalled and resumable as a file's. ``origin`` is the source as its HEAD described
    it when this run began (a resumed copy's must be the journalled one)."""

    def __init__(self, bucket: str, key: str, config: UploadConfig, plan: Plan,
                 options: ObjectOptions, origin: CopySourceInfo, *, restart: bool = False,
                 from_journal: bool = False) -> None:
        super().__init__(bucket, key, config, plan, options, restart=restart,
                         from_journal=from_journal)
        self.origin = origin
        self.source = origin.source

    # RECONCILE: a journal row of this copy

    def resume_copy(self, record: UploadRecord) -> Close | None:
        """Take up a journalled copy: its source must be the object the copy began with
        (else the copy is aborted: nothing can complete it); then as a file's upload."""
        began = record.copy_source
        if began is None:
            raise AssertionError(f"row {record.id} is a file's upload, not a copy")
        if error := source_changed(began, self.origin, self.where, "since the copy began"):
            self.row = record.id
            self.upload_id = record.upload_id
            return self.close(Outcome.ABORTED, str(error), error, confirm=True)
        self.source = began
        self.resume(record, began.fingerprint())
        return None

    def listed_candidate(self, number: int, length: int,
                         checksums: list[tuple[str, str | None]]) -> PartRecord | None:
        """A listed part (etag, checksum, newest last) the journal does not confirm: kept
        if the server lists its checksum, else None (copy it again)."""
        for etag, checksum in reversed(checksums):
            if checksum is not None or self.algorithm is ChecksumAlgorithm.NONE:
                return PartRecord(number, length, etag, checksum or "")
        return None

    # PARTS

    def part_range(self, number: int) -> tuple[int, int]:
        """The source's bytes part ``number`` copies, first and last (inclusive)."""
        part = self.plan.part(number)
        return part.offset, part.offset + part.length - 1

    def part_copied(self, number: int, receipt: PartReceipt) -> PartRecord:
        """An UploadPartCopy answered: the part's record (the driver journals it)."""
        checksum = receipt.checksum if self.algorithm is not ChecksumAlgorithm.NONE else None
        return PartRecord(number, self.plan.part(number).length, receipt.etag, checksum or "")

    def copy_failed(self, exc: BaseException) -> Close | None:
        """Copying parts failed. The source changed (412 to its ETag) or was deleted: the
        copy can never complete, abort it; the rest as for a file's parts."""
        if isinstance(exc, StoreError) and (exc.precondition_failed or exc.object_missing):
            error = source_changed(self.source, None, self.where, "during the copy") \
                if exc.object_missing else SourceChangedError(
                    f"{self.source.url} changed during the copy (its ETag is no longer "
                    f"{self.source.etag}); the copy to {self.where} was aborted and nothing "
                    "was written: run the command again to copy the new object")
            assert error is not None
            return self.close(Outcome.ABORTED, str(error), error, confirm=True, cause=exc)
        return self.parts_failed(exc)

    def source_confirmed(self, now: CopySourceInfo | None) -> Close | None:
        """Every part is copied; ``now`` is the source's HEAD. It must still be the object
        the copy began with (a server may ignore the ETag condition), and the parts must
        combine to its whole-object checksum if it reports one in our algorithm."""
        if changed := source_changed(self.source, now, self.where, "during the copy"):
            return self.close(Outcome.ABORTED, str(changed), changed, confirm=True)
        theirs = self.origin.full_object_checksum(self.algorithm.s3_name) \
            if self.algorithm in CRCS else None
        ours = self.full_object()
        if theirs is not None and ours is not None and theirs != ours:
            error = IntegrityError(
                f"{self.where}: the copied parts combine to {ours}, not to the source's "
                f"{self.algorithm.value} {theirs}; the copy was aborted",
                operation="UploadPartCopy", bucket=self.bucket, key=self.key,
                upload_id=self.upload_id)
            return self.close(Outcome.ABORTED, str(error), error, confirm=True)
        self.phase = Phase.COMPLETE
        return None

    # checksums: the server's, and only when every part has one

    def all_checksums(self) -> bool:
        return self.algorithm is not ChecksumAlgorithm.NONE and bool(self.parts) and all(
            p.checksum for p in self.parts.values())

    def full_object(self) -> str | None:
        return super().full_object() if self.all_checksums() else None

    def own_checksum(self) -> str | None:
        return super().own_checksum() if self.all_checksums() else None

    def own_forms(self) -> frozenset[str]:
        if not self.all_checksums():
            return frozenset()
        return verify.checksums(self.algorithm, self.part_checksums(), multipart=True)

    def expected(self, *, ownership: bool = False) -> verify.Expected:
        """As a file's upload (for an object whose completion we did not see: the MD5 ETag
        of the part ETags, and its age), with the checksum forms only when the server
        answered every part's checksum."""
        md5_etags = self.options.sse != "aws:kms" and self.options.sse_c_key is None
        etag = None
        if ownership and md5_etags and len(self.parts) == self.plan.part_count:
            etag = verify.multipart_etag([self.parts[n].etag for n in sorted(self.parts)])
        return verify.Expected(size=self.plan.size, algorithm=self.algorithm_name(),
                               checksums=self.own_forms(), etag=etag,
                               not_before=(self.created_at or None) if ownership else None)

    def checked(self, info: ObjectInfo | None) -> None:
        """VERIFY after our own completion: the object must be there, a copy of the
        source (``judge_copy``), with the checksum its parts make."""
        if info is None:
            raise IntegrityError(f"{self.where}: object missing right after the copy",
                                 operation="HeadObject", bucket=self.bucket, key=self.key)
        verdict = judge_copy(info, self.origin, self.algorithm, self.own_forms())
        if not verdict.ours:
            raise IntegrityError(f"{self.where}: the copy does not match {self.source.url}: "
                                 + "; ".join(verdict.problems), operation="HeadObject",
                                 bucket=self.bucket, key=self.key)
        self.done(info, content_checked=verdict.content_checked)

    def result(self, elapsed: float) -> UploadResult:
        return dataclasses.replace(super().result(elapsed), copied_from=self.source.url)
