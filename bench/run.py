"""The upload benchmark: the same file to the same server with bigupload and each peer,
alternating tools round by round (A B C ... A B C ...), every upload its own process
measured with wait4: wall seconds, MB/s, client CPU seconds per GiB (user+sys of the
client process and its children, never the server's) and peak RSS. Ratios against
bigupload (defaults) are taken within each round, then the median.

Servers: a null sink (bench/nullsink.py, bodies discarded: the client's own ceiling), the
same null sink over HTTPS (a CA and a certificate made at run time; every client trusts
the CA through AWS_CA_BUNDLE or its own option, and the sink logs the TLS version and
cipher each client negotiated), and SeaweedFS (real end to end, but it needs ~10 CPU s/GiB
on the same two cores). Yardsticks: reading the file from page cache, and sending it
through a loopback socket.

Writes bench/results/latest.{md,json,png}. This process stays small on purpose: with
vfork, a child's ru_maxrss starts at its parent's high-water mark, so the harness's own
S3 call (bucket creation) runs in a helper subprocess.

    python bench/run.py [--size-mib 2048] [--rounds 3] [--servers null,https,seaweed]
                        [--tools bigupload,boto3,...] [--big-gib 20]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from bigupload.testing import TEST_CREDENTIALS, SeaweedServer, weed_binary

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PEERS_PY = ROOT / ".venv-peers" / "bin" / "python"
AWS_CLI = "/usr/bin/aws"  # Debian's AWS CLI v2; an older `aws` may come first on PATH
BUCKET = "bench"
GiB = 1 << 30
MiB = 1 << 20

# bigupload's tuned settings, found with --tools bigupload (see the README's benchmark notes)
BIGUPLOAD_TUNED = ["--part-size", "64MiB"]


@dataclasses.dataclass
class Tool:
    name: str          # e.g. "boto3 tuned"
    settings: str      # what the settings are, in words
    argv: Callable[[str, str, str], list[str]]  # (file, key, endpoint) -> command
    env: dict[str, str | None] = dataclasses.field(default_factory=dict)  # None: unset it
    unavailable: str = ""  # why it cannot run here; reported, never silently dropped
    servers: tuple[str, ...] = ("null", "https", "seaweed")  # where it is measured


@dataclasses.dataclass
class Run:
    wall: float
    cpu: float
    rss_mib: float
    error: str = ""
    tls: str = ""  # TLS version and cipher the client negotiated (HTTPS null sink)


def measure(argv: list[str], env: dict[str, str | None] | None = None, timeout: float = 900) -> Run:
    """Run one command; its wall time, user+sys CPU and peak RSS from wait4."""
    environment = dict(os.environ)
    # measured as installed: with bytecode (a shell that sets PYTHONDONTWRITEBYTECODE would
    # otherwise have an editable install compile every module on every run, ~50 ms)
    environment.pop("PYTHONDONTWRITEBYTECODE", None)
    for name, value in (env or {}).items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=environment)
    deadline = start + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.005)
    wall = time.monotonic() - start
    assert proc.stderr is not None
    err = proc.stderr.read().decode(errors="replace").strip()
    proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    error = "" if proc.returncode == 0 else f"exit {proc.returncode}: {err.splitlines()[-1] if err else ''}"
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, error)


def make_bucket(endpoint: str) -> None:
    """Create the bucket, in a helper process (see the module docstring)."""
    code = "import sys, boto3; boto3.client('s3', endpoint_url=sys.argv[1]).create_bucket(Bucket=sys.argv[2])"
    subprocess.run([sys.executable, "-c", code, endpoint, BUCKET], check=True)


def start_process(argv: list[str]) -> tuple[subprocess.Popen[str], int]:
    """Start a server that prints 'READY <port>'; returns it and the port."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    if not line or line[0] != "READY":
        proc.kill()
        raise SystemExit(f"{argv[1]} did not start")
    return proc, int(line[1])


# the tools

# rclone fails with LoadCustomCABundleError when AWS_CA_BUNDLE is set
RCLONE_ENV: dict[str, str | None] = {"AWS_CA_BUNDLE": None}
CA_BUNDLE = [""]  # the HTTPS null sink's CA, once made


def _which(path: str) -> str:
    return "" if shutil.which(path) else f"{path} not installed (run `make bench-setup`)"


