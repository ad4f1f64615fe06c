"""Blocking context managers held by threads: ``in_thread`` against ``to_thread`` calls, on
Trio and on asyncio.  One function per scenario, each returning its numbers.

``in_thread(factory)`` starts a dedicated thread per context manager, which makes, enters
and later exits it; ``await cm.run(fn)`` runs a call there.  What it is compared with:

* ``nested with, one to_thread call``: the context managers entered one after another by
  nested ``with`` in one worker thread (``ExitStack`` in one ``to_thread.run_sync`` call),
  the body empty.  The baseline of the latency table.
* ``to_thread pairs``: per context manager one ``to_thread.run_sync(cm.__enter__)`` and
  later one ``to_thread.run_sync(cm.__exit__, None, None, None)``, from the thread cache of
  ``trio.to_thread`` (``anyio.to_thread`` on asyncio): the enters concurrently (a nursery,
  an ``asyncio.TaskGroup``), then the exits, or one after another.  The floor of a hand-off
  to a thread, and no same-thread guarantee: the exit may run in another worker than the
  enter.
* ``new thread, no event loop``: per context manager a new ``threading.Thread`` that
  enters and exits it and sets a ``threading.Event``, started and waited for (not joined,
  as ``in_thread``'s thread is not) from the event loop's thread, which it blocks: what a
  new thread costs, with no event loop in the way.

Each sample runs in a fresh ``trio.run`` (``asyncio.Runner``): first, untimed, as many
concurrent no-op ``to_thread`` calls as the sample's context managers (at most the 40
tokens of the default limiter), so that the thread cache holds the workers the sample will
use (``trio.to_thread``'s cache outlives a run, ``anyio.to_thread``'s workers belong to
their event loop); then a ``gc.collect()`` and the timed region, on the real clock.  See
``bench_harness`` for how repeats are interleaved.  The smoke test (``QUICK``) skips the
warm-up round and the collections: it only runs every design.
"""

from __future__ import annotations

import asyncio
import datetime
import gc
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from contextlib import AbstractContextManager, AsyncExitStack, ExitStack, nullcontext
from dataclasses import dataclass
from functools import partial
from types import TracebackType
from typing import Any, Final

import anyio.to_thread
import trio
from bench_harness import Stats, Table, fmt, interleaved, stats_rows
from bench_scenarios import rounds_for

from trio_parallel_cm import in_thread, parallel_with

SyncCM = AbstractContextManager[object]
Factory = Callable[[], SyncCM]
Thunk = Callable[[], Coroutine[Any, Any, object]]

THREAD_TOKENS: Final = 40  # the default limiter's tokens, of trio.to_thread and anyio's


@dataclass(frozen=True)
class Sizes:
    """The sizes of the thread scenarios in one run."""

    latency: tuple[int, float]  # N, and how long an enter (an exit) blocks, in seconds
    sizes: tuple[int, ...]  # N of the cost per context manager
    work: int  # context managers entered per sample of the cost: N at a time, work // N times
    calls: int  # run() calls per sample
    # True: a warm-up round of every design, a gc.collect() before each timed region.
    # False (the smoke test): neither; in run.py's process, with matplotlib loaded, a
    # gc.collect() takes tens of milliseconds, most of a smoke run's time.
    timing: bool


FULL: Final = Sizes(latency=(10, 0.050), sizes=(10, 100), work=400, calls=1000, timing=True)
QUICK: Final = Sizes(latency=(3, 0.002), sizes=(3,), work=6, calls=20, timing=False)


class BlockingCM:
    """A synchronous context manager whose enter and exit block (``time.sleep``)."""

    __slots__ = ("enter_s", "exit_s")

    def __init__(self, enter_s: float, exit_s: float) -> None:
        self.enter_s = enter_s
        self.exit_s = exit_s

    def __enter__(self) -> None:
        if self.enter_s:
            time.sleep(self.enter_s)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.exit_s:
            time.sleep(self.exit_s)


# ---- the runtimes -------------------------------------------------------------------------


@dataclass(frozen=True)
class Kit:
    """What a design needs of its runtime: its ``to_thread`` call, and a way to run
    coroutine functions concurrently and wait for them all."""

    to_thread: Callable[..., Coroutine[Any, Any, object]]
    concurrently: Callable[[Sequence[Thunk]], Coroutine[Any, Any, None]]


async def _trio_concurrently(thunks: Sequence[Thunk]) -> None:
    async with trio.open_nursery() as nursery:
        for thunk in thunks:
            nursery.start_soon(thunk)


async def _asyncio_concurrently(thunks: Sequence[Thunk]) -> None:
    async with asyncio.TaskGroup() as group:
        for thunk in thunks:
            group.create_task(thunk())


