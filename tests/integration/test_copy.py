"""Server-side copies through the real CLI, against SeaweedFS (which honours
``x-amz-copy-source-if-match`` and answers UploadPartCopy with part checksums) and moto
(which does neither), each behind the fault proxy, which counts the request bodies the
client sends and can hold a request while a test changes the source."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bigupload.testing import MotoServer, SeaweedServer, journalled_parts
from tests.cli.test_cli import cli
from tests.conftest import MiB, list_uploads, read_object
from tests.faultproxy import FaultProxy, on, wait_for

pytestmark = pytest.mark.integration
GiB = 1024 * MiB
BODY_OPERATIONS = ("UploadPart", "PutObject")  # what would carry the object's bytes


def proxy_for(server: SeaweedServer | MotoServer) -> FaultProxy:
    return FaultProxy(int(server.endpoint_url.rsplit(":", 1)[1]))


@pytest.fixture
def weed_proxy(seaweed: SeaweedServer) -> Iterator[FaultProxy]:
    with proxy_for(seaweed) as p:
        yield p


@pytest.fixture
def moto_proxy(moto_server: MotoServer) -> Iterator[FaultProxy]:
    with proxy_for(moto_server) as p:
        yield p


def cp(source: str, destination: str, proxy: FaultProxy, journal: Path, *extra: str) -> list[str]:
    return ["cp", source, destination, "--endpoint-url", proxy.endpoint_url, "--journal",
            str(journal), "--progress", "never", "--json", *extra]


def event(stdout: str, name: str) -> dict[str, Any]:
    events = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    (found,) = [e for e in events if e["event"] == name]
    return found


def streamed_digests(server: SeaweedServer | MotoServer, bucket: str,
                     key: str) -> tuple[str, str]:
    """The MD5 and the base64 CRC32 of an object, read in 8 MiB chunks (independent
    oracles: boto3, hashlib and zlib, not bigupload)."""
    digest, crc = hashlib.md5(), 0
    body = server.boto3_client().get_object(Bucket=bucket, Key=key)["Body"]
    while chunk := body.read(8 * MiB):
        digest.update(chunk)
        crc = zlib.crc32(chunk, crc)
    return digest.hexdigest(), base64.b64encode(crc.to_bytes(4, "big")).decode()


def big_source(server: SeaweedServer, bucket: str, key: str) -> None:
    """A 1 GiB object made on the server from an 80 MiB upload: 16 parts, part i the seed's
    bytes from i MiB on (64 MiB each), so no two parts are equal and no two 48 MiB parts
    of a copy are either; with a whole-object CRC32, as the server computes it."""
    client = server.boto3_client()
    client.put_object(Bucket=bucket, Key="seed", Body=random.Random(7).randbytes(80 * MiB))
    upload = client.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm="CRC32",
                                            ChecksumType="FULL_OBJECT")["UploadId"]
    parts = []
    for i in range(16):
        answer = client.upload_part_copy(
            Bucket=bucket, Key=key, UploadId=upload, PartNumber=i + 1,
            CopySource={"Bucket": bucket, "Key": "seed"},
            CopySourceRange=f"bytes={i * MiB}-{i * MiB + 64 * MiB - 1}")
        parts.append({"PartNumber": i + 1, "ETag": answer["CopyPartResult"]["ETag"]})
    client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload,
                                     MultipartUpload={"Parts": parts})
    client.delete_object(Bucket=bucket, Key="seed")
    assert client.head_object(Bucket=bucket, Key=key)["ContentLength"] == GiB


def test_a_small_object_is_one_copy_object(
        weed_proxy: FaultProxy, seaweed: SeaweedServer, seaweed_bucket: str,
        tmp_path: Path) -> None:
    client = seaweed.boto3_client()
    data = os.urandom(3 * MiB + 7)
    client.put_object(Bucket=seaweed_bucket, Key="src/a.csv", Body=data, ContentType="text/csv",
                      Metadata={"owner": "me"})
    done = cli(*cp(f"s3://{seaweed_bucket}/src/a.csv", f"s3://{seaweed_bucket}/dst/",
                   weed_proxy, tmp_path / "j.db"))
    assert done.returncode == 0, done.stderr
    copied = event(done.stdout, "copied")
    assert copied["key"] == "dst/a.csv" and copied["copied_from"] == f"s3://{seaweed_bucket}/src/a.csv"
    assert [r.operation for r in weed_proxy.log if r.operation.endswith("Object")].count(
        "CopyObject") == 1
    assert not [r for r in weed_proxy.log
                if r.operation in ("UploadPartCopy", "CreateMultipartUpload", *BODY_OPERATIONS)]
    assert read_object(seaweed, seaweed_bucket, "dst/a.csv") == data
    head = client.head_object(Bucket=seaweed_bucket, Key="dst/a.csv")
    assert (head["ContentType"], head["Metadata"]) == ("text/csv", {"owner": "me"})


@pytest.mark.slow
def test_a_1_gib_copy_sends_no_object_bytes_survives_sigkill_and_finishes(
        weed_proxy: FaultProxy, seaweed: SeaweedServer, seaweed_bucket: str,
        tmp_path: Path) -> None:
    big_source(seaweed, seaweed_bucket, "big.bin")
    journal = tmp_path / "j.db"
    args = cp(f"s3://{seaweed_bucket}/big.bin", f"s3://{seaweed_bucket}/copy.bin", weed_proxy,
              journal, "--part-size", "48MiB", "--multipart-threshold", "64MiB",
              "--concurrency", "4")
    process = subprocess.Popen([sys.executable, "-m", "bigupload.cli", *args],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: journalled_parts(journal) >= 4, timeout=120)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    at_kill = journalled_parts(journal)
    assert at_kill < 22, "the copy finished before it could be killed"
    assert len(list_uploads(seaweed, seaweed_bucket)) == 1  # left to resume, not aborted

    done = cli(*args)
    assert done.returncode == 0, done.stderr
    copied = event(done.stdout, "copied")
    assert copied["parts"] == 22 and copied["resumed_parts"] >= at_kill
    assert list_uploads(seaweed, seaweed_bucket) == []
    source = streamed_digests(seaweed, seaweed_bucket, "big.bin")
    assert streamed_digests(seaweed, seaweed_bucket, "copy.bin") == source
    # the copy followed the source's CRC32, and its whole-object CRC32 is the bytes'
    assert copied["verified"] and copied["checksum_type"] == "FULL_OBJECT"
    assert (copied["checksum_algorithm"], copied["checksum"]) == ("crc32", source[1])
    # no byte of the object went through the client: both runs' request bodies together
    # (the CompleteMultipartUpload XML, mostly) stay under 1 MiB
    sent = sum(r.body for r in weed_proxy.log)
    assert sent < MiB, sent
    assert not [r for r in weed_proxy.log if r.operation in BODY_OPERATIONS]
    assert len({r.part_number for r in weed_proxy.records("UploadPartCopy")}) == 22


def changed_mid_copy(proxy: FaultProxy, server: SeaweedServer | MotoServer, bucket: str,
                     tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Copy a 40 MiB object in 5 MiB parts; while part 4 is held, overwrite the source."""
    client = server.boto3_client()
    client.put_object(Bucket=bucket, Key="src", Body=os.urandom(40 * MiB))
    held = proxy.hold(on("UploadPartCopy", part=4))
    process = subprocess.Popen(
        [sys.executable, "-m", "bigupload.cli",
         *cp(f"s3://{bucket}/src", f"s3://{bucket}/dst", proxy, tmp_path / "j.db",
             "--part-size", "5MiB", "--multipart-threshold", "5MiB", "--concurrency", "2",
             "--max-attempts", "2")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert held.reached.wait(60)
        client.put_object(Bucket=bucket, Key="src", Body=os.urandom(40 * MiB))
        held.release()
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def test_a_source_changed_mid_copy_is_refused_and_no_upload_is_left(
        weed_proxy: FaultProxy, seaweed: SeaweedServer, seaweed_bucket: str,
        tmp_path: Path) -> None:
    """SeaweedFS refuses the held UploadPartCopy (412 to its If-Match): the copy is
    aborted, exit 8, and neither an object nor an upload is left."""
    done = changed_mid_copy(weed_proxy, seaweed, seaweed_bucket, tmp_path)
    assert done.returncode == 8, done.stderr
    assert "changed during the copy" in done.stderr and "aborted" in done.stderr
    assert 412 in {r.status for r in weed_proxy.records("UploadPartCopy")}
    assert list_uploads(seaweed, seaweed_bucket) == []
    keys = [o["Key"] for o in seaweed.boto3_client().list_objects_v2(
        Bucket=seaweed_bucket).get("Contents", [])]
    assert keys == ["src"]


def test_moto_ignores_the_condition_and_the_last_head_catches_it(
        moto_proxy: FaultProxy, moto_server: MotoServer, moto_bucket: str,
        tmp_path: Path) -> None:
    done = changed_mid_copy(moto_proxy, moto_server, moto_bucket, tmp_path)
    assert done.returncode == 8, done.stderr
    assert 412 not in {r.status for r in moto_proxy.records("UploadPartCopy")}
    assert list_uploads(moto_server, moto_bucket) == []
    keys = [o["Key"] for o in moto_server.boto3_client().list_objects_v2(
        Bucket=moto_bucket).get("Contents", [])]
    assert keys == ["src"]


def test_moto_multipart_copy_carries_attributes_and_is_compared_with_the_source(
        moto_proxy: FaultProxy, moto_server: MotoServer, moto_bucket: str,
        tmp_path: Path) -> None:
    """moto answers UploadPartCopy without checksums and computes the copy's whole-object
    CRC itself: the copy follows the source's algorithm, so that CRC is compared with the
    source's; tags come along through CreateMultipartUpload."""
    client = moto_server.boto3_client()
    data = os.urandom(12 * MiB)
    client.put_object(Bucket=moto_bucket, Key="src", Body=data, ContentType="image/png",
                      Metadata={"a": "1"}, Tagging="team=x&year=2026", ChecksumAlgorithm="CRC32")
    done = cli(*cp(f"s3://{moto_bucket}/src", f"s3://{moto_bucket}/dst", moto_proxy,
                   tmp_path / "j.db", "--part-size", "5MiB", "--multipart-threshold", "5MiB"))
    assert done.returncode == 0, done.stderr
    copied = event(done.stdout, "copied")
    assert copied["parts"] == 3 and copied["verified"] and copied["checksum_algorithm"] == "crc32"
    assert read_object(moto_server, moto_bucket, "dst") == data
    head = client.head_object(Bucket=moto_bucket, Key="dst")
    assert (head["ContentType"], head["Metadata"]) == ("image/png", {"a": "1"})
    tags = client.get_object_tagging(Bucket=moto_bucket, Key="dst")["TagSet"]
    assert sorted((t["Key"], t["Value"]) for t in tags) == [("team", "x"), ("year", "2026")]
    assert sum(r.body for r in moto_proxy.log) < 64 * 1024


def test_a_prefix_copy_job_resumes_after_sigkill(
        weed_proxy: FaultProxy, seaweed: SeaweedServer, seaweed_bucket: str,
        tmp_path: Path) -> None:
    """``cp s3://b/p/ s3://b/q/ -r``: killed while a large object's parts are copied, the
    same command finishes the job; what the first run copied is not copied again."""
    client = seaweed.boto3_client()
    objects = {f"p/{i:02d}.bin": os.urandom(64 * 1024 + i) for i in range(12)}
    objects["p/big/large.bin"] = os.urandom(30 * MiB)
    objects["p/skip.tmp"] = b"tmp"
    for key, data in objects.items():
        client.put_object(Bucket=seaweed_bucket, Key=key, Body=data)
    journal = tmp_path / "j.db"
    args = cp(f"s3://{seaweed_bucket}/p", f"s3://{seaweed_bucket}/q/", weed_proxy, journal,
              "--recursive", "--exclude", "*.tmp", "--part-size", "5MiB",
              "--multipart-threshold", "5MiB", "--concurrency", "2")
    held = weed_proxy.hold(on("UploadPartCopy", part=4))
    process = subprocess.Popen([sys.executable, "-m", "bigupload.cli", *args],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert held.reached.wait(60)
        wait_for(lambda: journalled_parts(journal) >= 3)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
        held.release(drop=True)
    first_run = len(weed_proxy.log)

    done = cli(*args)
    assert done.returncode == 0, done.stderr
    summary = event(done.stdout, "summary")
    assert (summary["files"], summary["failed"]) == (13, 0)
    for key, data in objects.items():
        copied = key.replace("p/", "q/", 1)
        if key.endswith(".tmp"):
            continue
        assert read_object(seaweed, seaweed_bucket, copied) == data, copied
    assert "q/skip.tmp" not in {o["Key"] for o in client.list_objects_v2(
        Bucket=seaweed_bucket, Prefix="q/").get("Contents", [])}
    # the large object's parts journalled by the killed run were not copied again
    again = {r.part_number for r in weed_proxy.log[first_run:]
             if r.operation == "UploadPartCopy"}
    assert {1, 2, 3} - again == {1, 2, 3}
    assert list_uploads(seaweed, seaweed_bucket) == []
    assert not [r for r in weed_proxy.log if r.operation in BODY_OPERATIONS]
