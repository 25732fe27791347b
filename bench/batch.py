"""The batch benchmark (issue 19): directories of many files uploaded by bigupload
(``cp -r`` defaults), rclone (``copy --transfers 8 --checkers 8``) and the AWS CLI
(``s3 cp --recursive``), to SeaweedFS and to the null sink. Tools alternate round by round,
every upload is its own process measured with wait4 (wall, client user+sys CPU, peak RSS),
every upload gets a fresh server; ratios are tool / bigupload within a round, then the
median.

Workloads (generated once, cached between runs under --cache):
    small    5,000 files of 1-8 KiB in 50 directories
    tiny     200,000 files of 100 bytes in 200 directories
    mixed    2,004 files, 938 MiB: 2,000 of 4-64 KiB in 100 directories and 512, 256, 64
             and 40 MiB files (the set of the first batch benchmark)
    million  1,000,000 files of 100 bytes in 1,000 directories: bigupload and the null sink
             only, unless --tools and --servers name more

For bigupload it also reports the journal's size per file and, on the null sink, a resume
probe: a job killed (SIGKILL) once --interrupt-at of its files are journalled as done,
then ``bigupload status`` (wall) and ``bigupload resume`` (time from its start to the first
request the null sink receives, as the sink logs it, and its own wall, CPU and RSS).

Writes bench/results/batch.{md,json} (``--quick``: batch-quick.{md,json}; or --out, --name).
The first round on SeaweedFS counts the objects each tool stored (workloads up to 10,000
files), so a tool that skipped files shows as an error instead of a fast run.

    python bench/batch.py [--workloads small,tiny,mixed] [--servers seaweed,null]
                          [--tools bigupload,rclone,aws-cli] [--rounds 3] [--quick]
                          [--interrupt-at 0.5] [--probe-rounds N] [--timeout 1800]

The harness keeps its own process small on purpose (servers, bucket creation and the
workload generation run in helper processes): with vfork a child's ru_maxrss starts at its
parent's high-water mark. The report gives that floor.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import os
import random
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as harness  # noqa: E402  (bench/run.py: make_bucket, start_process, make_file, ...)

from bigupload.testing import TEST_CREDENTIALS  # noqa: E402

BENCH = harness.BENCH
BUCKET = harness.BUCKET
KiB, MiB = 1 << 10, 1 << 20


@dataclasses.dataclass(frozen=True)
class Workload:
    name: str
    files: int          # small files
    dirs: int
    low: int            # small file sizes, bytes (inclusive range)
    high: int
    large: tuple[int, ...] = ()  # large files' sizes
    only_bigupload: bool = False

    @property
    def count(self) -> int:
        return self.files + len(self.large)

    def key(self) -> str:
        large = "-".join(str(s // MiB) for s in self.large)
        return (f"{self.name}-{self.files}x{self.low}-{self.high}in{self.dirs}"
                + (f"+{large}" if large else ""))


WORKLOADS = {
    "small": Workload("small", 5_000, 50, 1 * KiB, 8 * KiB),
    "tiny": Workload("tiny", 200_000, 200, 100, 100),
    "mixed": Workload("mixed", 2_000, 100, 4 * KiB, 64 * KiB,
                      (512 * MiB, 256 * MiB, 64 * MiB, 40 * MiB)),
    "million": Workload("million", 1_000_000, 1_000, 100, 100, only_bigupload=True),
}
QUICK = {
    "small": Workload("small", 200, 5, 1 * KiB, 8 * KiB),
    "tiny": Workload("tiny", 1_000, 10, 100, 100),
    "mixed": Workload("mixed", 100, 10, 4 * KiB, 64 * KiB, (48 * MiB, 9 * MiB)),
    "million": Workload("million", 3_000, 30, 100, 100, only_bigupload=True),
}


# the workloads

def generate(w: Workload, root: str, seed: int = 1) -> None:
    """Write the tree (in a helper process: see the module docstring). ``mixed`` keeps the
    file names, sizes and bytes of the first batch benchmark's mixed set."""
    rng = random.Random(seed)
    block = rng.randbytes(64 * KiB)
    for i in range(w.files):
        directory = os.path.join(root, f"d{i % w.dirs:03}")
        if i < w.dirs:
            os.makedirs(directory, exist_ok=True)
        size = rng.randint(w.low, w.high) if w.high > w.low else w.low
        name = f"f{i:06}.bin" if w.name == "mixed" else f"f{i:07}"
        with open(os.path.join(directory, name), "wb") as f:
            f.write(i.to_bytes(8, "little")[:size] + block[8:size])
    for n, size in enumerate(w.large):
        harness.make_file(os.path.join(root, f"large{n}.bin"), size)