#: The runtimes, by name: Trio, and asyncio's own loop.
KITS: Final[dict[str, Kit]] = {
    "trio": Kit(trio.to_thread.run_sync, _trio_concurrently),
    "asyncio": Kit(anyio.to_thread.run_sync, _asyncio_concurrently),
}


def run_on(runtime: str, fn: Callable[[], Coroutine[Any, Any, float]]) -> float:
    """``fn()`` in a fresh run of ``runtime``."""
    if runtime == "trio":
        return trio.run(fn)
    with asyncio.Runner() as runner:
        return runner.run(fn())


def _noop() -> None:
    pass


async def _warm(kit: Kit, n: int) -> None:
    """Untimed: fill the thread cache with the workers ``n`` concurrent calls use."""
    await kit.concurrently([partial(kit.to_thread, _noop)] * max(1, min(n, THREAD_TOKENS)))


# ---- the designs: enter N context managers, empty body, exit them ------------------------

Design = Callable[[Kit, Factory, int], Coroutine[Any, Any, None]]


def _nested(factory: Factory, n: int) -> None:
    with ExitStack() as stack:
        for _ in range(n):
            stack.enter_context(factory())


async def nested_with(kit: Kit, factory: Factory, n: int) -> None:
    """Nested ``with`` in one worker thread: one after another."""
    await kit.to_thread(_nested, factory, n)


async def in_thread_sequential(kit: Kit, factory: Factory, n: int) -> None:
    """``async with in_thread(factory)`` one after another (an ``AsyncExitStack``)."""
    async with AsyncExitStack() as stack:
        for _ in range(n):
            await stack.enter_async_context(in_thread(factory))


async def in_thread_parallel(kit: Kit, factory: Factory, n: int) -> None:
    """``parallel_with(*[in_thread(factory) for _ in range(n)])``."""
    async with parallel_with(*[in_thread(factory) for _ in range(n)]):
        pass


async def pairs_concurrent(kit: Kit, factory: Factory, n: int) -> None:
    """Every enter in a ``to_thread`` call, concurrently; then every exit likewise."""
    cms = [factory() for _ in range(n)]
    await kit.concurrently([partial(kit.to_thread, cm.__enter__) for cm in cms])
    await kit.concurrently([partial(kit.to_thread, cm.__exit__, None, None, None) for cm in cms])


async def pairs_sequential(kit: Kit, factory: Factory, n: int) -> None:
    """Every enter in a ``to_thread`` call, one after another; then the exits, in reverse."""
    cms = [factory() for _ in range(n)]
    for cm in cms:
        await kit.to_thread(cm.__enter__)
    for cm in reversed(cms):
        await kit.to_thread(cm.__exit__, None, None, None)


def _enter_exit(factory: Factory, done: threading.Event) -> None:
    with factory():
        pass
    done.set()


async def new_thread(kit: Kit, factory: Factory, n: int) -> None:
    """Per context manager a new thread that enters and exits it; the event loop's thread
    starts it and waits for it to be done, blocking (no join, as ``in_thread`` has none)."""
    for _ in range(n):
        done = threading.Event()
        threading.Thread(target=_enter_exit, args=(factory, done)).start()
        done.wait()


SEQUENTIAL: Final = "nested with, one to_thread call"
PAIRS: Final = "to_thread pairs, concurrent"
PARALLEL: Final = "parallel_with(in_thread)"
LATENCY_DESIGNS: Final[dict[str, Design]] = {
    SEQUENTIAL: nested_with,
    "in_thread, one after another": in_thread_sequential,
    PARALLEL: in_thread_parallel,
    PAIRS: pairs_concurrent,
}
COST_DESIGNS: Final[dict[str, Design]] = {
    PAIRS: pairs_concurrent,
    "to_thread pairs, one after another": pairs_sequential,
    PARALLEL: in_thread_parallel,
}
PAIR: Final = "to_thread pair"
#: One context manager at a time (N = 1): the adapter's own cost.
SINGLE_DESIGNS: Final[dict[str, Design]] = {
    PAIR: pairs_sequential,
    "async with in_thread": in_thread_sequential,
    "new thread, no event loop": new_thread,
}


async def _timed(
    kit: Kit, design: Design, factory: Factory, n: int, rounds: int, collect: bool
) -> float:
    await _warm(kit, n)
    if collect:
        gc.collect()
    start = time.perf_counter()
    for _ in range(rounds):
        await design(kit, factory, n)
    return (time.perf_counter() - start) / rounds


def time_once(
    design: Design,
    runtime: str,
    factory: Factory,
    n: int,
    rounds: int = 1,
    collect: bool = True,
) -> float:
    """Seconds per enter+exit of ``n`` context managers, averaged over ``rounds`` in one
    fresh run of ``runtime`` (after a ``gc.collect()`` if ``collect``)."""
    return run_on(runtime, partial(_timed, KITS[runtime], design, factory, n, rounds, collect))


