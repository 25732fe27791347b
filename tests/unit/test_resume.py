from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bigupload.client import RemotePart
from bigupload.errors import ResumeError
from bigupload.journal import PartRecord
from bigupload.plan import Plan
from bigupload.resume import reconcile

MiB = 1 << 20
PLAN = Plan(size=50 * MiB + 3, part_size=5 * MiB, multipart=True)  # 11 parts


def etag(n: int) -> str:
    return f'"etag{n}"'


def test_keep_verify_send() -> None:
    journal = {1: PartRecord(1, 5 * MiB, etag(1), "c1"), 2: PartRecord(2, 5 * MiB, etag(2), "c2"),
               3: PartRecord(3, 5 * MiB, etag(3), "c3")}
    listed = [
        RemotePart(1, 5 * MiB, etag(1), None),  # keep (server lists no checksum)
        RemotePart(2, 5 * MiB, '"other"', None),  # overwritten by someone: send
        RemotePart(4, 5 * MiB, etag(4), None),  # not journalled: verify locally
        RemotePart(11, 3, etag(11), "c11"),  # not journalled: verify
        RemotePart(12, 1, etag(12), None),  # beyond the plan: ignored
        RemotePart(5, 1, etag(5), None),  # wrong size: send
    ]
    r = reconcile(PLAN, journal, listed)
    assert set(r.keep) == {1}
    assert set(r.verify) == {4, 11}
    assert r.send == [2, 3, 5, 6, 7, 8, 9, 10]
    assert r.stale == [2, 3]
    assert r.extra == [12]


def test_checksum_disagreement_means_resend() -> None:
    journal = {1: PartRecord(1, 5 * MiB, etag(1), "c1")}
    r = reconcile(PLAN, journal, [RemotePart(1, 5 * MiB, etag(1), "different")])
    assert 1 in r.send and not r.keep


def test_duplicate_listing_is_refused() -> None:
    with pytest.raises(ResumeError, match="twice"):
        reconcile(PLAN, {}, [RemotePart(1, 5 * MiB, etag(1), None)] * 2)


@settings(max_examples=300, deadline=None)
@given(
    journal_numbers=st.sets(st.integers(1, 11)),
    listed=st.lists(st.tuples(st.integers(0, 14), st.booleans(), st.booleans()), max_size=20,
                    unique_by=lambda t: t[0]),
)
def test_every_planned_part_is_accounted_for_exactly_once(
    journal_numbers: set[int], listed: list[tuple[int, bool, bool]]
) -> None:
    journal = {n: PartRecord(n, PLAN.part(n).length, etag(n), f"c{n}") for n in journal_numbers}
    remote = [RemotePart(n, (PLAN.part(n).length if 1 <= n <= 11 and right_size else 7),
                         etag(n) if same_etag else '"x"', None) for n, right_size, same_etag in listed]
    r = reconcile(PLAN, journal, remote)
    accounted = list(r.keep) + list(r.verify) + r.send
    assert sorted(accounted) == list(range(1, 12))
    for n, rec in r.keep.items():  # kept only if journal and server agree on everything
        server = next(p for p in remote if p.number == n)
        assert server.size == PLAN.part(n).length and server.etag == rec.etag
    for n, server in r.verify.items():
        assert n not in journal and server.size == PLAN.part(n).length
