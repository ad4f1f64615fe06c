"""The faces under asyncio: the guarantees of docs/semantics.rst, on a virtual clock.

The fakes open what asyncio context managers open in ``__aenter__`` (an anyio task
group, an ``asyncio.TaskGroup``, an ``asyncio.timeout()`` block) and close it in
``__aexit__``, which must run in the same task; each records its tasks, its times and
what its ``__aexit__`` received.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import AsyncGenerator, Callable, Coroutine
from types import TracebackType
from typing import Any, Literal

import anyio
import attrs
import pytest
import sniffio

from tests.aio import now, run
from trio_parallel_cm import (
    ContextHandle,
    ContextState,
    ParallelExceptionGroup,
    ParallelExitStack,
    ResourceGraph,
    failures_of,
    parallel_with,
    start_context,
)

Opens = str  # "anyio", "taskgroup", "timeout" or "nothing"


@attrs.define(eq=False)
class Fake:
    """An asyncio context manager that records what happens to it."""

    name: str
    log: list[tuple[float, str, str]]
    enter: float = 0.0
    exit: float = 0.0
    opens: Opens = "anyio"
    enter_error: BaseException | None = None
    exit_error: BaseException | None = None
    crash_at: float | None = None  # its background task fails then, while it is open
    timeout_at: float = 1000  # opens="timeout": when its asyncio.timeout() fires
    suppress: bool = False
    enter_task: asyncio.Task[Any] | None = None
    exit_task: asyncio.Task[Any] | None = None
    received: BaseException | None = None
    exit_calls: int = 0
    enter_cancelled: bool = False
    _inner: Any = None

    async def __aenter__(self) -> str:
        self.enter_task = asyncio.current_task()
        self._inner = self._open()
        await self._inner.__aenter__()
        try:
            await asyncio.sleep(self.enter)
            if self.enter_error is not None:
                raise self.enter_error
        except asyncio.CancelledError as exc:
            self.enter_cancelled = True
            await self._inner.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        except BaseException:
            await self._inner.__aexit__(None, None, None)  # closed, then the error
            raise
        self.log.append((now(), self.name, "entered"))
        return self.name

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        self.exit_task = asyncio.current_task()
        self.exit_calls += 1
        self.received = exc
        self.log.append((now(), self.name, "exiting"))
        try:
            if self.exit:
                with anyio.CancelScope(shield=True):
                    await asyncio.sleep(self.exit)
        finally:
            inner, self._inner = self._inner, None
            try:
                if self.suppress or self.exit_error is not None:  # (handled inside)
                    await inner.__aexit__(None, None, None)
                else:
                    await inner.__aexit__(exc_type, exc, tb)
            finally:
                self.log.append((now(), self.name, "exited"))
        if self.exit_error is not None:
            raise self.exit_error
        return self.suppress

    def inner_timeout(self) -> asyncio.Timeout:
        assert isinstance(self._inner, asyncio.Timeout)
        return self._inner

    def _open(self) -> Any:
        if self.opens == "anyio":
            return _Background(anyio.create_task_group(), self)
        if self.opens == "taskgroup":
            return _Background(asyncio.TaskGroup(), self)
        if self.opens == "timeout":
            return asyncio.timeout(self.timeout_at - now())
        return contextlib.nullcontext()


@attrs.define(eq=False)
class _Background:
    """A task group with one background task (it fails at ``crash_at``, if set)."""

    group: Any
    fake: Fake

    async def __aenter__(self) -> None:
        group = await self.group.__aenter__()
        if isinstance(group, asyncio.TaskGroup):
            group.create_task(self._run())
        else:
            group.start_soon(self._run)

    async def _run(self) -> None:
        crash_at = self.fake.crash_at
        if crash_at is None:
            await asyncio.Event().wait()
        else:
            await asyncio.sleep(crash_at - now())
            raise RuntimeError(f"{self.fake.name} crashed")

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Any:
        if isinstance(self.group, asyncio.TaskGroup):
            for task in list(self.group._tasks):
                task.cancel()
        else:
            self.group.cancel_scope.cancel()
        return await self.group.__aexit__(exc_type, exc, tb)


def fakes(log: list[tuple[float, str, str]], **kinds: dict[str, Any]) -> list[Fake]:
    return [Fake(name, log, **kwargs) for name, kwargs in kinds.items()]


def times(log: list[tuple[float, str, str]], event: str) -> dict[str, float]:
    return {name: when for when, name, what in log if what == event}


@pytest.mark.parametrize("opens", ["anyio", "taskgroup", "timeout", "nothing"])
def test_concurrent_each_in_a_task_of_its_own(opens: Opens) -> None:
    log: list[tuple[float, str, str]] = []
    a, b, c = fakes(
        log,
        a={"enter": 1, "exit": 3, "opens": opens},
        b={"enter": 2, "exit": 2, "opens": opens},
        c={"enter": 3, "exit": 1, "opens": opens},
    )

    async def main() -> tuple[float, float]:
        body = -1.0
        main_task = asyncio.current_task()
        async with parallel_with(a, b, c) as values:
            assert values == ("a", "b", "c")
            body = now()
        for fake in (a, b, c):
            assert fake.enter_task is fake.exit_task
            assert fake.enter_task is not main_task
        assert len({id(fake.enter_task) for fake in (a, b, c)}) == 3
        return body, now()

    assert run(main()) == (3, 6)
    assert times(log, "exiting") == {"a": 3, "b": 3, "c": 3}


def test_the_body_exception_reaches_every_aexit_and_leaves_in_one_group() -> None:
    log: list[tuple[float, str, str]] = []
    a, b = fakes(log, a={"exit": 1}, b={"opens": "taskgroup"})
    error = KeyError("body")

    async def main() -> None:
        async with parallel_with(a, b):
            raise error

    with pytest.RaisesGroup(pytest.RaisesExc(KeyError), check=lambda g: g.exceptions[0] is error):
        run(main())
    assert a.received is error and b.received is error


def test_a_context_manager_may_suppress_the_body_exception() -> None:
    log: list[tuple[float, str, str]] = []
    a, b = fakes(log, a={"suppress": True}, b={})

    async def main() -> str:
        async with parallel_with(a, b):
            raise KeyError("suppressed")
        return "went on"

    assert run(main()) == "went on"
    assert isinstance(b.received, KeyError)


def test_an_exit_failure_chains_to_what_it_received() -> None:
    log: list[tuple[float, str, str]] = []
    error = ValueError("exit")
    (a,) = fakes(log, a={"exit_error": error})

    async def main() -> None:
        async with parallel_with(a):
            raise KeyError("body")

    with pytest.RaisesGroup(KeyError, ValueError) as caught:
        run(main())
    assert isinstance(error.__context__, KeyError)
    assert [f.phase for f in failures_of(caught.value)] == ["body", "exiting"]


def test_an_enter_failure_cancels_the_pending_enters_and_the_entered_exit_with_it() -> None:
    log: list[tuple[float, str, str]] = []
    error = OSError("refused")
    a, b, c = fakes(
        log, a={"enter": 1, "enter_error": error}, b={"enter": 5}, c={"enter": 0.5, "exit": 1}
    )
    ran: list[str] = []

    async def main() -> None:
        async with parallel_with(a, b, c):
            ran.append("body")  # pragma: no cover

    with pytest.RaisesGroup(pytest.RaisesExc(OSError, match="refused")) as caught:
        run(main())
    assert ran == []
    assert b.enter_cancelled and b.exit_calls == 0
    assert c.received is error and times(log, "exiting") == {"c": 1}
    assert [(f.name, f.phase) for f in failures_of(caught.value)] == [("Fake", "entering")]


def test_a_failure_while_open_cancels_the_body_and_exits_after_it() -> None:
    log: list[tuple[float, str, str]] = []
    a, b = fakes(log, a={"crash_at": 2, "opens": "taskgroup"}, b={"exit": 1})
    body: list[float] = []

    async def main() -> None:
        async with parallel_with(a, b):
            try:
                await asyncio.sleep(10)
            finally:
                body.append(now())
                with anyio.CancelScope(shield=True):
                    await asyncio.sleep(1)  # the body's cleanup, still using them
                body.append(now())

    with pytest.RaisesGroup(pytest.RaisesGroup(pytest.RaisesExc(RuntimeError, match="a crashed"))):
        run(main())
    assert body == [2, 3]
    # The failing one exits once the body has finished; the rest after it, with its failure.
    assert times(log, "exiting") == {"a": 3, "b": 3}
    assert isinstance(a.received, asyncio.CancelledError)
    assert isinstance(b.received, BaseExceptionGroup)
    assert [log.index(e) for e in log if e[2] == "exiting"] == sorted(
        log.index(e) for e in log if e[2] == "exiting"
    )
    assert [name for _, name, what in log if what == "exiting"] == ["a", "b"]


@pytest.mark.parametrize("how", ["asyncio.timeout", "wait_for", "task.cancel", "move_on_after"])
def test_an_outer_cancellation_propagates_untouched(how: str) -> None:
    log: list[tuple[float, str, str]] = []
    a, b = fakes(log, a={"exit": 1}, b={"opens": "taskgroup"})
    body_ended: list[float] = []

    async def block() -> None:
        async with parallel_with(a, b):
            try:
                await asyncio.sleep(10)
            finally:
                body_ended.append(now())

    async def main() -> str:
        if how == "asyncio.timeout":
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(2):
                    await block()
        elif how == "wait_for":
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(block(), 2)
        elif how == "task.cancel":
            task = asyncio.create_task(block())
            await asyncio.sleep(2)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        else:
            with anyio.move_on_after(2) as scope:
                await block()
            assert scope.cancelled_caught
        current = asyncio.current_task()
        assert current is not None and current.cancelling() == 0
        return "went on"

    assert run(main()) == "went on"
    assert body_ended == [2]
    assert times(log, "exiting") == {"a": 2, "b": 2}
    assert isinstance(a.received, asyncio.CancelledError)
    assert isinstance(b.received, asyncio.CancelledError)


def test_an_outer_cancellation_cancels_the_pending_enters() -> None:
    log: list[tuple[float, str, str]] = []
    a, b = fakes(log, a={"enter": 1, "exit": 1}, b={"enter": 5})

    async def main() -> None:
        async with asyncio.timeout(2):
            async with parallel_with(a, b):
                pytest.fail("no body")  # pragma: no cover

    with pytest.raises(TimeoutError):
        run(main())
    assert b.enter_cancelled and b.exit_calls == 0
    assert isinstance(a.received, asyncio.CancelledError)
    assert times(log, "exiting") == {"a": 2}


def test_an_enter_timeout_is_a_builtin_timeout_error() -> None:
    log: list[tuple[float, str, str]] = []
    a, b = fakes(log, a={"enter": 5}, b={"exit": 1})

    async def main() -> None:
        async with parallel_with(a, b, enter_timeout=1):
            pytest.fail("no body")  # pragma: no cover

    with pytest.RaisesGroup(pytest.RaisesExc(TimeoutError, match="did not enter within 1 s")):
        run(main())
    assert isinstance(b.received, TimeoutError)


def test_an_exit_timeout_cuts_a_slow_exit() -> None:
    log: list[tuple[float, str, str]] = []

    class Slow(Fake):
        async def __aexit__(self, *exc_info: object) -> bool:
            self.exit_calls += 1
            await asyncio.sleep(5)  # (not shielded: the timeout cuts it)
            return False  # pragma: no cover

    slow = Slow("slow", log, opens="nothing")

    async def main() -> float:
        with contextlib.suppress(BaseExceptionGroup):
            async with parallel_with(slow, exit_timeout=1):
                pass
        return now()

    assert run(main()) == 1


def test_limit_bounds_the_enters_in_flight() -> None:
    log: list[tuple[float, str, str]] = []
    cms = fakes(log, a={"enter": 1}, b={"enter": 1}, c={"enter": 1}, d={"enter": 1})

    async def main() -> float:
        async with parallel_with(*cms, limit=2):
            return now()
        raise AssertionError("the body returns")  # pragma: no cover

    assert run(main()) == 2


def test_the_stages_of_a_stack_unwind_latest_first() -> None:
    log: list[tuple[float, str, str]] = []
    a, b, c = fakes(log, a={"exit": 1}, b={"exit": 1}, c={"exit": 2})

    async def main() -> None:
        async with ParallelExitStack() as stack:
            assert await stack.enter_all(a, b) == ("a", "b")
            assert await stack.enter_all(c) == ("c",)

    run(main())
    assert times(log, "exiting") == {"c": 0, "a": 2, "b": 2}


def test_a_graph_enters_a_node_after_its_dependencies_and_exits_it_before() -> None:
    log: list[tuple[float, str, str]] = []
    db, cache, app = fakes(log, db={"enter": 1, "exit": 1}, cache={"enter": 2}, app={"enter": 1})

    async def main() -> None:
        graph = ResourceGraph()
        d = graph.add(lambda: db)
        c = graph.add(lambda: cache)
        p = graph.add(lambda _d, _c: app, d, c)
        async with graph as resources:
            assert (resources[d], resources[c], resources[p]) == ("db", "cache", "app")
            assert now() == 3

    run(main())
    assert times(log, "exiting") == {"app": 3, "db": 3, "cache": 3}
    order = [name for _, name, what in log if what == "exiting"]
    assert order[0] == "app"


def test_failures_come_out_as_one_parallel_group() -> None:
    log: list[tuple[float, str, str]] = []
    a, b = fakes(log, a={"exit_error": ValueError("a")}, b={"exit_error": ValueError("b")})

    async def main() -> None:
        async with parallel_with(a, b):
            pass

    with pytest.raises(ParallelExceptionGroup) as caught:
        run(main())
    assert [str(e) for e in caught.value.exceptions] == ["a", "b"]
    assert [f.phase for f in failures_of(caught.value)] == ["exiting", "exiting"]


@pytest.mark.parametrize("opens", ["anyio", "taskgroup"])
def test_a_release_and_a_cancellation_in_the_same_tick_the_release_wins(opens: Opens) -> None:
    # a's background task fails at 2, as the body ends: the stage releases a's holder
    # and a's task group cancels it in one tick.  The release wins (the runtime's rule):
    # a exits as released, receiving the body's outcome, and meets the cancellation in
    # its __aexit__, where its task group raises the crash: a failure while exiting.
    log: list[tuple[float, str, str]] = []
    a, b = fakes(log, a={"crash_at": 2, "opens": opens}, b={})

    async def main() -> None:
        async with parallel_with(a, b):
            await asyncio.sleep(2)

    with pytest.RaisesGroup(
        pytest.RaisesGroup(pytest.RaisesExc(RuntimeError, match="a crashed"))
    ) as caught:
        run(main())
    assert a.received is None and b.received is None
    assert [f.phase for f in failures_of(caught.value)] == ["exiting"]


Group = Literal["anyio", "taskgroup"]


def open_group(kind: Group) -> Any:
    """A task group of ``kind`` for ``start_context``: anyio's, or asyncio's own."""
    return anyio.create_task_group() if kind == "anyio" else asyncio.TaskGroup()


def spawn(group: Any, fn: Callable[[], Coroutine[Any, Any, None]]) -> None:
    if isinstance(group, asyncio.TaskGroup):
        group.create_task(fn())
    else:
        group.start_soon(fn)


@pytest.mark.parametrize("kind", ["anyio", "taskgroup"])
def test_start_context_takes_a_task_group(kind: Group) -> None:
    log: list[tuple[float, str, str]] = []
    a, b = fakes(log, a={"enter": 1, "exit": 1, "opens": "taskgroup"}, b={"enter": 2})

    async def main() -> None:
        async with open_group(kind) as group:
            first = await start_context(group, a)
            second = await start_context(group, b)
            assert (first.value, second.value, now()) == ("a", "b", 3)

            async def close_from_another_task() -> None:
                await first.aclose()

            spawn(group, close_from_another_task)
            assert second.state is ContextState.OPEN
            assert await second.aexit(KeyError("out of order")) is False
            assert isinstance(b.received, KeyError)
        # The group waited for the exits (a's takes 1 s, from another task).
        assert now() == 4

    run(main())
    assert a.enter_task is a.exit_task
    assert b.enter_task is b.exit_task
    assert times(log, "exited") == {"a": 4, "b": 3}


def test_start_context_exits_when_its_task_group_is_cancelled() -> None:
    log: list[tuple[float, str, str]] = []
    (a,) = fakes(log, a={"exit": 1})

    async def main() -> None:
        handles: list[ContextHandle[str]] = []
        async with anyio.create_task_group() as group:
            handles.append(await start_context(group, a))
            await asyncio.sleep(2)
            group.cancel_scope.cancel()
        assert handles[0].state is ContextState.CLOSED

    run(main())
    assert isinstance(a.received, asyncio.CancelledError)
    assert times(log, "exiting") == {"a": 2}


def test_start_context_exits_when_its_asyncio_task_group_aborts() -> None:
    # A sibling fails: the group cancels its tasks.  The held context manager meets that
    # cancellation in its holder task (not as its own failure), the group waits for its
    # exit, and raises the sibling's failure alone.
    log: list[tuple[float, str, str]] = []
    (a,) = fakes(log, a={"exit": 1, "opens": "anyio"})
    handles: list[ContextHandle[str]] = []

    async def sibling() -> None:
        await asyncio.sleep(2)
        raise ValueError("sibling")

    async def main() -> None:
        async with asyncio.TaskGroup() as group:
            handles.append(await start_context(group, a))
            group.create_task(sibling())
        raise AssertionError("not reached")  # pragma: no cover

    with pytest.RaisesGroup(pytest.RaisesExc(ValueError, match="sibling")):
        run(main())
    assert isinstance(a.received, asyncio.CancelledError)
    assert a.enter_task is a.exit_task
    assert times(log, "exiting") == {"a": 2} and times(log, "exited") == {"a": 3}
    assert handles[0].state is ContextState.CLOSED


def test_an_asyncio_task_group_aborting_respects_a_shielded_exit() -> None:
    # The group aborts (a sibling fails at 2) while a is exiting under an anyio shield
    # (closed at 1, 3 s): the group's Task.cancel reaches a guardian, not the holder, so
    # the shield holds, as a Trio nursery's cancellation would respect it.
    log: list[tuple[float, str, str]] = []
    (a,) = fakes(log, a={"exit": 3})

    async def sibling() -> None:
        await asyncio.sleep(2)
        raise ValueError("sibling")

    async def main() -> None:
        async with asyncio.TaskGroup() as group:
            handle = await start_context(group, a)
            group.create_task(sibling())
            await asyncio.sleep(1)
            group.create_task(handle.aclose())

    with pytest.RaisesGroup(pytest.RaisesExc(ValueError, match="sibling")):
        run(main())
    assert a.received is None
    assert times(log, "exiting") == {"a": 1} and times(log, "exited") == {"a": 4}


def test_start_context_in_an_asyncio_task_group_is_cancelled_with_its_host() -> None:
    # asyncio.timeout around the group: the held context manager exits with the
    # cancellation, the group waits for it, and the timeout becomes its TimeoutError.
    log: list[tuple[float, str, str]] = []
    (a,) = fakes(log, a={"exit": 1})

    async def main() -> None:
        async with asyncio.timeout(2), asyncio.TaskGroup() as group:
            await start_context(group, a)
            await asyncio.sleep(10)

    with pytest.raises(TimeoutError):
        run(main())
    assert isinstance(a.received, asyncio.CancelledError)
    assert times(log, "exiting") == {"a": 2} and times(log, "exited") == {"a": 3}


@pytest.mark.parametrize("kind", ["anyio", "taskgroup"])
def test_start_context_failure_while_open_surfaces_in_the_task_group(kind: Group) -> None:
    log: list[tuple[float, str, str]] = []
    (a,) = fakes(log, a={"crash_at": 2, "opens": "taskgroup"})

    async def main() -> None:
        async with open_group(kind) as group:
            await start_context(group, a)
            await asyncio.sleep(10)

    with pytest.RaisesGroup(pytest.RaisesGroup(pytest.RaisesExc(RuntimeError, match="a crashed"))):
        run(main())
    assert times(log, "exiting") == {"a": 2}


def test_start_context_refuses_anything_else_before_entering() -> None:
    log: list[tuple[float, str, str]] = []
    (a,) = fakes(log, a={})

    async def main() -> None:
        with pytest.raises(TypeError, match=r"anyio task group or an asyncio.TaskGroup"):
            await start_context(object(), a)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]

    run(main())
    assert a.enter_task is None


def test_a_deadline_as_the_body_ends_makes_it_failing_first() -> None:
    # a's asyncio.timeout fires at 2, the instant the body ends.  As Trio orders them (a
    # deadline before any task step of its instant), a is failing as the stage unwinds:
    # its __aexit__ receives its own cancellation (its timeout turns it into a
    # TimeoutError, its failure while open), and b receives that failure.  (The runtime
    # records the interruption as the cancellation lands, in the cancelling callback.)
    log: list[tuple[float, str, str]] = []
    a, b = fakes(log, a={"opens": "timeout", "timeout_at": 2}, b={})

    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with parallel_with(a, b):
            await asyncio.sleep(1)
            # The body's timer first, then a's deadline, both at 2: the body's task is
            # woken first, before a's holder runs.
            ended = loop.create_future()
            loop.call_at(2, ended.set_result, None)
            a.inner_timeout().reschedule(2)
            await ended

    with pytest.RaisesGroup(TimeoutError) as caught:
        run(main())
    assert isinstance(a.received, asyncio.CancelledError)
    assert isinstance(b.received, TimeoutError)
    assert [f.phase for f in failures_of(caught.value)] == ["open"]


def test_without_anyio_asyncio_is_a_clear_error_at_once() -> None:
    # The asyncio runtime needs anyio (the ``asyncio`` extra): a block under asyncio says
    # what to install, before anything is entered.  (A fresh interpreter where anyio
    # cannot be imported.)
    code = """
