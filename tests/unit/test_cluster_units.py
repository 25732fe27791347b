"""The pure parts of running on a cluster: where a file's work may go, given what each
worker sees (``cluster.placements``, ``remote.visible``), and the ``local:N`` address."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bigupload.cluster import _local_workers, placements
from bigupload.errors import ClusterError, ConfigError
from bigupload.remote import visible


def test_placements_by_host() -> None:
    answers = {
        "tcp://10.0.0.1:4001": [True, True, False, False],
        "tcp://10.0.0.1:4002": [True, False, False, False],  # same host: either worker counts
        "tcp://10.0.0.2:4001": [True, False, True, False],
        "tcp://10.0.0.3:4001": OSError("worker going away"),  # ignored, not a host
    }
    assert placements(answers, 4) == [[], ["10.0.0.1"], ["10.0.0.2"], None]


def test_placements_without_workers() -> None:
    with pytest.raises(ClusterError, match="no workers"):
        placements({"tcp://10.0.0.3:4001": OSError("gone")}, 1)


def test_visible_compares_size_and_mtime(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"abc")
    st = os.stat(f)
    assert visible([(str(f), 3, st.st_mtime_ns), (str(f), 4, st.st_mtime_ns),
                    (str(f), 3, st.st_mtime_ns + 1), (str(tmp_path / "missing"), 0, 0)]) == [
        True, False, False, False]


@pytest.mark.parametrize("address", ["local:", "local:0", "local:x", "local:999"])
def test_local_address(address: str) -> None:
    with pytest.raises(ConfigError, match="local:N"):
        _local_workers(address)
    assert _local_workers("local:3") == 3
