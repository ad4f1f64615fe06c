"""``limit=``, ``enter_timeout=`` and ``exit_timeout=``, on the virtual clock.

Each test runs on Trio and on asyncio (``tests/runtime.py``), where a timeout is the builtin
``TimeoutError`` (``rt.too_slow()``) instead of ``trio.TooSlowError``.
"""

from __future__ import annotations

from types import TracebackType

import pytest
import trio
import trio.testing

from tests import runtime as rt
from tests.fakes import FakeCM, Log, notes, time_of
from trio_parallel_cm import ParallelExitStack, parallel_with, start_context

pytestmark = pytest.mark.runtimes


class Counted(FakeCM):
    """Counts the ``__aenter__`` and ``__aexit__`` calls in flight, shared by class."""

    in_flight = 0
    most = 0

    async def __aenter__(self) -> str:
        Counted.in_flight += 1
        Counted.most = max(Counted.most, Counted.in_flight)
        try:
            return await super().__aenter__()
        finally:
            Counted.in_flight -= 1

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        Counted.in_flight += 1
        Counted.most = max(Counted.most, Counted.in_flight)
        try:
            return await super().__aexit__(exc_type, exc, tb)
        finally:
            Counted.in_flight -= 1


@pytest.fixture
def counted() -> type[Counted]:
    Counted.in_flight = Counted.most = 0
    return Counted


async def test_limit_bounds_enters_and_exits_in_flight(
    autojump_clock: trio.testing.MockClock, counted: type[Counted]
) -> None:
    log: Log = []
    cms = [counted(f"cm{i}", log, enter_delay=1, exit_delay=1) for i in range(5)]
    async with parallel_with(*cms, limit=2):
        assert rt.current_time() == 3  # ceil(5 / 2) rounds of enters
        assert counted.most == 2
        counted.most = 0
    assert rt.current_time() == 6
    assert counted.most == 2


async def test_an_open_context_manager_holds_no_slot(
    autojump_clock: trio.testing.MockClock, counted: type[Counted]
) -> None:
    log: Log = []
    cms = [counted(f"cm{i}", log, enter_delay=1) for i in range(3)]
    async with parallel_with(*cms, limit=1):
        # Had an open one held its slot, the second could never have entered.
        assert rt.current_time() == 3
        assert counted.most == 1


async def test_limit_on_a_stack_stage(
    autojump_clock: trio.testing.MockClock, counted: type[Counted]
) -> None:
    log: Log = []
    async with ParallelExitStack() as stack:
        await stack.enter_all(*[counted(f"cm{i}", log, enter_delay=1) for i in range(4)], limit=3)
        assert rt.current_time() == 2
    assert counted.most == 3