def workload_tree(w: Workload, cache: str) -> tuple[str, int]:
    """The cached tree (made on first use); returns (root, bytes)."""
    root = os.path.join(cache, w.key())
    marker = root + ".complete"  # beside the tree, never inside it (it would be uploaded)
    if not os.path.exists(marker):
        subprocess.run(["rm", "-rf", root], check=True)
        os.makedirs(root)
        print(f"generating {w.name}: {w.count:,} files in {root}", flush=True)
        start = time.monotonic()
        subprocess.run([sys.executable, __file__, "--generate", w.name, root]
                       + (["--quick"] if w is QUICK.get(w.name) else []), check=True)
        Path(marker).write_text("")
        print(f"  {time.monotonic() - start:.0f} s", flush=True)
    # the files' bytes (directories not counted), and every file read once so each tool
    # starts from a warm page cache (in helper processes)
    total = """find "$1" -type f -printf '%s\\n' | awk '{s += $1} END {print s}'"""
    size = subprocess.run(["sh", "-c", total, "sh", root], capture_output=True, text=True,
                          check=True).stdout
    subprocess.run(["sh", "-c", 'find "$1" -type f -print0 | xargs -0 cat > /dev/null', "sh", root],
                   check=True)
    return root, int(size)


# the servers (each in a helper process, which keeps this one small)

@contextlib.contextmanager
def null_sink(log: str | None = None) -> Iterator[str]:
    argv = [sys.executable, str(BENCH / "nullsink.py")]
    argv += ["--first-request-log", log] if log else []
    proc, port = harness.start_process(argv)
    try:
        endpoint = f"http://127.0.0.1:{port}"
        harness.make_bucket(endpoint)
        yield endpoint
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout:
            proc.stdout.close()


