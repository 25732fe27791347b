"""``Uploader``'s housekeeping methods as an API user meets them (issue 15: the CLI only
parses, calls and renders): ``resume`` yields a typed report per job and file, ``status``
and ``forget`` read and edit the journal without opening a client, ``abort`` says which
journal rows it closed. Against the in-memory FakeStore."""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import Any

import anyio
import pytest

from bigupload import BatchItem, ConfigError, StoreError, UploadConfig, Uploader
from bigupload.client import AioS3Store
from bigupload.errors import store_error
from bigupload.journal import JobState, Journal, UploadState
from bigupload.reports import ResumedFile, ResumedJob
from tests.engine.test_transfer import BUCKET, KEY, config, interrupted_upload
from tests.fakestore import FakeStore

MiB = 1 << 20


async def resumed(up: Uploader, job_id: int | None = None) -> list[ResumedJob | ResumedFile]:
    async with contextlib.aclosing(up.resume(job_id)) as reports:
        return [report async for report in reports]


def test_resume_reports_each_file_and_finishes_it(make_file: Any, tmp_path: Path) -> None:
    path = make_file(23 * MiB + 5)
    store, journal = FakeStore(), tmp_path / "j.db"
    assert interrupted_upload(path, store, journal, config(concurrency=1),
                              lambda op, ctx: op == "upload_part" and ctx["number"] == 3)

    async def main() -> list[ResumedJob | ResumedFile]:
        async with Uploader(config(), store=store, journal=journal) as up:
            first = await resumed(up)
            assert await resumed(up) == []  # nothing left
            return first

    (report,) = anyio.run(main)
    assert isinstance(report, ResumedFile) and report.error is None and report.skipped is None
    assert (report.source, report.bucket, report.key) == (str(path), BUCKET, KEY)
    assert report.result is not None and report.result.resumed_parts >= 1
    assert store.objects[(BUCKET, KEY)][0] == path.read_bytes()
    with Journal(journal) as j:
        assert [u.state for u in j.uploads()] == [UploadState.COMPLETED]


def test_resume_skips_a_file_on_another_endpoint(make_file: Any, tmp_path: Path) -> None:
    path = make_file(12 * MiB)
    store, journal = FakeStore(), tmp_path / "j.db"
    assert interrupted_upload(path, store, journal, config(concurrency=1),
                              lambda op, ctx: op == "upload_part" and ctx["number"] == 2)

    async def main() -> list[ResumedJob | ResumedFile]:
        elsewhere = config(endpoint_url="http://127.0.0.1:9")
        async with Uploader(elsewhere, journal=journal) as up:
            return await resumed(up)

    (report,) = anyio.run(main)
    assert isinstance(report, ResumedFile) and report.result is None
    assert report.skipped == "it uploads to fake://store, not http://127.0.0.1:9"


def test_resume_of_a_partial_job_retries_its_failures(make_file: Any, tmp_path: Path) -> None:
    files = [make_file(1000 + i, name=f"f{i}") for i in range(3)]
    store, journal = FakeStore(), tmp_path / "j.db"

    def refuse_f2(op: str, ctx: dict[str, Any]) -> None:
        if op == "put_object" and ctx["key"] == "f2":
            raise StoreError("InvalidRequest", code="InvalidRequest", retryable=False)

    async def main() -> tuple[int, list[ResumedJob | ResumedFile]]:
        async with Uploader(config(), store=store, journal=journal) as up:
            store.faults.append(refuse_f2)
            first = await up.upload_many([BatchItem(str(f), BUCKET, f.name) for f in files])
            assert (first.state, first.failed) == (JobState.PARTIAL, 1)
            store.faults.clear()
            assert await resumed(up) == []  # a partial job is resumed only when named
            return first.job_id, await resumed(up, first.job_id)

    job_id, reports = anyio.run(main)
    (report,) = reports
    assert isinstance(report, ResumedJob) and report.job_id == job_id
    assert report.result is not None and report.result.state is JobState.COMPLETED
    assert (report.result.uploaded_now, report.result.failed_now) == (1, 0)
    assert {k for (_, k) in store.objects} == {"f0", "f1", "f2"}


