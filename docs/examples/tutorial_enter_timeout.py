"""``enter_timeout=``: a resource that takes too long to open fails the start-up."""

import trio
import trio.testing

from trio_parallel_cm import ParallelExceptionGroup, format_failures, parallel_with

from resources import Journal, open_db, open_search


async def main() -> None:
    log = Journal("db", "search")
    try:
        async with parallel_with(
            open_db(log), open_search(log, latency=60), enter_timeout=1
        ):
            log.write("body", "serving")  # never runs
    except ParallelExceptionGroup as group:
        print(log, end="\n\n")
        print(format_failures(group))


if __name__ == "__main__":
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
