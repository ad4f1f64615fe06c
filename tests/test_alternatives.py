"""What the alternatives to ``parallel_with`` do, case by case (``docs/alternatives.rst``).

Each test states one cell of that table.  The Trio ones run on the virtual clock and share
one scenario per row, run through each approach:

* ``exit_stack``: ``contextlib.AsyncExitStack``, entering one after another;
* ``gather_recipe``: the hand-written recipe, ``__aenter__`` gathered in child tasks of a
  nursery and ``__aexit__`` run later by the ``AsyncExitStack`` in the caller's task;
* ``context_group``: anyio-contextgroup on anyio's Trio backend (it needs Python >= 3.12,
  so these tests are skipped on older Pythons);
* ``parallel``: ``parallel_with``.

``aiotools.actxgroup`` calls ``asyncio.gather``, so it runs on asyncio only: its tests run
it under ``asyncio.run``, with an ``asyncio.TaskGroup`` where the others have a nursery.
tractor's ``gather_contexts`` cannot be installed from PyPI (its metadata has a direct URL
dependency), so the docs cite its source instead of a test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from types import ModuleType, TracebackType
from typing import Any, cast

import aiotools
import pytest
import trio
import trio.testing

from tests.fakes import FakeCM, Log, crashes_while_open, events, members, notes, time_of
from trio_parallel_cm import parallel_with

CMs = Sequence[AbstractAsyncContextManager[Any]]
Approach = Callable[[CMs], AbstractAsyncContextManager[list[Any]]]


# ---- the approaches ---------------------------------------------------------------------


@asynccontextmanager
async def exit_stack(cms: CMs) -> AsyncGenerator[list[Any], None]:
    """``contextlib.AsyncExitStack``: one after another, all in the caller's task."""
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(cm) for cm in cms]


@asynccontextmanager
async def gather_recipe(cms: CMs) -> AsyncGenerator[list[Any], None]:
    """The hand-written recipe: ``__aenter__`` gathered in child tasks, ``__aexit__`` in ours.

    The Trio spelling of ``asyncio.gather(*(stack.enter_async_context(cm) for cm in cms))``.
    """
    async with AsyncExitStack() as stack:
        values: list[Any] = [None] * len(cms)

        async def enter(i: int, cm: AbstractAsyncContextManager[Any]) -> None:
            values[i] = await stack.enter_async_context(cm)

        async with trio.open_nursery() as nursery:
            for i, cm in enumerate(cms):
                nursery.start_soon(enter, i, cm)
        yield values


def context_group(module: ModuleType) -> Approach:
    """anyio-contextgroup: ``enter_async_context`` enters one, so we call it from one task each."""

    @asynccontextmanager
    async def approach(cms: CMs) -> AsyncGenerator[list[Any], None]:
        async with module.create_context_group() as group:
            values: list[Any] = [None] * len(cms)

            async def enter(i: int, cm: AbstractAsyncContextManager[Any]) -> None:
                values[i] = await group.enter_async_context(context=cm)

            async with trio.open_nursery() as nursery:
                for i, cm in enumerate(cms):
                    nursery.start_soon(enter, i, cm)
            yield values

    return approach


@asynccontextmanager
async def parallel(cms: CMs) -> AsyncGenerator[list[Any], None]:
    """``parallel_with``."""
    async with parallel_with(*cms) as values:
        yield list(values)


@pytest.fixture
def contextgroup() -> Approach:
    """The anyio-contextgroup approach; the test is skipped where it cannot be installed."""
    # anyio-contextgroup 2026.4.14.0 requires Python >= 3.12 (PEP 695 syntax).
    return context_group(pytest.importorskip("anyio_contextgroup"))


def is_stack_corruption(exc: BaseException) -> bool:
    """Trio's error for a nursery or cancel scope exited in another task than it was entered.

    The wording changed across Trio versions ("Cancel scope stack corrupted", "Nursery
    stack corrupted").
    """
    return isinstance(exc, RuntimeError) and "stack corrupted" in str(exc)


# ---- concurrency ------------------------------------------------------------------------


