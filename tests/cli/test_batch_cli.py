"""Batch jobs as a user meets them: a directory tree (nested, empty files, unicode and
spaces, multipart files) on SeaweedFS and moto; a job killed with SIGKILL and finished by
``bigupload resume`` without re-sending what was done; failures that leave the job
partial; manifests with bad lines; filters and --skip-existing."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bigupload.testing import MotoServer, SeaweedServer
from tests.conftest import MiB, list_uploads, random_file, read_object
from tests.faultproxy import FaultProxy, on

pytestmark = pytest.mark.integration


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bigupload.cli", *args], capture_output=True,
                          text=True, timeout=300)


def events(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def make_tree(root: Path, large: int = 2, large_size: int = 12 * MiB) -> dict[str, Path]:
    """relative key -> file: nested folders, empty files, unicode and spaces, ``large``
    files above the 5 MiB multipart threshold used by these tests."""
    files: dict[str, Path] = {}
    names = ["a.txt", "empty", "sub dir/b c.txt", "sub dir/ünïcødé ✓.bin", "deep/er/x/y/z.dat",
             "deep/empty too"] + [f"many/f{i:03}.bin" for i in range(60)]
    for i, name in enumerate(names):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"" if "empty" in name else os.urandom(1 + i * 97))
        files[name] = path
    for n in range(large):
        files[f"large/big{n}.bin"] = random_file((root / "large").mkdir(exist_ok=True) or
                                                 root / "large" / f"big{n}.bin", large_size + n, seed=n)
    return files


def assert_objects(server: SeaweedServer | MotoServer, bucket: str, prefix: str,
                   files: dict[str, Path]) -> None:
    client = server.boto3_client()
    keys = {o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for o in page.get("Contents", [])}
    assert keys == {prefix + name for name in files}
    for name, path in files.items():
        assert read_object(server, bucket, prefix + name) == path.read_bytes(), name


@pytest.mark.parametrize("server_name", ["seaweed", "moto_server"])
def test_directory_tree_round_trip(server_name: str, request: pytest.FixtureRequest,
                                   tmp_path: Path) -> None:
    server = request.getfixturevalue(server_name)
    bucket = request.getfixturevalue("seaweed_bucket" if server_name == "seaweed" else "moto_bucket")
    files = make_tree(tmp_path / "src")
    (tmp_path / "src" / "link").symlink_to(tmp_path / "src" / "a.txt")
    result = cli("cp", str(tmp_path / "src"), f"s3://{bucket}/up", "--recursive", "--json",
                 "--endpoint-url", server.endpoint_url, "--part-size", "5MiB", "--concurrency", "4")
    assert result.returncode == 0, result.stderr
    out = events(result.stdout)
    summary = out[-1]
    assert summary["event"] == "summary" and summary["state"] == "completed"
    assert (summary["files"], summary["uploaded"], summary["failed"]) == (len(files), len(files), 0)
    assert {e["key"] for e in out if e["event"] == "file"} == {"up/" + n for n in files}
    assert "1 symbolic link(s) skipped" in result.stderr
    assert_objects(server, bucket, "up/", files)
    assert not list_uploads(server, bucket)


def job_state(journal: Path) -> tuple[set[str], set[tuple[str, int]]]:
    """(keys journalled done, (key, part) journalled), read-only while the CLI runs."""
    try:
        db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=1)
    except sqlite3.Error:
        return set(), set()
    try:
        done = {k for (k,) in db.execute("SELECT key FROM job_files WHERE state='done'")}
        parts = {(k, n) for k, n in db.execute(
            "SELECT u.key, p.number FROM parts p JOIN uploads u ON u.id = p.upload")}
        return done, parts
    except sqlite3.Error:
        return set(), set()
    finally:
        db.close()


@pytest.mark.slow
def test_killed_job_resumes_without_resending_what_was_done(seaweed: SeaweedServer, seaweed_bucket: str,
                                                            tmp_path: Path) -> None:
    files = make_tree(tmp_path / "src", large=3, large_size=22 * MiB)  # 5 parts each
    for i in range(200):
        (tmp_path / "src" / "more").mkdir(exist_ok=True)
        path = tmp_path / "src" / "more" / f"m{i:03}"
        path.write_bytes(os.urandom(4096 + i))
        files[f"more/m{i:03}"] = path
    journal = tmp_path / "journal.sqlite3"
    with FaultProxy(int(seaweed.endpoint_url.rsplit(":", 1)[1])) as proxy:
        proxy.hold(on("UploadPart", part=5))  # no large file finishes before the kill
        argv = [sys.executable, "-m", "bigupload.cli", "cp", str(tmp_path / "src"),
                f"s3://{seaweed_bucket}/job/", "-r", "--endpoint-url", proxy.endpoint_url,
                "--journal", str(journal), "--part-size", "5MiB", "--concurrency", "2", "--json"]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while True:
            done, parts = job_state(journal)
            if len(done) >= 40 and len(parts) >= 2:
                break
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        proxy.clear(drop=True)
        done, parts = job_state(journal)
        assert len(done) < len(files)  # really interrupted part-way
        before = len(proxy.records("PutObject")), len(proxy.records("UploadPart"))

        status = cli("status", "--journal", str(journal), "--json")
        (job,) = [e for e in events(status.stdout) if e["event"] == "job"]
        assert job["state"] == "active" and job["done_files"] >= len(done)

        result = cli("resume", "--journal", str(journal), "--json", "--concurrency", "2")
        assert result.returncode == 0, result.stderr
        summary = events(result.stdout)[-1]
        assert summary["state"] == "completed" and summary["files"] == len(files)
        # the job's count, and this run's: what was not journalled done before the kill
        assert summary["uploaded"] == len(files)
        assert summary["uploaded_now"] == len(files) - len(done)
        put_again = [r.path for r in proxy.records("PutObject")[before[0]:]]
        parts_again = [r for r in proxy.records("UploadPart")[before[1]:]]
    small = {f"/{seaweed_bucket}/job/{name}" for name in files if not name.startswith("large/")}
    # exactly the small files not journalled done, each once; none of the done ones
    assert sorted(put_again) == sorted(small - {f"/{seaweed_bucket}/{k}" for k in done})
    upload_keys = {r.upload_id: r.path for r in proxy.records("UploadPart")}
    resent = {(upload_keys[r.upload_id].split("/", 2)[2], r.part_number) for r in parts_again}
    assert not resent & parts
    assert_objects(seaweed, seaweed_bucket, "job/", files)
    assert not list_uploads(seaweed, seaweed_bucket)


def test_failed_files_make_the_job_partial_and_resume_retries_them(
        seaweed: SeaweedServer, seaweed_bucket: str, tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(b"a" * 100)
    (tmp_path / "b.bin").write_bytes(b"b" * 200)
    manifest = tmp_path / "list.tsv"
    manifest.write_text("a.bin\tm/a.bin\nmissing.bin\tm/missing.bin\n"
                        + json.dumps({"source": "b.bin", "key": "m/b.json", "content_type": "application/json",
                                      "metadata": {"team": "data"}}) + "\n")
    journal = tmp_path / "journal.sqlite3"
    common = ["--endpoint-url", seaweed.endpoint_url, "--journal", str(journal)]
    result = cli("cp", "--manifest", str(manifest), f"s3://{seaweed_bucket}/", "--json", *common)
    assert result.returncode == 9, result.stderr
    summary = events(result.stdout)[-1]
    assert (summary["uploaded"], summary["failed"]) == (2, 1)
    (failure,) = summary["failures"]
    assert failure["key"] == "m/missing.bin" and "no such file" in failure["error"].lower()
    head = seaweed.boto3_client().head_object(Bucket=seaweed_bucket, Key="m/b.json")
    assert head["ContentType"] == "application/json" and head["Metadata"] == {"team": "data"}

    human = cli("status", str(summary["job_id"]), "--journal", str(journal))
    assert "[partial]" in human.stdout and "failed: " in human.stdout and "missing.bin" in human.stdout

    (tmp_path / "missing.bin").write_bytes(b"here now")
    again = cli("resume", str(summary["job_id"]), "--json", "--journal", str(journal))
    assert again.returncode == 0, again.stderr
    assert events(again.stdout)[-1]["uploaded"] == 3
    assert read_object(seaweed, seaweed_bucket, "m/missing.bin") == b"here now"
    assert read_object(seaweed, seaweed_bucket, "m/a.bin") == b"a" * 100


def test_fail_fast_stops_with_the_file_error(seaweed: SeaweedServer, seaweed_bucket: str,
                                             tmp_path: Path) -> None:
    manifest = tmp_path / "list.tsv"
    manifest.write_text("missing.bin\tk1\n")
    result = cli("cp", "--manifest", str(manifest), f"s3://{seaweed_bucket}/", "--fail-fast",
                 "--endpoint-url", seaweed.endpoint_url, "--journal", str(tmp_path / "j.sqlite3"))
    assert result.returncode == 3, result.stderr
    assert "no such file" in result.stderr.lower() and "bigupload resume" in result.stderr


def test_manifest_with_a_bad_line_sends_nothing(seaweed: SeaweedServer, seaweed_bucket: str,
                                                tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(b"a")
    manifest = tmp_path / "list.tsv"
    manifest.write_text("a.bin\tk1\n\na.bin k2\n")
    result = cli("cp", "--manifest", str(manifest), f"s3://{seaweed_bucket}/",
                 "--endpoint-url", seaweed.endpoint_url, "--journal", str(tmp_path / "j.sqlite3"))
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert f"{manifest} line 3: expected SOURCE<TAB>KEY" in line
    assert "Contents" not in seaweed.boto3_client().list_objects_v2(Bucket=seaweed_bucket)


def test_filters_and_skip_existing(seaweed: SeaweedServer, seaweed_bucket: str, tmp_path: Path) -> None:
    files = make_tree(tmp_path / "src", large=1)
    (tmp_path / "src" / "scratch.tmp").write_bytes(b"tmp")
    (tmp_path / "src" / "many" / "cache").mkdir()
    (tmp_path / "src" / "many" / "cache" / "c.bin").write_bytes(b"cache")
    journal = tmp_path / "journal.sqlite3"
    argv = ["cp", str(tmp_path / "src"), f"s3://{seaweed_bucket}/f/", "-r", "--exclude", "*.tmp",
            "--exclude", "many/cache/*", "--endpoint-url", seaweed.endpoint_url, "--journal",
            str(journal), "--part-size", "5MiB", "--json"]
    first = cli(*argv)
    assert first.returncode == 0, first.stderr
    assert_objects(seaweed, seaweed_bucket, "f/", files)  # neither *.tmp nor many/cache/
    files["sub dir/b c.txt"].write_bytes(b"changed, and another size")
    second = cli(*argv, "--skip-existing")
    assert second.returncode == 0, second.stderr
    summary = events(second.stdout)[-1]
    assert (summary["uploaded"], summary["skipped"]) == (1, len(files) - 1)
    assert summary["sent_bytes"] == len(b"changed, and another size")
    assert_objects(seaweed, seaweed_bucket, "f/", files)


def test_a_directory_whose_own_name_is_not_utf8_is_uploaded(
        seaweed: SeaweedServer, seaweed_bucket: str, tmp_path: Path) -> None:
    """``cp -r $'\\xff'dir s3://b/p/`` was an internal error (exit 1: the job's description,
    with the root's name in it, could not be written to the journal). The files under it
    have UTF-8 names, so they are uploaded; status shows the root escaped, and the same
    command runs again."""
    root = os.fsdecode(os.fsencode(tmp_path) + b"/\xffdir")
    os.mkdir(root)
    for name in ("a.txt", "b.txt"):
        with open(os.path.join(root, name), "wb") as f:
            f.write(name.encode())
    journal = tmp_path / "journal.sqlite3"
    common = ["--endpoint-url", seaweed.endpoint_url, "--journal", str(journal)]
    first = cli("cp", "-r", root, f"s3://{seaweed_bucket}/p/", "--json", *common)
    assert first.returncode == 0, first.stderr
    summary = events(first.stdout)[-1]
    assert (summary["uploaded"], summary["failed"]) == (2, 0), summary
    for name in ("a.txt", "b.txt"):
        assert read_object(seaweed, seaweed_bucket, f"p/{name}") == name.encode()
    status = cli("status", "--all", "--journal", str(journal))
    assert status.returncode == 0, status.stderr
    assert "\\xffdir -> s3://" in status.stdout, status.stdout
    again = cli("cp", "-r", root, f"s3://{seaweed_bucket}/p/", "--json", *common)
    assert again.returncode == 0, again.stderr
    assert events(again.stdout)[-1]["failed"] == 0


def test_a_name_that_is_not_utf8_stays_failed_on_resume_and_no_other_file_stands_in(
        seaweed: SeaweedServer, seaweed_bucket: str, tmp_path: Path) -> None:
    """A file named with byte 0xff beside one literally named ``bad\\udcffname.txt`` (what
    an escaped form of the first would look like): retrying the first must neither send
    the second in its place nor lose why it failed."""
    tree = tmp_path / "e"
    tree.mkdir()
    (tree / "bad\\udcffname.txt").write_bytes(b"REAL")
    with open(os.fsencode(tree) + b"/bad\xffname.txt", "wb") as f:
        f.write(b"NONUTF")
    journal = tmp_path / "journal.sqlite3"
    common = ["--endpoint-url", seaweed.endpoint_url, "--journal", str(journal)]
    first = cli("cp", str(tree), f"s3://{seaweed_bucket}/e/", "-r", "--json", *common)
    assert first.returncode == 9, first.stderr
    summary = events(first.stdout)[-1]
    assert (summary["uploaded"], summary["failed"]) == (1, 1)
    (failure,) = summary["failures"]
    assert "not valid UTF-8" in failure["error"]
    # the line and the error name the file (a job of 150 such names said 150 times the
    # same line without one)
    assert "name.txt: not valid UTF-8" in failure["error"], failure
    assert "name.txt: not valid UTF-8" in first.stderr, first.stderr

    def uploaded_keys() -> set[str]:
        listing = seaweed.boto3_client().list_objects_v2(Bucket=seaweed_bucket, Prefix="e/")
        return {o["Key"] for o in listing.get("Contents", [])}

    assert len(uploaded_keys()) == 1  # SeaweedFS lists a "\\" in a key as "/"
    for _ in range(2):  # each retry keeps the reason
        again = cli("resume", str(summary["job_id"]), "--json", "--journal", str(journal))
        assert again.returncode == 9, again.stderr
        result = events(again.stdout)[-1]
        assert (result["files"], result["uploaded"], result["failed"]) == (2, 1, 1), result
        (failure,) = result["failures"]
        assert "not valid UTF-8" in failure["error"], failure
        assert os.fsencode(failure["source"]).endswith(b"/bad\xffname.txt"), failure
        assert result["sent_bytes"] == 0  # nothing was sent in the bad file's place
    assert len(uploaded_keys()) == 1
    assert read_object(seaweed, seaweed_bucket, "e/bad\\udcffname.txt") == b"REAL"
    status = cli("status", str(summary["job_id"]), "--journal", str(journal))
    assert "[partial]" in status.stdout, status.stdout
