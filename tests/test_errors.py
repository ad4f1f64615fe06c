"""Failures as data: the dedicated groups, their records, and ``failures_of``.

Each test runs on Trio and on asyncio (``tests/runtime.py``).
"""

from __future__ import annotations

from typing import cast

import pytest
import trio
import trio.testing

from tests import runtime as rt
from tests.fakes import FakeCM, Log, members
from trio_parallel_cm import (
    ContextFailure,
    ParallelBaseExceptionGroup,
    ParallelExceptionGroup,
    ParallelExitStack,
    failures_of,
    parallel_with,
    start_context,
)

pytestmark = pytest.mark.runtimes


def records(group: BaseException | None) -> tuple[ContextFailure, ...]:
    """``group.failures``, failing the test if ``group`` is not one of ours."""
    assert isinstance(group, ParallelBaseExceptionGroup)
    failures: tuple[ContextFailure, ...] = group.failures
    return failures


def kind(exc: object) -> type:
    """``type(exc)``, without narrowing ``exc`` (a narrowed generic group types as Unknown)."""
    return type(exc)


def split(
    group: BaseException, condition: type[BaseException]
) -> tuple[BaseException | None, BaseException | None]:
    """``group.split(condition)``, typed."""
    assert isinstance(group, BaseExceptionGroup)
    parts = group.split(condition)  # pyright: ignore[reportUnknownMemberType,reportUnknownVariableType]
    return parts[0], cast("BaseException | None", parts[1])


async def failing_block(log: Log) -> BaseException:
    """A block whose body and two of three context managers fail, on the virtual clock."""
    entered = FakeCM("entered", log, exit_delay=1, exit_error=KeyError("late"))
    opened = FakeCM("opened", log, exit_error=OSError("gone"))
    with pytest.RaisesGroup(ValueError, KeyError, OSError) as caught:
        async with parallel_with(entered, FakeCM("fine", log), opened):
            await rt.sleep(2)
            raise ValueError("body")
    return caught.value


async def test_records_say_who_failed_when_and_in_which_phase(
    autojump_clock: trio.testing.MockClock,
) -> None:
    group = await failing_block([])
    assert kind(group) is ParallelExceptionGroup
    assert (
        str(group)
        == "the body raised; 2 of 3 context managers failed (2 exiting) (3 sub-exceptions)"
    )
    body, late, gone = members(group)
    assert [(f.name, f.position, f.phase, f.exception, f.elapsed) for f in records(group)] == [
        ("body", None, "body", body, 2.0),
        ("FakeCM", 0, "exiting", late, 3.0),
        ("FakeCM", 2, "exiting", gone, 2.0),
    ]
    assert all(f.stage is None for f in records(group))


async def test_split_subgroup_and_except_star_keep_the_records_of_what_they_keep(
    autojump_clock: trio.testing.MockClock,
) -> None:
    group = await failing_block([])
    match, rest = split(group, KeyError)
    assert kind(match) is ParallelExceptionGroup
    assert [f.exception for f in records(match)] == members(match)
    assert [f.phase for f in records(match)] == ["exiting"]
    assert kind(rest) is ParallelExceptionGroup
    assert [f.name for f in records(rest)] == ["body", "FakeCM"]
    sub, _ = split(group, OSError)
    assert [f.exception for f in records(sub)] == members(sub)
    assert isinstance(group, BaseExceptionGroup)
    same = group.subgroup(lambda e: e is sub or isinstance(e, OSError))  # pyright: ignore[reportUnknownMemberType,reportUnknownVariableType,reportUnknownLambdaType]
    assert [f.exception for f in records(same)] == members(sub)  # pyright: ignore[reportUnknownArgumentType]

    # `except*` is a syntax error before 3.11, so this part is compiled at run time.
    namespace: dict[str, object] = {"group": group}
    exec(EXCEPT_STAR, namespace)
    assert namespace["caught"] == [
        (ParallelExceptionGroup, ["exiting"]),
        (ParallelExceptionGroup, ["body", "exiting"]),
    ]


EXCEPT_STAR = """
caught = []
try:
    raise group
except* KeyError as keys:
    caught.append((type(keys), [f.phase for f in keys.failures]))
except* (ValueError, OSError) as others:
    caught.append((type(others), [f.phase for f in others.failures]))
"""


