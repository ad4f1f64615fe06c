"""``in_thread`` on real parts: sqlite3 connections, real threads and barriers, Ctrl+C.

Each test runs on Trio, on asyncio's own loop and on uvloop (``loop``), in real time: the
suite's ``pytest.mark.runtimes`` runs asyncio on the ``VirtualTimeLoop``, whose clock jumps
to the next deadline while a thread works (``tests/test_thread.py`` holds its threads at
gates for that), so these tests run their own loops, as tests/test_asyncio_real.py does.

Concurrency is asserted without a clock: ten ``__enter__`` (or ``__exit__``) calls meet at
a ``threading.Barrier(10)``, which only opens if they all run at once; the controls show
that one after another they break it.  Every wait is bounded (``TIMEOUT``), so that a hang
fails a test; nothing waits for a delay to synchronise.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable, Generator, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import pytest
import trio
import uvloop

from tests import runtime as rt
from trio_parallel_cm import (
    ParallelExitStack,
    PhaseEvent,
    ResourceGraph,
    ThreadContext,
    failures_of,
    in_thread,
    parallel_with,
    start_context,
)

TIMEOUT = 10  # seconds: generous for threads and sqlite files; only a hang fails a test
RUNTIMES = ("trio", "asyncio", "uvloop")


@pytest.fixture(params=RUNTIMES)
def loop(request: pytest.FixtureRequest) -> str:
    """The runtime a test runs on: Trio, asyncio's loop or uvloop's (debug mode)."""
    name: str = request.param
    return name


def run(loop: str, main: Callable[[], Awaitable[None]]) -> None:
    """``main()`` on ``loop``, bounded by ``TIMEOUT``."""

    async def bounded() -> None:
        with rt.fail_after(TIMEOUT):
            await main()

    if loop == "trio":
        trio.run(bounded)
    else:
        factory = uvloop.new_event_loop if loop == "uvloop" else None
        with asyncio.Runner(debug=True, loop_factory=factory) as runner:
            runner.run(bounded())


def assert_ended(threads: Sequence[threading.Thread]) -> None:
    """Each thread ends (soon: it ends once it has told the task its last result)."""
    for thread in threads:
        thread.join(TIMEOUT)
        assert not thread.is_alive(), thread.name


# -- sqlite3: connections bound to the thread that made them ------------------------------


class Tracked(sqlite3.Connection):
    """A connection that records the thread that made it and the one that closed it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.made_by = threading.current_thread()
        self.closed_by: threading.Thread | None = None

    def close(self) -> None:
        super().close()
        self.closed_by = threading.current_thread()


@contextlib.contextmanager
def open_db(path: Path) -> Generator[Tracked]:
    """Connect (``check_same_thread`` on); commit or roll back, then close, on exit."""
    connection = sqlite3.connect(path, factory=Tracked)
    assert isinstance(connection, Tracked)
    with contextlib.closing(connection) as conn, conn:
        yield conn


def make_db(path: Path) -> None:
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("create table t (x integer)")


