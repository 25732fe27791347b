"""The small-file fast path (``client.LeanPut``) against real servers, behind a recording
proxy: each bucket's URL base is learnt from that bucket's own request, however botocore's
concurrent PutObjects interleave, and every key is sent exactly as signed and as botocore
itself would send it. boto3 is the oracle for what was stored."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import pytest

from bigupload import UploadConfig, Uploader
from bigupload.client import AioS3Store, ObjectOptions
from bigupload.config import ChecksumAlgorithm
from bigupload.errors import StoreError
from bigupload.testing import MotoServer, SeaweedServer
from tests.conftest import fresh_bucket
from tests.faultproxy import FaultProxy, Request

pytestmark = pytest.mark.integration

LEAN_AGENT = "bigupload/0.1"  # LeanPut's own User-Agent; botocore's is longer


def _port(server: SeaweedServer | MotoServer) -> int:
    return int(server.endpoint_url.rsplit(":", 1)[1])


def recording(proxy: FaultProxy) -> list[tuple[str, str, str]]:
    """Every request's (operation, raw target, User-Agent), as the proxy received it."""
    seen: list[tuple[str, str, str]] = []

    def record(r: Request) -> bool:
        seen.append((r.operation, r.target, r.headers.get("user-agent", "")))
        return False

    proxy.add(record, "hold_before", times=None)  # never matches: it only records
    return seen


@pytest.fixture
def other_bucket(seaweed: SeaweedServer) -> Iterator[str]:
    yield from fresh_bucket(seaweed)


def stored(server: SeaweedServer | MotoServer, bucket: str) -> dict[str, bytes]:
    client = server.boto3_client()
    return {o["Key"]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
            for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])}


def target_is(bucket: str, key: str) -> Callable[[Request], bool]:
    return lambda r: r.operation == "PutObject" and r.target.split("?")[0] == f"/{bucket}/{key}"


@pytest.mark.parametrize("case", ["nested key", "same key in two buckets"])
def test_a_batch_learns_each_bucket_from_its_own_request(
        seaweed: SeaweedServer, seaweed_bucket: str, other_bucket: str, tmp_path: Path,
        case: str) -> None:
    """A botocore PutObject is in flight (its answer held by the proxy) while a batch's
    first PutObject to a bucket, whose key is a suffix of the other's (``index.html`` /
    ``docs/index.html``) or the same key in another bucket, goes through botocore and
    teaches the lean path that bucket. The next batch's files to that bucket go lean and
    must land at their own keys, in their own bucket."""
    if case == "nested key":
        first, second = (seaweed_bucket, "docs/index.html"), (seaweed_bucket, "index.html")
    else:
        first, second = (other_bucket, "f1.bin"), (seaweed_bucket, "f1.bin")
    later = [(second[0], f"page-{n}.html") for n in range(4)]
    items = []
    for n, (bucket, key) in enumerate([first, second, *later]):
        path = tmp_path / f"src-{n}"
        path.write_bytes(f"{bucket}/{key} #{n}".encode())
        items.append((str(path), bucket, key))

    with FaultProxy(_port(seaweed)) as proxy:
        seen = recording(proxy)
        held = proxy.hold(target_is(*first), after=True)  # the server has it; its answer waits

        async def go() -> None:
            async with Uploader(UploadConfig(endpoint_url=proxy.endpoint_url, concurrency=2),
                                journal=tmp_path / "j.sqlite3") as up:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(up.upload_many, items[:1])
                    assert await anyio.to_thread.run_sync(held.reached.wait, 60)
                    assert not (await up.upload_many(items[1:2])).failures
                    held.release()
                assert not (await up.upload_many(items[2:])).failures

        try:
            anyio.run(go)
        finally:
            proxy.clear()
    agents = {target: agent for op, target, agent in seen if op == "PutObject"}
    assert all(agent != LEAN_AGENT for target, agent in agents.items()
               if target in (f"/{first[0]}/{first[1]}", f"/{second[0]}/{second[1]}"))
    assert sum(agent == LEAN_AGENT for agent in agents.values()) == len(later)  # all went lean
    expected: dict[str, dict[str, bytes]] = {seaweed_bucket: {}, other_bucket: {}}
    for (source, bucket, key) in items:
        expected[bucket][key] = Path(source).read_bytes()
    for bucket, objects in expected.items():
        assert stored(seaweed, bucket) == objects  # every object at its key, nothing else


