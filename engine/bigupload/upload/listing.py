"""What the server lists, read with patience and reconciled with what we know.

Some servers list a change a moment after acknowledging it (SeaweedFS: up to about a
second, measured): a part just uploaded, an upload just aborted. ``until_settled`` is the
one loop that lists again, ``LISTING_LAG_S`` apart and at most ``LISTING_TRIES`` times,
while the listing does not yet show what we know; S3 itself is strongly consistent and
never waits here. On it:

- ``PartsListing``: ListParts of one upload, reconciled with the journal
  (``resume.reconcile``); a listed part the journal does not confirm is kept only if
  ``verify_listed_part`` confirms it (``FilePartsListing``: by the local bytes; a
  copy's listing: by its listed checksum);
- ``sweep_lost_creates``: the uploads a lost CreateMultipartUpload answer left;
- ``confirm_aborted``: after aborting, the uploads must no longer be listed."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, TypeVar

import anyio

from .. import checksum as ck
from ..client import ObjectStore
from ..errors import StoreError
from ..resume import lost_creates, pick_candidate, reconcile
from ..scheduler import Scheduler
from ..source import SourceFile
from ..values import ObjectOptions, Part, PartListing, PartRecord, RemotePart
from ..verify import CLOCK_SKEW_S
from .multipart_machine import MultipartMachine
from .parts import abort_upload, digest_parts

if TYPE_CHECKING:
    from ..journal import Journal, UploadRecord

log = logging.getLogger("bigupload")
T = TypeVar("T")
LISTING_LAG_S = 1.0
LISTING_TRIES = 3


async def until_settled(fetch: Callable[[], Awaitable[T]], settled: Callable[[T], bool],
                        between: Callable[[T], Awaitable[None]] | None = None) -> T:
    """``fetch()`` a listing until ``settled`` says it shows what we know, at most
    ``LISTING_TRIES`` times, ``LISTING_LAG_S`` apart (``between`` runs in each pause);
    the last listing is returned either way: the caller decides what it means."""
    for attempt in range(LISTING_TRIES):
        listing = await fetch()
        if settled(listing) or attempt == LISTING_TRIES - 1:
            return listing
        await anyio.sleep(LISTING_LAG_S)
        if between is not None:
            await between(listing)
    raise AssertionError("unreachable")


async def wait_for_listing(last_write: float) -> None:
    """Parts answered just before a crash may not be listed yet: wait out the lag since
    the journal row last changed."""
    await anyio.sleep(max(0.0, last_write + LISTING_LAG_S - time.time()))


class PartsListing:
    """ListParts of the machine's upload, reconciled; journals what it learns. Each kind
    says how a listed part the journal does not confirm is checked
    (``verify_listed_part``)."""

    def __init__(self, machine: MultipartMachine, *, store: ObjectStore,
                 scheduler: Scheduler, journal: Journal) -> None:
        self.machine = machine
        self.store = store
        self.scheduler = scheduler
        self.journal = journal

    async def fetch(self, upload_id: str) -> PartListing:
        """ListParts, all pages, retried."""
        m = self.machine
        return await self.scheduler.retrying(
            f"ListParts {m.where}",
            lambda n: self.store.list_parts(m.bucket, m.key, upload_id, m.options))

    async def parts(self, journalled: Mapping[int, PartRecord]) -> list[RemotePart]:
        """The listed parts, listed again while journalled parts are missing from them."""
        upload_id = self.machine.upload_id
        assert upload_id is not None

        def settled(listed: list[RemotePart]) -> bool:
            missing = set(journalled) - {p.number for p in listed}
            if missing:
                log.debug("%d journalled part(s) not listed yet", len(missing))
            return not missing

        async def fetch() -> list[RemotePart]:
            return list((await self.fetch(upload_id)).parts)

        return await until_settled(fetch, settled)

    async def settle(self, journalled: Mapping[int, PartRecord],
                     listed: Sequence[RemotePart]) -> None:
        """Make the machine's parts what the server holds and the file confirms, and its
        parts to send those it lacks; the journal follows."""
        m = self.machine
        result = reconcile(m.plan, journalled, listed)
        for number in result.stale:
            self.journal.drop_part(m.row, number)
        m.reconciled(result)
        for number, candidates in sorted(result.verify.items()):
            record = await self.verify_listed_part(m.plan.part(number), candidates)
            if record is None:
                m.part_differs(number)
            else:
                m.part_confirmed(record)
                self.journal.record_part(m.row, record)

    async def check(self) -> None:
        """Before completing, compare what the server lists with what was acknowledged: a
        response with a wrong ETag, or a stray upload of a part number, is caught here
        (one ListParts page per 1,000 parts), and the machine decides what follows."""
        parts = dict(self.machine.parts)
        await self.settle(parts, await self.parts(parts))

    async def verify_listed_part(self, part: Part,
                                 candidates: list[RemotePart]) -> PartRecord | None:
        """The listed candidate for ``part`` to keep, or None to send the part again."""
        raise NotImplementedError

    async def sweep(self, record: UploadRecord, *, keep: str | None, adopt: bool) -> str | None:
        """``sweep_lost_creates`` for this listing's upload."""
        return await sweep_lost_creates(record, self.machine.options, store=self.store,
                                        scheduler=self.scheduler, journal=self.journal,
                                        keep=keep, adopt=adopt)


