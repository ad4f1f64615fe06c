"""``in_thread``: a synchronous context manager held by a thread of its own.

Each async test runs on Trio and on asyncio (``tests/runtime.py``).  The threads are real:
a test holds them at gates (``Gate``) and learns where they are from events they set on the
loop (``Reached``), so that nothing depends on how fast a thread runs.  The virtual clocks
jump while a thread is held at a gate; that is how a deadline passes while a thread blocks.
They jump while any thread runs, too (no task is ready): a deadline that must not pass
during a thread's call is set after that call, or the thread is held at a gate.
"""

from __future__ import annotations

import contextlib
import contextvars
import sqlite3
import threading
import traceback
from collections.abc import Callable, Generator, Sequence
from types import TracebackType
from typing import Any, Final, Self, cast

import anyio.to_thread
import attrs
import outcome
import pytest
import sniffio
import trio
import trio.testing

from tests import runtime as rt
from tests.fakes import FakeCM, notes
from trio_parallel_cm import (
    ParallelExitStack,
    ThreadContext,
    Timeline,
    _runtime,
    in_thread,
    parallel_with,
    start_context,
)
from trio_parallel_cm._runtime import _trio
from trio_parallel_cm._thread import _Call, _chain  # pyright: ignore[reportPrivateUsage]

pytestmark = pytest.mark.runtimes

#: What happened, in order: "a entered", "gate opened", ...
Events = list[str]

#: Real seconds a thread waits at a gate before the test is declared broken (not a sync:
#: a gate is opened by the test, always well before).
GATE_TIMEOUT: Final = 20.0


class Gate:
    """Holds a thread until the test opens it."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def open(self) -> None:
        self._event.set()

    def wait(self) -> None:
        if not self._event.wait(GATE_TIMEOUT):
            raise AssertionError("the test never opened this gate")


class Reached:
    """A point that a thread reaches and a task waits for (made on the loop)."""

    def __init__(self) -> None:
        runtime = _runtime.current("a test")
        self._event = runtime.Event()
        self._call_soon = runtime.threadsafe_caller()

    def set(self) -> None:  # in the thread
        self._call_soon(self._event.set)

    async def wait(self) -> None:
        await self._event.wait()


class Arrivals:
    """Points that threads reach, counted; a task waits until so many have (made on the
    loop).  Each thread's ``set`` counts once."""

    def __init__(self) -> None:
        runtime = _runtime.current("a test")
        self._event = runtime.Event
        self._call_soon = runtime.threadsafe_caller()
        self._count = 0
        self._changed = self._event()

    def set(self) -> None:  # in a thread
        self._call_soon(self._arrived)

    def _arrived(self) -> None:  # on the loop
        self._count += 1
        self._changed.set()
        self._changed = self._event()

    async def wait_for(self, count: int) -> None:
        while self._count < count:
            await self._changed.wait()


@attrs.define(eq=False)
class Sync:
    """A synchronous context manager that records which thread ran each of its methods and
    what ``__exit__`` received; it can be held at gates, fail, or suppress."""

    name: str
    log: Events
    enter_gate: Gate | None = None
    exit_gate: Gate | None = None
    entering: Reached | Arrivals | None = None
    exiting: Reached | Arrivals | None = None
    fail_enter: BaseException | None = None
    fail_exit: BaseException | None = None
    suppress: bool = False
    made_in: threading.Thread = attrs.field(factory=threading.current_thread)
    entered_in: threading.Thread | None = None
    exited_in: threading.Thread | None = None
    seen: BaseException | None = None
    exited: int = 0

    def __enter__(self) -> Self:
        self.entered_in = threading.current_thread()
        if self.entering is not None:
            self.entering.set()
        if self.enter_gate is not None:
            self.enter_gate.wait()
        if self.fail_enter is not None:
            raise self.fail_enter
        self.log.append(f"{self.name} entered")
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        self.exited_in, self.seen = threading.current_thread(), exc
        if self.exiting is not None:
            self.exiting.set()
        if self.exit_gate is not None:
            self.exit_gate.wait()
        self.exited += 1
        self.log.append(f"{self.name} exited")
        if self.fail_exit is not None:
            raise self.fail_exit
        return self.suppress


