"""The package's layout: its modules import one another one way only, and only the
runtimes reach the event loop."""

from __future__ import annotations

import ast
from pathlib import Path

import trio_parallel_cm

PACKAGE = Path(trio_parallel_cm.__file__).parent

#: The faces and the public modules: nothing below them imports them.
FACES = {"__init__", "__main__", "otel", "_parallel", "_stack", "_graph", "_handle", "_thread"}
#: Event loops: only the runtimes import them (the demo and the OpenTelemetry observer,
#: faces over Trio's clock, aside).
LOOPS = ("trio", "anyio", "asyncio", "sniffio")


def _module(path: Path) -> str:
    """``path``'s module, relative to the package: ``_engine._holder``, ``_errors``."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)


def _modules() -> dict[str, Path]:
    return {_module(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _imports_within_the_package(module: str, path: Path) -> set[str]:
    """The package's modules that ``module`` imports, type-only imports included."""
    known = _modules()
    here = module.split(".")
    package = here if path.name == "__init__.py" and module != "__init__" else here[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.ImportFrom) or node.level == 0:
            continue
        base = package[: len(package) - (node.level - 1)]
        target = [*base, *(node.module.split(".") if node.module else [])]
        for alias in node.names:
            name = ".".join([*target, alias.name])
            found.add(name if name in known else ".".join(target) or "__init__")
    return found - {module}


def _imports_of_other_packages(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def _graph() -> dict[str, set[str]]:
    return {
        module: _imports_within_the_package(module, path) for module, path in _modules().items()
    }


def test_the_package_imports_run_one_way() -> None:
    # Records, the runtimes, the engine (holder, dag, stage, block), the faces: no cycle,
    # not even through an import made only for the type checkers.
    graph = _graph()
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
    assert graph["_engine._holder"].isdisjoint(
        {"_engine._stage", "_handle", "_engine._dag", "_engine._block"}
    )


def test_the_runtimes_are_at_the_bottom_and_the_faces_at_the_top() -> None:
    graph = _graph()
    runtimes = {module for module in graph if module.startswith("_runtime")}
    assert runtimes == {"_runtime", "_runtime._trio", "_runtime._asyncio"}
    for module in runtimes:
        assert graph[module] <= runtimes, module
    for module, imported in graph.items():
        if module not in FACES:
            assert imported.isdisjoint(FACES), module
    # The engine reaches the event loop through the runtime package, not one runtime.
    engine = [module for module in graph if module.startswith("_engine.")]
    assert len(engine) == 9
    for module in engine:
        assert graph[module].isdisjoint({"_runtime._trio", "_runtime._asyncio"}), module


def test_only_the_runtimes_import_an_event_loop() -> None:
    users = {
        module: sorted(_imports_of_other_packages(path) & set(LOOPS))
        for module, path in _modules().items()
        if not module.startswith("_runtime") and module != "__main__"
    }
    assert {module: loops for module, loops in users.items() if loops} == {}
    assert "trio" in _imports_of_other_packages(PACKAGE / "_runtime" / "_trio.py")
    assert {"asyncio", "anyio"} <= _imports_of_other_packages(PACKAGE / "_runtime" / "_asyncio.py")


def test_the_checks_see_the_imports_they_are_about() -> None:
    # The helpers read relative imports at every depth (else the tests above pass on an
    # empty graph).
    graph = _graph()
    assert "_runtime" in graph["_engine._holder"]
    assert {"_engine._holder", "_errors"} <= graph["_engine._stage"]
    assert "_runtime._trio" in graph["_runtime"]
    assert "_engine._block" in graph["_parallel"]
