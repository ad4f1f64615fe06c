"""A graceful close that an outer cancellation cannot skip, and cannot hang on."""

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

import trio
import trio.testing

from trio_parallel_cm import parallel_with

from resources import Journal, open_db


@asynccontextmanager
async def open_session(log: Journal, goodbye_s: float) -> AsyncGenerator[str, None]:
    log.write("session", "open")
    try:
        yield "session"
    finally:
        # A goodbye that must be tried even when the caller is cancelled, but that
        # a dead peer cannot hang: shielded, and bounded.  (Or leave __aexit__
        # cancellable, and let the caller pass exit_timeout= for the same budget.)
        with trio.move_on_after(1) as goodbye:
            goodbye.shield = True
            log.write("session", "saying goodbye")
            await trio.sleep(goodbye_s)
        log.write(
            "session", "gave up on goodbye" if goodbye.cancelled_caught else "closed"
        )


async def main() -> None:
    log = Journal("db", "session")
    with trio.move_on_after(0.5):  # the caller is cancelled while the body runs
        async with parallel_with(open_db(log), open_session(log, goodbye_s=60)):
            await trio.sleep_forever()
    log.write("body", "after the block")
    print(log)


if __name__ == "__main__":
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
