"""``ParallelExitStack``: ordered stages, each with every guarantee of ``parallel_with``.

Each test runs on Trio and on asyncio (``tests/runtime.py``).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio
import trio.testing

from tests import runtime as rt
from tests.fakes import (
    FakeCM,
    Log,
    crashes_while_open,
    ends_while_open,
    events,
    members,
    notes,
    record,
    time_of,
)
from trio_parallel_cm import ParallelExitStack

pytestmark = pytest.mark.runtimes


async def test_stages_enter_in_order_and_unwind_in_reverse(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    db = FakeCM("db", log, enter_delay=1, exit_delay=1)
    cache = FakeCM("cache", log, enter_delay=2, exit_delay=2)
    app = FakeCM("app", log, enter_delay=1, exit_delay=1)
    body_task = rt.current_task()
    async with ParallelExitStack() as stack:
        assert await stack.enter_all(db, cache) == ("db", "cache")
        assert rt.current_time() == 2  # stage 1 concurrently
        assert await stack.enter(app) == "app"
        assert rt.current_time() == 3
    # Stage 2 exits first (3 -> 4), then stage 1 concurrently (4 -> 6).
    assert time_of(log, "app", "exit") == 3
    assert time_of(log, "db", "exit") == time_of(log, "cache", "exit") == 4
    assert rt.current_time() == 6
    tasks = [cm.enter_task for cm in (db, cache, app)]
    assert [cm.exit_task for cm in (db, cache, app)] == tasks
    assert len({id(t) for t in tasks}) == 3
    assert body_task not in tasks


async def test_mapping_stage_yields_a_dict(autojump_clock: trio.testing.MockClock) -> None:
    log: Log = []
    async with ParallelExitStack() as stack:
        ctx = await stack.enter_all({"db": FakeCM("d", log), "cache": FakeCM("c", log)})
        assert ctx == {"db": "d", "cache": "c"}


async def test_body_exception_reaches_the_latest_stage_first_then_what_it_lets_through(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    early = FakeCM("early", log)
    late = FakeCM("late", log, exit_delay=1)
    error = KeyError("body")
    with pytest.RaisesGroup(pytest.RaisesExc(KeyError, check=lambda e: e is error)):
        async with ParallelExitStack() as stack:
            await stack.enter(early)
            await stack.enter(late)
            raise error
    assert late.seen is error
    assert early.seen is error
    # The earlier stage starts exiting once the later one has finished.
    assert time_of(log, "late", "exited") == time_of(log, "early", "exit") == 1
    assert events(log).index(("late", "exited")) < events(log).index(("early", "exit"))

    log.clear()
    early = FakeCM("early", log)
    suppressing = FakeCM("late", log, suppress=True)
    async with ParallelExitStack() as stack:
        await stack.enter(early)
        await stack.enter(suppressing)
        raise error
    # Suppressed by the later stage: the earlier one exits as if nothing happened.
    assert suppressing.seen is error
    assert early.seen is None


async def test_a_later_stage_exit_failure_reaches_the_earlier_stage(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    failure = OSError("app failed to stop")
    early = FakeCM("early", log)
    with pytest.RaisesGroup(
        pytest.RaisesExc(
            OSError,
            check=lambda e: (
                e is failure and notes(e) == ["FakeCM (stage 2, position 0) failed while exiting"]
            ),
        ),
        match=r"^1 of 2 context managers failed \(1 exiting\)$",
    ):
        async with ParallelExitStack() as stack:
            await stack.enter(early)
            await stack.enter(FakeCM("late", log, exit_error=failure))
    assert early.seen is failure


async def test_enter_all_failure_leaves_earlier_stages_open(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    db = FakeCM("db", log)
    error = OSError("refused")
    entered = FakeCM("entered", log, exit_delay=1)
    async with ParallelExitStack() as stack:
        await stack.enter(db)
        with pytest.RaisesGroup(
            pytest.RaisesExc(
                OSError,
                check=lambda e: notes(e) == ["FakeCM (stage 2, position 1) failed while entering"],
            )
        ):
            await stack.enter_all(entered, FakeCM("failing", log, enter_delay=1, enter_error=error))
        # The stage's entered member exited with the failure; stage 1 is still open.
        assert entered.seen is error
        assert db.exited == 0
        record(log, "body", "goes on")
    assert db.exited == 1
    assert db.seen is None


async def test_a_member_failing_while_open_cancels_the_stack_body(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    boom = ValueError("background")
    early = FakeCM("early", log)
    late = FakeCM("late", log, exit_delay=1)
    with pytest.RaisesGroup(pytest.RaisesGroup(ValueError)):
        async with ParallelExitStack() as stack:
            await stack.enter_all(early, crashes_while_open(log, "crasher", 2, boom))
            await stack.enter(late)
            try:
                await rt.sleep(10)
            finally:
                record(log, "body", "cancelled")
    assert time_of(log, "body", "cancelled") == 2
    # The later stage sits inside the crasher in every nesting order: it unwinds first,
    # uncancelled, with what the body let through (nothing: our cancellation absorbed).
    assert late.seen is None and not late.exit_cancelled
    assert time_of(log, "late", "exited") == time_of(log, "crasher", "exit") == 3
    order = events(log)
    assert order.index(("late", "exited")) < order.index(("crasher", "exit"))
    # The rest of its own stage exits after it, with its failure.
    assert order.index(("crasher", "exit")) < order.index(("early", "exit"))
    assert members(early.seen) == [boom]


async def test_stages_are_entered_from_the_body_only(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    async with ParallelExitStack() as stack, rt.open_nursery() as nursery:

        async def from_another_task() -> None:
            with pytest.raises(RuntimeError, match="from its body only"):
                await stack.enter(FakeCM("other", log))

        nursery.start_soon(from_another_task)
    with pytest.raises(RuntimeError, match="has started closing"):
        await stack.enter(FakeCM("late", log))
    assert events(log) == []


@rt.OUTER_CANCELLATIONS
async def test_outer_cancellation_while_a_stage_enters(
    autojump_clock: trio.testing.MockClock, deadline: Callable[[float], rt.Deadline]
) -> None:
    log: Log = []
    first = FakeCM("first", log)
    quick = FakeCM("quick", log)
    slow = FakeCM("slow", log, enter_delay=5)
    with deadline(1) as outer:
        async with ParallelExitStack() as stack:
            await stack.enter(first)
            await stack.enter_all(quick, slow)
            pytest.fail("the stage entered")  # pragma: no cover
    assert outer.cancelled_caught
    assert ("slow", "enter cancelled") in events(log)
    assert isinstance(quick.seen, rt.cancelled())
    assert isinstance(first.seen, rt.cancelled())
    assert first.exited == quick.exited == 1


async def test_the_earlier_stage_receives_the_newest_exception(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    early = FakeCM("early", log)
    stop_failure = OSError("app failed to stop")
    body_error = KeyError("body")
    with pytest.RaisesGroup(
        pytest.RaisesExc(KeyError, check=lambda e: e is body_error),
        pytest.RaisesExc(OSError, check=lambda e: e is stop_failure),
    ):
        async with ParallelExitStack() as stack:
            await stack.enter(early)
            await stack.enter(FakeCM("late", log, exit_error=stop_failure))
            raise body_error
    # As nested blocks: the later stage's failure supersedes the body's exception, which
    # travels on as its __context__ (and, not suppressed, leaves in the group).
    assert early.seen is stop_failure
    assert stop_failure.__context__ is body_error


async def test_a_member_ending_by_itself_while_its_stage_enters_fails_that_stage(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    first = FakeCM("first", log)
    with pytest.RaisesGroup(pytest.RaisesGroup(RuntimeError, match="^1 of 2")):
        async with ParallelExitStack() as stack:
            await stack.enter(first)
            await stack.enter_all(
                ends_while_open(log, "timer", 1), FakeCM("slow", log, enter_delay=2)
            )
            pytest.fail("the stage entered")  # pragma: no cover
    assert ("slow", "enter cancelled") in events(log)
    assert rt.current_time() == 1
    # The first stage received what the body raised: the second stage's enter failure.
    assert members(first.seen)[0].args[0].startswith("ends_while_open ended by itself")


async def test_several_members_failing_while_open_reach_the_earlier_stage_together(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Both fail while open (concurrently, as nested blocks would have them whichever way
    # they were nested): the earlier stage receives both, one group in position order.
    log: Log = []
    early = FakeCM("early", log)
    first, second = ValueError("first"), KeyError("second")
    with pytest.RaisesGroup(pytest.RaisesGroup(ValueError), pytest.RaisesGroup(KeyError)):
        async with ParallelExitStack() as stack:
            await stack.enter(early)
            await stack.enter_all(
                crashes_while_open(log, "a", 1, first), crashes_while_open(log, "b", 2, second)
            )
            with rt.CancelScope(shield=True):
                await rt.sleep(3)  # both fail while the body still runs
    assert [leaves for group in members(early.seen) for leaves in members(group)] == [
        first,
        second,
    ]
