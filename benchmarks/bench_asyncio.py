"""On asyncio: ``aiotools.actxgroup``, the bare holder mechanism and ``parallel_with`` (its
asyncio runtime) against asyncio's own ``AsyncExitStack``.

``aiotools.actxgroup`` gathers every ``__aenter__`` with ``asyncio.gather`` (one task each),
then every ``__aexit__`` likewise: the split-task recipe, on asyncio.  The bare holder
mechanism is a task per context manager on raw asyncio, a future to tell its start and a
future to park it: no guarantee beyond tasks of their own, the floor issue 18 measures
``parallel_with`` against.  Each timed region runs in a fresh ``asyncio.run`` after a
``gc.collect()``.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from functools import partial
from types import TracebackType
from typing import Final, cast

import aiotools
from bench_contexts import CM
from bench_designs import Design, ExitStackDesign
from bench_harness import Stats, interleaved
from bench_scenarios import rounds_for

from trio_parallel_cm import parallel_with

BASELINE: Final = "AsyncExitStack (asyncio)"


class AsyncioTrivialCM:
    """An async context manager that yields to the event loop once entering and once exiting."""

    __slots__ = ()

    async def __aenter__(self) -> None:
        await asyncio.sleep(0)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.sleep(0)


class AsyncioSleepCM:
    """An async context manager whose enter and exit each sleep for a given time."""

    __slots__ = ("enter_s", "exit_s")

    def __init__(self, enter_s: float, exit_s: float) -> None:
        self.enter_s = enter_s
        self.exit_s = exit_s

    async def __aenter__(self) -> None:
        await asyncio.sleep(self.enter_s)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.sleep(self.exit_s)


def actxgroup(cms: Sequence[CM]) -> AbstractAsyncContextManager[object]:
    """``aiotools.actxgroup(cms)``."""
    # Its ``__aexit__(*exc_info)`` is annotated oddly, but it is an async context manager.
    return cast(AbstractAsyncContextManager[object], aiotools.actxgroup(cms))


class BareHolders:
    """The bare holder mechanism on raw asyncio (see the module's notes)."""

    __slots__ = ("_cms", "_release", "_tasks")

    def __init__(self, cms: Sequence[CM]) -> None:
        self._cms = cms
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> None:
        loop = asyncio.get_running_loop()
        self._release: asyncio.Future[None] = loop.create_future()
        starts = [loop.create_future() for _ in self._cms]
        self._tasks = [
            loop.create_task(self._hold(cm, started))
            for cm, started in zip(self._cms, starts, strict=True)
        ]
        await asyncio.gather(*starts)

    async def _hold(self, cm: CM, started: asyncio.Future[None]) -> None:
        await cm.__aenter__()
        started.set_result(None)
        await self._release
        await cm.__aexit__(None, None, None)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._release.set_result(None)
        await asyncio.gather(*self._tasks)


def ours(cms: Sequence[CM]) -> AbstractAsyncContextManager[object]:
    """``parallel_with(*cms)`` on the asyncio runtime."""
    return parallel_with(*cms)


DESIGNS: Final[dict[str, Design]] = {
    BASELINE: ExitStackDesign,
    "aiotools.actxgroup": actxgroup,
    "bare holders (raw asyncio)": BareHolders,
    "parallel_with (asyncio)": ours,
}


async def _timed(design: Design, cms: Sequence[CM], rounds: int) -> float:
    gc.collect()
    start = time.perf_counter()
    for _ in range(rounds):
        async with design(cms):
            pass
    return (time.perf_counter() - start) / rounds


def time_once(design: Design, cms: Sequence[CM], rounds: int = 1) -> float:
    """Seconds per enter+exit, averaged over ``rounds`` in one fresh ``asyncio.run``."""
    return asyncio.run(_timed(design, cms, rounds))


def overhead(sizes: Sequence[int], work: int, repeats: int) -> dict[int, dict[str, Stats]]:
    """µs per trivial context manager on asyncio, by N and design (``work`` cms a sample)."""
    results: dict[int, dict[str, Stats]] = {}
    for n in sizes:
        cms: list[CM] = [AsyncioTrivialCM() for _ in range(n)]
        run_once = partial(time_once, cms=cms, rounds=rounds_for(n, work))
        samples = interleaved(DESIGNS, run_once, repeats)
        results[n] = {name: Stats.of(s).scaled(1e6 / n) for name, s in samples.items()}
    return results


def latency(
    n: int, enter_s: float, exit_s: float, repeats: int, designs: Mapping[str, Design] = DESIGNS
) -> dict[str, Stats]:
    """Wall ms on asyncio for ``n`` context managers sleeping ``enter_s`` and ``exit_s``."""
    cms: list[CM] = [AsyncioSleepCM(enter_s, exit_s) for _ in range(n)]
    samples = interleaved(designs, partial(time_once, cms=cms), repeats)
    return {name: Stats.of(s).scaled(1e3) for name, s in samples.items()}
