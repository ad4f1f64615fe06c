"""Checked by mypy and pyright, never run: the types that every public overload gives."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncGenerator, Generator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, assert_type

import anyio.abc
import trio

from trio_parallel_cm import (
    ContextFailure,
    ContextHandle,
    Node,
    ParallelExitStack,
    ResourceGraph,
    Resources,
    Retry,
    ThreadContext,
    in_thread,
    parallel_with,
    start_context,
)


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


async def stages() -> None:
    async with ParallelExitStack() as stack:
        assert_type(stack, ParallelExitStack)
        assert_type(await stack.enter_all(open_int()), tuple[int])
        assert_type(await stack.enter_all(open_int(), open_str()), tuple[int, str])
        assert_type(await stack.enter_all(*[open_int()] * 9), tuple[Any, ...])
        assert_type(await stack.enter_all({"a": open_int()}), dict[str, int])
        cms: dict[str, Any] = {"a": open_int(), "b": open_str()}
        assert_type(await stack.enter_all(cms), dict[str, Any])
        assert_type(await stack.enter(open_str()), str)


async def handles(
    nursery: trio.Nursery, group: anyio.abc.TaskGroup, task_group: asyncio.TaskGroup
) -> None:
    handle = await start_context(nursery, open_int())
    assert_type(handle, ContextHandle[int])
    assert_type(handle.value, int)
    assert_type(await handle.aexit(None), bool)
    assert_type(await start_context(group, open_str()), ContextHandle[str])
    assert_type(await start_context(task_group, open_str()), ContextHandle[str])


class Config:
    pass


class Db:
    pass


@asynccontextmanager
async def load_config() -> AsyncGenerator[Config, None]:
    yield Config()


@asynccontextmanager
async def open_db(config: Config) -> AsyncGenerator[Db, None]:
    yield Db()


@asynccontextmanager
async def open_app(db: Db, config: Config, n: int) -> AsyncGenerator[str, None]:
    yield ""


async def graphs() -> None:
    graph = ResourceGraph()
    config = graph.add(load_config)
    assert_type(config, Node[Config])
    db = graph.add(open_db, config)
    assert_type(db, Node[Db])
    number = graph.add(open_int)
    app = graph.add(open_app, db, config, number, name="app", enter_timeout=1)
    assert_type(app, Node[str])
    # A factory that does not accept what its dependencies hold is rejected.
    graph.add(open_db, db)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    graph.add(open_app, config, db, number)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    # So is a wrong number of dependencies.
    graph.add(open_db)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    # Optional nodes and retries keep the value's type; a node left out is not in it.
    cache = graph.add(open_db, config, optional=True, retry=Retry(attempts=2))
    assert_type(cache, Node[Db])
    graph.add(open_db, config, retry=Retry(), enter_timeout=5)
    graph.add(open_db, config, retry=2)  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]
    # Graph-wide options, each a default that a node's own (None included) overrides.
    shared = ResourceGraph(limit=4, enter_timeout=1, exit_timeout=2.5, retry=Retry(attempts=2))
    root = shared.add(load_config, enter_timeout=None, exit_timeout=None, retry=None)
    assert_type(root, Node[Config])
    assert_type(shared.add(open_db, root, retry=None, optional=True), Node[Db])
    # Seven dependencies and more: the last overload, with the same options.
    many = shared.add(open_int, root, root, root, root, root, root, root, exit_timeout=None)
    assert_type(many, Node[int])
    ResourceGraph(retry=2)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    ResourceGraph(enter_timeout="5")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    shared.add(load_config, exit_timeout="5")  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]
    async with graph as resources:
        assert_type(resources, Resources)
        assert_type(resources[app], str)
        assert_type(resources[db], Db)
        assert_type(resources.get(cache), Db | None)
        assert_type(resources.failures, tuple[ContextFailure, ...])
        assert_type(resources.skipped, tuple[Node[Any], ...])
        for node in resources:
            assert_type(node, Node[Any])


@contextmanager
def open_sqlite(path: str, *, timeout: float = 5.0) -> Generator[sqlite3.Connection, None, None]:
    with sqlite3.connect(path, timeout=timeout) as conn:
        yield conn


async def threads() -> None:
    db = in_thread(open_sqlite, ":memory:", timeout=1.0)
    assert_type(db, ThreadContext[sqlite3.Connection])
    async with db as conn:
        assert_type(conn, sqlite3.Connection)
        assert_type(await db.run(conn.execute, "select ?", (1,)), sqlite3.Cursor)
        assert_type(await db.run(conn.total_changes.__int__), int)
    async with parallel_with(in_thread(open_sqlite, "a"), open_int()) as (a, n):
        assert_type(a, sqlite3.Connection)
        assert_type(n, int)
    in_thread(open_sqlite, ":memory:", timeout="slow")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    async with db:
        await db.run(conn.execute, 42)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