class Latencies:
    """Three context managers taking 1, 2 and 3 s to enter, and as long to exit."""

    def __init__(self) -> None:
        self.log: Log = []
        self.cms = [
            FakeCM(n, self.log, enter_delay=d, exit_delay=d)
            for n, d in [("a", 1), ("b", 2), ("c", 3)]
        ]
        self.body_started = -1.0

    async def run(self, approach: Approach) -> float:
        """Returns when the block ended; the body starts at ``body_started``."""
        async with approach(self.cms):
            self.body_started = trio.current_time()
        return trio.current_time()


async def test_exit_stack_enters_and_exits_one_after_another(
    autojump_clock: trio.testing.MockClock,
) -> None:
    scenario = Latencies()
    ended = await scenario.run(exit_stack)
    assert scenario.body_started == 1 + 2 + 3
    assert ended == 2 * (1 + 2 + 3)


async def test_gather_recipe_enters_concurrently_but_exits_one_after_another(
    autojump_clock: trio.testing.MockClock,
) -> None:
    scenario = Latencies()
    ended = await scenario.run(gather_recipe)
    assert scenario.body_started == 3
    assert ended == 3 + (1 + 2 + 3)


async def test_context_group_enters_and_exits_concurrently(
    autojump_clock: trio.testing.MockClock, contextgroup: Approach
) -> None:
    scenario = Latencies()
    ended = await scenario.run(contextgroup)
    assert scenario.body_started == 3
    assert ended == 3 + 3


async def test_parallel_with_enters_and_exits_concurrently(
    autojump_clock: trio.testing.MockClock,
) -> None:
    scenario = Latencies()
    ended = await scenario.run(parallel)
    assert scenario.body_started == 3
    assert ended == 3 + 3


# ---- an enter failure -------------------------------------------------------------------


class EnterFailure:
    """``a`` enters in 1 s, ``b`` fails to enter at 2 s, ``c`` would take 3 s."""

    def __init__(self) -> None:
        self.log: Log = []
        self.error = ConnectionRefusedError("b refused")
        self.a = FakeCM("a", self.log, enter_delay=1, exit_delay=1)
        self.b = FakeCM("b", self.log, enter_delay=2, enter_error=self.error)
        self.c = FakeCM("c", self.log, enter_delay=3)
        self.body_ran = False

    async def run(self, approach: Approach) -> None:
        async with approach([self.a, self.b, self.c]):
            self.body_ran = True  # pragma: no cover


async def test_exit_stack_enter_failure_is_nested_async_with(
    autojump_clock: trio.testing.MockClock,
) -> None:
    scenario = EnterFailure()
    with pytest.raises(ConnectionRefusedError) as caught:
        await scenario.run(exit_stack)
    assert caught.value is scenario.error
    assert not scenario.body_ran
    assert scenario.c.enter_task is None  # never started: b failed first
    assert scenario.a.seen is scenario.error
    assert not scenario.a.exit_cancelled
    assert trio.current_time() == 1 + 2 + 1


async def test_gather_recipe_enter_failure_cancels_the_others_and_exits_with_a_group(
    autojump_clock: trio.testing.MockClock,
) -> None:
    scenario = EnterFailure()
    with pytest.RaisesGroup(ConnectionRefusedError):
        await scenario.run(gather_recipe)
    assert not scenario.body_ran
    assert ("c", "enter cancelled") in events(scenario.log)
    # a's __aexit__ receives the nursery's group, not the failure itself; not cancelled.
    assert members(scenario.a.seen) == [scenario.error]
    assert not scenario.a.exit_cancelled


async def test_context_group_enter_failure_cancels_the_cleanup_of_the_others(
    autojump_clock: trio.testing.MockClock, contextgroup: Approach
) -> None:
    scenario = EnterFailure()
    with pytest.RaisesGroup(pytest.RaisesGroup(ConnectionRefusedError)):
        await scenario.run(contextgroup)
    assert not scenario.body_ran
    assert ("c", "enter cancelled") in events(scenario.log)
    # a's __aexit__ receives no exception at all, and its cleanup is cancelled.
    assert scenario.a.exited == 1
    assert scenario.a.seen is None
    assert scenario.a.exit_cancelled


