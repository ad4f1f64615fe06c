"""A service that opens its resources one after another: start-up costs the sum."""

import trio
import trio.testing

from resources import Journal, open_cache, open_db, open_queue


async def main() -> None:
    log = Journal("db", "cache", "queue")
    async with open_db(log) as db, open_cache(log) as cache, open_queue(log) as queue:
        log.write("body", f"serving with {db}, {cache}, {queue}")
        await trio.sleep(0.1)  # handling requests
    print(log)


if __name__ == "__main__":
    # A virtual clock: the sleeps that stand for network latency take no real time.
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