def rows(path: Path) -> list[int]:
    """What a fresh connection, in the test's thread, reads (what was committed)."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return [x for (x,) in conn.execute("select x from t order by x")]


def test_ten_sqlite_connections_open_concurrently_each_bound_to_its_own_thread(
    loop: str, tmp_path: Path
) -> None:
    paths = [tmp_path / f"db{i}.sqlite" for i in range(10)]
    for path in paths:
        make_db(path)
    dbs = [in_thread(open_db, path) for path in paths]
    conns: list[Tracked] = []

    async def main() -> None:
        async with parallel_with(*dbs) as opened:
            conns.extend(opened)
            for i, (db, conn) in enumerate(zip(dbs, conns, strict=True)):
                await db.run(conn.execute, "insert into t values (?)", (i,))
                # Bound to its thread: the loop's cannot use it.
                with pytest.raises(sqlite3.ProgrammingError, match="same thread"):
                    conn.execute("select x from t")
            idents = [await db.run(threading.get_ident) for db in dbs]
            assert idents == [conn.made_by.ident for conn in conns]
            assert len(set(idents)) == 10
            assert threading.get_ident() not in idents
            assert [rows(path) for path in paths] == [[]] * 10  # not committed yet

    run(loop, main)
    # Committed by each __exit__, then closed, in the thread that made the connection.
    assert [rows(path) for path in paths] == [[i] for i in range(10)]
    assert all(conn.closed_by is conn.made_by for conn in conns)
    assert {conn.made_by.name for conn in conns} == {"in_thread(open_db)"}
    assert_ended([conn.made_by for conn in conns])


def test_a_failed_connect_rolls_back_and_closes_the_connections_that_entered(
    loop: str, tmp_path: Path
) -> None:
    # Three connections write a row each as they enter (not committed); the fourth
    # connects once the block has seen them enter, to a file in a missing folder.  The
    # body never runs; the three exit with the failure, which rolls their rows back.
    paths = [tmp_path / f"db{i}.sqlite" for i in range(3)]
    for path in paths:
        make_db(path)
    missing = tmp_path / "missing" / "db.sqlite"
    all_entered = threading.Event()
    entered = 0
    received: dict[int, BaseException] = {}
    conns: list[Tracked] = []
    threads: list[threading.Thread] = []

    @contextlib.contextmanager
    def open_and_write(i: int) -> Generator[Tracked]:
        threads.append(threading.current_thread())
        with open_db(paths[i]) as conn:
            conns.append(conn)
            conn.execute("insert into t values (?)", (i,))
            try:
                yield conn
            except BaseException as exc:
                received[i] = exc
                raise

    @contextlib.contextmanager
    def open_late() -> Generator[Tracked]:
        threads.append(threading.current_thread())
        assert all_entered.wait(TIMEOUT), "the others did not enter"
        with open_db(missing) as conn:
            yield conn  # pragma: no cover (the connect fails)

    def observe(event: PhaseEvent) -> None:
        nonlocal entered
        if event.kind == "entered":
            entered += 1
            if entered == 3:
                all_entered.set()

    async def main() -> None:
        with pytest.RaisesGroup(pytest.RaisesExc(sqlite3.OperationalError)) as caught:
            async with parallel_with(
                *[in_thread(open_and_write, i) for i in range(3)],
                in_thread(open_late),
                observer=observe,
            ):
                pytest.fail("the body ran although a connect failed")  # pragma: no cover
        [failure] = failures_of(caught.value)
        assert (failure.name, failure.position, failure.phase) == (
            "in_thread(open_late)",
            3,
            "entering",
        )
        [error] = caught.value.exceptions
        # Each __exit__ received the failure itself, as nested ``with`` blocks would.
        assert set(received) == {0, 1, 2}
        assert all(exc is error for exc in received.values())

    run(loop, main)
    assert [rows(path) for path in paths] == [[], [], []]  # rolled back
    assert sorted(conn.made_by.name for conn in conns) == ["in_thread(open_and_write)"] * 3
    assert all(conn.closed_by is conn.made_by for conn in conns)
    assert len({id(thread) for thread in threads}) == 4
    assert_ended(threads)


# -- Concurrency with real blocking calls ------------------------------------------------


class Gated:
    """``__enter__`` and ``__exit__`` wait at their barriers: they pass only together."""

    def __init__(self, entering: threading.Barrier, exiting: threading.Barrier) -> None:
        self.entering, self.exiting = entering, exiting

    def __enter__(self) -> int:
        self.entering.wait()
        return threading.get_ident()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.exiting.wait()


def test_ten_blocking_enters_and_exits_run_at_once(loop: str) -> None:
    entering = threading.Barrier(10, timeout=TIMEOUT)
    exiting = threading.Barrier(10, timeout=TIMEOUT)

    async def main() -> None:
        async with parallel_with(*[in_thread(Gated, entering, exiting) for _ in range(10)]) as ids:
            assert len(set(ids)) == 10

    run(loop, main)
    assert not entering.broken and not exiting.broken


@pytest.mark.parametrize("gate", ["enter", "exit"])
def test_blocking_calls_one_after_another_break_the_barrier(loop: str, gate: str) -> None:
    # The control: entered (or exited) one by one, the first waits at a barrier for two
    # in vain, and breaks it when its short timeout passes.
    two = threading.Barrier(2, timeout=0.1)
    one = threading.Barrier(1)
    entering, exiting = (two, one) if gate == "enter" else (one, two)

    async def main() -> None:
        async with contextlib.AsyncExitStack() as stack:
            for _ in range(2):
                await stack.enter_async_context(in_thread(Gated, entering, exiting))

    with pytest.raises(threading.BrokenBarrierError):
        run(loop, main)
    assert two.broken


# -- Every face: one thread per context manager, for all of its calls --------------------


class Probe:
    """Records the thread of each call: made, entered, ran (``run``), exited."""

    def __init__(self) -> None:
        self.thread = threading.current_thread()
        self.calls = {"made": threading.get_ident()}
        self.received: list[BaseException | None] = []

    def __enter__(self) -> Self:
        self.calls["entered"] = threading.get_ident()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.calls["exited"] = threading.get_ident()
        self.received.append(exc)

    def ran(self) -> str:
        self.calls["ran"] = threading.get_ident()
        return threading.current_thread().name


Adapters = list[ThreadContext[Probe]]
Body = Callable[[list[Probe]], Awaitable[None]]


async def nested(cms: Adapters, body: Body) -> None:
    a, b, c = cms
    async with a as pa, b as pb, c as pc:
        await body([pa, pb, pc])


async def exit_stack(cms: Adapters, body: Body) -> None:
    async with contextlib.AsyncExitStack() as stack:
        await body([await stack.enter_async_context(cm) for cm in cms])


async def parallel(cms: Adapters, body: Body) -> None:
    a, b, c = cms
    async with parallel_with(a, b, c) as probes:
        await body(list(probes))


async def parallel_stack(cms: Adapters, body: Body) -> None:
    a, b, c = cms
    async with ParallelExitStack() as stack:
        first = await stack.enter(a)
        second, third = await stack.enter_all(b, c)
        await body([first, second, third])


async def handles(cms: Adapters, body: Body) -> None:
    async with rt.open_nursery() as nursery:
        started = [await start_context(nursery, cm) for cm in cms]
        await body([handle.value for handle in started])
        for handle in reversed(started):
            await handle.aclose()


async def graph(cms: Adapters, body: Body) -> None:
    a, b, c = cms

    def first() -> ThreadContext[Probe]:
        return a

    def second() -> ThreadContext[Probe]:
        return b

    def third(_: Probe) -> ThreadContext[Probe]:
        return c

    resources_graph = ResourceGraph()
    node_a = resources_graph.add(first)
    node_b = resources_graph.add(second)
    node_c = resources_graph.add(third, node_a)  # c needs a
    async with resources_graph as resources:
        await body([resources[node_a], resources[node_b], resources[node_c]])


@pytest.mark.parametrize(
    "face", [nested, exit_stack, parallel, parallel_stack, handles, graph], ids=lambda f: f.__name__
)
def test_every_face_makes_enters_runs_and_exits_in_one_thread_per_context_manager(
    loop: str, face: Callable[[Adapters, Body], Awaitable[None]]
) -> None:
    cms = [in_thread(Probe) for _ in range(3)]
    probes: list[Probe] = []

    async def body(values: list[Probe]) -> None:
        probes.extend(values)
        for cm, probe in zip(cms, values, strict=True):
            assert await cm.run(probe.ran) == "in_thread(Probe)"

    async def main() -> None:
        await face(cms, body)

    run(loop, main)
    assert len(probes) == 3
    for probe in probes:
        assert list(probe.calls) == ["made", "entered", "ran", "exited"]
        assert set(probe.calls.values()) == {probe.thread.ident}
        assert probe.thread is not threading.current_thread()  # (the loop ran here)
        assert probe.thread.name == "in_thread(Probe)"
        assert probe.received == [None]
    assert len({probe.thread.ident for probe in probes}) == 3
    assert_ended([probe.thread for probe in probes])


# -- Ctrl+C while an in_thread context manager is entering --------------------------------

INTERRUPTED = Path(__file__).with_name("thread_interrupted.py")


def _read_lines(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line.rstrip("\n"))
    lines.put(None)


def interrupt_while_entering(loop: str) -> tuple[list[str], list[str]]:
    """Run tests/thread_interrupted.py: Ctrl+C once a, b entered and c blocks; then let c's
    enter return.  The lines before the interrupt's effect, and the rest."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    with subprocess.Popen(
        [sys.executable, "-X", "dev", "-W", "error", str(INTERRUPTED), loop],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as program:
        assert program.stdin is not None and program.stdout is not None
        assert program.stderr is not None
        lines: queue.Queue[str | None] = queue.Queue()
        reader = threading.Thread(target=_read_lines, args=(program.stdout, lines), daemon=True)
        reader.start()
        try:

            def take(count: int) -> list[str]:
                taken: list[str] = []
                for _ in range(count):
                    line = lines.get(timeout=TIMEOUT)  # (queue.Empty: no progress)
                    assert line is not None, f"the program ended early, after {taken}"
                    taken.append(line)
                return taken

            before = take(4)
            program.send_signal(signal.SIGINT)
            before += take(1)
            program.stdin.write("go\n")  # c's enter returns
            program.stdin.close()
            after: list[str] = []
            while (line := lines.get(timeout=TIMEOUT)) is not None:
                after.append(line)
            program.wait(TIMEOUT)
        finally:
            if program.poll() is None:  # pragma: no cover (a hang)
                program.kill()
        errors = program.stderr.read()
    reader.join(TIMEOUT)
    assert (program.returncode, errors) == (0, "")
    return before, after