# ---- the scenarios ------------------------------------------------------------------------

#: What blocks in the latency scenario: the enter, or the exit.
CASES: Final = ("enter", "exit")


def _blocking(case: str, block_s: float) -> Factory:
    return (
        partial(BlockingCM, block_s, 0.0) if case == "enter" else partial(BlockingCM, 0.0, block_s)
    )


def latency(
    n: int, block_s: float, repeats: int, runtime: str, timing: bool = True
) -> dict[str, dict[str, Stats]]:
    """Wall ms for ``n`` context managers whose enter (or exit) blocks ``block_s``, by case
    and design."""
    results: dict[str, dict[str, Stats]] = {}
    for case in CASES:
        factory = _blocking(case, block_s)
        run_once = partial(time_once, runtime=runtime, factory=factory, n=n, collect=timing)
        samples = interleaved(LATENCY_DESIGNS, run_once, repeats, warmup=timing)
        results[case] = {name: Stats.of(s).scaled(1e3) for name, s in samples.items()}
    return results


def cost(
    sizes: Sequence[int], work: int, repeats: int, runtime: str, timing: bool = True
) -> dict[int, dict[str, Stats]]:
    """µs per context manager doing nothing (``nullcontext``), by N and design; each sample
    enters ``work`` of them, N at a time.  N = 1 is one at a time (``SINGLE_DESIGNS``)."""
    results: dict[int, dict[str, Stats]] = {}
    for n in (1, *sizes):
        designs = SINGLE_DESIGNS if n == 1 else COST_DESIGNS
        run_once = partial(
            time_once,
            runtime=runtime,
            factory=nullcontext,
            n=n,
            rounds=rounds_for(n, work),
            collect=timing,
        )
        samples = interleaved(designs, run_once, repeats, warmup=timing)
        results[n] = {name: Stats.of(s).scaled(1e6 / n) for name, s in samples.items()}
    return results


async def _run_calls(kit: Kit, calls: int, collect: bool) -> float:
    cm = in_thread(nullcontext)
    start = end = math.nan  # (__aexit__ may suppress an exception, says its type)
    async with cm:
        await cm.run(_noop)
        if collect:
            gc.collect()
        start = time.perf_counter()
        for _ in range(calls):
            await cm.run(_noop)
        end = time.perf_counter()
    return end - start


async def _to_thread_calls(kit: Kit, calls: int, collect: bool) -> float:
    await _warm(kit, 1)
    if collect:
        gc.collect()
    start = time.perf_counter()
    for _ in range(calls):
        await kit.to_thread(_noop)
    return time.perf_counter() - start


RunDesign = Callable[[Kit, int, bool], Coroutine[Any, Any, float]]
TO_THREAD: Final = "to_thread.run_sync(f)"
RUN_DESIGNS: Final[dict[str, RunDesign]] = {
    TO_THREAD: _to_thread_calls,
    "cm.run(f)": _run_calls,
}


def run_calls(calls: int, repeats: int, runtime: str, timing: bool = True) -> dict[str, Stats]:
    """µs per call of a no-op function, one after another: ``await cm.run(f)`` in a held
    ``in_thread(nullcontext)``, against ``await to_thread.run_sync(f)``."""

    def run_once(design: RunDesign) -> float:
        return run_on(runtime, partial(design, KITS[runtime], calls, timing))

    samples = interleaved(RUN_DESIGNS, run_once, repeats, warmup=timing)
    return {name: Stats.of(s).scaled(1e6 / calls) for name, s in samples.items()}


@dataclass(frozen=True)
class Results:
    """The numbers of the thread scenarios, by runtime."""

    latency: dict[str, dict[str, dict[str, Stats]]]  # runtime, case, design: ms
    cost: dict[str, dict[int, dict[str, Stats]]]  # runtime, N (1: one at a time), design: µs
    run: dict[str, dict[str, Stats]]  # runtime, design: µs per call


def measure(sizes: Sizes, repeats: int) -> Results:
    """Every thread scenario on every runtime."""
    n, block_s = sizes.latency
    return Results(
        latency={rt: latency(n, block_s, repeats, rt, sizes.timing) for rt in KITS},
        cost={rt: cost(sizes.sizes, sizes.work, repeats, rt, sizes.timing) for rt in KITS},
        run={rt: run_calls(sizes.calls, repeats, rt, sizes.timing) for rt in KITS},
    )


# ---- a check: where the context managers ran ----------------------------------------------


