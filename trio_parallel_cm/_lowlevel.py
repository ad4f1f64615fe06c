"""The runtime primitives the engine needs, behind one narrow interface (Trio's today).

Everything the semantics modules ask of the event loop is here, by what it means to them:
park a task until someone wakes it (telling a cancellation apart from a wake-up), wake it,
name the current task, ask whether the current task is cancelled, checkpoint, and protect a
method from ``KeyboardInterrupt``.  A second runtime (anyio, for asyncio users) would
reimplement this module; nothing else in the engine imports ``trio.lowlevel``.

Design notes:

* ``park`` is ``wait_task_rescheduled`` with an abort function that always succeeds: a
  parked holder is woken either by ``unpark`` (from any task of the same run) or by a
  cancellation, which its abort function records synchronously, before any other task
  runs.  After ``unpark`` the task has no abort function any more, so a
  cancellation can no longer reach the park: it meets the next checkpoint instead.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

import trio
from trio.lowlevel import Abort, RaiseCancelT, Task, reschedule, wait_task_rescheduled

__all__ = [
    "ABORTED",
    "AbortFn",
    "Task",
    "checkpoint",
    "checkpoint_if_cancelled",
    "current_task",
    "in_task",
    "is_cancelled",
    "ki_protected",
    "park",
    "unpark",
]

F = TypeVar("F", bound=Callable[..., object])

current_task = trio.lowlevel.current_task
checkpoint = trio.lowlevel.checkpoint
checkpoint_if_cancelled = trio.lowlevel.checkpoint_if_cancelled
in_task = trio.lowlevel.in_trio_task


def ki_protected(method: F) -> F:
    """``method`` protected from ``KeyboardInterrupt`` while it runs (Trio's KI protection)."""
    return trio.lowlevel.enable_ki_protection(method)


def is_cancelled() -> bool:
    """Whether the current task is effectively cancelled (its next checkpoint raises)."""
    return trio.current_effective_deadline() == -math.inf


# What an abort function passed to ``park`` returns, once it has recorded the cancellation.
ABORTED: Final = Abort.SUCCEEDED
AbortFn = Callable[[RaiseCancelT], Abort]


# ``await park(abort)``: sleep until ``unpark``; a cancellation first calls ``abort``, then
# raises.  ``abort(raise_cancel)`` runs synchronously, as the cancellation happens, before
# any other task: it records what it must and returns ``ABORTED``.  Trio's own functions,
# not wrappers: a parked holder keeps no frame or closure more than it needs (the memory
# held per open context manager is a benchmark target), and these run for every holder.
park: Final[Callable[[AbortFn], Awaitable[None]]] = wait_task_rescheduled
# ``unpark(task)``: wake ``task``, parked by ``park``; after this a cancellation no longer
# reaches it.
unpark: Final[Callable[[Task], None]] = reschedule
