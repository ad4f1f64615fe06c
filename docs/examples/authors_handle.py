"""``start_context``: hold a context manager open beyond one ``async with`` block."""

import trio
import trio.testing

from trio_parallel_cm import ContextHandle, start_context

from resources import Journal, open_db


async def close_later(handle: ContextHandle[str], log: Journal) -> None:
    await trio.sleep(1)
    log.write("body", f"another task closes {handle.name}")
    await handle.aclose()  # the holder task, not this one, runs __aexit__


async def main() -> None:
    log = Journal("db")
    async with trio.open_nursery() as nursery:
        handle = await start_context(nursery, open_db(log))  # returns once entered
        print(f"{handle!r}: value {handle.value!r}")
        nursery.start_soon(close_later, handle, log)
        await trio.sleep(2)
        print(f"{handle!r}")
        await handle.aclose()  # closing again is a no-op
    print(log)


if __name__ == "__main__":
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
