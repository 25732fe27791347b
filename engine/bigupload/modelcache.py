"""A disk cache of botocore's data files, so that start-up does not parse them again.

Creating an S3 client makes botocore read and parse three large JSON files (the S3
service model, its endpoint rule set and ``endpoints.json``, gzipped), which is most of
the client's creation time and a visible part of a small upload's CPU (bench/NOTES.md).
This loader keeps each parsed file as a pickle under ``$XDG_CACHE_HOME/bigupload/botocore``
(``~/.cache`` by default), keyed by the source file's path, size and mtime, the botocore
version and the Python version, so an upgraded or edited model is never served stale.

Only a directory that belongs to the user and that nobody else can write is read from
(unpickling what another user could write would run their code); anything unusual (no
home, a read-only disk, a corrupt or truncated entry) falls back to botocore's own
parsing, silently. ``BIGUPLOAD_MODEL_CACHE=0`` turns the cache off."""

from __future__ import annotations

import hashlib
import os
import pickle
import sys
import tempfile
from pathlib import Path
from typing import Any


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "bigupload" / "botocore"


def _private(directory: Path) -> bool:
    """The directory is ours and writable by nobody else (so its pickles are ours too)."""
    try:
        st = directory.stat()
    except OSError:
        return False
    return st.st_uid == os.getuid() and not st.st_mode & 0o022


def _key(full_path: str) -> str | None:
    import botocore

    try:
        st = os.stat(full_path)
    except OSError:
        return None
    text = "\0".join([os.path.abspath(full_path), str(st.st_size), str(st.st_mtime_ns),
                      botocore.__version__, sys.version])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def file_loader() -> Any:
    """A botocore ``JSONFileLoader`` that reads through the cache."""
    from botocore.loaders import JSONFileLoader

    class CachingFileLoader(JSONFileLoader):  # type: ignore[misc]
        def _load_file(self, full_path: str, open_method: Any) -> Any:
            key = _key(full_path)
            if key is None:  # no such file: botocore tries the next extension
                return super()._load_file(full_path, open_method)
            directory = cache_dir()
            entry = directory / f"{key}.pickle"
            if _private(directory):
                try:
                    with open(entry, "rb") as f:
                        return pickle.load(f)
                except FileNotFoundError:
                    pass
                except Exception:  # a corrupt entry: parse again and replace it
                    pass
            data = super()._load_file(full_path, open_method)
            if data is not None:
                _store(directory, entry, data)
            return data

    return CachingFileLoader()


def _store(directory: Path, entry: Path, data: Any) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not _private(directory):
            return
        fd, temp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                pickle.dump(data, f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(temp, entry)  # whole entries only, even with concurrent writers
        except BaseException:
            os.unlink(temp)
            raise
    except OSError:
        pass  # a cache that cannot be written is no cache, not an error


def install(session: Any) -> None:
    """Make ``session`` (a botocore or aiobotocore session) load its data through the
    cache, unless ``BIGUPLOAD_MODEL_CACHE=0``."""
    if os.environ.get("BIGUPLOAD_MODEL_CACHE", "1") == "0":
        return
    from botocore.loaders import create_loader

    loader = create_loader(session.get_config_variable("data_path"))
    loader.file_loader = file_loader()
    session.register_component("data_loader", loader)
