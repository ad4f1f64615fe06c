"""``ResourceGraph`` shapes: what a node costs as the graph grows (scheduling stays linear).

Three shapes of trivial context managers: no edges (the same work as ``parallel_with``), a
chain (each node needs the one before), and a random graph (each node needs up to three
earlier nodes, seeded).  The number is microseconds per node, enter and exit, in a fresh
``trio.run``; the scaling column divides the per-node cost at the largest N by the one at
the smallest, from the same run, with the garbage collector on and off (off, the growth is
the scheduling's alone: flat means linear).
"""

from __future__ import annotations

import gc
import random
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import trio
from bench_contexts import CM, trivial
from bench_designs import DESIGNS, returning
from bench_harness import Stats, Table, interleaved, stats_rows
from bench_scenarios import overhead

from trio_parallel_cm import ResourceGraph

GRAPH_SEED: Final = 11
MAX_DEPS: Final = 3

Shape = Callable[[int], list[tuple[int, ...]]]


def flat(n: int) -> list[tuple[int, ...]]:
    """No edges."""
    return [() for _ in range(n)]


def chain(n: int) -> list[tuple[int, ...]]:
    """Each node needs the one before."""
    return [() if i == 0 else (i - 1,) for i in range(n)]


def random_dag(n: int) -> list[tuple[int, ...]]:
    """Each node needs up to three random earlier nodes (seeded)."""
    rng = random.Random(GRAPH_SEED)
    return [tuple(sorted(rng.sample(range(i), min(i, rng.randint(0, MAX_DEPS))))) for i in range(n)]


SHAPES: Final[dict[str, Shape]] = {"no edges": flat, "chain": chain, "random": random_dag}


def build(cms: Sequence[CM], deps: Sequence[tuple[int, ...]]) -> ResourceGraph:
    graph = ResourceGraph()
    nodes: list[Any] = []
    for cm, node_deps in zip(cms, deps, strict=True):
        nodes.append(graph.add(returning(cm), *(nodes[d] for d in node_deps), name="cm"))
    return graph


async def _timed(cms: Sequence[CM], deps: Sequence[tuple[int, ...]], collect: bool) -> float:
    graph = build(cms, deps)  # building is not timed: it is the user's code
    gc.collect()
    if not collect:
        gc.disable()
    try:
        start = time.perf_counter()
        async with graph:
            pass
        return time.perf_counter() - start
    finally:
        gc.enable()


#: The shapes' numbers with the garbage collector on, and off.
GC_MODES: Final = {"gc on": True, "gc off": False}


def shapes(sizes: Sequence[int], repeats: int) -> dict[int, dict[str, dict[str, Stats]]]:
    """µs per node, by N, collector mode (``GC_MODES``) and shape."""
    results: dict[int, dict[str, dict[str, Stats]]] = {}
    for n in sizes:
        cms = trivial(n)
        graphs: Mapping[str, tuple[list[tuple[int, ...]], bool]] = {
            f"{name}/{mode}": (shape(n), collect)
            for name, shape in SHAPES.items()
            for mode, collect in GC_MODES.items()
        }

        def run_once(graph: tuple[list[tuple[int, ...]], bool], cms: list[CM] = cms) -> float:
            return trio.run(_timed, cms, *graph)

        samples = interleaved(graphs, run_once, repeats)
        results[n] = {
            mode: {name: Stats.of(samples[f"{name}/{mode}"]).scaled(1e6 / n) for name in SHAPES}
            for mode in GC_MODES
        }
    return results


GRAPH_DESIGNS: Final = ("AsyncExitStack", "parallel_with", "ResourceGraph", "bare mechanism")


def main() -> None:
    """The graph section of docs/benchmarks.rst: one run, every ratio from it."""
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 9
    designs = {name: DESIGNS[name] for name in GRAPH_DESIGNS}
    for n, stats in overhead((10, 100, 1000, 10000), 10000, repeats, designs).items():
        title = f"ResourceGraph without edges, N = {n}: µs per context manager ({repeats} repeats)"
        print(
            Table(
                title,
                ("implementation", "median µs/cm", "min", "max", "ratio"),
                stats_rows(stats, "AsyncExitStack"),
            ).render(),
            "\n",
            flush=True,
        )
    sizes = (100, 1000, 10000)
    print(shapes_table(shapes(sizes, repeats), sizes, repeats).render())


def shapes_table(
    graphs: Mapping[int, Mapping[str, Mapping[str, Stats]]], sizes: Sequence[int], repeats: int
) -> Table:
    """µs per node by shape and N, collector on and off, and the growth of each."""
    rows: list[tuple[str, ...]] = []
    for shape in SHAPES:
        for mode in GC_MODES:
            cells = [f"{graphs[n][mode][shape].median:.2f}" for n in sizes]
            growth = graphs[sizes[-1]][mode][shape].median / graphs[sizes[0]][mode][shape].median
            rows.append((shape, mode, *cells, f"{growth:.2f}"))
    title = (
        f"ResourceGraph shapes: µs per node, enter and exit (medians of {repeats}); "
        f"growth = N {sizes[-1]} / N {sizes[0]}"
    )
    return Table(title, ("shape", "collector", *(f"N = {n}" for n in sizes), "growth"), tuple(rows))


if __name__ == "__main__":
    main()
