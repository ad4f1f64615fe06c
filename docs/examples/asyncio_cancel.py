"""On asyncio: the caller's cancellations and the library's own timeouts."""

import asyncio
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

import anyio

from trio_parallel_cm import parallel_with

from virtual_loop import VirtualTimeLoop


def say(event: str) -> None:
    print(f"{asyncio.get_running_loop().time():.2f} s  {event}")


@asynccontextmanager
async def open_client(name: str, open_s: float) -> AsyncGenerator[str, None]:
    async with anyio.create_task_group() as group:  # one task must enter and exit it
        group.start_soon(anyio.sleep_forever)  # the reader
        await asyncio.sleep(open_s)
        try:
            yield name
        except BaseException as exc:
            say(f"{name}: __aexit__ received {type(exc).__name__}")
            raise
        finally:
            group.cancel_scope.cancel()


async def serve_forever() -> None:
    async with parallel_with(open_client("db", 0.3), open_client("cache", 0.2)):
        say("serving")
        await asyncio.sleep(3600)


async def main() -> None:
    try:
        async with asyncio.timeout(1):
            await serve_forever()
    except TimeoutError as exc:  # asyncio.timeout's own, untouched
        say(f"asyncio.timeout: {exc!r}")

    with anyio.move_on_after(1) as scope:
        await serve_forever()
    say(f"anyio.move_on_after: cancelled_caught={scope.cancelled_caught}")

    task = asyncio.create_task(serve_forever())
    await asyncio.sleep(1)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError as exc:  # a pure cancellation, never in a group
        say(f"task.cancel(): {exc!r}")

    slow = {"db": open_client("db", 0.3), "search": open_client("search", 9)}
    try:
        async with parallel_with(slow, enter_timeout=1):
            say("never")
    except* TimeoutError as group:  # the library's timeouts: builtin ones on asyncio
        say(f"enter_timeout: {group.exceptions!r}")


if __name__ == "__main__":
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:  # asyncio.run(main())
        runner.run(main())
