"""Batch jobs against the in-memory FakeStore: one shared bound on requests across files,
per-file failures, fail-fast, skip-existing, and resume after an interruption sending
nothing twice."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from bigupload import BatchItem, FileState, JobState, Uploader, UploadConfig
from bigupload.batch import Entry, walk_directory
from bigupload.errors import AuthError, SourceError
from bigupload.journal import JournalView
from tests.fakestore import FakeStore

MiB = 1 << 20
BUCKET = "bucket"
FAST = dict(backoff_base_s=0.001, backoff_max_s=0.01)


def config(**kwargs: Any) -> UploadConfig:
    return UploadConfig(part_size=kwargs.pop("part_size", 5 * MiB), **{**FAST, **kwargs})


def tree(root: Path, sizes: dict[str, int]) -> dict[str, bytes]:
    """Files of random bytes under ``root``; returns key -> content."""
    contents = {}
    for i, (name, size) in enumerate(sizes.items()):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        data = os.urandom(size)
        path.write_bytes(data)
        contents[name] = data
    return contents


def items(root: Path, names: list[str]) -> list[tuple[str, str, str]]:
    return [(str(root / n), BUCKET, f"p/{n}") for n in names]


def upload_many(store: FakeStore, journal: Path, entries: list[Any], cfg: UploadConfig | None = None,
                **kwargs: Any) -> Any:
    async def main() -> Any:
        async with Uploader(cfg or config(), store=store, journal=journal) as up:
            return await up.upload_many(entries, **kwargs)

    return anyio.run(main)


def file_states(journal: Path, job_id: int) -> dict[str, FileState]:
    """What the journal says became of each file of the job."""
    with JournalView(journal) as view:
        return {f.key: f.state for f in view.job_files(job_id, tuple(FileState))}


def test_small_and_large_files_share_one_request_bound(tmp_path: Path) -> None:
    sizes = {f"small/{i:03}.bin": 1000 + i for i in range(60)} | {"big1.bin": 23 * MiB, "big2.bin": 12 * MiB}
    contents = tree(tmp_path / "src", sizes)
    store = FakeStore()
    store.part_delay_s = 0.01
    result = upload_many(store, tmp_path / "j.sqlite3", items(tmp_path / "src", list(sizes)),
                         config(concurrency=4))
    assert result.ok and result.state is JobState.COMPLETED
    assert (result.files, result.uploaded, result.failed) == (62, 62, 0)
    for name, data in contents.items():
        assert store.objects[(BUCKET, f"p/{name}")][0] == data
    assert store.max_in_flight == 4  # reached, never exceeded, across all files at once
    assert store.calls["create"] == 2 and store.calls["put_object"] == 60
    assert result.sent_bytes == sum(sizes.values())


def test_a_failed_file_does_not_stop_the_job(tmp_path: Path) -> None:
    contents = tree(tmp_path / "src", {"a": 10, "b": 20, "c": 30})
    entries = items(tmp_path / "src", ["a", "b", "gone", "c"])
    store = FakeStore()
    store.faults.append(lambda op, ctx: (_ for _ in ()).throw(
        AuthError("AccessDenied", code="AccessDenied")) if ctx.get("key") == "p/b" else None)
    result = upload_many(store, tmp_path / "j.sqlite3", entries)
    assert result.state is JobState.PARTIAL and not result.ok
    assert {(r.key, r.exit_code) for r in result.failures} == {("p/b", 4), ("p/gone", 3)}
    assert "no such file" in {r.key: r.error for r in result.failures}["p/gone"].lower()
    assert store.objects[(BUCKET, "p/a")][0] == contents["a"]
    assert store.objects[(BUCKET, "p/c")][0] == contents["c"]


def test_fail_fast_stops_at_the_first_failure(tmp_path: Path) -> None:
    tree(tmp_path / "src", {f"{i:02}": 10 for i in range(30)})
    entries = items(tmp_path / "src", ["missing"] + [f"{i:02}" for i in range(30)])
    store = FakeStore()
    with pytest.raises(SourceError):
        upload_many(store, tmp_path / "j.sqlite3", entries, config(concurrency=1), fail_fast=True)
    assert len(store.put_keys) < 30


def test_a_failure_that_hits_every_file_stops_the_job(tmp_path: Path) -> None:
    tree(tmp_path / "src", {f"{i:02}": 10 for i in range(50)})
    store = FakeStore()
    store.faults.append(lambda op, ctx: (_ for _ in ()).throw(
        AuthError("SignatureDoesNotMatch", code="SignatureDoesNotMatch")))
    with pytest.raises(AuthError):
        upload_many(store, tmp_path / "j.sqlite3", items(tmp_path / "src", [f"{i:02}" for i in range(50)]))
    assert store.calls["put_object"] <= 2 * 8  # stopped at once, not after 50 failures


def test_interrupted_job_resumes_without_resending(tmp_path: Path) -> None:
    names = [f"f{i:03}" for i in range(40)] + ["big"]
    contents = tree(tmp_path / "src", {**{n: 100 + i for i, n in enumerate(names[:-1])}, "big": 30 * MiB})
    store = FakeStore()
    journal = tmp_path / "j.sqlite3"
    entries = items(tmp_path / "src", names)

    async def interrupted() -> None:
        async with Uploader(config(concurrency=2), store=store, journal=journal) as up:
            with anyio.move_on_after(10) as scope:
                store.faults.append(lambda op, ctx: scope.cancel()
                                    if len(store.put_keys) >= 15 and len(store.sent_parts) >= 2 else None)
                await up.upload_many(entries)
            assert scope.cancelled_caught

    anyio.run(interrupted)
    store.faults.clear()
    first_puts, first_parts = list(store.put_keys), list(store.sent_parts)

    async def resume() -> Any:
        async with Uploader(config(concurrency=2), store=store, journal=journal) as up:
            (job,) = up.jobs(JobState.ACTIVE)
            return await up.resume_job(job.id)

    result = anyio.run(resume)
    assert result.ok and result.state is JobState.COMPLETED and result.files == 41
    for name, data in contents.items():
        assert store.objects[(BUCKET, f"p/{name}")][0] == data
    resent = [k for k in store.put_keys[len(first_puts):] if k in first_puts]
    assert not resent  # no small file sent twice (none was in flight: the fake answers at once)
    second_parts = store.sent_parts[len(first_parts):]
    assert not set(second_parts) & set(first_parts)  # parts on the server were kept
    assert sorted(first_parts + second_parts) == list(range(1, 7))


def test_the_same_walk_again_sends_the_journalled_files_before_walking(tmp_path: Path) -> None:
    """The same directory job run again (``cp -r`` again) sends the files the journal
    already has before it reads the walk again for new ones, so that a job of a million
    files starts sending at once; the walk then adds the files that appeared since,
    which are sent too, and nothing is sent twice."""
    root = tmp_path / "src"
    names = [f"f{i:02}" for i in range(20)]
    tree(root, {n: 10 for n in names})
    store = FakeStore()
    journal = tmp_path / "j.sqlite3"
    origin = {"root": str(root), "bucket": BUCKET, "prefix": "p/", "include": [],
              "exclude": [], "follow_symlinks": False}
    read_after: list[int] = []  # how many PutObjects had been sent when the walk was read

    def walk() -> Iterator[Entry]:
        read_after.append(len(store.put_keys))
        yield from walk_directory(str(root), BUCKET, "p/")

    async def run_job() -> Any:
        async with Uploader(config(concurrency=2), store=store, journal=journal) as up:
            return await up.upload_job("directory", origin, walk())

    async def interrupted() -> None:
        with anyio.move_on_after(10) as scope:
            store.faults.append(lambda op, ctx: scope.cancel() if len(store.put_keys) >= 5
                                else None)
            await run_job()
        assert scope.cancelled_caught

    anyio.run(interrupted)
    store.faults.clear()
    assert read_after == [0]  # a new job: its files are journalled before any is sent
    (root / "new").write_bytes(b"appeared since")
    result = anyio.run(run_job)
    assert result.ok and result.files == 21 and result.uploaded == 21
    sent_before_walk = set(store.put_keys[:read_after[1]])
    assert sent_before_walk == {f"p/{n}" for n in names}
    assert store.put_keys.count("p/new") == 1 and store.put_keys.index("p/new") >= read_after[1]


def test_same_call_again_resumes_the_job(tmp_path: Path) -> None:
    tree(tmp_path / "src", {"a": 10, "b": 20})
    store = FakeStore()
    journal = tmp_path / "j.sqlite3"
    entries = items(tmp_path / "src", ["a", "b", "missing"])
    first = upload_many(store, journal, entries)
    assert first.state is JobState.PARTIAL
    (tmp_path / "src" / "missing").write_bytes(b"now here")
    async def again() -> Any:
        async with Uploader(config(), store=store, journal=journal) as up:
            return await up.resume_job(first.job_id)
    second = anyio.run(again)
    assert second.ok and second.job_id == first.job_id
    assert (second.uploaded_now, second.skipped_now, second.failed_now) == (1, 0, 0)
    assert store.put_keys.count("p/missing") == 1
    assert store.put_keys.count("p/a") == 1


def test_the_same_call_after_a_partial_job_continues_it(tmp_path: Path) -> None:
    """A partial job (a file failed) is continued by the same call, its failure tried
    again: it used to start a new job and send every file again."""
    tree(tmp_path / "src", {"a": 10, "b": 20})
    store = FakeStore()
    journal = tmp_path / "j.sqlite3"
    entries = items(tmp_path / "src", ["a", "b", "missing"])
    first = upload_many(store, journal, entries)
    assert first.state is JobState.PARTIAL
    (tmp_path / "src" / "missing").write_bytes(b"now here")
    second = upload_many(store, journal, entries)
    assert second.ok and second.job_id == first.job_id
    assert (second.uploaded_now, second.skipped_now, second.failed_now) == (1, 0, 0)
    assert sorted(store.put_keys) == ["p/a", "p/b", "p/missing"]


def test_skip_existing_compares_content_not_just_names(tmp_path: Path) -> None:
    contents = tree(tmp_path / "src", {"same": 1000, "changed": 1000, "new": 10, "big": 12 * MiB})
    store = FakeStore()
    journal = tmp_path / "j.sqlite3"
    upload_many(store, journal, items(tmp_path / "src", ["same", "changed", "big"]))
    (tmp_path / "src" / "changed").write_bytes(os.urandom(1000))  # same size, new bytes
    store.put_keys.clear()
    creates = store.calls["create"]
    result = upload_many(store, journal, items(tmp_path / "src", list(contents)), skip_existing=True)
    assert (result.uploaded_now, result.skipped_now) == (2, 2)
    assert file_states(journal, result.job_id) == {
        "p/same": FileState.SKIPPED, "p/big": FileState.SKIPPED,
        "p/changed": FileState.DONE, "p/new": FileState.DONE}
    assert sorted(store.put_keys) == ["p/changed", "p/new"] and store.calls["create"] == creates
    assert store.calls["list_objects"] == 1


def test_items_with_settings_get_them(tmp_path: Path) -> None:
    tree(tmp_path / "src", {"a.txt": 10})
    store = FakeStore()
    seen: list[Any] = []
    original = store.put_object

    async def spy(bucket: str, key: str, body: Any, checksum: Any, options: Any, **kw: Any) -> Any:
        seen.append(options)
        return await original(bucket, key, body, checksum, options, **kw)

    store.put_object = spy  # type: ignore[method-assign]
    item = BatchItem(str(tmp_path / "src" / "a.txt"), BUCKET, "a.txt", content_type="x/y",
                     metadata={"k": "v"})
    assert upload_many(store, tmp_path / "j.sqlite3", [item]).ok
    assert seen[0].content_type == "x/y" and dict(seen[0].metadata) == {"k": "v"}