def made(log: Events, cms: list[Sync]) -> Callable[..., Sync]:
    """A factory of ``Sync`` that keeps what it made in ``cms`` (for those that never
    return from ``__enter__``)."""

    def make(name: str, **kwargs: Any) -> Sync:
        cm = Sync(name, log, **kwargs)
        cms.append(cm)
        return cm

    return make


async def open_later(
    gate: Gate,
    reached: Reached,
    log: Events | None = None,
    opened_at: list[float] | None = None,
    held: Sequence[Sync] = (),
) -> None:
    """Once a thread has reached ``reached``, let 5 virtual seconds pass (a deadline comes
    meanwhile, the thread held at ``gate``: ``held`` have not exited), then open ``gate``,
    noted in ``log`` and its time in ``opened_at``."""
    await reached.wait()
    await rt.sleep(5)
    assert [cm.exited for cm in held] == [0] * len(held)
    if log is not None:
        log.append("gate opened")
    if opened_at is not None:
        opened_at.append(rt.current_time())
    gate.open()


# ---- which thread runs what ------------------------------------------------------------


async def test_factory_enter_run_and_exit_run_in_one_thread_of_their_own() -> None:
    log: Events = []
    a_db, b_db = in_thread(Sync, "a", log), in_thread(Sync, "b", log)
    async with parallel_with(a_db, b_db) as (a, b):
        assert await a_db.run(threading.current_thread) is a.made_in
        assert await b_db.run(threading.current_thread) is b.made_in
    for cm in (a, b):
        assert cm.made_in is cm.entered_in is cm.exited_in
        assert cm.made_in is not threading.current_thread()
        assert cm.made_in.name == "in_thread(Sync)"
        assert cm.made_in.daemon
        assert cm.seen is None
        cm.made_in.join(GATE_TIMEOUT)  # (it ends once it has exited)
        assert not cm.made_in.is_alive()
    assert a.made_in is not b.made_in
    assert sorted(log) == ["a entered", "a exited", "b entered", "b exited"]


async def test_a_bound_resource_is_used_through_run_only() -> None:
    # sqlite3 refuses, by default, a connection used from another thread than its own.
    db = in_thread(lambda: contextlib.closing(sqlite3.connect(":memory:")))
    async with db as conn:
        await db.run(conn.execute, "create table t (x)")
        await db.run(conn.execute, "insert into t values (?)", (7,))
        rows = await db.run(lambda: conn.execute("select x from t").fetchall())
        assert rows == [(7,)]
        with pytest.raises(sqlite3.ProgrammingError, match="thread"):
            conn.execute("select 1")


async def test_calls_run_in_order_in_a_copy_of_the_callers_context() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    var.set("the caller's")
    seen: list[object] = []

    def look() -> None:
        seen.append(var.get())
        with pytest.raises(sniffio.AsyncLibraryNotFoundError):
            sniffio.current_async_library()

    @contextlib.contextmanager
    def resource() -> Generator[None, None, None]:
        look()
        yield
        look()

    cm = in_thread(resource)
    async with cm:
        await cm.run(look)
        var.set("changed")
        await cm.run(look)
        order: list[int] = []
        async with rt.open_nursery() as nursery:
            for i in range(5):
                nursery.start_soon(cm.run, order.append, i)
        assert sorted(order) == list(range(5))
    assert seen == ["the caller's", "the caller's", "changed", "changed"]


# ---- what __exit__ receives, and what comes out ---------------------------------------


@pytest.mark.parametrize("suppress", [False, True])
async def test_the_body_exception_reaches_exit_which_may_suppress(suppress: bool) -> None:
    log: Events = []
    cms: list[Sync] = []
    error = KeyError("from the body")
    with contextlib.suppress(KeyError):
        async with in_thread(made(log, cms), "a", suppress=suppress):
            raise error
        assert suppress, "suppressed"
    (a,) = cms
    assert a.seen is error
    assert a.exited_in is a.made_in
    assert error.__traceback__ is not None
    # The exception's traceback is left as the block made it (no frame of the thread).
    names = [frame.name for frame in traceback.extract_tb(error.__traceback__)]
    assert "__exit__" not in names


