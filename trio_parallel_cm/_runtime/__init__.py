"""The runtimes: everything the engine asks of the event loop, behind one interface.

The engine (``_engine/``), the faces and the records reach the event loop through a
``Runtime`` only, and never import ``trio``, ``anyio`` or ``asyncio``.  A block chooses
its runtime once, as it is entered, from the running library (``current``), and hands it
to its stages, whose holders reach it through them.

What a runtime offers (``Runtime``):

* structured concurrency: ``CancelScope`` (deadline, shield, ``cancel``, entered and
  exited in one task), ``Cancelled`` (what a cancelled task meets), ``open_nursery`` and
  its ``Nursery`` (``start``, with the hand-off of Trio's ``nursery.start``, and
  ``start_soon``), ``start_from`` (start a task with that hand-off, cancelled by another
  nursery until it has started: the enters of a stage), ``moved`` (whether
  ``started()`` moved a task into the nursery),
  ``pass_on_cancellation`` (the caller is cancelled: so are the nursery's tasks, once
  their shields are lifted; structural on Trio), ``nursery_of`` (the nursery a user
  passes to ``start_context``: Trio's, an anyio task group, an ``asyncio.TaskGroup``),
  ``Event``, ``CapacityLimiter``, ``current_time``, ``sleep``, ``too_slow`` (the failure
  of a timeout);
* tasks: ``current_task``, ``checkpoint``, ``checkpoint_if_cancelled``, ``is_cancelled``,
  ``task_failure`` (what a task raises, for its nursery to collect, to fail with an
  exception), ``grouped`` (whether a cancellation goes into the group of failures a
  block raises, for the scope that owns it to take out), ``wait_shielded`` (wait for an
  event whatever cancels the task, until a deadline if given; the cancellation that no
  shield stops, if any);
* threads (``in_thread``): ``thread_limiter`` (the loop's default limiter of threads,
  the one ``to_thread`` uses), ``threadsafe_caller`` (what a thread calls to run a
  function soon in the loop), ``thread_context`` (the context a thread's call runs in);
* parking a holder: ``park(abort)`` sleeps until ``unpark(task)``; a cancellation first
  calls ``abort`` (which returns ``ABORTED``), then raises.

Trio's is ``_trio.py``, the native path: Trio's own objects, not wrapped.  asyncio's is
``_asyncio.py``, loaded the first time a block runs under asyncio (it needs anyio, the
``asyncio`` extra); its design notes (parking, the hand-off, what differs from Trio) are
at its top.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

import sniffio

from . import _trio

if TYPE_CHECKING:
    import asyncio

    import anyio.abc
    import trio

    #: What ``start_context`` takes: a Trio nursery, an anyio task group, or on asyncio an
    #: ``asyncio.TaskGroup``.
    UserNursery: TypeAlias = trio.Nursery | anyio.abc.TaskGroup | asyncio.TaskGroup

__all__ = [
    "CancelScope",
    "Cancellable",
    "Event",
    "Limiter",
    "Nursery",
    "Runtime",
    "TaskStatus",
    "ThreadLimiter",
    "cancelled_types",
    "current",
    "ki_protected",
    "thread_context",
]


class CancelScope(Protocol):
    """Level-triggered cancellation of what runs inside it, in the task that entered it."""

    @property
    def deadline(self) -> float: ...
    @deadline.setter
    def deadline(self, value: float, /) -> None: ...
    @property
    def shield(self) -> bool: ...
    @shield.setter
    def shield(self, value: bool, /) -> None: ...
    @property
    def cancel_called(self) -> bool: ...

    def cancel(self) -> None: ...
    def __enter__(self) -> Any: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> bool | None: ...


class Cancellable(Protocol):
    """What cancels every task of a nursery (Trio's: its cancel scope)."""

    @property
    def cancel_called(self) -> bool: ...

    def cancel(self) -> None: ...


class TaskStatus(Protocol):
    """What ``Nursery.start`` hands the new task, to tell it has started."""

    def started(self, value: None = None) -> None: ...


class Nursery(Protocol):
    """Where tasks live, and are waited for."""

    @property
    def cancel_scope(self) -> Cancellable: ...

    async def start(self, fn: Callable[..., Awaitable[object]], /, *args: object, name: str) -> Any:
        """Start ``fn(*args, task_status=...)``: it runs under the caller's cancellation
        until it calls ``task_status.started()``, then moves here (see ``moved``)."""
        ...

    def start_soon(self, fn: Callable[..., Awaitable[object]], /, *args: object, name: str) -> None:
        """Start ``fn(*args)`` here."""


class Event(Protocol):
    def set(self) -> None: ...
    def is_set(self) -> bool: ...
    def wait(self) -> Awaitable[object]: ...


class Limiter(Protocol):
    async def acquire(self) -> None: ...
    def release(self) -> None: ...


class ThreadLimiter(Protocol):
    """A limiter of threads, its tokens held on behalf of an object (Trio's, anyio's)."""

    async def acquire_on_behalf_of(self, borrower: object, /) -> None: ...
    def release_on_behalf_of(self, borrower: object, /) -> None: ...


class Runtime(Protocol):
    """What the engine asks of an event loop (see the module's notes)."""

    @property
    def Cancelled(self) -> type[BaseException]: ...  # (a class, as in Trio)
    @property
    def ABORTED(self) -> object: ...

    def CancelScope(self, *, shield: bool = False) -> CancelScope: ...
    def open_nursery(self) -> AbstractAsyncContextManager[Nursery]: ...
    def moved(self, task: Any, nursery: Nursery, /) -> bool: ...
    def pass_on_cancellation(self, nursery: Nursery, /) -> None: ...
    def start_from(
        self,
        entering: Nursery,
        nursery: Nursery,
        fn: Callable[..., Awaitable[object]],
        /,
        *args: object,
        name: str,
        starter_name: str,
    ) -> None: ...
    def nursery_of(self, given: object, /) -> Nursery: ...
    def task_failure(self, exc: BaseException, /) -> BaseException: ...
    def grouped(self, cancellation: BaseException, /) -> bool: ...
    def wait_shielded(
        self, event: Event, /, deadline: float = ...
    ) -> Awaitable[BaseException | None]: ...
    def Event(self) -> Event: ...
    def CapacityLimiter(self, total_tokens: int, /) -> Limiter: ...
    def current_time(self) -> float: ...
    def sleep(self, seconds: float, /) -> Awaitable[None]: ...
    def too_slow(self, message: str, /) -> Exception: ...
    def current_task(self) -> Any: ...
    def checkpoint(self) -> Awaitable[None]: ...
    def checkpoint_if_cancelled(self) -> Awaitable[None]: ...
    def is_cancelled(self) -> bool: ...
    def park(self, abort: Callable[[Any], Any], /) -> Awaitable[None]: ...
    def unpark(self, task: Any, /) -> None: ...
    def thread_limiter(self) -> ThreadLimiter: ...
    def threadsafe_caller(self) -> Callable[[Callable[[], object]], None]: ...


def current(kind: str) -> Runtime:
    """The runtime of the running library, for a block of ``kind`` entered now."""
    try:
        library = sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        library = None
    if library == "trio":
        return _trio
    if library == "asyncio":
        return _asyncio_runtime or _load_asyncio()
    found = "no async library" if library is None else library
    raise RuntimeError(
        f"{kind} must be entered in a Trio or an asyncio task (inside trio.run, "
        f"asyncio.run or anyio.run), not under {found}"
    )


#: The asyncio runtime, once loaded.
_asyncio_runtime: Runtime | None = None


def _load_asyncio() -> Runtime:
    """The asyncio runtime, loaded the first time (its cancellation class then counts).

    It needs anyio (the ``asyncio`` extra): without it, a clear error at once.
    """
    global cancelled_types, _asyncio_runtime  # (written here only)
    try:
        from . import _asyncio as runtime
    except ImportError as exc:
        raise RuntimeError(
            "trio_parallel_cm under asyncio needs anyio: pip install 'trio_parallel_cm[asyncio]'"
        ) from exc
    if runtime.Cancelled not in cancelled_types:
        cancelled_types = (*cancelled_types, runtime.Cancelled)
    _asyncio_runtime = runtime
    return runtime


#: The cancellation classes of the runtimes loaded (what ``_errors`` tells apart from
#: failures): Trio's, and asyncio's once a block has run there.
cancelled_types: tuple[type[BaseException], ...] = (_trio.Cancelled,)

#: ``method`` protected from ``KeyboardInterrupt`` while it runs, where the runtime
#: protects (Trio's KI protection; elsewhere the mark does nothing).
ki_protected = _trio.ki_protected


def thread_context() -> contextvars.Context:
    """A copy of the current context for a call in another thread, in which no async
    library runs (sniffio's variable unset, as ``trio.to_thread`` does)."""
    context = contextvars.copy_context()
    context.run(sniffio.current_async_library_cvar.set, None)
    return context
