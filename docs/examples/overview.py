"""The same context managers with ``parallel_with``: each in a task of its own."""

import trio
import trio.testing

from trio_parallel_cm import parallel_with


async def main() -> None:
    lock = trio.Lock()
    start = trio.current_time()
    async with parallel_with(lock, trio.open_nursery()) as (_, nursery):
        nursery.start_soon(trio.sleep, 1)  # a background task in the nursery
        print(f"in the body: lock held {lock.locked()}")
    elapsed = trio.current_time() - start
    print(f"after the block: lock held {lock.locked()}, {elapsed:.0f} s later")


if __name__ == "__main__":
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