async def test_parallel_with_enter_failure_reaches_the_others_uncancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    scenario = EnterFailure()
    with pytest.RaisesGroup(
        pytest.RaisesExc(
            ConnectionRefusedError,
            check=lambda e: notes(e) == ["FakeCM (position 1) failed while entering"],
        )
    ):
        await scenario.run(parallel)
    assert not scenario.body_ran
    assert ("c", "enter cancelled") in events(scenario.log)
    assert scenario.a.seen is scenario.error
    assert not scenario.a.exit_cancelled
    assert trio.current_time() == 2 + 1


# ---- a failure while open ---------------------------------------------------------------


class FailureWhileOpen:
    """``a`` is open; ``w``'s background task (in its own nursery) crashes at 2 s."""

    def __init__(self) -> None:
        self.log: Log = []
        self.error = OSError("w lost its connection")
        self.a = FakeCM("a", self.log, exit_delay=1)
        self.w = crashes_while_open(self.log, "w", after=2, error=self.error)
        self.body_cancelled_at: float | None = None

    async def run(self, approach: Approach) -> None:
        async with approach([self.a, self.w]):
            try:
                await trio.sleep(10)
            except trio.Cancelled:
                self.body_cancelled_at = trio.current_time()
                raise

    def a_saw_the_failure(self) -> bool:
        """Whether ``a``'s ``__aexit__`` received w's failure (the group of w's nursery)."""
        return members(self.a.seen) == [self.error]


async def test_exit_stack_failure_while_open_is_nested_async_with(
    autojump_clock: trio.testing.MockClock,
) -> None:
    scenario = FailureWhileOpen()
    with pytest.RaisesGroup(OSError):
        await scenario.run(exit_stack)
    assert scenario.body_cancelled_at == 2
    assert scenario.a_saw_the_failure()
    assert not scenario.a.exit_cancelled


async def test_gather_recipe_corrupts_a_context_manager_that_owns_a_nursery(
    autojump_clock: trio.testing.MockClock,
) -> None:
    scenario = FailureWhileOpen()
    with pytest.RaisesGroup(
        pytest.RaisesExc(RuntimeError, check=is_stack_corruption),
        flatten_subgroups=True,
        allow_unwrapped=True,
    ):
        await scenario.run(gather_recipe)
    assert scenario.body_cancelled_at is None


async def test_context_group_failure_while_open_cancels_the_cleanup_of_the_others(
    autojump_clock: trio.testing.MockClock, contextgroup: Approach
) -> None:
    scenario = FailureWhileOpen()
    with pytest.RaisesGroup(pytest.RaisesGroup(OSError)):
        await scenario.run(contextgroup)
    assert scenario.body_cancelled_at == 2
    assert isinstance(scenario.a.seen, trio.Cancelled)
    assert scenario.a.exit_cancelled


async def test_parallel_with_failure_while_open_reaches_the_others_uncancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    scenario = FailureWhileOpen()
    with pytest.RaisesGroup(
        pytest.RaisesGroup(
            OSError,
            check=lambda e: notes(e) == ["crashes_while_open (position 1) failed while open"],
        )
    ):
        await scenario.run(parallel)
    assert scenario.body_cancelled_at == 2
    assert scenario.a_saw_the_failure()
    assert not scenario.a.exit_cancelled


# ---- the body's exception ---------------------------------------------------------------


class BodyException:
    """The body raises; ``a`` (entered first) suppresses what it receives, ``b`` does not.

    Both take 1 s to exit.
    """

    def __init__(self) -> None:
        self.log: Log = []
        self.error = KeyError("body")
        self.a = FakeCM("a", self.log, enter_delay=1, exit_delay=1, suppress=True)
        self.b = FakeCM("b", self.log, enter_delay=2, exit_delay=1)
        self.after_block = False

    async def run(self, approach: Approach) -> None:
        async with approach([self.a, self.b]):
            await self.body()
        self.after_block = True

    async def body(self) -> None:
        raise self.error


