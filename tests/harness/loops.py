"""The event loops a scenario runs on: Trio (native), or asyncio (through anyio).

The fakes and the runner reach the loop through a ``Loop`` only, so that one scenario, one
fake and one oracle serve both runtimes.  On asyncio the fakes open anyio's scopes and task
groups (what asyncio context managers built on anyio open), on a loop with virtual time
(``tests.aio.VirtualTimeLoop``): its deadlines fire, as Trio's do, before any task step of
their instant (a deadline is a timer callback; a task woken at that instant steps in the
next iteration), and a crash is a task step.  asyncio does not shuffle its runnable tasks:
the seed changes nothing there.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import Any, Final, Protocol, Self

import anyio
import anyio.abc
import anyio.lowlevel
import trio
import trio.testing

#: The cancellation classes and the timeout classes of the runtimes (the library's
#: ``too_slow``: ``trio.TooSlowError`` on Trio, the builtin ``TimeoutError`` on asyncio).
CANCELLED: Final = (trio.Cancelled, asyncio.CancelledError)
TOO_SLOW: Final = (trio.TooSlowError, TimeoutError)

TRIO: Final = "trio"
ASYNCIO: Final = "asyncio"


class Scope(Protocol):
    shield: bool

    @property
    def cancel_called(self) -> bool: ...
    @property
    def cancelled_caught(self) -> bool: ...

    def cancel(self) -> None: ...
    def __enter__(self) -> Any: ...
    def __exit__(self, *exc_info: object) -> bool: ...


class Group(Protocol):
    def start_soon(self, fn: Callable[..., Awaitable[object]], /, *args: object) -> object: ...

    #: The scope around its tasks (a Trio nursery's, an anyio task group's).
    @property
    def cancel_scope(self) -> Scope: ...


class Loop(Protocol):
    """What the harness (and the suite, through ``tests.runtime``) asks of an event loop."""

    name: str
    #: What a cancelled task meets, and what ``fail_after`` raises.
    Cancelled: type[BaseException]
    TooSlow: type[Exception]

    def current_time(self) -> float: ...
    def current_task(self) -> object: ...
    def sleep(self, seconds: float) -> Awaitable[None]: ...
    def sleep_until(self, deadline: float) -> Awaitable[None]: ...
    def checkpoint(self) -> Awaitable[None]: ...
    def sleep_forever(self) -> Awaitable[None]: ...
    def wait_all_tasks_blocked(self) -> Awaitable[None]: ...
    def scope(self, *, shield: bool = False) -> Scope: ...
    def fail_after(self, seconds: float) -> AbstractContextManager[Any]: ...
    def move_on_after(self, seconds: float) -> AbstractContextManager[Any]: ...
    def cancel_after(self, seconds: float) -> AbstractContextManager[Any]: ...
    def open_group(self) -> AbstractAsyncContextManager[Group]: ...
    def is_group(self, value: object) -> bool: ...
    def effectively_cancelled(self) -> bool: ...
    def cancelled(self, label: str) -> BaseException: ...
    def count_tasks(self) -> int: ...
    def run(self, main: Callable[[], Awaitable[None]], seed: int) -> None: ...


class _Trio:
    name = TRIO
    Cancelled: type[BaseException] = trio.Cancelled
    TooSlow: type[Exception] = trio.TooSlowError

    def current_time(self) -> float:
        return trio.current_time()

    def current_task(self) -> object:
        return trio.lowlevel.current_task()

    async def sleep(self, seconds: float) -> None:
        await trio.sleep(seconds)

    async def sleep_until(self, deadline: float) -> None:
        await trio.sleep_until(deadline)

    async def checkpoint(self) -> None:
        await trio.lowlevel.checkpoint()

    async def sleep_forever(self) -> None:
        await trio.sleep_forever()

    async def wait_all_tasks_blocked(self) -> None:
        await trio.testing.wait_all_tasks_blocked()

    def scope(self, *, shield: bool = False) -> Any:
        return trio.CancelScope(shield=shield)

    def fail_after(self, seconds: float) -> AbstractContextManager[Any]:
        return trio.fail_after(seconds)

    def move_on_after(self, seconds: float) -> AbstractContextManager[Any]:
        return trio.move_on_after(seconds)

    def cancel_after(self, seconds: float) -> AbstractContextManager[Any]:
        raise ValueError("a native cancellation is asyncio's")

    def open_group(self) -> Any:
        return trio.open_nursery()

    def is_group(self, value: object) -> bool:
        return isinstance(value, trio.Nursery)

    def effectively_cancelled(self) -> bool:
        return trio.current_effective_deadline() == -math.inf

    def cancelled(self, label: str) -> BaseException:
        # (No public constructor: a stray one is what it fakes.)
        return trio.Cancelled._create(source="unknown", reason=label)  # pyright: ignore[reportPrivateUsage]

    def count_tasks(self) -> int:
        root = trio.lowlevel.current_root_task()
        assert root is not None
        count, todo = 0, [root]
        while todo:
            task = todo.pop()
            count += 1
            for nursery in task.child_nurseries:
                todo.extend(nursery.child_tasks)
        return count

    def run(self, main: Callable[[], Awaitable[None]], seed: int) -> None:
        seed_trio(seed)
        trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


class _Asyncio:
    name = ASYNCIO
    Cancelled: type[BaseException] = asyncio.CancelledError
    TooSlow: type[Exception] = TimeoutError

    def current_time(self) -> float:
        return asyncio.get_running_loop().time()

    def current_task(self) -> object:
        return asyncio.current_task()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def sleep_until(self, deadline: float) -> None:
        await asyncio.sleep(deadline - asyncio.get_running_loop().time())

    async def checkpoint(self) -> None:
        await anyio.lowlevel.checkpoint()

    async def sleep_forever(self) -> None:
        await asyncio.get_running_loop().create_future()

    async def wait_all_tasks_blocked(self) -> None:
        """Yield until no other task or callback is ready, nor any timer due now (before
        the virtual clock would jump, as Trio's under ``autojump_clock``).  It reads the
        ``VirtualTimeLoop``'s queues (private to ``asyncio.BaseEventLoop``): anyio's own
        polls with real sleeps, and uvloop has no such queues."""
        from tests.aio import VirtualTimeLoop  # (asyncio only)

        loop = asyncio.get_running_loop()
        if not isinstance(loop, VirtualTimeLoop):
            raise NotImplementedError("wait_all_tasks_blocked needs the VirtualTimeLoop")
        queues: dict[str, Any] = vars(loop)  # (asyncio.BaseEventLoop's own attributes)
        while True:
            await asyncio.sleep(0)
            now = loop.time()
            due = any(not t.cancelled() and t.when() <= now for t in queues["_scheduled"])
            if not queues["_ready"] and not due:
                return

    def scope(self, *, shield: bool = False) -> Any:
        return anyio.CancelScope(shield=shield)

    def fail_after(self, seconds: float) -> AbstractContextManager[Any]:
        return anyio.fail_after(seconds)

    def move_on_after(self, seconds: float) -> AbstractContextManager[Any]:
        return anyio.move_on_after(seconds)

    def cancel_after(self, seconds: float) -> AbstractContextManager[Any]:
        return _CancelAfter(seconds)

    def open_group(self) -> Any:
        return anyio.create_task_group()

    def is_group(self, value: object) -> bool:
        return isinstance(value, anyio.abc.TaskGroup)

    def effectively_cancelled(self) -> bool:
        task = asyncio.current_task()
        assert task is not None
        return anyio.current_effective_deadline() == -math.inf or task.cancelling() > 0

    def cancelled(self, label: str) -> BaseException:
        return asyncio.CancelledError(label)

    def count_tasks(self) -> int:
        return len(asyncio.all_tasks())

    def run(self, main: Callable[[], Awaitable[None]], seed: int) -> None:
        from tests.aio import VirtualTimeLoop  # (asyncio only)

        async def wrapped() -> None:
            await main()

        with asyncio.Runner(debug=False, loop_factory=VirtualTimeLoop) as r:
            r.run(wrapped())


class _CancelAfter:
    """``asyncio.timeout(seconds)`` that moves on instead of raising ``TimeoutError``: a
    *native* cancellation (``Task.cancel`` of the task, no scope), as ``asyncio.timeout``,
    ``asyncio.wait_for`` and ``task.cancel()`` make; ``cancel_called`` as a scope's."""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self.cancel_called = False
        self.cancelled_caught = False
        self._handle: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[Any] | None = None

    def __enter__(self) -> Self:
        self._task = task = asyncio.current_task()
        assert task is not None
        if self._seconds != math.inf:
            loop = asyncio.get_running_loop()
            self._handle = loop.call_at(loop.time() + self._seconds, self._fire)
        return self

    def _fire(self) -> None:
        assert self._task is not None
        self.cancel_called = True
        self._task.cancel()

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> bool:
        if self._handle is not None:
            self._handle.cancel()
        assert self._task is not None
        if self.cancel_called and self._task.uncancel() == 0:
            self.cancelled_caught = exc_type is asyncio.CancelledError
        return self.cancelled_caught


def seed_trio(seed: int) -> None:
    # Trio shuffles each batch of runnable tasks with a module-level Random (which it
    # registers with hypothesis).  Seeding it makes a run a function of its scenario.
    # Private: if it moves, runs are merely no longer reproducible.
    import random
    import sys

    module = sys.modules.get("trio._core._run")
    rng: object = vars(module).get("_r") if module is not None else None
    if isinstance(rng, random.Random):
        rng.seed(seed)


LOOPS: Final[dict[str, Loop]] = {TRIO: _Trio(), ASYNCIO: _Asyncio()}