def tools(tmp: str) -> list[Tool]:
    py = sys.executable
    journal = os.path.join(tmp, "journal.sqlite3")
    peers = "" if PEERS_PY.exists() else ".venv-peers missing (run `make bench-setup`)"

    def bigupload(*extra: str) -> Callable[[str, str, str], list[str]]:
        return lambda f, k, e: [py, "-m", "bigupload.cli", "cp", f, f"s3://{BUCKET}/{k}",
                                "--endpoint-url", e, "--journal", journal, "--progress", "never",
                                *extra]

    def peer(name: str, settings: str) -> Callable[[str, str, str], list[str]]:
        return lambda f, k, e: [str(PEERS_PY), str(BENCH / "peers.py"), name, settings, f, BUCKET, k, e]

    aws_tuned = os.path.join(tmp, "aws-tuned.ini")
    with open(aws_tuned, "w") as f:
        f.write("[default]\ns3 =\n    multipart_chunksize = 16MB\n    max_concurrent_requests = 8\n"
                "    payload_signing_enabled = false\n")
    aws_defaults = os.path.join(tmp, "aws-defaults.ini")
    Path(aws_defaults).write_text("[default]\n")
    rclone_conf = os.path.join(tmp, "rclone.conf")
    Path(rclone_conf).write_text("")

    def aws(f: str, k: str, e: str) -> list[str]:
        return [AWS_CLI, "s3", "cp", f, f"s3://{BUCKET}/{k}", "--endpoint-url", e, "--only-show-errors"]

    def rclone(*extra: str) -> Callable[[str, str, str], list[str]]:
        # -I: copyto silently skips an identical object, which would measure nothing.
        # --ignore-checksum: the null sink's ETags are not MD5s; the check is a HEAD, no CPU.
        # Over https the CA goes by --ca-cert: rclone cannot have AWS_CA_BUNDLE set.
        return lambda f, k, e: ["rclone", "copyto", "-I", "--ignore-checksum", "--config", rclone_conf, f,
                                f":s3,provider=Other,endpoint='{e}',no_check_bucket=true,"
                                f"access_key_id={os.environ['AWS_ACCESS_KEY_ID']},"
                                f"secret_access_key={os.environ['AWS_SECRET_ACCESS_KEY']}:{BUCKET}/{k}",
                                *extra, *(["--ca-cert", CA_BUNDLE[0]] if e.startswith("https") else [])]

    return [
        Tool("bigupload", "defaults: 32 MiB x 8, CRC32C", bigupload()),
        Tool("bigupload tuned", " ".join(BIGUPLOAD_TUNED) + ", CRC32C", bigupload(*BIGUPLOAD_TUNED)),
        Tool("bigupload uvloop", "defaults on uvloop (no sendfile: chunked writes)", bigupload(),
             env={"BIGUPLOAD_EVENT_LOOP": "uvloop"}, servers=("null",)),
        Tool("bigupload aiohttp TLS", "defaults, BIGUPLOAD_TLS_SEND=0 (asyncio's TLS, as before)",
             bigupload(), env={"BIGUPLOAD_TLS_SEND": "0"}, servers=("https",)),
        Tool("bigupload header CRC", "defaults, BIGUPLOAD_TRAILING_CHECKSUM=0 (CRC read first, "
             "sent as a header)", bigupload(), env={"BIGUPLOAD_TRAILING_CHECKSUM": "0"},
             servers=("https",)),
        Tool("boto3", "upload_file defaults (8 MiB x 10, CRC32, signed payload)",
             peer("boto3", "defaults"), unavailable=peers),
        Tool("boto3 tuned", "16 MiB x 8, no checksum, unsigned payload", peer("boto3", "tuned"),
             unavailable=peers),
        Tool("boto3+CRT", "CRTTransferManager defaults (8 MiB, CRC32)", peer("crt", "defaults"),
             unavailable=peers),
        Tool("boto3+CRT tuned", "16 MiB, CRC32C", peer("crt", "tuned"), unavailable=peers),
        Tool("obstore", "defaults (signed payload, no checksum)", peer("obstore", "defaults"),
             unavailable=peers),
        Tool("obstore tuned", "path input, 16 MiB x 8, unsigned payload, no checksum",
             peer("obstore", "tuned"), unavailable=peers),
        Tool("aws cli", "defaults (8 MiB x 10, CRC32, signed payload)", aws,
             env={"AWS_CONFIG_FILE": aws_defaults}, unavailable=_which(AWS_CLI)),
        Tool("aws cli tuned", "16 MiB x 8, payload signing off", aws,
             env={"AWS_CONFIG_FILE": aws_tuned}, unavailable=_which(AWS_CLI)),
        Tool("rclone", "defaults (5 MiB x 4, MD5)", rclone(), env=RCLONE_ENV,
             unavailable=_which("rclone")),
        Tool("rclone tuned", "16 MiB x 8, --s3-disable-checksum",
             rclone("--s3-chunk-size", "16M", "--s3-upload-concurrency", "8", "--s3-disable-checksum"),
             env=RCLONE_ENV, unavailable=_which("rclone")),
    ]


