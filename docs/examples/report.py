"""What a failed start-up looks like: ``format_failures`` on a virtual clock.

Run by ``tests/test_report.py``, which compares its output with ``report.txt``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

import trio
import trio.testing

from trio_parallel_cm import ParallelExceptionGroup, format_failures, parallel_with


@asynccontextmanager
async def open_db() -> AsyncGenerator[str, None]:
    await trio.sleep(0.2)
    yield "db"


@asynccontextmanager
async def open_cache() -> AsyncGenerator[str, None]:
    await trio.sleep(0.3)
    raise ConnectionRefusedError("cache.internal:6379 refused the connection")
    yield "cache"  # pragma: no cover


@asynccontextmanager
async def open_queue() -> AsyncGenerator[str, None]:
    await trio.sleep(0.1)
    try:
        yield "queue"
    finally:
        await trio.sleep(0.05)
        raise TimeoutError("the queue did not drain")


async def main() -> None:
    try:
        async with parallel_with(open_db(), open_cache(), open_queue()):
            pass  # never reached: open_cache fails
    except ParallelExceptionGroup as group:
        print(format_failures(group))


if __name__ == "__main__":
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
