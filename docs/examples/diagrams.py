"""The semantics page's diagrams: what each task does when, on a virtual clock."""

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

import trio
import trio.testing

from trio_parallel_cm import ParallelExceptionGroup, parallel_with

from resources import Journal, open_cache, open_db, open_search


async def no_early_exit() -> None:
    log = Journal("db", "cache")
    with trio.move_on_after(0.5):  # the caller is cancelled while the body runs
        async with parallel_with(open_db(log), open_cache(log)):
            log.write("body", "running")
            try:
                await trio.sleep_forever()
            except trio.Cancelled:
                log.write("body", "cancelled, cleaning up")
                with trio.CancelScope(shield=True):
                    await trio.sleep(0.2)
                log.write("body", "done, re-raises")
                raise
    print(log)


async def enter_failure() -> None:
    log = Journal("db", "cache", "search")
    try:
        async with parallel_with(
            open_db(log), open_cache(log), open_search(log, reachable=False)
        ):
            log.write("body", "running")  # never runs
    except ParallelExceptionGroup as group:
        log.write("body", "group raised")
        print(log, end="\n\n")
        print(group.message)


@asynccontextmanager
async def open_worker(log: Journal, crash_after: float) -> AsyncGenerator[None, None]:
    """A context manager with a background task (in a nursery) that crashes."""

    async def background() -> None:
        await trio.sleep(crash_after)
        log.write("worker", "background task raises OSError")
        raise OSError("the worker lost its connection")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(background)
        log.write("worker", "open")
        try:
            yield
        except BaseException as exc:
            log.write("worker", f"cancelled ({type(exc).__name__})")
            raise


async def failure_while_open() -> None:
    log = Journal("db", "worker")
    try:
        async with parallel_with(open_db(log), open_worker(log, crash_after=0.6)):
            log.write("body", "running")
            try:
                await trio.sleep_forever()
            except trio.Cancelled:
                log.write("body", "cancelled, flushing")
                with trio.CancelScope(shield=True):
                    await trio.sleep(0.1)  # the worker is still open meanwhile
                log.write("body", "done, re-raises")
                raise
    except ParallelExceptionGroup as group:
        log.write("body", "group raised")
        print(log, end="\n\n")
        print(group.message)


async def main() -> None:
    for scenario in (no_early_exit, enter_failure, failure_while_open):
        print(f"== {scenario.__name__} ==")
        await scenario()


if __name__ == "__main__":
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
