"""The faces under asyncio on real parts (issue 18): loopback TCP, and MCP servers.

A real event loop (asyncio's and uvloop's, debug mode), real sockets and real subprocesses,
all started and stopped by the tests.  The clients open what breaks when ``__aenter__``
and ``__aexit__`` run in different tasks ("Attempted to exit cancel scope in a different
task"): an anyio task group or an ``asyncio.TaskGroup`` (TCP), the MCP SDK's stdio
transport and ``ClientSession`` (anyio task groups, both).

Concurrency is asserted without a clock: the servers answer only once every client of
the block has reached them (a gate; marker files for the MCP servers), so that opening
the clients one after another cannot complete.  The control tests check that it does
not.  Every test is bounded by ``asyncio.timeout(TIMEOUT)``, so that a hang fails it;
no test asserts a duration, and nothing waits for a delay to synchronise.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import struct
import subprocess
import sys
from collections.abc import AsyncGenerator, Callable, Coroutine, Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self, TypeVar

import anyio
import attrs
import pytest
import uvloop

from tests.fakes import leaves
from tests.loopback import HOST, refusing_port
from trio_parallel_cm import (
    ResourceGraph,
    failures_of,
    format_failures,
    parallel_with,
)

if TYPE_CHECKING:
    from mcp import ClientSession

T = TypeVar("T")

TIMEOUT = 10  # seconds: generous for loopback and three subprocesses; only a hang fails
MCP_SERVER = Path(__file__).with_name("mcp_server.py")


#: The loop each test runs on: asyncio's own, and uvloop's (``loop``).
LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop] | None] = {
    "asyncio": None,
    "uvloop": uvloop.new_event_loop,
}
_loop_factory: list[Callable[[], asyncio.AbstractEventLoop] | None] = [None]


@pytest.fixture(autouse=True, params=sorted(LOOPS))
def loop(request: pytest.FixtureRequest) -> Iterator[str]:
    """Every test here runs on asyncio's loop and on uvloop's."""
    name: str = request.param
    _loop_factory[0] = LOOPS[name]
    yield name
    _loop_factory[0] = None


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on a real loop (``loop``), in debug mode."""
    with asyncio.Runner(debug=True, loop_factory=_loop_factory[0]) as runner:
        return runner.run(main)


def current_task() -> asyncio.Task[Any]:
    task = asyncio.current_task()
    assert task is not None
    return task


async def without_hanging(block: Coroutine[Any, Any, T]) -> T:
    """``block``, bounded: it hangs if its gated clients are entered one after another."""
    try:
        async with asyncio.timeout(TIMEOUT):
            return await block
    except TimeoutError:
        pytest.fail(f"no progress in {TIMEOUT} s: were the clients opened one by one?")


# -- Loopback TCP ----------------------------------------------------------------------