async def test_a_base_exception_member_makes_the_base_group(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    with pytest.RaisesGroup(KeyboardInterrupt) as caught:
        async with parallel_with(FakeCM("a", log, exit_error=KeyboardInterrupt())):
            pass
    group: BaseException = caught.value
    assert kind(group) is ParallelBaseExceptionGroup
    assert not isinstance(group, ExceptionGroup)
    match, rest = split(group, KeyboardInterrupt)
    assert kind(match) is ParallelBaseExceptionGroup
    assert rest is None


async def test_failures_of_walks_chains_and_rewrapped_groups(
    autojump_clock: trio.testing.MockClock,
) -> None:
    group = await failing_block([])
    body, late, gone = members(group)
    # Chained by a user.
    chained = RuntimeError("start-up failed")
    chained.__cause__ = group
    assert [f.exception for f in failures_of(chained)] == [body, late, gone]
    # Re-wrapped in the user's own group: each failure carries its own record.
    rewrapped = BaseExceptionGroup("mine", [late, ValueError("other"), gone])
    assert [(f.phase, f.exception) for f in failures_of(rewrapped)] == [
        ("exiting", late),
        ("exiting", gone),
    ]
    # A bare failure, caught after except* took it out of its group.
    assert [f.exception for f in failures_of(gone)] == [gone]
    assert failures_of(ValueError("unrelated")) == []
    assert failures_of(None) == []


async def test_stack_records_name_the_stage(autojump_clock: trio.testing.MockClock) -> None:
    log: Log = []
    with pytest.RaisesGroup(OSError) as caught:
        async with ParallelExitStack() as stack:
            await stack.enter(FakeCM("db", log))
            await stack.enter(FakeCM("app", log, exit_error=OSError("stop")))
    [record] = failures_of(caught.value)
    assert (record.stage, record.position, record.phase) == (2, 0, "exiting")


async def test_start_context_raises_the_dedicated_group(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    async with rt.open_nursery() as nursery:
        with pytest.RaisesGroup(OSError) as caught:
            await rt.sleep(1)
            await start_context(nursery, FakeCM("c", log, enter_error=OSError()), name="db")
    [record] = records(caught.value)
    assert (record.name, record.phase, record.elapsed) == ("db", "entering", 0.0)


async def test_derived_groups_count_what_they_keep(autojump_clock: trio.testing.MockClock) -> None:
    group = await failing_block([])
    match, rest = split(group, KeyError)
    assert str(match).startswith("1 of 3 context managers failed (1 exiting)")
    assert str(rest).startswith("the body raised; 1 of 3 context managers failed (1 exiting)")


async def test_an_outer_cancellation_leaves_the_records_of_the_failures_it_came_with(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # By a cancel scope and, on asyncio, by a native Task.cancel (rt.cancel_after; on Trio
    # a cancel scope again): the exit that fails at once, seeing the cancellation.
    error = OSError("could not close")

    class FailsToExit(FakeCM):
        async def __aexit__(self, *args: object) -> bool:
            raise error

    for deadline in (rt.move_on_after, rt.cancel_after):
        log: Log = []
        with pytest.RaisesGroup(OSError) as caught, deadline(1) as scope:
            async with parallel_with({"a": FailsToExit("a", log), "b": FakeCM("b", log)}):
                await rt.sleep(5)
        # By design (_runtime/_asyncio.py: ``grouped``) a native cancellation is not put in
        # the group: the block it cancelled does not see it caught; a scope takes its own
        # out of the group.
        assert scope.cancelled_caught is (rt.on_trio() or deadline is rt.move_on_after)
        assert str(caught.value) == "1 of 2 context managers failed (1 exiting) (1 sub-exception)"
        [record] = records(caught.value)
        assert (record.name, record.position, record.phase) == ("a", 0, "exiting")
        assert record.exception is error
        assert isinstance(error.__context__, rt.cancelled())


async def test_a_cancel_scope_splitting_the_group_keeps_the_body_record(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []

    async def fails_shielded() -> None:
        with rt.CancelScope(shield=True):
            await rt.sleep(1)
        raise ValueError("child")

    with pytest.RaisesGroup(pytest.RaisesGroup(ValueError)) as caught:
        with rt.CancelScope() as outer:
            async with parallel_with(FakeCM("a", log)), rt.open_nursery() as nursery:
                nursery.start_soon(fails_shielded)
                outer.cancel()
                await rt.sleep_forever()
    # The scope derived a new body group without its Cancelled: it is still the body's.
    [record] = records(caught.value)
    assert (record.name, record.phase, record.exception) == (
        "body",
        "body",
        members(caught.value)[0],
    )
    assert str(caught.value).startswith("the body raised (1 sub-exception)")
