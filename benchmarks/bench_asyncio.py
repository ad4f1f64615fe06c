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
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from functools import partial
from types import TracebackType
from typing import Final, cast

import aiotools
import anyio
import anyio.abc
import uvloop
from bench_contexts import CM
from bench_designs import Design, ExitStackDesign
from bench_harness import Stats, interleaved
from bench_scenarios import Memory, rounds_for, traced

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


@asynccontextmanager
async def gathered(cms: Sequence[CM]) -> AsyncGenerator[object, None]:
    """What users write: ``asyncio.gather`` of ``enter_async_context`` calls on an
    ``AsyncExitStack``, which exits them later in the caller's task.  It breaks the
    guarantees (docs/alternatives.rst): each ``__aenter__`` runs in a task of ``gather``
    that has ended by the time ``__aexit__`` runs in another, a failing enter leaves the
    others entering, and the exits are one after another."""
    async with AsyncExitStack() as stack:
        yield await asyncio.gather(*(stack.enter_async_context(cm) for cm in cms))


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


async def _anyio_hold(
    cm: CM, release: anyio.Event, *, task_status: anyio.abc.TaskStatus[None]
) -> None:
    with anyio.CancelScope(shield=True):
        await cm.__aenter__()
        task_status.started()
        await release.wait()
        await cm.__aexit__(None, None, None)


@asynccontextmanager
async def anyio_holders(cms: Sequence[CM]) -> AsyncGenerator[object, None]:
    """The bare holder mechanism on anyio's ``TaskGroup.start``: a starter task per
    context manager awaiting ``holders.start``, a shielded holder, an ``anyio.Event`` to
    park (what the issue measured: 76, 63 and 96 µs per context manager)."""
    release = anyio.Event()
    async with anyio.create_task_group() as holders:
        async with anyio.create_task_group() as starters:
            for cm in cms:
                starters.start_soon(holders.start, _anyio_hold, cm, release)
        yield None
        release.set()


def ours(cms: Sequence[CM]) -> AbstractAsyncContextManager[object]:
    """``parallel_with(*cms)`` on the asyncio runtime."""
    return parallel_with(*cms)


OURS: Final = "parallel_with (asyncio)"
RAW: Final = "bare holders (raw asyncio)"
DESIGNS: Final[dict[str, Design]] = {
    BASELINE: ExitStackDesign,
    "asyncio.gather of enters": gathered,
    "aiotools.actxgroup": actxgroup,
    "bare holders (anyio start)": anyio_holders,
    RAW: BareHolders,
    OURS: ours,
}
#: The event loops: asyncio's own, and uvloop.
LOOPS: Final[dict[str, Callable[[], asyncio.AbstractEventLoop] | None]] = {
    "asyncio": None,
    "uvloop": uvloop.new_event_loop,
}


async def _timed(design: Design, cms: Sequence[CM], rounds: int) -> float:
    gc.collect()
    start = time.perf_counter()
    for _ in range(rounds):
        async with design(cms):
            pass
    return (time.perf_counter() - start) / rounds


def time_once(design: Design, cms: Sequence[CM], rounds: int = 1, loop: str = "asyncio") -> float:
    """Seconds per enter+exit, averaged over ``rounds`` in one fresh ``asyncio.run``."""
    with asyncio.Runner(loop_factory=LOOPS[loop]) as runner:
        return runner.run(_timed(design, cms, rounds))


def overhead(
    sizes: Sequence[int], work: int, repeats: int, loop: str = "asyncio"
) -> dict[int, dict[str, Stats]]:
    """µs per trivial context manager on ``loop``, by N and design (``work`` cms a sample)."""
    results: dict[int, dict[str, Stats]] = {}
    for n in sizes:
        cms: list[CM] = [AsyncioTrivialCM() for _ in range(n)]
        run_once = partial(time_once, cms=cms, rounds=rounds_for(n, work), loop=loop)
        samples = interleaved(DESIGNS, run_once, repeats)
        results[n] = {name: Stats.of(s).scaled(1e6 / n) for name, s in samples.items()}
    return results


def latency(
    n: int,
    enter_s: float,
    exit_s: float,
    repeats: int,
    designs: Mapping[str, Design] = DESIGNS,
    loop: str = "asyncio",
) -> dict[str, Stats]:
    """Wall ms on ``loop`` for ``n`` context managers sleeping ``enter_s`` and ``exit_s``."""
    cms: list[CM] = [AsyncioSleepCM(enter_s, exit_s) for _ in range(n)]
    samples = interleaved(designs, partial(time_once, cms=cms, loop=loop), repeats)
    return {name: Stats.of(s).scaled(1e3) for name, s in samples.items()}


#: The designs whose memory is measured: ours and the floor.
MEMORY_DESIGNS: Final = (RAW, OURS)


def memory(n: int, repeats: int) -> dict[str, Memory]:
    """Bytes held per open context manager on asyncio, and the peak, at N = ``n``."""
    cms: list[CM] = [AsyncioTrivialCM() for _ in range(n)]
    held: dict[str, list[float]] = {name: [] for name in MEMORY_DESIGNS}
    peak: dict[str, list[float]] = {name: [] for name in MEMORY_DESIGNS}

    def run_once(name: str) -> float:
        h, p = asyncio.run(traced(DESIGNS[name], cms))
        held[name].append(h)
        peak[name].append(p)
        return p

    interleaved({name: name for name in MEMORY_DESIGNS}, run_once, repeats, warmup=False)
    return {name: Memory(Stats.of(held[name]), Stats.of(peak[name])) for name in MEMORY_DESIGNS}
