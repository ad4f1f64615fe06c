"""The guarantees of ``parallel_with`` (issue #2), one test or more for each.

Every test runs on pytest-trio's virtual clock (the ``autojump_clock`` argument: pytest-trio
only uses a clock passed as an argument of the test function): times are exact.  Each runs
on Trio and on asyncio (``tests/runtime.py``; on uvloop too, those without the clock).
"""

from __future__ import annotations

import contextvars
import gc
import signal
import sys
import traceback
import weakref
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any

import pytest
import trio
import trio.testing

from tests import runtime as rt
from tests.fakes import (
    FakeCM,
    Log,
    crashes_then_cleans_up,
    crashes_while_open,
    ends_while_open,
    events,
    members,
    notes,
    record,
    time_of,
)
from tests.harness.running import seed_scheduler
from trio_parallel_cm import (
    ParallelBaseExceptionGroup,
    ParallelExceptionGroup,
    PhaseEvent,
    parallel_with,
)
from trio_parallel_cm._engine._stage import STARTER_TASK_NAME

pytestmark = pytest.mark.runtimes


def fakes(log: Log, *names: str, enter_delay: float = 0, exit_delay: float = 0) -> list[FakeCM]:
    return [FakeCM(name, log, enter_delay, exit_delay) for name in names]


# ---- 1. task ownership -------------------------------------------------------------------


