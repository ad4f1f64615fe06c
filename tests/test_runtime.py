"""The suite's runs on several runtimes (``tests/runtime.py``): each id runs where it says."""

from __future__ import annotations

import asyncio

import pytest
import sniffio
import trio
import trio.testing

from tests import runtime as rt
from tests.aio import VirtualTimeLoop
from tests.guard import guard_cancelled
from trio_parallel_cm import parallel_with

pytestmark = pytest.mark.runtimes


async def test_each_id_runs_on_its_loop(runtime: str) -> None:
    # Without autojump_clock: trio, asyncio and uvloop; a block runs on each.
    async with parallel_with(rt.open_nursery()):
        pass
    if runtime == "trio":
        assert sniffio.current_async_library() == "trio"
        assert not isinstance(trio.lowlevel.current_clock(), trio.testing.MockClock)
        return
    import uvloop

    assert sniffio.current_async_library() == "asyncio"
    loop = asyncio.get_running_loop()
    assert loop.get_debug()
    assert type(loop) is (uvloop.Loop if runtime == "uvloop" else VirtualTimeLoop)


async def test_a_test_on_the_clock_runs_on_virtual_time(
    autojump_clock: trio.testing.MockClock, runtime: str
) -> None:
    # With autojump_clock: trio and asyncio only, where an hour passes at once.
    assert runtime == sniffio.current_async_library()
    start = rt.current_time()
    await rt.sleep(3600)
    assert rt.current_time() - start == 3600
    assert rt.too_slow() is (trio.TooSlowError if runtime == "trio" else TimeoutError)
    assert rt.cancelled() is (trio.Cancelled if runtime == "trio" else asyncio.CancelledError)


async def test_the_guard_fails_a_test_that_a_cancellation_escapes() -> None:
    async def leaks_cancelled() -> None:
        await rt.checkpoint()

    with rt.CancelScope() as scope:
        scope.cancel()
        escaped = r"^a cancellation \((trio\.Cancelled|asyncio\.CancelledError)\) escaped"
        with pytest.raises(AssertionError, match=escaped):
            await guard_cancelled(leaks_cancelled)()
    assert not scope.cancelled_caught


async def test_wait_all_tasks_blocked_waits_for_the_others_to_block(
    autojump_clock: trio.testing.MockClock,
) -> None:
    steps: list[int] = []

    async def steps_then_blocks() -> None:
        for i in range(5):
            steps.append(i)
            await rt.checkpoint()
        await rt.sleep(1)
        steps.append(5)

    async with rt.open_nursery() as nursery:
        nursery.start_soon(steps_then_blocks)
        await rt.wait_all_tasks_blocked()
        assert steps == [0, 1, 2, 3, 4]
        assert rt.current_time() == 0
    assert steps == [0, 1, 2, 3, 4, 5]


@pytest.mark.trio_only(reason="the rule: a trio_only test runs once, on Trio")
async def test_a_trio_only_test_runs_on_trio_only() -> None:
    assert sniffio.current_async_library() == "trio"
