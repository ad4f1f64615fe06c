"""On asyncio: a client of many MCP servers, some optional, one down, one slow.

The servers are stand-ins with the MCP SDK's shape (``stdio_client`` and
``ClientSession`` each open an anyio task group), so that the example runs on a virtual
clock; ``tests/test_asyncio_real.py`` runs ``open_mcp`` on the real SDK and real
servers.
"""

import asyncio
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Self

import anyio

from trio_parallel_cm import ResourceGraph

from virtual_loop import VirtualTimeLoop

# -- Stand-ins for the SDK and the servers --------------------------------------------


class MCPError(Exception):
    """Stands for ``mcp.MCPError``."""


@dataclass
class StdioServerParameters:
    """Stands for ``mcp.StdioServerParameters``: how long the server takes to start."""

    command: str
    start_s: float = 0.2
    down: bool = False  # it exits at once


@dataclass
class TextContent:
    text: str


@dataclass
class CallToolResult:
    content: list[TextContent] = field(default_factory=list[TextContent])


@asynccontextmanager
async def stdio_client(
    params: StdioServerParameters,
) -> AsyncGenerator[tuple[StdioServerParameters, None], None]:
    """Stands for ``mcp.stdio_client``: the server's pipes, read in a task group."""
    async with anyio.create_task_group() as group:
        group.start_soon(anyio.sleep_forever)  # the reader of the server's stdout
        try:
            yield params, None
        finally:
            group.cancel_scope.cancel()


class ClientSession:
    """Stands for ``mcp.ClientSession``: a receive loop in an anyio task group."""

    def __init__(self, read: StdioServerParameters, write: None) -> None:
        self._server = read
        self._group = anyio.create_task_group()

    async def __aenter__(self) -> Self:
        await self._group.__aenter__()
        self._group.start_soon(anyio.sleep_forever)  # the receive loop
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._group.cancel_scope.cancel()
        await self._group.__aexit__(None, None, None)

    async def initialize(self) -> None:
        await asyncio.sleep(self._server.start_s)
        if self._server.down:
            raise MCPError("Connection closed")

    async def call_tool(self, name: str, arguments: dict[str, str]) -> CallToolResult:
        await asyncio.sleep(0.05)
        text = f"{self._server.command}: {name} {arguments['text']!r}"
        return CallToolResult([TextContent(text)])


# -- The client ------------------------------------------------------------------------


@asynccontextmanager
async def open_mcp(
    params: StdioServerParameters,
) -> AsyncGenerator[ClientSession, None]:
    """A server on the stdio transport, and a session on it, initialized."""
    async with (
        stdio_client(params) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


SERVERS = {
    "files": StdioServerParameters("files", start_s=0.3),
    "git": StdioServerParameters("git", start_s=0.4),
    "search": StdioServerParameters("search", start_s=0.5),
    "calendar": StdioServerParameters("calendar", start_s=0.2, down=True),
    "weather": StdioServerParameters("weather", start_s=5),
}
REQUIRED = {"files", "git"}


async def main() -> None:
    loop = asyncio.get_running_loop()
    graph = ResourceGraph(enter_timeout=1)
    for name, params in SERVERS.items():
        graph.add(partial(open_mcp, params), name=name, optional=name not in REQUIRED)
    async with graph as sessions:
        print(f"{loop.time():.1f} s: up: {', '.join(node.name for node in sessions)}")
        for failure in sessions.failures:
            print(f"  down: {failure.name}: {failure.exception!r}")
        async with asyncio.TaskGroup() as calls:  # a tool call on each, at once
            results = [
                calls.create_task(sessions[node].call_tool("echo", {"text": "hi"}))
                for node in sessions
            ]
        for result in results:
            print(f"{loop.time():.2f} s: {result.result().content[0].text}")
    print(f"{loop.time():.2f} s: every session and server closed")


if __name__ == "__main__":
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:  # asyncio.run(main())
        runner.run(main())
