"""A virtual clock for asyncio: the time jumps to the next timer when nothing is ready.

The asyncio examples run on it, as the Trio ones run on ``trio.testing.MockClock``: the
sleeps that stand for network latency take no real time, and the times printed are
exact.  Real I/O is polled without blocking, so it is for programs without sockets or
subprocesses.  When no timer is due, the loop waits for real for a thread's call (an
``in_thread`` call returning, through ``call_soon_threadsafe``), for a few seconds, and
then gives up: a deadlock raises instead of hanging.
"""

import asyncio
import selectors
from typing import Any

THREAD_WAIT = 10.0  # real seconds, when no timer is due, before it is a deadlock


class _JumpingSelector(selectors.DefaultSelector):
    def __init__(self, loop: "VirtualTimeLoop") -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[Any, int]]:
        ready: list[tuple[Any, int]] = super().select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:  # only a thread can wake the loop now
            ready = super().select(THREAD_WAIT)
            if ready:
                return ready
            raise RuntimeError("deadlock: no task is ready and no timer is due")
        self._loop.jump(timeout)
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock jumps to the next timer whenever nothing is ready."""

    def __init__(self) -> None:
        self._now = 0.0
        super().__init__(_JumpingSelector(self))

    def time(self) -> float:
        return self._now

    def jump(self, seconds: float) -> None:
        self._now += seconds
