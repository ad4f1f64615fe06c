"""An observer of one's own: every phase change of every context manager, as data."""

import trio
import trio.testing

from trio_parallel_cm import PhaseEvent, parallel_with

from resources import Journal, open_cache, open_db


async def main() -> None:
    log = Journal("db", "cache")
    events: list[PhaseEvent] = []
    start = trio.current_time()
    async with parallel_with(open_db(log), open_cache(log), observer=events.append):
        await trio.sleep(0.1)
    # Simultaneous events of different context managers come in no fixed order.
    for event in sorted(events, key=lambda event: (event.time, event.position)):
        elapsed = event.time - start
        print(f"{elapsed:.2f} s  {event.name} [{event.position}]  {event.kind}")


if __name__ == "__main__":
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
