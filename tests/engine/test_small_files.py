"""A batch's small files (``upload.small.SmallPut``, read inline): the guards of the
single-request kind hold on this path too (a file changed while its request is out, a
BadDigest re-reading the file, every checksum algorithm, Content-MD5), and
``source.read_small`` never blocks on a FIFO nor returns a mix of two versions."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import anyio
import pytest

from bigupload import FileState, UploadConfig, Uploader
from bigupload.config import ChecksumAlgorithm
from bigupload.errors import IntegrityError, SourceError
from bigupload.journal import JobFile, JournalView
from bigupload.source import read_small
from tests.fakestore import FakeStore

BUCKET = "bucket"
FAST = dict(backoff_base_s=0.001, backoff_max_s=0.01)


def upload_many(store: FakeStore, journal: Path, entries: list[Any], **settings: Any) -> Any:
    async def main() -> Any:
        async with Uploader(UploadConfig(**{**FAST, **settings}), store=store,
                            journal=journal) as up:
            return await up.upload_many(entries)

    return anyio.run(main)


def files(root: Path, count: int, size: int = 3000) -> dict[str, bytes]:
    root.mkdir(parents=True, exist_ok=True)
    contents = {}
    for i in range(count):
        data = os.urandom(size)
        (root / f"f{i}").write_bytes(data)
        contents[f"f{i}"] = data
    return contents


def entries(root: Path, names: list[str]) -> list[tuple[str, str, str]]:
    return [(str(root / n), BUCKET, f"p/{n}") for n in names]


def settled(journal: Path, job_id: int) -> dict[str, JobFile]:
    """What the journal says became of each file of the job, by key."""
    with JournalView(journal) as view:
        return {f.key: f for f in view.job_files(job_id, tuple(FileState))}


def test_a_small_file_changed_while_its_request_is_out_is_that_files_failure(
        tmp_path: Path) -> None:
    root = tmp_path / "src"
    contents = files(root, 3)
    store = FakeStore()

    def change(op: str, ctx: dict[str, Any]) -> None:
        if op == "put_object" and ctx["key"] == "p/f1":
            with open(root / "f1", "ab") as f:
                f.write(b"more")

    store.faults.append(change)
    result = upload_many(store, tmp_path / "j.db", entries(root, list(contents)))
    failed = {r.key: r.error or "" for r in result.failures}
    assert list(failed) == ["p/f1"] and "changed while it was being uploaded" in failed["p/f1"]
    for name in ("f0", "f2"):
        assert store.objects[(BUCKET, f"p/{name}")][0] == contents[name]


def test_a_bad_digest_reads_the_file_again(tmp_path: Path) -> None:
    """Unchanged: sent again and uploaded. Changed since it was read: not sent again."""
    root = tmp_path / "src"
    contents = files(root, 2)
    store = FakeStore()
    refused: set[str] = set()

    def bad_digest(op: str, ctx: dict[str, Any]) -> None:
        if op == "put_object" and ctx["key"] not in refused:
            refused.add(ctx["key"])
            if ctx["key"] == "p/f1":
                with open(root / "f1", "r+b") as f:
                    f.write(b"changed!")
                os.utime(root / "f1", ns=(1, 1))
            raise IntegrityError("BadDigest", code="BadDigest", retryable=True)

    store.faults.append(bad_digest)
    result = upload_many(store, tmp_path / "j.db", entries(root, list(contents)))
    states = {k: (f.state, f.error or "")
              for k, f in settled(tmp_path / "j.db", result.job_id).items()}
    assert states["p/f0"][0] is FileState.DONE
    assert store.objects[(BUCKET, "p/f0")][0] == contents["f0"]
    assert states["p/f1"][0] is FileState.FAILED and "changed while being read" in states["p/f1"][1]
    assert (BUCKET, "p/f1") not in store.objects
    assert store.calls["put_object"] == 3  # f0 twice, f1 once


@pytest.mark.parametrize("algorithm", list(ChecksumAlgorithm))
def test_every_checksum_and_content_md5_on_the_small_path(tmp_path: Path,
                                                          algorithm: ChecksumAlgorithm) -> None:
    """The fake store refuses a checksum or Content-MD5 that is not the body's."""
    root = tmp_path / "src"
    contents = files(root, 4)
    store = FakeStore()
    md5s: list[str | None] = []
    store.faults.append(lambda op, ctx: md5s.append(ctx.get("content_md5"))
                        if op == "put_object" else None)
    result = upload_many(store, tmp_path / "j.db", entries(root, list(contents)),
                         checksum=algorithm, content_md5=True)
    assert result.ok and result.uploaded == 4
    for name, data in contents.items():
        assert store.objects[(BUCKET, f"p/{name}")][0] == data
    assert len(md5s) == 4 and all(md5s)


def test_no_overwrite_on_the_small_path(tmp_path: Path) -> None:
    root = tmp_path / "src"
    contents = files(root, 2)
    store = FakeStore()
    store.objects[(BUCKET, "p/f0")] = (b"theirs", '"x"', None)
    store.sizes[(BUCKET, "p/f0")] = 6
    result = upload_many(store, tmp_path / "j.db", entries(root, list(contents)),
                         no_overwrite=True)
    states = {k: f.state for k, f in settled(tmp_path / "j.db", result.job_id).items()}
    assert states == {"p/f0": FileState.SKIPPED, "p/f1": FileState.DONE}
    assert store.objects[(BUCKET, "p/f0")][0] == b"theirs"


def test_read_small(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 100)
    read = read_small(str(path), 100)
    assert read is not None and read.data == b"x" * 100
    st = os.stat(path)
    assert (read.fingerprint.size, read.fingerprint.mtime_ns, read.fingerprint.inode) == (
        100, st.st_mtime_ns, st.st_ino)
    assert read_small(str(path), 99) is None  # not small: the caller sends it otherwise
    with pytest.raises(SourceError, match="is a directory"):
        read_small(str(tmp_path), 100)
    with pytest.raises(SourceError, match="no such file"):
        read_small(str(tmp_path / "gone"), 100)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(SourceError, match="not a regular file"):
        read_small(str(fifo), 100)  # opened without blocking: no writer needed


def test_the_bytes_sent_are_the_bytes_checksummed(tmp_path: Path) -> None:
    """What the store got has the MD5 of the file as read, and its ETag says so."""
    root = tmp_path / "src"
    contents = files(root, 1, size=200_000)
    store = FakeStore()
    result = upload_many(store, tmp_path / "j.db", entries(root, ["f0"]))
    assert result.ok
    etag = settled(tmp_path / "j.db", result.job_id)["p/f0"].etag
    assert etag == f'"{hashlib.md5(contents["f0"]).hexdigest()}"'
