from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bigupload.client import RemotePart
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
        RemotePart(2, 5 * MiB, '"other"', None),  # journalled differently: verify locally
        RemotePart(4, 5 * MiB, etag(4), None),  # not journalled: verify locally
        RemotePart(11, 3, etag(11), "c11"),  # not journalled: verify
        RemotePart(12, 1, etag(12), None),  # beyond the plan: ignored
        RemotePart(5, 1, etag(5), None),  # wrong size: send
    ]
    r = reconcile(PLAN, journal, listed)
    assert set(r.keep) == {1}
    assert set(r.verify) == {2, 4, 11}
    assert r.send == [3, 5, 6, 7, 8, 9, 10]
    assert r.stale == [2, 3]
    assert r.extra == [12]


def test_checksum_disagreement_means_verify_locally() -> None:
    journal = {1: PartRecord(1, 5 * MiB, etag(1), "c1")}
    r = reconcile(PLAN, journal, [RemotePart(1, 5 * MiB, etag(1), "different")])
    assert 1 in r.verify and r.stale == [1] and not r.keep


def test_a_part_number_listed_twice_gives_candidates() -> None:
    """SeaweedFS lists every upload of a part number; the journal's ETag picks one."""
    journal = {1: PartRecord(1, 5 * MiB, etag(1), "c1")}
    listed = [RemotePart(1, 5 * MiB, '"older"', None), RemotePart(1, 5 * MiB, etag(1), None),
              RemotePart(2, 5 * MiB, '"a"', None), RemotePart(2, 5 * MiB, '"b"', None)]
    r = reconcile(PLAN, journal, listed)
    assert r.keep == journal
    assert [p.etag for p in r.verify[2]] == ['"a"', '"b"']


listing = st.lists(
    st.tuples(st.integers(0, 14),  # part number, some beyond the plan (and 0)
              st.sampled_from(["right", "short", "long"]),  # size
              st.sampled_from(["journal", "other"]),  # ETag
              st.sampled_from([None, "journal", "other"])),  # listed checksum (real S3 lists one)
    max_size=30)  # duplicates allowed, in any order


@settings(max_examples=500, deadline=None)
@given(journal_spec=st.dictionaries(st.integers(1, 11), st.booleans()), listed_spec=listing)
def test_reconcile_accounts_for_every_part_and_keeps_only_what_both_confirm(
    journal_spec: dict[int, bool], listed_spec: list[tuple[int, str, str, str | None]]
) -> None:
    """For any journal and any listing: every planned part is kept, verified or sent,
    exactly once; a part is kept only if the server lists it at the planned size with the
    journalled ETag (and checksum, where listed); nothing else is trusted unverified."""
    journal = {n: PartRecord(n, PLAN.part(n).length if right else 1, etag(n), f"c{n}")
               for n, right in journal_spec.items()}
    remote = []
    for n, size, tag, checksum in listed_spec:
        length = PLAN.part(n).length if 1 <= n <= 11 else 5 * MiB
        length += {"right": 0, "short": -1, "long": 1}[size]
        remote.append(RemotePart(n, length, etag(n) if tag == "journal" else '"x"',
                                 None if checksum is None else (f"c{n}" if checksum == "journal" else "y")))
    r = reconcile(PLAN, journal, remote)
    accounted = list(r.keep) + list(r.verify) + r.send
    assert sorted(accounted) == list(range(1, 12))
    assert r.extra == sorted({p.number for p in remote if not 1 <= p.number <= 11})
    for n, rec in r.keep.items():
        assert rec == journal[n] and rec.size == PLAN.part(n).length
        assert any(p.number == n and p.size == rec.size and p.etag == rec.etag
                   and p.checksum in (None, rec.checksum) for p in remote)
    for n, candidates in r.verify.items():
        assert candidates and all(p.number == n and p.size == PLAN.part(n).length for p in candidates)
    for n in r.send:  # sent only when no listing has the planned size
        assert not any(p.number == n and p.size == PLAN.part(n).length for p in remote)
    assert set(r.stale) == set(journal) - set(r.keep)
