"""How context managers are named in notes, records and reports."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncGenerator
from typing import Any, cast

import pytest
import trio

from tests.fakes import members, notes
from trio_parallel_cm import PhaseEvent, failures_of, parallel_with


@contextlib.asynccontextmanager
async def open_db(url: str = "db://") -> AsyncGenerator[str, None]:
    yield url
    raise OSError("db")


async def not_a_generator() -> str:
    return "no yield: fails on entering"  # pragma: no cover


async def test_an_asynccontextmanager_that_is_not_a_generator_is_named_after_its_factory() -> None:
    # @asynccontextmanager on a coroutine function (type checkers reject it, Python not).
    cm: Any = contextlib.asynccontextmanager(cast("Any", not_a_generator))()
    with pytest.RaisesGroup(TypeError) as caught:
        async with parallel_with(cm):
            pytest.fail("entered")  # pragma: no cover
    [failure] = members(caught.value)
    assert notes(failure) == ["not_a_generator (position 0) failed while entering"]
    cm.gen.close()  # the coroutine it made was never awaited: no warning after the test


async def test_a_partial_factory_and_a_method_are_named_after_their_function() -> None:
    class Service:
        @contextlib.asynccontextmanager
        async def connect(self) -> AsyncGenerator[None, None]:
            yield
            raise KeyError("connect")

    with pytest.RaisesGroup(OSError, KeyError) as caught:
        async with parallel_with(functools.partial(open_db, "pg://")(), Service().connect()):
            pass
    assert [f.name for f in failures_of(caught.value)] == ["open_db", "connect"]


async def test_stdlib_helpers_are_named_by_what_they_are() -> None:
    async def ticks() -> AsyncGenerator[int, None]:
        yield 1  # pragma: no cover

    seen: list[PhaseEvent] = []
    async with parallel_with(
        contextlib.aclosing(ticks()), contextlib.nullcontext(), observer=seen.append
    ):
        pass
    assert {event.name for event in seen} == {"aclosing(ticks)", "nullcontext"}


async def test_trio_objects_and_keys() -> None:
    async def crash() -> None:
        raise RuntimeError("child")

    with pytest.RaisesGroup(pytest.RaisesGroup(RuntimeError)) as caught:
        async with parallel_with(trio.open_nursery()) as (nursery,):
            nursery.start_soon(crash)
    assert [f.name for f in failures_of(caught.value)] == ["NurseryManager"]
    with pytest.RaisesGroup(OSError) as by_key:
        async with parallel_with({"primary": open_db()}):
            pass
    assert [f.name for f in failures_of(by_key.value)] == ["primary"]