# the runs

@contextlib.contextmanager
def fresh_seaweed() -> Iterator[str]:
    """A new SeaweedFS for every upload, removed with its data afterwards. SeaweedFS keeps
    deleted objects on disk until a vacuum and sizes its volumes by the free disk, so
    reusing one server for dozens of 2 GiB uploads ends in InternalError ("no writable
    volumes"); a fresh one costs about 4 s and always starts empty."""
    with SeaweedServer() as weed:
        make_bucket(weed.endpoint_url)
        yield weed.endpoint_url


def bench_server(server: str, open_server: Callable[[], contextlib.AbstractContextManager[str]],
                 path: str, size: int, selected: list[Tool], rounds: int,
                 tls_log: str | None = None,
                 extra_env: dict[str, str | None] | None = None) -> dict[str, list[Run]]:
    """Every selected tool once per round, in the same order each round."""
    results: dict[str, list[Run]] = {t.name: [] for t in selected}
    for r in range(rounds):
        for tool in selected:
            if tool.unavailable:
                continue
            key = f"{tool.name.replace(' ', '-')}-{r}"
            if tls_log:
                Path(tls_log).write_text("")
            with open_server() as endpoint:
                run = measure(tool.argv(path, key, endpoint), {**(extra_env or {}), **tool.env})
            if tls_log:
                run.tls = ", ".join(sorted(set(Path(tls_log).read_text().split("\n")) - {""}))
            results[tool.name].append(run)
            status = run.error or f"{run.wall:6.2f} s  {size / run.wall / 1e6:7.0f} MB/s  " \
                                  f"{run.cpu / (size / GiB):5.2f} CPU s/GiB  {run.rss_mib:5.0f} MiB"
            print(f"  [{server} round {r + 1}/{rounds}] {tool.name:18s} {status}", flush=True)
    return results


def yardsticks(path: str, rounds: int) -> dict[str, list[Run]]:
    script = str(BENCH / "yardsticks.py")
    proc, port = start_process([sys.executable, script, "sink"])
    try:
        out: dict[str, list[Run]] = {"read from page cache": [], "loopback send (16 MiB pread + sendall)": [],
                                     "loopback sendfile": []}
        for _ in range(rounds):
            out["read from page cache"].append(measure([sys.executable, script, "read", path]))
            out["loopback send (16 MiB pread + sendall)"].append(
                measure([sys.executable, script, "send", path, str(port)]))
            out["loopback sendfile"].append(measure([sys.executable, script, "sendfile", path, str(port)]))
        return out
    finally:
        proc.kill()
        proc.wait()


def summarize(runs: list[Run], reference: list[Run], size: int) -> dict[str, object]:
    ok = [r for r in runs if not r.error]
    if not ok:
        return {"error": runs[0].error if runs else "not run"}
    wall = statistics.median(r.wall for r in ok)
    cpu = statistics.median(r.cpu for r in ok)
    summary: dict[str, object] = {
        "runs": len(ok), "wall_s": wall, "mb_s": size / wall / 1e6,
        "cpu_s_per_gib": cpu / (size / GiB), "peak_rss_mib": max(r.rss_mib for r in ok),
    }
    pairs = [(r, b) for r, b in zip(runs, reference) if not r.error and not b.error]
    if pairs:
        summary["wall_ratio"] = statistics.median(r.wall / b.wall for r, b in pairs)
        summary["cpu_ratio"] = statistics.median(r.cpu / b.cpu for r, b in pairs)
    return summary


