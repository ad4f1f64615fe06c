"""``start_context``: a context manager held open by its own task, behind a handle.

Each test runs on Trio and on asyncio (``tests/runtime.py``), where the nursery is an anyio
task group.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
import trio
import trio.testing

from tests import runtime as rt
from tests.fakes import FakeCM, Log, crashes_then_cleans_up, crashes_while_open, notes
from trio_parallel_cm import ContextHandle, ContextState, start_context

pytestmark = pytest.mark.runtimes


def assert_no_task_left(nursery: Any, tasks_before: int) -> None:
    """Nothing runs in ``nursery`` (Trio: its ``child_tasks``; anywhere: the task count)."""
    if rt.on_trio():
        assert nursery.child_tasks == frozenset()
    assert rt.loop().count_tasks() == tasks_before


async def test_enter_and_exit_run_in_the_holder_task_whoever_closes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    cm = FakeCM("conn", log, exit_delay=1)
    async with rt.open_nursery() as nursery:
        handle = await start_context(nursery, cm)
        assert handle.value == "conn"
        assert handle.name == "FakeCM"
        states = [handle.state]
        assert cm.enter_task is not rt.current_task()

        async def closer() -> None:
            await handle.aclose()

        nursery.start_soon(closer)
    states.append(handle.state)
    assert states == [ContextState.OPEN, ContextState.CLOSED]
    assert cm.exit_task is cm.enter_task
    assert cm.exited == 1


async def test_aexit_passes_the_exception_and_says_if_it_was_suppressed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    error = KeyError("from the user")
    plain_cm, swallow_cm = FakeCM("plain", log), FakeCM("swallow", log, suppress=True)
    async with rt.open_nursery() as nursery:
        plain = await start_context(nursery, plain_cm, name="plain")
        swallowing = await start_context(nursery, swallow_cm)
        assert await plain.aexit(error) is False
        assert await swallowing.aexit(error) is True
    assert plain.name == "plain"
    # What __aexit__ received: the very exception, with its traceback (none: not raised).
    assert plain_cm.seen is swallow_cm.seen is error
    assert plain_cm.seen_tb is None


async def test_closing_twice_and_concurrently_waits_for_the_single_exit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    cm = FakeCM("conn", log, exit_delay=2)
    done: list[float] = []
    async with rt.open_nursery() as nursery:
        handle = await start_context(nursery, cm)

        async def closer() -> None:
            await handle.aclose()
            done.append(rt.current_time())

        nursery.start_soon(closer)
        nursery.start_soon(closer)
        await rt.wait_all_tasks_blocked()
        assert handle.state is ContextState.EXITING
    assert done == [2, 2]
    assert cm.exited == 1
    assert await handle.aexit() is False  # a no-op giving the first result again


async def test_exit_failure_is_raised_to_the_caller_annotated(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    failure = OSError("close failed")
    async with rt.open_nursery() as nursery:
        handle = await start_context(nursery, FakeCM("c", log, exit_error=failure), name="conn")
        with pytest.RaisesGroup(
            pytest.RaisesExc(
                OSError,
                check=lambda e: (
                    e is failure and notes(e) == ["conn (position 0) failed while exiting"]
                ),
            )
        ):
            await handle.aclose()
    assert handle.state is ContextState.FAILED


async def test_enter_failure_is_raised_from_start_context_and_leaves_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    error = OSError("refused")
    async with rt.open_nursery() as nursery:
        tasks_before = rt.loop().count_tasks()
        with pytest.RaisesGroup(
            pytest.RaisesExc(
                OSError, check=lambda e: notes(e) == ["db (position 0) failed while entering"]
            )
        ):
            await start_context(nursery, FakeCM("c", log, enter_error=error), name="db")
        assert_no_task_left(nursery, tasks_before)


async def test_failure_while_open_surfaces_in_the_nursery(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    boom = ValueError("background")
    handles: list[ContextHandle[str]] = []
    # The nursery's group holds the context manager's own nursery group.
    with pytest.RaisesGroup(pytest.RaisesGroup(ValueError)):
        async with rt.open_nursery() as nursery:
            handles.append(await start_context(nursery, crashes_while_open(log, "c", 1, boom)))
            await rt.sleep(10)
    assert rt.current_time() == 1
    [handle] = handles
    assert handle.state is ContextState.FAILED
    with pytest.raises(RuntimeError, match="already failed while open"):
        await handle.aclose()


async def test_cancelling_the_nursery_exits_the_context_manager(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    cm = FakeCM("c", log)
    async with rt.open_nursery() as nursery:
        handle = await start_context(nursery, cm)
        nursery.cancel_scope.cancel()
    assert isinstance(cm.seen, rt.cancelled())
    assert handle.state is ContextState.CLOSED
    assert await handle.aexit() is False


async def test_repr_names_the_factory_and_the_state(autojump_clock: trio.testing.MockClock) -> None:
    seen: list[ContextState] = []

    @asynccontextmanager
    async def slow() -> AsyncGenerator[None, None]:
        await rt.sleep(1)
        yield

    async with rt.open_nursery() as nursery:
        handle = await start_context(nursery, slow())
        seen.append(handle.state)
        await handle.aclose()
    assert seen == [ContextState.OPEN]
    assert repr(handle) == "<ContextHandle slow closed>"


async def test_cancelled_as_it_enters_a_failing_exit_is_reported_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    error = OSError("cleanup failed")

    class EntersShieldedFailsToExit(FakeCM):
        # Finishes entering after start_context was cancelled; its exit fails at once
        # (a checkpoint first would meet the cancellation, and fail with nothing).
        async def __aenter__(self) -> str:
            with rt.CancelScope(shield=True):
                await rt.sleep(2)
            return "late"

        async def __aexit__(self, *args: object) -> bool:
            raise error

    async with rt.open_nursery() as nursery:
        tasks_before = rt.loop().count_tasks()
        with (
            rt.move_on_after(1),
            pytest.RaisesGroup(pytest.RaisesExc(OSError, check=lambda e: e is error)),
        ):
            await start_context(nursery, EntersShieldedFailsToExit("c", log))
        assert_no_task_left(nursery, tasks_before)


async def test_start_context_cancelled_natively_as_it_enters_leaves_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # On asyncio a native Task.cancel (rt.cancel_after) of the caller of start_context.
    log: Log = []
    cm = FakeCM("slow", log, enter_delay=2)
    async with rt.open_nursery() as nursery:
        tasks_before = rt.loop().count_tasks()
        with rt.cancel_after(1) as outer:
            await start_context(nursery, cm)
            pytest.fail("start_context returned")  # pragma: no cover
        assert outer.cancelled_caught
        assert_no_task_left(nursery, tasks_before)
    assert ("slow", "enter cancelled") in [(n, e) for n, e, _ in log]
    assert cm.exited == 0
    assert rt.current_time() == 1


async def test_a_crash_while_open_stays_a_crash_while_open_if_the_nursery_is_cancelled_later(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    boom = ValueError("background")

    with pytest.RaisesGroup(
        pytest.RaisesGroup(
            ValueError,
            check=lambda g: notes(g) == ["crashes_then_cleans_up (position 0) failed while open"],
        ),
        KeyError,
    ):
        async with rt.open_nursery() as nursery:
            await start_context(nursery, crashes_then_cleans_up(log, "c", 1, boom, 2))
            await rt.sleep(1.5)
            raise KeyError("cancels the nursery during the cleanup")


async def test_a_failing_exit_after_the_nursery_is_cancelled_fails_while_exiting(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    error = OSError("could not say goodbye")

    class FailsWhenCancelled(FakeCM):
        async def __aexit__(self, *args: object) -> bool:
            assert isinstance(args[1], rt.cancelled())
            raise error

    with pytest.RaisesGroup(
        pytest.RaisesExc(
            OSError,
            check=lambda e: e is error and notes(e) == ["conn (position 0) failed while exiting"],
        ),
        KeyError,
    ):
        async with rt.open_nursery() as nursery:
            await start_context(nursery, FailsWhenCancelled("c", log), name="conn")
            raise KeyError("cancels the nursery")


async def test_a_closer_cancelled_while_it_waits_for_the_exit_still_waits(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    cm = FakeCM("slow", log, exit_delay=5)
    async with rt.open_nursery() as nursery:
        handle = await start_context(nursery, cm)
        with rt.move_on_after(1) as scope:
            await handle.aclose()
        # Cancelled at 1, it went on waiting for the exit (its Cancelled followed).
        assert scope.cancelled_caught
        assert rt.current_time() == 5
        assert handle.state is ContextState.CLOSED
    assert not cm.exit_cancelled


async def test_a_closer_already_cancelled_still_waits_for_the_exit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    cm = FakeCM("slow", log, exit_delay=5)
    async with rt.open_nursery() as nursery:
        handle = await start_context(nursery, cm)
        with rt.CancelScope() as scope:
            scope.cancel()
            await handle.aclose()
            assert rt.current_time() == 5
            assert handle.state is ContextState.CLOSED
    assert not cm.exit_cancelled


async def test_an_anyio_task_group_is_a_nursery_on_trio(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # anyio on Trio is Trio: its task group wraps a nursery, where the holder lives.
    log: Log = []
    cm = FakeCM("conn", log, exit_delay=1)
    handles: list[ContextHandle[str]] = []
    async with anyio.create_task_group() as group:
        handles.append(await start_context(group, cm))
        assert handles[0].state is ContextState.OPEN
        group.start_soon(handles[0].aclose)
    assert handles[0].state is ContextState.CLOSED
    assert cm.exit_task is cm.enter_task
    assert cm.enter_task is not rt.current_task()


async def test_start_context_refuses_what_is_no_nursery_before_entering() -> None:
    log: Log = []
    cm = FakeCM("conn", log)
    takes = r"a trio\.Nursery or an anyio task group" if rt.on_trio() else "an anyio task group"
    with pytest.raises(TypeError, match=rf"takes {takes}.*, not list"):
        await start_context([], cm)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    assert log == []
