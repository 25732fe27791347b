"""bench/batch.py (issue 19's table) must keep running, or the engine's batch work is judged
by a harness that rotted: a --quick run of bigupload against the null sink writes the table,
with the journal's size per file, and a resume probe whose numbers come from the job it
interrupted. Peers are not needed here (they are bench-only tools, not in CI)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BATCH = Path(__file__).resolve().parents[2] / "bench" / "batch.py"


@pytest.mark.integration
def test_batch_bench_quick_writes_the_table(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(BATCH), "--quick", "--workloads", "tiny", "--servers", "null",
         "--tools", "bigupload", "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache"),
         "--name", "smoke"],
        capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads((tmp_path / "out" / "smoke.json").read_text())
    block = report["results"]["tiny/null"]
    assert block["files"] == 1_000
    row = block["tools"]["bigupload"]
    assert [r["error"] for r in row["runs"]] == [""]
    assert row["cpu_ms_per_file"] > 0 and row["rss_mib"] > 0
    assert block["journal_bytes"] and block["journal_bytes"][0] > 0
    (probe,) = block["probes"]
    if probe["first"]["interrupted"]:  # the job is killed once half its files are journalled
        assert 0 < probe["first"]["files_done"] < 1_000
        assert probe["resume"]["error"] == "" and probe["resume"]["files_done"] == 1_000
        assert probe["status"]["error"] == ""
        assert probe["resume_first_request_s"] is not None and probe["resume_first_request_s"] > 0
    else:  # too fast to catch half-way on this machine: said so, not hidden
        assert probe["error"]
    table = (tmp_path / "out" / "smoke.md").read_text()
    assert "| bigupload | cp -r, defaults |" in table and "journal B per file" in table
