"""A resource that fails to open: what happens to the others; how to read the report."""

import trio
import trio.testing

from trio_parallel_cm import (
    ParallelExceptionGroup,
    failures_of,
    format_failures,
    parallel_with,
)

from resources import Journal, open_cache, open_db, open_search


async def main() -> None:
    log = Journal("db", "cache", "search")
    try:
        async with parallel_with(
            open_db(log), open_cache(log), open_search(log, reachable=False)
        ) as (db, cache, search):
            log.write("body", f"serving with {db}, {cache}, {search}")  # never runs
    except ParallelExceptionGroup as group:
        print(log, end="\n\n")
        print(format_failures(group), end="\n\n")
        for failure in failures_of(group):
            print(f"{failure.name} failed while {failure.phase}: {failure.exception!r}")


if __name__ == "__main__":
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