async def test_enter_and_exit_run_in_one_task_per_context_manager(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    a, b, c = fakes(log, "a", "b", "c")
    body_task = rt.current_task()
    async with parallel_with(a, b, c) as values:
        assert values == ("a", "b", "c")
    tasks = [cm.enter_task for cm in (a, b, c)]
    assert [cm.exit_task for cm in (a, b, c)] == tasks
    assert len({id(t) for t in tasks}) == 3
    assert body_task not in tasks


async def test_nurseries_and_cancel_scopes_opened_by_context_managers_stay_nested(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # A nursery is the canonical context manager that must exit in the task that entered it.
    done: list[int] = []
    async with parallel_with(rt.open_nursery(), rt.open_nursery()) as (n1, n2):

        async def job(i: int) -> None:
            await rt.sleep(1)
            done.append(i)

        n1.start_soon(job, 1)
        n2.start_soon(job, 2)
    # Each nursery waited for its child before the block ended.
    assert sorted(done) == [1, 2]


# ---- 2. concurrency ----------------------------------------------------------------------


async def test_enters_and_exits_run_concurrently(autojump_clock: trio.testing.MockClock) -> None:
    log: Log = []
    cms = [FakeCM(f"cm{i}", log, enter_delay=i, exit_delay=i) for i in (1, 2, 3)]
    start = body_start = rt.current_time()
    async with parallel_with(*cms):
        body_start = rt.current_time()
    end = rt.current_time()
    assert body_start - start == 3  # max(Li), not the sum
    assert end - body_start == 3
    assert [time_of(log, cm.name, "enter") for cm in cms] == [start] * 3
    assert [time_of(log, cm.name, "exit") for cm in cms] == [body_start] * 3


@pytest.mark.trio_only(reason="trio.testing.assert_checkpoints: Trio's checkpoint accounting")
async def test_empty_parallel_with_yields_empty_tuple_and_checkpoints(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.testing.assert_checkpoints():
        async with parallel_with() as values:
            assert values == ()


async def test_entering_is_a_checkpoint_that_honours_cancellation(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    (a,) = fakes(log, "a")
    with rt.CancelScope() as scope:
        scope.cancel()
        async with parallel_with(a):
            pytest.fail("body ran")  # pragma: no cover
    assert scope.cancelled_caught
    assert log == []


async def test_mapping_form_yields_a_dict_with_the_same_keys(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    a, b = fakes(log, "a", "b")
    async with parallel_with({"db": a, "cache": b}) as ctx:
        assert ctx == {"db": "a", "cache": "b"}
        assert list(ctx) == ["db", "cache"]


# ---- 3. no early exit ----------------------------------------------------------------------


async def test_no_exit_starts_before_the_body_has_finished_under_outer_cancellation(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    a, b = fakes(log, "a", "b", exit_delay=1)
    seen: list[BaseException] = []
    with rt.move_on_after(1) as outer:
        try:
            async with parallel_with(a, b):
                try:
                    await rt.sleep_forever()
                finally:
                    with rt.CancelScope(shield=True):
                        await rt.sleep(5)  # the body's own shielded cleanup
                    record(log, "body", "done")
        except BaseException as exc:
            seen.append(exc)
            raise
    assert outer.cancelled_caught
    # The pure cancellation propagated unwrapped, as the body's own Cancelled.
    [cancelled] = seen
    assert type(cancelled) is rt.cancelled()
    body_done = time_of(log, "body", "done")
    assert body_done == 6
    assert time_of(log, "a", "exit") == time_of(log, "b", "exit") == body_done
    # Each holder met the cancellation as its own, native Cancelled ...
    assert isinstance(a.seen, rt.cancelled())
    assert isinstance(b.seen, rt.cancelled())
    assert len({id(a.seen), id(b.seen), id(cancelled)}) == 3
    # ... and, as in nested `async with`, its cleanup runs in the cancelled scope.
    assert a.exit_cancelled and b.exit_cancelled


# ---- 4. a context manager failing while open -----------------------------------------------


async def test_failure_while_open_cancels_the_body_and_reaches_the_other_exits(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    (a,) = fakes(log, "a", exit_delay=1)
    boom = ValueError("background task crashed")
    with pytest.RaisesGroup(
        pytest.RaisesGroup(
            pytest.RaisesExc(ValueError, match="crashed"),
            check=lambda g: notes(g) == ["crashes_while_open (position 1) failed while open"],
        ),
        match=r"^1 of 2 context managers failed \(1 open\)$",
    ):
        async with parallel_with(a, crashes_while_open(log, "crasher", 2, boom)):
            try:
                await rt.sleep(10)
            finally:
                record(log, "body", "cancelled")
    assert time_of(log, "body", "cancelled") == 2
    # The other one exits after the body, uncancelled, with the crasher's failure.
    assert time_of(log, "a", "exit") == 2
    assert not a.exit_cancelled
    assert members(a.seen) == [boom]


async def test_context_manager_ending_by_itself_cancels_the_body_and_raises_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    (a,) = fakes(log, "a")
    async with parallel_with(a, ends_while_open(log, "timer", 3)):
        try:
            await rt.sleep(10)
        finally:
            record(log, "body", "cancelled")
    assert time_of(log, "body", "cancelled") == 3
    assert a.seen is None
    assert a.exited == 1


async def test_failure_while_others_are_entering_is_handled_like_an_enter_failure(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    (slow,) = fakes(log, "slow", enter_delay=10)
    boom = ValueError("crashed early")
    with pytest.RaisesGroup(
        pytest.RaisesGroup(
            ValueError,
            check=lambda g: notes(g) == ["crashes_while_open (position 0) failed while open"],
        )
    ):
        async with parallel_with(crashes_while_open(log, "crasher", 1, boom), slow):
            pytest.fail("the body ran")  # pragma: no cover
    assert ("slow", "enter cancelled") in events(log)
    assert slow.exited == 0
    assert rt.current_time() == 1


async def test_ending_by_itself_while_others_enter_cancels_their_enters(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Nested blocks would cancel the enters inside it and skip the body silently; Python
    # cannot skip the body of `async with`, so the block fails to start, saying why.
    log: Log = []
    (slow,) = fakes(log, "slow", enter_delay=5)
    with pytest.RaisesGroup(
        pytest.RaisesExc(
            RuntimeError,
            match="^ends_while_open ended by itself while the others were entering",
            check=lambda e: notes(e) == ["ends_while_open (position 0) failed while open"],
        )
    ):
        async with parallel_with(ends_while_open(log, "timer", 1), slow):
            pytest.fail("the body ran")  # pragma: no cover
    assert ("slow", "enter cancelled") in events(log)
    assert rt.current_time() == 1


async def test_a_failing_context_manager_exits_after_the_body_and_before_the_others(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The body (inside it in every nesting order) unwinds first, its shielded cleanup
    # included; only then does the failing one's __aexit__ run, and then the others'.
    log: Log = []
    (other,) = fakes(log, "other")
    boom = ValueError("background")
    with pytest.RaisesGroup(pytest.RaisesGroup(ValueError)):
        async with parallel_with(other, crashes_while_open(log, "crasher", 1, boom)):
            try:
                await rt.sleep(10)
            finally:
                with rt.CancelScope(shield=True):
                    await rt.sleep(2)
                record(log, "body", "cleaned up")
    assert time_of(log, "crasher", "crash") == 1
    assert time_of(log, "crasher", "exit") == time_of(log, "body", "cleaned up") == 3
    order = events(log)
    assert order.index(("body", "cleaned up")) < order.index(("crasher", "exit"))
    assert order.index(("crasher", "exit")) < order.index(("other", "exit"))
    assert members(other.seen) == [boom]


async def test_a_failing_ones_exit_timeout_counts_from_its_own_exit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    # Its cleanup (0.5 s) is within its exit timeout, counted from when its exit starts.
    crasher = crashes_then_cleans_up(log, "crasher", 1, ValueError("crash"), 0.5)
    with pytest.RaisesGroup(pytest.RaisesGroup(ValueError)):
        async with parallel_with(crasher, exit_timeout=1):
            try:
                await rt.sleep(10)
            finally:
                with rt.CancelScope(shield=True):
                    await rt.sleep(2)
    assert time_of(log, "crasher", "cleaned up") == 3.5


async def _fails_as_the_body_ends(phases: set[str]) -> None:
    log: Log = []
    other = FakeCM("other", log)
    boom = ValueError("background")
    with pytest.RaisesGroup(pytest.RaisesGroup(ValueError)) as caught:
        async with parallel_with(other, crashes_while_open(log, "crasher", 1, boom)):
            await rt.sleep(1)
    [failure] = members(caught.value)
    [phase] = [note.rsplit(" ", 1)[1] for note in notes(failure)]
    phases.add(phase)
    order = events(log)
    if phase == "open":
        assert order.index(("crasher", "exit")) < order.index(("other", "exit"))
        assert members(other.seen) == [boom]
    else:
        assert other.seen is None


def test_one_failing_as_the_body_ends_still_exits_before_the_others() -> None:
    # Its scope fires at the instant the body ends.  Whichever task the scheduler runs
    # first, if it failed while open (before it was released) the other exits after it,
    # with its failure; if it was released first, its failure is one while exiting.
    phases: set[str] = set()
    for seed in range(8):
        seed_scheduler(seed)
        trio.run(
            _fails_as_the_body_ends, phases, clock=trio.testing.MockClock(autojump_threshold=0)
        )
    assert phases == {"open", "exiting"}  # both orders were seen


# ---- 5. the body's exception ---------------------------------------------------------------


async def test_body_exception_reaches_every_exit_with_its_traceback_uncancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    a, b = fakes(log, "a", "b", exit_delay=1)
    error = KeyError("from the body")
    with pytest.RaisesGroup(
        pytest.RaisesExc(KeyError, check=lambda e: e is error), match="^the body raised$"
    ):
        async with parallel_with(a, b):
            raise error
    assert a.seen is error and b.seen is error
    assert a.seen_tb is not None and b.seen_tb is a.seen_tb
    # The traceback passed in is the body's: it reaches the line that raised.
    assert "raise error" in "".join(traceback.format_tb(a.seen_tb))
    assert not a.exit_cancelled and not b.exit_cancelled
    assert events(log, "a")[-1] == ("a", "exited")


async def test_one_context_manager_may_suppress_the_body_exception(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    a = FakeCM("a", log)
    b = FakeCM("b", log, suppress=True)
    error = KeyError("suppressed")
    async with parallel_with(a, b):
        raise error
    assert a.seen is error and b.seen is error


async def test_suppressing_a_cancellation_suppresses_the_body_cancellation(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen: list[BaseException | None] = []

    class SwallowsEverything:
        async def __aenter__(self) -> None:
            pass

        async def __aexit__(self, exc_type: object, exc: BaseException | None, tb: object) -> bool:
            seen.append(exc)
            return True

    with rt.CancelScope() as scope:
        async with parallel_with(SwallowsEverything()):
            scope.cancel()
            await rt.sleep_forever()
        # As after a nested `async with` that swallowed the Cancelled: the code goes on,
        # and the next checkpoint raises again.
        seen.append(None)
        await rt.checkpoint()
        pytest.fail("not cancelled again")  # pragma: no cover
    assert scope.cancelled_caught
    assert isinstance(seen[0], rt.cancelled())
    assert seen[1:] == [None]


async def test_body_group_mixing_cancelled_and_errors_reaches_exits_without_cancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    a = FakeCM("a", log)

    async def fail_shielded() -> None:
        with rt.CancelScope(shield=True):
            await rt.sleep(1)
        raise ValueError("child")

    # Outside the cancelled scope, what is left is the body's group less its Cancelled.
    with pytest.RaisesGroup(pytest.RaisesGroup(ValueError), match="^the body raised$"):
        with rt.CancelScope() as outer:
            async with parallel_with(a):
                async with rt.open_nursery() as nursery:
                    nursery.start_soon(fail_shielded)
                    outer.cancel()
                    await rt.sleep_forever()
    # The context manager received the body's group without its Cancelled.
    assert [type(e) for e in members(a.seen)] == [ValueError]


# ---- 6. enter failure ----------------------------------------------------------------------


async def test_enter_failure_cancels_pending_enters_and_exits_the_entered_ones(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    error = OSError("connection refused")
    quick = FakeCM("quick", log, enter_delay=0.5, exit_delay=1)
    failing = FakeCM("failing", log, enter_delay=1, enter_error=error)
    slow = FakeCM("slow", log, enter_delay=5)
    with pytest.RaisesGroup(
        pytest.RaisesExc(
            OSError,
            check=lambda e: (
                e is error and notes(e) == ["FakeCM (position 1) failed while entering"]
            ),
        ),
        match=r"^1 of 3 context managers failed \(1 entering\)$",
    ):
        async with parallel_with(quick, failing, slow):
            pytest.fail("the body ran")  # pragma: no cover
    assert ("slow", "enter cancelled") in events(log)
    assert slow.exited == failing.exited == 0
    # The entered one exits with the failure, uncancelled, in its own task.
    assert quick.seen is error
    assert not quick.exit_cancelled
    assert time_of(log, "quick", "exited") == 2
    assert quick.exit_task is quick.enter_task


async def test_several_enter_failures_deliver_the_first_in_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    first, second = ValueError("first"), KeyError("second")

    class FailsShielded(FakeCM):
        # Fails even when cancelled: the shielded sleep is not interrupted.
        async def __aenter__(self) -> str:
            with rt.CancelScope(shield=True):
                await rt.sleep(self.enter_delay)
            assert self.enter_error is not None
            raise self.enter_error

    entered = FakeCM("entered", log)
    late = FailsShielded("late", log, enter_delay=2, enter_error=second)
    early = FakeCM("early", log, enter_delay=1, enter_error=first)
    with pytest.RaisesGroup(
        pytest.RaisesExc(KeyError, check=lambda e: e is second),
        pytest.RaisesExc(ValueError, check=lambda e: e is first),
    ) as caught:
        async with parallel_with(entered, late, early):
            pytest.fail("the body ran")  # pragma: no cover
    # Argument order in the group, first-in-time failure delivered.
    assert [type(e) for e in caught.value.exceptions] == [KeyError, ValueError]
    assert entered.seen is first


# ---- 7. exit failures ----------------------------------------------------------------------


async def test_exit_failure_never_cancels_a_sibling_exit_and_none_is_lost(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    a = FakeCM("a", log, exit_error=ValueError("a failed"))
    b = FakeCM("b", log, exit_delay=3)
    c = FakeCM("c", log, exit_delay=1, exit_error=KeyError("c failed"))
    with pytest.RaisesGroup(
        pytest.RaisesExc(ValueError, check=lambda e: "'a' " not in str(e)),
        pytest.RaisesExc(KeyError),
        match=r"^2 of 3 context managers failed \(2 exiting\)$",
    ) as caught:
        async with parallel_with(a, b, c):
            pass
    assert [type(e) for e in caught.value.exceptions] == [ValueError, KeyError]
    assert notes(caught.value.exceptions[0]) == ["FakeCM (position 0) failed while exiting"]
    assert notes(caught.value.exceptions[1]) == ["FakeCM (position 2) failed while exiting"]
    assert not b.exit_cancelled
    assert time_of(log, "b", "exited") == 3


# ---- 8. outer cancellation -----------------------------------------------------------------


@rt.OUTER_CANCELLATIONS
async def test_outer_cancellation_while_entering(
    autojump_clock: trio.testing.MockClock, deadline: Callable[[float], rt.Deadline]
) -> None:
    log: Log = []
    quick = FakeCM("quick", log, exit_delay=1)
    slow = FakeCM("slow", log, enter_delay=5)
    seen: list[BaseException] = []
    with deadline(1) as outer:
        try:
            async with parallel_with(quick, slow):
                pytest.fail("the body ran")  # pragma: no cover
        except BaseException as exc:
            seen.append(exc)
            raise
    assert outer.cancelled_caught
    assert [type(e) for e in seen] == [rt.cancelled()]
    assert ("slow", "enter cancelled") in events(log)
    assert slow.exited == 0
    assert quick.exited == 1
    assert isinstance(quick.seen, rt.cancelled())
    assert quick.seen is not seen[0]
    assert quick.exit_cancelled
    assert rt.current_time() == 1


@rt.OUTER_CANCELLATIONS
async def test_outer_cancellation_while_exiting_reaches_the_exits_natively(
    autojump_clock: trio.testing.MockClock, deadline: Callable[[float], rt.Deadline]
) -> None:
    log: Log = []
    a = FakeCM("a", log, exit_delay=5)
    with deadline(1) as outer:
        async with parallel_with(a):
            pass
    assert outer.cancelled_caught
    assert a.seen is None
    assert a.exit_cancelled
    assert rt.current_time() == 1


@rt.OUTER_CANCELLATIONS
async def test_outer_cancellation_during_an_error_exit_reaches_the_exits(
    autojump_clock: trio.testing.MockClock, deadline: Callable[[float], rt.Deadline]
) -> None:
    log: Log = []
    a = FakeCM("a", log, exit_delay=5)
    error = ValueError("body")
    with deadline(1) as outer:
        with pytest.RaisesGroup(pytest.RaisesExc(ValueError, check=lambda e: e is error)):
            async with parallel_with(a):
                raise error
    assert a.seen is error
    assert a.exit_cancelled
    # A scope's Cancelled is met again at the next checkpoint and caught by its scope; a
    # native one is not grouped, and not taken by its scope either (the group holds the
    # failure only).
    assert not outer.cancelled_caught
    assert rt.current_time() == 1


# ---- 8b. a native asyncio cancellation (on Trio: a cancel scope, its only kind) --------------


async def test_native_cancellation_of_the_body_reaches_every_exit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    a, b = fakes(log, "a", "b", exit_delay=1)
    with rt.cancel_after(1) as outer:
        async with parallel_with(a, b):
            await rt.sleep_forever()
    assert outer.cancelled_caught
    assert isinstance(a.seen, rt.cancelled()) and isinstance(b.seen, rt.cancelled())
    assert a.exit_task is a.enter_task and b.exit_task is b.enter_task
    # As in nested blocks, each cleanup runs in the cancelled task.
    assert a.exit_cancelled and b.exit_cancelled
    assert rt.current_time() == 1


# ---- 9. nothing leaks -----------------------------------------------------------------------


async def test_keyboard_interrupt_from_an_enter_exits_the_others(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    kbi = KeyboardInterrupt()
    entered = FakeCM("entered", log)
    interrupted = FakeCM("interrupted", log, enter_delay=1, enter_error=kbi)
    with pytest.RaisesGroup(
        pytest.RaisesExc(KeyboardInterrupt, check=lambda e: e is kbi)
    ) as caught:
        async with parallel_with(entered, interrupted):
            pytest.fail("the body ran")  # pragma: no cover
    assert type(caught.value) is ParallelBaseExceptionGroup
    assert entered.exited == 1 and entered.seen is kbi
    assert interrupted.exited == 0


async def test_keyboard_interrupt_in_the_body_reaches_every_exit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    a, b = fakes(log, "a", "b", exit_delay=1)
    with pytest.RaisesGroup(KeyboardInterrupt):
        async with parallel_with(a, b):
            raise KeyboardInterrupt
    assert isinstance(a.seen, KeyboardInterrupt) and a.seen is b.seen
    assert a.exited == b.exited == 1


async def test_no_task_outlives_the_block(autojump_clock: trio.testing.MockClock) -> None:
    log: Log = []
    all_tasks = rt.loop().count_tasks
    before = all_tasks()
    with pytest.RaisesGroup(ValueError, KeyError):
        async with parallel_with(
            *fakes(log, "a", "b", exit_delay=1), FakeCM("c", log, exit_error=KeyError())
        ):
            assert all_tasks() == before + 3  # one holder per context manager
            raise ValueError
    assert all_tasks() == before


# ---- errors ------------------------------------------------------------------------------


async def test_group_is_flat_and_ordered_body_first_then_argument_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    a = FakeCM("a", log, exit_delay=2, exit_error=KeyError("a"))
    b = FakeCM("b", log, exit_error=BaseExceptionGroup("own group", [IndexError("b")]))
    body_error = ValueError("body")
    with pytest.RaisesGroup(
        pytest.RaisesExc(ValueError, check=lambda e: e is body_error),
        KeyError,
        pytest.RaisesGroup(IndexError, match="own group"),
        match=r"^the body raised; 2 of 2 context managers failed \(2 exiting\)$",
    ) as caught:
        async with parallel_with(a, b):
            raise body_error
    assert [type(e) for e in caught.value.exceptions] == [ValueError, KeyError, ExceptionGroup]
    assert caught.value.__context__ is None


async def test_reraising_the_body_exception_is_not_a_second_failure(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    body_error = ValueError("body")
    other = KeyError("other")

    @asynccontextmanager
    async def reraises() -> AsyncGenerator[None, None]:
        yield  # the generator re-raises what it is thrown

    class RaisesIt(FakeCM):
        async def __aexit__(self, *args: object) -> bool:
            raise body_error

    class WrapsIt(FakeCM):
        async def __aexit__(self, *args: object) -> bool:
            raise BaseExceptionGroup("wrapped", [body_error, other])

    with pytest.RaisesGroup(
        pytest.RaisesExc(ValueError, check=lambda e: e is body_error),
        pytest.RaisesGroup(pytest.RaisesExc(KeyError, check=lambda e: e is other), match="wrapped"),
    ):
        async with parallel_with(reraises(), RaisesIt("r", log), WrapsIt("w", log)):
            raise body_error


async def test_base_exception_members_make_a_base_exception_group(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    a = FakeCM("a", log, exit_error=SystemExit(3))
    with pytest.RaisesGroup(SystemExit) as caught:
        async with parallel_with(a):
            pass
    group: BaseException = caught.value
    assert type(group) is ParallelBaseExceptionGroup
    assert not isinstance(group, Exception)


async def test_exception_members_make_an_exception_group(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    a = FakeCM("a", log, exit_error=ValueError())
    with pytest.RaisesGroup(ValueError) as caught:
        async with parallel_with(a):
            pass
    group: BaseException = caught.value
    assert type(group) is ParallelExceptionGroup
    assert isinstance(group, ExceptionGroup)
    assert isinstance(group, ParallelBaseExceptionGroup)


async def test_names_are_keys_factory_names_or_type_names(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []

    @asynccontextmanager
    async def open_db() -> AsyncGenerator[None, None]:
        yield
        raise OSError("db")

    with pytest.RaisesGroup(
        pytest.RaisesExc(
            OSError, check=lambda e: notes(e) == ["open_db (position 0) failed while exiting"]
        ),
        pytest.RaisesExc(
            KeyError, check=lambda e: notes(e) == ["FakeCM (position 1) failed while exiting"]
        ),
    ):
        async with parallel_with(open_db(), FakeCM("x", log, exit_error=KeyError())):
            pass
    with pytest.RaisesGroup(
        pytest.RaisesExc(
            KeyError, check=lambda e: notes(e) == ["cache (position 1) failed while exiting"]
        ),
    ):
        async with parallel_with(
            {"db": FakeCM("d", log), "cache": FakeCM("c", log, exit_error=KeyError())}
        ):
            pass


async def test_a_stray_cancelled_from_a_context_manager_is_reported_as_a_runtime_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    class LeaksCancelled:
        async def __aenter__(self) -> None:
            # Catches a Cancelled of its own scope and re-raises it after leaving the
            # scope: nothing around the holder task is cancelled.
            stolen: list[BaseException] = []
            with rt.CancelScope() as scope:
                scope.cancel()
                try:
                    await rt.checkpoint()
                except rt.cancelled() as exc:
                    stolen.append(exc)
            raise stolen[0]

        async def __aexit__(self, *args: object) -> None:
            pytest.fail("exited although it did not enter")  # pragma: no cover

    with pytest.RaisesGroup(
        pytest.RaisesExc(
            RuntimeError,
            match=f"let a {'trio.Cancelled' if rt.on_trio() else 'asyncio.CancelledError'} escape",
            check=lambda e: isinstance(e.__cause__, rt.cancelled()),
        )
    ):
        async with parallel_with(LeaksCancelled()):
            pytest.fail("the body ran")  # pragma: no cover


# ---- entering while the stage is abandoned -------------------------------------------------


class EntersShielded(FakeCM):
    """Its ``__aenter__`` cannot be cancelled: it finishes entering after the stage failed."""

    async def __aenter__(self) -> str:
        self.enter_task = rt.current_task()
        with rt.CancelScope(shield=True):
            await rt.sleep(self.enter_delay)
        self.entered += 1
        record(self.log, self.name, "entered")
        return self.name


async def test_entering_as_the_stage_fails_exits_at_once_with_the_failure(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # `started()` does not move a task whose starter is already cancelled: the holder must
    # notice and exit by itself, or the block would wait for it forever.
    log: Log = []
    error = ValueError("failed first")
    late = EntersShielded("late", log, enter_delay=2, exit_delay=1)
    failing = FakeCM("failing", log, enter_delay=1, enter_error=error)
    with (
        rt.fail_after(100),
        pytest.RaisesGroup(pytest.RaisesExc(ValueError, check=lambda e: e is error)),
    ):
        async with parallel_with(late, failing):
            pytest.fail("the body ran")  # pragma: no cover
    assert late.exited == 1
    assert late.seen is error
    assert late.exit_task is late.enter_task
    assert not late.exit_cancelled
    assert rt.current_time() == 3


async def test_entering_as_the_caller_is_cancelled_exits_with_its_own_cancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    late = EntersShielded("late", log, enter_delay=2)
    with rt.fail_after(100), rt.move_on_after(1) as outer:
        async with parallel_with(late):
            pytest.fail("the body ran")  # pragma: no cover
    assert outer.cancelled_caught
    assert late.exited == 1
    assert isinstance(late.seen, rt.cancelled())
    assert late.exit_task is late.enter_task


async def test_body_errors_raised_while_we_cancel_it_are_reported_before_the_failure(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    (other,) = fakes(log, "other")
    boom = ValueError("background")
    cleanup = KeyError("cleanup failed")

    async def fails_when_cancelled() -> None:
        try:
            await rt.sleep_forever()
        finally:
            raise cleanup

    with pytest.RaisesGroup(
        pytest.RaisesGroup(pytest.RaisesExc(KeyError, check=lambda e: e is cleanup)),
        pytest.RaisesGroup(pytest.RaisesExc(ValueError, check=lambda e: e is boom)),
        match=r"^the body raised; 1 of 2 context managers failed \(1 open\)$",
    ):
        async with parallel_with(other, crashes_while_open(log, "crasher", 1, boom)):
            async with rt.open_nursery() as nursery:
                nursery.start_soon(fails_when_cancelled)
                await rt.sleep(10)
    # The others received the failure while open, not the body's leftovers.
    assert members(other.seen) == [boom]


# ---- regressions found by the fault-injection harness ------------------------------------


async def test_groups_are_delivered_and_reported_as_the_very_objects(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # BaseExceptionGroup.split copies even when nothing matches: no split may sneak in.
    log: Log = []
    own = ExceptionGroup("own", [IndexError()])
    body = ExceptionGroup("body", [KeyError()])
    a = FakeCM("a", log, exit_error=own)
    with pytest.RaisesGroup(
        pytest.RaisesGroup(KeyError, check=lambda g: g is body),
        pytest.RaisesGroup(IndexError, check=lambda g: g is own),
    ):
        async with parallel_with(a):
            raise body
    assert a.seen is body


async def test_a_group_passed_back_through_a_nursery_is_not_a_second_failure(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # rt.open_nursery() re-raises a copy of the group it receives (same leaves).
    body = ExceptionGroup("body", [KeyError("k")])
    with pytest.RaisesGroup(
        pytest.RaisesGroup(KeyError, check=lambda g: g is body), match="^the body raised$"
    ):
        async with parallel_with(rt.open_nursery()):
            raise body


async def test_a_failure_while_open_cancels_the_body_at_once_not_after_its_cleanup(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # As nested `async with` would: the crash cancels the body when it happens; the others
    # exit once the failing one has cleaned up, and receive its failure.
    log: Log = []
    (other,) = fakes(log, "other")
    boom = ValueError("background")

    with pytest.RaisesGroup(pytest.RaisesGroup(ValueError)):
        async with parallel_with(other, crashes_then_cleans_up(log, "crasher", 1, boom, 3)):
            try:
                await rt.sleep(10)
            finally:
                record(log, "body", "cancelled")
    assert time_of(log, "body", "cancelled") == 1
    assert time_of(log, "crasher", "cleaned up") == 4
    assert time_of(log, "other", "exit") == 4
    assert members(other.seen) == [boom]


@pytest.mark.trio_only(reason="a trio.abc.Instrument sees the starter tasks (Trio's nursery.start)")
async def test_an_open_block_keeps_no_starter_task_alive(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Each holder's task status refers to its starter's nursery, and so to the finished
    # starter task: kept while open, that is about 2 KB per context manager.
    starters: list[weakref.ref[trio.lowlevel.Task]] = []

    class Spawns(trio.abc.Instrument):
        def task_spawned(self, task: trio.lowlevel.Task) -> None:
            if task.name == STARTER_TASK_NAME:
                starters.append(weakref.ref(task))

    log: Log = []
    instrument = Spawns()
    trio.lowlevel.add_instrument(instrument)  # one trio.run per test: it goes with it
    async with parallel_with(*fakes(log, "a", "b", "c")):
        trio.lowlevel.remove_instrument(instrument)
        gc.collect()
        assert len(starters) == 3
        assert [ref() for ref in starters] == [None, None, None]


async def test_generator_exit_thrown_into_the_body_comes_out_in_a_group_as_from_a_nursery() -> None:
    # An async generator suspended inside a block and closed: aclose() throws GeneratorExit
    # at the yield.  Every __aexit__ receives it, and it leaves the block wrapped in a
    # group, as it leaves rt.open_nursery() (strict exception groups).
    log: Log = []
    cms = [FakeCM("a", log), FakeCM("b", log)]

    async def in_parallel_with() -> AsyncGenerator[int, None]:
        async with parallel_with(*cms):
            yield 1

    async def in_a_nursery() -> AsyncGenerator[int, None]:
        async with rt.open_nursery():
            yield 1

    for make in (in_a_nursery, in_parallel_with):
        agen = make()
        assert await agen.__anext__() == 1
        with pytest.RaisesGroup(GeneratorExit):
            await agen.aclose()
    assert all(isinstance(cm.seen, GeneratorExit) for cm in cms)
    assert cms[0].seen is cms[1].seen


# ---- documented behaviour (docs/semantics.rst) ---------------------------------------------

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("REQUEST_ID", default="none")


@asynccontextmanager
async def sets_the_request_id(seen: list[str]) -> AsyncGenerator[str, None]:
    token = REQUEST_ID.set("set in __aenter__")
    try:
        yield REQUEST_ID.get()
    finally:
        seen.append(REQUEST_ID.get())  # its own task still sees it in __aexit__
        REQUEST_ID.reset(token)


async def test_a_context_variable_set_in_aenter_stays_in_the_holders_context() -> None:
    # The caveat: a context manager's contextvars apply to its own task, not to the body.
    seen: list[str] = []
    async with parallel_with(sets_the_request_id(seen)) as (value,):
        assert value == "set in __aenter__"
        assert REQUEST_ID.get() == "none"
    async with sets_the_request_id(seen):  # nested: the body would see it
        assert REQUEST_ID.get() == "set in __aenter__"
    assert seen == ["set in __aenter__", "set in __aenter__"]
    assert REQUEST_ID.get() == "none"


class RecordsItsTraceback:
    """Wraps an ``@asynccontextmanager`` object: records the traceback ``__aexit__`` got."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.tb: TracebackType | None = None

    async def __aenter__(self) -> Any:
        return await self.inner.__aenter__()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        self.tb = tb
        return await self.inner.__aexit__(kind, exc, tb)  # type: ignore[no-any-return]


@asynccontextmanager
async def rethrows_after_a_checkpoint(frames_seen: list[list[str]]) -> AsyncGenerator[None, None]:
    try:
        yield
    except ZeroDivisionError as exc:
        await rt.checkpoint()  # the others' athrow run meanwhile
        frames_seen.append([f.name for f in traceback.extract_tb(exc.__traceback__)])
        raise


async def test_each_aexit_receives_the_traceback_read_once_though_generators_rewrite_it() -> None:
    # Each athrow() adds its generator's frame to the very exception's __traceback__,
    # concurrently: what each __aexit__ is given was read once, as the body left it.
    frames_seen: list[list[str]] = []
    cms = [RecordsItsTraceback(rethrows_after_a_checkpoint(frames_seen)) for _ in range(3)]
    body_frames: list[str] = []
    with pytest.RaisesGroup(ZeroDivisionError) as caught:
        async with parallel_with(*cms):
            try:
                _ = 1 / 0
            finally:
                body_frames = [f.name for f in traceback.extract_tb(sys.exc_info()[2])]
    assert cms[0].tb is not None
    assert all(cm.tb is cms[0].tb for cm in cms)
    assert [f.name for f in traceback.extract_tb(cms[0].tb)] == body_frames
    [body] = members(caught.value)
    assert [f.name for f in traceback.extract_tb(body.__traceback__)][:1] == body_frames
    # (Inside, each generator sees the one shared object as the others' athrow left it;
    # what it was given is the traceback read once.)
    assert len(frames_seen) == 3


# ---- Ctrl+C on Trio --------------------------------------------------------------------


@pytest.mark.parametrize("position", [0, 1])
def test_ctrl_c_in_a_holder_that_just_entered_still_exits_every_entered_one(
    position: int,
) -> None:
    # On Trio (a sync test: its own trio.run, whose main task holds the block).  The signal
    # arrives in a holder task, between its enter and its park (the observer runs there).
    # Raised there, it would leave that context manager open; the holders are
    # KI-protected, so Trio delivers it to the main task, and the block closes both.
    log: Log = []
    a, b = FakeCM("a", log), FakeCM("b", log)

    def observe(event: PhaseEvent) -> None:
        if event.kind == "entered" and event.position == position:
            signal.raise_signal(signal.SIGINT)

    async def main() -> None:
        async with parallel_with(a, b, FakeCM("c", log, enter_delay=1), observer=observe):
            pytest.fail("the body ran")

    with pytest.RaisesGroup(KeyboardInterrupt, match="^KeyboardInterrupt while entering$"):
        trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert (a.exited, b.exited) == (1, 1)
    assert isinstance(a.seen, KeyboardInterrupt)
