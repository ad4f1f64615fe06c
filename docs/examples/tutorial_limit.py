"""``limit=``: open many connections, a few at a time."""

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

import trio
import trio.testing

from trio_parallel_cm import parallel_with


class Shards:
    """Connections to the shards of a database; counts the handshakes in flight."""

    def __init__(self) -> None:
        self.connecting = 0
        self.most_connecting = 0

    @asynccontextmanager
    async def open(self, number: int) -> AsyncGenerator[int, None]:
        self.connecting += 1
        self.most_connecting = max(self.most_connecting, self.connecting)
        await trio.sleep(0.1)  # the handshake
        self.connecting -= 1
        try:
            yield number
        finally:
            await trio.sleep(0.05)


async def main() -> None:
    shards = Shards()
    start = trio.current_time()
    async with parallel_with(
        *[shards.open(n) for n in range(6)], limit=2
    ) as connections:
        ready = trio.current_time() - start
        print(f"{len(connections)} shards open after {ready:.2f} s")
        print(f"at most {shards.most_connecting} connecting at once")
    print(f"all closed after {trio.current_time() - start:.2f} s")


if __name__ == "__main__":
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
