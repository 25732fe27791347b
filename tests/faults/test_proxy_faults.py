"""The engine against a real SeaweedFS through the fault-injecting proxy: every fault kind
on its own, then a steady fraction of faulted requests. Uploads must complete
byte-identical with bounded retries, or stop with a clear error and stay resumable."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from bigupload import UploadConfig, Uploader
from bigupload.errors import BigUploadError, NotFoundError
from bigupload.testing import SeaweedServer
from tests.conftest import MiB, list_uploads, read_object
from tests.faultproxy import APPLICABLE, FaultProxy, on

pytestmark = pytest.mark.integration
# SeaweedFS can take a second or more for the first write to a new bucket (it grows volumes)
READ_TIMEOUT_S = 3.0


@pytest.fixture
def proxy(seaweed: SeaweedServer) -> Iterator[FaultProxy]:
    port = int(seaweed.endpoint_url.rsplit(":", 1)[1])
    with FaultProxy(port, stall_s=READ_TIMEOUT_S + 1) as p:
        yield p


def config(proxy: FaultProxy, **kw: Any) -> UploadConfig:
    base: dict[str, Any] = dict(endpoint_url=proxy.endpoint_url, part_size=5 * MiB, concurrency=4,
                                read_timeout_s=READ_TIMEOUT_S, connect_timeout_s=2.0, backoff_base_s=0.02,
                                backoff_max_s=0.2, max_attempts=6)
    base.update(kw)
    return UploadConfig(**base)


def upload(path: Path, bucket: str, key: str, cfg: UploadConfig, journal: Path) -> Any:
    async def main() -> Any:
        async with Uploader(cfg, journal=journal) as up:
            return await up.upload_file(path, bucket, key)
    return anyio.run(main)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("operation,fault", sorted(
    (op, fault) for op, faults in APPLICABLE.items() for fault in faults))
def test_each_fault_is_survived(proxy: FaultProxy, seaweed: SeaweedServer, seaweed_bucket: str,
                                make_file: Any, tmp_path: Path, operation: str, fault: str) -> None:
    size = 5 * MiB if operation == "PutObject" else 17 * MiB
    path = make_file(size)
    proxy.add(on(operation), fault, times=1)
    result = upload(path, seaweed_bucket, "k", config(proxy), tmp_path / "j.sqlite3")
    assert proxy.injected()[fault] == 1, proxy.log
    assert digest(read_object(seaweed, seaweed_bucket, "k")) == digest(path.read_bytes())
    assert result.size == size
    assert list_uploads(seaweed, seaweed_bucket) == []



def test_steady_fault_rate_is_survived(proxy: FaultProxy, seaweed: SeaweedServer,
                                       seaweed_bucket: str, make_file: Any, tmp_path: Path) -> None:
    """10% of requests faulted, of every kind that applies: eight uploads still complete
    byte-identical, with bounded retries, and leave no upload behind."""
    proxy.inject(rate=0.10)
    retries = 0
    for i in range(8):
        path = make_file(41 * MiB + i, name=f"f{i}.bin", seed=i)

        async def main() -> None:
            nonlocal retries
            async with Uploader(config(proxy), journal=tmp_path / "j.sqlite3") as up:
                await up.upload_file(path, seaweed_bucket, f"k{i}")
                retries += up.scheduler.retries

        anyio.run(main)
        assert digest(read_object(seaweed, seaweed_bucket, f"k{i}")) == digest(path.read_bytes())
    injected = proxy.injected()
    print(f"\nfault proxy: {sum(injected.values())} faults injected over {len(proxy.log)} requests "
          f"and survived ({dict(sorted(injected.items()))}); {retries} retries")
    assert sum(injected.values()) >= 5
    assert list_uploads(seaweed, seaweed_bucket) == []


def test_persistent_throttling_gives_up_and_resumes(proxy: FaultProxy, seaweed: SeaweedServer,
                                                    seaweed_bucket: str, make_file: Any,
                                                    tmp_path: Path) -> None:
    """A server that keeps answering 503 for one part: bounded attempts, a transient error,
    and the journal keeps the upload; once it recovers, only the missing part is sent."""
    path = make_file(26 * MiB)
    journal = tmp_path / "j.sqlite3"
    proxy.add(on("UploadPart", part=3), "slowdown", times=None)
    with pytest.raises(BigUploadError, match=r"SlowDown.*gave up after 3 attempts") as failure:
        upload(path, seaweed_bucket, "k", config(proxy, max_attempts=3), journal)
    assert failure.value.exit_code == 5
    assert len([r for r in proxy.records("UploadPart") if r.part_number == 3]) == 3
    proxy.clear()
    # parts whose answer reached us were journalled; the others were in flight when part 3
    # gave up and cancelled them
    acknowledged = {r.part_number for r in proxy.records("UploadPart") if r.relayed and r.status == 200}
    log_start = len(proxy.log)
    result = upload(path, seaweed_bucket, "k", config(proxy), journal)
    resent = [r.part_number for r in proxy.log[log_start:] if r.operation == "UploadPart"]
    assert 3 in resent and not set(resent) & acknowledged
    assert result.resumed_parts == 6 - len(resent)
    assert digest(read_object(seaweed, seaweed_bucket, "k")) == digest(path.read_bytes())


@pytest.mark.parametrize("fault,error,code", [
    ("no_such_upload", NotFoundError, 7),
    ("access_denied", BigUploadError, 4),
])
def test_fatal_fault_stops_quickly_with_a_clear_message(proxy: FaultProxy, seaweed: SeaweedServer,
                                                        seaweed_bucket: str, make_file: Any,
                                                        tmp_path: Path, fault: str,
                                                        error: type[BaseException], code: int) -> None:
    path = make_file(40 * MiB)
    proxy.add(on("UploadPart", part=2), fault)
    with pytest.raises(error) as failure:
        upload(path, seaweed_bucket, "k", config(proxy, concurrency=1), tmp_path / "j.sqlite3")
    assert failure.value.exit_code == code  # type: ignore[attr-defined]
    assert len(proxy.records("UploadPart")) <= 2  # not retried, nothing more sent
    message = str(failure.value)
    assert "part 2" in message and ("NoSuchUpload" in message or "AccessDenied" in message)
    uploads = list_uploads(seaweed, seaweed_bucket)
    if fault == "no_such_upload":  # closed in the journal, so aborted: nothing left billed
        assert uploads == []
    else:  # resumable once permissions are fixed
        assert len(uploads) == 1
        result = upload(path, seaweed_bucket, "k", config(proxy), tmp_path / "j.sqlite3")
        assert result.resumed_parts == 1
        assert digest(read_object(seaweed, seaweed_bucket, "k")) == digest(path.read_bytes())