class Gate:
    """Opens once ``expected`` connections have arrived; the servers behind it answer then."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.arrived = 0
        self._open = asyncio.Event()

    def arrive(self) -> None:
        self.arrived += 1
        if self.arrived == self.expected:
            self._open.set()

    async def wait(self) -> None:
        await self._open.wait()


@attrs.define(eq=False)
class LineServer:
    """An asyncio TCP server on loopback (an async context manager that starts and stops it).

    Each connection arrives at the gate; once the gate opens, and ``delay`` later (its
    latency), the server greets it with ``hello from NAME``, then answers each line with
    ``NAME: line``.  At the client's EOF it records the disconnect, then closes its side.
    A ``reset`` line makes it reset the connection (RST) instead of answering.
    """

    name: str
    gate: Gate
    log: list[str]
    delay: float = 0.0
    port: int = 0
    connections: int = 0
    disconnects: int = 0
    ended: list[asyncio.Event] = attrs.Factory(list[asyncio.Event])  # one per connection
    _server: asyncio.Server | None = None
    _handlers: set[asyncio.Task[Any]] = attrs.Factory(set[asyncio.Task[Any]])

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._handle, HOST, 0)
        [sock] = self._server.sockets
        self.port = sock.getsockname()[1]  # bound by the server itself: no race for it
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        handlers = list(self._handlers)  # (those still at a gate that never opened)
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = current_task()
        self._handlers.add(task)
        ended = asyncio.Event()
        self.ended.append(ended)
        self.connections += 1
        self.log.append(f"{self.name} accepted")
        self.gate.arrive()
        try:
            await self.gate.wait()
            await asyncio.sleep(self.delay)  # the server's latency
            writer.write(f"hello from {self.name}\n".encode())
            await writer.drain()
            while line := await reader.readline():
                if line == b"reset\n":
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    writer.transport.abort()  # closed at once, with a reset
                    self.log.append(f"{self.name} reset")
                    return
                writer.write(f"{self.name}: {line.decode()}".encode())
                await writer.drain()
            self.disconnects += 1
            self.log.append(f"{self.name} saw the end")
        except asyncio.CancelledError:  # stopped by __aexit__: the task ends here, quietly
            self.log.append(f"{self.name} stopped")
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            self._handlers.discard(task)
            ended.set()

    async def all_ended(self) -> None:
        """Wait until every connection's handler has finished (the test's bound applies)."""
        await asyncio.gather(*(event.wait() for event in self.ended))


GroupKind = Literal["anyio", "taskgroup"]


@attrs.define(eq=False)
class LineClient:
    """``asyncio.open_connection`` with a reader task in a task group of its own.

    ``__aenter__`` connects, opens the task group (anyio's or ``asyncio.TaskGroup``) with
    the reader task in it, and returns once the server has greeted it; ``__aexit__``
    sends EOF, waits for the server's (the reader task then ends), closes the task group
    and the connection.  Entered and exited in different tasks, anyio's task group raises
    "Attempted to exit cancel scope in a different task than it was entered in" (and an
    ``asyncio.TaskGroup`` would cancel the wrong task when its reader fails).
    """

    name: str
    port: int
    log: list[str]
    kind: GroupKind = "anyio"
    after: LineClient | None = None  # the client it depends on, in a graph
    greeting: str = ""
    enter_task: asyncio.Task[Any] | None = None
    exit_task: asyncio.Task[Any] | None = None
    enter_failure: BaseException | None = None  # what interrupted __aenter__, if anything
    received: BaseException | None = None  # what __aexit__ received
    saw_eof: bool = False
    _writer: asyncio.StreamWriter | None = None
    _group: Any = None
    _reader_task: asyncio.Task[Any] | None = None
    _group_exited: bool = False
    _lines: asyncio.Queue[str] = attrs.Factory(asyncio.Queue[str])
    # Connects once these clients wait for their greetings (``waiting``).
    behind: tuple[LineClient, ...] = ()
    waiting: asyncio.Event = attrs.Factory(asyncio.Event)

    async def __aenter__(self) -> Self:
        self.enter_task = current_task()
        for other in self.behind:
            await other.waiting.wait()
        self.log.append(f"{self.name} connecting")
        reader, self._writer = await asyncio.open_connection(HOST, self.port)
        if self.kind == "anyio":
            group: Any = anyio.create_task_group()
            await group.__aenter__()
            group.start_soon(self._read, reader)
        else:
            group = asyncio.TaskGroup()
            await group.__aenter__()
            self._reader_task = group.create_task(self._read(reader))
        self._group = group
        self.waiting.set()
        try:
            self.greeting = await self._lines.get()
        except BaseException as exc:  # (cancelled: another failed, or the caller)
            self.enter_failure = exc
            self._stop_reading()
            await self._close(type(exc), exc, exc.__traceback__)
            raise
        self.log.append(f"{self.name} entered")
        return self

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while line := await reader.readline():
            self._lines.put_nowait(line.decode().rstrip("\n"))
        self.saw_eof = True

    async def ask(self, text: str) -> str:
        assert self._writer is not None
        self._writer.write(f"{text}\n".encode())
        await self._writer.drain()
        return await self._lines.get()

    @property
    def closed(self) -> bool:
        """Its connection is closed (or closing), and its reader task is done."""
        writer = self._writer
        return writer is not None and writer.transport.is_closing() and self._group_exited

    def _stop_reading(self) -> None:
        if isinstance(self._group, asyncio.TaskGroup):
            assert self._reader_task is not None
            self._reader_task.cancel()
        else:
            self._group.cancel_scope.cancel()

    async def _close(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._writer is not None
        try:
            await self._group.__aexit__(exc_type, exc, tb)
        finally:
            self._group_exited = True
            self._writer.close()
            with contextlib.suppress(ConnectionError):
                await self._writer.wait_closed()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.exit_task = current_task()
        self.received = exc
        self.log.append(f"{self.name} exiting")
        assert self._writer is not None
        if exc is None:
            self._writer.write_eof()  # the server sees the end, then closes: the reader ends
        else:
            self._stop_reading()
        await self._close(exc_type, exc, tb)
        self.log.append(f"{self.name} exited")


def assert_own_tasks(clients: list[LineClient], main: asyncio.Task[Any]) -> None:
    """Each client entered and exited in one task, not the caller's, none shared."""
    for client in clients:
        assert client.enter_task is not None
        assert client.enter_task is client.exit_task, client.name
        assert client.enter_task is not main
    assert len({id(client.enter_task) for client in clients}) == len(clients)


@pytest.mark.parametrize("kind", ["anyio", "taskgroup"])
def test_parallel_with_opens_tcp_clients_concurrently_each_in_a_task_of_its_own(
    kind: GroupKind,
) -> None:
    log: list[str] = []
    gate = Gate(3)  # no server answers before all three clients have connected
    servers = [
        LineServer(name, gate, log, delay) for name, delay in [("a", 0.05), ("b", 0), ("c", 0.02)]
    ]

    async def main() -> None:
        async with contextlib.AsyncExitStack() as stack:
            for server in servers:
                await stack.enter_async_context(server)
            clients = [LineClient(s.name, s.port, log, kind) for s in servers]

            async def block() -> list[str]:
                async with parallel_with(*clients) as (a, b, c):
                    assert (a, b, c) == tuple(clients)
                    return [await client.ask("ping") for client in (a, b, c)]
                raise AssertionError("the body returns")  # pragma: no cover

            assert await without_hanging(block()) == ["a: ping", "b: ping", "c: ping"]
            assert [client.greeting for client in clients] == [
                "hello from a",
                "hello from b",
                "hello from c",
            ]
            assert_own_tasks(clients, current_task())
            # Closed after the block: each server saw its client's end before the client's
            # __aexit__ returned (it waits for the server's own end).
            assert all(client.saw_eof for client in clients)
            assert [(s.connections, s.disconnects) for s in servers] == [(1, 1)] * 3

    run(main())
    assert gate.arrived == 3


def test_tcp_clients_opened_one_by_one_cannot_pass_the_gate() -> None:
    # The control: the gate discriminates.  Nested blocks connect the first client, which
    # waits for a greeting that needs the second to connect: no progress, ever.
    log: list[str] = []
    gate = Gate(2)

    async def main() -> None:
        async with LineServer("a", gate, log) as a, LineServer("b", gate, log) as b:
            first = LineClient("a", a.port, log)

            async def one_by_one() -> None:
                async with asyncio.timeout(1):  # (a deadlock: any bound shows it)
                    async with first, LineClient("b", b.port, log):
                        pytest.fail("the gate cannot open")  # pragma: no cover

            with pytest.raises(TimeoutError):
                await one_by_one()
            assert "b connecting" not in log and gate.arrived <= 1
            assert first.exit_task is None  # its __aenter__ was cancelled: never exited

    run(main())


@pytest.mark.parametrize("kind", ["anyio", "taskgroup"])
def test_a_refused_connection_cancels_the_clients_still_entering(kind: GroupKind) -> None:
    # Two clients wait at a gate for three: only the refused connection, tried once they
    # wait, can end their wait.  Their enters are cancelled; they close what they opened
    # and are not exited.
    log: list[str] = []
    gate = Gate(3)

    async def main() -> None:
        async with LineServer("a", gate, log) as sa, LineServer("b", gate, log) as sb:
            with refusing_port() as down_port:
                a, b = LineClient("a", sa.port, log, kind), LineClient("b", sb.port, log, kind)
                down = LineClient("down", down_port, log, kind, behind=(a, b))

                async def block() -> None:
                    async with parallel_with({"a": a, "b": b, "down": down}):
                        pytest.fail("no body")  # pragma: no cover

                with pytest.RaisesGroup(ConnectionRefusedError) as caught:
                    await without_hanging(block())
                [failure] = failures_of(caught.value)
                assert (failure.name, failure.phase) == ("down", "entering")
                for client in (a, b):
                    assert isinstance(client.enter_failure, asyncio.CancelledError)
                    assert client.exit_task is None  # not entered: not exited
                    assert client.closed, client.name

    run(main())


@pytest.mark.parametrize("kind", ["anyio", "taskgroup"])
def test_an_outer_cancellation_exits_every_client_and_closes_the_connections(
    kind: GroupKind,
) -> None:
    log: list[str] = []
    gate = Gate(2)
    servers = [LineServer("a", gate, log), LineServer("b", gate, log)]

    async def main() -> None:
        async with servers[0] as sa, servers[1] as sb:
            clients = [LineClient("a", sa.port, log, kind), LineClient("b", sb.port, log, kind)]
            in_body = asyncio.Event()

            async def block() -> None:
                async with parallel_with(*clients):
                    in_body.set()
                    await asyncio.Event().wait()  # until cancelled

            task = asyncio.create_task(block())
            async with asyncio.timeout(TIMEOUT):
                await in_body.wait()
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                await sa.all_ended()
                await sb.all_ended()
            assert_own_tasks(clients, current_task())
            for client in clients:
                assert isinstance(client.received, asyncio.CancelledError)
                assert client.closed
            assert [(s.connections, s.disconnects) for s in servers] == [(1, 1)] * 2
            main_task = current_task()
            assert main_task.cancelling() == 0

    run(main())


@pytest.mark.parametrize("kind", ["anyio", "taskgroup"])
def test_a_connection_reset_while_open_cancels_the_body_and_reaches_the_others(
    kind: GroupKind,
) -> None:
    # a's server resets a's connection during the body: a's reader task fails, a's task
    # group fails (a failure while open), the body is cancelled, a exits after it, and b
    # receives a's failure.
    log: list[str] = []
    gate = Gate(2)
    servers = [LineServer("a", gate, log), LineServer("b", gate, log)]
    body: list[str] = []

    async def main() -> None:
        async with servers[0] as sa, servers[1] as sb:
            a, b = LineClient("a", sa.port, log, kind), LineClient("b", sb.port, log, kind)

            async def block() -> None:
                async with parallel_with({"a": a, "b": b}):
                    try:
                        await a.ask("reset")  # never answered: the server resets instead
                    finally:
                        body.append("cancelled")

            with pytest.RaisesGroup(pytest.RaisesGroup(ConnectionResetError)) as caught:
                await without_hanging(block())
            assert body == ["cancelled"]
            [failure] = failures_of(caught.value)
            assert (failure.name, failure.phase) == ("a", "open")
            assert isinstance(a.received, asyncio.CancelledError)  # its own
            assert b.received is failure.exception
            assert log.index("a exiting") < log.index("b exiting")
            assert_own_tasks([a, b], current_task())
            assert a.closed and b.closed
            async with asyncio.timeout(TIMEOUT):
                await sb.all_ended()
            assert sb.disconnects == 1

    run(main())


def test_an_optional_client_whose_server_never_answers_is_left_out_at_its_enter_timeout() -> None:
    # A server that accepts but never greets (its gate waits for a second connection that
    # never comes): the optional node's enter_timeout cancels its enter, which closes what
    # it opened; the body runs without it.
    log: list[str] = []

    async def main() -> None:
        async with LineServer("up", Gate(1), log) as up, LineServer("mute", Gate(2), log) as mute:
            clients: dict[str, LineClient] = {}

            def client(name: str, port: int) -> LineClient:
                clients[name] = LineClient(name, port, log)
                return clients[name]

            graph = ResourceGraph()
            u = graph.add(lambda: client("up", up.port))
            m = graph.add(
                lambda: client("mute", mute.port), name="mute", optional=True, enter_timeout=0.5
            )

            async def block() -> None:
                async with graph as resources:
                    assert list(resources) == [u] and m not in resources
                    [failure] = resources.failures
                    assert (failure.name, failure.phase) == ("mute", "entering")
                    assert isinstance(failure.exception, TimeoutError)
                    assert await resources[u].ask("ping") == "up: ping"

            await without_hanging(block())
            assert isinstance(clients["mute"].enter_failure, asyncio.CancelledError)
            assert clients["mute"].exit_task is None and clients["mute"].closed
            assert clients["up"].closed and up.disconnects == 1

    run(main())


@pytest.mark.parametrize("kind", ["anyio", "taskgroup"])
def test_a_graph_of_tcp_clients_with_a_dependency_and_an_optional_server_that_is_down(
    kind: GroupKind,
) -> None:
    log: list[str] = []
    roots = Gate(2)  # a and c, the roots, are opened concurrently
    servers = [
        LineServer("a", roots, log),
        LineServer("b", Gate(1), log),
        LineServer("c", roots, log),
    ]
    made: list[str] = []

    def client(name: str, port: int, after: LineClient | None = None) -> LineClient:
        made.append(name)
        return LineClient(name, port, log, kind, after=after)

    async def main() -> None:
        async with contextlib.AsyncExitStack() as stack:
            for server in servers:
                await stack.enter_async_context(server)
            sa, sb, sc = servers
            down_port = stack.enter_context(refusing_port())

            graph = ResourceGraph()
            a = graph.add(lambda: client("a", sa.port))
            b = graph.add(lambda a_: client("b", sb.port, after=a_), a)  # b needs a
            c = graph.add(lambda: client("c", sc.port))
            down = graph.add(lambda: client("down", down_port), optional=True, name="down")
            needs_down = graph.add(
                lambda d: client("needs_down", sc.port, after=d), down, optional=True
            )

            async def block() -> tuple[list[LineClient], list[str]]:
                async with graph as resources:
                    assert list(resources) == [a, b, c]
                    assert down not in resources and resources.get(down) is None
                    with pytest.raises(KeyError) as caught:
                        resources[down]
                    assert isinstance(caught.value.__cause__, ConnectionRefusedError)
                    assert resources.skipped == (needs_down,)
                    [failure] = resources.failures
                    assert (failure.name, failure.phase) == ("down", "entering")
                    assert isinstance(failure.exception, ConnectionRefusedError)
                    assert failures_of(failure.exception) == [failure]
                    assert "down (position 3) failed while entering" in format_failures(
                        resources.failures
                    )
                    opened = [resources[a], resources[b], resources[c]]
                    assert resources[b].after is resources[a]
                    return opened, [await x.ask("ping") for x in opened]
                raise AssertionError("the body returns")  # pragma: no cover

            opened, answers = await without_hanging(block())
            assert answers == ["a: ping", "b: ping", "c: ping"]
            assert sorted(made) == ["a", "b", "c", "down"]
            assert "needs_down" not in made  # its factory was never called
            assert_own_tasks(opened, current_task())
            assert [(s.connections, s.disconnects) for s in servers] == [(1, 1)] * 3
            # b connected once a had entered, and a exited once b had exited.
            assert log.index("a entered") < log.index("b connecting")
            assert log.index("b exited") < log.index("a exiting")

    run(main())
    assert roots.arrived == 2


# -- The MCP SDK: stdio servers as subprocesses -----------------------------------------


@pytest.fixture
def mcp_version() -> str:
    """The installed MCP SDK's version; the MCP tests skip without it."""
    pytest.importorskip("mcp")
    from importlib.metadata import version

    return version("mcp")


@attrs.define(eq=False)
class McpRecord:
    """What the ``open_mcp`` context manager saw of one server (``log``: all servers')."""

    name: str
    log: list[str]
    enter_task: asyncio.Task[Any] | None = None
    exit_task: asyncio.Task[Any] | None = None
    server_name: str = ""


@contextlib.asynccontextmanager
async def open_mcp(args: list[str], record: McpRecord) -> AsyncGenerator[ClientSession]:
    """A subprocess on the stdio transport, a ``ClientSession`` on it, initialized."""
    from mcp import ClientSession, StdioServerParameters, stdio_client

    record.enter_task = current_task()
    record.log.append(f"{record.name} starting")
    params = StdioServerParameters(command=sys.executable, args=args)
    with open(os.devnull, "w") as errlog:  # (the servers' logs)  # noqa: ASYNC230 (no I/O)
        async with stdio_client(params, errlog=errlog) as (read, write):
            async with ClientSession(read, write) as session:
                result = await session.initialize()
                record.server_name = result.server_info.name
                record.log.append(f"{record.name} initialized")
                try:
                    yield session
                finally:
                    record.exit_task = current_task()
                    record.log.append(f"{record.name} exiting")
    record.log.append(f"{record.name} exited")


def server_args(name: str, markers: Path, expect: int, *more: str) -> list[str]:
    return [str(MCP_SERVER), name, "--markers", str(markers), "--expect", str(expect), *more]


async def echo(session: ClientSession, text: str) -> str:
    from mcp.types import TextContent

    result = await session.call_tool("echo", {"text": text})
    assert not result.is_error
    [content] = result.content
    assert isinstance(content, TextContent)
    return content.text


def pids_in(markers: Path) -> dict[str, int]:
    return {p.name: int(p.read_text()) for p in markers.iterdir() if p.suffix != ".tmp"}


def assert_exited(pids: list[int]) -> None:
    """Each process is gone, reaped (asyncio saw its return code)."""
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def assert_own_mcp_tasks(records: list[McpRecord], main: asyncio.Task[Any]) -> None:
    for record in records:
        assert record.enter_task is not None
        assert record.enter_task is record.exit_task
        assert record.enter_task is not main
    assert len({id(record.enter_task) for record in records}) == len(records)


def test_parallel_with_opens_mcp_servers_concurrently(mcp_version: str, tmp_path: Path) -> None:
    # Each server starts only once all three have started (marker files): opened one
    # after another, the first would wait in vain and exit, failing its initialize.
    names = ["s0", "s1", "s2"]
    log: list[str] = []
    records = [McpRecord(name, log) for name in names]

    async def main() -> None:
        cms = [
            open_mcp(server_args(name, tmp_path, 3, "--delay", delay), record)
            for name, delay, record in zip(names, ["0.2", "0", "0.1"], records, strict=True)
        ]

        async def block() -> list[str]:
            async with parallel_with(*cms) as sessions:
                return [await echo(s, f"hi {i}") for i, s in enumerate(sessions)]
            raise AssertionError("the body returns")  # pragma: no cover

        assert await without_hanging(block()) == ["s0: hi 0", "s1: hi 1", "s2: hi 2"]
        assert [r.server_name for r in records] == names
        assert_own_mcp_tasks(records, current_task())

    run(main())
    pids = pids_in(tmp_path)
    assert sorted(pids) == names
    assert_exited(list(pids.values()))


def test_mcp_servers_opened_one_by_one_cannot_start(mcp_version: str, tmp_path: Path) -> None:
    # The control: alone, a server that expects two never starts (it gives up after 0.5 s
    # and exits), and its initialize fails: the connection closed.
    from mcp import MCPError

    async def main() -> None:
        async def alone() -> None:
            async with asyncio.timeout(TIMEOUT):
                async with open_mcp(
                    server_args("s0", tmp_path, 2, "--wait", "0.5"), McpRecord("s0", [])
                ):
                    pytest.fail("it cannot start alone")  # pragma: no cover

        with pytest.raises(ExceptionGroup) as caught:
            await alone()
        assert any(isinstance(e, MCPError) for e in leaves(caught.value))

    run(main())
    assert_exited(list(pids_in(tmp_path).values()))


def test_a_graph_of_mcp_servers_with_an_optional_server_that_is_down(
    mcp_version: str, tmp_path: Path
) -> None:
    from mcp import MCPError

    roots, single = tmp_path / "roots", tmp_path / "single"
    roots.mkdir()
    single.mkdir()
    down_pid = tmp_path / "down.pid"
    # A server that exits at once, before any handshake (it leaves its pid behind).
    down_args = [
        "-c",
        f"import os, sys; open({str(down_pid)!r}, 'w').write(str(os.getpid())); sys.exit(1)",
    ]
    log: list[str] = []
    records = {name: McpRecord(name, log) for name in ["a", "b", "c", "down"]}

    async def main() -> None:
        graph = ResourceGraph()
        a = graph.add(lambda: open_mcp(server_args("a", roots, 2), records["a"]))
        # b needs a (its factory is called with a's session, once a has initialized).
        b = graph.add(lambda _a: open_mcp(server_args("b", single, 1), records["b"]), a)
        c = graph.add(lambda: open_mcp(server_args("c", roots, 2), records["c"]))
        down = graph.add(lambda: open_mcp(down_args, records["down"]), optional=True, name="down")

        async def block() -> list[str]:
            async with graph as resources:
                assert list(resources) == [a, b, c] and down not in resources
                [failure] = resources.failures
                assert (failure.name, failure.phase) == ("down", "entering")
                assert any(isinstance(e, MCPError) for e in leaves(failure.exception))
                with pytest.raises(KeyError) as caught:
                    resources[down]
                assert caught.value.__cause__ is failure.exception
                return [await echo(resources[node], "hi") for node in (a, b, c)]
            raise AssertionError("the body returns")  # pragma: no cover

        assert await without_hanging(block()) == ["a: hi", "b: hi", "c: hi"]
        assert_own_mcp_tasks([records["a"], records["b"], records["c"]], current_task())
        assert records["down"].exit_task is None  # never entered, never exited
        # b started once a had initialized, and a exited once b had exited.
        assert log.index("a initialized") < log.index("b starting")
        assert log.index("b exited") < log.index("a exiting")
        assert "down initialized" not in log

    run(main())
    pids = {**pids_in(roots), **pids_in(single)}
    assert sorted(pids) == ["a", "b", "c"]
    assert_exited([*pids.values(), int(down_pid.read_text())])


def test_a_failed_mcp_server_cancels_the_pending_initializations(
    mcp_version: str, tmp_path: Path
) -> None:
    # Two servers wait for three markers, which never come: the third server, required,
    # exits once they have started (its marker is elsewhere).  Their pending
    # initializations are cancelled (had they failed by themselves, giving up their wait
    # after 3 s, there would be three failures); the SDK's stdio transport shuts their
    # processes down (it closes their stdin, and terminates them 2 s later).
    from mcp import MCPError

    up, elsewhere = tmp_path / "up", tmp_path / "elsewhere"
    up.mkdir()
    elsewhere.mkdir()
    log: list[str] = []
    records = [McpRecord(name, log) for name in ["a", "b", "down"]]
    cms = [
        open_mcp(server_args("a", up, 3, "--wait", "3"), records[0]),
        open_mcp(server_args("b", up, 3, "--wait", "3"), records[1]),
        open_mcp(server_args("down", elsewhere, 2, "--watch", str(up), "--fail"), records[2]),
    ]

    async def main() -> None:
        async def block() -> None:
            async with parallel_with(*cms):
                pytest.fail("no body")  # pragma: no cover

        with pytest.RaisesGroup(ExceptionGroup) as caught:
            await without_hanging(block())
        [failure] = failures_of(caught.value)
        assert (failure.position, failure.phase) == (2, "entering")
        assert any(isinstance(e, MCPError) for e in leaves(failure.exception))

    run(main())
    assert not any(entry.endswith(" initialized") for entry in log)
    assert all(record.exit_task is None for record in records)
    pids = {**pids_in(up), **pids_in(elsewhere)}
    assert sorted(pids) == ["a", "b", "down"]
    assert_exited(list(pids.values()))


# -- Ctrl+C under asyncio.run ------------------------------------------------------------

INTERRUPTED = Path(__file__).with_name("asyncio_interrupted.py")


def test_ctrl_c_under_asyncio_run_closes_every_entered_context_manager(loop: str) -> None:
    # asyncio.run's runner cancels the main task on SIGINT, then raises KeyboardInterrupt:
    # the block exits every context manager, each in its own task, with that cancellation.
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    with subprocess.Popen(
        [sys.executable, str(INTERRUPTED), loop],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    ) as program:
        assert program.stdout is not None
        seen = [program.stdout.readline().strip() for _ in range(4)]
        assert sorted(seen) == ["a entered", "b entered", "body", "c entered"]
        program.send_signal(signal.SIGINT)
        out, _ = program.communicate(timeout=TIMEOUT)
    assert sorted(out.split("\n")) == [
        "",
        "KeyboardInterrupt",
        "a exited with CancelledError",
        "b exited with CancelledError",
        "c exited with CancelledError",
    ]
    assert out.strip().endswith("KeyboardInterrupt")
