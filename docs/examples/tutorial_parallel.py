"""The same service with ``parallel_with``: start-up costs the slowest resource."""

import trio
import trio.testing

from trio_parallel_cm import parallel_with

from resources import Journal, open_cache, open_db, open_queue


async def main() -> None:
    log = Journal("db", "cache", "queue")
    async with parallel_with(
        open_db(log),
        open_cache(log),
        open_queue(log),
    ) as (db, cache, queue):
        log.write("body", f"serving with {db}, {cache}, {queue}")
        await trio.sleep(0.1)  # handling requests
    print(log)


if __name__ == "__main__":
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
