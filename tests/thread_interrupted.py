"""A program interrupted while an ``in_thread`` context manager is still entering
(tests/test_thread_real.py sends it Ctrl+C, as SIGINT).

``parallel_with`` enters four context managers: ``a``, ``b`` and ``c`` synchronous ones,
each in a thread of its own (``in_thread``), and ``d`` an async one.  ``a`` and ``b``
enter at once; ``c`` blocks in ``__enter__`` reading a line from stdin; ``d`` waits until
the block has seen ``a`` and ``b`` enter and every task is blocked, says so, and waits
forever.  The test interrupts the program once it has seen all of that, waits until
``d``'s enter was cancelled (the block has met the interrupt, so ``c``'s enter is
cancelled too by then), and only then writes the line that lets ``c``'s enter return.

The interrupt comes while the main thread is idle, or in ``d``'s enter, which is
KI-protected on Trio: it reaches the main task, never the library's own tasks between
two checkpoints (where it would leave an entered context manager open: a library bug,
reported with its repro; this program is not about it).

Lines (each written with one ``os.write``: threads write concurrently): ``entered X`` (as
the block saw it enter: the observer), ``blocking c``, ``waiting d``, ``cancelled d``,
``exited X with <what __exit__ received>`` (a group with its leaves in brackets),
``ended with <what the run raised>`` and ``KeyboardInterrupt`` if that is all it raised.
Its argument names the runtime: ``trio``, ``asyncio`` or ``uvloop``.
"""

from __future__ import annotations

import asyncio
import os
import sys
from types import TracebackType
from typing import cast

import anyio
import trio
import uvloop

from trio_parallel_cm import PhaseEvent, in_thread, parallel_with

NAMES = "abcd"


def say(line: str) -> None:
    os.write(sys.stdout.fileno(), f"{line}\n".encode())


def members(exc: BaseException) -> tuple[BaseException, ...] | None:
    """A group's members; None for an exception that is not a group."""
    if isinstance(exc, BaseExceptionGroup):
        return cast("BaseExceptionGroup[BaseException]", exc).exceptions
    return None


def leaves(exc: BaseException) -> list[BaseException]:
    inner = members(exc)
    return [exc] if inner is None else [leaf for member in inner for leaf in leaves(member)]


def describe(exc: BaseException | None) -> str:
    """The type's name; for a group, with its members' in brackets."""
    inner = None if exc is None else members(exc)
    if inner is None:
        return type(exc).__name__
    return f"{type(exc).__name__}[{', '.join(describe(member) for member in inner)}]"


class Service:
    """Enters at once, or (``blocking``) once a line arrives on stdin."""

    def __init__(self, name: str, *, blocking: bool = False) -> None:
        self.name = name
        self.blocking = blocking

    def __enter__(self) -> str:
        if self.blocking:
            say(f"blocking {self.name}")
            sys.stdin.readline()
        return self.name

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        say(f"exited {self.name} with {describe(exc)}")


class Pending:
    """An async context manager whose enter never ends by itself; it says it waits once
    ``a`` and ``b`` have entered and every task is blocked."""

    def __init__(self) -> None:
        self.others_entered = anyio.Event()
        self.entered = 0

    def announce(self, event: PhaseEvent) -> None:
        """The block's observer: says what entered; counts ``a`` and ``b``."""
        if event.kind == "entered":
            say(f"entered {NAMES[event.position]}")
            self.entered += 1
            if self.entered == 2:
                self.others_entered.set()

    @trio.lowlevel.enable_ki_protection
    async def __aenter__(self) -> str:
        await self.others_entered.wait()
        await anyio.wait_all_tasks_blocked()
        say("waiting d")
        try:
            await anyio.sleep_forever()
        except BaseException:
            say("cancelled d")
            raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def __aexit__(self, *exc_info: object) -> None:
        say("exited d")  # pragma: no cover (never entered)


async def main() -> None:
    d = Pending()
    async with parallel_with(
        in_thread(Service, "a"),
        in_thread(Service, "b"),
        in_thread(Service, "c", blocking=True),
        d,
        observer=d.announce,
    ):
        say("body")  # pragma: no cover (d never enters)


if __name__ == "__main__":
    runtime = sys.argv[1]
    try:
        if runtime == "trio":
            trio.run(main)
        else:
            factory = uvloop.new_event_loop if runtime == "uvloop" else None
            with asyncio.Runner(loop_factory=factory) as runner:
                runner.run(main())
    except BaseException as exc:
        say(f"ended with {describe(exc)}")
        if all(isinstance(leaf, KeyboardInterrupt) for leaf in leaves(exc)):
            say("KeyboardInterrupt")
        else:
            raise
