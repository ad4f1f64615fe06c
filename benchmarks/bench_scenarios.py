"""The benchmark scenarios on Trio: one function per scenario, each returning its numbers.

Every timed region is ``async with design(cms):`` (enter, empty body, exit) in a fresh
``trio.run``, after a ``gc.collect()``; for trivial context managers it runs enough times
over that each sample enters the same total number of them (``work``), and its time is
divided by that number.  See ``bench_harness`` for how repeats are interleaved.
"""

from __future__ import annotations

import gc
import re
import time
import tracemalloc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import trio
from bench_contexts import CM, SCOPE_BODY_S, SCOPE_OWNERS, long_tail, mixed, sleepers, trivial
from bench_designs import BASELINE, DESIGNS, LIMIT, LIMITED_DESIGNS, Design
from bench_harness import Stats, interleaved


async def _timed(
    design: Design, cms: Sequence[CM], rounds: int, gc_enabled: bool
) -> tuple[float, list[int]]:
    gc.collect()
    before = [generation["collections"] for generation in gc.get_stats()]
    if not gc_enabled:
        gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(rounds):
            async with design(cms):
                pass
        elapsed = time.perf_counter() - start
    finally:
        gc.enable()
    after = [generation["collections"] for generation in gc.get_stats()]
    return elapsed / rounds, [a - b for a, b in zip(after, before, strict=True)]


def time_once(
    design: Design, cms: Sequence[CM], rounds: int = 1, gc_enabled: bool = True
) -> tuple[float, list[int]]:
    """Seconds per enter+exit over ``rounds`` in a fresh ``trio.run``, and gc collections."""
    return trio.run(_timed, design, cms, rounds, gc_enabled)


