"""``exit_timeout=``: a graceful shutdown budget, also when the service is cancelled."""

import trio
import trio.testing

from trio_parallel_cm import ParallelExceptionGroup, format_failures, parallel_with

from resources import Journal, open_db, open_queue


async def main() -> None:
    log = Journal("db", "queue")
    try:
        with trio.move_on_after(1):  # stands for a shutdown request
            async with parallel_with(
                open_db(log), open_queue(log, drain_s=5), exit_timeout=2
            ):
                log.write("body", "serving")
                await trio.sleep_forever()
    except ParallelExceptionGroup as group:
        print(log, end="\n\n")
        print(format_failures(group))


if __name__ == "__main__":
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
