"""Crash torture: the real CLI uploads a 200 MiB file to SeaweedFS through the fault proxy
and is killed with SIGKILL at chosen moments (during CreateMultipartUpload, with parts in
flight, between the last part and CompleteMultipartUpload, after the server completed),
re-run, killed again, and finally let finish. Then: the object equals the file, the
whole-object CRC32C matches, no part was sent twice unless it was in flight at a kill
(not yet journalled: SeaweedFS may list a just-answered part only a second later), no multipart upload is left for the key, and the journal says done.

``make test`` runs three rounds (about ten kills); ``make soak`` runs enough rounds for
at least 50 kills, with 5% of requests faulted as well."""

from __future__ import annotations

import base64
import collections
import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import crc32c
import pytest

from bigupload.testing import SeaweedServer, journalled_parts
from tests.conftest import MiB, list_uploads, random_file
from tests.faultproxy import APPLICABLE, FaultProxy, Record, on

pytestmark = pytest.mark.integration

SIZE = 200 * MiB + 4321
PART = 5 * MiB
PARTS = -(-SIZE // PART)
# Each round is one upload killed at these moments in turn, then run to the end.
ROUNDS = [
    ["create_unanswered", "parts", "parts", "before_complete"],
    ["create_unsent", "parts", "parts", "after_complete_unanswered"],
    ["parts", "parts", "after_complete_answered"],
]
MOMENTS = ["create_unanswered", "create_unsent", "parts", "before_complete",
           "after_complete_unanswered", "after_complete_answered"]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = random_file(tmp_path_factory.mktemp("torture") / "source.bin", SIZE, seed=42)
    yield path
    path.unlink()


class Torture:
    """Runs, kills and checks one upload per round; counts what it did."""

    def __init__(self, seaweed: SeaweedServer, bucket: str, source: Path, tmp: Path, seed: int) -> None:
        self.seaweed = seaweed
        self.bucket = bucket
        self.source = source
        self.journal = tmp / "journal.sqlite3"
        self.rng = random.Random(seed)
        self.kills: collections.Counter[str] = collections.Counter()
        self.finished_before_kill = 0
        self.runs = 0
        self.run_starts: list[int] = []  # index into the proxy log where each run began
        self.journalled: list[set[tuple[str, int]]] = []  # per run: parts journalled when it ended

    def command(self, proxy: FaultProxy, key: str) -> list[str]:
        return [sys.executable, "-m", "bigupload.cli", "cp", str(self.source),
                f"s3://{self.bucket}/{key}", "--endpoint-url", proxy.endpoint_url,
                "--journal", str(self.journal), "--part-size", "5MiB", "--concurrency", "4",
                "--max-attempts", "8", "--json", "--progress", "never"]

    def kill_at(self, proxy: FaultProxy, key: str, moment: str) -> None:
        """Start the CLI and SIGKILL it at ``moment`` (unless it finishes first)."""
        start = len(proxy.log)
        trigger: Callable[[], bool]
        if moment in ("create_unanswered", "create_unsent"):
            rule = proxy.hold(on("CreateMultipartUpload"), after=moment == "create_unanswered")
            trigger = rule.reached.is_set
        elif moment in ("before_complete", "after_complete_unanswered"):
            rule = proxy.hold(on("CompleteMultipartUpload"), after=moment != "before_complete")
            trigger = rule.reached.is_set
        elif moment == "after_complete_answered":  # races the journal write, either way is fine
            def trigger() -> bool:
                return any(r.operation == "CompleteMultipartUpload" and r.relayed
                           for r in proxy.log[start:])
        else:  # with parts in flight, after a random number of them started
            remaining = PARTS - journalled_parts(self.journal)
            target = self.rng.randint(1, max(1, remaining // 3))

            def trigger() -> bool:
                return sum(r.operation == "UploadPart" for r in proxy.log[start:]) >= target
        self.run_starts.append(len(proxy.log))
        process = subprocess.Popen(self.command(proxy, key), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True)
        self.runs += 1
        try:
            deadline = time.monotonic() + 120
            while not trigger():
                if process.poll() is not None:
                    break
                assert time.monotonic() < deadline, f"{moment}: never reached"
                time.sleep(0.002)
            if moment == "parts":
                time.sleep(self.rng.uniform(0, 0.03))  # land inside a part body
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                self.kills[moment] += 1
            else:
                self.finished_before_kill += 1
                assert process.returncode == 0, process.stderr.read() if process.stderr else ""
        finally:
            process.wait()
            if process.stderr:
                process.stderr.close()
            proxy.clear(drop=True)  # held requests of the dead process never reach the server
            self.journalled.append(self.journalled_parts())

    def journalled_parts(self) -> set[tuple[str, int]]:
        db = sqlite3.connect(self.journal)
        try:
            return set(db.execute("SELECT u.upload_id, p.number FROM parts p JOIN uploads u ON p.upload = u.id"))
        finally:
            db.close()

    def finish(self, proxy: FaultProxy, key: str) -> dict[str, Any]:
        self.run_starts.append(len(proxy.log))
        self.journalled.append(set())
        result = subprocess.run(self.command(proxy, key), capture_output=True, text=True, timeout=300)
        self.runs += 1
        assert result.returncode == 0, result.stderr
        return dict(json.loads(result.stdout.strip().splitlines()[-1]))

    def round(self, proxy: FaultProxy, key: str, moments: list[str]) -> None:
        first_run = len(self.run_starts)
        for moment in moments:
            self.kill_at(proxy, key, moment)
        done = self.finish(proxy, key)
        starts = self.run_starts[first_run:] + [len(proxy.log)]
        runs = [proxy.log[a:b] for a, b in zip(starts, starts[1:])]
        self.check(key, done, runs, self.journalled[first_run:])
        if moments[-1].startswith("after_complete"):  # recognised as done: nothing sent again
            assert not [r for r in runs[-1] if r.operation in ("UploadPart", "CreateMultipartUpload")]
            assert done["resumed_parts"] == PARTS and done["sent_bytes"] == 0

    def check(self, key: str, done: dict[str, Any], runs: list[list[Record]],
              journalled: list[set[tuple[str, int]]]) -> None:
        data = self.source.read_bytes()
        client = self.seaweed.boto3_client()
        body = client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        assert len(body) == len(data) and hashlib.sha256(body).digest() == hashlib.sha256(data).digest(), \
            f"{key}: the object differs from the file"
        whole = crc32c.crc32c(data).to_bytes(4, "big")
        assert done["full_object_checksum"] == base64.b64encode(whole).decode()
        head = client.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
        if head.get("ChecksumCRC32C"):
            assert head["ChecksumCRC32C"] == done["checksum"]
        assert [u for u in list_uploads(self.seaweed, self.bucket) if u["Key"] == key] == []
        assert_no_part_sent_twice(runs, journalled)
        db = sqlite3.connect(self.journal)
        try:
            states = [s for (s,) in db.execute("SELECT state FROM uploads WHERE key=?", (key,))]
        finally:
            db.close()
        assert "completed" in states and "active" not in states, states


def assert_no_part_sent_twice(runs: list[list[Record]], journalled: list[set[tuple[str, int]]]) -> None:
    """A part is sent again only if it was in flight at a kill: not journalled by then.
    Within one run, a part answered 200 is never sent again."""
    done: set[tuple[str, int]] = set()  # journalled by the end of an earlier run
    for i, (log, after) in enumerate(zip(runs, journalled)):
        answered: set[tuple[str, int]] = set()
        for r in log:
            if r.operation != "UploadPart":
                continue
            part = (str(r.upload_id), int(r.part_number or 0))
            assert part not in done and part not in answered, (
                f"run {i}: part {r.part_number} of {r.upload_id} sent again after it was "
                + ("journalled" if part in done else "answered in this run"))
            if r.relayed and r.status == 200 and r.fault is None:
                answered.add(part)
        done |= after


def report(torture: Torture, proxy: FaultProxy, rounds: int) -> str:
    faults = proxy.injected()
    return (f"crash torture: {sum(torture.kills.values())} kills survived "
            f"({dict(sorted(torture.kills.items()))}), {torture.finished_before_kill} runs "
            f"finished before their kill, {torture.runs} runs, {rounds} objects, 0 corrupted; "
            f"{sum(faults.values())} faults injected and survived {dict(sorted(faults.items()))}")


def proxy_for(seaweed: SeaweedServer) -> FaultProxy:
    return FaultProxy(int(seaweed.endpoint_url.rsplit(":", 1)[1]))


def test_crash_torture(seaweed: SeaweedServer, seaweed_bucket: str, source: Path, tmp_path: Path) -> None:
    torture = Torture(seaweed, seaweed_bucket, source, tmp_path, seed=1)
    with proxy_for(seaweed) as proxy:
        for i, moments in enumerate(ROUNDS):
            torture.round(proxy, f"tortured-{i}.bin", moments)
        print("\n" + report(torture, proxy, len(ROUNDS)))
    assert sum(torture.kills.values()) >= 9
    assert set(torture.kills) == set(MOMENTS)


@pytest.mark.soak
def test_crash_soak(seaweed: SeaweedServer, seaweed_bucket: str, source: Path, tmp_path: Path) -> None:
    """At least ``BIGUPLOAD_SOAK_KILLS`` (default 50) kills at random moments, with 5% of
    requests faulted (every kind that needs no client timeout)."""
    wanted = int(os.environ.get("BIGUPLOAD_SOAK_KILLS", "50"))
    torture = Torture(seaweed, seaweed_bucket, source, tmp_path, seed=int(time.time()))
    kinds = {op: [f for f in faults if f != "stall"] for op, faults in APPLICABLE.items()}
    rounds = 0
    with proxy_for(seaweed) as proxy:
        proxy.inject(0.05, kinds)
        while sum(torture.kills.values()) < wanted:
            first = torture.rng.choice(["create_unanswered", "create_unsent", "parts"])
            last = torture.rng.choice(["parts", "before_complete", "after_complete_unanswered",
                                       "after_complete_answered"])
            moments = [first] + ["parts"] * torture.rng.randint(1, 5) + [last]
            torture.round(proxy, f"soak-{rounds}.bin", moments)
            client = seaweed.boto3_client()
            client.delete_object(Bucket=seaweed_bucket, Key=f"soak-{rounds}.bin")
            rounds += 1
        print("\n" + report(torture, proxy, rounds))
    assert sum(torture.kills.values()) >= wanted