def rounds_for(n: int, work: int) -> int:
    """How many times to enter N context managers so that one sample enters ``work``."""
    return max(1, work // n)


def overhead(
    sizes: Sequence[int], work: int, repeats: int, designs: Mapping[str, Design] = DESIGNS
) -> dict[int, dict[str, Stats]]:
    """Scenario 1: µs per trivial context manager, by N and design (``work`` cms a sample)."""
    results: dict[int, dict[str, Stats]] = {}
    for n in sizes:
        cms = trivial(n)
        rounds = rounds_for(n, work)

        def run_once(design: Design, cms: list[CM] = cms, rounds: int = rounds) -> float:
            return time_once(design, cms, rounds)[0]

        samples = interleaved(designs, run_once, repeats)
        results[n] = {name: Stats.of(s).scaled(1e6 / n) for name, s in samples.items()}
    return results


def _seconds(design: Design, cms: Sequence[CM]) -> float:
    return time_once(design, cms)[0]


def latency(
    n: int, enter_s: float, exit_s: float, repeats: int, designs: Mapping[str, Design] = DESIGNS
) -> dict[str, Stats]:
    """Scenario 2: wall ms for ``n`` context managers sleeping ``enter_s`` and ``exit_s``."""
    cms = sleepers(n, enter_s, exit_s)
    samples = interleaved(designs, partial(_seconds, cms=cms), repeats)
    return {name: Stats.of(s).scaled(1e3) for name, s in samples.items()}


@dataclass(frozen=True)
class Mixed:
    """Wall times of the long-tailed mix, and the lower bounds they are compared with."""

    stats: dict[str, Stats]  # milliseconds
    bounds: dict[str, float]  # milliseconds: the best any design with that limit can do
    slowest_ms: tuple[float, float]  # the slowest enter and exit
    total_ms: tuple[float, float]  # the sum of all enters, and of all exits


def mixed_latency(n: int, repeats: int) -> Mixed:
    """Scenario 3: wall ms for ``n`` long-tailed latencies, with and without ``limit=``."""
    latencies = long_tail(n)
    cms = mixed(latencies)
    designs = {**DESIGNS, **LIMITED_DESIGNS}
    samples = interleaved(designs, partial(_seconds, cms=cms), repeats)
    enters = [e for e, _ in latencies]
    exits = [x for _, x in latencies]

    def bound(limit: int | None) -> float:
        if limit is None:
            return (max(enters) + max(exits)) * 1e3
        return (max(max(enters), sum(enters) / limit) + max(max(exits), sum(exits) / limit)) * 1e3

    bounds = {name: bound(LIMIT if name in LIMITED_DESIGNS else None) for name in designs}
    bounds[BASELINE] = (sum(enters) + sum(exits)) * 1e3
    return Mixed(
        stats={name: Stats.of(s).scaled(1e3) for name, s in samples.items()},
        bounds=bounds,
        slowest_ms=(max(enters) * 1e3, max(exits) * 1e3),
        total_ms=(sum(enters) * 1e3, sum(exits) * 1e3),
    )


@dataclass(frozen=True)
class Memory:
    """Bytes per context manager: held while the block is open, and the peak."""

    held: Stats
    peak: Stats


async def traced(design: Design, cms: Sequence[CM]) -> tuple[float, float]:
    """Bytes per context manager held while ``design`` holds ``cms`` open, and the peak
    (on whichever event loop runs it)."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        async with design(cms):
            gc.collect()
            held = tracemalloc.get_traced_memory()[0] - before
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    return held / len(cms), peak / len(cms)


def memory(n: int, repeats: int) -> dict[str, Memory]:
    """Scenario 4: bytes held per open context manager, and the peak, at N = ``n``."""
    cms = trivial(n)
    held: dict[str, list[float]] = {name: [] for name in DESIGNS}
    peak: dict[str, list[float]] = {name: [] for name in DESIGNS}

    def run_once(name: str) -> float:
        h, p = trio.run(traced, DESIGNS[name], cms)
        held[name].append(h)
        peak[name].append(p)
        return p

    interleaved({name: name for name in DESIGNS}, run_once, repeats, warmup=False)
    return {name: Memory(Stats.of(held[name]), Stats.of(peak[name])) for name in DESIGNS}


@dataclass(frozen=True)
class Scaling:
    """Per-cm time with the collector on and off, and the collections one run triggers."""

    gc_on: Stats  # microseconds per context manager
    gc_off: Stats
    collections: tuple[int, int, int]  # by generation in one gc-on sample (the median)


SCALING_DESIGNS = (BASELINE, "parallel_with", "bare mechanism", "start_soon floor")


def scaling(sizes: Sequence[int], work: int, repeats: int) -> dict[int, dict[str, Scaling]]:
    """Scenario 5: µs per cm at each N with the garbage collector on and off, and collections."""
    runs = {
        f"{name} gc {'on' if enabled else 'off'}": (name, enabled)
        for name in SCALING_DESIGNS
        for enabled in (True, False)
    }
    results: dict[int, dict[str, Scaling]] = {}
    for n in sizes:
        cms = trivial(n)
        rounds = rounds_for(n, work)
        counts: dict[str, list[list[int]]] = {name: [] for name in SCALING_DESIGNS}

        def run_once(
            run: tuple[str, bool],
            cms: list[CM] = cms,
            rounds: int = rounds,
            counts: dict[str, list[list[int]]] = counts,
        ) -> float:
            name, enabled = run
            elapsed, collected = time_once(DESIGNS[name], cms, rounds, enabled)
            if enabled:
                counts[name].append(collected)
            return elapsed

        samples = interleaved(runs, run_once, repeats)
        results[n] = {
            name: Scaling(
                gc_on=Stats.of(samples[f"{name} gc on"]).scaled(1e6 / n),
                gc_off=Stats.of(samples[f"{name} gc off"]).scaled(1e6 / n),
                collections=_median_counts(counts[name][1:]),  # without the warm-up
            )
            for name in SCALING_DESIGNS
        }
    return results


def _median_counts(counts: Sequence[Sequence[int]]) -> tuple[int, int, int]:
    ordered = [sorted(c[g] for c in counts) for g in range(3)]
    middle = len(counts) // 2
    return ordered[0][middle], ordered[1][middle], ordered[2][middle]


@dataclass(frozen=True)
class Outcome:
    """What one design did with context managers that own a scope."""

    error: str | None  # ``describe`` of what it raised, if anything
    ms: float  # wall time of the block


async def _enter_three(design: Design, factory: Callable[[], CM]) -> None:
    async with design([factory() for _ in range(3)]):
        await trio.sleep(SCOPE_BODY_S)


def scope_owners() -> dict[str, dict[str, Outcome]]:
    """Check: what each design does with 3 context managers owning a nursery or a deadline."""
    outcomes: dict[str, dict[str, Outcome]] = {}
    for kind, factory in SCOPE_OWNERS.items():
        outcomes[kind] = {}
        for name, design in DESIGNS.items():
            error: str | None = None
            start = time.perf_counter()
            try:
                trio.run(_enter_three, design, factory)
            except BaseException as exc:  # the outcome is what we report
                error = describe(exc)
            outcomes[kind][name] = Outcome(error, (time.perf_counter() - start) * 1e3)
    return outcomes


def describe(exc: BaseException) -> str:
    """The type of ``exc`` and the distinct first lines of its leaf exceptions."""
    leaves = _leaves(exc)
    texts: list[str] = []
    for leaf in leaves:
        lines = str(leaf).splitlines()
        text = f"{type(leaf).__name__}: {lines[0]}" if lines else type(leaf).__name__
        text = re.sub(r"<Task '[^']*' at 0x[0-9a-f]+>", "<Task>", text)
        if text not in texts:
            texts.append(text)
    if leaves == [exc]:
        return texts[0]
    return f"{type(exc).__name__} of {len(leaves)}: {' | '.join(texts)}"


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        group: BaseExceptionGroup[BaseException] = exc  # pyright: ignore[reportUnknownVariableType]
        return [leaf for member in group.exceptions for leaf in _leaves(member)]
    return [exc]
