"""Benchmark the overhead of ``parallel_with`` per context manager.

What it measures: the wall-clock time (``time.perf_counter``) to enter and exit N trivial
async context managers, divided by N.  Each context manager does exactly one
``trio.lowlevel.checkpoint()`` in ``__aenter__`` and one in ``__aexit__``, so the numbers are
the cost of the machinery around it, not of any real work.  Four implementations:

* ``AsyncExitStack``: ``contextlib.AsyncExitStack`` entering them one after another, in the
  caller's task.  This is the baseline every ratio is taken against.
* ``parallel_with``: ``async with parallel_with(*cms):``, the library under test.
* ``bare start``: the bare mechanism ``parallel_with`` needs, without its error handling:
  per context manager a starter task in an entering nursery awaits
  ``holder_nursery.start(holder)``; the holder enters inside a cancel scope that it shields
  once entered, calls ``task_status.started()`` and waits for an event of its own, which the
  body sets at exit.
* ``start_soon floor``: the floor of any task-per-context-manager design: plain
  ``start_soon`` holders; the last one to enter sets one shared "entered" event, and one
  shared "release" event lets them all exit.

How it is measured: one ``trio.run`` per measurement, and only the ``async with`` (enter and
exit) inside it is timed, after a ``gc.collect()``; Trio's start-up and the creation of the
context managers are not.  For every N, one untimed warm-up round runs each implementation
once, then REPEATS rounds run every implementation once each, interleaved (and in a rotated
order) so that drift in the machine affects them all alike.  Every ratio compares two
medians measured in the same process run.

How to read it: one table per N, times in microseconds per context manager, the median
over the repeats with the min and max beside it.  ``ratio`` is the median divided by the
``AsyncExitStack`` median for the same N: 2.0 means twice the time per context manager of
entering them one after another.  ``parallel_with`` minus ``bare start`` is the cost of
the library's bookkeeping and guarantees; ``bare start`` minus ``start_soon floor`` is the
cost of ``nursery.start`` (starter tasks, moving each holder between nurseries).  Only
ratios within one run are comparable; absolute times depend on the machine.

Usage::

    python benchmarks/bench_overhead.py [--sizes 10,100,1000] [--repeats N] [--quick]
                                        [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Final, TypedDict

import trio

from trio_parallel_cm import parallel_with

REPEATS: Final = 15
SIZES: Final = (10, 100, 1000)
QUICK_SIZES: Final = (10,)
QUICK_REPEATS: Final = 2
BASELINE: Final = "AsyncExitStack"


class TrivialCM:
    """An async context manager that does one checkpoint on entry and one on exit."""

    __slots__ = ()

    async def __aenter__(self) -> None:
        await trio.lowlevel.checkpoint()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await trio.lowlevel.checkpoint()


Scenario = Callable[[Sequence[TrivialCM]], Awaitable[None]]


# ---- scenarios: each enters and exits every context manager once ------------------------


async def bench_exit_stack(cms: Sequence[TrivialCM]) -> None:
    """Enter one after another in the caller's task with contextlib.AsyncExitStack."""
    async with contextlib.AsyncExitStack() as stack:
        for cm in cms:
            await stack.enter_async_context(cm)


async def bench_parallel_with(cms: Sequence[TrivialCM]) -> None:
    """Enter concurrently and exit concurrently with parallel_with(*cms)."""
    async with parallel_with(*cms):
        pass