PLANNING = """
import time
from bigupload.client import RemotePart
from bigupload.config import UploadConfig
from bigupload.journal import PartRecord
from bigupload.plan import plan
from bigupload.resume import reconcile
size = 10_000 * 8 * 2**20 - 12345
start = time.perf_counter()
p = plan(size, UploadConfig(part_size=8 * 2**20))
parts = p.parts()
journalled = {x.number: PartRecord(x.number, x.length, '"e"', "AAAAAA==") for x in parts[::2]}
listed = [RemotePart(x.number, x.length, '"e"', None) for x in parts[:7000]]
result = reconcile(p, journalled, listed)
print(time.perf_counter() - start, len(parts))
"""


def startup_and_planning() -> dict[str, float]:
    """`bigupload --help` wall time (median of 5) and planning + reconciling 10,000 parts."""
    helps = [measure([sys.executable, "-m", "bigupload.cli", "--help"]).wall for _ in range(5)]
    out = subprocess.run([sys.executable, "-c", PLANNING], capture_output=True, text=True, check=True)
    seconds, parts = out.stdout.split()
    assert int(parts) == 10_000
    return {"help_s": statistics.median(helps), "plan_reconcile_10000_s": float(seconds)}


# the report

def machine() -> dict[str, str]:
    info = {"python": platform.python_version(), "kernel": platform.release(),
            "cores": str(os.cpu_count())}
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    for line in cpuinfo.splitlines():
        if line.startswith("model name") and "cpu" not in info:
            info["cpu"] = line.split(":", 1)[1].strip()
        if line.startswith("flags") and "simd" not in info:
            flags = set(line.split(":", 1)[1].split())
            wanted = ["sse4_2", "pclmulqdq", "avx2", "avx512f", "avx512vl", "vpclmulqdq", "sha_ni"]
            info["simd"] = " ".join(f for f in wanted if f in flags)
    return info


