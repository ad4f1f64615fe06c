"""A demo of ``parallel_with`` on real loopback sockets: ``python -m trio_parallel_cm``.

Simulated services (TCP servers on 127.0.0.1) greet a new client only after a delay, like
a database that takes a while to accept a connection.  The demo opens them one after
another, then concurrently with ``parallel_with``, shows what a failure looks like, then
opens services that need one another in stages and as a ``ResourceGraph``, and last is a
client of many servers, some of them down: optional nodes with retries.
"""

from __future__ import annotations

import contextlib
import functools
import socket
from collections.abc import AsyncGenerator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Final, NamedTuple

import trio

from trio_parallel_cm import (
    ParallelExceptionGroup,
    ParallelExitStack,
    ResourceGraph,
    Retry,
    Timeline,
    format_failures,
    parallel_with,
)

Stream = trio.SocketStream
Opened = AbstractAsyncContextManager[trio.SocketStream]

HOST: Final = "127.0.0.1"
CONNECT_ATTEMPTS: Final = 3


class Delays(NamedTuple):
    """How long each service takes to greet a client, and a client's wait between retries."""

    db: float = 0.200
    cache: float = 0.300
    queue: float = 0.150
    search: float = 0.250
    retry: float = 0.200
    config: float = 0.100
    app: float = 0.100


DEFAULT_DELAYS: Final = Delays()


@dataclass
class Services:
    """Where the services listen, and what the clients did with them (by service name)."""

    ports: dict[str, int]
    retry_delay: float
    attempts: int = CONNECT_ATTEMPTS  # how many times a client tries to connect
    opened: list[str] = field(default_factory=list[str])
    closed: list[str] = field(default_factory=list[str])


# ---- the simulated services ---------------------------------------------------------------


async def _serve_client(name: str, latency: float, stream: trio.SocketStream) -> None:
    # A slow handshake, then read until the client hangs up (after its "bye").
    with contextlib.suppress(trio.BrokenResourceError):  # the client gave up early
        async with stream:
            await trio.sleep(latency)
            await stream.send_all(f"{name} ready\n".encode())
            while await stream.receive_some():
                pass


async def _start_service(nursery: trio.Nursery, name: str, latency: float) -> int:
    handler = functools.partial(_serve_client, name, latency)
    listeners = await nursery.start(functools.partial(trio.serve_tcp, handler, 0, host=HOST))
    port: int = listeners[0].socket.getsockname()[1]
    return port


def _unused_port() -> int:
    # Bind a socket to get a free port, then close it: nothing listens there any more.
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
    return port


# ---- the clients: one async context manager per service -----------------------------------


async def _connect(port: int, retry_delay: float, attempts: int) -> trio.SocketStream:
    # Like most real clients, retry a refused connection a few times before giving up.
    for _ in range(attempts - 1):
        with contextlib.suppress(OSError):
            return await trio.open_tcp_stream(HOST, port)
        await trio.sleep(retry_delay)
    return await trio.open_tcp_stream(HOST, port)


@asynccontextmanager
async def _session(name: str, services: Services) -> AsyncGenerator[trio.SocketStream, None]:
    stream = await _connect(services.ports[name], services.retry_delay, services.attempts)
    try:
        greeting = b""
        while not greeting.endswith(b"\n"):  # waiting for it is the service's latency
            chunk = await stream.receive_some()
            if not chunk:
                raise ConnectionError(f"{name} hung up before its greeting")
            greeting += chunk
        services.opened.append(name)
        try:
            yield stream
        finally:
            await stream.send_all(b"bye\n")
    finally:
        await stream.aclose()
        services.closed.append(name)


@asynccontextmanager
async def open_db(services: Services) -> AsyncGenerator[trio.SocketStream, None]:
    """Connect to the "db" service; say goodbye and close the connection on exit."""
    async with _session("db", services) as stream:
        yield stream


@asynccontextmanager
async def open_cache(services: Services) -> AsyncGenerator[trio.SocketStream, None]:
    """Connect to the "cache" service; say goodbye and close the connection on exit."""
    async with _session("cache", services) as stream:
        yield stream


@asynccontextmanager
async def open_queue(services: Services) -> AsyncGenerator[trio.SocketStream, None]:
    """Connect to the "queue" service; say goodbye and close the connection on exit."""
    async with _session("queue", services) as stream:
        yield stream


@asynccontextmanager
async def open_search(services: Services) -> AsyncGenerator[trio.SocketStream, None]:
    """Connect to the "search" service; say goodbye and close the connection on exit."""
    async with _session("search", services) as stream:
        yield stream


@asynccontextmanager
async def open_config(services: Services) -> AsyncGenerator[trio.SocketStream, None]:
    """Connect to the "config" service, which the database and the cache need."""
    async with _session("config", services) as stream:
        yield stream


@asynccontextmanager
async def open_app(
    services: Services, db: trio.SocketStream, cache: trio.SocketStream
) -> AsyncGenerator[trio.SocketStream, None]:
    """Connect to the "app" service, which needs the database and the cache."""
    await db.send_all(b"app starting\n")
    await cache.send_all(b"app starting\n")
    async with _session("app", services) as stream:
        yield stream


# ---- the demo ------------------------------------------------------------------------------