async def test_an_exit_failure_keeps_its_traceback_and_chains_as_with_does() -> None:
    log: Events = []
    body, inner, outer = KeyError("body"), OSError("inner"), ValueError("outer")

    class Chaining(Sync):
        def __exit__(self, *exc: Any) -> bool:  # noqa: PYI036  # (passed on as they came)
            super().__exit__(*exc)
            try:
                raise inner
            except OSError:
                raise outer from None

    with pytest.raises(ValueError, match="outer") as caught:
        async with in_thread(Chaining, "a", log):
            raise body
    assert caught.value.__context__ is inner  # raised in the thread while handling inner
    assert inner.__context__ is body  # ... itself raised while with was handling body
    assert caught.value.__suppress_context__
    names = [frame.name for frame in traceback.extract_tb(caught.value.__traceback__)]
    assert names.index("__aexit__") < names.index("__exit__")  # the thread's frames follow


async def test_an_enter_failure_comes_out_and_exit_is_not_called() -> None:
    log: Events = []
    cms: list[Sync] = []
    with pytest.raises(ConnectionError, match="refused") as caught:
        async with in_thread(made(log, cms), "a", fail_enter=ConnectionError("refused")):
            pytest.fail("the body ran")
    names = [frame.name for frame in traceback.extract_tb(caught.value.__traceback__)]
    assert "__enter__" in names
    (a,) = cms
    assert a.exited == 0
    a.made_in.join(GATE_TIMEOUT)
    assert not a.made_in.is_alive()


async def test_in_a_block_failures_are_noted_with_the_adapters_name() -> None:
    log: Events = []
    with pytest.RaisesGroup(
        pytest.RaisesExc(
            ValueError,
            check=lambda exc: notes(exc) == ["in_thread(Sync) (position 1) failed while exiting"],
        )
    ):
        async with parallel_with(
            FakeCM("async", []), in_thread(Sync, "a", log, fail_exit=ValueError("bad"))
        ):
            pass


# ---- cancellation while a thread blocks ------------------------------------------------


@pytest.mark.parametrize("kind", ["scope", "native"])
async def test_cancelled_while_the_thread_enters_the_block_waits_then_exits_it(
    autojump_clock: trio.testing.MockClock, kind: str
) -> None:
    log: Events = []
    cms: list[Sync] = []
    gate, entering = Gate(), Reached()
    deadline = rt.move_on_after if kind == "scope" else rt.cancel_after
    opened_at: list[float] = []

    async with rt.open_nursery() as nursery:
        nursery.start_soon(open_later, gate, entering, log, opened_at, cms)
        with deadline(1) as outer:
            async with parallel_with(
                in_thread(made(log, cms), "slow", enter_gate=gate, entering=entering),
                in_thread(made(log, cms), "quick"),
            ):
                pytest.fail("the body ran")
        log.append("block done")
    assert outer.cancelled_caught
    slow, quick = sorted(cms, key=lambda cm: cm.name)
    assert log.index("gate opened") < log.index("slow exited") < log.index("block done")
    for cm in (slow, quick):
        assert cm.exited == 1
        assert cm.exited_in is cm.made_in
        assert isinstance(cm.seen, rt.cancelled())
    # (The virtual clock jumps while a thread runs to its gate: only the order is exact.)
    assert rt.current_time() == opened_at[0] >= 5


async def test_a_siblings_enter_failure_waits_for_the_thread_then_exits_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Events = []
    cms: list[Sync] = []
    gate, entering = Gate(), Reached()
    refused = ConnectionRefusedError("refused")

    async with rt.open_nursery() as nursery:
        nursery.start_soon(open_later, gate, entering, None, None, cms)
        with pytest.RaisesGroup(
            pytest.RaisesExc(ConnectionRefusedError, check=lambda e: e is refused)
        ):
            async with parallel_with(
                in_thread(made(log, cms), "slow", enter_gate=gate, entering=entering),
                FakeCM("sibling", [], enter_delay=1, enter_error=refused),
            ):
                pytest.fail("the body ran")
    (slow,) = cms
    assert slow.exited == 1
    assert slow.exited_in is slow.made_in
    assert isinstance(slow.seen, rt.cancelled())  # its enter was cancelled, as nested


