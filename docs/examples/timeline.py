"""Which resource makes start-up slow: a ``Timeline`` on a virtual clock.

Run by ``tests/test_timeline.py``, which compares its output with ``timeline.txt``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

import trio
import trio.testing

from trio_parallel_cm import Timeline, parallel_with


@asynccontextmanager
async def open_service(enter: float, exit: float) -> AsyncGenerator[None, None]:
    await trio.sleep(enter)
    try:
        yield
    finally:
        await trio.sleep(exit)


async def main() -> None:
    timeline = Timeline()
    async with parallel_with(
        {
            "db": open_service(0.4, 0.1),
            "cache": open_service(0.1, 0.05),
            "search": open_service(0.8, 0.2),
        },
        observer=timeline,
    ):
        await trio.sleep(0.5)  # the body
    print(timeline.render(width=40))
    trace = timeline.to_chrome_trace()
    events, size = len(trace["traceEvents"]), len(json.dumps(trace))
    print(f"{events} trace events, {size} bytes of JSON")


if __name__ == "__main__":
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
