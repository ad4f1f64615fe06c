"""A FastAPI or Starlette lifespan that opens the application's resources at once."""

import asyncio
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any

from trio_parallel_cm import parallel_with

from virtual_loop import VirtualTimeLoop


def say(event: str) -> None:
    print(f"{asyncio.get_running_loop().time():.2f} s  {event}")


@asynccontextmanager
async def open_client(
    name: str, open_s: float, close_s: float
) -> AsyncGenerator[str, None]:
    """A client with a keep-alive task in an ``asyncio.TaskGroup``: one task must enter
    and exit it."""
    say(f"{name}: connecting")
    async with asyncio.TaskGroup() as group:
        keepalive = group.create_task(asyncio.Event().wait())
        await asyncio.sleep(open_s)  # the handshake
        say(f"{name}: open")
        try:
            yield name
        finally:
            keepalive.cancel()
            await asyncio.sleep(close_s)  # flushing, saying goodbye
            say(f"{name}: closed")


@asynccontextmanager
async def lifespan(app: Any) -> AsyncGenerator[dict[str, str], None]:
    async with parallel_with(
        {
            "db": open_client("db", open_s=0.3, close_s=0.1),
            "cache": open_client("cache", open_s=0.2, close_s=0.05),
            "payments": open_client("payments", open_s=0.4, close_s=0.2),
        },
        enter_timeout=5,
        exit_timeout=2,
    ) as resources:
        yield resources  # the state: request.state.db, request.state.cache, ...


async def main() -> None:
    app = None  # app = FastAPI(lifespan=lifespan)
    async with lifespan(app) as state:  # what Starlette does around serving
        say(f"serving with {', '.join(state)}")
        await asyncio.sleep(1)  # handling requests, until the server shuts down
        say("shutting down")


if __name__ == "__main__":
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:  # asyncio.run(main())
        runner.run(main())
