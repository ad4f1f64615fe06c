"""On asyncio, ``start_context`` takes an anyio or an asyncio task group."""

import asyncio
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

import anyio

from trio_parallel_cm import ContextHandle, start_context

from virtual_loop import VirtualTimeLoop


@asynccontextmanager
async def open_pool() -> AsyncGenerator[str, None]:
    async with asyncio.TaskGroup() as group:  # one task must enter and exit it
        refill = group.create_task(asyncio.Event().wait())
        await asyncio.sleep(0.3)
        yield "pool"
        refill.cancel()


async def close_later(handle: ContextHandle[str]) -> None:
    await asyncio.sleep(1)
    await handle.aclose()  # the holder task, not this one, runs __aexit__


async def main() -> None:
    loop = asyncio.get_running_loop()
    async with anyio.create_task_group() as group:
        handle = await start_context(group, open_pool())  # returns once entered
        print(f"{loop.time():.1f} s: {handle!r}")
        group.start_soon(close_later, handle)
    print(f"{loop.time():.1f} s: {handle!r}")

    async with asyncio.TaskGroup() as task_group:  # the group waits for the exit
        handle = await start_context(task_group, open_pool())
        print(f"{loop.time():.1f} s: {handle!r}")
        task_group.create_task(close_later(handle))
    print(f"{loop.time():.1f} s: {handle!r}")


if __name__ == "__main__":
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:  # asyncio.run(main())
        runner.run(main())
