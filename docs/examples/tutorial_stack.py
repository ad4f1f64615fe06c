"""A staged start-up: the application needs the database and the cache first."""

import trio
import trio.testing

from trio_parallel_cm import ParallelExitStack

from resources import Journal, open_app, open_cache, open_db, open_queue


async def main() -> None:
    log = Journal("db", "cache", "queue", "app")
    async with ParallelExitStack() as stack:
        db, cache, queue = await stack.enter_all(
            open_db(log), open_cache(log), open_queue(log)
        )
        app = await stack.enter(open_app(log, db, cache))  # stage 2: needs stage 1
        log.write("body", f"serving with {app}, {queue}")
        await trio.sleep(0.1)  # handling requests
    print(log)


if __name__ == "__main__":
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
