"""The same start-up as a dependency graph: each opens when its own needs are."""

from functools import partial

import trio
import trio.testing

from trio_parallel_cm import ResourceGraph

from resources import Journal, open_app, open_cache, open_db, open_queue


async def main() -> None:
    log = Journal("db", "cache", "queue", "app")
    graph = ResourceGraph()
    db = graph.add(partial(open_db, log))
    cache = graph.add(partial(open_cache, log))
    queue = graph.add(partial(open_queue, log))
    app = graph.add(partial(open_app, log), db, cache)  # open_app(log, db, cache)
    async with graph as resources:
        log.write("body", f"serving with {resources[app]}, {resources[queue]}")
        await trio.sleep(0.1)  # handling requests
    print(log)


if __name__ == "__main__":
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