async def _bare_holder(
    cm: TrivialCM,
    release: trio.Event,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    with trio.CancelScope() as scope:
        async with cm:
            scope.shield = True
            task_status.started()
            await release.wait()


async def bench_bare_start(cms: Sequence[TrivialCM]) -> None:
    """Per cm, a starter task awaits holder_nursery.start(holder); one event per holder."""
    releases = [trio.Event() for _ in cms]
    async with trio.open_nursery() as holder_nursery:
        async with trio.open_nursery() as entering:
            for cm, release in zip(cms, releases, strict=True):
                entering.start_soon(holder_nursery.start, _bare_holder, cm, release)
        # The (empty) body runs here, with every context manager entered.
        for release in releases:
            release.set()


class _Floor:
    """Shared state of the start_soon holders: a count and two events."""

    __slots__ = ("entered", "pending", "release")

    def __init__(self, n: int) -> None:
        self.pending = n
        self.entered = trio.Event()
        self.release = trio.Event()


async def _floor_holder(cm: TrivialCM, floor: _Floor) -> None:
    async with cm:
        floor.pending -= 1
        if not floor.pending:
            floor.entered.set()
        await floor.release.wait()


async def bench_start_soon_floor(cms: Sequence[TrivialCM]) -> None:
    """Plain start_soon holders; one shared event for 'all entered', one for 'release'."""
    floor = _Floor(len(cms))
    async with trio.open_nursery() as nursery:
        for cm in cms:
            nursery.start_soon(_floor_holder, cm, floor)
        await floor.entered.wait()
        # The (empty) body runs here, with every context manager entered.
        floor.release.set()


IMPLEMENTATIONS: Final[tuple[tuple[str, Scenario], ...]] = (
    (BASELINE, bench_exit_stack),
    ("parallel_with", bench_parallel_with),
    ("bare start", bench_bare_start),
    ("start_soon floor", bench_start_soon_floor),
)


# ---- measuring ----------------------------------------------------------------------------


async def _timed(scenario: Scenario, n: int) -> float:
    cms = [TrivialCM() for _ in range(n)]
    gc.collect()
    start = time.perf_counter()
    await scenario(cms)
    return time.perf_counter() - start


def measure(scenario: Scenario, n: int) -> float:
    """Seconds for one enter+exit of ``n`` context managers, in a fresh ``trio.run``."""
    return trio.run(_timed, scenario, n)


class Result(TypedDict):
    implementation: str
    n: int
    median_us: float
    min_us: float
    max_us: float
    ratio: float


def run_size(n: int, repeats: int) -> list[Result]:
    """Measure every implementation at size ``n``, interleaved per repeat."""
    for _, scenario in IMPLEMENTATIONS:  # warm-up, untimed
        measure(scenario, n)
    samples: dict[str, list[float]] = {name: [] for name, _ in IMPLEMENTATIONS}
    count = len(IMPLEMENTATIONS)
    for repeat in range(repeats):
        for i in range(count):
            name, scenario = IMPLEMENTATIONS[(repeat + i) % count]
            samples[name].append(measure(scenario, n) / n * 1e6)
    baseline = statistics.median(samples[BASELINE])
    results: list[Result] = []
    for name, _ in IMPLEMENTATIONS:
        times = samples[name]
        median = statistics.median(times)
        results.append(
            Result(
                implementation=name,
                n=n,
                median_us=median,
                min_us=min(times),
                max_us=max(times),
                ratio=median / baseline,
            )
        )
    return results


def format_table(n: int, repeats: int, results: Sequence[Result]) -> str:
    width = max(len("implementation"), *(len(r["implementation"]) for r in results))
    header = (
        f"{'implementation':<{width}}  {'median µs/cm':>12}  {'min':>8}  {'max':>8}  {'ratio':>6}"
    )
    lines = [f"N = {n} ({repeats} repeats; µs per context manager)", header, "-" * len(header)]
    lines.extend(
        f"{r['implementation']:<{width}}  {r['median_us']:>12.2f}  {r['min_us']:>8.2f}  "
        f"{r['max_us']:>8.2f}  {r['ratio']:>6.2f}"
        for r in results
    )
    return "\n".join(lines)


# ---- command line -------------------------------------------------------------------------


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a comma-separated list of integers: {text!r}"
        ) from None
    if not sizes or any(size < 1 for size in sizes):
        raise argparse.ArgumentTypeError(f"sizes must be positive integers: {text!r}")
    return sizes


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Per-context-manager overhead of parallel_with against AsyncExitStack."
    )
    parser.add_argument(
        "--sizes",
        type=_sizes,
        default=SIZES,
        help="comma-separated numbers of context managers (default: 10,100,1000)",
    )
    parser.add_argument(
        "--repeats",
        type=_positive,
        default=REPEATS,
        help=f"timed rounds per size (default: {REPEATS})",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"CI smoke run: N={QUICK_SIZES[0]} and {QUICK_REPEATS} repeats",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results as JSON")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    quick: bool = args.quick
    sizes: tuple[int, ...] = QUICK_SIZES if quick else args.sizes
    repeats: int = QUICK_REPEATS if quick else args.repeats
    json_path: Path | None = args.json

    print(f"Python {sys.version.split()[0]}, trio {trio.__version__}")
    all_results: list[Result] = []
    for n in sizes:
        results = run_size(n, repeats)
        all_results.extend(results)
        print()
        print(format_table(n, repeats, results), flush=True)

    if json_path is not None:
        document = {
            "unit": "microseconds per context manager",
            "baseline": BASELINE,
            "repeats": repeats,
            "python": sys.version.split()[0],
            "trio": trio.__version__,
            "results": all_results,
        }
        json_path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
