"""``parallel_with`` takes a mapping too: the values come back by name."""

import trio
import trio.testing

from trio_parallel_cm import parallel_with

from resources import Journal, open_cache, open_db, open_queue


async def main() -> None:
    log = Journal("db", "cache", "queue")
    resources = {"db": open_db(log), "cache": open_cache(log), "queue": open_queue(log)}
    async with parallel_with(resources) as opened:
        print(opened)


if __name__ == "__main__":
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
