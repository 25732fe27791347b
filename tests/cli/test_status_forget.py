"""``bigupload status`` and ``bigupload forget`` as a user meets them, through the real
entry point. Neither needs a server: the journal is built with the Journal API, and the
only server named in it (127.0.0.1:9) refuses connections, so a command that tried to
reach it would fail."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from bigupload.journal import (
    DestinationGuard,
    FileState,
    JobFile,
    JobState,
    Journal,
    PartRecord,
    UploadState,
)
from bigupload.source import Fingerprint
from tests.cli.test_cli import cli

E = "http://127.0.0.1:9"
DAY = 86400.0


def fp(name: str) -> Fingerprint:
    return Fingerprint(f"/data/{name}", 100, 1, 2, 3, "abc")


def row(j: Journal, key: str, state: UploadState, *, upload_id: str | None = "U",
        reason: str | None = None, endpoint: str = E) -> int:
    r = j.start_upload(fp(key), endpoint, "b", key, 5 << 20, 20, "crc32c", None,
                       guard=DestinationGuard.absent())
    if upload_id:
        j.set_upload_id(r, f"{upload_id}-{key}")
    j.record_part(r, PartRecord(1, 10, '"e1"', "c1"))
    if state is UploadState.COMPLETED:
        j.finish(r, state, etag='"done"')
    elif state is not UploadState.ACTIVE:
        j.finish(r, state, error=reason)
    return r


def job(j: Journal, name: str, state: JobState) -> int:
    job_id = j.start_job(f"{name}/ -> s3://b/{name}/", "{}", name)
    j.add_job_files(job_id, [JobFile(0, f"/data/{name}", "b", name, 100, None,
                                     FileState.FAILED if state is JobState.PARTIAL else FileState.DONE)])
    j.set_job_state(job_id, state)
    return job_id


def age(path: Path, table: str, ids: list[int], days: float) -> None:
    """Make rows look ``days`` old: the one thing the API cannot do without waiting."""
    db = sqlite3.connect(path)
    db.executemany(f"UPDATE {table} SET updated_at=? WHERE id=?",
                   [(time.time() - days * DAY, i) for i in ids])
    db.commit()
    db.close()


@pytest.fixture
def journal(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    """One row in every upload state, one of them on another endpoint, plus a job in each
    state (the completed job has an upload row of its own, which status shows with it)."""
    path = tmp_path / "journal.sqlite3"
    with Journal(path) as j:
        ids = {
            "active": row(j, "active", UploadState.ACTIVE),
            "fresh": row(j, "fresh", UploadState.ACTIVE, upload_id=None, endpoint="https://other:9000"),
            "completed": row(j, "completed", UploadState.COMPLETED),
            "failed": row(j, "failed", UploadState.FAILED, upload_id=None,
                          reason="cannot connect to the endpoint"),
            "aborted": row(j, "aborted", UploadState.ABORTED, reason="aborted by the user"),
            "superseded": row(j, "superseded", UploadState.SUPERSEDED,
                              reason="the destination changed since the upload began"),
            "job-active": job(j, "running", JobState.ACTIVE),
            "job-completed": job(j, "photos", JobState.COMPLETED),
            "job-partial": job(j, "music", JobState.PARTIAL),
        }
        ids["photos"] = row(j, "photos", UploadState.COMPLETED)  # a file of the completed job
    return path, ids


def events(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


def left(path: Path) -> tuple[set[str], set[str]]:
    with Journal(path) as j:
        return {r.key for r in j.uploads()}, {job.description.split("/")[0] for job in j.jobs()}


def test_status_shows_ids_endpoints_and_closed_rows_with_reasons(
        journal: tuple[Path, dict[str, int]]) -> None:
    path, ids = journal
    plain = cli("status", "--journal", str(path))
    assert plain.returncode == 0, plain.stderr
    lines = plain.stdout.splitlines()
    assert f"upload {ids['active']} [active] /data/active -> s3://b/active on {E}: 1/20 parts" in lines[2]
    assert lines[3].startswith(f"upload {ids['fresh']} [active] /data/fresh -> s3://b/fresh "
                               "on https://other:9000: ")
    assert "completed" not in plain.stdout and "superseded" not in plain.stdout
    assert lines[-1] == "2 job(s), 2 unfinished single-file upload(s)"

    every = cli("status", "--all", "--journal", str(path))
    assert every.returncode == 0, every.stderr
    text = every.stdout
    assert f"job {ids['job-completed']} [completed] photos/" in text
    assert f"upload {ids['completed']} [completed] /data/completed -> s3://b/completed on {E}: " \
           '100 B, ETag "done" (0m ago)' in text
    assert f"upload {ids['failed']} [failed] /data/failed -> s3://b/failed on {E}: " \
           "cannot connect to the endpoint (0m ago)" in text
    assert f"upload {ids['aborted']} [aborted] " in text and "aborted by the user" in text
    assert f"upload {ids['superseded']} [superseded] " in text
    assert "the destination changed since the upload began" in text
    assert "/data/photos" not in text  # the job's own file is shown with the job
    assert text.splitlines()[-1] == ("3 job(s), 2 unfinished single-file upload(s), "
                                     "4 closed single-file upload row(s)")

    as_json = cli("status", "--all", "--json", "--journal", str(path))
    assert as_json.returncode == 0, as_json.stderr
    got = {e["id"]: e for e in events(as_json.stdout) if e["event"] in ("unfinished", "closed")}
    assert set(got) == {ids[k] for k in ("active", "fresh", "completed", "failed", "aborted",
                                         "superseded")}
    assert got[ids["fresh"]]["endpoint"] == "https://other:9000"
    assert {(e["event"], e["state"], e["endpoint"], e["reason"]) for e in got.values()} >= {
        ("unfinished", "active", E, None),
        ("closed", "completed", E, None),
        ("closed", "failed", E, "cannot connect to the endpoint"),
        ("closed", "superseded", E, "the destination changed since the upload began"),
    }
    assert all(e["event"] != "summary" for e in events(as_json.stdout))


def test_forget_finished_then_failed(journal: tuple[Path, dict[str, int]]) -> None:
    """--finished takes completed rows and jobs, --failed failed, aborted and superseded
    rows and partial jobs; neither takes an active row or job."""
    path, ids = journal
    result = cli("forget", "--finished", "--journal", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ("forgot 2 upload row(s) and 1 job(s); nothing on the server was "
                             "changed\n")
    assert left(path) == ({"active", "fresh", "failed", "aborted", "superseded"},
                          {"running", "music"})
    result = cli("forget", "--failed", "--json", "--journal", str(path))
    assert result.returncode == 0, result.stderr
    assert events(result.stdout) == [{"event": "summary", "forgotten_uploads": 3, "forgotten_jobs": 1,
                                      "server_changed": False}]
    assert left(path) == ({"active", "fresh"}, {"running"})
    again = cli("forget", "--failed", "--finished", "--journal", str(path))
    assert (again.returncode, again.stdout) == (0, "nothing to forget\n")


def test_forget_older_than(journal: tuple[Path, dict[str, int]]) -> None:
    """Alone, --older-than takes every closed row that old; with --finished or --failed it
    narrows them; an active row is never taken by a filter, however old."""
    path, ids = journal
    age(path, "uploads", [ids[k] for k in ("active", "completed", "failed", "superseded")], 40)
    age(path, "jobs", [ids["job-active"], ids["job-partial"]], 40)
    result = cli("forget", "--older-than", "30d", "--finished", "--journal", str(path))
    assert result.returncode == 0, result.stderr
    assert "forgot 1 upload row(s) and 0 job(s)" in result.stdout
    result = cli("forget", "--older-than", "720h", "--journal", str(path))
    assert result.returncode == 0, result.stderr
    assert "forgot 2 upload row(s) and 1 job(s)" in result.stdout
    assert left(path) == ({"active", "fresh", "aborted", "photos"}, {"running", "photos"})
    result = cli("forget", "--older-than", "90m", "--journal", str(path))
    assert (result.returncode, result.stdout) == (0, "nothing to forget\n")


def test_forgetting_an_active_row_needs_its_id_and_shows_how_to_abort(
        journal: tuple[Path, dict[str, int]]) -> None:
    path, ids = journal
    result = cli("forget", "upload", str(ids["active"]), str(ids["fresh"]), "job",
                 str(ids["job-active"]), "--journal", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "forgot 2 upload row(s) and 1 job(s); nothing on the server was changed\n"
    assert f"bigupload abort s3://b/active --upload-id U-active --endpoint-url {E}" in result.stderr
    assert "left as is" in result.stderr
    # no upload id was journalled: the way to find one on the server instead
    assert "bigupload ls-uploads s3://b/fresh --endpoint-url https://other:9000" in result.stderr
    assert f"job {ids['job-active']} was active" in result.stderr
    assert left(path)[0] == {"completed", "failed", "aborted", "superseded", "photos"}


def test_forget_json_warns_about_an_active_row(journal: tuple[Path, dict[str, int]]) -> None:
    path, ids = journal
    result = cli("forget", "upload", str(ids["active"]), "--json", "--journal", str(path))
    assert result.returncode == 0, result.stderr
    warning, summary = events(result.stdout)
    assert warning["event"] == "warning" and warning["upload_id"] == "U-active"
    assert warning["command"] == f"bigupload abort s3://b/active --upload-id U-active --endpoint-url {E}"
    assert summary["forgotten_uploads"] == 1 and summary["server_changed"] is False


def test_forget_refuses_a_row_another_process_is_uploading(journal: tuple[Path, dict[str, int]]) -> None:
    path, ids = journal
    with Journal(path) as j, j.claim(E, "b", "active"):
        result = cli("forget", "upload", str(ids["active"]), "--journal", str(path))
    assert result.returncode == 8, result.stderr
    assert "another bigupload process" in result.stderr and len(result.stderr.splitlines()) == 1
    assert "active" in left(path)[0]


@pytest.mark.parametrize("args,message", [
    ([], "forget needs rows"),
    (["3"], "say `upload 3` or `job 3`"),
    (["upload", "{completed}", "99"], "no upload 99 in the journal"),
    (["job", "99"], "no job 99 in the journal"),
    (["upload", "{completed}", "photos"], "not 'photos'"),
    (["upload"], "no ids after 'upload'"),
    (["--older-than", "3w"], "30d, 12h, 90m"),
    (["--older-than=-3d"], "30d, 12h, 90m"),
    (["--older-than", "-1d"], "got '-1d'"),  # was argparse's "expected one argument"
    (["--older-than", "1.5d"], "30d, 12h, 90m"),
])
def test_forget_bad_input_changes_nothing(journal: tuple[Path, dict[str, int]], args: list[str],
                                          message: str) -> None:
    path, ids = journal
    before = left(path)
    result = cli("forget", *[a.format(**ids) for a in args], "--journal", str(path))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("bigupload: error:") and message in lines[0], lines
    assert result.stdout == ""
    assert left(path) == before


@pytest.mark.parametrize("argv", [["status"], ["status", "--all"], ["resume"], ["resume", "3"],
                                  ["forget", "--finished"], ["forget", "job", "1"]])
def test_a_journal_that_does_not_exist_is_refused_not_created(tmp_path: Path,
                                                              argv: list[str]) -> None:
    """A mistyped --journal used to be created empty, and status said there was nothing:
    the commands that read a journal refuse a path that does not exist (exit 2, one line)
    and leave nothing behind; the same holds for BIGUPLOAD_JOURNAL."""
    import os

    missing = tmp_path / "jounral.db"
    for how in ("option", "environment"):
        if how == "option":
            result = cli(*argv, "--journal", str(missing))
        else:
            result = cli(*argv, env={**os.environ, "BIGUPLOAD_JOURNAL": str(missing)})
        assert result.returncode == 2, (how, result.stderr)
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("bigupload: error: no journal at "), lines
        assert str(missing) in lines[0], lines
        assert result.stdout == ""
        assert list(tmp_path.iterdir()) == [], how


def test_the_upload_commands_still_create_their_journal(tmp_path: Path) -> None:
    """cp makes the journal it is given (here it fails at once: nothing listens on E)."""
    src = tmp_path / "f.bin"
    src.write_bytes(b"x" * 100)
    journal = tmp_path / "new" / "j.db"
    result = cli("cp", str(src), "s3://bucket/k", "--endpoint-url", E, "--journal", str(journal),
                 "--max-attempts", "1")
    assert result.returncode == 5, result.stderr
    assert journal.exists()
    assert cli("status", "--journal", str(journal)).returncode == 0


@pytest.mark.parametrize("as_json", [False, True])
def test_resume_with_another_endpoint_leaves_the_upload_and_says_so(tmp_path: Path,
                                                                    as_json: bool) -> None:
    """An upload begun on another endpoint is left for that endpoint, and the run says so:
    a warning line (or a ``skipped`` event) and exit 2, not a silent success."""
    path = tmp_path / "j.sqlite3"
    with Journal(path) as j:
        kept = row(j, "k", UploadState.ACTIVE)
    result = cli("resume", "--journal", str(path), "--endpoint-url", "http://127.0.0.1:10",
                 *(["--json"] if as_json else []))
    assert result.returncode == 2, result.stderr
    if as_json:
        (event,) = [json.loads(line) for line in result.stdout.splitlines()]
        assert (event["event"], event["id"], event["endpoint"], event["exit_code"]) == (
            "skipped", kept, E, 2)
    assert f"skipping s3://b/k: it uploads to {E}" in result.stderr
    with Journal(path) as j:
        assert j.get(kept).state is UploadState.ACTIVE
