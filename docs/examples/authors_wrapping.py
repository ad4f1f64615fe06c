"""A context manager of your own that opens its parts with ``parallel_with``."""

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

import attrs
import trio
import trio.testing

from trio_parallel_cm import ParallelExceptionGroup, format_failures, parallel_with

from resources import Journal, open_cache, open_db, open_queue, open_search


@attrs.frozen
class Client:
    db: str
    cache: str
    search: str


@asynccontextmanager
async def open_client(
    log: Journal, *, search_reachable: bool = True
) -> AsyncGenerator[Client, None]:
    """Your library's entry point: the caller sees one context manager."""
    async with parallel_with(
        open_db(log), open_cache(log), open_search(log, reachable=search_reachable)
    ) as (db, cache, search):
        yield Client(db, cache, search)


async def main() -> None:
    log = Journal("db", "cache", "search", "queue")
    async with parallel_with(open_client(log), open_queue(log)) as (client, queue):
        print(client, queue)
    try:
        async with parallel_with(
            open_client(log, search_reachable=False), open_queue(log)
        ):
            pass  # never runs
    except ParallelExceptionGroup as group:
        print(format_failures(group))


if __name__ == "__main__":
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
