"""A client of many servers: run with those that came up, report the others.

The servers run in this program, on real TCP sockets on 127.0.0.1, and take their
time with ``trio.sleep``.  As a script (and in the tests) the program runs on a
virtual clock, ``trio.testing.MockClock``, and prints exact times: the clock jumps
only when nothing real is on its way (``virtual_clock.drive_clock`` says how it
knows), however long the kernel takes to deliver a byte, a connection or a refusal.
A port that refuses connections is bound and never listens, for the whole run: no
other program can take it.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import trio
import trio.testing

from trio_parallel_cm import (
    ParallelExceptionGroup,
    ResourceGraph,
    Retry,
    Timeline,
    format_failures,
)

from virtual_clock import Loopback, drive_clock

# Each server: seconds before it greets a client, how many clients it turns away first
# ("BUSY"), and seconds before it says goodbye.  None: nothing listens on its port.
SERVERS = {
    "alpha": (0.1, 0, 0.1),
    "bravo": (0.3, 0, 0.1),
    "charlie": (0.2, 0, 0.2),
    "delta": (0.4, 0, 0.1),
    "echo": (0.1, 0, 0.1),
    "foxtrot": (0.5, 0, 0.2),
    "golf": (0.2, 0, 5.0),  # takes its time to say goodbye
    "hotel": None,  # refuses connections
    "india": None,
    "juliet": (3.0, 0, 0.1),  # slow to greet
    "kilo": (5.0, 0, 0.1),
    "lima": (0.1, 2, 0.1),  # busy for the first two clients
}


async def receive_line(stream: trio.SocketStream) -> str:
    data = b""
    while not data.endswith(b"\n"):
        chunk = await stream.receive_some()
        if not chunk:
            raise ConnectionResetError("the server closed the connection")
        data += chunk
    return data.decode().strip()


@asynccontextmanager
async def connect(name: str, port: int) -> AsyncIterator[trio.SocketStream]:
    """A connection that greets, and says goodbye when closed."""
    try:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
    except OSError:
        raise ConnectionRefusedError(f"{name} refused the connection") from None
    async with stream:
        greeting = await receive_line(stream)
        if greeting != f"HELLO {name}":
            raise ConnectionError(f"{name} said {greeting}")
        yield stream
        await stream.send_all(b"BYE\n")
        await receive_line(stream)


# ---- the servers ------------------------------------------------------------------


async def serve(
    name: str,
    behaviour: tuple[float, int, float],
    clients: list[str],
    loopback: Loopback,
    stream: trio.SocketStream,
) -> None:
    greet_after, busy, bye_after = behaviour
    with loopback.serving(stream):
        clients.append(name)
        if clients.count(name) <= busy:
            await stream.send_all(b"BUSY\n")
            return
        try:
            await trio.sleep(greet_after)
            await stream.send_all(f"HELLO {name}\n".encode())
            await receive_line(stream)  # BYE
            await trio.sleep(bye_after)
            await stream.send_all(b"BYE\n")
        except (trio.BrokenResourceError, ConnectionResetError):
            pass  # the client gave up


async def refuse(
    *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
) -> None:
    """A port bound and never listening, until cancelled: connections are refused."""
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        task_status.started(sock.getsockname()[1])
        await trio.sleep_forever()


async def start_servers(nursery: trio.Nursery) -> dict[str, int]:
    """Every server of SERVERS, listening (or refusing) on a port it reports back."""
    loopback = Loopback()
    clock = trio.lowlevel.current_clock()
    if isinstance(clock, trio.testing.MockClock):
        await nursery.start(drive_clock, clock, loopback)
    ports: dict[str, int] = {}
    clients: list[str] = []
    for name, behaviour in SERVERS.items():
        if behaviour is None:
            ports[name] = await nursery.start(refuse)
            continue
        handler = partial(serve, name, behaviour, clients, loopback)
        listeners = await nursery.start(
            partial(trio.serve_tcp, handler, 0, host="127.0.0.1")
        )
        ports[name] = listeners[0].socket.getsockname()[1]
    return ports


async def main() -> None:
    async with trio.open_nursery() as servers:
        ports = await start_servers(servers)
        timeline = Timeline()
        graph = ResourceGraph(  # every node's options, set once
            retry=Retry(attempts=3, backoff=0.1),
            enter_timeout=1,  # for every attempt together
            shutdown_timeout=1,
            observer=timeline,
        )
        nodes = [
            # optional: run without it if it does not come up
            graph.add(partial(connect, name, port), name=name, optional=True)
            for name, port in ports.items()
        ]
        try:
            async with graph as connections:
                up = [node.name for node in nodes if node in connections]
                print(f"{trio.current_time():.1f} s: up: {', '.join(up)}")
                print(f"down:\n{format_failures(connections.failures)}")
                await trio.sleep(1)  # the client's work
        except ParallelExceptionGroup as group:  # a failure while closing
            print(f"shut down at {trio.current_time():.1f} s, cut short:")
            print(format_failures(group))
        print(timeline.render())
        servers.cancel_scope.cancel()


if __name__ == "__main__":
    # A virtual clock that only drive_clock moves: no autojump after real idleness.
    trio.run(main, clock=trio.testing.MockClock())
