"""asyncio in the tests: a loop with virtual time, and a runner.

``VirtualTimeLoop`` is an ``asyncio.SelectorEventLoop`` whose clock jumps to the next
timer whenever nothing is ready, as Trio's ``autojump_clock`` does: ``asyncio.sleep(5)``
takes no real time, and timings are exact.  Real I/O is polled without blocking, so it
is for tests without sockets.  A run with nothing scheduled and nothing ready is a
deadlock: it raises instead of hanging.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class _JumpingSelector(selectors.DefaultSelector):
    def __init__(self, loop: VirtualTimeLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[Any, int]]:
        ready: list[tuple[Any, int]] = super().select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            raise RuntimeError("deadlock: no task is ready and no timer is due")
        self._loop.jump(timeout)
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock jumps to the next timer (see the module's notes)."""

    def __init__(self) -> None:
        self._now = 0.0
        super().__init__(_JumpingSelector(self))

    def time(self) -> float:
        return self._now

    def jump(self, seconds: float) -> None:
        self._now += seconds


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on a ``VirtualTimeLoop``, in debug mode."""
    with asyncio.Runner(debug=True, loop_factory=VirtualTimeLoop) as r:
        return r.run(main)


def now() -> float:
    return asyncio.get_running_loop().time()