def versions() -> dict[str, str]:
    def run(argv: list[str]) -> str:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
            return (out.stdout or out.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "not installed"

    from importlib.metadata import version

    found = {name: version(name) for name in ("bigupload", "aiobotocore", "botocore", "aiohttp")}
    if PEERS_PY.exists():
        code = ("from importlib.metadata import version as v\n"
                "print(' '.join(f'{n}={v(n)}' for n in ('boto3', 'botocore', 's3transfer', 'awscrt', 'obstore')))")
        found["peers (.venv-peers)"] = run([str(PEERS_PY), "-c", code])
    found["aws cli"] = run([AWS_CLI, "--version"])
    found["rclone"] = run(["rclone", "version"])
    found["seaweedfs"] = run([weed_binary(), "version"])
    found["checksum backend"] = run([sys.executable, "-c",
                                    "from bigupload import _native; print(_native.backend())"])
    return found


def markdown(report: dict) -> str:  # type: ignore[type-arg]
    lines = [f"# Upload benchmark, {report['date']}", "",
             f"{report['size_mib']} MiB of random bytes from page cache, {report['rounds']} rounds, "
             "tools alternating within each round; medians. CPU is the client process's user+sys "
             "(wait4), ratios are peer / bigupload (defaults) taken round by round.", ""]
    lines += ["| machine | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in report["machine"].items()]
    lines += ["", "| version | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in report["versions"].items()]
    for server, rows in report["servers"].items():
        lines += ["", f"## {server}", "",
                  "| tool | settings | wall s | MB/s | CPU s/GiB | peak RSS MiB | wall ratio | CPU ratio |",
                  "|---|---|---|---|---|---|---|---|"]
        for name, row in rows.items():
            s = row["summary"]
            if "error" in s:
                lines.append(f"| {name} | {row['settings']} | {s['error']} | | | | | |")
                continue
            tls = sorted({r["tls"] for r in row["runs"] if r.get("tls")})
            settings = row["settings"] + (f" ({'; '.join(tls)})" if tls else "")
            lines.append(
                f"| {name} | {settings} | {s['wall_s']:.2f} | {s['mb_s']:.0f} | "
                f"{s['cpu_s_per_gib']:.2f} | {s['peak_rss_mib']:.0f} | "
                f"{s.get('wall_ratio', float('nan')):.2f} | {s.get('cpu_ratio', float('nan')):.2f} |")
    if report.get("yardsticks"):
        lines += ["", "## Yardsticks (same file)", "", "| yardstick | wall s | MB/s | CPU s/GiB (sender) |",
                  "|---|---|---|---|"]
        for name, s in report["yardsticks"].items():
            lines.append(f"| {name} | {s['wall_s']:.2f} | {s['mb_s']:.0f} | {s['cpu_s_per_gib']:.2f} |")
    if report.get("startup"):
        st = report["startup"]
        lines += ["", f"`bigupload --help`: {st['help_s']:.2f} s (median of 5); planning and reconciling "
                  f"10,000 parts: {st['plan_reconcile_10000_s'] * 1000:.1f} ms."]
    if report.get("big_file"):
        b = report["big_file"]
        lines += ["", "## Peak RSS against file size (null sinks, bigupload defaults)", "",
                  "| file | wall s | MB/s | CPU s/GiB | peak RSS MiB | bound: concurrency x part + 100 MiB |",
                  "|---|---|---|---|---|---|"]
        for row in b:
            lines.append(f"| {row['file']} | {row['wall_s']:.2f} | {row['mb_s']:.0f} | "
                         f"{row['cpu_s_per_gib']:.2f} | {row['peak_rss_mib']:.0f} | {row['bound_mib']:.0f} |")
    return "\n".join(lines) + "\n"


def chart(report: dict, path: Path) -> None:  # type: ignore[type-arg]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    servers = list(report["servers"])
    fig, axes = plt.subplots(len(servers), 2, figsize=(13, 4.2 * len(servers)), squeeze=False)
    for row, server in enumerate(servers):
        items = [(n, r["summary"]) for n, r in report["servers"][server].items() if "error" not in r["summary"]]
        names = [n for n, _ in items]
        colors = ["tab:green" if n.startswith("bigupload") else "tab:gray" for n in names]
        for col, (metric, label) in enumerate([("mb_s", "MB/s (higher is better)"),
                                               ("cpu_s_per_gib", "client CPU s/GiB (lower is better)")]):
            ax = axes[row][col]
            ax.barh(names, [s[metric] for _, s in items], color=colors)
            ax.invert_yaxis()
            ax.set_title(f"{server}: {label}", fontsize=10)
            ax.tick_params(labelsize=8)
    fig.suptitle(f"{report['size_mib']} MiB upload, {report['machine'].get('cpu', '')}", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


# main

def make_file(path: str, size: int, sparse: bool = False) -> None:
    with open(path, "wb") as f:
        if sparse:
            f.truncate(size)
            return
        chunk = 4 * MiB  # small: this process's high-water mark is every child's RSS floor
        for offset in range(0, size, chunk):
            f.write(os.urandom(min(chunk, size - offset)))


def warm(path: str) -> None:
    """Read the file once so it is in the page cache, in chunks (this process stays small)."""
    with open(path, "rb", buffering=0) as f:
        buffer = bytearray(8 * MiB)
        while f.readinto(buffer):
            pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--servers", default="null,https,seaweed")
    parser.add_argument("--tools", default="", help="comma-separated name prefixes (default: all)")
    parser.add_argument("--big-gib", type=int, default=20,
                        help="also upload a sparse file this big to the null sink (0: skip)")
    parser.add_argument("--out", default=str(BENCH / "results"))
    args = parser.parse_args()
    # a terminated harness must still stop its servers (the context managers below)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    os.environ.update(TEST_CREDENTIALS)
    import bigupload

    subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.dirname(bigupload.__file__)],
                   check=True, stdout=subprocess.DEVNULL,
                   env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"})
    size = args.size_mib * MiB
    servers = args.servers.split(",")
    report: dict = {"date": datetime.date.today().isoformat(), "size_mib": args.size_mib,  # type: ignore[type-arg]
                    "rounds": args.rounds, "machine": machine(), "versions": versions(),
                    "servers": {}, "yardsticks": {}, "big_file": []}
    with tempfile.TemporaryDirectory(prefix="bigupload-bench-") as tmp:
        selected = [t for t in tools(tmp)
                    if not args.tools or any(t.name.startswith(p) for p in args.tools.split(","))]
        for t in selected:
            if t.unavailable:
                print(f"  {t.name}: cannot run: {t.unavailable}", flush=True)
        path = os.path.join(tmp, "data.bin")
        make_file(path, size)
        warm(path)
        reference = next(t.name for t in selected if not t.unavailable)
        for server in servers:
            print(f"{server}:", flush=True)
            if server in ("null", "https"):
                argv = [sys.executable, str(BENCH / "nullsink.py")]
                env: dict[str, str | None] = {}
                tls_log = None
                if server == "https":
                    from bigupload.testing import tls_certificates

                    CA_BUNDLE[0], cert, key = tls_certificates(tmp)
                    tls_log = os.path.join(tmp, "tls.log")
                    argv += ["--tls-cert", cert, "--tls-key", key, "--tls-log", tls_log]
                    env = {"AWS_CA_BUNDLE": CA_BUNDLE[0]}
                proc, port = start_process(argv)
                endpoint = f"{'https' if server == 'https' else 'http'}://127.0.0.1:{port}"
                try:
                    runs = bench_server(f"{server} null sink", lambda: contextlib.nullcontext(endpoint),
                                        path, size, [t for t in selected if server in t.servers],
                                        args.rounds, tls_log, env)
                    if args.big_gib:
                        report["big_file"] += big_files(path, size, endpoint, tmp, args.big_gib, env)
                finally:
                    proc.kill()
                    proc.wait()
                title = ("Null sink (bench/nullsink.py on 127.0.0.1)" if server == "null" else
                         "HTTPS null sink (bench/nullsink.py with TLS on 127.0.0.1)")
            else:
                title = "SeaweedFS (weed mini on 127.0.0.1)"
                free = shutil.disk_usage(tempfile.gettempdir()).free
                if free < 2 * size:  # one object at a time is stored, on a fresh server
                    why = f"cannot run: {free / GiB:.1f} GiB free on disk, {2 * size / GiB:.1f} GiB needed"
                    print(f"  {why}", flush=True)
                    report["servers"][title] = {t.name: {"settings": t.settings, "summary": {"error": why},
                                                         "runs": []} for t in selected}
                    continue
                on_seaweed = [t for t in selected if "seaweed" in t.servers]
                runs = bench_server("seaweedfs", fresh_seaweed, path, size, on_seaweed, args.rounds)
            report["servers"][title] = {
                t.name: {"settings": t.settings,
                         "summary": summarize(runs[t.name], runs[reference], size) if not t.unavailable
                         else {"error": f"cannot run: {t.unavailable}"},
                         "runs": [dataclasses.asdict(r) for r in runs[t.name]]}
                for t in selected if t.name in runs
            }
        print("yardsticks:", flush=True)
        for name, runs_ in yardsticks(path, args.rounds).items():
            report["yardsticks"][name] = summarize(runs_, [], size)
            print(f"  {name:40s} {report['yardsticks'][name]['mb_s']:7.0f} MB/s  "
                  f"{report['yardsticks'][name]['cpu_s_per_gib']:.2f} CPU s/GiB", flush=True)
    report["startup"] = startup_and_planning()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps(report, indent=1))
    (out / "latest.md").write_text(markdown(report))
    chart(report, out / "latest.png")
    print((out / "latest.md").read_text())


def big_files(path: str, size: int, endpoint: str, tmp: str, big_gib: int,  # type: ignore[type-arg]
              env: dict[str, str | None] | None = None) -> list[dict]:
    """Peak RSS of bigupload (defaults) for the benchmark file and a sparse big file."""
    from bigupload.config import DEFAULT_CONCURRENCY
    from bigupload.plan import auto_part_size

    rows = []
    sparse = os.path.join(tmp, "sparse.bin")
    make_file(sparse, big_gib * GiB, sparse=True)
    journal = os.path.join(tmp, "big-journal.sqlite3")
    try:
        for label, file, file_size in [(f"{size // MiB} MiB random", path, size),
                                       (f"{big_gib} GiB sparse", sparse, big_gib * GiB)]:
            run = measure([sys.executable, "-m", "bigupload.cli", "cp", file, f"s3://{BUCKET}/big",
                           "--endpoint-url", endpoint, "--journal", journal, "--progress", "never"], env)
            label += " (https)" if endpoint.startswith("https") else ""
            part = auto_part_size(file_size)
            bound = DEFAULT_CONCURRENCY * part / MiB + 100
            rows.append({"file": label, "wall_s": run.wall, "mb_s": file_size / run.wall / 1e6,
                         "cpu_s_per_gib": run.cpu / (file_size / GiB), "peak_rss_mib": run.rss_mib,
                         "bound_mib": bound, "error": run.error})
            print(f"  big file {label}: {run.error or f'{run.wall:.1f} s, peak RSS {run.rss_mib:.0f} MiB'}",
                  flush=True)
    finally:
        os.unlink(sparse)
    return rows


if __name__ == "__main__":
    main()
