"""What the command writes: into a closed pipe it stops quietly with exit 141, as Unix
tools do (issue 13 item 14)."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bigupload import BatchItem, BatchResult, FileState, ItemResult, JobState, UploadResult
from bigupload.cli import EXIT_CODES, main
from bigupload.terminal import (
    BatchReporter,
    Output,
    log_handler,
    show_job_summary,
    show_uploaded,
)
from bigupload.testing import SeaweedServer
from tests.conftest import MiB


def run_into_closed_pipe(*args: str) -> subprocess.CompletedProcess[str]:
    """The command with stdout a pipe whose reader has already gone (`… | head -0`)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run([sys.executable, "-m", "bigupload.cli", *args], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    root.mkdir()
    for i in range(50):
        (root / f"f{i}.txt").write_text(str(i))
    return root


@pytest.mark.parametrize("as_json", [[], ["--json"]])
def test_a_dry_run_into_a_closed_pipe_stops_quietly(tree: Path, as_json: list[str]) -> None:
    result = run_into_closed_pipe("cp", str(tree), "s3://bucket/p/", "-r", "--dry-run", *as_json)
    assert result.returncode == 141
    assert result.stderr == ""


class ClosedStdout(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_main_returns_141_when_stdout_is_closed(tree: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdout", ClosedStdout())
    assert main(["cp", str(tree), "s3://bucket/p/", "-r", "--dry-run"]) == 141
    assert capsys.readouterr().err == ""


def test_141_is_in_the_exit_code_table() -> None:
    assert "\n  141  stdout was closed" in EXIT_CODES
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "| 141 |" in readme


@pytest.fixture
def upload_with_parts(seaweed: SeaweedServer, seaweed_bucket: str) -> Iterator[tuple[str, str]]:
    client: Any = seaweed.boto3_client()
    upload_id = client.create_multipart_upload(Bucket=seaweed_bucket, Key="k")["UploadId"]
    for number in (1, 2, 3):
        client.upload_part(Bucket=seaweed_bucket, Key="k", UploadId=upload_id,
                           PartNumber=number, Body=b"x" * 1000)
    yield seaweed_bucket, upload_id


@pytest.mark.integration
@pytest.mark.parametrize("as_json", [[], ["--json"]])
def test_parts_and_ls_uploads_into_a_closed_pipe_stop_quietly(
        seaweed: SeaweedServer, upload_with_parts: tuple[str, str], as_json: list[str]) -> None:
    bucket, upload_id = upload_with_parts
    common = ["--endpoint-url", seaweed.endpoint_url, *as_json]
    result = run_into_closed_pipe("parts", f"s3://{bucket}/k", "--upload-id", upload_id, *common)
    assert (result.returncode, result.stderr) == (141, "")
    result = run_into_closed_pipe("ls-uploads", f"s3://{bucket}", *common)
    assert (result.returncode, result.stderr) == (141, "")


# Progress and summaries (issue 13 item 19)

def _screen(text: str) -> list[str]:
    """The lines a terminal shows after ``text``: enough of one for tqdm (\r, \n, cursor
    up), each character written where the cursor stands."""
    lines: list[list[str]] = [[]]
    row = col = 0
    for up, cr, lf, char in re.findall(r"\x1b\[(\d*)A|(\r)|(\n)|(.)", text, re.S):
        if cr:
            col = 0
        elif lf:
            row, col = row + 1, 0
        elif char:
            line = lines[row]
            line.extend(" " * (col + 1 - len(line)))
            line[col] = char
            col += 1
        else:
            row = max(0, row - int(up or 1))
        lines.extend([] for _ in range(row + 1 - len(lines)))
    return ["".join(line).rstrip() for line in lines]


def _reporter_with_a_resumed_file() -> tuple[BatchReporter, Any]:
    reporter = BatchReporter(Output(False, io.StringIO()), bars=True)
    reporter.start_job(7, files=3, total_bytes=100 * MiB, done_files=1, done_bytes=10 * MiB)
    bar = reporter.file_progress(BatchItem("big.bin", "b", "big.bin"), 60 * MiB, True)
    bar.start("big.bin", 60 * MiB, 40 * MiB)  # an earlier run left 40 MiB on the server
    return reporter, bar


def test_log_lines_go_through_the_bars(capsys: pytest.CaptureFixture[str]) -> None:
    handler = log_handler(bars=True)
    handler.setFormatter(logging.Formatter("bigupload: %(message)s"))
    log = logging.getLogger("test-bars")
    log.addHandler(handler)
    log.propagate = False
    try:
        reporter, bar = _reporter_with_a_resumed_file()
        bar.advance(MiB)
        log.warning("resuming big.bin: 8 of 12 parts already on the server")
        bar.advance(MiB)
        bar.close()
        reporter.close()
    finally:
        log.removeHandler(handler)
    text = capsys.readouterr().err
    lines = [line for line in _screen(text) if "resuming big.bin" in line]
    assert lines == ["bigupload: resuming big.bin: 8 of 12 parts already on the server"], text


def test_the_rate_counts_only_what_this_run_sent(capsys: pytest.CaptureFixture[str]) -> None:
    reporter, bar = _reporter_with_a_resumed_file()
    bar.advance(3 * MiB)
    reporter.file_done(ItemResult("small", "b", "small", 5 * MiB, FileState.SKIPPED))
    overall = reporter._overall.format_dict
    # the bar shows everything done (10 + 40 + 3 + 5 MiB), its rate counts the 3 MiB sent
    assert overall["n"] == 58 * MiB and overall["n"] - overall["initial"] == 3 * MiB
    file_bar = bar.bar.format_dict
    assert file_bar["n"] == 43 * MiB and file_bar["n"] - file_bar["initial"] == 3 * MiB
    bar.close()
    reporter.close()
    text = capsys.readouterr().err
    assert "58.0/100.0 MiB" in text and "MiB/s" in text
    assert not re.search(r"[0-9.]+[kMG]?B/s", text), text


def _result(**overrides: Any) -> UploadResult:
    fields: dict[str, Any] = dict(
        bucket="b", key="k", etag="e", size=30 * MiB, part_size=5 * MiB, parts=6,
        checksum_algorithm="crc32c", checksum="x", full_object_checksum=None, upload_id="U",
        resumed_parts=4, sent_bytes=10 * MiB, elapsed_s=4.0)
    fields.update(overrides)
    return UploadResult(**fields)


def test_a_file_summary_says_mib_per_second_of_what_was_sent() -> None:
    out = io.StringIO()
    show_uploaded(Output(False, out), "f", "b", "k", _result())
    assert "(2.5 MiB/s sent), 4 parts resumed" in out.getvalue()


def test_a_resumed_jobs_summary_counts_this_runs_files() -> None:
    result = BatchResult(job_id=3, state=JobState.COMPLETED, files=305, uploaded=304,
                         skipped=1, failed=0, total_bytes=400 * MiB, sent_bytes=2 * MiB,
                         elapsed_s=1.0, uploaded_now=2, skipped_now=1)
    text = io.StringIO()
    show_job_summary(Output(False, text), result)
    line = text.getvalue()
    assert "305 file(s), 2 uploaded (302 more by earlier runs), 1 skipped, 0 failed" in line
    assert "(2 files/s, 2.0 MiB/s)" in line and "MB/s" not in line
    as_json = io.StringIO()
    show_job_summary(Output(True, as_json), result)
    event = json.loads(as_json.getvalue())
    assert (event["uploaded"], event["uploaded_now"], event["sent_bytes"]) == (304, 2, 2 * MiB)


def test_a_summary_lists_the_failures_it_holds_and_says_where_the_rest_are() -> None:
    """A run's result holds its first failures only: the summary lists those and names
    the command that lists them all, as text and as JSON."""
    failed = ItemResult("/s/a", "b", "p/a", 1, FileState.FAILED, error="gone", exit_code=3)
    result = BatchResult(job_id=7, state=JobState.PARTIAL, files=500, uploaded=0, skipped=0,
                         failed=500, total_bytes=500, sent_bytes=0, elapsed_s=1.0,
                         failed_now=500, failures=(failed,) * 100)
    text = io.StringIO()
    show_job_summary(Output(False, text), result)
    lines = text.getvalue().splitlines()
    assert lines[:100] == ["failed: /s/a -> s3://b/p/a: gone"] * 100
    assert lines[100] == "... and 400 more failure(s): bigupload status 7 lists them all"
    as_json = io.StringIO()
    show_job_summary(Output(True, as_json), result)
    event = json.loads(as_json.getvalue())
    assert len(event["failures"]) == 100 and event["failures_unlisted"] == 400


def test_version_goes_to_stdout_with_each_checksum_backend() -> None:
    """`bigupload --version | head -1` printed nothing: the version went to stderr."""
    result = subprocess.run([sys.executable, "-m", "bigupload.cli", "--version"],
                            capture_output=True, text=True)
    assert result.returncode == 0 and result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0].startswith("bigupload ")
    assert {line.split()[0] for line in lines[1:]} >= {"crc32", "crc32c", "crc64nvme"}
