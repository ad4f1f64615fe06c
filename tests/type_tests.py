"""Checked by mypy and pyright, never run: the types ``parallel_with`` yields."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any

from typing_extensions import assert_type

from trio_parallel_cm import parallel_with


@asynccontextmanager
async def open_int() -> AsyncGenerator[int, None]:
    yield 1


@asynccontextmanager
async def open_str() -> AsyncGenerator[str, None]:
    yield ""


async def positional() -> None:
    async with parallel_with() as none:
        assert_type(none, tuple[()])
    async with parallel_with(open_int()) as one:
        assert_type(one, tuple[int])
    async with parallel_with(open_int(), open_str()) as (i, s):
        assert_type(i, int)
        assert_type(s, str)
    async with parallel_with(*[open_int(), open_str()] * 5) as many:
        assert_type(many, tuple[Any, ...])


async def mapping() -> None:
    async with parallel_with({"a": open_int(), "b": open_int()}) as same:
        assert_type(same, dict[str, int])
    cms: dict[str, Any] = {"a": open_int(), "b": open_str()}
    async with parallel_with(cms) as mixed:
        assert_type(mixed, dict[str, Any])
