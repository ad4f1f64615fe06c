"""Suite-wide: the guard, the hang watchdog, and the runs of a test on several runtimes.

The guard: pytest-trio (0.8) runs each test in a task under its own cancel scopes, which
silently absorb a ``Cancelled`` that escapes the test function: the test would pass without
running its remaining assertions.  Every async test is wrapped so that such an escape (a
``trio.Cancelled``, or on asyncio an ``asyncio.CancelledError``) becomes an
``AssertionError``.  ``test_guard.py`` checks the guard itself.

The runtimes (``tests/runtime.py`` describes the marks and the vocabulary): a test marked
``runtimes`` is parametrized by runtime; pytest-trio's trio mode marks every coroutine test
``trio``, so the mark is taken off the asyncio and uvloop items (``trylast``, after
pytest-trio's), which ``pytest_pyfunc_call`` runs here instead.
"""

from __future__ import annotations

import asyncio
import faulthandler
import inspect
import sys
from collections.abc import Callable, Coroutine, Generator, Iterator
from typing import Any

import pytest

from tests.aio import VirtualTimeLoop
from tests.guard import guard_cancelled
from tests.runtime import ASYNCIO_FAMILY, RUNTIMES, UVLOOP

# A deadlock on the virtual clock (every task blocked, no deadline left) would hang forever:
# such a test ends the run, with every thread's traceback, instead of hanging CI.
HANG_SECONDS = 120

#: The fixture that carries an item's runtime (not an argument of the test function).
RUNTIME = "runtime"


def pytest_configure(config: pytest.Config) -> None:
    for line in (
        "runtimes: run each async test on Trio, asyncio and (without autojump_clock) uvloop",
        "trio_only(reason): a test of a Trio-only API, in a module marked runtimes",
        "asyncio_gap(reason): a library gap on asyncio: its asyncio runs xfail strictly",
    ):
        config.addinivalue_line("markers", line)


@pytest.fixture(autouse=True)
def _hang_watchdog() -> Iterator[None]:
    faulthandler.dump_traceback_later(HANG_SECONDS, exit=True, file=sys.stderr)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture
def runtime(request: pytest.FixtureRequest) -> str:
    """The runtime of a ``runtimes`` item (set by ``pytest_generate_tests``)."""
    value: str = request.param
    return value


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    definition = metafunc.definition
    if definition.get_closest_marker("runtimes") is None or not inspect.iscoroutinefunction(
        metafunc.function
    ):
        return
    trio_only = definition.get_closest_marker("trio_only")
    if trio_only is not None:
        assert trio_only.kwargs.get("reason"), f"{definition.name}: trio_only(reason=...)"
        names: tuple[str, ...] = ("trio",)
    elif "autojump_clock" in metafunc.fixturenames:
        names = RUNTIMES[:2]  # waits on the virtual clock: no uvloop
    else:
        names = RUNTIMES
    gap = definition.get_closest_marker("asyncio_gap")
    xfail = pytest.mark.xfail(strict=True, reason=gap.kwargs["reason"]) if gap else None
    params = [
        pytest.param(name, id=name, marks=[xfail] if xfail and name in ASYNCIO_FAMILY else [])
        for name in names
    ]
    metafunc.fixturenames.append(RUNTIME)
    metafunc.parametrize(RUNTIME, params, indirect=True)


def runtime_of(item: pytest.Item) -> str | None:
    """The runtime of a ``runtimes`` item (another test's ``runtime`` parameter is its own)."""
    callspec = getattr(item, "callspec", None)
    if callspec is None or item.get_closest_marker("runtimes") is None:
        return None
    name: str | None = callspec.params.get(RUNTIME)
    return name


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if runtime_of(item) in ASYNCIO_FAMILY:
            item.own_markers[:] = [m for m in item.own_markers if m.name != "trio"]
            assert item.get_closest_marker("trio") is None


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


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run an asyncio or uvloop item, on its loop, in debug mode."""
    name = runtime_of(pyfuncitem)
    if name not in ASYNCIO_FAMILY:
        return None
    test: Callable[..., Coroutine[Any, Any, object]] = pyfuncitem.obj  # (the guard's wrapper)
    kwargs = {arg: pyfuncitem.funcargs[arg] for arg in inspect.signature(test).parameters}
    main = test(**kwargs)
    with asyncio.Runner(debug=True, loop_factory=_loop_of(name)) as r:
        r.run(main)
    return True


def _loop_of(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if name == UVLOOP:
        import uvloop

        return uvloop.new_event_loop
    return VirtualTimeLoop
