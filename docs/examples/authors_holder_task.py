"""What a context manager sets up in ``__aenter__`` belongs to its holder task."""

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from contextvars import ContextVar

import trio
import trio.testing

from trio_parallel_cm import parallel_with

request_id: ContextVar[str] = ContextVar("request_id", default="(unset)")


@asynccontextmanager
async def tagged(value: str) -> AsyncGenerator[str, None]:
    """Sets ``request_id`` while open: in the task that runs ``__aenter__``."""
    token = request_id.set(value)
    try:
        yield value
    finally:
        request_id.reset(token)


@asynccontextmanager
async def lease(seconds: float) -> AsyncGenerator[None, None]:
    """A deadline held across ``yield``: it bounds the task that runs ``__aenter__``."""
    with trio.move_on_after(seconds):
        yield


async def main() -> None:
    # 1. A context variable set in __aenter__ is set in the holder task, not the body.
    async with tagged("r-42"):
        print(f"nested async with: the body sees request_id={request_id.get()}")
    async with parallel_with(tagged("r-42")) as (tag,):
        print(f"parallel_with:     the body sees request_id={request_id.get()}")
        request_id.set(tag)  # use the value instead: set it in the body
        print(f"parallel_with:     after set(), request_id={request_id.get()}")

    # 2. A deadline in a context manager: when it fires, parallel_with cancels the body.
    start = trio.current_time()
    async with parallel_with(lease(2)):
        await trio.sleep(10)
    print(f"the lease ended the body after {trio.current_time() - start:.0f} s")

    # 3. A lock is acquired and released by its holder task: the body must not.
    lock = trio.Lock()
    async with parallel_with(lock):
        try:
            lock.release()
        except RuntimeError as error:
            print(f"lock.release() in the body: RuntimeError: {error}")
    print(f"after the block: locked={lock.locked()}")


if __name__ == "__main__":
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