@contextlib.contextmanager
def seaweed() -> Iterator[str]:
    """A fresh SeaweedFS (``weed mini``, telemetry off, 127.0.0.1) with the bucket, run by
    a helper (``batch.py --serve-seaweed``) that stops it by PID when its stdin closes."""
    proc = subprocess.Popen([sys.executable, __file__, "--serve-seaweed"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdin is not None
    line = proc.stdout.readline().split()
    try:
        if not line or line[0] != "READY":
            raise SystemExit("SeaweedFS did not start")
        yield line[1]
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.terminate()
            proc.wait()
        proc.stdout.close()


def serve_seaweed() -> None:
    from bigupload.testing import SeaweedServer

    os.environ.update(TEST_CREDENTIALS)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with SeaweedServer() as weed:
        weed.create_bucket(BUCKET)
        print(f"READY {weed.endpoint_url}", flush=True)
        sys.stdin.read()  # until the harness closes it


SERVERS: dict[str, Callable[[], contextlib.AbstractContextManager[str]]] = {
    "seaweed": seaweed, "null": null_sink}
SERVER_TITLES = {"seaweed": "SeaweedFS (weed mini, 127.0.0.1, fresh per upload)",
                 "null": "null sink (bench/nullsink.py, fresh per upload)"}


# the tools

@dataclasses.dataclass
class Tool:
    name: str
    settings: str
    # (directory, key prefix, endpoint, journal, server) -> command
    argv: Callable[[str, str, str, str, str], list[str]]
    env: dict[str, str | None] = dataclasses.field(default_factory=dict)
    unavailable: str = ""


def tools(tmp: str) -> list[Tool]:
    py = sys.executable
    aws_defaults = os.path.join(tmp, "aws-defaults.ini")
    Path(aws_defaults).write_text("[default]\n")
    rclone_conf = os.path.join(tmp, "rclone.conf")
    Path(rclone_conf).write_text("")

    def bigupload(d: str, k: str, e: str, j: str, s: str) -> list[str]:
        return [py, "-m", "bigupload.cli", "cp", "-r", d, f"s3://{BUCKET}/{k}/",
                "--endpoint-url", e, "--journal", j, "--progress", "never"]

    def aws(d: str, k: str, e: str, j: str, s: str) -> list[str]:
        return [harness.AWS_CLI, "s3", "cp", "--recursive", d, f"s3://{BUCKET}/{k}/",
                "--endpoint-url", e, "--only-show-errors"]

    def rclone(d: str, k: str, e: str, j: str, s: str) -> list[str]:
        # a new prefix on a fresh server every run, so copy has nothing to skip;
        # --ignore-checksum on the null sink only: its ETags are not MD5s
        return ["rclone", "copy", "--transfers", "8", "--checkers", "8", "--config", rclone_conf,
                *(["--ignore-checksum"] if s == "null" else []), d,
                f":s3,provider=Other,endpoint='{e}',no_check_bucket=true,"
                f"access_key_id={os.environ['AWS_ACCESS_KEY_ID']},"
                f"secret_access_key={os.environ['AWS_SECRET_ACCESS_KEY']}:{BUCKET}/{k}"]

    which = harness._which  # noqa: SLF001
    return [
        Tool("bigupload", "cp -r, defaults", bigupload),
        Tool("rclone", "copy --transfers 8 --checkers 8", rclone, env=dict(harness.RCLONE_ENV),
             unavailable=which("rclone")),
        Tool("aws cli", "s3 cp --recursive, defaults", aws, env={"AWS_CONFIG_FILE": aws_defaults},
             unavailable=which(harness.AWS_CLI)),
    ]


# measuring

@dataclasses.dataclass
class Run:
    wall: float
    cpu: float
    rss_mib: float
    error: str = ""
    started: float = 0.0      # time.time() just before the process started
    interrupted: bool = False  # stopped by the harness on purpose (the resume probe)
    files_done: int = -1       # bigupload: files journalled as done (timeouts, interrupts)


def launch(argv: list[str], env: dict[str, str | None] | None = None, timeout: float = 1800,
           interrupt: Callable[[], bool] | None = None) -> Run:
    """Run one command: wall, user+sys CPU and peak RSS from wait4. ``interrupt`` is polled
    every 50 ms (less often when it is slow); when it says so the process is killed
    (SIGKILL) and the run marked interrupted. stderr goes to a file (a pipe could fill and
    stall a chatty tool)."""
    environment = dict(os.environ)
    environment.pop("PYTHONDONTWRITEBYTECODE", None)  # measured as installed (see run.py)
    for name, value in (env or {}).items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    with tempfile.TemporaryFile() as err:
        started = time.time()
        start = time.monotonic()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, env=environment)
        next_poll = start
        killed = ""
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            now = time.monotonic()
            if now - start > timeout:
                killed = f"timeout after {timeout:.0f} s"
            elif interrupt is not None and now >= next_poll:
                if interrupt():
                    killed = "interrupted"
                # every 50 ms, or less often when a poll is slow (a journal of a million rows)
                next_poll = now + max(0.05, 10 * (time.monotonic() - now))
            if killed:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.005)
        wall = time.monotonic() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        text = err.read().decode(errors="replace").strip()
    error = ""
    if killed == "interrupted":
        pass
    elif killed:
        error = killed
    elif proc.returncode != 0:
        error = f"exit {proc.returncode}: {text.splitlines()[-1] if text else ''}"
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, error, started,
               killed == "interrupted")


VERIFY_UP_TO = 10_000  # the first round on SeaweedFS counts what each tool stored, up to this


def count_objects(endpoint: str, prefix: str) -> int:
    """Objects under the prefix (ListObjectsV2, in a helper process: see the docstring)."""
    code = ("import sys, boto3\n"
            "s3 = boto3.client('s3', endpoint_url=sys.argv[1])\n"
            "pages = s3.get_paginator('list_objects_v2')\n"
            "print(sum(len(p.get('Contents', [])) for p in pages.paginate(Bucket=sys.argv[2], "
            "Prefix=sys.argv[3] + '/')))")
    out = subprocess.run([sys.executable, "-c", code, endpoint, BUCKET, prefix],
                         capture_output=True, text=True, check=True)
    return int(out.stdout)


def files_done(journal: str) -> int:
    from bigupload.testing import journalled_files_done

    return journalled_files_done(journal) if os.path.exists(journal) else 0