class FilePartsListing(PartsListing):
    """The listing of a file's upload: a listed part the journal does not confirm is kept
    if the file's bytes of that part give its checksum and ETag."""

    def __init__(self, machine: MultipartMachine, source: SourceFile, *, store: ObjectStore,
                 scheduler: Scheduler, journal: Journal) -> None:
        super().__init__(machine, store=store, scheduler=scheduler, journal=journal)
        self.source = source

    async def verify_listed_part(self, part: Part,
                                 candidates: list[RemotePart]) -> PartRecord | None:
        """The listed candidate for ``part`` that the local bytes confirm, or None."""
        digests = await self.scheduler.in_thread(
            lambda: digest_parts(self.source, [part], self.machine.algorithm, part_md5=True))
        record = pick_candidate(part, candidates, ck.encode(digests.checksums[0]),
                                f'"{digests.md5s[0]}"')
        if record is None:
            log.info("part %d on the server differs from the file; sending it again", part.number)
        return record


async def sweep_lost_creates(record: UploadRecord, options: ObjectOptions, *,
                             store: ObjectStore, scheduler: Scheduler, journal: Journal,
                             keep: str | None, adopt: bool) -> str | None:
    """Deal with uploads that our own CreateMultipartUpload calls made but whose answer
    we never saw (a lost response that was retried, or a run killed mid-call); left
    alone they would be billed forever. They are the uploads to this exact key that the
    server initiated between the journal row's creation and its last Create attempt
    (within ``CLOCK_SKEW_S``) and that no journal row knows; the destination lock keeps
    other bigupload processes out of that window. With ``adopt`` the newest is returned
    to be resumed (its parts are verified like any listed part); every other one,
    except ``keep``, is aborted."""
    where = f"s3://{record.bucket}/{record.key}"
    try:
        uploads = await scheduler.retrying(
            f"ListMultipartUploads {where}",
            lambda n: store.list_uploads(record.bucket, record.key, options),
        )
    except StoreError as exc:
        if exc.retryable:
            raise  # the server cannot be reached: that is the error to report
        log.warning("cannot list multipart uploads to look for one a lost "
                    "CreateMultipartUpload answer may have left (%s); check with: "
                    "bigupload ls-uploads %s", exc.code or exc, where)
        return None
    known = journal.known_upload_ids(store.endpoint, record.bucket, record.key)
    ours = lost_creates(uploads, record.key, known=known, keep=keep,
                        since=record.created_at - CLOCK_SKEW_S,
                        until=record.updated_at + CLOCK_SKEW_S)
    adopted = ours.pop().upload_id if adopt and ours else None
    if adopted:
        log.info("adopting upload %s, created by a run that stopped before journalling it",
                 adopted)
    for upload in ours:
        await abort_upload(store, scheduler, record.bucket, record.key, upload.upload_id,
                           options)
        log.info("aborted upload %s, left by a CreateMultipartUpload whose answer was lost",
                 upload.upload_id)
    return adopted


async def confirm_aborted(store: ObjectStore, scheduler: Scheduler,
                          aborted: Sequence[tuple[str, str, str]], prefixes: Mapping[str, str],
                          options: ObjectOptions) -> list[tuple[str, str, str]]:
    """After aborting ``aborted`` uploads ((bucket, key, upload id) each), list the
    uploads under each bucket's prefix until none of them is listed, aborting again what
    still is; returns those still listed after the last try."""
    async def listed(bucket: str, prefix: str) -> set[tuple[str, str]]:
        uploads = await scheduler.retrying(f"ListMultipartUploads s3://{bucket}/{prefix}",
                                           lambda n: store.list_uploads(bucket, prefix, options))
        return {(bucket, u.upload_id) for u in uploads}

    async def fetch() -> list[tuple[str, str, str]]:
        seen: set[tuple[str, str]] = set()
        for bucket, prefix in prefixes.items():
            seen |= await listed(bucket, prefix)
        return [a for a in aborted if (a[0], a[2]) in seen]

    async def again(left: list[tuple[str, str, str]]) -> None:
        for bucket, key, upload_id in left:
            await abort_upload(store, scheduler, bucket, key, upload_id, options)

    return await until_settled(fetch, lambda left: not left, again)
