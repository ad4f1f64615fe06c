"""Stand-ins for a service's resources: each takes a while to open and to close.

A ``Journal`` records what happens to them, so the tutorial's examples can show it.
"""

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import cast

import trio


class Journal:
    """What happened when, on Trio's clock: a column per resource, a row per instant.

    Events of one column at one instant are listed top-down in the order they
    happened; simultaneous events of different columns share a row (Trio runs
    simultaneous tasks in no fixed order).
    """

    def __init__(self, *names: str) -> None:
        self.start = trio.current_time()
        self.events: dict[str, list[tuple[float, str]]] = {
            name: [] for name in ("body", *names)
        }

    def write(self, name: str, event: str) -> None:
        self.events[name].append((trio.current_time() - self.start, event))

    def __str__(self) -> str:
        columns = list(self.events)
        widths = [
            max([len(name)] + [len(e) for _, e in self.events[name]])
            for name in columns
        ]
        header = "  ".join(n.ljust(w) for n, w in zip(columns, widths, strict=True))
        lines = [f"time    {header}".rstrip()]
        for t in sorted({t for events in self.events.values() for t, _ in events}):
            cells = [
                [e for when, e in self.events[name] if when == t] for name in columns
            ]
            for row in range(max(map(len, cells))):
                stamp = f"{t:.2f} s" if row == 0 else ""
                texts = [c[row] if row < len(c) else "" for c in cells]
                padded = "  ".join(
                    x.ljust(w) for x, w in zip(texts, widths, strict=True)
                )
                lines.append(f"{stamp:<8}{padded}".rstrip())
        return "\n".join(lines)


def describe(exc: BaseException) -> str:
    """The exception's type, and the types inside it if it is a group."""
    if isinstance(exc, BaseExceptionGroup):
        group = cast("BaseExceptionGroup[BaseException]", exc)
        inner = ", ".join(describe(e) for e in group.exceptions)
        return f"{type(group).__name__}({inner})"
    return type(exc).__name__


@asynccontextmanager
async def resource(
    journal: Journal, name: str, open_s: float, close_s: float, refuse: bool = False
) -> AsyncGenerator[str, None]:
    """A resource named ``name``: ``open_s`` seconds to open, ``close_s`` to close."""
    journal.write(name, "connecting")
    try:
        await trio.sleep(open_s)  # the network round trips of a handshake
    except trio.Cancelled:
        journal.write(name, "connecting cancelled")
        raise
    if refuse:
        journal.write(name, "refused")
        raise ConnectionRefusedError(f"{name}.internal refused the connection")
    journal.write(name, "open")
    try:
        yield name
    except BaseException as exc:
        journal.write(name, f"closing after {describe(exc)}")
        raise
    else:
        journal.write(name, "closing")
    finally:
        try:
            await trio.sleep(close_s)  # flushing, saying goodbye
        except trio.Cancelled:
            journal.write(name, "closing cancelled")
            raise
        journal.write(name, "closed")


@asynccontextmanager
async def open_db(journal: Journal) -> AsyncGenerator[str, None]:
    async with resource(journal, "db", open_s=0.3, close_s=0.1) as db:
        yield db


@asynccontextmanager
async def open_cache(journal: Journal) -> AsyncGenerator[str, None]:
    async with resource(journal, "cache", open_s=0.2, close_s=0.05) as cache:
        yield cache


@asynccontextmanager
async def open_queue(
    journal: Journal, *, drain_s: float = 0.2
) -> AsyncGenerator[str, None]:
    async with resource(journal, "queue", open_s=0.4, close_s=drain_s) as queue:
        yield queue


@asynccontextmanager
async def open_search(
    journal: Journal, *, reachable: bool = True, latency: float = 0.25
) -> AsyncGenerator[str, None]:
    refuse = not reachable
    async with resource(
        journal, "search", open_s=latency, close_s=0.1, refuse=refuse
    ) as search:
        yield search


@asynccontextmanager
async def open_app(journal: Journal, db: str, cache: str) -> AsyncGenerator[str, None]:
    """An application that needs the database and the cache before it can start."""
    async with resource(journal, "app", open_s=0.1, close_s=0.1) as app:
        yield app