def journal_bytes(journal: str) -> int:
    return sum(os.path.getsize(p) for p in (journal, journal + "-wal") if os.path.exists(p))


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f}/{five:.2f}"


def describe(run: Run, count: int) -> str:
    count = max(1, count)
    if run.error:
        extra = f" ({run.files_done:,} files done)" if run.files_done >= 0 else ""
        return f"{run.error}{extra}, {run.wall:.1f} s, {run.cpu:.1f} CPU s, {run.rss_mib:.0f} MiB"
    return (f"{run.wall:7.2f} s {count / run.wall:7.0f} files/s "
            f"{run.cpu / count * 1000:6.2f} CPU ms/file {run.rss_mib:5.0f} MiB")


def first_request_after(log: str, since: float) -> float | None:
    """The earliest arrival the null sink logged at or after ``since`` (time.time())."""
    if not os.path.exists(log):
        return None
    after = [t for t in map(float, Path(log).read_text().split()) if t >= since]
    return min(after) if after else None


def probe(w: Workload, root: str, tool: Tool, tmp: str, args: argparse.Namespace,
          label: str) -> dict[str, object]:
    """Kill a bigupload job once ``--interrupt-at`` of its files are done (or at the
    timeout); time ``status``, then ``resume`` to its first request (logged by the null
    sink) and to its end, or for ``--resume-for`` seconds after that request."""
    fraction, timeout = args.interrupt_at, args.timeout
    probe_dir = os.path.join(tmp, "probe")
    shutil.rmtree(probe_dir, ignore_errors=True)
    os.makedirs(probe_dir)
    journal = os.path.join(probe_dir, "journal.sqlite3")
    log = os.path.join(probe_dir, "first-requests.log")
    target = max(1, int(w.count * fraction))
    with null_sink(log) as endpoint:
        first = launch(tool.argv(root, "probe", endpoint, journal, "null"), tool.env, timeout,
                       interrupt=lambda: target <= files_done(journal) < w.count)
        first.files_done = files_done(journal)
        out: dict[str, object] = {"interrupt_at": fraction, "first": dataclasses.asdict(first)}
        how = ("killed" if first.interrupted
               else "killed at the timeout" if first.error.startswith("timeout") else "ended")
        print(f"  [{label}] probe: job {how} after "
              f"{first.wall:.1f} s with {first.files_done:,}/{w.count:,} files done", flush=True)
        timed_out = first.error.startswith("timeout") and first.files_done < w.count
        if not first.interrupted and not timed_out:
            out["error"] = first.error or "the job ended before the interrupt"
            return out
        cli = [sys.executable, "-m", "bigupload.cli"]
        status = launch([*cli, "status", "--journal", journal], timeout=timeout)
        armed = time.time()

        def enough() -> bool:
            arrived = first_request_after(log, armed)
            return arrived is not None and time.time() >= arrived + args.resume_for

        resume = launch([*cli, "resume", "--journal", journal, "--endpoint-url", endpoint,
                         "--progress", "never"], timeout=timeout,
                        interrupt=enough if args.resume_for else None)
    resume.files_done = files_done(journal)
    arrived = first_request_after(log, resume.started)
    out.update(status=dataclasses.asdict(status), resume=dataclasses.asdict(resume),
               resume_first_request_s=(None if arrived is None
                                       else round(arrived - resume.started, 3)),
               journal_bytes=journal_bytes(journal))
    if resume.files_done != w.count and not resume.error and not resume.interrupted:
        resume.error = f"resume ended with {resume.files_done:,}/{w.count:,} files done"
        out["resume"] = dataclasses.asdict(resume)
    print(f"  [{label}] probe: status {status.error or f'{status.wall:.2f} s'}; resume: first "
          f"request after {out['resume_first_request_s']} s, "
          f"{describe(resume, resume.files_done - first.files_done)}", flush=True)
    return out