def test_status_and_forget_open_no_client(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                          make_file: Any) -> None:
    path = make_file(12 * MiB)
    store, journal = FakeStore(), tmp_path / "j.db"
    assert interrupted_upload(path, store, journal, config(concurrency=1),
                              lambda op, ctx: op == "upload_part" and ctx["number"] == 2)

    def no_client(config: UploadConfig) -> Any:
        raise AssertionError("status and forget must not open an S3 client")

    monkeypatch.setattr(AioS3Store, "open", no_client)

    async def main() -> None:
        async with Uploader(journal=journal) as up:
            report = up.status()
            (row,) = report.unfinished
            assert (row.state, row.source, row.key, row.endpoint) == (
                UploadState.ACTIVE, str(path), KEY, "fake://store")
            assert row.parts == 3 and 1 <= row.parts_done < 3 and row.bytes_done >= 5 * MiB
            assert report.jobs == () and report.closed == ()
            with pytest.raises(ConfigError, match="forget needs rows"):
                up.forget()
            forgotten = up.forget(uploads=(row.id,))
            assert (forgotten.uploads, forgotten.jobs) == (1, 0)
            assert [r.id for r in forgotten.active_uploads] == [row.id]
            assert forgotten.active_uploads[0].upload_id is not None
            assert up.status(closed=True) == dataclasses.replace(report, unfinished=())
            with pytest.raises(RuntimeError, match="not connected"):
                up.store  # noqa: B018

    anyio.run(main)


def test_abort_closes_the_journal_rows_of_that_upload(make_file: Any, tmp_path: Path) -> None:
    path = make_file(12 * MiB)
    store, journal = FakeStore(), tmp_path / "j.db"
    assert interrupted_upload(path, store, journal, config(concurrency=1),
                              lambda op, ctx: op == "upload_part" and ctx["number"] == 2)
    (upload_id,) = store.uploads

    async def main() -> None:
        async with Uploader(config(), store=store, journal=journal) as up:
            report = await up.abort(BUCKET, KEY, upload_id)
            (row,) = up.status(closed=True).closed
            assert report.rows_closed == (row.id,)
            assert (row.state, row.error) == (UploadState.ABORTED, "aborted by the user")

    anyio.run(main)
    assert store.uploads == {}


@pytest.mark.parametrize("answer_lost", [False, True])
def test_abort_is_retried_and_a_lost_answer_is_an_abort(make_file: Any, tmp_path: Path,
                                                        answer_lost: bool) -> None:
    """A transient failure is retried; a retry answered NoSuchUpload after an attempt whose
    answer was lost (the server did abort) is the abort done, not an error."""
    path = make_file(12 * MiB)
    store, journal = FakeStore(), tmp_path / "j.db"
    assert interrupted_upload(path, store, journal, config(concurrency=1),
                              lambda op, ctx: op == "upload_part" and ctx["number"] == 2)
    (upload_id,) = store.uploads
    attempts: list[str] = []

    def flaky(op: str, ctx: dict[str, Any]) -> None:
        if op == "abort":
            attempts.append(ctx["upload_id"])
            if len(attempts) == 1:
                if answer_lost:
                    del store.uploads[ctx["upload_id"]]
                raise StoreError("InternalError", code="InternalError", retryable=True)

    store.faults.append(flaky)

    async def main() -> None:
        async with Uploader(config(), store=store, journal=journal) as up:
            report = await up.abort(BUCKET, KEY, upload_id)
            assert len(report.rows_closed) == 1

    anyio.run(main)
    assert store.uploads == {} and len(attempts) == 2


