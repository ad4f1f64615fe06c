"""Suite-wide guard: a ``trio.Cancelled`` escaping a test function fails the test.

pytest-trio (0.8) runs each test in a task under its own cancel scopes, which silently
absorb a ``Cancelled`` that escapes the test function: the test would pass without running
its remaining assertions.  Every async test is wrapped so that such an escape becomes an
``AssertionError``.  ``test_guard.py`` checks the guard itself.
"""

from __future__ import annotations

import faulthandler
import sys
from collections.abc import Callable, Generator, Iterator
from typing import Any

import pytest

from tests.guard import guard_cancelled

# A deadlock on the virtual clock (every task blocked, no deadline left) would hang forever:
# such a test ends the run, with every thread's traceback, instead of hanging CI.
HANG_SECONDS = 120


@pytest.fixture(autouse=True)
def _hang_watchdog() -> Iterator[None]:
    faulthandler.dump_traceback_later(HANG_SECONDS, exit=True, file=sys.stderr)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """Wrap the async test function before pytest-trio wraps it in its runner."""
    if isinstance(item, pytest.Function):
        hypothesis: Any = getattr(item.obj, "hypothesis", None)
        if hypothesis is not None:
            inner: Callable[..., Any] = hypothesis.inner_test
            hypothesis.inner_test = guard_cancelled(inner)
        else:
            item.obj = guard_cancelled(item.obj)
    yield
