"""Blocking resources: a sqlite3 connection, held by a thread of its own."""

import contextlib
import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import trio
import trio.testing

from trio_parallel_cm import in_thread, parallel_with

from resources import Journal, open_cache


@contextlib.contextmanager
def open_sqlite(path: Path) -> Iterator[sqlite3.Connection]:
    """Connect; on the way out, commit (or roll back, on an exception) and close."""
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        yield conn


def names(conn: sqlite3.Connection) -> list[str]:
    return [name for (name,) in conn.execute("select name from users order by name")]


def thread_name() -> str:
    return threading.current_thread().name


async def main() -> None:
    journal = Journal("cache")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "service.db"
        db = in_thread(open_sqlite, path)
        async with parallel_with(db, open_cache(journal)) as (conn, cache):
            journal.write("body", "serving")
            where = await db.run(thread_name)
            print(f"the {cache} is open; the connection lives in {where}")
            await db.run(conn.execute, "create table users (name text)")
            users = [("grace",), ("ada",)]
            await db.run(conn.executemany, "insert into users values (?)", users)
            print("read back:", await db.run(names, conn))
            try:
                conn.execute("select 1")  # from Trio's thread, not the connection's
            except sqlite3.ProgrammingError as exc:
                print("used from this thread:", type(exc).__name__)
        print(journal)

        again = in_thread(open_sqlite, path)
        async with again as conn:
            print("after a restart:", await again.run(names, conn))


if __name__ == "__main__":
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