def test_abort_of_an_unknown_upload_is_not_found(tmp_path: Path) -> None:
    async def main() -> None:
        async with Uploader(config(), store=FakeStore(), journal=tmp_path / "j.db") as up:
            with pytest.raises(StoreError, match="(?i)upload"):
                await up.abort(BUCKET, KEY, "no-such-upload")

    anyio.run(main)


def test_resume_goes_on_after_a_job_that_stops(make_file: Any, tmp_path: Path) -> None:
    """A job that stops (its bucket is gone: every file would fail) is reported with its
    exit code and kept; the next job is still resumed, and so is a single file."""
    files = [make_file(1000 + i, name=f"f{i}") for i in range(4)]
    single = make_file(12 * MiB, name="single")
    store, journal = FakeStore(), tmp_path / "j.db"
    assert interrupted_upload(single, store, journal, config(concurrency=1),
                              lambda op, ctx: op == "upload_part" and ctx["number"] == 2)

    def gone(prefix: str) -> Any:
        def fault(op: str, ctx: dict[str, Any]) -> None:
            if op == "put_object" and ctx["key"].startswith(prefix):
                raise store_error("NoSuchBucket: The specified bucket does not exist",
                                  code="NoSuchBucket", status=404)
        return fault

    async def main() -> tuple[list[int], list[ResumedJob | ResumedFile]]:
        async with Uploader(config(), store=store, journal=journal) as up:
            store.faults.append(gone(""))  # both jobs stop at their first file
            ids = []
            for prefix, batch in (("a/", files[:2]), ("b/", files[2:])):
                with pytest.raises(StoreError, match="NoSuchBucket"):
                    await up.upload_many([BatchItem(str(f), BUCKET, prefix + f.name)
                                          for f in batch])
                (job,) = [j for j in up.jobs(JobState.ACTIVE) if j.id not in ids]
                ids.append(job.id)
            store.faults[:] = [gone("a/")]  # the first job's bucket stays gone
            return ids, await resumed(up)

    (first, second), reports = anyio.run(main)
    assert [type(r) for r in reports] == [ResumedJob, ResumedJob, ResumedFile]
    stopped, done, file = reports
    assert isinstance(stopped, ResumedJob) and stopped.job_id == first
    assert stopped.result is None and stopped.exit_code == 7
    assert stopped.error is not None and "NoSuchBucket" in stopped.error
    assert f"bigupload resume {first}" in stopped.error
    assert isinstance(done, ResumedJob) and done.job_id == second and done.error is None
    assert done.result is not None and done.result.state is JobState.COMPLETED
    assert isinstance(file, ResumedFile) and file.error is None and file.result is not None
    assert {k for (_, k) in store.objects} == {"b/f2", "b/f3", KEY}
    with Journal(journal) as j:
        assert j.job(first).state is JobState.ACTIVE  # kept, resumable


def test_resume_of_a_single_file_keeps_sending_content_md5(make_file: Any,
                                                           tmp_path: Path) -> None:
    """``cp --content-md5`` interrupted, then ``bigupload resume`` (which takes no object
    options): each part it sends still carries its Content-MD5, as a job's would (its spec
    keeps the flag). The flag is journalled with the upload."""
    path = make_file(23 * MiB + 5)
    store, journal = FakeStore(), tmp_path / "j.db"
    assert interrupted_upload(path, store, journal, config(concurrency=1, content_md5=True),
                              lambda op, ctx: op == "upload_part" and ctx["number"] == 3)
    sent: list[str | None] = []
    store.faults.append(lambda op, ctx: sent.append(ctx["content_md5"])
                        if op == "upload_part" else None)

    async def main() -> list[ResumedJob | ResumedFile]:
        async with Uploader(config(), store=store, journal=journal) as up:
            return await resumed(up)

    (report,) = anyio.run(main)
    assert isinstance(report, ResumedFile) and report.error is None, report
    assert report.result is not None and report.result.resumed_parts >= 1
    assert len(sent) >= 2 and all(md5 is not None for md5 in sent), sent
    assert store.objects[(BUCKET, KEY)][0] == path.read_bytes()