async def test_enter_timeout_fails_the_slow_one_like_any_enter_failure(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    quick = FakeCM("quick", log)
    slow = FakeCM("slow", log, enter_delay=5)
    with pytest.RaisesGroup(
        pytest.RaisesExc(
            rt.too_slow(),
            match=r"^FakeCM did not enter within 2 s",
            check=lambda e: notes(e) == ["FakeCM (position 1) failed while entering"],
        )
    ) as caught:
        async with parallel_with(quick, slow, enter_timeout=2):
            pytest.fail("the body ran")  # pragma: no cover
    assert rt.current_time() == 2
    assert ("slow", "enter cancelled") in [(n, e) for n, e, _ in log]
    assert quick.seen is caught.value.exceptions[0]


async def test_enter_timeout_is_lifted_once_entered(autojump_clock: trio.testing.MockClock) -> None:
    log: Log = []
    cm = FakeCM("cm", log, enter_delay=1)
    async with parallel_with(cm, enter_timeout=2):
        await rt.sleep(10)  # open well past the enter deadline
    assert cm.seen is None


async def test_exit_timeout_cancels_a_slow_exit(autojump_clock: trio.testing.MockClock) -> None:
    log: Log = []
    slow = FakeCM("slow", log, exit_delay=5)
    quick = FakeCM("quick", log, exit_delay=1)
    with pytest.RaisesGroup(
        pytest.RaisesExc(
            rt.too_slow(),
            match=r"^FakeCM did not exit within 2 s",
            check=lambda e: notes(e) == ["FakeCM (position 0) failed while exiting"],
        )
    ):
        async with parallel_with(slow, quick, exit_timeout=2):
            pass
    assert slow.exit_cancelled
    assert time_of(log, "quick", "exited") == 1
    assert rt.current_time() == 2


async def test_exit_timeout_shields_the_exit_from_outer_cancellation(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    cm = FakeCM("cm", log, exit_delay=1.5)
    with rt.move_on_after(0.5) as outer:
        async with parallel_with(cm, exit_timeout=2):
            pass
    # The outer deadline passed during the exit, which finished within its budget; then
    # the caller's Cancelled propagated to its scope.
    assert not cm.exit_cancelled
    assert time_of(log, "cm", "exited") == 1.5
    assert outer.cancelled_caught


async def test_exit_timeout_still_passes_a_body_cancellation_natively(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    cm = FakeCM("cm", log, exit_delay=1)
    with rt.move_on_after(1) as outer:
        async with parallel_with(cm, exit_timeout=2):
            await rt.sleep_forever()
    assert outer.cancelled_caught
    assert isinstance(cm.seen, rt.cancelled())
    assert not cm.exit_cancelled  # shielded within its budget
    assert rt.current_time() == 2


async def test_start_context_timeouts(autojump_clock: trio.testing.MockClock) -> None:
    log: Log = []
    async with rt.open_nursery() as nursery:
        with pytest.RaisesGroup(pytest.RaisesExc(rt.too_slow(), match="did not enter within 1 s")):
            await start_context(nursery, FakeCM("slow", log, enter_delay=5), enter_timeout=1)
        handle = await start_context(nursery, FakeCM("cm", log, exit_delay=5), exit_timeout=1)
        with pytest.RaisesGroup(pytest.RaisesExc(rt.too_slow(), match="did not exit within 1 s")):
            await handle.aclose()
    assert rt.current_time() == 2


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"limit": 0}, "limit must be a whole number of at least 1, not 0"),
        ({"enter_timeout": -1}, "enter_timeout must be a number of seconds, at least 0, not -1"),
        ({"exit_timeout": float("nan")}, "exit_timeout must be a number of seconds, at least 0"),
    ],
)
def test_options_out_of_range_are_value_errors(options: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}"):
        parallel_with(**options)  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue,reportArgumentType]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"limit": 1.5}, r"limit must be an int \(a whole number of at least 1\), not 1\.5"),
        ({"limit": True}, r"limit must be an int .*, not True"),
        ({"enter_timeout": "5"}, r"enter_timeout must be a number of seconds \(int or float\)"),
        ({"exit_timeout": False}, r"exit_timeout must be a number of seconds .*, not False"),
    ],
)
def test_options_of_the_wrong_type_are_type_errors(
    options: dict[str, object], message: str
) -> None:
    with pytest.raises(TypeError, match=f"^{message}"):
        parallel_with(**options)  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue,reportArgumentType]


async def test_entering_just_as_the_enter_timeout_passes_is_too_slow_all_the_same(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Its __aenter__ cannot be interrupted and returns after the deadline, without a
    # checkpoint: it entered, too late; it exits at once, with the TooSlowError.
    log: Log = []
    seen: list[BaseException | None] = []

    class Uninterruptible(FakeCM):
        async def __aenter__(self) -> str:
            with rt.CancelScope(shield=True):
                await rt.sleep(3)
            return "late"

        async def __aexit__(
            self,
            exc_type: type[BaseException] | None,
            exc: BaseException | None,
            tb: TracebackType | None,
        ) -> bool:
            seen.append(exc)
            return False

    with pytest.RaisesGroup(
        pytest.RaisesExc(rt.too_slow(), match="did not enter within 2 s")
    ) as caught:
        async with parallel_with(Uninterruptible("late", log), enter_timeout=2):
            pytest.fail("the body ran")  # pragma: no cover
    assert seen == [caught.value.exceptions[0]]
    assert rt.current_time() == 3
    # With an exit timeout too, it is still reported as too slow to enter (the deadline
    # that fired is the enter's), not to exit.
    seen.clear()
    with pytest.RaisesGroup(
        pytest.RaisesExc(rt.too_slow(), match="did not enter within 2 s")
    ) as caught:
        async with parallel_with(Uninterruptible("late", log), enter_timeout=2, exit_timeout=9):
            pytest.fail("the body ran")  # pragma: no cover
    assert seen == [caught.value.exceptions[0]]
