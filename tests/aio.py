"""asyncio in the tests: a loop with virtual time, and a runner.

``VirtualTimeLoop`` (the documentation's, ``docs/examples/virtual_loop.py``) is an
``asyncio.SelectorEventLoop`` whose clock jumps to the next timer whenever nothing is
ready, as Trio's ``autojump_clock`` does: ``asyncio.sleep(5)`` takes no real time, and
timings are exact.  Real I/O is polled without blocking, so it is for tests without
sockets.  A run with nothing scheduled and nothing ready waits for a thread to wake it
(``in_thread``'s), up to 30 real seconds; then it is a deadlock: it raises instead of
hanging.  While a timer is due, the clock jumps even if a thread is busy: a test holds its
threads at gates (``tests/test_thread.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Final, TypeVar

from tests.examples import load_example

T = TypeVar("T")


#: The documentation's loop (``docs/examples/virtual_loop.py``): one for the examples and
#: the tests.
VirtualTimeLoop: Final[type[asyncio.SelectorEventLoop]] = load_example(
    "virtual_loop"
).VirtualTimeLoop


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on a ``VirtualTimeLoop``, in debug mode."""
    with asyncio.Runner(debug=True, loop_factory=VirtualTimeLoop) as r:
        return r.run(main)


def now() -> float:
    return asyncio.get_running_loop().time()
