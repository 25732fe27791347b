"""The batch benchmark: many small files, and a mix of small and large, uploaded as a
directory by bigupload (``cp -r``), the AWS CLI (``s3 cp --recursive``) and rclone
(``copy``), alternating tools round by round, every upload its own process measured with
wait4 (see run.py): wall seconds, files per second, MB/s, client CPU seconds and peak RSS.
Ratios are peer / bigupload within a round, then the median.

Servers: SeaweedFS (a fresh one per upload) and the null sink (the client's own ceiling).

    python bench/batch.py [--files 20000] [--rounds 3] [--servers seaweed,null]
                          [--workloads small,mixed]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import random
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as harness  # noqa: E402  (bench/run.py: measure, servers, tools' settings)

BENCH = harness.BENCH
BUCKET = harness.BUCKET
KiB, MiB = 1 << 10, 1 << 20


def make_tree(root: str, files: int, large: list[int], seed: int = 1) -> tuple[int, int]:
    """``files`` files of 4-64 KiB in 100 directories of random bytes, plus ``large``
    files; returns (files, bytes)."""
    rng = random.Random(seed)
    block = rng.randbytes(64 * KiB)
    total = 0
    for i in range(files):
        directory = os.path.join(root, f"d{i % 100:03}")
        os.makedirs(directory, exist_ok=True)
        size = rng.randint(4 * KiB, 64 * KiB)
        with open(os.path.join(directory, f"f{i:06}.bin"), "wb") as f:
            f.write(i.to_bytes(8, "little") + block[8:size])
        total += size
    for n, size in enumerate(large):
        harness.make_file(os.path.join(root, f"large{n}.bin"), size)
        total += size
    return files + len(large), total


def tools(tmp: str) -> list[harness.Tool]:
    py = sys.executable
    journal = os.path.join(tmp, "journal.sqlite3")
    aws_defaults = os.path.join(tmp, "aws-defaults.ini")
    Path(aws_defaults).write_text("[default]\n")
    rclone_conf = os.path.join(tmp, "rclone.conf")
    Path(rclone_conf).write_text("")

    def bigupload(*extra: str) -> Callable[[str, str, str], list[str]]:
        return lambda d, k, e: [py, "-m", "bigupload.cli", "cp", "-r", d, f"s3://{BUCKET}/{k}/",
                                "--endpoint-url", e, "--journal", journal, "--progress", "never",
                                *extra]

    def aws(d: str, k: str, e: str) -> list[str]:
        return [harness.AWS_CLI, "s3", "cp", "--recursive", d, f"s3://{BUCKET}/{k}/",
                "--endpoint-url", e, "--only-show-errors"]

    def rclone(*extra: str) -> Callable[[str, str, str], list[str]]:
        # --ignore-checksum: the null sink's ETags are not MD5s (the check is a HEAD, no CPU)
        return lambda d, k, e: ["rclone", "copy", "--ignore-checksum", "--config", rclone_conf, d,
                                f":s3,provider=Other,endpoint='{e}',no_check_bucket=true,"
                                f"access_key_id={os.environ['AWS_ACCESS_KEY_ID']},"
                                f"secret_access_key={os.environ['AWS_SECRET_ACCESS_KEY']}:{BUCKET}/{k}",
                                *extra]

    which = harness._which  # noqa: SLF001
    return [
        harness.Tool("bigupload", "defaults (8 requests in flight, CRC32C)", bigupload()),
        harness.Tool("bigupload x16", "--concurrency 16", bigupload("--concurrency", "16")),
        harness.Tool("aws cli", "s3 cp --recursive defaults (10 requests)", aws,
                     env={"AWS_CONFIG_FILE": aws_defaults}, unavailable=which(harness.AWS_CLI)),
        harness.Tool("rclone", "copy defaults (4 transfers, 8 checkers, MD5)", rclone(),
                     env=harness.RCLONE_ENV, unavailable=which("rclone")),
        harness.Tool("rclone x16", "--transfers 16", rclone("--transfers", "16"),
                     env=harness.RCLONE_ENV, unavailable=which("rclone")),
    ]


@contextlib.contextmanager
def null_sink() -> Iterator[str]:
    proc, port = harness.start_process([sys.executable, str(BENCH / "nullsink.py")])
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--servers", default="seaweed,null")
    parser.add_argument("--workloads", default="small,mixed")
    parser.add_argument("--tools", default="")
    args = parser.parse_args()
    for name, value in harness.TEST_CREDENTIALS.items():
        os.environ.setdefault(name, value)
    workloads = {
        "small": (args.files, []),
        "mixed": (args.files // 10, [512 * MiB, 256 * MiB, 64 * MiB, 40 * MiB]),
    }
    servers = {"seaweed": harness.fresh_seaweed, "null": null_sink}
    report: dict[str, object] = {"date": datetime.date.today().isoformat(), "rounds": args.rounds,
                                 "machine": harness.machine(), "results": {}}
    with tempfile.TemporaryDirectory(prefix="bigupload-batch-") as tmp:
        selected = [t for t in tools(tmp) if not args.tools or t.name in args.tools.split(",")]
        for t in selected:
            if t.unavailable:
                print(f"{t.name}: cannot run: {t.unavailable}")
        for workload in args.workloads.split(","):
            root = os.path.join(tmp, workload)
            count, size = make_tree(root, *workloads[workload])
            print(f"{workload}: {count} files, {size / MiB:.0f} MiB", flush=True)
            for server in args.servers.split(","):
                runs: dict[str, list[harness.Run]] = {t.name: [] for t in selected}
                for r in range(args.rounds):
                    for tool in selected:
                        if tool.unavailable:
                            continue
                        with servers[server]() as endpoint:
                            if server == "null":
                                harness.make_bucket(endpoint)
                            run = harness.measure(tool.argv(root, f"{tool.name.replace(' ', '-')}-{r}",
                                                            endpoint), tool.env, timeout=600)
                        runs[tool.name].append(run)
                        print(f"  [{workload} {server} {r + 1}/{args.rounds}] {tool.name:14s} "
                              + (run.error or f"{run.wall:7.2f} s {count / run.wall:7.0f} files/s "
                                 f"{size / run.wall / 1e6:6.1f} MB/s {run.cpu:6.2f} CPU s "
                                 f"{run.rss_mib:5.0f} MiB"), flush=True)
                report["results"][f"{workload}/{server}"] = summarize(runs, count, size)  # type: ignore[index]
    out = BENCH / "results"
    out.mkdir(exist_ok=True)
    (out / "batch.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "batch.md").write_text(markdown(report, selected))
    print((out / "batch.md").read_text())


def summarize(runs: dict[str, list[harness.Run]], count: int, size: int) -> dict[str, object]:
    reference = runs.get("bigupload", [])
    rows: dict[str, object] = {"files": count, "bytes": size}
    for name, tool_runs in runs.items():
        good = [r for r in tool_runs if not r.error]
        if not good:
            rows[name] = {"error": tool_runs[0].error if tool_runs else "not run"}
            continue
        ratios = [r.wall / ref.wall for r, ref in zip(tool_runs, reference) if not r.error and not ref.error]
        wall = statistics.median(r.wall for r in good)
        rows[name] = {
            "wall_s": round(wall, 2), "files_per_s": round(count / wall), "mb_per_s": round(size / wall / 1e6, 1),
            "cpu_s": round(statistics.median(r.cpu for r in good), 2),
            "rss_mib": round(max(r.rss_mib for r in good)),
            "wall_ratio": round(statistics.median(ratios), 2) if ratios else None,
            "runs": len(good), "errors": [r.error for r in tool_runs if r.error],
        }
    return rows


def markdown(report: dict, selected: list[harness.Tool]) -> str:  # type: ignore[type-arg]
    settings = {t.name: t.settings for t in selected}
    lines = [f"Batch benchmark, {report['date']}; {report['rounds']} round(s), tools alternating, "
             "medians; wall ratio = tool / bigupload (defaults), round by round.", ""]
    for name, rows in report["results"].items():
        workload, server = name.split("/")
        lines += [f"### {workload} files, {'SeaweedFS' if server == 'seaweed' else 'null sink'}: "
                  f"{rows['files']} files, {rows['bytes'] / MiB:.0f} MiB", "",
                  "| tool | settings | wall s | files/s | MB/s | CPU s | peak RSS MiB | wall ratio |",
                  "|---|---|---|---|---|---|---|---|"]
        for tool, row in rows.items():
            if tool in ("files", "bytes"):
                continue
            if "error" in row:
                lines.append(f"| {tool} | {settings.get(tool, '')} | {row['error']} | | | | | |")
                continue
            lines.append(f"| {tool} | {settings.get(tool, '')} | {row['wall_s']} | {row['files_per_s']} | "
                         f"{row['mb_per_s']} | {row['cpu_s']} | {row['rss_mib']} | {row['wall_ratio']} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
