"""Real resources on the loopback interface, for ``tests/test_real_resources.py``.

Everything here listens on, or connects to, ``127.0.0.1`` only, on ports the kernel picks
(port 0).  The servers record what they saw from each connection, so that the tests can
check that every client that opened was closed again.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import AsyncGenerator, Generator
from contextlib import asynccontextmanager, contextmanager

import attrs
import trio

HOST = "127.0.0.1"
NAME_END = b"\n"


@contextmanager
def refusing_port() -> Generator[int, None, None]:
    """A port that refuses every connection until the block ends: bound, never listening.

    The socket holds the port for the whole block, so no other program can take it and
    listen there; the kernel answers a connection to a port without a listener with a reset
    at once.  (A port bound, read and released again could be taken in between.)
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        yield port


def port_of(listeners: list[trio.SocketListener]) -> int:
    """The port of the (single, IPv4 loopback) listener that ``serve_tcp`` opened."""
    [listener] = listeners
    port: int = listener.socket.getsockname()[1]
    return port


def reset_on_close(stream: trio.SocketStream) -> None:
    """Make closing ``stream`` send a TCP reset (RST) instead of a graceful FIN."""
    stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


async def receive_exactly(stream: trio.abc.ReceiveStream, size: int) -> bytes:
    """``size`` bytes from ``stream``; ``EOFError`` if it ends first."""
    data = bytearray()
    while len(data) < size:
        chunk = await stream.receive_some(size - len(data))
        if not chunk:
            raise EOFError(f"the peer closed the connection after {len(data)} of {size} bytes")
        data += chunk
    return bytes(data)


@attrs.define(eq=False)
class EchoServer:
    """A ``serve_tcp`` handler that echoes every byte back.

    A client starts by sending its name and ``NAME_END``.  The server records the name of
    each connection that ended with an EOF in ``closed`` (``"?"`` if it ended before its
    name), and of each one that was reset in ``reset``.  A client that sends ``HANG_UP``
    is reset by the server instead of echoed.
    """

    HANG_UP = b"hang up!"

    closed: list[str] = attrs.Factory(list[str])
    reset: list[str] = attrs.Factory(list[str])
    _changed: trio.Event = attrs.field(factory=trio.Event)

    async def handle(self, stream: trio.SocketStream) -> None:
        received = bytearray()
        while True:
            try:
                data = await stream.receive_some()
            except trio.BrokenResourceError:
                self._record(self.reset, received)
                return
            if not data:
                self._record(self.closed, received)
                return
            received += data
            if received.endswith(self.HANG_UP):
                reset_on_close(stream)  # trio's serve_tcp closes the stream when we return
                self._record(self.reset, received)
                return
            try:
                await stream.send_all(data)
            except trio.BrokenResourceError:
                self._record(self.reset, received)
                return

    def _record(self, where: list[str], received: bytearray) -> None:
        name, end, _ = bytes(received).partition(NAME_END)
        where.append(name.decode() if end else "?")
        self._changed.set()
        self._changed = trio.Event()

    async def wait_closed(self, names: set[str]) -> None:
        """Wait until the server has seen each of ``names`` end (by EOF or reset)."""
        while not names <= {*self.closed, *self.reset}:
            await self._changed.wait()


async def reset_at_once(stream: trio.SocketStream) -> None:
    """A ``serve_tcp`` handler that accepts a connection and resets it immediately."""
    reset_on_close(stream)  # trio's serve_tcp closes the stream when we return


@attrs.define(eq=False)
class Clients:
    """What the client context managers did: the names that opened, and that closed."""

    opened: list[str] = attrs.Factory(list[str])
    closed: list[str] = attrs.Factory(list[str])


@asynccontextmanager
async def open_client(
    port: int, name: str, clients: Clients
) -> AsyncGenerator[trio.SocketStream, None]:
    """A TCP connection to ``127.0.0.1:port`` that says its name and waits for the echo."""
    stream = await trio.open_tcp_stream(HOST, port)
    async with stream:
        hello = name.encode() + NAME_END
        await stream.send_all(hello)
        echo = await receive_exactly(stream, len(hello))
        assert echo == hello
        clients.opened.append(name)
        try:
            yield stream
        finally:
            clients.closed.append(name)