async def test_exit_stack_body_exception_is_nested_async_with(
    autojump_clock: trio.testing.MockClock,
) -> None:
    scenario = BodyException()
    await scenario.run(exit_stack)
    assert scenario.after_block  # suppressed by a
    assert scenario.a.seen is scenario.error
    assert scenario.b.seen is scenario.error
    assert not scenario.a.exit_cancelled and not scenario.b.exit_cancelled
    assert time_of(scenario.log, "a", "exit") == time_of(scenario.log, "b", "exited")


async def test_gather_recipe_body_exception_is_nested_async_with(
    autojump_clock: trio.testing.MockClock,
) -> None:
    scenario = BodyException()
    await scenario.run(gather_recipe)
    assert scenario.after_block  # suppressed by a
    assert scenario.a.seen is scenario.error
    assert scenario.b.seen is scenario.error
    assert not scenario.a.exit_cancelled and not scenario.b.exit_cancelled
    assert time_of(scenario.log, "a", "exit") == time_of(scenario.log, "b", "exited")


async def test_context_group_body_exception_reaches_no_exit_and_cancels_cleanup(
    autojump_clock: trio.testing.MockClock, contextgroup: Approach
) -> None:
    scenario = BodyException()
    with pytest.RaisesGroup(KeyError):
        await scenario.run(contextgroup)
    assert not scenario.after_block  # a could not suppress it: it never saw it
    assert scenario.a.seen is None and scenario.b.seen is None
    assert scenario.a.exit_cancelled and scenario.b.exit_cancelled


async def test_parallel_with_body_exception_reaches_every_exit_concurrently(
    autojump_clock: trio.testing.MockClock,
) -> None:
    scenario = BodyException()
    await scenario.run(parallel)
    assert scenario.after_block  # suppressed by a
    assert scenario.a.seen is scenario.error
    assert scenario.b.seen is scenario.error
    assert not scenario.a.exit_cancelled and not scenario.b.exit_cancelled
    assert time_of(scenario.log, "a", "exit") == time_of(scenario.log, "b", "exit")


# ---- an outer cancellation --------------------------------------------------------------


class OuterCancellation:
    """The caller is cancelled at 2 s; the body then cleans up, shielded, for 2 s more."""

    def __init__(self) -> None:
        self.log: Log = []
        self.a = FakeCM("a", self.log, enter_delay=1)
        self.body_done_at = -1.0

    async def run(self, approach: Approach) -> None:
        with trio.move_on_after(2):
            async with approach([self.a]):
                try:
                    await trio.sleep_forever()
                finally:
                    with trio.CancelScope(shield=True):
                        await trio.sleep(2)
                    self.body_done_at = trio.current_time()

    def exit_started_at(self) -> float:
        return time_of(self.log, "a", "exit")


async def test_exit_stack_outer_cancellation_exits_after_the_body(
    autojump_clock: trio.testing.MockClock,
) -> None:
    scenario = OuterCancellation()
    await scenario.run(exit_stack)
    assert scenario.exit_started_at() == scenario.body_done_at == 4
    assert isinstance(scenario.a.seen, trio.Cancelled)


async def test_gather_recipe_outer_cancellation_exits_after_the_body(
    autojump_clock: trio.testing.MockClock,
) -> None:
    scenario = OuterCancellation()
    await scenario.run(gather_recipe)
    assert scenario.exit_started_at() == scenario.body_done_at == 4
    assert isinstance(scenario.a.seen, trio.Cancelled)


async def test_context_group_outer_cancellation_exits_while_the_body_still_runs(
    autojump_clock: trio.testing.MockClock, contextgroup: Approach
) -> None:
    scenario = OuterCancellation()
    await scenario.run(contextgroup)
    assert scenario.exit_started_at() == 2
    assert scenario.body_done_at == 4


async def test_parallel_with_outer_cancellation_exits_after_the_body(
    autojump_clock: trio.testing.MockClock,
) -> None:
    scenario = OuterCancellation()
    await scenario.run(parallel)
    assert scenario.exit_started_at() == scenario.body_done_at == 4
    assert isinstance(scenario.a.seen, trio.Cancelled)


