"""The ways to enter N async context managers that the benchmarks compare, on Trio.

Each design is a function from a sequence of context managers to one async context manager
that enters them all, so every scenario runs ``async with design(cms):`` and times it.

* ``AsyncExitStack``: ``contextlib.AsyncExitStack``, one after another in the caller's
  task.  The baseline of every ratio.
* ``parallel_with``, ``ParallelExitStack`` (one ``enter_all`` stage) and
  ``ResourceGraph`` (independent nodes): the library.
* ``bare mechanism``: the minimal correct task-per-context-manager design that
  ``parallel_with`` is built on, without its error handling: per context manager a starter
  task awaits ``nursery.start(holder)``; the holder enters inside a cancel scope that it
  shields once entered, calls ``task_status.started()`` and waits for one shared release
  event.
* ``start_soon floor``: plain ``start_soon`` holders, one shared counter and two events.
  Nothing less can give each context manager a task of its own.
* ``split tasks``: the recipe that gathers every ``__aenter__`` in one set of tasks and
  every ``__aexit__`` in another.  Fast, and wrong for any context manager that owns a
  nursery or a cancel scope (see ``check_scope_owners`` in ``bench_scenarios``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType
from typing import Final

import trio
from bench_contexts import CM

from trio_parallel_cm import ParallelExitStack, ResourceGraph, parallel_with

Design = Callable[[Sequence[CM]], AbstractAsyncContextManager[object]]

BASELINE: Final = "AsyncExitStack"
LIMIT: Final = 16  # the ``limit=`` of the mixed-latency scenario


class ExitStackDesign:
    """Enter one after another in the caller's task, with ``contextlib.AsyncExitStack``."""

    __slots__ = ("_cms", "_stack")

    def __init__(self, cms: Sequence[CM]) -> None:
        self._cms = cms
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> list[object]:
        stack = self._stack
        await stack.__aenter__()
        return [await stack.enter_async_context(cm) for cm in self._cms]

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        return await self._stack.__aexit__(exc_type, exc, tb)


def parallel_with_design(limit: int | None = None) -> Design:
    """``parallel_with(*cms)``, with the given ``limit``."""

    def design(cms: Sequence[CM]) -> AbstractAsyncContextManager[object]:
        return parallel_with(*cms, limit=limit)

    return design


def exit_stack_stage_design(limit: int | None = None) -> Design:
    """``ParallelExitStack`` with one ``enter_all`` stage, with the given ``limit``."""

    @asynccontextmanager
    async def design(cms: Sequence[CM]) -> AsyncGenerator[object, None]:
        async with ParallelExitStack() as stack:
            yield await stack.enter_all(*cms, limit=limit)

    return design


def resource_graph_design(cms: Sequence[CM]) -> AbstractAsyncContextManager[object]:
    """A ``ResourceGraph`` of independent nodes, one per context manager."""
    graph = ResourceGraph()
    for cm in cms:
        graph.add(returning(cm), name="cm")
    return graph


def returning(cm: CM) -> Callable[..., CM]:
    """A graph node's factory: ``cm``, whatever its dependencies hold."""
    return lambda *values: cm


async def _bare_holder(
    cm: CM,
    release: trio.Event,
    *,
    task_status: trio.TaskStatus[object] = trio.TASK_STATUS_IGNORED,
) -> None:
    with trio.CancelScope() as scope:
        async with cm as value:
            scope.shield = True
            task_status.started(value)
            await release.wait()


@asynccontextmanager
async def bare_mechanism(cms: Sequence[CM]) -> AsyncGenerator[object, None]:
    """Per cm a starter awaits ``nursery.start(holder)``; the holder shields once entered."""
    values: list[object] = [None] * len(cms)
    release = trio.Event()

    async def starter(holders: trio.Nursery, index: int, cm: CM) -> None:
        values[index] = await holders.start(_bare_holder, cm, release)

    async with trio.open_nursery() as holders:
        async with trio.open_nursery() as entering:
            for index, cm in enumerate(cms):
                entering.start_soon(starter, holders, index, cm)
        try:
            yield values
        finally:
            release.set()


class _Floor:
    """Shared state of the start_soon holders: a count and two events."""

    __slots__ = ("entered", "pending", "release", "values")

    def __init__(self, n: int) -> None:
        self.pending = n
        self.values: list[object] = [None] * n
        self.entered = trio.Event()
        self.release = trio.Event()


async def _floor_holder(cm: CM, index: int, floor: _Floor) -> None:
    async with cm as value:
        floor.values[index] = value
        floor.pending -= 1
        if not floor.pending:
            floor.entered.set()
        await floor.release.wait()


@asynccontextmanager
async def start_soon_floor(cms: Sequence[CM]) -> AsyncGenerator[object, None]:
    """Plain ``start_soon`` holders; one event for "all entered", one for "release"."""
    floor = _Floor(len(cms))
    async with trio.open_nursery() as nursery:
        for index, cm in enumerate(cms):
            nursery.start_soon(_floor_holder, cm, index, floor)
        if cms:
            await floor.entered.wait()
        try:
            yield floor.values
        finally:
            floor.release.set()


@asynccontextmanager
async def split_tasks(cms: Sequence[CM]) -> AsyncGenerator[object, None]:
    """Gather every ``__aenter__`` in one set of tasks, then every ``__aexit__`` in another."""
    values: list[object] = [None] * len(cms)

    async def enter(index: int, cm: CM) -> None:
        values[index] = await cm.__aenter__()

    async with trio.open_nursery() as entering:
        for index, cm in enumerate(cms):
            entering.start_soon(enter, index, cm)
    try:
        yield values
    finally:
        async with trio.open_nursery() as exiting:
            for cm in cms:
                exiting.start_soon(cm.__aexit__, None, None, None)


# The designs of the overhead and latency scenarios, the baseline first.
DESIGNS: Final[dict[str, Design]] = {
    BASELINE: ExitStackDesign,
    "parallel_with": parallel_with_design(),
    "ParallelExitStack": exit_stack_stage_design(),
    "ResourceGraph": resource_graph_design,
    "bare mechanism": bare_mechanism,
    "start_soon floor": start_soon_floor,
    "split tasks": split_tasks,
}

# The mixed-latency scenario adds the library with ``limit=LIMIT``.
LIMITED_DESIGNS: Final[dict[str, Design]] = {
    f"parallel_with(limit={LIMIT})": parallel_with_design(LIMIT),
    f"ParallelExitStack(limit={LIMIT})": exit_stack_stage_design(LIMIT),
}
