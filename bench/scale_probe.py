"""Batch jobs at scale (issue 19): peak RSS of a ``cp -r`` job against its file count, the
journal's size per file, the time a resumed job takes to its first request, and the time
``bigupload status`` takes, for jobs of many tiny files sent to the null sink.

    python bench/scale_probe.py run 20000 100000        # peak RSS (wait4) per job size
    python bench/scale_probe.py resume 1000000          # journal only: resume and status

``run N``: a tree of N files of 100 bytes (1,000 a directory, made once under
``--root``), uploaded by ``bigupload cp -r`` to a fresh null sink, its own process
measured with wait4: wall seconds, files/s, CPU, peak RSS; then the journal's bytes per
file and the time ``bigupload status`` takes on it.

``resume N``: the same tree's job journalled without sending it (the engine's
``open_job``, as ``cp -r`` does before its first request), half its files then marked
done in SQL (a job interrupted half-way), then: ``bigupload status`` (wall, whole
process), ``bigupload resume`` and the same ``cp -r`` again until their first request
reaches a listener (wall from the process's start; the process is then interrupted)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as harness  # noqa: E402

PER_DIR = 1000
BUCKET = harness.BUCKET


def make_tree(root: Path, files: int) -> Path:
    tree = root / f"tree_{files}"
    done = root / f"tree_{files}.done"
    if done.exists():
        return tree
    body = b"x" * 100
    for i in range(files):
        directory = tree / f"d{i // PER_DIR:05}"
        if i % PER_DIR == 0:
            directory.mkdir(parents=True, exist_ok=True)
        (directory / f"f{i:07}.bin").write_bytes(body)
    done.touch()
    return tree


def bigupload(*args: str) -> list[str]:
    return [sys.executable, "-m", "bigupload.cli", *args]


def journal_bytes(journal: Path) -> int:
    with sqlite3.connect(journal) as db:  # fold the WAL in, so the file is the whole journal
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return sum(p.stat().st_size for p in journal.parent.glob(journal.name + "*") if p.is_file())


def status_time(journal: Path, *extra: str) -> tuple[float, float]:
    """``bigupload status``'s wall and CPU seconds (the whole process: start-up too)."""
    run = harness.measure(bigupload("status", "--journal", str(journal), *extra))
    if run.error:
        raise SystemExit(f"status: {run.error}")
    return round(run.wall, 3), round(run.cpu, 3)


def cmd_run(args: argparse.Namespace) -> None:
    os.environ.update(harness.TEST_CREDENTIALS)
    for files in args.files:
        tree = make_tree(args.root, files)
        with tempfile.TemporaryDirectory() as tmp:
            journal = Path(tmp) / "journal.sqlite3"
            sink, port = harness.start_process([sys.executable,
                                                str(harness.BENCH / "nullsink.py")])
            try:
                run = harness.measure(bigupload(
                    "cp", "-r", str(tree), f"s3://{BUCKET}/p/", "--endpoint-url",
                    f"http://127.0.0.1:{port}", "--journal", str(journal), "--progress",
                    "never", *args.extra), timeout=7200)
            finally:
                sink.terminate()
                sink.wait()
            size = journal_bytes(journal)
            status = status_time(journal)
        print(json.dumps({"files": files, "wall_s": round(run.wall, 1),
                          "files_per_s": round(files / run.wall), "cpu_ms_per_file":
                          round(1000 * run.cpu / files, 3), "peak_rss_mib": round(run.rss_mib, 1),
                          "journal_bytes_per_file": round(size / files, 1),
                          "status_wall_cpu_s": status, "error": run.error}), flush=True)


def journal_job(tree: Path, journal: Path, endpoint: str) -> None:
    """Journal the job ``cp -r tree s3://BUCKET/p/`` would start, without sending it."""
    code = """
import sys
from bigupload import UploadConfig
from bigupload.batch import make_spec, open_job, walk_directory
from bigupload.journal import Journal
tree, journal, endpoint, bucket = sys.argv[1:]
config = UploadConfig(endpoint_url=endpoint)
origin = {"root": tree, "bucket": bucket, "prefix": "p/", "include": [], "exclude": [],
          "follow_symlinks": False}
spec = make_spec("directory", origin, config, endpoint, skip_existing=False)
with Journal(journal) as j:
    open_job(j, spec, walk_directory(tree, bucket, "p/"))
"""
    subprocess.run([sys.executable, "-c", code, str(tree), str(journal), endpoint, BUCKET],
                   check=True)


def first_request(argv: list[str], port: int) -> float:
    """Seconds from starting ``argv`` to the first bytes of a request on ``port`` (a
    listener of its own, so no connection of an earlier process is taken for it); the
    process is then interrupted."""
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(64)
        listener.settimeout(600)
        start = time.monotonic()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                env=environment)
        try:
            conn, _ = listener.accept()
            with conn:
                conn.recv(1)
                seconds = time.monotonic() - start
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            assert proc.stderr is not None
            proc.stderr.close()
    return seconds


def cmd_resume(args: argparse.Namespace) -> None:
    os.environ.update(harness.TEST_CREDENTIALS)
    for files in args.files:
        tree = make_tree(args.root, files)
        with tempfile.TemporaryDirectory() as tmp:
            with socket.socket() as free:
                free.bind(("127.0.0.1", 0))
                port = free.getsockname()[1]
            endpoint = f"http://127.0.0.1:{port}"
            journal = Path(tmp) / "journal.sqlite3"
            started = time.monotonic()
            journal_job(tree, journal, endpoint)
            listed = time.monotonic() - started
            with sqlite3.connect(journal) as db:
                db.execute("UPDATE job_files SET state='done' WHERE seq < ?", (files // 2,))
            size = journal_bytes(journal)
            status = status_time(journal)
            status_job = status_time(journal, "1")
            resume = first_request(bigupload("resume", "--journal", str(journal),
                                             "--progress", "never"), port)
            again = first_request(bigupload("cp", "-r", str(tree), f"s3://{BUCKET}/p/",
                                            "--endpoint-url", endpoint, "--journal",
                                            str(journal), "--progress", "never"), port)
        print(json.dumps({"files": files, "journal_s": round(listed, 1),
                          "journal_bytes_per_file": round(size / files, 1),
                          "status_wall_cpu_s": status, "status_job_wall_cpu_s": status_job,
                          "resume_first_request_s": round(resume, 2),
                          "cp_again_first_request_s": round(again, 2)}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "scale_probe")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run")
    run.add_argument("files", type=int, nargs="+")
    run.add_argument("--extra", nargs=argparse.REMAINDER, default=[])
    run.set_defaults(func=cmd_run)
    resume = sub.add_parser("resume")
    resume.add_argument("files", type=int, nargs="+")
    resume.set_defaults(func=cmd_resume)
    args = parser.parse_args()
    args.root.mkdir(parents=True, exist_ok=True)
    args.func(args)


if __name__ == "__main__":
    main()
