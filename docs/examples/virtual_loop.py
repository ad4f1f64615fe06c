"""A virtual clock for asyncio: the time jumps to the next timer when nothing is ready.

The asyncio examples run on it, as the Trio ones run on ``trio.testing.MockClock``: the
sleeps that stand for network latency take no real time, and the times printed are
exact.  Real I/O is polled without blocking, so it is for programs without sockets or
subprocesses.  With no timer due and nothing ready, it waits for a thread to wake it
(the threads of ``in_thread``), up to ``THREAD_WAIT`` real seconds, then reports a
deadlock.
"""

import asyncio
import selectors
from typing import Any

#: Real seconds a loop with nothing to do waits for a thread; then it is a deadlock.
THREAD_WAIT = 30.0


class _JumpingSelector(selectors.DefaultSelector):
    def __init__(self, loop: "VirtualTimeLoop") -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[Any, int]]:
        ready: list[tuple[Any, int]] = super().select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            # Only a thread can wake the loop now (call_soon_threadsafe): wait for it.
            ready = super().select(THREAD_WAIT)
            if not ready:
                raise RuntimeError("deadlock: no task is ready and no timer is due")
            return ready
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
