"""The multipart kind: a journalled, resumable upload in parts.

    RECONCILE  a journal row is found (resume) or begun (the destination's guard recorded);
               SWEEP for an upload a lost Create answer left, LIST what the server holds
    CREATE     CreateMultipartUpload (FULL_OBJECT refused: COMPOSITE, and again)
    PARTS      SEND what is missing; the listing is checked before completing
    COMPLETE   under the guard (If-None-Match / If-Match, or a HEAD where the server has no
               conditional writes); 412 makes it contested, NoSuchUpload asks VERIFY whether
               an earlier completion made our object
    VERIFY     HEAD and compare (``verify.judge``); with ``ownership``: is the object we did
               not see completed ours?
    DONE / ABORT

Never abort what the journal can still resume: the transitions end an upload (``Close``)
only when the source or the destination changed, the server refused the completion, the
upload is gone, or the cluster cannot run it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import checksum as ck
from .. import verify
from ..config import ChecksumAlgorithm, UploadConfig, format_size
from ..errors import (
    ClusterError,
    DestinationChangedError,
    ExistsError,
    IntegrityError,
    NotFoundError,
    ResumeError,
    SourceChangedError,
    SourceError,
    StoreError,
)
from ..resume import Reconciliation
from ..values import (
    CompletedPart,
    DestinationGuard,
    Fingerprint,
    ObjectInfo,
    ObjectOptions,
    PartListing,
    PartRecord,
    Plan,
    Precondition,
    sse_c_key_hash,
)
from .machine import (
    Close,
    Outcome,
    Phase,
    Reaction,
    Step,
    UploadMachine,
    completion_must_stand,
)

if TYPE_CHECKING:
    from ..journal import UploadRecord

CHECK_ROUNDS = 3  # re-sends of parts the listing shows different, before giving up


def guard_of(current: ObjectInfo | None) -> DestinationGuard:
    return DestinationGuard.absent() if current is None else DestinationGuard.present(current.etag)


def describe_change(before: DestinationGuard, now: DestinationGuard) -> str:
    if not before.existed:
        return f"an object with ETag {now.etag} was written"
    if not now.existed:
        return "the object was deleted"
    return f"ETag {before.etag} became {now.etag}"


class MultipartState(UploadMachine):
    """A multipart upload's state, its steps, and the transitions of RECONCILE: a
    journal row found, replaced or begun, and the server's listing reconciled with it
    (``MultipartMachine`` adds the phases that follow). ``row`` is the journal row;
    ``created_at`` when it began (the ownership check's oldest acceptable LastModified);
    ``last_write`` when it last changed (a resumed upload's parts answered just before
    then may not be listed yet)."""

    def __init__(self, bucket: str, key: str, config: UploadConfig, plan: Plan,
                 options: ObjectOptions, *, restart: bool = False,
                 adopt_upload_id: str | None = None, from_journal: bool = False) -> None:
        super().__init__(bucket, key, config, plan, options)
        self.restart = restart
        self.adopt_upload_id = adopt_upload_id
        self.from_journal = from_journal  # `bigupload resume`: never starts a new upload
        self.guard = DestinationGuard.unknown()
        self.row = 0
        self.created_at = 0.0
        self.last_write = 0.0
        self.to_send: list[int] = []
        self.check_round = 0
        self.ownership = False  # VERIFY an object whose completion we did not see
        self.contested: str | None = None  # COMPLETE answered 412 (the answer)

    def next_step(self) -> Step:
        phase = self.phase
        if phase is Phase.RECONCILE:
            return Step.SWEEP if self.upload_id is None else Step.LIST
        if phase is Phase.COMPLETE:
            return Step.COMPLETE if self.contested is None else Step.CONTESTED
        steps = {Phase.CREATE: Step.CREATE, Phase.PARTS: Step.SEND, Phase.VERIFY: Step.VERIFY,
                 Phase.DONE: Step.DONE}
        if phase not in steps:
            raise AssertionError(f"a multipart upload has no step from {phase}")
        return steps[phase]

    def close(self, outcome: Outcome, reason: str, error: BaseException, *, abort: bool = True,
              confirm: bool = False, cause: BaseException | None = None) -> Close:
        self.phase = Phase.ABORT
        return Close(outcome, reason, error, abort=abort, confirm=confirm, cause=cause)

    # beginning: a journal row found, replaced or begun

    def abandon_reason(self, record: UploadRecord) -> str | None:
        """Why the journalled upload ``record`` must make way for a new one, or None."""
        if self.restart:
            return "restarted"
        if self.adopt_upload_id and record.upload_id != self.adopt_upload_id:
            return f"replaced by upload {self.adopt_upload_id} (--upload-id)"
        return None

    def resume(self, record: UploadRecord, fingerprint: Fingerprint) -> None:
        """Take up a journalled upload: same file, same SSE-C key, the journal's settings."""
        if changes := record.fingerprint.differences(fingerprint):
            raise SourceChangedError(
                f"{fingerprint.path} changed since its upload to {self.where} began "
                f"({', '.join(changes)}); nothing was sent. Run again with --restart to "
                "abort the old upload and start over"
            )
        if record.sse_c_key_hash != sse_c_key_hash(self.config.sse_c_key):
            raise ResumeError(
                f"the unfinished upload to {self.where} was started with a different "
                "SSE-C key (or none); use the same key, or --restart"
            )
        self.row = record.id
        self.created_at = record.created_at
        self.last_write = record.updated_at
        self.upload_id = record.upload_id
        self.guard = record.guard
        algorithm = ChecksumAlgorithm(record.checksum_algorithm)
        if algorithm is not self.config.checksum and not self.from_journal:
            self.say(f"resuming {self.where} with checksum {algorithm.value}, not "
                     f"{self.config.checksum.value}: the upload began with it "
                     "(--restart to change)")
        if record.part_size != self.plan.part_size and not self.from_journal:
            text = (f"resuming {self.where} with the journal's part size "
                    f"{format_size(record.part_size)}, not {format_size(self.plan.part_size)}")
            if self.config.part_size is not None:
                self.say(text + " (--restart to change)")
            else:
                self.say(text, notice=False)
        self.use_algorithm(algorithm, None if algorithm is ChecksumAlgorithm.NONE
                           else record.checksum_type)
        self.config.effective_memory_limit(record.part_size)
        self.plan = Plan(size=fingerprint.size, part_size=record.part_size, multipart=True)
        self.phase = Phase.RECONCILE

    def no_row(self, path: str) -> None:
        """Nothing journalled to resume: ``bigupload resume`` (an old intent) stops here."""
        if self.from_journal:
            raise ResumeError(f"no unfinished upload of {path} to {self.where} in the journal")

    def begin(self, existing: ObjectInfo | None) -> DestinationGuard:
        """A new upload: what the destination is now, which its completion is guarded by."""
        if existing is not None and self.config.no_overwrite:
            raise ExistsError(f"{self.where} exists, not overwritten (--no-overwrite)")
        self.guard = guard_of(existing)
        return self.guard

    def adopted(self, listing: PartListing) -> None:
        """An upload made elsewhere (``--upload-id``) keeps the checksum algorithm and type
        it was created with: its listing says which."""
        name = listing.checksum_algorithm
        if name is None:
            return
        try:
            algorithm = ChecksumAlgorithm(name.lower())
        except ValueError:
            raise ResumeError(f"upload {self.adopt_upload_id} uses the checksum algorithm {name}, "
                              "which bigupload cannot compute") from None
        if algorithm is not self.algorithm:
            self.say(f"upload {self.adopt_upload_id} was created with checksum {algorithm.value}: "
                     f"using it instead of {self.algorithm.value}")
        self.use_algorithm(algorithm, listing.checksum_type or (
            "FULL_OBJECT" if algorithm is ChecksumAlgorithm.CRC64NVME else "COMPOSITE"))

    def started(self, row: int, now: float) -> None:
        """The journal row exists (begun at ``now``): create the upload, or list the adopted one."""
        self.row = row
        self.created_at = now
        self.plan = Plan(size=self.plan.size, part_size=self.plan.part_size, multipart=True)
        if self.adopt_upload_id:
            self.upload_id = self.adopt_upload_id
            self.phase = Phase.RECONCILE
        else:
            self.phase = Phase.CREATE

    # RECONCILE: the server's side

    def swept(self, found: str | None) -> None:
        """SWEEP, finished: a resumed row without an upload id (killed during Create, or
        before it) takes the upload that Create left, if there is one."""
        if found is not None:
            self.upload_id = found
        else:
            self.parts = {}
            self.phase = Phase.CREATE

    def listing_failed(self, exc: StoreError,
                       journalled: dict[int, PartRecord]) -> Reaction | Close:
        """LIST failed. NoSuchUpload with every part journalled: maybe completed by a run
        that died before journalling it (VERIFY whether the object is ours). Otherwise the
        upload is gone (a lifecycle rule, another tool's abort): ``bigupload resume`` stops
        there; the user's own command starts a new upload."""
        if not exc.upload_gone or self.adopt_upload_id:
            return Reaction.RAISE
        self.parts = dict(journalled)
        if len(journalled) == self.part_count:
            self.phase = Phase.VERIFY
            self.ownership = True
            return Reaction.CONTINUE
        reason = self.gone_reason()
        if self.from_journal:
            return self.close(Outcome.ABORTED, reason, ResumeError(
                f"{self.where}: {reason}; the journal entry was closed. Run the original "
                "bigupload cp again to start a new upload"), abort=False)
        return Reaction.START_OVER

    def gone_reason(self) -> str:
        return f"the server no longer has upload {self.upload_id} (NoSuchUpload)"

    def start_over(self, existing: ObjectInfo | None) -> DestinationGuard:
        """A new upload in place of the one that is gone, guarded by what the destination
        is now (``started`` follows, with the new row)."""
        self.upload_id = None
        self.parts = {}
        self.guard = guard_of(existing)
        return self.guard

    def reconciled(self, result: Reconciliation) -> None:
        """A listing reconciled with the journal: what to keep and what to send; the
        candidates in ``result.verify`` follow (``part_confirmed`` / ``part_differs``)."""
        self.parts = dict(result.keep)
        self.to_send = list(result.send)

    def part_confirmed(self, record: PartRecord) -> None:
        self.parts[record.number] = record

    def part_differs(self, number: int) -> None:
        self.to_send.append(number)

    def listed(self) -> None:
        """LIST, finished: send what the server lacks."""
        self.to_send.sort()
        self.resumed_parts = len(self.parts)
        self.phase = Phase.PARTS



class MultipartMachine(MultipartState):
    """The phases after RECONCILE: CREATE, PARTS, COMPLETE and VERIFY."""

    # CREATE

    def create_failed(self, exc: StoreError, maybe_created: bool) -> Reaction | Close:
        """CreateMultipartUpload failed for good. A Create that certainly made nothing
        closes the row as failed, so nothing is left to resume or sweep."""
        if self.checksum_type == "FULL_OBJECT" and exc.unsupported_option:
            self.use_algorithm(self.algorithm, "COMPOSITE")
            return Reaction.COMPOSITE
        if not maybe_created:
            return self.close(Outcome.FAILED, str(exc), exc, abort=False)
        return Reaction.RAISE

    def created(self, upload_id: str) -> None:
        self.upload_id = upload_id
        self.to_send = [n for n in range(1, self.part_count + 1) if n not in self.parts]
        self.phase = Phase.PARTS

    # PARTS

    def take_to_send(self) -> list[int]:
        numbers, self.to_send = self.to_send, []
        return numbers

    def done_bytes(self) -> int:
        return sum(p.size for p in self.parts.values())

    def listing_checked(self) -> bool:
        """A check listing was reconciled: True when the server holds every part as sent.
        After ``CHECK_ROUNDS`` re-sends, the listing that still differs is an error; the
        upload is kept for inspection."""
        if not self.to_send:
            return True
        if self.check_round == CHECK_ROUNDS:
            raise IntegrityError(
                f"{self.where}: the server's parts still differ from the file after "
                f"{CHECK_ROUNDS} rounds of re-sending; the upload is kept for inspection "
                f"(bigupload parts s3://{self.bucket}/{self.key} --upload-id {self.upload_id})",
                operation="ListParts", bucket=self.bucket, key=self.key, upload_id=self.upload_id,
            )
        self.check_round += 1
        self.to_send.sort()
        return False

    def parts_failed(self, exc: BaseException) -> Close | None:
        """Sending failed: end the upload if running again cannot help (the cluster cannot
        run it; the upload was aborted behind our back), else None: the error stands."""
        if isinstance(exc, ClusterError) and exc.abort:
            return self.close(Outcome.ABORTED, f"the cluster could not run it: {exc}", exc,
                              confirm=True)
        if isinstance(exc, NotFoundError) and exc.upload_gone:
            # abort anyway in case the answer was wrong, so nothing is left billed
            return self.close(Outcome.ABORTED, str(exc), NotFoundError(
                f"{exc}; the journal entry was closed, run again to start a new upload",
                operation=exc.operation, bucket=self.bucket, key=self.key,
                upload_id=self.upload_id, code=exc.code,
            ), cause=exc)
        return None

    def source_failed(self, exc: SourceError, changes: list[str]) -> Close | None:
        """Reading the file failed while parts were being sent (a short read, say);
        ``changes``: how the file now differs from its plan. A file that shrank, changed
        or was deleted can never complete this upload: end it, as ``source_checked``
        does, but confirm the abort (parts were in flight when the read failed). An
        unchanged file (an I/O error) leaves the error standing: running again may work."""
        if not changes:
            return None
        return self.close(Outcome.ABORTED, f"source changed during the upload "
                          f"({', '.join(changes)})", SourceError(
            f"{exc}; the upload was aborted and no object was written"), confirm=True, cause=exc)

    def source_checked(self, changes: list[str], path: str) -> Close | None:
        """Every part is on the server; ``changes``: how the file differs from its plan."""
        if changes:
            return self.close(Outcome.ABORTED, f"source changed during the upload "
                              f"({', '.join(changes)})", SourceError(
                f"{path} changed during the upload ({', '.join(changes)}); "
                "the upload was aborted and no object was written"))
        self.phase = Phase.COMPLETE
        return None

    # COMPLETE

    def completion_parts(self) -> list[CompletedPart]:
        count = self.part_count
        missing = [n for n in range(1, count + 1) if n not in self.parts]
        if missing:
            raise AssertionError(f"parts {missing[:5]} missing before completion")
        return [CompletedPart(n, self.parts[n].etag, self.parts[n].checksum or None)
                for n in range(1, count + 1)]

    def full_checksum(self) -> str | None:
        """The whole object's CRC the completion carries (FULL_OBJECT only)."""
        return self.full_object() if self.checksum_type == "FULL_OBJECT" else None

    def condition_needs_head(self, conditional: bool) -> bool:
        """Whether the completion's precondition needs the destination's state first: a
        row from before guards were recorded, or a server without conditional writes."""
        return self.guard.existed is None or not conditional

    def completion_condition(self, current: ObjectInfo | None,
                             conditional: bool) -> Precondition | Close | None:
        """The precondition that makes completing safe: the key must still be what it was
        when this upload began (absent, or the object with the recorded ETag). Where the
        server has no conditional writes (``conditional`` False), the HEAD ``current``
        is compared instead: racy, but a stale journal row still cannot overwrite an
        object written after the upload began."""
        guard = self.guard
        if guard.existed is None:  # legacy row: anything written since the row began wins
            if current is not None and current.last_modified is not None and \
                    current.last_modified.timestamp() > self.created_at + verify.CLOCK_SKEW_S:
                return self.superseded(
                    f"written at {current.last_modified.isoformat()}, after the upload began")
            guard = guard_of(current)
            if not conditional:
                return None
        elif not conditional:
            now = guard_of(current)
            if now != guard:
                return self.superseded(describe_change(guard, now))
            return None
        if self.config.no_overwrite or not guard.existed:
            return Precondition(if_none_match=True)
        return Precondition(if_match=guard.etag)

    def superseded(self, detail: str) -> Close:
        """Someone wrote the key after this upload began: abort, close the row, say so."""
        reason = f"{self.where} changed since this upload began ({detail})"
        error: BaseException
        if self.config.no_overwrite:
            error = ExistsError(f"{self.where} exists, not overwritten (--no-overwrite); the "
                                "upload was aborted")
        else:
            error = DestinationChangedError(f"{reason}; nothing written; --restart to upload again")
        return self.close(Outcome.SUPERSEDED, reason, error)

    def completion_failed(self, exc: StoreError, conditioned: bool) -> Reaction | Close:
        """COMPLETE failed. NoSuchUpload: a retried completion whose first answer was lost
        (VERIFY whether the object is ours). 501 to the condition: a server without
        conditional writes. 412: the destination changed, or a lost answer again
        (contested). Anything else that is not transient: the completion is rejected."""
        if isinstance(exc, NotFoundError):
            if not exc.upload_gone:
                return Reaction.RAISE
            self.phase = Phase.VERIFY
            self.ownership = True
            return Reaction.CONTINUE
        if conditioned and exc.conditions_unsupported:
            return Reaction.NO_CONDITIONS
        if conditioned and exc.precondition_failed:
            self.contested = str(exc)
            return Reaction.CONTINUE
        if completion_must_stand(exc):
            return Reaction.RAISE
        return self.close(Outcome.ABORTED, f"completion rejected: {exc}", exc)

    def completed(self) -> None:
        self.phase = Phase.VERIFY
        self.ownership = False

    def contested_answer(self, current: ObjectInfo | None) -> Close | None:
        """CONTESTED, the HEAD after a 412. An object that is not ours in content: the
        destination changed. One that is: either a completion of ours whose answer was
        lost made it, or another writer put the same bytes there while our upload stayed
        open; ``contested_listed`` follows, with whether our upload is still listed."""
        detail = self.contested or "412"
        verdict = verify.judge(current, self.expected(ownership=True)) if current else None
        if verdict is not None and verdict.ours and verdict.content_checked:
            return None
        self.contested = None
        return self.superseded(detail)

    def contested_listed(self, listed: bool) -> bool:
        """CONTESTED, finished: ``listed``, whether our upload is still on the server. Gone:
        our own completion made the object (its answer was lost), VERIFY it. Still there:
        our completion never happened (the 412 says so) and the object, equal to ours, is
        another writer's; True: abort our upload (and confirm it is gone), then VERIFY
        the object, which holds this file's bytes."""
        self.contested = None
        self.completed()
        if listed:
            self.say(f"{self.where}: an identical object was already there (written by "
                     f"another run); upload {self.upload_id} was aborted")
        return listed

    # VERIFY

    def verify_answer(self, info: ObjectInfo | None) -> Close | None:
        """VERIFY, finished. After our own completion: IntegrityError unless the object
        matches. An object whose completion we did not see (``ownership``) is accepted
        only if it is ours, on everything that can be compared (checksum, MD5 ETag, size,
        time); otherwise the upload vanished."""
        if not self.ownership:
            self.checked(info)
            return None
        verdict = verify.judge(info, self.expected(ownership=True)) if info is not None else None
        if info is None or verdict is None or not verdict.ours:
            why = "; ".join(verdict.problems) if verdict else "no object there"
            return self.close(Outcome.ABORTED, f"upload vanished ({why})", ResumeError(
                f"upload {self.upload_id} to {self.where} no longer exists and the object there "
                f"is not this file ({why}); run the command again to start a new upload"),
                abort=False)
        self.say(f"{self.where} was already completed by an earlier run", notice=False)
        self.resumed_parts = self.part_count
        self.done(info, content_checked=verdict.content_checked)
        return None

    def expected(self, *, ownership: bool = False) -> verify.Expected:
        """What our object must look like. ``ownership`` (an object we did not see being
        completed: is it ours?) adds its MD5 ETag and its age; after our own completion the
        server already matched every part's ETag, and some servers' multipart ETags are
        not MD5s of part MD5s, so there the checksum and the size decide."""
        md5_etags = self.options.sse != "aws:kms" and self.options.sse_c_key is None
        etag = None
        if ownership and md5_etags and len(self.parts) == self.part_count:
            etag = verify.multipart_etag([self.parts[n].etag for n in sorted(self.parts)])
        return verify.Expected(
            size=self.plan.size, algorithm=self.algorithm_name(),
            checksums=verify.checksums(self.algorithm, self.part_checksums(), multipart=True),
            etag=etag, not_before=(self.created_at or None) if ownership else None,
        )

    def own_checksum(self) -> str | None:
        if self.algorithm is ChecksumAlgorithm.NONE:
            return None
        return ck.composite(self.algorithm, [raw for raw, _ in self.part_checksums()])

    def reported_type(self) -> str | None:
        return self.checksum_type

