from __future__ import annotations

import bigupload
from bigupload import errors


def test_all_is_sorted_and_complete() -> None:
    assert bigupload.__all__ == sorted(bigupload.__all__)
    for name in bigupload.__all__:
        assert hasattr(bigupload, name), name


def test_error_tree_and_exit_codes() -> None:
    assert issubclass(errors.AuthError, errors.StoreError)
    assert issubclass(errors.SourceChangedError, errors.ResumeError)
    codes = {
        errors.ConfigError("x").exit_code, errors.SourceError("x").exit_code,
        errors.AuthError("x").exit_code, errors.StoreError("x", retryable=True).exit_code,
        errors.IntegrityError("x").exit_code, errors.NotFoundError("x").exit_code,
        errors.ResumeError("x").exit_code, errors.Cancelled("x").exit_code,
    }
    assert codes == {2, 3, 4, 5, 6, 7, 8, 130}
    for name in dir(errors):
        obj = getattr(errors, name)
        if isinstance(obj, type) and issubclass(obj, Exception) and obj.__module__ == errors.__name__:
            assert issubclass(obj, errors.BigUploadError)
            assert obj.__name__ in errors.__doc__  # the drawn tree names every class


def test_journal_is_not_public_api() -> None:
    """Users name a journal by its path (``Uploader(journal=...)``) and read jobs with
    ``Uploader.jobs()``; the writer class is the engine's, importable from its package."""
    from bigupload.journal import Journal

    assert "Journal" not in bigupload.__all__ and not hasattr(bigupload, "Journal")
    assert Journal.__module__ == "bigupload.journal"


def test_every_package_is_listed_for_setuptools() -> None:
    """A subpackage missing from pyproject.toml's ``packages`` works in the editable
    install the tests use but is left out of a built wheel."""
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    listed = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    engine = root / "engine"
    found = sorted(".".join(p.parent.relative_to(engine).parts)
                   for p in (engine / "bigupload").rglob("__init__.py"))
    assert listed == found


def test_the_multipart_calls_are_public() -> None:
    """ListParts, ListMultipartUploads and AbortMultipartUpload for embedding: methods of
    ``Uploader`` returning frozen values that ``bigupload`` exports (issue 17)."""
    import dataclasses

    for name in ("AbortReport", "MultipartUpload", "Owner", "PartListing", "RemotePart"):
        assert name in bigupload.__all__, name
        cls = getattr(bigupload, name)
        assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen, name
    for method in ("list_parts", "list_uploads", "abort"):
        assert callable(getattr(bigupload.Uploader, method)), method
    fields = {f.name for f in dataclasses.fields(bigupload.UploadResult)}
    assert {"server_side_encryption", "sse_kms_key_id", "bucket_key_enabled",
            "request_charged"} <= fields
