"""``anyio-contextgroup`` on anyio's Trio backend, against ``parallel_with`` and the baseline.

``anyio-contextgroup`` needs Python >= 3.12, so ``run.py`` runs this module as a script in
a throwaway virtual environment of such a Python (see ``ensure_venv``), which prints its
results as JSON on standard output.  It measures, in that one process run, the baseline
(``AsyncExitStack``), ``parallel_with`` and a context group, so the ratios compare like
with like.

A context group's ``enter_async_context`` waits until that context manager has entered,
so entering N of them concurrently takes N calls from N tasks; ours are started in a Trio
nursery (on the Trio backend, that is what an anyio task group wraps).  It exits them all
concurrently (``ordered=False``, its default) when the group closes.  Each timed region
runs in a fresh ``trio.run``; anyio finds the Trio backend running, as under
``anyio.run(..., backend="trio")``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, Final, Protocol, cast

import trio
from bench_contexts import CM
from bench_designs import BASELINE, DESIGNS, Design
from bench_harness import Stats
from bench_scenarios import latency, overhead

MIN_PYTHON: Final = (3, 12)
PACKAGES: Final = ("trio", "anyio", "anyio-contextgroup")
VENV: Final = Path(tempfile.gettempdir()) / "trio-parallel-cm-bench-anyio"
PROJECT: Final = Path(__file__).resolve().parent.parent
PYENV_VERSIONS: Final = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"


class ContextGroup(Protocol):
    """The part of ``anyio_contextgroup.ContextGroup`` that we use."""

    async def enter_async_context(self, *, context: CM) -> object: ...


def _create_context_group() -> AbstractAsyncContextManager[ContextGroup]:
    # Imported by name: the package is only in the Python >= 3.12 environment.
    module = importlib.import_module("anyio_contextgroup")
    create = cast(
        Callable[[], AbstractAsyncContextManager[ContextGroup]], module.create_context_group
    )
    return create()


@asynccontextmanager
async def context_group(cms: Sequence[CM]) -> AsyncGenerator[object, None]:
    """One ``create_context_group()``, and one ``enter_async_context`` call per cm, concurrently."""
    values: list[object] = [None] * len(cms)
    async with _create_context_group() as group:

        async def enter(index: int, cm: CM) -> None:
            values[index] = await group.enter_async_context(context=cm)

        async with trio.open_nursery() as nursery:
            for index, cm in enumerate(cms):
                nursery.start_soon(enter, index, cm)
        yield values


ANYIO_DESIGNS: Final[dict[str, Design]] = {
    BASELINE: DESIGNS[BASELINE],
    "parallel_with": DESIGNS["parallel_with"],
    "anyio-contextgroup": context_group,
}


# ---- the parent's side: find a Python >= 3.12, make the environment, run this script ----


def find_python() -> Path | None:
    """A Python >= 3.12: ``$BENCH_PYTHON312``, else pyenv's 3.12 or 3.13, else on ``PATH``."""
    candidates: list[Path] = []
    if override := os.environ.get("BENCH_PYTHON312"):
        candidates.append(Path(override))
    for version in ("3.12", "3.13"):
        candidates.extend(sorted(PYENV_VERSIONS.glob(f"{version}.*/bin/python")))
    found = (shutil.which(command) for command in ("python3.12", "python3.13"))
    candidates.extend(Path(path) for path in found if path)
    check = f"import sys; sys.exit(sys.version_info < {MIN_PYTHON})"
    for candidate in candidates:
        done = subprocess.run([str(candidate), "-c", check], capture_output=True, check=False)
        if done.returncode == 0:
            return candidate
    return None


def ensure_venv(python: Path) -> Path:
    """The interpreter of a virtual environment of ``python`` with ``PACKAGES`` and this
    project installed, made on first use.  Raises ``RuntimeError`` with pip's output."""
    venv_python = VENV / "bin" / "python"
    if not venv_python.exists():
        _call([str(python), "-m", "venv", "--clear", str(VENV)])
    check = "import trio, anyio, anyio_contextgroup, trio_parallel_cm"
    if subprocess.run([str(venv_python), "-c", check], capture_output=True).returncode:
        _call([str(venv_python), "-m", "pip", "install", "--quiet", *PACKAGES, "-e", str(PROJECT)])
    return venv_python


def _call(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def run_in(
    venv_python: Path,
    sizes: Sequence[int],
    work: int,
    repeats: int,
    latency_case: tuple[int, float, float],
) -> dict[str, Any]:
    """Run this module under ``venv_python``; its JSON results."""
    n, enter_s, exit_s = latency_case
    output = _call(
        [
            str(venv_python),
            str(Path(__file__).resolve()),
            "--sizes",
            ",".join(map(str, sizes)),
            "--work",
            str(work),
            "--repeats",
            str(repeats),
            "--latency",
            f"{n},{enter_s},{exit_s}",
        ]
    )
    return cast(dict[str, Any], json.loads(output))


def stats_of(data: dict[str, Any]) -> dict[str, Stats]:
    """``Stats`` back from their JSON form."""
    return {name: Stats(**fields) for name, fields in data.items()}


# ---- the child's side -------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", required=True)
    parser.add_argument("--work", type=int, required=True)
    parser.add_argument("--repeats", type=int, required=True)
    parser.add_argument("--latency", required=True, help="N,enter_s,exit_s")
    args = parser.parse_args(argv)
    if sys.version_info < MIN_PYTHON:
        parser.error(f"needs Python >= {'.'.join(map(str, MIN_PYTHON))}")
    sizes = [int(size) for size in str(args.sizes).split(",")]
    repeats = int(args.repeats)
    n, enter_s, exit_s = str(args.latency).split(",")
    by_size = overhead(sizes, int(args.work), repeats, ANYIO_DESIGNS)
    waits = latency(int(n), float(enter_s), float(exit_s), repeats, ANYIO_DESIGNS)
    versions = {name: importlib.metadata.version(name) for name in (*PACKAGES, "trio_parallel_cm")}
    document = {
        "python": sys.version.split()[0],
        "versions": versions,
        "overhead": {
            str(size): {name: asdict(s) for name, s in stats.items()}
            for size, stats in by_size.items()
        },
        "latency": {name: asdict(s) for name, s in waits.items()},
    }
    print(json.dumps(document))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
