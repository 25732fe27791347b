"""The cluster benchmark: one large file uploaded by the single-process engine and by a
Dask LocalCluster of 1, 2 and 3 worker processes (``--dask local:N``), alternating round
by round, every upload its own process measured with wait4 (run.py). The CPU figure is
the whole process tree's (the cluster's processes are children that the coordinator
reaps), so "client CPU s/GiB" includes Dask's own overhead.

On a 2-core machine the speed-up is bounded by the cores, which SeaweedFS also needs;
the null sink shows the client side alone.

    python bench/cluster.py [--size-mib 2048] [--rounds 3] [--servers seaweed,null]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as harness  # noqa: E402  (bench/run.py: measure, servers, tools' settings)

BENCH = harness.BENCH
MiB, GiB = 1 << 20, 1 << 30
SETUPS = {"single process": [], "dask local:1": ["--dask", "local:1"],
          "dask local:2": ["--dask", "local:2"], "dask local:3": ["--dask", "local:3"]}


@contextlib.contextmanager
def null_sink() -> Iterator[str]:
    proc, port = harness.start_process([sys.executable, str(BENCH / "nullsink.py")])
    try:
        endpoint = f"http://127.0.0.1:{port}"
        harness.make_bucket(endpoint)
        yield endpoint
    finally:
        proc.kill()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--servers", default="seaweed,null")
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    os.environ.update(harness.TEST_CREDENTIALS)  # what the local servers accept
    servers = {"seaweed": harness.fresh_seaweed, "null": null_sink}
    size = args.size_mib * MiB
    report: dict[str, object] = {"date": datetime.date.today().isoformat(), "rounds": args.rounds,
                                 "size": size, "machine": harness.machine(), "results": {}}
    with tempfile.TemporaryDirectory(prefix="bigupload-cluster-") as tmp:
        path = os.path.join(tmp, "big.bin")
        harness.make_file(path, size)
        harness.warm(path)
        for server in args.servers.split(","):
            runs: dict[str, list[harness.Run]] = {name: [] for name in SETUPS}
            for r in range(args.rounds):
                for name, extra in SETUPS.items():
                    journal = os.path.join(tmp, f"j-{server}-{r}-{name.replace(' ', '-')}.db")
                    argv = lambda e, k: [  # noqa: E731
                        sys.executable, "-m", "bigupload.cli", "cp", path, f"s3://{harness.BUCKET}/{k}",
                        "--endpoint-url", e, "--journal", journal, "--progress", "never",
                        "--concurrency", str(args.concurrency), *extra]
                    with servers[server]() as endpoint:
                        run = harness.measure(argv(endpoint, f"{name.replace(' ', '-')}-{r}"))
                    runs[name].append(run)
                    status = run.error or (f"{run.wall:6.2f} s  {size / run.wall / 1e6:6.0f} MB/s  "
                                           f"{run.cpu / (size / GiB):5.2f} CPU s/GiB  "
                                           f"{run.rss_mib:5.0f} MiB")
                    print(f"  [{server} round {r + 1}/{args.rounds}] {name:15s} {status}", flush=True)
            reference = runs["single process"]
            report["results"][server] = {  # type: ignore[index]
                name: harness.summarize(rs, reference, size) for name, rs in runs.items()}
    out = BENCH / "results"
    (out / "cluster.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "cluster.md").write_text(markdown(report))
    print(markdown(report))


def markdown(report: dict) -> str:  # type: ignore[type-arg]
    size = report["size"]
    lines = [f"# Cluster benchmark ({report['date']})", "",
             f"One file of {size / GiB:.1f} GiB; {report['rounds']} round(s), medians; "
             f"machine: {report['machine']}.", "",
             "Wall ratio = setup / single process, paired within a round (below 1 is faster). "
             "CPU is the whole process tree's, Dask's processes included.", ""]
    for server, rows in report["results"].items():
        lines += [f"## {'SeaweedFS' if server == 'seaweed' else 'null sink'}", "",
                  "| setup | wall s | MB/s | client CPU s/GiB | peak RSS MiB (largest process) | wall ratio |",
                  "|---|---|---|---|---|---|"]
        for name, s in rows.items():
            if "error" in s:
                lines.append(f"| {name} | {s['error']} | | | | |")
                continue
            lines.append(f"| {name} | {s['wall_s']:.2f} | {s['mb_s']:.0f} | {s['cpu_s_per_gib']:.2f} "
                         f"| {s['peak_rss_mib']:.0f} | {s.get('wall_ratio', 1.0):.2f} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