class _Where:
    """Records the threads its enter and exit ran in."""

    __slots__ = ("entered", "exited")

    def __init__(self) -> None:
        self.entered: int | None = None
        self.exited: int | None = None

    def __enter__(self) -> None:
        self.entered = threading.get_ident()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.exited = threading.get_ident()


async def _where(probes: Sequence[_Where]) -> float:
    def made(probe: _Where) -> _Where:
        return probe

    async with parallel_with(*[in_thread(made, probe) for probe in probes]):
        pass
    return 0.0


def thread_problems(n: int = 3) -> list[str]:
    """The check of ``--quick``: in ``parallel_with`` on each runtime, every context manager
    of ``in_thread`` enters and exits in one thread of its own, not the event loop's."""
    problems: list[str] = []
    for runtime in KITS:
        probes = [_Where() for _ in range(n)]
        run_on(runtime, partial(_where, probes))
        entered = {probe.entered for probe in probes}
        if any(p.entered != p.exited for p in probes):
            problems.append(f"in_thread on {runtime}: an exit ran in another thread")
        if threading.get_ident() in entered or None in entered or len(entered) != n:
            problems.append(f"in_thread on {runtime}: not one thread per context manager")
    return problems


# ---- tables -------------------------------------------------------------------------------


def latency_table(r: Results, sizes: Sizes, repeats: int) -> Table:
    n, block_s = sizes.latency
    ideal_ms = block_s * 1e3
    rows = tuple(
        (runtime, case, *row, fmt(stats[row[0]].median / ideal_ms))
        for runtime, by_case in r.latency.items()
        for case, stats in by_case.items()
        for row in stats_rows(stats, SEQUENTIAL, digits=1)
    )
    return Table(
        f"Blocking context managers: {n} whose enter (or exit) blocks {ideal_ms:g} ms "
        f"(time.sleep); wall ms, medians of {repeats}; ratio to {SEQUENTIAL}; ideal "
        f"{ideal_ms:g} ms (one of them)",
        ("runtime", "blocks", "implementation", "median ms", "min", "max", "ratio", "x ideal"),
        rows,
    )


def cost_table(r: Results, sizes: Sizes, repeats: int) -> Table:
    rows = tuple(
        (runtime, str(n), *row)
        for runtime, by_size in r.cost.items()
        for n, stats in by_size.items()
        if n != 1
        for row in stats_rows(stats, PAIRS)
    )
    return Table(
        f"Cost per context manager, enter and exit doing nothing (nullcontext): µs per cm, "
        f"{sizes.work} per sample, N at a time (medians of {repeats}; ratio to {PAIRS})",
        ("runtime", "N", "implementation", "median µs/cm", "min", "max", "ratio"),
        rows,
    )


def single_table(r: Results, sizes: Sizes, repeats: int) -> Table:
    rows = tuple(
        (runtime, *row)
        for runtime, by_size in r.cost.items()
        for row in stats_rows(by_size[1], PAIR)
    )
    return Table(
        f"One at a time: µs per context manager doing nothing (nullcontext), {sizes.work} "
        f"per sample (medians of {repeats}; ratio to one {PAIR})",
        ("runtime", "implementation", "median µs/cm", "min", "max", "ratio"),
        rows,
    )


def run_table(r: Results, sizes: Sizes, repeats: int) -> Table:
    rows = tuple(
        (runtime, *row) for runtime, stats in r.run.items() for row in stats_rows(stats, TO_THREAD)
    )
    return Table(
        f"Calls in a thread: µs per call of a no-op function, {sizes.calls} one after "
        f"another (medians of {repeats}; ratio to {TO_THREAD})",
        ("runtime", "implementation", "median µs/call", "min", "max", "ratio"),
        rows,
    )


def tables(r: Results, sizes: Sizes, repeats: int) -> list[Table]:
    """The tables of the thread scenarios, in the order of docs/benchmarks.rst."""
    return [
        latency_table(r, sizes, repeats),
        cost_table(r, sizes, repeats),
        single_table(r, sizes, repeats),
        run_table(r, sizes, repeats),
    ]


def main() -> int:
    """This module's section of docs/benchmarks.rst alone: ``python
    benchmarks/bench_threads.py [repeats]`` (``make bench`` runs it among the others)."""
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 9
    print(f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M UTC}; load average {_load()}")
    problems = thread_problems()
    for table in tables(measure(FULL, repeats), FULL, repeats):
        print(f"\n{table.render()}", flush=True)
    print(f"\nload average at the end: {_load()}")
    for problem in problems:
        print(f"PROBLEM: {problem}", file=sys.stderr)
    return 1 if problems else 0


def _load() -> str:
    return ", ".join(f"{load:.2f}" for load in os.getloadavg())


if __name__ == "__main__":
    raise SystemExit(main())
