"""Timing, statistics and tables shared by the benchmark scenarios.

Every timed region runs in a fresh ``trio.run`` (or ``asyncio.run``) after a
``gc.collect()``, on the real clock (``time.perf_counter``); the run's start-up and the
creation of the context managers are not timed.  Implementations are interleaved: each
repeat runs every one of them once, in an order rotated from repeat to repeat, so that a
drift of the machine affects them all alike, after one untimed warm-up round.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

X = TypeVar("X")


@dataclass(frozen=True)
class Stats:
    """The median, min and max of the samples of one implementation."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> Stats:
        return cls(statistics.median(samples), min(samples), max(samples))

    def scaled(self, factor: float) -> Stats:
        return Stats(self.median * factor, self.low * factor, self.high * factor)


def interleaved(
    implementations: Mapping[str, X],
    run_once: Callable[[X], float],
    repeats: int,
    *,
    warmup: bool = True,
) -> dict[str, list[float]]:
    """Run every implementation ``repeats`` times, interleaved; the samples by name.

    Raises ``RuntimeError`` if an implementation produced no number, or one that is not
    finite and positive: the smoke test's only check.
    """
    items = list(implementations.items())
    if warmup:
        for _, implementation in items:
            run_once(implementation)
    samples: dict[str, list[float]] = {name: [] for name, _ in items}
    for repeat in range(repeats):
        for i in range(len(items)):
            name, implementation = items[(repeat + i) % len(items)]
            samples[name].append(run_once(implementation))
    for name, values in samples.items():
        check_numbers(name, values, repeats)
    return samples


def check_numbers(name: str, values: Sequence[float], expected: int) -> None:
    """Raise ``RuntimeError`` unless ``values`` has ``expected`` finite positive numbers."""
    if len(values) != expected or not all(math.isfinite(v) and v > 0 for v in values):
        raise RuntimeError(f"{name} did not produce {expected} positive numbers: {values!r}")


@dataclass(frozen=True)
class Table:
    """A titled table, rendered as a reStructuredText simple table (readable as text too)."""

    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    def render(self) -> str:
        widths = [
            max(len(self.header[i]), *(len(row[i]) for row in self.rows))
            for i in range(len(self.header))
        ]
        numeric = [all(_NUMBER.match(row[i]) for row in self.rows) for i in range(len(widths))]
        rule = "  ".join("=" * w for w in widths)

        def line(cells: Sequence[str]) -> str:
            return "  ".join(
                f"{cell:>{w}}" if right else f"{cell:<{w}}"
                for cell, w, right in zip(cells, widths, numeric, strict=True)
            ).rstrip()

        body = [line(row) for row in self.rows]
        return "\n".join([self.title, "", rule, line(self.header), rule, *body, rule])


# A cell that is a number, maybe with a unit: right-aligned.
_NUMBER = re.compile(r"^(|-|[-+]?[\d.]+(%|x| ms| B)?)$")


def fmt(value: float, digits: int = 2) -> str:
    """A number with a fixed number of decimals."""
    return f"{value:.{digits}f}"


def stats_rows(
    stats: Mapping[str, Stats],
    baseline: str | None,
    digits: int = 2,
) -> tuple[tuple[str, ...], ...]:
    """Rows of name, median, min, max and (if ``baseline``) the ratio of medians."""
    rows: list[tuple[str, ...]] = []
    for name, s in stats.items():
        row = [name, fmt(s.median, digits), fmt(s.low, digits), fmt(s.high, digits)]
        if baseline is not None:
            row.append(fmt(s.median / stats[baseline].median))
        rows.append(tuple(row))
    return tuple(rows)