def bench_workload(w: Workload, root: str, size: int, server: str, selected: list[Tool],
                   rounds: int, tmp: str, args: argparse.Namespace) -> dict[str, object]:
    runs: dict[str, list[Run]] = {t.name: [] for t in selected}
    journals: list[int] = []
    probes: list[dict[str, object]] = []
    load_before = load()
    for r in range(rounds):
        for tool in selected:
            label = f"{w.name} {server} {r + 1}/{rounds}"
            if tool.unavailable or args.probe_only:
                continue
            run_dir = os.path.join(tmp, "run")
            os.makedirs(run_dir)
            journal = os.path.join(run_dir, "journal.sqlite3")
            prefix = f"{tool.name.replace(' ', '-')}-{r}"
            with SERVERS[server]() as endpoint:
                run = launch(tool.argv(root, prefix, endpoint, journal, server), tool.env,
                             args.timeout)
                if server == "seaweed" and r == 0 and not run.error and w.count <= VERIFY_UP_TO:
                    stored = count_objects(endpoint, prefix)
                    if stored != w.count:  # a tool that skipped files measured nothing
                        run.error = f"{stored:,} of {w.count:,} objects stored"
            if tool.name == "bigupload":
                if run.error:
                    run.files_done = files_done(journal)
                else:
                    journals.append(journal_bytes(journal))
            shutil.rmtree(run_dir)
            runs[tool.name].append(run)
            print(f"  [{label}] {tool.name:10s} {describe(run, w.count)}", flush=True)
        bigupload = next((t for t in selected if t.name == "bigupload"), None)
        if server == "null" and bigupload and r < args.probe_rounds:
            probes.append(probe(w, root, bigupload, tmp, args,
                                f"{w.name} {server} {r + 1}/{rounds}"))
    return {"files": w.count, "bytes": size, "load_before": load_before, "load_after": load(),
            "tools": {name: summarize(tool_runs, runs.get("bigupload", []), w.count)
                      for name, tool_runs in runs.items()},
            "journal_bytes": journals, "probes": probes}


def summarize(runs: list[Run], reference: list[Run], count: int) -> dict[str, object]:
    out: dict[str, object] = {"runs": [dataclasses.asdict(r) for r in runs]}
    good = [r for r in runs if not r.error]
    if not good:
        return out
    pairs = [(r, ref) for r, ref in zip(runs, reference, strict=False)
             if not r.error and not ref.error]
    out.update(
        wall_s=statistics.median(r.wall for r in good),
        wall_range=[min(r.wall for r in good), max(r.wall for r in good)],
        cpu_ms_per_file=statistics.median(r.cpu for r in good) / count * 1000,
        cpu_range=[min(r.cpu for r in good) / count * 1000,
                   max(r.cpu for r in good) / count * 1000],
        rss_mib=max(r.rss_mib for r in good),
        wall_ratio=statistics.median(r.wall / ref.wall for r, ref in pairs) if pairs else None,
        cpu_ratio=statistics.median(r.cpu / ref.cpu for r, ref in pairs) if pairs else None,
    )
    return out


# the report

