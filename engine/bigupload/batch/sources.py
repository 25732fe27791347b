"""What a batch job uploads: the items (``BatchItem``), the files a directory walk or a
manifest finds (``Entry``), and the checks on their keys.

Invariants: nothing here sends or journals anything; a walk never follows a symbolic link
unless asked (and then never into a loop); keys are built from relative paths with ``/``
on every platform and are never used to build local paths; a bad manifest line is a
ConfigError naming it (nothing is sent), while a file that cannot be uploaded (missing,
unreadable, a broken link, a name that is not UTF-8) becomes an ``Entry`` with an error
and joins the job as that file's failure."""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import logging
import os
import stat
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ..config import metadata_problem
from ..errors import ConfigError
from ..values import check_key as check_key  # one key validator, for the CLI too

log = logging.getLogger("bigupload")

OBJECT_SETTINGS = ("content_type", "metadata", "storage_class")


@dataclasses.dataclass(frozen=True)
class BatchItem:
    """One file of a batch: where it comes from, where it goes, and optional per-object
    settings that override the job's."""

    source: str
    bucket: str
    key: str
    content_type: str | None = None
    metadata: Mapping[str, str] | None = None
    storage_class: str | None = None

    def settings(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in OBJECT_SETTINGS
                if getattr(self, name) is not None}


@dataclasses.dataclass(frozen=True)
class Entry:
    """A file found by a walk or a manifest; ``error`` when it cannot be uploaded at all
    (a broken link, a name that is not UTF-8): it joins the job as a failure."""

    item: BatchItem
    size: int
    error: str | None = None


def destination_prefix(key: str) -> str:
    """``s3://b/photos`` and ``s3://b/photos/`` both put files under ``photos/``."""
    return key if not key or key.endswith("/") else key + "/"


def matches(relative: str, patterns: Sequence[str]) -> bool:
    """A glob matches the relative path (``*`` crosses ``/``), or, for a pattern without
    ``/``, the file name: ``*.tmp`` matches at any depth."""
    name = relative.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(relative, p) or ("/" not in p and fnmatch.fnmatchcase(name, p))
               for p in patterns)


@dataclasses.dataclass
class WalkReport:
    """What a walk left out, so the CLI can say so."""

    excluded: int = 0
    symlinks: int = 0  # not followed
    special: int = 0  # FIFOs, sockets, devices
    loops: int = 0  # directory links that lead back to an ancestor


def walk_directory(root: str, bucket: str, prefix: str, *, include: Sequence[str] = (),
                   exclude: Sequence[str] = (), follow_symlinks: bool = False,
                   report: WalkReport | None = None) -> Iterator[Entry]:
    """The regular files under ``root``, in name order, with their keys: ``prefix`` + the
    relative path with ``/`` separators. Symbolic links are skipped unless
    ``follow_symlinks`` (then directory loops are detected and skipped). A file is kept
    when it matches an ``include`` (or there are none) and no ``exclude``. Unreadable
    directories and broken links become entries with an error."""
    report = report if report is not None else WalkReport()
    top = os.path.abspath(root)
    try:
        st = os.stat(top)
    except OSError as exc:
        raise ConfigError(f"{root}: {exc.strerror}") from exc
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"{root}: not a directory")

    def walk(directory: str, relative: str,
             ancestors: frozenset[tuple[int, int]]) -> Iterator[Entry]:
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            key = prefix + relative
            yield Entry(BatchItem(directory, bucket, key), 0,
                        f"{directory}: cannot list the directory: {exc.strerror}")
            return
        for entry in entries:
            rel = relative + entry.name
            path = entry.path
            try:
                is_link = entry.is_symlink()
                if is_link and not follow_symlinks:
                    report.symlinks += 1
                    continue
                try:
                    est = entry.stat(follow_symlinks=True)
                except FileNotFoundError:
                    if is_link:
                        if not include or matches(rel, include):
                            yield Entry(BatchItem(path, bucket, prefix + rel), 0,
                                        f"{path}: broken symbolic link")
                        continue
                    continue  # vanished while walking
            except OSError as exc:
                yield Entry(BatchItem(path, bucket, prefix + rel), 0, f"{path}: {exc.strerror}")
                continue
            if stat.S_ISDIR(est.st_mode):
                ident = (est.st_dev, est.st_ino)
                if ident in ancestors:
                    report.loops += 1
                    log.warning("%s: a link back to a directory above it; not followed", path)
                    continue
                yield from walk(path, rel + "/", ancestors | {ident})
                continue
            if not stat.S_ISREG(est.st_mode):
                report.special += 1
                continue
            if (include and not matches(rel, include)) or matches(rel, exclude):
                report.excluded += 1
                continue
            key = prefix + rel
            problem = check_key(key)
            yield Entry(BatchItem(path, bucket, key), est.st_size,
                        f"{path}: {problem}" if problem else None)

    yield from walk(top, "", frozenset({(st.st_dev, st.st_ino)}))


