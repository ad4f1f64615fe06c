"""Fake context managers that record what happened to them, and where.

Each fake records the task (``rt.current_task()``, on asyncio the
``asyncio.Task``) that ran ``__aenter__`` and ``__aexit__``, the exception and traceback
``__aexit__`` received, whether its cleanup was cancelled, and appends ``(name, event,
time)`` to a shared log, with times from the (virtual) clock.  They run on any runtime of
``tests.runtime``: on Trio natively, on asyncio with anyio's scopes and task groups.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from types import TracebackType

import attrs

from tests import runtime as rt

# The harness's helpers, for the tests too (one place for each).
from tests.harness.exceptions import leaves as leaves
from tests.harness.exceptions import members as group_members
from tests.harness.exceptions import notes as notes

Log = list[tuple[str, str, float]]


def record(log: Log, name: str, event: str) -> None:
    log.append((name, event, rt.current_time()))


def events(log: Log, name: str | None = None) -> list[tuple[str, str]]:
    """The log without times, optionally for one name."""
    return [(n, e) for n, e, _ in log if name is None or n == name]


def members(exc: BaseException | None) -> list[BaseException]:
    """The members of an exception group (failing the test for anything else)."""
    found = group_members(exc)
    assert found is not None, exc
    return list(found)


def time_of(log: Log, name: str, event: str) -> float:
    [t] = [t for n, e, t in log if n == name and e == event]
    return t


@attrs.define(eq=False)
class FakeCM:
    """A scriptable async context manager."""

    name: str
    log: Log
    enter_delay: float = 0
    exit_delay: float = 0
    enter_error: BaseException | None = None
    exit_error: BaseException | None = None
    suppress: bool = False
    enter_task: object = None
    exit_task: object = None
    entered: int = 0
    exited: int = 0
    seen: BaseException | None = None
    seen_tb: TracebackType | None = None
    exit_cancelled: bool = False

    async def __aenter__(self) -> str:
        self.enter_task = rt.current_task()
        record(self.log, self.name, "enter")
        try:
            await rt.sleep(self.enter_delay)
        except rt.cancelled():
            record(self.log, self.name, "enter cancelled")
            raise
        if self.enter_error is not None:
            record(self.log, self.name, "enter failed")
            raise self.enter_error
        self.entered += 1
        record(self.log, self.name, "entered")
        return self.name

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        self.exit_task = rt.current_task()
        self.exited += 1
        self.seen, self.seen_tb = exc, tb
        record(self.log, self.name, "exit")
        try:
            await rt.sleep(self.exit_delay)
        except rt.cancelled():
            self.exit_cancelled = True
            record(self.log, self.name, "exit cancelled")
            raise
        if self.exit_error is not None:
            record(self.log, self.name, "exit failed")
            raise self.exit_error
        record(self.log, self.name, "exited")
        return self.suppress


@asynccontextmanager
async def crashes_while_open(
    log: Log, name: str, after: float, error: Exception
) -> AsyncGenerator[str, None]:
    """Opens a nursery across the yield whose background task fails ``after`` seconds in."""

    async def background() -> None:
        await rt.sleep(after)
        record(log, name, "crash")
        raise error

    async with rt.open_nursery() as nursery:
        nursery.start_soon(background)
        record(log, name, "entered")
        try:
            yield name
        finally:
            record(log, name, "exit")


@asynccontextmanager
async def ends_while_open(log: Log, name: str, after: float) -> AsyncGenerator[str, None]:
    """Holds a ``move_on_after`` across the yield: it ends by itself, without an error."""
    with rt.move_on_after(after):
        record(log, name, "entered")
        try:
            yield name
        finally:
            record(log, name, "exit")


@asynccontextmanager
async def crashes_then_cleans_up(
    log: Log, name: str, after: float, error: Exception, cleanup: float, *, shielded: bool = True
) -> AsyncGenerator[str, None]:
    """``crashes_while_open``, then a cleanup of ``cleanup`` seconds in its ``__aexit__``:
    shielded, or cut short by a cancellation (logged ``cleanup cut``)."""
    try:
        async with crashes_while_open(log, name, after, error):
            yield name
    finally:
        record(log, name, "cleanup")
        try:
            with rt.CancelScope(shield=shielded):
                await rt.sleep(cleanup)
        except rt.cancelled():
            record(log, name, "cleanup cut")
            raise
        record(log, name, "cleaned up")
