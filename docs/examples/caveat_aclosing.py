"""An async generator that yields inside a block, closed where it is iterated."""

from collections.abc import AsyncIterator
from contextlib import aclosing

import trio
import trio.testing

from trio_parallel_cm import parallel_with


async def rows() -> AsyncIterator[int]:
    try:
        async with parallel_with(trio.open_nursery(), trio.open_nursery()):
            for row in range(10):
                yield row
    except BaseExceptionGroup as group:
        # aclose() threw GeneratorExit at the yield: it leaves the block in a group.
        if group.split(GeneratorExit)[1] is not None:
            raise  # something else failed as well
        print("closed: the block inside the generator has exited")


async def main() -> None:
    async with aclosing(rows()) as stream:
        async for row in stream:
            if row == 2:
                break  # aclosing closes it now, in this task
    print(f"stopped at row {row}")


if __name__ == "__main__":
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