def entry_for(item: BatchItem) -> Entry:
    """The item with its size, or with why it cannot be uploaded (it then fails as a file
    of the job, not the whole job)."""
    try:
        st = os.stat(item.source)
    except OSError as exc:
        return Entry(item, 0, f"{item.source}: {exc.strerror}")
    if not stat.S_ISREG(st.st_mode):
        return Entry(item, 0, f"{item.source}: not a regular file")
    return Entry(item, st.st_size)


def read_manifest(path: str, bucket: str | None, prefix: str) -> list[Entry]:
    """Parse a manifest: one file per line, either ``SOURCE<TAB>KEY`` or a JSON object
    ``{"source": ..., "key": ..., "content_type"?, "metadata"?, "storage_class"?}``. A key
    is an ``s3://bucket/key`` URL, or a key under the destination (``bucket``/``prefix``).
    Relative sources are relative to the manifest's directory. Blank lines and lines
    starting with ``#`` are ignored. Any bad line is a ConfigError naming it (nothing is
    sent); a missing source is not: it joins the job as a failure."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: the manifest is not UTF-8 text ({exc.reason} at byte "
                          f"{exc.start})") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the manifest: {exc.strerror}") from exc
    base = os.path.dirname(os.path.abspath(path))
    entries: list[Entry] = []
    seen: dict[tuple[str, str], int] = {}
    problems: list[str] = []
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            item = _manifest_item(line, bucket, prefix, base)
        except ValueError as exc:
            problems.append(f"{path} line {number}: {exc}")
            continue
        where = (item.bucket, item.key)
        if where in seen:
            problems.append(f"{path} line {number}: s3://{item.bucket}/{item.key} is already the "
                            f"destination of line {seen[where]}")
            continue
        seen[where] = number
        entries.append(entry_for(item))
    if problems:
        more = f" (and {len(problems) - 1} more bad line(s))" if len(problems) > 1 else ""
        raise ConfigError(problems[0] + more)
    if not entries:
        raise ConfigError(f"{path}: the manifest lists no files")
    return entries


def _manifest_item(line: str, bucket: str | None, prefix: str, base: str) -> BatchItem:
    settings: dict[str, Any] = {}
    if line.lstrip().startswith("{"):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"invalid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(record, dict):
            raise ValueError("expected a JSON object")
        unknown = set(record) - {"source", "key", *OBJECT_SETTINGS}
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(sorted(unknown))}")
        source, key = record.get("source"), record.get("key")
        if not isinstance(source, str) or not source:
            raise ValueError('missing "source"')
        if not isinstance(key, str) or not key:
            raise ValueError('missing "key"')
        for name in ("content_type", "storage_class"):
            if name in record:
                if not isinstance(record[name], str):
                    raise ValueError(f'"{name}" must be a string')
                settings[name] = record[name]
        if "metadata" in record:
            meta = record["metadata"]
            if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                     for k, v in meta.items()):
                raise ValueError('"metadata" must be an object of strings')
            if problem := metadata_problem(meta):
                raise ValueError(problem)
            settings["metadata"] = meta
    else:
        fields = line.split("\t")
        if len(fields) != 2 or not fields[0] or not fields[1]:
            raise ValueError("expected SOURCE<TAB>KEY or a JSON object, got "
                             f"{len(fields)} field(s)")
        source, key = fields
    if key.startswith("s3://"):
        item_bucket, _, item_key = key[5:].partition("/")
        if not item_bucket or not item_key:
            raise ValueError(f"incomplete S3 URL {key!r}")
    else:
        if bucket is None:
            raise ValueError(f"key {key!r} is not an s3:// URL and no destination was given")
        item_bucket, item_key = bucket, prefix + key.lstrip("/")
    if problem := check_key(item_key):
        raise ValueError(problem)
    source = os.path.join(base, os.path.expanduser(source))
    return BatchItem(os.path.normpath(source), item_bucket, item_key, **settings)