async def _compare_timings(services: Services) -> None:
    start = trio.current_time()
    async with AsyncExitStack() as stack:
        openers = (open_db, open_cache, open_queue, open_search)
        streams = [await stack.enter_async_context(opener(services)) for opener in openers]
        for stream in streams:  # the work would go here
            await stream.send_all(b"ping\n")
    sequential = trio.current_time() - start

    start = trio.current_time()
    timeline = Timeline()
    async with parallel_with(
        open_db(services),
        open_cache(services),
        open_queue(services),
        open_search(services),
        observer=timeline,
    ) as (db, cache, queue, search):
        for stream in (db, cache, queue, search):  # the work would go here
            await stream.send_all(b"ping\n")
    parallel = trio.current_time() - start

    speedup = sequential / parallel if parallel > 0 else float("inf")
    print(f"   sequential: {sequential:.2f} s   parallel_with: {parallel:.2f} s", end="")
    print(f"   ({speedup:.1f}x faster)")
    print("\n   The parallel start-up and shutdown, as a Timeline observer saw them:")
    for line in timeline.render(width=40).splitlines():
        print(f"   {line}")


async def _compare_graph(services: Services) -> None:
    # db and cache need config; app needs db and cache; search needs nothing.
    staged_up = graph_up = 0.0
    start = trio.current_time()
    async with ParallelExitStack() as stack:
        await stack.enter_all(open_config(services), open_search(services))
        db, cache = await stack.enter_all(open_db(services), open_cache(services))
        await stack.enter(open_app(services, db, cache))
        staged_up = trio.current_time() - start
    staged = trio.current_time() - start

    def after_config(opener: Callable[[Services], Opened]) -> Callable[[Stream], Opened]:
        return lambda config: opener(services)

    start = trio.current_time()
    timeline = Timeline()
    graph = ResourceGraph(observer=timeline)
    config_node = graph.add(functools.partial(open_config, services))
    graph.add(functools.partial(open_search, services))
    db_node = graph.add(after_config(open_db), config_node, name="open_db")
    cache_node = graph.add(after_config(open_cache), config_node, name="open_cache")
    graph.add(functools.partial(open_app, services), db_node, cache_node)
    async with graph:
        graph_up = trio.current_time() - start
    whole = trio.current_time() - start
    print(f"   stages: up in {staged_up:.2f} s, done in {staged:.2f} s")
    print(f"   graph:  up in {graph_up:.2f} s, done in {whole:.2f} s")
    print("\n   The graph's start-up (* the chain that set its time):")
    for line in timeline.render(width=40).splitlines():
        print(f"   {line}")


async def _show_failure(services: Services) -> None:
    try:
        async with parallel_with(open_db(services), open_cache(services), open_search(services)):
            print("   (not reached: the body runs only once every service is open)")
    # On Python 3.11+, `except* OSError as group:` catches the same group.
    except ParallelExceptionGroup as group:
        print("   format_failures(group) says:")
        for line in format_failures(group).splitlines():
            print(f"   {line}")
    print(f"   opened before the failure: {', '.join(services.opened) or '(none)'}")
    print(f"   connections closed again:  {', '.join(services.closed) or '(none)'}")


async def _many_servers(services: Services) -> None:
    # Every service is optional: the client runs with those that came up.  The graph
    # retries (the sessions do not), within an enter timeout, and closes within a budget.
    retry = Retry(attempts=CONNECT_ATTEMPTS, backoff=services.retry_delay)
    timeline = Timeline()
    graph = ResourceGraph(observer=timeline, shutdown_timeout=2)
    nodes = [
        graph.add(
            functools.partial(_session, name, services),
            name=name,
            optional=True,
            retry=retry,
            enter_timeout=2,
        )
        for name in services.ports
    ]
    async with graph as connections:
        print(f"   up: {', '.join(node.name for node in nodes if node in connections)}")
        print("   down, from format_failures(connections.failures):")
        for line in format_failures(connections.failures).splitlines():
            print(f"   {line}")
    print("\n   The start-up (r: a failed attempt, retried):")
    for line in timeline.render(width=40).splitlines():
        print(f"   {line}")


async def main(delays: Delays = DEFAULT_DELAYS) -> None:
    """Run the demo: start the services, time both ways of opening them, show a failure.

    Args:
        delays: how long each service takes to greet a client (seconds), and how long a
            client waits before retrying a refused connection.
    """
    async with trio.open_nursery() as nursery:
        latency = {
            "db": delays.db,
            "cache": delays.cache,
            "queue": delays.queue,
            "search": delays.search,
            "config": delays.config,
            "app": delays.app,
        }
        ports = {name: await _start_service(nursery, name, s) for name, s in latency.items()}
        listing = ", ".join(f"{name} {s * 1000:.0f} ms" for name, s in latency.items())
        print(f"trio_parallel_cm demo: {len(ports)} services on {HOST} ({listing})\n")

        print("1. Start-up + shutdown: one after another (AsyncExitStack) vs parallel_with")
        await _compare_timings(Services(ports, delays.retry))

        tries = f"its client tries {CONNECT_ATTEMPTS} times, {delays.retry * 1000:.0f} ms apart"
        print(f"\n2. A failure: nothing listens on search's port ({tries})")
        await _show_failure(Services({**ports, "search": _unused_port()}, delays.retry))

        print("\n3. Dependencies: db and cache need config, app needs db and cache")
        print("   ParallelExitStack (stages: config+search, db+cache, app) vs ResourceGraph")
        await _compare_graph(Services(ports, delays.retry))

        print("\n4. A client of many servers: mail and metrics are down; every service is")
        print(f"   an optional node, retried {CONNECT_ATTEMPTS} times, and one budget closes them")
        down = {"mail": _unused_port(), "metrics": _unused_port()}
        await _many_servers(Services({**ports, **down}, delays.retry, attempts=1))
        nursery.cancel_scope.cancel()


def run_demo(delays: Delays = DEFAULT_DELAYS) -> None:
    """Run :func:`main` under ``trio.run``.

    Args:
        delays: passed on to :func:`main`.
    """
    trio.run(main, delays)


if __name__ == "__main__":
    run_demo()
