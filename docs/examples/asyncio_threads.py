"""A lifespan that opens a sqlite3 connection, in a thread, with an async client."""

import asyncio
import contextlib
import sqlite3
import tempfile
from collections.abc import AsyncGenerator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from trio_parallel_cm import in_thread, parallel_with

from virtual_loop import VirtualTimeLoop


def say(event: str) -> None:
    print(f"{asyncio.get_running_loop().time():.2f} s  {event}")


@contextlib.contextmanager
def open_sqlite(path: Path) -> Iterator[sqlite3.Connection]:
    """Connect; on the way out, commit (or roll back, on an exception) and close."""
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        yield conn


@asynccontextmanager
async def open_client(name: str, open_s: float, close_s: float) -> AsyncGenerator[str]:
    say(f"{name}: connecting")
    await asyncio.sleep(open_s)  # the handshake
    say(f"{name}: open")
    try:
        yield name
    finally:
        await asyncio.sleep(close_s)  # flushing, saying goodbye
        say(f"{name}: closed")


@asynccontextmanager
async def lifespan(app: Any, path: Path) -> AsyncGenerator[dict[str, Any]]:
    db = in_thread(open_sqlite, path)
    payments = open_client("payments", open_s=0.4, close_s=0.2)
    async with parallel_with(db, payments) as (conn, client):
        # The state: request.state.db.run(fn, request.state.conn), ...
        yield {"db": db, "conn": conn, "payments": client}


def place_order(conn: sqlite3.Connection) -> int:
    conn.execute("create table if not exists orders (id integer primary key)")
    return conn.execute("insert into orders default values").lastrowid or 0


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        app = None  # app = FastAPI(lifespan=partial(lifespan, path=...))
        async with lifespan(app, Path(tmp) / "app.db") as state:
            say("serving")
            for _ in range(2):  # two requests, each of which places an order
                order = await state["db"].run(place_order, state["conn"])
                say(f"order {order} placed")
            await asyncio.sleep(1)  # handling requests, until the server shuts down
            say("shutting down")
        say("closed")


if __name__ == "__main__":
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:  # asyncio.run(main())
        runner.run(main())
