"""The Trio runtime: what the engine asks of the event loop, done by Trio.

The only module of the package, with the demo and the OpenTelemetry observer (which read
Trio's clock), that imports ``trio``.  The names are those of the interface
(``_runtime/__init__.py``); most are Trio's own objects, bound here, not wrapped: they run
for every holder, and a parked holder keeps no frame or closure more than it needs (the
memory held per open context manager is a benchmark target).

Design notes:

* ``park`` is ``wait_task_rescheduled`` with an abort function that always succeeds: a
  parked holder is woken either by ``unpark`` (from any task of the same run) or by a
  cancellation, which its abort function records synchronously, before any other task
  runs.  After ``unpark`` the task has no abort function any more, so a cancellation can
  no longer reach the park: it meets the next checkpoint instead.  A release and a
  cancellation therefore never land together: Trio orders them.
* ``start`` is ``nursery.start``: until ``task_status.started()`` the new task runs under
  its starter (what cancels the caller cancels a pending enter); ``started()`` moves it
  into the nursery, unless the starter is cancelled at that instant, when Trio quietly
  leaves it where it is: ``moved`` tells (trio's ``_TaskStatus.started``).
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Awaitable, Callable
from typing import Any, Final, Protocol, TypeVar, cast

import trio
from trio.lowlevel import Abort, RaiseCancelT, Task, reschedule, wait_task_rescheduled

__all__ = [
    "ABORTED",
    "AbortFn",
    "CancelScope",
    "Cancelled",
    "CapacityLimiter",
    "Event",
    "Nursery",
    "Task",
    "TaskStatus",
    "checkpoint",
    "checkpoint_if_cancelled",
    "current_task",
    "current_time",
    "grouped",
    "is_cancelled",
    "ki_protected",
    "moved",
    "nursery_of",
    "open_nursery",
    "park",
    "pass_on_cancellation",
    "sleep",
    "start_from",
    "task_failure",
    "thread_limiter",
    "threadsafe_caller",
    "too_slow",
    "unpark",
    "wait_shielded",
]

F = TypeVar("F", bound=Callable[..., object])

# ---- structured concurrency: scopes, nurseries, events, a limiter, the clock -----------

#: What cancels: level-triggered, with a deadline and a shield, entered and exited in one
#: task; its own cancellation is absorbed as it exits.
CancelScope = trio.CancelScope
#: What a cancelled task meets at its checkpoints.
Cancelled = trio.Cancelled
#: Where tasks live: ``start`` (with the hand-off above) and ``start_soon``.
Nursery = trio.Nursery
TaskStatus = trio.TaskStatus
open_nursery = trio.open_nursery
Event = trio.Event
CapacityLimiter = trio.CapacityLimiter
current_time = trio.current_time
sleep = trio.sleep


def too_slow(message: str) -> trio.TooSlowError:
    """The failure of an enter or an exit that ran out of its time."""
    return trio.TooSlowError(message)


# ---- tasks ----------------------------------------------------------------------------

current_task = trio.lowlevel.current_task
checkpoint = trio.lowlevel.checkpoint
checkpoint_if_cancelled = trio.lowlevel.checkpoint_if_cancelled


def moved(task: Any, nursery: object) -> bool:
    """Whether ``started()`` moved ``task`` (a ``Task``) into ``nursery`` (see the design
    notes)."""
    return cast(Task, task).parent_nursery is nursery


def start_from(
    entering: object,
    nursery: object,
    fn: Callable[..., Awaitable[object]],
    /,
    *args: object,
    name: str,
    starter_name: str,
) -> None:
    """Start ``fn(*args)`` in ``nursery`` with the hand-off of ``start``, from a starter
    task in ``entering``: cancelling ``entering`` cancels it until it has started."""
    start = functools.partial(cast(Nursery, nursery).start, name=name)
    cast(Nursery, entering).start_soon(start, fn, *args, name=starter_name)


def pass_on_cancellation(nursery: object) -> None:
    """The caller is cancelled: so are the nursery's tasks once their shields are lifted.
    Nothing to do: they sit inside the caller's cancel scopes."""


def nursery_of(given: object) -> Nursery:
    """The nursery a user passed (``start_context``): a ``trio.Nursery``, or an anyio task
    group, which on Trio wraps one (anyio's private ``_nursery``: anyio on Trio is Trio)."""
    if isinstance(given, trio.Nursery):
        return given
    inner: object = getattr(given, "_nursery", None)
    if isinstance(inner, trio.Nursery):
        return inner
    raise TypeError(
        f"start_context() takes a trio.Nursery or an anyio task group, not {type(given).__name__}"
    )


def task_failure(exc: BaseException) -> BaseException:
    """What a task raises to fail with ``exc``: ``exc`` (its nursery collects it)."""
    return exc


def grouped(cancellation: BaseException) -> bool:
    """A ``Cancelled`` goes into the group of failures: the scope that owns it takes it
    out as the group goes through it."""
    return True


class _Awaitable(Protocol):
    """An event, as the interface passes it (``_runtime.Event``)."""

    def is_set(self) -> bool: ...
    def wait(self) -> Awaitable[object]: ...


async def wait_shielded(event: _Awaitable, deadline: float = math.inf) -> BaseException | None:
    """Wait for ``event``, shielded: nothing but ``deadline`` ends the wait (and nothing is
    returned)."""
    with trio.CancelScope(shield=True, deadline=deadline):
        await event.wait()
    return None


def ki_protected(method: F) -> F:
    """``method`` protected from ``KeyboardInterrupt`` while it runs (Trio's KI protection)."""
    return trio.lowlevel.enable_ki_protection(method)


def is_cancelled() -> bool:
    """Whether the current task is effectively cancelled (its next checkpoint raises)."""
    return trio.current_effective_deadline() == -math.inf


# ---- parking ---------------------------------------------------------------------------

# What an abort function passed to ``park`` returns, once it has recorded the cancellation.
ABORTED: Final = Abort.SUCCEEDED
AbortFn = Callable[[RaiseCancelT], Abort]


# ``await park(abort)``: sleep until ``unpark``; a cancellation first calls ``abort``, then
# raises.  ``abort(raise_cancel)`` runs synchronously, as the cancellation happens, before
# any other task: it records what it must and returns ``ABORTED``.
park: Final[Callable[[AbortFn], Awaitable[None]]] = wait_task_rescheduled
# ``unpark(task)``: wake ``task``, parked by ``park``; after this a cancellation no longer
# reaches it.
unpark: Final[Callable[[Task], None]] = reschedule


# ---- threads ---------------------------------------------------------------------------


def thread_limiter() -> trio.CapacityLimiter:
    """The run's default limiter of threads (``trio.to_thread``'s: 40 tokens)."""
    return trio.to_thread.current_default_thread_limiter()


def threadsafe_caller() -> Callable[[Callable[[], object]], None]:
    """A function that any thread calls to run ``fn()`` soon in this run; once the run
    has finished, it does nothing (``TrioToken.run_sync_soon``)."""
    token = trio.lowlevel.current_trio_token()

    def call_soon(fn: Callable[[], object]) -> None:
        with contextlib.suppress(trio.RunFinishedError):
            token.run_sync_soon(fn)

    return call_soon
