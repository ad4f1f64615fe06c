"""The hand-written version: ``__aenter__`` gathered in a nursery.  It breaks Trio."""

from contextlib import AsyncExitStack
from typing import Any, cast

import trio
import trio.testing


async def enter_concurrently(stack: AsyncExitStack, *cms: Any) -> list[Any]:
    values: list[Any] = [None] * len(cms)

    async def enter(i: int, cm: Any) -> None:
        values[i] = await stack.enter_async_context(cm)  # __aenter__ in a child task...

    async with trio.open_nursery() as nursery:
        for i, cm in enumerate(cms):
            nursery.start_soon(enter, i, cm)
    return values  # ...and __aexit__, later, in this task


async def attempt(label: str, cm: Any) -> None:
    try:
        async with AsyncExitStack() as stack:
            await enter_concurrently(stack, cm)
    except BaseExceptionGroup as group:
        print(f"{label}: {innermost(group)}")
    except RuntimeError as error:
        print(f"{label}: {innermost(error)}")


def innermost(exc: BaseException) -> str:
    """The first innermost error of ``exc``, in one line."""
    while isinstance(exc, BaseExceptionGroup):
        exc = cast("BaseExceptionGroup[BaseException]", exc).exceptions[0]
    return f"{type(exc).__name__}: {str(exc).split(':')[0]}"


async def main() -> None:
    await attempt(
        "trio.Lock()", trio.Lock()
    )  # acquired in one task, released in another
    await attempt(
        "trio.open_nursery()", trio.open_nursery()
    )  # opened by a task that exits


if __name__ == "__main__":
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
