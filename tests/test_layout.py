"""The package's layout: its private modules import one another one way only."""

from __future__ import annotations

import ast
from pathlib import Path

import trio_parallel_cm


def _imports_within_the_package(path: Path) -> set[str]:
    """The package's modules that ``path`` imports, type-only imports included."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module is not None:
                found.add(node.module)
            else:
                found.update(alias.name for alias in node.names)
    return found


def test_the_package_imports_run_one_way() -> None:
    # Basic modules, the holder, the dag, the stage, the block and the handle, the faces:
    # no cycle, not even through an import made only for the type checkers.
    package = Path(trio_parallel_cm.__file__).parent
    graph = {path.stem: _imports_within_the_package(path) for path in package.glob("*.py")}
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, " -> ".join((*path, module))
        if module in done:
            return
        for imported in sorted(graph.get(module, ())):
            visit(imported, (*path, module))
        done.add(module)

    for module in sorted(graph):
        visit(module, ())
    assert graph["_holder"].isdisjoint({"_stage", "_handle", "_dag", "_block"})
