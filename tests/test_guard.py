"""The suite's own guard: a Cancelled escaping a test function must fail the test."""

from __future__ import annotations

import pytest
import trio

from tests.guard import guard_cancelled


async def test_guard_turns_an_escaping_cancelled_into_a_failure() -> None:
    async def leaks_cancelled() -> None:
        await trio.lowlevel.checkpoint()

    with trio.CancelScope() as scope:
        scope.cancel()
        with pytest.raises(
            AssertionError, match=r"a cancellation \(trio\.Cancelled\) escaped the test function"
        ):
            await guard_cancelled(leaks_cancelled)()
    assert not scope.cancelled_caught


async def test_guard_lets_other_outcomes_through() -> None:
    async def returns() -> int:
        return 7

    async def raises() -> None:
        raise KeyError("k")

    assert await guard_cancelled(returns)() == 7
    with pytest.raises(KeyError):
        await guard_cancelled(raises)()


def test_guard_leaves_synchronous_functions_alone() -> None:
    def sync() -> int:
        return 1

    assert guard_cancelled(sync) is sync