import asyncio, sys
sys.modules["anyio"] = None  # not installed
from trio_parallel_cm import parallel_with

class CM:
    async def __aenter__(self):
        print("entered")
    async def __aexit__(self, *exc_info):
        pass

async def main():
    async with parallel_with(CM()):
        pass

try:
    asyncio.run(main())
except RuntimeError as exc:
    print(exc)
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout == (
        "trio_parallel_cm under asyncio needs anyio: pip install 'trio_parallel_cm[asyncio]'\n"
    )


@pytest.mark.parametrize("use_uvloop", [False, True])
def test_under_anyio_run_on_asyncio(use_uvloop: bool) -> None:
    # anyio.run(..., backend="asyncio"): the runtime is asyncio's.  Two context managers
    # each wait, in __aenter__, for the other to have begun entering (only concurrent
    # enters pass), and each exits in the task that entered it.
    began = {"a": anyio.Event(), "b": anyio.Event()}
    tasks: dict[str, list[object]] = {"a": [], "b": []}

    @contextlib.asynccontextmanager
    async def gated(name: str, other: str) -> AsyncGenerator[str, None]:
        tasks[name].append(anyio.get_current_task().id)
        async with anyio.create_task_group():
            began[name].set()
            with anyio.fail_after(5):  # (a bound on a hang, not a synchronisation)
                await began[other].wait()
            yield name
        tasks[name].append(anyio.get_current_task().id)

    async def main() -> tuple[str, str]:
        assert sniffio.current_async_library() == "asyncio"
        async with parallel_with(gated("a", "b"), gated("b", "a")) as values:
            pass
        return values

    options = {"use_uvloop": use_uvloop}
    assert anyio.run(main, backend="asyncio", backend_options=options) == ("a", "b")
    assert all(len(ids) == 2 and ids[0] == ids[1] for ids in tasks.values())
    assert tasks["a"][0] != tasks["b"][0]