def versions() -> dict[str, str]:
    def first_line(argv: list[str]) -> str:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
            return (out.stdout or out.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "not installed"

    import bigupload  # the commit of the engine measured (an editable install's tree)

    commit = first_line(["git", "-C", os.path.dirname(bigupload.__file__), "describe", "--always",
                         "--dirty"])
    weed = ("import subprocess; from bigupload.testing import weed_binary; "
            "subprocess.run([weed_binary(), 'version'])")
    return {"bigupload": first_line([sys.executable, "-m", "bigupload.cli", "--version"])
            + f" ({commit})",
            "rclone": first_line(["rclone", "version"]),
            "aws cli": first_line([harness.AWS_CLI, "--version"]),
            "seaweedfs": first_line([sys.executable, "-c", weed])}


def _ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _range(value: float, bounds: list[float], fmt: str) -> str:
    low, high = bounds
    if f"{low:{fmt}}" == f"{high:{fmt}}":
        return f"{value:{fmt}}"
    return f"{value:{fmt}} ({low:{fmt}}–{high:{fmt}})"


TOOL_HEADER = ["| tool | settings | wall s | files/s | CPU ms per file | peak RSS MiB | wall ratio "
               "| CPU ratio | journal B per file | resume → 1st request s | status s |",
               "|---|---|---|---|---|---|---|---|---|---|---|"]
PROBE_HEADER = ["| round | files done at kill | killed after s | until then: files/s | CPU ms per "
                "file | peak RSS MiB | status s | resume → 1st request s | resume wall s | resume "
                "CPU ms per file it sent | resume peak RSS MiB | journal B per file |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|"]


def markdown(report: dict) -> str:  # type: ignore[type-arg]
    lines = [f"# Batch benchmark, {report['date']} ({report['command']})", "",
             f"{report['rounds']} round(s), tools alternating within each round, every upload its "
             "own process and a fresh server; medians (range). CPU is the client's user+sys from "
             "wait4, per file of the workload, process start included. Ratios are tool / "
             "bigupload within a round, then the median. Peak RSS is the largest of the runs; the "
             f"harness's floor (a child's ru_maxrss starts at it) is {report['rss_floor_mib']:.0f} "
             "MiB.", "", "| machine | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in report["machine"].items()]
    lines += [f"| {k} | {v} |" for k, v in report["versions"].items()]
    lines += [f"| uptime at start | {report['uptime']} |", ""]
    for name, block in report["results"].items():
        workload, server = name.split("/")
        lines += [f"## {workload}: {block['files']:,} files, {block['bytes'] / MiB:,.1f} MiB → "
                  f"{SERVER_TITLES[server]}", "",
                  f"Load average (1/5 min) before {block['load_before']}, after "
                  f"{block['load_after']}.", "", *TOOL_HEADER]
        for tool, row in block["tools"].items():
            lines.append(tool_row(tool, report["settings"].get(tool, ""), row, block, server))
        if block["probes"]:
            lines += ["", "Resume probe (bigupload): the job killed with SIGKILL once "
                      f"{block['probes'][0]['interrupt_at']:.0%} of its files were journalled as "
                      "done (or at the timeout); then `status`, then `resume` (to its end, or "
                      "stopped some seconds after its first request: --resume-for).", "",
                      *PROBE_HEADER]
            lines += [probe_row(n, p, block["files"]) for n, p in enumerate(block["probes"], 1)]
        lines.append("")
    return "\n".join(lines)


def tool_row(tool: str, settings: str, row: dict, block: dict,  # type: ignore[type-arg]
             server: str) -> str:
    extra = ["", "", ""]
    if tool == "bigupload":
        probes = [p for p in block["probes"] if "resume" in p]
        # the probe's journal when only the probe ran (a million files)
        journal = block["journal_bytes"] or [p["journal_bytes"] for p in probes]
        firsts = [p["resume_first_request_s"] for p in probes
                  if p["resume_first_request_s"] is not None]
        statuses = [p["status"]["wall"] for p in probes if not p["status"]["error"]]
        missing = "n/a" if server != "null" else ""
        extra = [f"{statistics.median(journal) / block['files']:,.0f}" if journal else "",
                 f"{statistics.median(firsts):.2f}" if firsts else missing,
                 f"{statistics.median(statuses):.2f}" if statuses else missing]
    if "wall_s" not in row:
        errors = [r for r in row["runs"] if r["error"]]
        what = (errors[0]["error"] if errors
                else "the probe only (below)" if block["probes"] else "not run")
        if errors and errors[0]["files_done"] > 0:  # partial: the figures at the point reached
            e = errors[0]
            what += (f"; at that point {e['files_done']:,} files, "
                     f"{e['files_done'] / e['wall']:,.0f} files/s, "
                     f"{e['cpu'] / e['files_done'] * 1000:.2f} CPU ms per file, "
                     f"{e['rss_mib']:.0f} MiB")
        return f"| {tool} | {settings} | {what} | | | | | | " + " | ".join(extra) + " |"
    wall = _range(row["wall_s"], row["wall_range"], ".2f")
    cpu = _range(row["cpu_ms_per_file"], row["cpu_range"], ".2f")
    return (f"| {tool} | {settings} | {wall} | {block['files'] / row['wall_s']:,.0f} | {cpu} | "
            f"{row['rss_mib']:.0f} | {_ratio(row['wall_ratio'])} | {_ratio(row['cpu_ratio'])} | "
            + " | ".join(extra) + " |")


def probe_row(n: int, p: dict, files: int) -> str:  # type: ignore[type-arg]
    first = p["first"]
    done = max(1, first["files_done"])
    head = (f"| {n} | {first['files_done']:,} | {first['wall']:.1f} | "
            f"{done / first['wall']:,.0f} | {first['cpu'] / done * 1000:.2f} | "
            f"{first['rss_mib']:.0f} | ")
    if "resume" not in p:
        return head + f"{p.get('error', '')} | | | | | |"
    res, st = p["resume"], p["status"]
    rest = max(1, res["files_done"] - first["files_done"])
    stopped = " (stopped)" if res["interrupted"] else ""
    return head + (f"{st['error'] or format(st['wall'], '.2f')} | {p['resume_first_request_s']} | "
                   f"{res['error'] or format(res['wall'], '.1f')}{stopped} | "
                   f"{res['cpu'] / rest * 1000:.2f} | {res['rss_mib']:.0f} | "
                   f"{p['journal_bytes'] / files:,.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", default="small,tiny,mixed",
                        help="comma-separated: small, tiny, mixed, million")
    parser.add_argument("--servers", default="seaweed,null")
    parser.add_argument("--tools", default="", help="comma-separated names (default: all; "
                        "million: bigupload only unless named here)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: tiny workloads, 1 round (unless --rounds is given)")
    parser.add_argument("--interrupt-at", type=float, default=0.5,
                        help="the resume probe kills the job at this fraction of files done")
    parser.add_argument("--probe-rounds", type=int, default=99,
                        help="run the resume probe in the first N rounds only (0: never)")
    parser.add_argument("--resume-for", type=float, default=0,
                        help="stop the probe's resume this many seconds after its first request "
                        "(0: let it finish)")
    parser.add_argument("--probe-only", action="store_true",
                        help="only the resume probe (a million files: the killed job's figures at "
                        "the point reached stand for the full run's)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per upload")
    parser.add_argument("--cache",
                        default=os.path.join(tempfile.gettempdir(), "bigupload-batch-cache"),
                        help="where the workloads are generated and kept between runs")
    parser.add_argument("--out", default=str(BENCH / "results"))
    parser.add_argument("--name", help="the report's file name, without .md or .json "
                        "(default: batch, or batch-quick with --quick)")
    parser.add_argument("--generate", nargs=2, metavar=("WORKLOAD", "DIR"), help=argparse.SUPPRESS)
    parser.add_argument("--serve-seaweed", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    catalogue = QUICK if args.quick else WORKLOADS
    if args.generate:
        generate(catalogue[args.generate[0]], args.generate[1])
        return
    if args.serve_seaweed:
        serve_seaweed()
        return
    rounds = args.rounds if args.quick is False or "--rounds" in sys.argv else 1
    # a terminated harness must still stop its servers (the context managers)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    os.environ.update(TEST_CREDENTIALS)
    os.makedirs(args.cache, exist_ok=True)
    named = [t for t in args.tools.split(",") if t]
    report: dict = {"date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),  # type: ignore[type-arg]
                    "command": "python bench/batch.py " + " ".join(sys.argv[1:]), "rounds": rounds,
                    "machine": harness.machine(), "versions": versions(),
                    "uptime": subprocess.run(["uptime"], capture_output=True,
                                             text=True).stdout.strip(),
                    "results": {}}
    with tempfile.TemporaryDirectory(prefix="bigupload-batch-") as tmp:
        every = tools(tmp)
        report["settings"] = {t.name: t.settings for t in every}
        for t in every:
            if t.unavailable and (not named or t.name.replace(" ", "-") in named
                                  or t.name in named):
                print(f"{t.name}: cannot run: {t.unavailable}", flush=True)
        for name in args.workloads.split(","):
            w = catalogue[name]
            selected = [t for t in every
                        if ((t.name in named or t.name.replace(" ", "-") in named) if named
                            else (not w.only_bigupload or t.name == "bigupload"))]
            servers = [s for s in args.servers.split(",") if not w.only_bigupload or s == "null"
                       or "--servers" in sys.argv]
            root, size = workload_tree(w, args.cache)
            print(f"{name}: {w.count:,} files, {size / MiB:,.1f} MiB; load {load()}", flush=True)
            for server in servers:
                report["results"][f"{name}/{server}"] = bench_workload(
                    w, root, size, server, selected, rounds, tmp, args)
                write(report, args)  # after every block: a stopped run keeps what it measured
    print(write(report, args))


def write(report: dict, args: argparse.Namespace) -> str:  # type: ignore[type-arg]
    report["rss_floor_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = args.name or ("batch-quick" if args.quick else "batch")
    (out / f"{stem}.json").write_text(json.dumps(report, indent=1) + "\n")
    text = markdown(report)
    (out / f"{stem}.md").write_text(text)
    return text


if __name__ == "__main__":
    main()