CANCELLED = {"trio": "Cancelled", "asyncio": "CancelledError", "uvloop": "CancelledError"}


def test_ctrl_c_while_entering_in_a_thread_exits_every_entered_context_manager(
    loop: str,
) -> None:
    # Ctrl+C once a and b have entered, c blocks in its thread and d waits (every task
    # blocked).  The interrupt cancels the enters of c and d: c's enter is waited for,
    # then c exits at once, in its thread, with its cancellation; d was never entered
    # and is not exited; a and b exit, and the program ends with the KeyboardInterrupt.
    before, after = interrupt_while_entering(loop)
    assert sorted(before[:4]) == ["blocking c", "entered a", "entered b", "waiting d"]
    assert before[4:] == ["cancelled d"]
    assert after[-1] == "KeyboardInterrupt"
    exits = sorted(line for line in after if line.startswith("exited "))
    assert len(after) == len(exits) + 2  # and "ended with ...": no body, no other line
    assert [line.rsplit(" with ", 1)[0] for line in exits] == ["exited a", "exited b", "exited c"]
    assert exits[2] == f"exited c with {CANCELLED[loop]}"
    if loop == "trio":
        # The interrupt is delivered to the entered ones, as a failure of the block
        # (here wrapped in a group of Trio's: see the next test).
        assert all("KeyboardInterrupt" in line for line in exits[:2])
    else:
        # asyncio.run cancels the main task: an outer cancellation; then it raises.
        assert exits[:2] == [f"exited {x} with CancelledError" for x in "ab"]
        assert after[-2] == "ended with KeyboardInterrupt"


def test_ctrl_c_while_entering_on_trio_delivers_the_keyboard_interrupt_itself() -> None:
    _, after = interrupt_while_entering("trio")
    exits = sorted(line for line in after if line.startswith("exited "))
    assert exits[:2] == ["exited a with KeyboardInterrupt", "exited b with KeyboardInterrupt"]
    assert after[-2] == "ended with ParallelBaseExceptionGroup[KeyboardInterrupt]"
