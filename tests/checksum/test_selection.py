"""Which backend each algorithm gets: native with a hardware path, then a package, then
the native software path, then Python; the override; the warning that says what runs;
and the build, which must not need a compiler."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bigupload import _native
from bigupload import checksum as ck
from bigupload.config import ChecksumAlgorithm
from bigupload.errors import ConfigError

C32C, C32, C64 = ChecksumAlgorithm.CRC32C, ChecksumAlgorithm.CRC32, ChecksumAlgorithm.CRC64NVME
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def fresh_choice(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test chooses again, and leaves the next one to choose again too."""
    monkeypatch.delenv("BIGUPLOAD_CHECKSUM_BACKEND", raising=False)
    ck.selection.cache_clear()
    ck._native_module.cache_clear()
    yield
    ck.selection.cache_clear()
    ck._native_module.cache_clear()


@pytest.fixture
def no_native(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on a machine that installed without a compiler: the import fails."""
    monkeypatch.setitem(sys.modules, "bigupload._native", None)


def test_native_with_hardware_is_chosen_for_all() -> None:
    if any(_native.backend()[a] == "sw" for a in ("crc32c", "crc32", "crc64nvme")):
        pytest.skip("this CPU has no hardware CRC path")  # pragma: no cover
    assert ck.selection() == {C32: "native", C32C: "native", C64: "native"}
    names = ck.backends()
    assert set(names) == {"crc32", "crc32c", "crc64nvme"}
    assert all(v.startswith("native (") and "software" not in v for v in names.values())
    assert names["crc32c"] in ("native (sse4.2)", "native (avx512+vpclmulqdq)")


def test_without_native_each_algorithm_falls_back_and_says_so(
        no_native: None, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="bigupload"):
        assert ck.selection() == {C32C: "package", C32: "package", C64: "python"}
    assert ck.backends() == {"crc32c": "package (crc32c)", "crc32": "package (zlib)",
                             "crc64nvme": "python (slow)"}
    [record] = caplog.records
    assert "native extension is not built" in record.getMessage()
    assert "crc64nvme: python (slow)" in record.getMessage()
    # and it computes, through the fallbacks, and combines in Python
    assert ck.compute(C64, b"123456789") == (0xAE8B14860A799888).to_bytes(8, "big")
    assert ck.combine(C32, 0, 0xCBF43926, 9) == 0xCBF43926
    with pytest.raises(ValueError):
        ck.combine(C32, 0, 0, 1, "native")


def test_native_software_path_loses_to_a_package(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without hardware paths (forced to ``sw``), CRC32C and CRC32 go to the packages
    (crc32c and zlib are faster than slice-by-8), CRC64NVME stays native."""
    previous = {a: _native.set_implementation(a, "sw") for a in ("crc32c", "crc32", "crc64nvme")}
    try:
        assert ck.selection() == {C32C: "package", C32: "package", C64: "native"}
        assert ck.backends()["crc64nvme"] == "native (software)"
    finally:
        for alg, impl in previous.items():
            _native.set_implementation(alg, impl)


@pytest.mark.parametrize(("forced", "expected"), [
    ("native", {C32C: "native", C32: "native", C64: "native"}),
    ("package", {C32C: "package", C32: "package", C64: "python"}),
    (" Python ", {C32C: "python", C32: "python", C64: "python"}),
])
def test_override(forced: str, expected: dict[ChecksumAlgorithm, str],
                  monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("BIGUPLOAD_CHECKSUM_BACKEND", forced)
    with caplog.at_level("WARNING", logger="bigupload"):
        assert ck.selection() == expected
    assert f"BIGUPLOAD_CHECKSUM_BACKEND={forced.strip().lower()}" in caplog.text
    assert ck.compute(C32C, b"123456789") == (0xE3069283).to_bytes(4, "big")


def test_bad_override(monkeypatch: pytest.MonkeyPatch, no_native: None) -> None:
    monkeypatch.setenv("BIGUPLOAD_CHECKSUM_BACKEND", "fast")
    with pytest.raises(ConfigError, match="must be one of native, package, python"):
        ck.selection()
    monkeypatch.setenv("BIGUPLOAD_CHECKSUM_BACKEND", "native")
    with pytest.raises(ConfigError, match="native checksum extension is not built"):
        ck.selection()


@pytest.mark.skipif(shutil.which("gcc") is None and shutil.which("cc") is None,
                    reason="needs a C toolchain for the comparison")
def test_build_without_a_compiler_succeeds_without_the_extension(tmp_path: Path) -> None:
    """The extension is optional: when compiling fails (``CC=false``), the build goes on
    without it instead of failing the install."""
    env = {**os.environ, "CC": "false", "LDSHARED": "false"}
    out = subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--build-lib", str(tmp_path / "lib"),
         "--build-temp", str(tmp_path / "tmp")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "bigupload._native" in out.stderr  # setuptools says the optional build failed
    assert not list((tmp_path / "lib").rglob("_native*"))
