"""The context managers the benchmarks enter: trivial ones, slow ones, and ones that own a scope."""

from __future__ import annotations

import random
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType

import trio

CM = AbstractAsyncContextManager[object]

# The long-tailed latency mix: seeded, so every run and every implementation sees the same.
MIX_SEED = 6
MIX_FAST_S = 0.001  # the typical latency: a fast local resource
MIX_CAP_S = 0.080  # the slowest: a resource behind a slow network


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


class SleepCM:
    """An async context manager whose enter and exit each sleep for a given time."""

    __slots__ = ("enter_s", "exit_s")

    def __init__(self, enter_s: float, exit_s: float) -> None:
        self.enter_s = enter_s
        self.exit_s = exit_s

    async def __aenter__(self) -> None:
        await trio.sleep(self.enter_s)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await trio.sleep(self.exit_s)


def trivial(n: int) -> list[CM]:
    """``n`` trivial context managers."""
    return [TrivialCM() for _ in range(n)]


def sleepers(n: int, enter_s: float, exit_s: float) -> list[CM]:
    """``n`` context managers that each sleep ``enter_s`` entering and ``exit_s`` exiting."""
    return [SleepCM(enter_s, exit_s) for _ in range(n)]


def long_tail(n: int, seed: int = MIX_SEED) -> list[tuple[float, float]]:
    """``n`` seeded (enter, exit) latencies, Pareto-distributed: many fast, a few slow."""
    rng = random.Random(seed)

    def draw() -> float:
        return min(MIX_FAST_S * rng.paretovariate(1.2), MIX_CAP_S)

    return [(draw(), draw()) for _ in range(n)]


def mixed(latencies: Sequence[tuple[float, float]]) -> list[CM]:
    """Context managers with the given (enter, exit) latencies."""
    return [SleepCM(enter_s, exit_s) for enter_s, exit_s in latencies]


SCOPE_DEADLINE_S = 0.005  # the deadline that a scope-owning context manager holds open
SCOPE_BODY_S = 0.02  # how long the body sleeps, outliving that deadline


@asynccontextmanager
async def short_deadline() -> AsyncGenerator[None, None]:
    """Hold ``fail_after(SCOPE_DEADLINE_S)`` across the ``yield``, as a timeout helper does."""
    with trio.fail_after(SCOPE_DEADLINE_S):
        yield


# Context managers that open a nursery or a cancel scope in __aenter__ and close it in
# __aexit__: entering and exiting one in two different tasks breaks Trio's scope nesting.
SCOPE_OWNERS: dict[str, Callable[[], CM]] = {
    "trio.open_nursery()": trio.open_nursery,
    f"fail_after({SCOPE_DEADLINE_S}) across yield": short_deadline,
}
