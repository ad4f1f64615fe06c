"""A virtual clock for real loopback sockets: it jumps only when nothing is on its way.

When nothing is on its way, the tasks that wait on sockets are known: one per listening
server, and one per connection being served that its client has not closed (the client,
waiting for an answer while its server sleeps; or the server, waiting for the client's
next line while the client works).  Any other waiting task waits for something on its
way: a connection, a refusal, a line, or the end of a connection that its client closed.
That a client closed is known at once from its socket, which ``Loopback`` (the run's
socket factory) made and kept, not from the network.  Trio's own autojump, after some
real idleness, could jump while a loaded machine is still delivering.
"""

import math
import socket
from collections.abc import Generator
from contextlib import contextmanager

import trio
import trio.testing


class Loopback(trio.abc.SocketFactory):
    """The run's sockets, and the connections being served: what the clock waits for.

    As the socket factory of the run, it makes each socket as Trio would, and keeps it.
    """

    def __init__(self) -> None:
        self._made: list[trio.socket.SocketType] = []
        # The client's end of each connection being served (None: closed before).
        self._served: dict[trio.SocketStream, trio.socket.SocketType | None] = {}

    def socket(
        self,
        family: socket.AddressFamily | int = socket.AF_INET,
        type: socket.SocketKind | int = socket.SOCK_STREAM,
        proto: int = 0,
    ) -> trio.socket.SocketType:
        made = trio.socket.from_stdlib_socket(socket.socket(family, type, proto))
        self._made = [sock for sock in self._made if sock.fileno() != -1]
        self._made.append(made)
        return made

    @contextmanager
    def serving(self, stream: trio.SocketStream) -> Generator[None, None, None]:
        """While a server serves ``stream``, one of its ends waits for the other."""
        try:
            peer = stream.socket.getpeername()
        except OSError:  # reset before it was accepted
            peer = None
        ends = (s for s in self._made if s.fileno() != -1 and s.getsockname() == peer)
        self._served[stream] = next(ends, None)
        try:
            yield
        finally:
            del self._served[stream]

    def quiet_waits(self) -> int:
        """How many tasks wait on these sockets when nothing is on its way."""
        listening = sum(
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
            for sock in self._made
            if sock.fileno() != -1
        )
        served = sum(
            client is not None and client.fileno() != -1
            for client in self._served.values()
        )
        return listening + served


def tasks_waiting_on_io() -> int:
    """How many tasks wait on a socket (or any file), whatever Trio's I/O backend."""
    io = trio.lowlevel.current_statistics().io_statistics
    fields = ("tasks_waiting_read", "tasks_waiting_write", "tasks_waiting")
    return sum(getattr(io, field, 0) for field in fields)


POLL = 0.001  # real seconds of idleness before the clock looks again (speed only)


async def drive_clock(
    clock: trio.testing.MockClock,
    loopback: Loopback,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Jump ``clock`` to the next deadline whenever nothing real is on its way.

    That is, when every other task is blocked, and the tasks that wait on sockets are
    those of ``loopback.quiet_waits()`` and those that waited before it started; while
    one more waits, the clock waits for the kernel, however slow.  Installs
    ``loopback`` as the run's socket factory until cancelled.

    A task that waited on anything else (a pipe, a file) would stop the clock: the
    program would hang rather than print other times.
    """
    await trio.testing.wait_all_tasks_blocked()
    before = tasks_waiting_on_io()  # Trio's own: no server has started yet
    previous = trio.socket.set_custom_socket_factory(loopback)
    task_status.started()
    try:
        while True:
            await trio.testing.wait_all_tasks_blocked(POLL)
            if tasks_waiting_on_io() == before + loopback.quiet_waits():
                jump = trio.lowlevel.current_statistics().seconds_to_next_deadline
                if 0 < jump < math.inf:
                    clock.jump(jump)
    finally:
        trio.socket.set_custom_socket_factory(previous)
