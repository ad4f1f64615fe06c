"""A program that holds three context managers open under ``asyncio.run`` until it is
interrupted (tests/test_asyncio_real.py sends it Ctrl+C, as SIGINT).

It prints a line as each context manager enters, as the body starts, as each exits
(with what its ``__aexit__`` received), and ``KeyboardInterrupt`` if that is what
``asyncio.run`` raised in the end.  Its argument names the loop: ``asyncio`` or
``uvloop``.
"""

from __future__ import annotations

import asyncio
import sys
from types import TracebackType

import anyio
import uvloop

from trio_parallel_cm import parallel_with


class Service:
    """Holds an anyio task group open, as a client of a server does."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.group = anyio.create_task_group()

    async def __aenter__(self) -> str:
        await self.group.__aenter__()
        print(f"{self.name} entered", flush=True)
        return self.name

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        self.group.cancel_scope.cancel()
        await self.group.__aexit__(None, None, None)
        print(f"{self.name} exited with {type(exc).__name__}", flush=True)
        return False


async def main() -> None:
    async with parallel_with(Service("a"), Service("b"), Service("c")):
        print("body", flush=True)
        await asyncio.sleep(60)


if __name__ == "__main__":
    factory = uvloop.new_event_loop if sys.argv[1:] == ["uvloop"] else None
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(main())
    except KeyboardInterrupt:
        print("KeyboardInterrupt", flush=True)
