"""The disk cache of botocore's data files: what it serves equals what botocore parses
itself, a changed file is parsed again, a corrupt entry is replaced, and a cache directory
that others can write is never read from."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
from botocore.loaders import JSONFileLoader

from bigupload import modelcache


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "bigupload" / "botocore"


def _model(tmp_path: Path, content: dict[str, object]) -> str:
    path = tmp_path / "model.json"
    path.write_text(json.dumps(content))
    return str(tmp_path / "model")


def test_served_from_the_cache_as_botocore_parses_it(cache: Path) -> None:
    import botocore

    s3 = os.path.join(os.path.dirname(botocore.__file__), "data", "s3", "2006-03-01", "service-2")
    loader = modelcache.file_loader()
    first = loader.load_file(s3)
    assert len(list(cache.glob("*.pickle"))) == 1
    second = modelcache.file_loader().load_file(s3)  # from the cache
    assert first == second == JSONFileLoader().load_file(s3)
    assert type(second["operations"]) is type(JSONFileLoader().load_file(s3)["operations"])


def test_a_changed_file_is_parsed_again(cache: Path, tmp_path: Path) -> None:
    path = _model(tmp_path, {"version": 1})
    assert modelcache.file_loader().load_file(path) == {"version": 1}
    Path(path + ".json").write_text(json.dumps({"version": 2, "more": True}))
    assert modelcache.file_loader().load_file(path) == {"version": 2, "more": True}


def test_a_corrupt_entry_is_replaced(cache: Path, tmp_path: Path) -> None:
    path = _model(tmp_path, {"version": 1})
    modelcache.file_loader().load_file(path)
    (entry,) = cache.glob("*.pickle")
    entry.write_bytes(b"not a pickle")
    assert modelcache.file_loader().load_file(path) == {"version": 1}
    assert pickle.loads(entry.read_bytes()) == {"version": 1}


def test_a_directory_others_can_write_is_not_read(cache: Path, tmp_path: Path) -> None:
    path = _model(tmp_path, {"version": 1})
    modelcache.file_loader().load_file(path)
    (entry,) = cache.glob("*.pickle")
    entry.write_bytes(pickle.dumps({"planted": True}))
    cache.chmod(0o777)
    assert modelcache.file_loader().load_file(path) == {"version": 1}
    cache.chmod(0o700)
    assert modelcache.file_loader().load_file(path) == {"planted": True}  # the check is the mode


def test_a_missing_file_is_none_as_for_botocore(cache: Path, tmp_path: Path) -> None:
    assert modelcache.file_loader().load_file(str(tmp_path / "absent")) is None
    assert not cache.exists()


def test_off_with_the_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.session import Session

    session = Session()
    before = session.get_component("data_loader")
    monkeypatch.setenv("BIGUPLOAD_MODEL_CACHE", "0")
    modelcache.install(session)
    assert session.get_component("data_loader") is before
    monkeypatch.delenv("BIGUPLOAD_MODEL_CACHE")
    modelcache.install(session)
    assert type(session.get_component("data_loader").file_loader).__name__ == "CachingFileLoader"
