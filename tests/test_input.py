"""Bad input: a clear error before anything is entered, and nothing leaks.

Each async test runs on Trio and on asyncio (``tests/runtime.py``).
"""

from __future__ import annotations

import contextlib
import gc
import inspect
from typing import Any

import pytest

from tests import runtime as rt
from tests.fakes import FakeCM, Log
from trio_parallel_cm import ParallelExitStack, parallel_with, start_context

pytestmark = pytest.mark.runtimes


async def open_db() -> None:
    pass  # pragma: no cover


def test_a_coroutine_is_rejected_and_closed_without_a_warning() -> None:
    log: Log = []
    cm = FakeCM("a", log)
    coro = open_db()
    with pytest.raises(
        TypeError, match=r"argument 1 is a coroutine .*was a context-manager factory awaited"
    ):
        parallel_with(cm, coro)  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue,reportArgumentType]
    # Closed: a "never awaited" RuntimeWarning (an error in this suite) cannot follow.
    assert inspect.getcoroutinestate(coro) == "CORO_CLOSED"
    gc.collect()
    assert log == []


def test_a_synchronous_context_manager_is_rejected_by_name() -> None:
    # (contextlib.nullcontext would not do: it is an async context manager too.)
    with pytest.raises(
        TypeError,
        match=r"^argument 0 \(.*\) does not support the asynchronous context manager protocol "
        r"\(missed __aenter__ and __aexit__ methods\): it is a synchronous context manager\.",
    ):
        parallel_with(contextlib.ExitStack())  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue,reportArgumentType]


class OnlyEnter:
    async def __aenter__(self) -> None:
        pass  # pragma: no cover


class OnlyExit:
    async def __aexit__(self, *exc: object) -> None:
        pass  # pragma: no cover


@pytest.mark.parametrize(
    ("obj", "missed"),
    [
        (OnlyEnter(), r"\(missed __aexit__ method\)$"),
        (OnlyExit(), r"\(missed __aenter__ method\)$"),
        (42, r"\(missed __aenter__ and __aexit__ methods\)$"),
        (FakeCM, r"\(missed __aenter__ and __aexit__ methods\)\. Did you forget to call it\?$"),
    ],
)
def test_the_message_names_exactly_the_methods_missed(obj: object, missed: str) -> None:
    # CPython 3.11+: "'A' object does not support the asynchronous context manager
    # protocol (missed __aexit__ method)"; we name the missed methods in every case.
    with pytest.raises(
        TypeError,
        match=r"^argument 0 \(.*\) does not support the asynchronous context manager "
        f"protocol {missed}",
    ):
        parallel_with(obj)  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue,reportArgumentType]


def test_methods_set_on_the_instance_do_not_count_as_async_with_ignores_them() -> None:
    obj = OnlyEnter()
    obj.__aexit__ = OnlyExit().__aexit__  # type: ignore[attr-defined]  # pyright: ignore[reportAttributeAccessIssue]
    with pytest.raises(TypeError, match=r"\(missed __aexit__ method\)$"):
        parallel_with(obj)  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue,reportArgumentType]


async def test_start_context_and_enter_name_their_own_argument() -> None:
    async with rt.open_nursery() as nursery:
        with pytest.raises(
            TypeError, match=r"^the cm argument of start_context\(\) \(42\) does not support"
        ):
            await start_context(nursery, 42)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    async with ParallelExitStack() as stack:
        with pytest.raises(TypeError, match=r"^the cm argument of enter\(\) \(42\) does not"):
            await stack.enter(42)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


def test_an_observer_that_cannot_be_called_is_rejected_before_anything_is_entered() -> None:
    log: Log = []
    with pytest.raises(TypeError, match=r"^observer must be a callable taking a PhaseEvent"):
        parallel_with(FakeCM("a", log), observer=[])  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue,reportArgumentType]
    with pytest.raises(TypeError, match=r"^observer must be a callable"):
        ParallelExitStack(observer=3)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    assert log == []


def test_a_bad_mapping_value_is_named_by_its_key() -> None:
    log: Log = []
    with pytest.raises(TypeError, match="the value for key 'cache'"):
        parallel_with({"db": FakeCM("a", log), "cache": 3})  # type: ignore[arg-type]  # pyright: ignore[reportCallIssue,reportArgumentType]


def test_the_same_object_twice_is_a_value_error() -> None:
    log: Log = []
    cm = FakeCM("a", log)
    with pytest.raises(ValueError, match="argument 2 is the same object as argument 0"):
        parallel_with(cm, FakeCM("b", log), cm)


async def test_entering_the_same_parallel_with_object_twice_is_a_runtime_error() -> None:
    log: Log = []
    block = parallel_with(FakeCM("a", log))
    async with block:
        pass
    with pytest.raises(RuntimeError, match="already entered"):
        async with block:
            pytest.fail("entered twice")  # pragma: no cover
    assert [e for _, e, _ in log].count("entered") == 1


def test_outside_trio_and_asyncio_is_a_clear_runtime_error() -> None:
    # A coroutine driven by hand: no async library runs it.
    log: Log = []
    cm = FakeCM("a", log)

    async def main() -> None:
        async with parallel_with(cm):
            pytest.fail("entered outside an event loop")  # pragma: no cover

    coroutine = main()
    with pytest.raises(
        RuntimeError, match=r"must be entered in a Trio or an asyncio task .* no async library"
    ):
        coroutine.send(None)
    assert log == []


async def test_a_truthy_non_bool_from_aexit_suppresses_as_async_with_does() -> None:
    class ReturnsOne:
        async def __aenter__(self) -> None:
            pass

        async def __aexit__(self, *args: object) -> Any:
            return 1

    async with parallel_with(ReturnsOne()):
        raise ValueError("suppressed by a truthy 1")
    # And a falsy non-bool lets it through.

    class ReturnsEmpty(ReturnsOne):
        async def __aexit__(self, *args: object) -> Any:
            return ""

    with pytest.RaisesGroup(ValueError):
        async with parallel_with(ReturnsEmpty()):
            raise ValueError("not suppressed")


async def test_repr_names_the_context_managers() -> None:
    log: Log = []
    block = parallel_with(FakeCM("a", log), FakeCM("b", log))
    assert repr(block).startswith("<parallel_with(FakeCM, FakeCM) at 0x")
    await rt.checkpoint()
