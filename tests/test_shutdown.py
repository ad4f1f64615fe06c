"""One shutdown budget for the whole exit phase: ``shutdown_timeout=`` (issue 12).

Each test runs on Trio and on asyncio (``tests/runtime.py``), where a timeout is the builtin
``TimeoutError`` (``rt.too_slow()``) instead of ``trio.TooSlowError``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio
import trio.testing

from tests import runtime as rt
from tests.fakes import FakeCM, Log, crashes_then_cleans_up, members, notes, time_of
from trio_parallel_cm import ParallelExitStack, ResourceGraph, parallel_with

pytestmark = pytest.mark.runtimes

BUDGET_MESSAGE = r"did not exit within the shutdown budget \(3 s for every exit\)\n"


async def test_what_is_still_exiting_when_the_budget_runs_out_fails(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    quick, stuck = FakeCM("quick", log, exit_delay=1), FakeCM("stuck", log, exit_delay=10)
    with pytest.RaisesGroup(
        pytest.RaisesExc(rt.too_slow(), match=f"^FakeCM {BUDGET_MESSAGE}")
    ) as caught:
        async with parallel_with(quick, stuck, shutdown_timeout=3):
            await rt.sleep(1)
    assert notes(members(caught.value)[0]) == ["FakeCM (position 1) failed while exiting"]
    assert rt.current_time() == 1 + 3  # the budget starts when the body ends
    assert not quick.exit_cancelled
    assert stuck.exit_cancelled
    assert time_of(log, "quick", "exited") == 2


@rt.OUTER_CANCELLATIONS
async def test_an_outer_cancellation_waits_for_the_budget(
    autojump_clock: trio.testing.MockClock, deadline: Callable[[float], rt.Deadline]
) -> None:
    log: Log = []
    quick, stuck = FakeCM("quick", log, exit_delay=2), FakeCM("stuck", log, exit_delay=10)
    # The budget's failure is raised on, as any failure is.  A scope takes its Cancelled
    # out of the group; by design (_runtime/_asyncio.py: ``grouped``) a native
    # cancellation that comes out with failures is not put in their group: the group goes
    # through the cancelling block, which does not see its cancellation caught.
    with pytest.RaisesGroup(rt.too_slow()), deadline(1) as scope:
        async with parallel_with(quick, stuck, shutdown_timeout=3):
            await rt.sleep(5)
    native = deadline is rt.cancel_after and not rt.on_trio()
    assert scope.cancelled_caught is not native
    # Each received its own Cancelled (the body was cancelled), and cleaned up shielded.
    assert isinstance(quick.seen, rt.cancelled())
    assert isinstance(stuck.seen, rt.cancelled())
    assert not quick.exit_cancelled
    assert time_of(log, "quick", "exited") == 3
    assert stuck.exit_cancelled
    assert time_of(log, "stuck", "exit cancelled") == 4
    assert rt.current_time() == 4


async def test_the_caller_cancelled_while_the_exits_run_does_not_cut_the_budget_short(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    slow = FakeCM("slow", log, exit_delay=2)
    with rt.move_on_after(1) as scope:
        async with parallel_with(slow, shutdown_timeout=3):
            pass
    assert not slow.exit_cancelled  # without a budget, the caller's cancellation reaches it
    assert time_of(log, "slow", "exited") == 2
    assert scope.cancelled_caught


async def test_each_exit_timeout_still_applies_within_the_budget(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    first, second = FakeCM("first", log, exit_delay=10), FakeCM("second", log, exit_delay=10)
    with pytest.RaisesGroup(
        pytest.RaisesExc(
            rt.too_slow(),
            match=r"^FakeCM did not exit within the shutdown budget \(5 s for every exit\)\n",
        ),
        pytest.RaisesExc(rt.too_slow(), match=r"^FakeCM did not exit within 2 s\n"),
    ):
        async with ParallelExitStack(shutdown_timeout=5) as stack:
            await stack.enter(first, exit_timeout=4)
            await stack.enter(second, exit_timeout=2)
    # The later stage first, cut by its own timeout; then the earlier one, by the budget.
    assert time_of(log, "second", "exit cancelled") == 2
    assert time_of(log, "first", "exit") == 2
    assert time_of(log, "first", "exit cancelled") == 5


async def test_a_graph_exits_in_dependency_order_within_one_budget(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    config, app = FakeCM("config", log, exit_delay=2), FakeCM("app", log, exit_delay=2)
    graph = ResourceGraph(shutdown_timeout=3)
    node = graph.add(lambda: config, name="config")
    graph.add(lambda config: app, node, name="app")
    with pytest.RaisesGroup(pytest.RaisesExc(rt.too_slow(), match=f"^config {BUDGET_MESSAGE}")):
        async with graph:
            pass
    assert time_of(log, "app", "exited") == 2
    assert time_of(log, "config", "exit") == 2
    assert time_of(log, "config", "exit cancelled") == 3  # what was left of the budget


async def test_the_budget_bounds_the_exits_after_an_enter_failure(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    entered = FakeCM("entered", log, exit_delay=10)
    refused = OSError("refused")
    failing = FakeCM("failing", log, enter_delay=1, enter_error=refused)
    # (On asyncio the timeout, TimeoutError, is an OSError too: the refusal by identity.)
    with pytest.RaisesGroup(pytest.RaisesExc(OSError, check=lambda e: e is refused), rt.too_slow()):
        async with parallel_with(entered, failing, shutdown_timeout=3):
            pytest.fail("the body ran")  # pragma: no cover
    assert rt.current_time() == 1 + 3


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (-1, ValueError, "shutdown_timeout must be a number of seconds, at least 0, not -1"),
        ("3", TypeError, "shutdown_timeout must be a number of seconds"),
    ],
)
def test_a_bad_budget_is_refused_before_anything_is_entered(
    value: object, error: type[Exception], message: str
) -> None:
    cm = FakeCM("never", [])
    with pytest.raises(error, match=message):
        parallel_with(cm, shutdown_timeout=value)  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType,reportCallIssue]
    with pytest.raises(error, match=message):
        ParallelExitStack(shutdown_timeout=value)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    with pytest.raises(error, match=message):
        ResourceGraph(shutdown_timeout=value)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    assert cm.entered == 0


async def test_a_cleanup_after_a_failure_while_open_ends_by_the_budget_too(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Stage 1 crashes while stage 2 exits: stage 2, inside it in every nesting order,
    # finishes first (cut by the budget), then stage 1 cleans up with what is left of the
    # budget: nothing, so its slow cleanup is cut at once.
    log: Log = []

    # Cut short, its cleanup raises Cancelled (the crash only its context, as in nested
    # blocks): its failure is the budget's, in phase "open".
    with pytest.RaisesGroup(
        pytest.RaisesExc(rt.too_slow(), match=r"^crashes_then_cleans_up did not exit .*\n.* open$"),
        pytest.RaisesExc(rt.too_slow(), match="^FakeCM did not exit"),
    ):
        async with ParallelExitStack(shutdown_timeout=3) as stack:
            worker = crashes_then_cleans_up(
                log, "worker", 1, ValueError("crash"), 10, shielded=False
            )
            await stack.enter(worker)
            await stack.enter(FakeCM("slow", log, exit_delay=5))
    assert time_of(log, "worker", "cleanup") == 3
    assert time_of(log, "worker", "cleanup cut") == 3
    assert rt.current_time() == 3
