"""Property: whatever state an interrupted upload left behind, in the journal and on the
server, resuming it completes exactly the file, re-sending exactly the parts the server
does not hold correctly (reconciliation end to end, against the in-memory FakeStore)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bigupload import ChecksumAlgorithm, Uploader, UploadConfig
from bigupload import checksum as ck
from bigupload.journal import Journal, PartRecord, UploadState
from bigupload.plan import plan
from bigupload.source import SourceFile
from tests.conftest import random_file
from tests.fakestore import FakeStore, StoredPart

MiB = 1 << 20
CONFIG = UploadConfig(part_size=5 * MiB, concurrency=3, backoff_base_s=0.001, backoff_max_s=0.01)
SIZE = 15 * MiB + 12345  # four parts, the last one short


@pytest.fixture(scope="module", autouse=True)
def no_listing_lag() -> Iterator[None]:
    """The FakeStore lists at once; waiting out a server's listing lag would only slow
    each example by seconds (the journal rows here are always fresh)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("bigupload.upload.listing.LISTING_LAG_S", 0.0)
        yield


@pytest.fixture(scope="module")
def source() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as d:
        yield random_file(Path(d) / "src.bin", SIZE, seed=7)


server_state = st.sampled_from(["absent", "correct", "wrong_bytes", "wrong_size"])
journal_state = st.sampled_from(["absent", "correct", "wrong_etag"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(server=st.lists(server_state, min_size=4, max_size=4),
       journal=st.lists(journal_state, min_size=4, max_size=4),
       extra=st.booleans())
def test_resume_sends_exactly_what_the_server_lacks(source: Path, server: list[str],
                                                     journal: list[str], extra: bool) -> None:
    data = source.read_bytes()
    the_plan = plan(SIZE, CONFIG)
    assert the_plan.part_count == 4
    store = FakeStore()
    with tempfile.TemporaryDirectory() as d:
        journal_path = Path(d) / "j.db"
        with SourceFile(str(source)) as src:
            fingerprint = src.fingerprint()

        async def prepare() -> str:
            from bigupload.client import ObjectOptions
            return await store.create_multipart("b", "k", ObjectOptions())

        upload_id = anyio.run(prepare)
        with Journal(journal_path) as j:
            row = j.start_upload(fingerprint, store.endpoint, "b", "k", the_plan.part_size,
                                 the_plan.part_count, "crc32c", None)
            j.set_upload_id(row, upload_id)
            for n in range(1, 5):
                part = the_plan.part(n)
                good = data[part.offset:part.offset + part.length]
                checksum = ck.encode(ck.compute(ChecksumAlgorithm.CRC32C, good))
                stored = {"correct": good, "wrong_bytes": os.urandom(part.length),
                          "wrong_size": good[:-1]}.get(server[n - 1])
                if stored is not None:
                    store.uploads[upload_id][n] = StoredPart(
                        stored, len(stored), f'"{hashlib.md5(stored).hexdigest()}"',
                        ck.encode(ck.compute(ChecksumAlgorithm.CRC32C, stored)))
                if journal[n - 1] != "absent":
                    tag = (f'"{hashlib.md5(good).hexdigest()}"' if journal[n - 1] == "correct"
                           else '"0000"')
                    j.record_part(row, PartRecord(n, part.length, tag, checksum))
            if extra:
                store.uploads[upload_id][9] = StoredPart(b"zz", 2, '"extra"', None)

        async def resume() -> None:
            async with Uploader(CONFIG, store=store, journal=journal_path) as up:
                await up.upload_file(source, "b", "k")

        anyio.run(resume)
        assert store.objects[("b", "k")][0] == data  # never a wrong object
        assert sorted(store.sent_parts) == [n for n in range(1, 5) if server[n - 1] != "correct"]
        with Journal(journal_path) as j:
            assert [u.state for u in j.uploads()] == [UploadState.COMPLETED]