async def test_an_enter_timeout_waits_for_the_thread_and_the_timeline_shows_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Events = []
    cms: list[Sync] = []
    gate, entering = Gate(), Reached()
    timeline = Timeline()
    opened_at: list[float] = []

    async with rt.open_nursery() as nursery:
        nursery.start_soon(open_later, gate, entering, None, opened_at)
        with pytest.RaisesGroup(pytest.RaisesExc(rt.too_slow(), match="within 1 s")):
            async with parallel_with(
                in_thread(made(log, cms), "slow", enter_gate=gate, entering=entering),
                enter_timeout=1,
                observer=timeline,
            ):
                pytest.fail("the body ran")
    (slow,) = cms
    assert slow.exited == 1
    assert isinstance(slow.seen, rt.cancelled())
    (failed,) = [event for event in timeline.events if event.kind == "enter_failed"]
    assert failed.time == opened_at[0] >= 5  # the enter lasted until the thread came back


async def test_plain_async_with_cancelled_while_entering_exits_then_raises(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Events = []
    cms: list[Sync] = []
    gate, entering = Gate(), Reached()

    async with rt.open_nursery() as nursery:
        nursery.start_soon(open_later, gate, entering)
        with rt.move_on_after(1) as outer:
            async with in_thread(made(log, cms), "slow", enter_gate=gate, entering=entering):
                pytest.fail("the body ran")
    assert outer.cancelled_caught
    assert cms[0].exited == 1
    assert isinstance(cms[0].seen, rt.cancelled())


@pytest.mark.parametrize("body", ["cancelled", "done"])
@pytest.mark.parametrize("kind", ["scope", "native"])
async def test_an_outer_cancellation_does_not_cut_a_threads_exit_short(
    autojump_clock: trio.testing.MockClock, kind: str, body: str
) -> None:
    log: Events = []
    gate, exiting = Gate(), Reached()
    deadline = rt.move_on_after if kind == "scope" else rt.cancel_after

    async with rt.open_nursery() as nursery:
        nursery.start_soon(open_later, gate, exiting, log)
        with deadline(1) as outer:
            async with parallel_with(in_thread(Sync, "a", log, exit_gate=gate, exiting=exiting)):
                if body == "cancelled":
                    await rt.sleep(2)  # cancelled at 1
            # (else the cancellation comes at 1, while the thread exits)
        log.append("block done")
    assert outer.cancelled_caught
    assert log == ["a entered", "gate opened", "a exited", "block done"]


@pytest.mark.parametrize("kind", ["scope", "native"])
async def test_plain_async_with_cancelled_while_the_thread_exits_waits_then_raises(
    autojump_clock: trio.testing.MockClock, kind: str
) -> None:
    # The task that runs __aexit__ is cancelled itself (on asyncio natively, delivered
    # once: raised once the thread has exited; on Trio, met at the next checkpoint).
    log: Events = []
    gate, exiting = Gate(), Reached()
    deadline = rt.move_on_after if kind == "scope" else rt.cancel_after

    cm = in_thread(Sync, "a", log, exit_gate=gate, exiting=exiting)
    async with rt.open_nursery() as nursery:
        nursery.start_soon(open_later, gate, exiting, log)
        await cm.__aenter__()
        # (The deadline is set once the thread has entered: the virtual clock jumps to
        # it while a thread runs, and this test is about the exit.)
        with deadline(1) as outer:
            await cm.__aexit__(None, None, None)
            log.append("block done")
            await rt.checkpoint()
    assert outer.cancelled_caught
    expected = ["a entered", "gate opened", "a exited"]
    # (A native cancellation comes out of __aexit__, once the thread has exited.)
    assert log == (expected if kind == "native" and not rt.on_trio() else [*expected, "block done"])


@pytest.mark.parametrize("budget", ["exit_timeout", "shutdown_timeout"])
async def test_an_exit_budget_stops_the_wait_and_the_thread_finishes_on_its_own(
    autojump_clock: trio.testing.MockClock, budget: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    log: Events = []
    cms: list[Sync] = []
    gate, finished = Gate(), threading.Event()
    reported: list[threading.ExceptHookArgs] = []

    def excepthook(args: threading.ExceptHookArgs) -> None:
        if args.thread is not None and args.thread.name == "in_thread(make)":
            reported.append(args)
            finished.set()

    monkeypatch.setattr(threading, "excepthook", excepthook)
    options: dict[str, Any] = {budget: 1}
    with pytest.RaisesGroup(pytest.RaisesExc(rt.too_slow())):
        async with parallel_with(
            in_thread(made(log, cms), "a", exit_gate=gate, fail_exit=OSError("late")),
            **options,
        ):
            pass
    (a,) = cms
    assert a.exited == 0  # still held at its gate: the block did not wait
    assert a.made_in.is_alive()
    gate.open()
    assert finished.wait(GATE_TIMEOUT)
    (args,) = reported
    assert isinstance(args.exc_value, OSError)
    assert args.thread is a.made_in is a.exited_in
    assert a.exited == 1


async def test_a_run_call_is_waited_for_and_the_cancellation_comes_after(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Events = []
    gate, reached = Gate(), Reached()

    def blocking() -> str:
        reached.set()
        gate.wait()
        return "done"

    results: list[str] = []
    async with rt.open_nursery() as nursery:
        nursery.start_soon(open_later, gate, reached)
        db = in_thread(Sync, "a", log)
        outer = rt.cancel_after(1)
        async with db:
            with outer:
                results.append(await db.run(blocking))
                await rt.checkpoint()
                pytest.fail("not cancelled")
    assert outer.cancelled_caught
    # On Trio (level-triggered) the call's result came back; a native asyncio
    # cancellation, delivered once, is raised as the call returns.
    assert results == (["done"] if rt.on_trio() else [])


# ---- run -------------------------------------------------------------------------------


async def test_run_raises_the_calls_exception_chained_where_it_was_called() -> None:
    log: Events = []
    db = in_thread(Sync, "a", log)
    handled = KeyError("handled by the caller")

    def fails() -> None:
        raise OSError("in the thread")

    raised: BaseException | None = None
    async with db:
        try:
            raise handled
        except KeyError:
            try:
                await db.run(fails)
            except OSError as exc:
                raised = exc
    assert isinstance(raised, OSError)
    assert raised.__context__ is handled
    names = [frame.name for frame in traceback.extract_tb(raised.__traceback__)]
    assert names[-1] == "fails"


async def test_run_when_not_held_is_a_clear_error() -> None:
    log: Events = []
    db = in_thread(Sync, "a", log)
    with pytest.raises(RuntimeError, match=r"in_thread\(Sync\) .* is not entered yet: run\(\)"):
        await db.run(print)
    async with db:
        pass
    with pytest.raises(RuntimeError, match=r"is closed: run\(\) works while it is held"):
        await db.run(print)
    with pytest.raises(RuntimeError, match="was already entered"):
        async with db:
            pass


# ---- limits ----------------------------------------------------------------------------


def set_thread_tokens(total: int) -> None:
    """The tokens of this run's default thread limiter (Trio's, or anyio's on asyncio)."""
    if rt.on_trio():
        trio.to_thread.current_default_thread_limiter().total_tokens = total
    else:
        anyio.to_thread.current_default_thread_limiter().total_tokens = total


async def test_the_default_thread_limiter_bounds_enters_not_held_threads(
    autojump_clock: trio.testing.MockClock,  # (wait_all_tasks_blocked: not on uvloop)
) -> None:
    log: Events = []
    cms: list[Sync] = []
    set_thread_tokens(2)
    gate = Gate()
    arrivals = Arrivals()

    async def watch() -> None:
        await arrivals.wait_for(2)
        await rt.wait_all_tasks_blocked()
        assert len(cms) == 2  # two enters hold the two tokens; two wait
        log.append("two entering")
        gate.open()  # (the next two pass it at once)

    adapters = [
        in_thread(made(log, cms), str(i), enter_gate=gate, entering=arrivals) for i in range(4)
    ]
    async with rt.open_nursery() as nursery:
        nursery.start_soon(watch)
        async with parallel_with(*adapters, limit=None):
            # Four held threads, two tokens: no deadlock, and every call works.
            idents = [await db.run(threading.get_ident) for db in adapters]
            assert len(set(idents)) == 4
    assert len(cms) == 4
    assert all(cm.exited == 1 for cm in cms)


async def test_exits_and_run_take_no_token() -> None:
    log: Events = []
    set_thread_tokens(1)
    gate, entering = Gate(), Reached()
    held = in_thread(Sync, "held", log)
    async with held:
        async with rt.open_nursery() as nursery:
            # Another enter takes the only token and blocks.
            nursery.start_soon(
                _enter_and_leave, in_thread(Sync, "other", log, enter_gate=gate, entering=entering)
            )
            await entering.wait()
            assert await held.run(lambda: "called") == "called"
            log.append("held can still run")
            gate.open()
    assert log[:2] == ["held entered", "held can still run"]


async def _enter_and_leave(cm: ThreadContext[Sync]) -> None:
    async with cm:
        pass


async def test_a_block_exits_while_another_enter_holds_every_token() -> None:
    log: Events = []
    set_thread_tokens(1)
    gate, entering = Gate(), Reached()
    async with rt.open_nursery() as nursery:
        async with parallel_with(in_thread(Sync, "a", log), in_thread(Sync, "b", log)):
            nursery.start_soon(
                _enter_and_leave, in_thread(Sync, "other", log, enter_gate=gate, entering=entering)
            )
            await entering.wait()
        log.append("block done")  # its exits did not wait for a token
        gate.open()
    assert log.index("block done") < log.index("other entered")


# ---- every face ------------------------------------------------------------------------


async def test_every_face_holds_it_in_its_thread() -> None:
    log: Events = []
    async with contextlib.AsyncExitStack() as stack:
        first = await stack.enter_async_context(in_thread(Sync, "stack", log))
    second: Sync | None = None
    async with ParallelExitStack() as pstack:
        (second,) = await pstack.enter_all(in_thread(Sync, "pstack", log))
    assert second is not None
    async with rt.open_nursery() as nursery:
        handle = await start_context(nursery, in_thread(Sync, "handle", log))
        third = handle.value
        await handle.aclose()
    for cm in (first, second, third):
        assert cm.made_in is cm.entered_in is cm.exited_in is not threading.current_thread()
        assert cm.exited == 1


# ---- bad input -------------------------------------------------------------------------


def test_a_factory_must_be_callable() -> None:
    with pytest.raises(TypeError, match=r"^in_thread\(\) takes a callable .* not 42$"):
        in_thread(cast(Any, 42))
    with pytest.raises(TypeError, match=r"pass how to make the context manager"):
        in_thread(cast(Any, threading.Lock()))


async def test_a_factory_must_make_a_context_manager() -> None:
    with pytest.raises(TypeError, match=r"the factory returned 42, which does not support"):
        async with in_thread(cast(Any, lambda: 42)):
            pass

    with pytest.raises(TypeError, match="it is an async context manager; use it without"):
        async with in_thread(cast(Any, lambda: FakeCM("a", []))):
            pass


async def test_a_sync_context_manager_passed_directly_names_in_thread() -> None:
    conn = sqlite3.connect(":memory:")
    with pytest.raises(TypeError, match=r"Hold it in a thread of its own with `in_thread"):
        parallel_with(cast(Any, conn))
    conn.close()


async def test_exit_without_enter_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="is not held: it cannot exit"):
        await in_thread(Sync, "a", []).__aexit__(None, None, None)


# ---- the hand-overs with the thread -----------------------------------------------------
# (Ctrl+C while a thread blocks: tests/test_thread_real.py, in a subprocess.)


def test_the_last_outcome_is_taken_by_the_task_or_reported_by_the_thread() -> None:
    woken: list[object] = []
    lock = threading.Lock()

    def call(fn: Callable[[], object]) -> _Call:
        # (Trio's runtime, outside a run: its events are made, never waited for.)
        return _Call(fn, (), cast(Any, _trio), woken.append, lock)

    done = call(lambda: "done")
    assert done.run() is None  # the task is told
    assert done.abandon() == outcome.Value("done")  # ended: the task takes it
    error = OSError("late")

    def fails() -> None:
        raise error

    late = call(fails)
    assert late.abandon() is None  # not ended: abandoned
    assert late.run() is error  # the thread reports it
    assert len(woken) == 1  # (only the first was told)


def test_chaining_keeps_a_chain_that_holds_the_delivered_exception_or_a_cycle() -> None:
    delivered = KeyError("delivered")
    wrapped = OSError("wrapped")
    wrapped.__context__ = delivered  # raised in the thread while handling it
    _chain(wrapped, delivered)
    assert wrapped.__context__ is delivered and delivered.__context__ is None
    a, b = ValueError("a"), ValueError("b")
    a.__context__, b.__context__ = b, a  # a cycle: left as it is
    _chain(a, delivered)
    assert (a.__context__, b.__context__) == (b, a)
