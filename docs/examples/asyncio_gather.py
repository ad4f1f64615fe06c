"""On asyncio: gathering the ``__aenter__`` calls, then ``parallel_with``."""

import asyncio
from collections.abc import AsyncGenerator
from contextlib import AsyncExitStack, asynccontextmanager

import anyio

from trio_parallel_cm import parallel_with

from virtual_loop import VirtualTimeLoop


@asynccontextmanager
async def open_client(name: str) -> AsyncGenerator[str, None]:
    """A client with a reader task in an anyio task group, as MCP's stdio_client has."""
    async with anyio.create_task_group() as group:
        group.start_soon(anyio.sleep_forever)  # the reader
        await asyncio.sleep(0.1)  # the handshake
        yield name
        group.cancel_scope.cancel()


async def gathered() -> None:
    async with AsyncExitStack() as stack:
        await asyncio.gather(
            stack.enter_async_context(open_client("a")),
            stack.enter_async_context(open_client("b")),
        )


async def main() -> None:
    try:
        await gathered()
    except BaseException as exc:  # what comes out, whatever it is
        print(f"gathered: {type(exc).__name__}: {exc}")
    start = asyncio.get_running_loop().time()
    async with parallel_with(open_client("a"), open_client("b")) as (a, b):
        elapsed = asyncio.get_running_loop().time() - start
        print(f"parallel_with: {a} and {b} open after {elapsed:.1f} s")
    print("parallel_with: both closed")


if __name__ == "__main__":
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:  # asyncio.run(main())
        runner.run(main())