# ---- a context manager that owns a nursery (or a lock) ----------------------------------


class OwnsANursery:
    """A nursery and a lock: both must be exited by the task that entered them."""

    def __init__(self) -> None:
        self.lock = trio.Lock()
        self.finished: list[str] = []

    async def run(self, approach: Approach) -> None:
        async with approach([trio.open_nursery(), self.lock]) as (nursery, _):
            assert self.lock.locked()
            nursery.start_soon(self.background)

    async def background(self) -> None:
        await trio.sleep(1)
        self.finished.append("background")


async def test_exit_stack_works_with_a_nursery_and_a_lock(
    autojump_clock: trio.testing.MockClock,
) -> None:
    scenario = OwnsANursery()
    await scenario.run(exit_stack)
    assert scenario.finished == ["background"]
    assert not scenario.lock.locked()


async def test_gather_recipe_breaks_a_nursery(autojump_clock: trio.testing.MockClock) -> None:
    body_ran = False
    with pytest.RaisesGroup(
        pytest.RaisesExc(RuntimeError, check=is_stack_corruption), flatten_subgroups=True
    ):
        async with gather_recipe([trio.open_nursery()]):
            body_ran = True  # pragma: no cover
    assert not body_ran


async def test_gather_recipe_releases_a_lock_from_the_wrong_task(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lock = trio.Lock()
    with pytest.raises(RuntimeError, match="can't release a Lock you don't own"):
        async with gather_recipe([lock]):
            pass


async def test_context_group_works_with_a_nursery_and_a_lock(
    autojump_clock: trio.testing.MockClock, contextgroup: Approach
) -> None:
    scenario = OwnsANursery()
    await scenario.run(contextgroup)
    assert scenario.finished == ["background"]
    assert not scenario.lock.locked()


async def test_parallel_with_works_with_a_nursery_and_a_lock(
    autojump_clock: trio.testing.MockClock,
) -> None:
    scenario = OwnsANursery()
    await scenario.run(parallel)
    assert scenario.finished == ["background"]
    assert not scenario.lock.locked()


# ---- aiotools.actxgroup, on asyncio -----------------------------------------------------


class AsyncioCM:
    """A scriptable asyncio context manager that records what happened to it."""

    def __init__(
        self,
        *,
        enter_error: BaseException | None = None,
        exit_error: BaseException | None = None,
        suppress: bool = False,
        gate: asyncio.Event | None = None,
        exit_gate: asyncio.Event | None = None,
    ) -> None:
        self.enter_error = enter_error
        self.exit_error = exit_error
        self.suppress = suppress
        self.gate = gate
        self.exit_gate = exit_gate
        self.entering = asyncio.Event()
        self.exiting = asyncio.Event()
        self.entered = 0
        self.has_entered = asyncio.Event()
        self.exited = 0
        self.seen: BaseException | None = None
        self.enter_task: asyncio.Task[Any] | None = None
        self.exit_task: asyncio.Task[Any] | None = None

    async def __aenter__(self) -> str:
        self.enter_task = asyncio.current_task()
        self.entering.set()
        if self.gate is not None:
            await self.gate.wait()
        await asyncio.sleep(0)
        if self.enter_error is not None:
            raise self.enter_error
        self.entered += 1
        self.has_entered.set()
        return "value"

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        self.exit_task = asyncio.current_task()
        self.exiting.set()
        self.exited += 1
        self.seen = exc
        if self.exit_gate is not None:
            await self.exit_gate.wait()
        await asyncio.sleep(0)
        if self.exit_error is not None:
            raise self.exit_error
        return self.suppress


def exit_states(group: aiotools.AsyncContextGroup) -> list[object]:
    """``group.exit_states()`` (untyped in aiotools 1.9, the release for Python 3.10)."""
    return cast("Callable[[], list[object]]", group.exit_states)()


def run_asyncio(main: Callable[[], Any]) -> None:
    """``asyncio.run(main())`` in a fresh event loop, outside of Trio."""
    asyncio.run(main())


def test_aiotools_enters_and_exits_concurrently() -> None:
    # Each of a and b waits, in __aenter__ and in __aexit__, until the other has started
    # it: done one after another, this would never finish.
    a = AsyncioCM()
    b = AsyncioCM(gate=a.entering, exit_gate=a.exiting)
    a.gate, a.exit_gate = b.entering, b.exiting

    async def block() -> None:
        async with aiotools.actxgroup([a, b]):
            pass

    async def main() -> None:
        await asyncio.wait_for(block(), timeout=30)  # fail, rather than hang, if sequential

    run_asyncio(main)
    assert (a.exited, b.exited) == (1, 1)


def test_aiotools_enter_failure_runs_the_body_with_the_exception_as_a_value() -> None:
    error = ConnectionRefusedError("b refused")
    a, b = AsyncioCM(), AsyncioCM(enter_error=error)
    seen_values: list[Any] = []

    async def main() -> None:
        async with aiotools.actxgroup([a, b]) as values:
            seen_values.extend(values)

    run_asyncio(main)  # nothing raised
    assert seen_values == ["value", error]
    assert a.exited == 1
    assert b.exited == 1  # __aexit__ although __aenter__ raised


def test_aiotools_exit_failures_are_kept_not_raised() -> None:
    error = OSError("close failed")
    a = AsyncioCM(exit_error=error)
    group = aiotools.actxgroup([a])

    async def main() -> None:
        async with group:
            pass

    run_asyncio(main)  # nothing raised
    assert exit_states(group) == [error]


def test_aiotools_failure_while_open_does_not_cancel_the_body(
    caplog: pytest.LogCaptureFixture,
) -> None:
    error = OSError("w lost its connection")
    body: list[str] = []

    @asynccontextmanager
    async def owns_a_task_group(crash: asyncio.Event) -> AsyncGenerator[None, None]:
        async def background() -> None:
            await crash.wait()
            raise error

        async with asyncio.TaskGroup() as group:  # entered in one task, exited in another
            group.create_task(background())
            yield

    crash = asyncio.Event()
    cms = aiotools.AsyncContextGroup([owns_a_task_group(crash)])

    async def main() -> None:
        async with cms:
            crash.set()
            for _ in range(10):
                await asyncio.sleep(0)  # the body goes on: it is never cancelled
            body.append("finished")

    run_asyncio(main)  # nothing raised
    assert body == ["finished"]
    [state] = exit_states(cms)
    assert isinstance(state, BaseException)
    assert members(state) == [error]
    assert "is already completed" in caplog.text  # asyncio could not cancel the parent


def test_aiotools_body_exception_reaches_every_exit_but_cannot_be_suppressed() -> None:
    error = KeyError("body")
    a, b = AsyncioCM(suppress=True), AsyncioCM()

    async def main() -> None:
        async with aiotools.actxgroup([a, b]):
            raise error

    with pytest.raises(KeyError) as caught:
        run_asyncio(main)
    assert caught.value is error
    assert a.seen is error and b.seen is error


def test_aiotools_cancellation_while_entering_leaves_the_entered_open() -> None:
    gate = asyncio.Event()
    a, b = AsyncioCM(), AsyncioCM(gate=gate)

    async def main() -> None:
        async def block() -> None:
            async with aiotools.actxgroup([a, b]):
                pass  # pragma: no cover

        task = asyncio.create_task(block())
        await a.has_entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run_asyncio(main)
    assert a.entered == 1
    assert a.exited == 0  # never exited


def test_aiotools_enters_and_exits_in_different_tasks() -> None:
    a = AsyncioCM()
    body_task: list[asyncio.Task[Any] | None] = []

    async def main() -> None:
        async with aiotools.actxgroup([a]):
            body_task.append(asyncio.current_task())

    run_asyncio(main)
    assert a.enter_task is not None and a.exit_task is not None
    assert a.enter_task is not a.exit_task
    assert body_task[0] not in (a.enter_task, a.exit_task)