# Keys whose URL differs between naive and exact encoding: dot segments, characters that
# yarl would unquote or quote differently, and what S3 itself treats specially.
ODD_KEYS = [
    "a/../b.bin", "./x", "dir/./y", "photo (1).jpg", "sp ace", "plus+sign", "per%25cent",
    "100%", "ünïcødé/ключ", "tilde~", "eq=amp&", "hash#frag", "quest?ion", "semi;colon",
    "comma,star*", "dir//double", "trailing.", "a/..", "brackets[]{}", "at@dollar$",
    "quote'\"", "back\\slash", "caret^pipe|", "emoji-🙂",
]


async def _put_all(endpoint: str, bucket: str, warm_up: bool) -> tuple[bool, dict[str, str]]:
    """PutObject every ODD_KEY (body: the key) through AioS3Store; with ``warm_up`` one
    botocore PutObject first teaches the lean path the bucket, and the rest go lean.
    Returns whether the lean path was in use, and each key's outcome ("ok" or the code
    of the error the server answered)."""
    options = ObjectOptions(checksum=ChecksumAlgorithm.CRC32C)
    outcomes: dict[str, str] = {}
    async with AioS3Store.open(UploadConfig(endpoint_url=endpoint)) as store:
        if warm_up:
            await store.put_object(bucket, "warm-up", b"warm", None, options)
        lean = store._lean is not None and store._lean.base(bucket) is not None
        for key in ODD_KEYS:
            try:
                await store.put_object(bucket, key, key.encode(), None, options)
                outcomes[key] = "ok"
            except StoreError as exc:
                outcomes[key] = exc.code
        return lean, outcomes


@pytest.mark.parametrize("server_name", ["seaweed", "moto_server"])
def test_odd_keys_through_the_small_file_path_are_sent_as_botocore_sends_them(
        request: pytest.FixtureRequest, server_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """SeaweedFS checks the signature of every request (and refuses dot segments); moto
    stores dot segments literally. The lean request's path must be botocore's path for
    the same key, the server's answer the same, and the objects stored the same ones
    botocore's own PutObjects store."""
    server: SeaweedServer | MotoServer = request.getfixturevalue(server_name)
    lean_bucket, boto_bucket = (f"t-{uuid.uuid4().hex[:16]}" for _ in range(2))
    client = server.boto3_client()
    for bucket in (lean_bucket, boto_bucket):
        client.create_bucket(Bucket=bucket)
    try:
        with FaultProxy(_port(server)) as proxy:
            seen = recording(proxy)
            lean, lean_outcomes = anyio.run(_put_all, proxy.endpoint_url, lean_bucket, True)
            monkeypatch.setenv("BIGUPLOAD_LEAN_PUT", "0")
            botocore_only, boto_outcomes = anyio.run(_put_all, proxy.endpoint_url, boto_bucket, False)
        assert lean and not botocore_only
        assert lean_outcomes == boto_outcomes
        puts = [(target, agent) for op, target, agent in seen if op == "PutObject"]
        lean_paths = [t.removeprefix(f"/{lean_bucket}") for t, agent in puts
                      if t.startswith(f"/{lean_bucket}/") and agent == LEAN_AGENT]
        boto_paths = [t.split("?")[0].removeprefix(f"/{boto_bucket}") for t, agent in puts
                      if t.startswith(f"/{boto_bucket}/")]
        assert len(boto_paths) == len(ODD_KEYS) and lean_paths == boto_paths
        lean_objects = stored(server, lean_bucket)
        assert lean_objects.pop("warm-up") == b"warm"
        assert lean_objects == stored(server, boto_bucket)
        accepted = {key: key.encode() for key, outcome in boto_outcomes.items() if outcome == "ok"}
        if server_name == "moto_server":  # every key stored literally
            assert lean_objects == accepted and accepted.keys() == set(ODD_KEYS)
        else:
            # SeaweedFS refuses dot segments (InvalidRequest) and stores ``\`` as ``/`` and
            # ``//`` as ``/`` for botocore's requests too; every other key is exact
            assert {k for k, v in boto_outcomes.items() if v != "ok"} \
                == {"a/../b.bin", "./x", "dir/./y", "a/.."}, boto_outcomes
            rewritten = {"back\\slash", "dir//double"}
            assert {k: v for k, v in lean_objects.items() if v.decode() not in rewritten} \
                == {k: v for k, v in accepted.items() if k not in rewritten}
    finally:
        for bucket in (lean_bucket, boto_bucket):
            for obj in client.list_objects_v2(Bucket=bucket).get("Contents", []):
                client.delete_object(Bucket=bucket, Key=obj["Key"])
            client.delete_bucket(Bucket=bucket)
