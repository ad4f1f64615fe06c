"""Profile ``parallel_with`` on trivial context managers: where the time and memory go.

Usage::

    python benchmarks/profile_parallel.py [--sizes 1000,10000] [--top 15] [--no-pyinstrument]

For each N it profiles one ``async with parallel_with(*cms): pass`` (enter, empty body,
exit) in a fresh ``trio.run``, after a warm-up run:

* cProfile: the top functions by own time (tottime), and own time summed by area:
  Trio's internals, each module of ``trio_parallel_cm``, the context managers, the rest;
* pyinstrument (if installed): the call tree, for the same region;
* tracemalloc: the bytes held per open context manager, by file and by line, from a
  snapshot taken while the block is open.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import importlib.util
import io
import pstats
import tracemalloc
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from types import CodeType

import trio
from bench_contexts import CM, trivial

from trio_parallel_cm import parallel_with


async def _profiled(cms: Sequence[CM], profiler: cProfile.Profile) -> None:
    gc.collect()
    profiler.enable()
    async with parallel_with(*cms):
        pass
    profiler.disable()


def area(filename: str) -> str:
    """Which part of the code a profiled function belongs to."""
    path = Path(filename)
    if "trio_parallel_cm" in path.parts:
        return f"trio_parallel_cm/{path.name}"
    if "trio" in path.parts:
        return "trio internals"
    if path.name.startswith("bench_"):
        return "the context managers"
    return "other (stdlib, builtins)"


def cprofile_report(n: int, top: int) -> str:
    """Top functions by own time, and own time by area, for one enter and exit of N."""
    cms = trivial(n)
    trio.run(_profiled, cms, cProfile.Profile())  # warm-up
    profiler = cProfile.Profile()
    trio.run(_profiled, cms, profiler)
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    by_area: dict[str, float] = defaultdict(float)
    for entry in profiler.getstats():
        code = entry.code
        filename = code.co_filename if isinstance(code, CodeType) else "builtins"
        by_area[area(filename)] += entry.inlinetime
    total = sum(by_area.values())
    lines = [f"cProfile, N = {n}: own time by area (total {total * 1e3:.0f} ms profiled)"]
    lines.extend(
        f"  {name:<40} {t * 1e3:8.1f} ms  {t / total:6.1%}  {t / n * 1e6:7.2f} µs/cm"
        for name, t in sorted(by_area.items(), key=lambda item: -item[1])
    )
    return "\n".join(lines) + "\n\n" + _shorten(out.getvalue())


def _shorten(text: str) -> str:
    """pstats output with the long site-packages prefixes cut."""
    lines = [line for line in text.splitlines() if line.strip()]
    return "\n".join(
        line.replace(str(Path(trio.__file__).parent.parent) + "/", "") for line in lines
    )


async def _pyinstrumented(cms: Sequence[CM]) -> str:
    from pyinstrument import Profiler

    gc.collect()
    profiler = Profiler(async_mode="disabled", interval=0.0001)
    profiler.start()
    async with parallel_with(*cms):
        pass
    profiler.stop()
    return profiler.output_text(unicode=True, color=False, show_all=False)


def pyinstrument_report(n: int) -> str:
    """pyinstrument's call tree for one enter and exit of N."""
    cms = trivial(n)
    trio.run(_pyinstrumented, cms)  # warm-up
    return f"pyinstrument, N = {n}\n{trio.run(_pyinstrumented, cms)}"


async def _snapshot(cms: Sequence[CM]) -> list[tracemalloc.Snapshot]:
    gc.collect()
    tracemalloc.start(1)
    try:
        snapshots = [tracemalloc.take_snapshot()]
        async with parallel_with(*cms):
            gc.collect()
            snapshots.append(tracemalloc.take_snapshot())
    finally:
        tracemalloc.stop()
    return snapshots


def memory_report(n: int, top: int) -> str:
    """Bytes held per open context manager, by file and by line, at N."""
    before, during = trio.run(_snapshot, trivial(n))
    lines = [f"tracemalloc, N = {n}: bytes held per open context manager"]
    total = sum(stat.size_diff for stat in during.compare_to(before, "filename"))
    lines.append(f"  total {total / n:.0f} B/cm")
    lines.append("  by file:")
    lines.extend(
        f"    {stat.size_diff / n:7.0f} B/cm  {stat.count_diff / n:5.2f} blocks/cm  "
        f"{_short_path(stat.traceback[0].filename)}"
        for stat in during.compare_to(before, "filename")[:top]
        if stat.size_diff
    )
    lines.append("  by line:")
    lines.extend(
        f"    {stat.size_diff / n:7.0f} B/cm  {stat.count_diff / n:5.2f} blocks/cm  "
        f"{_short_path(stat.traceback[0].filename)}:{stat.traceback[0].lineno}"
        for stat in during.compare_to(before, "lineno")[:top]
        if stat.size_diff
    )
    return "\n".join(lines)


def _short_path(filename: str) -> str:
    parts = Path(filename).parts
    for anchor in ("trio_parallel_cm", "trio", "benchmarks"):
        if anchor in parts:
            return "/".join(parts[len(parts) - parts[::-1].index(anchor) - 1 :])
    return Path(filename).name


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated N")
    parser.add_argument("--top", type=int, default=15, help="rows per listing")
    parser.add_argument("--no-pyinstrument", action="store_true")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in str(args.sizes).split(",")]
    top = int(args.top)
    with_pyinstrument = not args.no_pyinstrument and importlib.util.find_spec("pyinstrument")
    for n in sizes:
        print(cprofile_report(n, top), end="\n\n")
        if with_pyinstrument:
            print(pyinstrument_report(n), end="\n\n")
        print(memory_report(n, top), end="\n\n")
    if not with_pyinstrument:
        print("pyinstrument: not installed or disabled, skipped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
