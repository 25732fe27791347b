"""Client CPU per small file in a batch job (issue 19): ``bigupload cp -r`` of a tree of
small files to the null sink or a fresh SeaweedFS, each run its own process measured
with wait4 (see run.py): wall seconds, files/s, client CPU ms per file, peak RSS.
Optionally rclone in the same rounds, and a py-spy profile of one run.

    python bench/smallfiles_profile.py [--tree small|tiny] [--files N] [--rounds 3]
        [--server null|seaweed] [--tools bigupload,rclone] [--profile out.txt] [-- extra args]

Trees (made once under --cache): ``small`` is N files of 1-8 KiB in 50 directories,
``tiny`` N files of 100 bytes in 100 directories.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as harness  # noqa: E402

KiB = 1 << 10


def make_tree(root: str, kind: str, files: int) -> int:
    """The tree, made once (a marker file says it is complete); returns its bytes."""
    marker = os.path.join(root, ".complete")
    if os.path.exists(marker):
        return int(Path(marker).read_text())
    shutil.rmtree(root, ignore_errors=True)
    rng = random.Random(19)
    block = rng.randbytes(8 * KiB)
    dirs = 50 if kind == "small" else 100
    total = 0
    for i in range(files):
        directory = os.path.join(root, f"d{i % dirs:03}")
        os.makedirs(directory, exist_ok=True)
        size = rng.randint(1 * KiB, 8 * KiB) if kind == "small" else 100
        with open(os.path.join(directory, f"f{i:07}.bin"), "wb") as f:
            f.write(i.to_bytes(8, "little") + block[8:size])
        total += size
    Path(marker).write_text(str(total))
    return total


@contextlib.contextmanager
def null_sink() -> Iterator[str]:
    proc, port = harness.start_process([sys.executable, str(harness.BENCH / "nullsink.py")])
    try:
        endpoint = f"http://127.0.0.1:{port}"
        harness.make_bucket(endpoint)
        yield endpoint
    finally:
        proc.terminate()
        proc.wait()


def argv(tool: str, root: str, key: str, endpoint: str, journal: str,
         extra: list[str]) -> list[str]:
    if tool == "bigupload":
        return [sys.executable, "-m", "bigupload.cli", "cp", "-r", root,
                f"s3://{harness.BUCKET}/{key}/", "--endpoint-url", endpoint, "--journal", journal,
                "--progress", "never", *extra]
    if tool == "rclone":
        return ["rclone", "copy", "--ignore-checksum", "--config", "/dev/null", root,
                f":s3,provider=Other,endpoint='{endpoint}',no_check_bucket=true,"
                f"access_key_id={os.environ['AWS_ACCESS_KEY_ID']},"
                f"secret_access_key={os.environ['AWS_SECRET_ACCESS_KEY']}:{harness.BUCKET}/{key}",
                "--transfers", "8", "--checkers", "8", "--exclude", ".complete"]
    raise SystemExit(f"unknown tool {tool}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", default="small", choices=["small", "tiny"])
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--server", default="null", choices=["null", "seaweed"])
    parser.add_argument("--tools", default="bigupload")
    parser.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "bigupload-small"))
    parser.add_argument("--profile", default="", help="py-spy raw output of one bigupload run")
    parser.add_argument("extra", nargs="*", help="more bigupload arguments (after --)")
    args = parser.parse_args()
    for name, value in harness.TEST_CREDENTIALS.items():
        os.environ.setdefault(name, value)
    root = os.path.join(args.cache, f"{args.tree}-{args.files}")
    size = make_tree(root, args.tree, args.files)
    files = args.files
    print(f"{root}: {files} files, {size / KiB:.0f} KiB", flush=True)
    servers = {"null": null_sink, "seaweed": harness.fresh_seaweed}
    runs: dict[str, list[harness.Run]] = {}
    with tempfile.TemporaryDirectory(prefix="bigupload-small-") as tmp:
        for r in range(args.rounds):
            for tool in args.tools.split(","):
                journal = os.path.join(tmp, f"journal-{tool}-{r}.sqlite3")
                with servers[args.server]() as endpoint:
                    command = argv(tool, root, f"{tool}-{r}", endpoint, journal, args.extra)
                    if args.profile and tool == "bigupload" and r == 0:
                        subprocess.run([str(Path(sys.executable).parent / "py-spy"), "record",
                                        "--format", "raw", "-r", "200", "-o", args.profile,
                                        "--", *command], check=False,
                                       stdout=subprocess.DEVNULL)
                        print(f"profile: {args.profile}")
                        continue
                    env = harness.RCLONE_ENV if tool == "rclone" else {}
                    run = harness.measure(command, env, timeout=1800)
                runs.setdefault(tool, []).append(run)
                print(f"  [{r + 1}/{args.rounds}] {tool:10s} " + (
                    run.error or f"{run.wall:7.2f} s {files / run.wall:7.0f} files/s "
                    f"{run.cpu:6.2f} CPU s {run.cpu / files * 1000:5.3f} CPU ms/file "
                    f"{run.rss_mib:5.0f} MiB"), flush=True)
    for tool, done in runs.items():
        ok = [r for r in done if not r.error]
        if ok:
            print(f"{tool}: median {statistics.median(files / r.wall for r in ok):.0f} files/s, "
                  f"{statistics.median(r.cpu for r in ok) / files * 1000:.3f} CPU ms/file, "
                  f"{statistics.median(r.rss_mib for r in ok):.0f} MiB")


if __name__ == "__main__":
    main()
