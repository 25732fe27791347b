"""The engine's shape, checked on its source (ast, no imports): no import cycles, lazy
or not (imports under ``TYPE_CHECKING`` excepted); the pure modules import nothing that
does I/O; only the scheduler creates task groups, and task groups reduce their failures
to one error and log the others."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import anyio
import pytest

from bigupload import scheduler

ENGINE = Path(scheduler.__file__).parent
# modules that do no I/O, and the modules they may import
PURE = {"bigupload.values", "bigupload.answers", "bigupload.plan", "bigupload.resume",
        "bigupload.verify", "bigupload.upload.machine", "bigupload.upload.put_machine",
        "bigupload.upload.multipart_machine", "bigupload.upload.stream_machine",
        "bigupload.upload.result",
        "bigupload.upload.copy_machine"}
LEAVES = {"bigupload.config", "bigupload.errors", "bigupload.checksum", "bigupload._native"}


def modules() -> dict[str, ast.Module]:
    found = {}
    for path in ENGINE.rglob("*.py"):
        parts = path.relative_to(ENGINE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = ast.parse(path.read_text(), str(path))
    return found


def imports(name: str, tree: ast.Module, known: set[str]) -> set[str]:
    """The bigupload modules ``name`` imports at run time, at any depth of its code."""
    typing_only = {id(node) for n in ast.walk(tree)
                   if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test)
                   for node in ast.walk(n)}
    package = name if (ENGINE.parent / name.replace(".", "/") / "__init__.py").exists() \
        else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        targets: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            module = ".".join(base + ([node.module] if node.module else []))
            # ``from .. import x`` imports x; its package is imported for any submodule
            targets = ([module] if node.module else []) + [f"{module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("bigupload"):
            targets = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names if a.name.startswith("bigupload")]
        found |= {t for t in targets if t in known and t != name}
    return found


def test_no_import_cycles() -> None:
    trees = modules()
    graph = {name: imports(name, tree, set(trees)) for name, tree in trees.items()}

    def reach(start: str) -> set[str]:
        seen: set[str] = set()
        todo = list(graph[start])
        while todo:
            current = todo.pop()
            if current not in seen:
                seen.add(current)
                todo += graph[current]
        return seen

    cycles = sorted(name for name in graph if name in reach(name) and name != "bigupload")
    assert cycles == []


def test_pure_modules_import_no_io() -> None:
    trees = modules()
    for name in PURE:
        assert imports(name, trees[name], set(trees)) <= PURE | LEAVES, name


def test_only_the_scheduler_creates_task_groups() -> None:
    for path in ENGINE.rglob("*.py"):
        if path.name != "scheduler.py":
            assert "create_task_group" not in path.read_text(), path


def test_a_task_group_raises_its_first_failure_and_logs_the_others(
        caplog: pytest.LogCaptureFixture) -> None:
    async def fail(error: Exception, after: float) -> None:
        await anyio.sleep(after)
        raise error

    async def main() -> None:
        async with scheduler.task_group() as tg:
            tg.start_soon(fail, ValueError("first"), 0)
            tg.start_soon(fail, KeyError("second"), 0)

    caplog.set_level(logging.DEBUG, "bigupload")
    with pytest.raises((ValueError, KeyError)) as raised:
        anyio.run(main)
    other = "second" if isinstance(raised.value, ValueError) else "first"
    assert any("also failed" in r.getMessage() and other in r.getMessage() for r in caplog.records)
