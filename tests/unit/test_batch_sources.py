"""Finding a batch's files: the directory walk (keys, filters, links, odd names) and the
manifest parser (formats, settings, bad lines named by number)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bigupload.batch import WalkReport, destination_prefix, matches, read_manifest, walk_directory
from bigupload.errors import ConfigError


def files(root: Path, names: list[str]) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(name.encode())


def walk(root: Path, **kwargs: object) -> dict[str, str]:
    """key -> source (or error) of a walk into s3://b/pre/."""
    return {e.item.key: e.error or os.path.relpath(e.item.source, root)
            for e in walk_directory(str(root), "b", "pre/", **kwargs)}  # type: ignore[arg-type]


def test_keys_are_relative_paths_with_slashes(tmp_path: Path) -> None:
    files(tmp_path, ["a.txt", "sub/b c.txt", "sub/deeper/ünïcødé.bin", "empty/.keep"])
    (tmp_path / "zero").write_bytes(b"")
    (tmp_path / "emptydir").mkdir()
    assert walk(tmp_path) == {
        "pre/a.txt": "a.txt", "pre/empty/.keep": "empty/.keep", "pre/sub/b c.txt": "sub/b c.txt",
        "pre/sub/deeper/ünïcødé.bin": "sub/deeper/ünïcødé.bin", "pre/zero": "zero"}
    sizes = {e.item.key: e.size for e in walk_directory(str(tmp_path), "b", "")}
    assert sizes["zero"] == 0 and sizes["a.txt"] == 5


def test_destination_prefix() -> None:
    assert destination_prefix("") == ""
    assert destination_prefix("photos") == "photos/"
    assert destination_prefix("photos/") == "photos/"


def test_include_and_exclude(tmp_path: Path) -> None:
    files(tmp_path, ["a.jpg", "b.txt", "x/c.jpg", "x/cache/d.jpg", "e.tmp", "x/f.tmp"])
    report = WalkReport()
    assert set(walk(tmp_path, include=["*.jpg"], report=report)) == {"pre/a.jpg", "pre/x/c.jpg", "pre/x/cache/d.jpg"}
    assert report.excluded == 3
    assert set(walk(tmp_path, exclude=["*.tmp", "x/cache/*"])) == {"pre/a.jpg", "pre/b.txt", "pre/x/c.jpg"}
    assert set(walk(tmp_path, include=["x/*"], exclude=["*.tmp"])) == {"pre/x/c.jpg", "pre/x/cache/d.jpg"}
    assert matches("a/b/c.tmp", ["*.tmp"]) and not matches("a/b/c.tmpx", ["*.tmp"])


def test_symlinks_skipped_unless_followed_and_loops_stopped(tmp_path: Path) -> None:
    files(tmp_path, ["real/f.txt"])
    (tmp_path / "link.txt").symlink_to(tmp_path / "real" / "f.txt")
    (tmp_path / "linkdir").symlink_to(tmp_path / "real")
    (tmp_path / "real" / "loop").symlink_to(tmp_path)
    (tmp_path / "broken").symlink_to(tmp_path / "nowhere")
    report = WalkReport()
    assert set(walk(tmp_path, report=report)) == {"pre/real/f.txt"}
    assert report.symlinks == 4
    report = WalkReport()
    followed = walk(tmp_path, follow_symlinks=True, report=report)
    assert set(followed) == {"pre/real/f.txt", "pre/link.txt", "pre/linkdir/f.txt", "pre/broken"}
    assert "broken symbolic link" in followed["pre/broken"]
    assert report.loops == 2  # real/loop, and linkdir/loop


def test_special_files_and_bad_names(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    bad = os.fsencode(tmp_path) + b"/bad\xff.txt"
    with open(bad, "wb") as f:
        f.write(b"x")
    report = WalkReport()
    entries = list(walk_directory(str(tmp_path), "b", "", report=report))
    assert report.special == 1
    (entry,) = entries
    assert entry.error is not None and "not valid UTF-8" in entry.error


def test_unreadable_directory_is_an_entry_with_an_error(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root lists any directory")
    files(tmp_path, ["locked/f.txt", "ok.txt"])
    (tmp_path / "locked").chmod(0)
    try:
        result = walk(tmp_path)
    finally:
        (tmp_path / "locked").chmod(0o700)
    assert result["pre/ok.txt"] == "ok.txt"
    assert "cannot list the directory" in result["pre/locked"]


def test_manifest_formats(tmp_path: Path) -> None:
    files(tmp_path, ["data/a.bin", "data/b.bin", "c.bin"])
    manifest = tmp_path / "list.txt"
    manifest.write_text(
        "# comment\n"
        "data/a.bin\tx/a.bin\n"
        "\n"
        + json.dumps({"source": "data/b.bin", "key": "s3://other/b", "content_type": "x/y",
                      "metadata": {"k": "v"}, "storage_class": "STANDARD_IA"}) + "\n"
        + f"{tmp_path / 'c.bin'}\t/c.bin\n"
        "missing.bin\tm\n")
    entries = read_manifest(str(manifest), "dest", "pre/")
    got = {(e.item.bucket, e.item.key): e for e in entries}
    assert set(got) == {("dest", "pre/x/a.bin"), ("other", "b"), ("dest", "pre/c.bin"), ("dest", "pre/m")}
    assert got[("dest", "pre/x/a.bin")].item.source == str(tmp_path / "data" / "a.bin")
    b = got[("other", "b")].item
    assert (b.content_type, dict(b.metadata or {}), b.storage_class) == ("x/y", {"k": "v"}, "STANDARD_IA")
    assert got[("dest", "pre/m")].error is not None  # a missing source fails that file, not the manifest


@pytest.mark.parametrize("line, message", [
    ("only-one-field", "line 2: expected SOURCE<TAB>KEY"),
    ("a\tb\tc", "line 2: expected SOURCE<TAB>KEY or a JSON object, got 3 field(s)"),
    ('{"source": "a"', "line 2: invalid JSON"),
    ('{"source": "a"}', 'line 2: missing "key"'),
    ('{"source": "a", "key": "k", "colour": "red"}', "line 2: unknown field(s) colour"),
    ('{"source": "a", "key": "k", "metadata": {"n": 1}}', 'line 2: "metadata" must be an object of strings'),
    ("a\ts3://", "line 2: incomplete S3 URL"),
    ("a\t" + "k" * 1100, "line 2: key is 1104 bytes"),
    ("c.bin\tk1", "line 2: s3://dest/pre/k1 is already the destination of line 1"),
])
def test_manifest_bad_lines_are_named(tmp_path: Path, line: str, message: str) -> None:
    files(tmp_path, ["c.bin", "a"])
    manifest = tmp_path / "m.tsv"
    manifest.write_text(f"c.bin\tk1\n{line}\n")
    with pytest.raises(ConfigError) as info:
        read_manifest(str(manifest), "dest", "pre/")
    assert message in str(info.value) and str(manifest) in str(info.value)


def test_manifest_needs_a_destination_for_relative_keys(tmp_path: Path) -> None:
    manifest = tmp_path / "m.tsv"
    manifest.write_text("a\tkey\n")
    with pytest.raises(ConfigError, match="line 1: key 'key' is not an s3:// URL and no destination"):
        read_manifest(str(manifest), None, "")
    manifest.write_bytes(b"\xff\xfe\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        read_manifest(str(manifest), "b", "")
    manifest.write_text("# nothing\n")
    with pytest.raises(ConfigError, match="lists no files"):
        read_manifest(str(manifest), "b", "")
