"""``parallel_with`` on real resources: sockets, WebSockets, processes, Trio and anyio primitives.

Every server listens on ``127.0.0.1``, on a port the kernel picks, and is started and
stopped by its test.  Real sockets take real time: each test is bounded by
``trio.fail_after`` so that a hang fails it, and no test asserts a duration.  Tests wait
for what they check (an event, the server having seen a close), never for a delay.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import anyio
import pytest
import trio
import trio.testing
import trio_websocket

from tests.fakes import leaves, members, notes
from tests.loopback import (
    HOST,
    Clients,
    EchoServer,
    open_client,
    port_of,
    receive_exactly,
    refusing_port,
    reset_at_once,
)
from trio_parallel_cm import (
    ContextState,
    ParallelExceptionGroup,
    ParallelExitStack,
    ResourceGraph,
    failures_of,
    format_failures,
    parallel_with,
    start_context,
)

TIMEOUT = 10  # seconds: generous for loopback, so that only a hang fails a test


def causes(exc: BaseException | None) -> list[BaseException]:
    """``exc``, its causes and the leaves of the groups among them."""
    found: list[BaseException] = []
    while exc is not None:
        found.extend(leaves(exc))
        exc = exc.__cause__
    return found


async def start_echo_server(nursery: trio.Nursery) -> tuple[EchoServer, int]:
    server = EchoServer()
    listeners = await nursery.start(partial(trio.serve_tcp, server.handle, 0, host=HOST))
    return server, port_of(listeners)


# ---- TCP -------------------------------------------------------------------------------


async def test_tcp_clients_open_together_round_trip_and_all_close() -> None:
    clients = Clients()
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            server, port = await start_echo_server(nursery)

            async with parallel_with(
                open_client(port, "a", clients),
                open_client(port, "b", clients),
                open_client(port, "c", clients),
            ) as (a, b, c):
                assert sorted(clients.opened) == ["a", "b", "c"]
                for name, stream in (("a", a), ("b", b), ("c", c)):
                    message = f"ping from {name}".encode()
                    await stream.send_all(message)
                    assert await receive_exactly(stream, len(message)) == message
                # Nothing is closed before the body ends.
                assert clients.closed == []
                assert server.closed == []

            # Each stream is closed (its socket released), and the server saw each EOF.
            for stream in (a, b, c):
                assert stream.socket.fileno() == -1
            await server.wait_closed({"a", "b", "c"})
            assert sorted(server.closed) == ["a", "b", "c"]
            assert server.reset == []
            nursery.cancel_scope.cancel()


async def test_refused_connection_is_reported_by_key_and_the_others_are_closed() -> None:
    clients = Clients()
    reached_body = False
    with trio.fail_after(TIMEOUT), refusing_port() as refused:
        async with trio.open_nursery() as nursery:
            server, port = await start_echo_server(nursery)

            with pytest.raises(ParallelExceptionGroup) as caught:
                async with parallel_with(
                    {
                        "db": open_client(port, "db", clients),
                        "search": open_client(refused, "search", clients),
                        "cache": open_client(port, "cache", clients),
                    }
                ):
                    reached_body = True  # pragma: no cover

            # Whichever clients had opened when the refusal came were closed again.
            assert set(clients.opened) <= {"db", "cache"}
            assert sorted(clients.closed) == sorted(clients.opened)
            await server.wait_closed(set(clients.opened))
            nursery.cancel_scope.cancel()

    assert not reached_body
    [failure] = members(caught.value)
    assert isinstance(failure, OSError)
    assert f"all attempts to connect to {HOST}:{refused} failed" in str(failure)
    assert any(isinstance(exc, ConnectionRefusedError) for exc in causes(failure))
    assert notes(failure) == ["search (position 1) failed while entering"]
    [record] = failures_of(caught.value)
    assert (record.name, record.position, record.phase) == ("search", 1, "entering")
    assert "search (position 1) failed while entering" in format_failures(caught.value)
    assert "1 of 3 context managers failed (1 entering)" in str(caught.value)


async def test_connection_reset_while_entering_is_reported_with_name_and_phase() -> None:
    clients = Clients()
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            server, port = await start_echo_server(nursery)
            listeners = await nursery.start(partial(trio.serve_tcp, reset_at_once, 0, host=HOST))
            resetting_port = port_of(listeners)

            with pytest.raises(ParallelExceptionGroup) as caught:
                async with parallel_with(
                    open_client(port, "good", clients),
                    open_client(resetting_port, "doomed", clients),
                ):
                    pytest.fail("the body ran although a client failed to enter")

            assert "doomed" not in clients.opened
            assert sorted(clients.closed) == sorted(clients.opened)
            await server.wait_closed(set(clients.opened))
            nursery.cancel_scope.cancel()

    [failure] = members(caught.value)
    # The greeting never came: the server reset the connection under the client.
    assert isinstance(failure, trio.BrokenResourceError)
    assert notes(failure) == ["open_client (position 1) failed while entering"]
    [record] = failures_of(caught.value)
    assert (record.name, record.position, record.phase) == ("open_client", 1, "entering")


@asynccontextmanager
async def open_subscription(
    port: int, name: str, clients: Clients, received: list[bytes]
) -> AsyncGenerator[trio.SocketStream, None]:
    """A client with a reader task running, in its own nursery, while it is open."""

    async def read_forever(stream: trio.SocketStream) -> None:
        while True:
            data = await stream.receive_some()
            if not data:
                raise EOFError(f"{name}: the server closed the connection")
            received.append(data)

    async with open_client(port, name, clients) as stream, trio.open_nursery() as nursery:
        nursery.start_soon(read_forever, stream)
        yield stream
        nursery.cancel_scope.cancel()


async def test_server_dropping_a_connection_while_open_cancels_the_body() -> None:
    clients = Clients()
    received: list[bytes] = []
    body_cancelled = False

    async def run(port: int) -> None:
        nonlocal body_cancelled
        async with parallel_with(
            open_client(port, "chat", clients),
            open_subscription(port, "feed", clients, received),
        ) as (chat, feed):
            await chat.send_all(b"still here")
            assert await receive_exactly(chat, 10) == b"still here"
            await feed.send_all(EchoServer.HANG_UP)  # the server resets "feed"
            try:
                await trio.sleep_forever()
            except trio.Cancelled:  # by the feed's failure
                body_cancelled = True
                raise

    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            server, port = await start_echo_server(nursery)

            with pytest.raises(ParallelExceptionGroup) as caught:
                await run(port)

            assert sorted(clients.closed) == ["chat", "feed"]
            await server.wait_closed({"chat", "feed"})
            assert server.closed == ["chat"]
            assert server.reset == ["feed"]
            nursery.cancel_scope.cancel()

    assert body_cancelled
    assert received == []  # the server sent "feed" nothing but its name's echo (read on entry)
    # One member: the feed's failure (the body's cancellation is ours, and absorbed).
    [failure] = members(caught.value)
    assert notes(failure) == ["open_subscription (position 1) failed while open"]
    [reader_error] = leaves(failure)
    assert isinstance(reader_error, trio.BrokenResourceError)
    [record] = failures_of(caught.value)
    assert (record.name, record.position, record.phase) == ("open_subscription", 1, "open")
    assert "1 of 2 context managers failed (1 open)" in str(caught.value)


async def test_start_context_holds_a_connection_open_and_closes_it_from_another_task() -> None:
    clients = Clients()
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            server, port = await start_echo_server(nursery)

            handle = await start_context(nursery, open_client(port, "pooled", clients))
            state = handle.state
            assert state is ContextState.OPEN
            assert handle.name == "open_client"
            await handle.value.send_all(b"x")
            assert await receive_exactly(handle.value, 1) == b"x"

            async with trio.open_nursery() as closers:
                closers.start_soon(handle.aclose)
            assert handle.state is ContextState.CLOSED
            assert handle.value.socket.fileno() == -1
            await server.wait_closed({"pooled"})
            assert server.closed == ["pooled"]
            nursery.cancel_scope.cancel()


@asynccontextmanager
async def open_echo_server(
    clients: Clients, seen_at_exit: list[list[str]]
) -> AsyncGenerator[tuple[EchoServer, int], None]:
    """An echo server as a context manager, that stops gracefully.

    On exit it notes which clients had closed by then, waits until it has seen each
    client that opened end, then stops listening.  ``seen_at_exit`` receives the clients
    closed when its exit began, then the connections it saw end by an EOF.
    """
    async with trio.open_nursery() as nursery:
        server, port = await start_echo_server(nursery)
        yield server, port
        seen_at_exit.append(sorted(clients.closed))
        await server.wait_closed(set(clients.opened))
        seen_at_exit.append(sorted(server.closed))
        nursery.cancel_scope.cancel()


async def test_exit_stack_closes_the_clients_before_the_server_they_need() -> None:
    clients = Clients()
    seen_at_exit: list[list[str]] = []
    streams: list[trio.SocketStream] = []
    with trio.fail_after(TIMEOUT):
        async with ParallelExitStack() as stack:
            _, port = await stack.enter(open_echo_server(clients, seen_at_exit))
            one, two = await stack.enter_all(
                open_client(port, "one", clients), open_client(port, "two", clients)
            )
            await one.send_all(b"1")
            await two.send_all(b"2")
            assert await receive_exactly(one, 1) == b"1"
            assert await receive_exactly(two, 1) == b"2"
            streams.extend((one, two))

    # Stage 2 (the clients) had closed when stage 1 (the server) began to exit, and the
    # server saw both EOFs before it stopped.
    assert seen_at_exit == [["one", "two"], ["one", "two"]]
    assert [stream.socket.fileno() for stream in streams] == [-1, -1]


async def test_a_graph_connects_clients_once_their_server_listens_and_closes_them_first() -> None:
    clients = Clients()
    seen_at_exit: list[list[str]] = []
    order: list[str] = []

    @asynccontextmanager
    async def open_app(
        one: trio.SocketStream, two: trio.SocketStream
    ) -> AsyncGenerator[tuple[trio.SocketStream, trio.SocketStream], None]:
        order.append(f"app opened after {sorted(clients.opened)}")
        yield one, two
        order.append(f"app closed before {sorted(clients.closed)}")

    def client(name: str) -> Callable[[tuple[EchoServer, int]], Any]:
        return lambda server: open_client(server[1], name, clients)

    graph = ResourceGraph()
    server = graph.add(partial(open_echo_server, clients, seen_at_exit), name="server")
    one = graph.add(client("one"), server, name="one")
    two = graph.add(client("two"), server, name="two")
    app = graph.add(open_app, one, two)
    streams: list[trio.SocketStream] = []
    with trio.fail_after(TIMEOUT):
        async with graph as resources:
            first, second = resources[app]
            streams.extend((first, second))
            await first.send_all(b"1")
            await second.send_all(b"2")
            assert await receive_exactly(first, 1) == b"1"
            assert await receive_exactly(second, 1) == b"2"
    # The clients connected to the port the server node listened on, the app opened once
    # both had; on the way out the app closed first, then the clients, then the server,
    # which saw both connections end before it stopped.
    assert order == ["app opened after ['one', 'two']", "app closed before []"]
    assert seen_at_exit == [["one", "two"], ["one", "two"]]
    assert [stream.socket.fileno() for stream in streams] == [-1, -1]


async def test_a_graph_whose_client_is_refused_closes_what_opened_and_skips_the_rest() -> None:
    clients = Clients()
    seen_at_exit: list[list[str]] = []
    made: list[str] = []

    def app_factory(one: trio.SocketStream, bad: trio.SocketStream) -> Any:
        made.append("app")  # pragma: no cover
        return parallel_with()  # pragma: no cover

    with refusing_port() as refused:
        graph = ResourceGraph()
        server = graph.add(partial(open_echo_server, clients, seen_at_exit), name="server")
        one = graph.add(lambda s: open_client(s[1], "one", clients), server, name="one")
        bad = graph.add(lambda s: open_client(refused, "bad", clients), server, name="bad")
        graph.add(app_factory, one, bad)
        with trio.fail_after(TIMEOUT), pytest.RaisesGroup(OSError) as caught:
            async with graph:
                pytest.fail("the body ran")  # pragma: no cover
    assert [f.name for f in failures_of(caught.value)] == ["bad"]
    assert made == []  # the app's factory was never called
    assert sorted(clients.closed) == sorted(clients.opened)  # whatever had opened, closed


# ---- WebSockets ------------------------------------------------------------------------


async def test_many_websocket_clients_open_together_echo_and_close() -> None:
    count = 20
    server_closed: list[str] = []
    all_closed = trio.Event()

    async def echo(request: trio_websocket.WebSocketRequest) -> None:
        ws = await request.accept()
        try:
            while True:
                message = await ws.get_message()
                await ws.send_message(message)
        except trio_websocket.ConnectionClosed:
            server_closed.append(request.path)
            if len(server_closed) == count:
                all_closed.set()

    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                partial(trio_websocket.serve_websocket, echo, HOST, 0, ssl_context=None)
            )
            urls = [f"ws://{HOST}:{server.port}/client-{i}" for i in range(count)]

            async with parallel_with(
                *[trio_websocket.open_websocket_url(url) for url in urls]
            ) as connections:
                assert len(connections) == count
                for i, ws in enumerate(connections):
                    assert isinstance(ws, trio_websocket.WebSocketConnection)
                    assert not ws.closed
                    await ws.send_message(f"hello {i}")
                    assert await ws.get_message() == f"hello {i}"
                assert server_closed == []

            for ws in connections:
                assert ws.closed is not None
            await all_closed.wait()
            assert sorted(server_closed) == sorted(f"/client-{i}" for i in range(count))
            nursery.cancel_scope.cancel()


# ---- Subprocesses ----------------------------------------------------------------------

ECHO_PROGRAM = (
    "import sys\nfor line in sys.stdin:\n    sys.stdout.write(line)\n    sys.stdout.flush()"
)
SLEEP_PROGRAM = "import time\ntime.sleep(60)"


@asynccontextmanager
async def open_echo_process() -> AsyncGenerator[trio.Process, None]:
    """A Python child that echoes its input lines; on exit, its input is closed and it ends."""
    process = await trio.lowlevel.open_process(
        [sys.executable, "-c", ECHO_PROGRAM], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        yield process
    finally:
        try:
            await process.stdin.aclose()  # end of its input: the echo loop ends
            await process.wait()
        finally:
            if process.returncode is None:  # cancelled while waiting: no orphan
                process.kill()
                with trio.CancelScope(shield=True):
                    await process.wait()
            await process.stdout.aclose()


@asynccontextmanager
async def run_sleeper() -> AsyncGenerator[trio.Process, None]:
    """A Python child run by ``trio.run_process`` in a nursery; on exit, it is terminated."""
    async with trio.open_nursery() as nursery:
        process: trio.Process = await nursery.start(
            partial(trio.run_process, [sys.executable, "-c", SLEEP_PROGRAM], check=False)
        )
        yield process
        nursery.cancel_scope.cancel()  # run_process terminates the child and waits for it


async def test_subprocesses_are_started_together_and_gone_after_the_block() -> None:
    with trio.fail_after(TIMEOUT):
        async with parallel_with(open_echo_process(), run_sleeper()) as (echo, sleeper):
            assert echo.returncode is None
            assert sleeper.returncode is None
            assert echo.stdin is not None and echo.stdout is not None
            await echo.stdin.send_all(b"hello\n")
            assert await receive_exactly(echo.stdout, 6) == b"hello\n"

    assert echo.returncode == 0  # it saw the end of its input and exited by itself
    assert sleeper.returncode is not None
    assert sleeper.returncode != 0  # terminated


# ---- Trio synchronisation primitives ---------------------------------------------------


async def test_lock_semaphore_and_limiter_are_held_by_their_holders_during_the_body() -> None:
    lock = trio.Lock()
    semaphore = trio.Semaphore(2)
    limiter = trio.CapacityLimiter(3)
    contender_got_lock = trio.Event()

    async def contender() -> None:
        async with lock:
            contender_got_lock.set()

    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            async with parallel_with(lock, semaphore, limiter):
                body = trio.lowlevel.current_task()
                assert lock.locked()
                assert semaphore.value == 1
                assert limiter.borrowed_tokens == 1

                # The holder tasks own them, not the body's task (the documented caveat).
                owner = lock.statistics().owner
                assert owner is not None and owner is not body
                borrowers = limiter.statistics().borrowers
                assert len(borrowers) == 1 and body not in borrowers
                with pytest.raises(RuntimeError, match="can't release a Lock you don't own"):
                    lock.release()  # the body cannot release what its holder owns

                # The lock excludes others for the whole body.
                nursery.start_soon(contender)
                await trio.testing.wait_all_tasks_blocked()
                assert not contender_got_lock.is_set()
                assert lock.statistics().tasks_waiting == 1

            assert limiter.borrowed_tokens == 0
            assert semaphore.value == 2
            await contender_got_lock.wait()
    assert not lock.locked()


# ---- Nurseries and task groups ---------------------------------------------------------


async def test_two_nurseries_run_tasks_started_from_the_body_to_completion() -> None:
    release = trio.Event()
    finished: list[str] = []

    async def worker(
        name: str,
        nursery: trio.Nursery,
        *,
        task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        task_status.started(name)
        assert trio.lowlevel.current_task().parent_nursery is nursery  # moved by started()
        await release.wait()
        await trio.lowlevel.checkpoint()
        finished.append(name)

    with trio.fail_after(TIMEOUT):
        async with parallel_with(trio.open_nursery(), trio.open_nursery()) as (first, second):
            assert first is not second
            assert await first.start(worker, "first", first) == "first"
            assert await second.start(worker, "second", second) == "second"
            second.start_soon(worker, "third", second)
            release.set()
            assert finished == []

    # Each nursery waited for its tasks before the block ended.
    assert sorted(finished) == ["first", "second", "third"]


async def test_anyio_task_groups_on_trio_run_tasks_started_from_the_body() -> None:
    release = anyio.Event()
    finished: list[int] = []

    async def worker(i: int, *, task_status: anyio.abc.TaskStatus[int]) -> None:
        task_status.started(i)
        await release.wait()
        await anyio.lowlevel.checkpoint()
        finished.append(i)

    async def plain_worker(i: int) -> None:
        await release.wait()
        finished.append(i)

    with trio.fail_after(TIMEOUT):
        async with parallel_with(anyio.create_task_group(), anyio.create_task_group()) as (
            first,
            second,
        ):
            assert await first.start(worker, 1) == 1
            assert await second.start(worker, 2) == 2
            second.start_soon(plain_worker, 3)
            release.set()
            assert finished == []

    assert sorted(finished) == [1, 2, 3]


async def test_anyio_task_failing_while_open_cancels_the_body() -> None:
    body_cancelled = False

    async def crash() -> None:
        raise KeyError("worker crashed")

    async def run() -> None:
        nonlocal body_cancelled
        async with parallel_with(
            {"quiet": anyio.create_task_group(), "workers": anyio.create_task_group()}
        ) as groups:
            groups["workers"].start_soon(crash)
            try:
                await trio.sleep_forever()
            except trio.Cancelled:  # by the crash
                body_cancelled = True
                raise

    with trio.fail_after(TIMEOUT), pytest.raises(ParallelExceptionGroup) as caught:
        await run()

    assert body_cancelled
    [failure] = members(caught.value)
    assert notes(failure) == ["workers (position 1) failed while open"]
    [crashed] = leaves(failure)
    assert isinstance(crashed, KeyError)
    [record] = failures_of(caught.value)
    assert (record.name, record.phase) == ("workers", "open")
