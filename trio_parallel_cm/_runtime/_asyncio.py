"""The asyncio runtime: what the engine asks of the event loop, done on asyncio.

Loaded by ``current`` the first time a block is entered under asyncio (plain asyncio,
anyio on asyncio, uvloop): a Trio user never imports it, nor asyncio.

Cancellation is anyio's: a ``CancelScope`` is an anyio cancel scope, level-triggered, with
a deadline and a shield, and it works in tasks that anyio did not create.  The anyio
scopes and task groups, ``asyncio.timeout()`` blocks and ``asyncio.TaskGroup`` objects that a
context manager opens in its holder task cancel that task with ``Task.cancel``, as they
would any task.  Everything else is raw asyncio (tasks, futures, a semaphore): the
engine's nurseries, the hand-off of ``start``, the parking of holders, the limiter and the
events.  (anyio's task groups cost about five times as much per task as
``loop.create_task``; each holder would pay it twice.)  A user's anyio task group, which
``start_context`` takes, is used as it is; a user's ``asyncio.TaskGroup`` holds a
guardian task per holder (``_TaskGroupNursery``).

What differs from Trio, for users (the harness accounts for each, ``tests/harness/``):

* A native cancellation (``Task.cancel``: ``asyncio.timeout``, ``asyncio.wait_for``,
  ``task.cancel()``) is delivered once, not level-triggered: a context manager that
  suppresses it ends it, as around nested blocks; when failures come out with it, the
  group holds the failures only (``grouped``), as ``asyncio.TaskGroup`` does, and the
  task stays cancelled for whatever cancelled it to count (``Task.uncancel``).
* asyncio lets a ``KeyboardInterrupt`` or a ``SystemExit`` raised by a task out of the
  event loop itself: one raised by a task that a context manager started (not its holder)
  stops the loop, and nothing can be closed after it.  A holder's own goes to its task
  group in a group of one (``task_failure``).
* A failure of a context manager's background task reaches its holder one loop iteration
  later (the task group cancels its host from a done callback): in its instant, its
  order with the body's end is not fixed.

Design notes:

* A nursery (``Nursery``) is a set of asyncio tasks, each inside a *root* anyio scope of
  its own.  A task that ``start`` moved into the nursery has its root scope moved under
  the anyio scope its host was in as it opened the nursery (anyio's ``TaskGroup.start``
  moves its tasks the same way, with the same private method): the scopes around the
  nursery reach it, shields respected, as on Trio, and the scopes the host entered
  since (the body's) do not.  A native cancellation of the host (``Task.cancel``)
  reaches the host alone: ``pass_on_cancellation`` passes it on to the moved tasks.
  Otherwise the host passes on what it meets: cancelling the nursery cancels every root
  scope, now and to come; a
  task that fails cancels the nursery (its failures come out of the exit in a group, as
  Trio's); the exit waits for every task, and a cancellation of the host meanwhile is
  passed on to them and the wait goes on (shielded from anyio's re-deliveries).  As
  Trio's, the exit then raises no anyio cancellation of its host (trio gh-1457: anyio
  delivers it again at the next checkpoint); a native one it raises, unless the host is
  raising something else through it, which goes on (``asyncio.TaskGroup``'s rule).
* ``start`` hands a task off as Trio's ``nursery.start`` does.  The new task runs inside
  its root scope; until it calls ``task_status.started()``, what cancels the caller
  cancels that scope (the caller, waiting on the start's future, is cancelled first: it
  then cancels the root scope and waits, shielded, for the task to end, and re-raises).
  ``started()`` moves the task into the nursery, unless the caller's cancellation has
  already landed on that future: then it is not moved (``moved`` says so), as Trio
  leaves a task under a cancelled starter.  If ``started()`` lands first, the caller's
  cancellation is re-armed for its next checkpoint (``_rearm``).
* ``start_from`` (a stage's enters) is that hand-off without a starter task: the entering
  nursery keeps the start's future and the task, and does on their callbacks what a
  starter would (on its cancellation: cancel the future, so that ``started()`` does not
  move the task, then its root scope; wait for the task to end).  One task per context
  manager instead of two.
* Parking: ``park`` awaits a future that ``unpark`` resolves.  asyncio has no
  ``wait_task_rescheduled``, but ``Task.cancel`` (anyio's delivery included) cancels the
  future a task waits on, synchronously: the park's future runs ``abort`` right there,
  in the cancelling task, before any other task runs, as Trio runs an abort function.
  So a holder's interruption is a fact before anything else happens, and a release
  (``unpark``) after it sees it.  A release and a cancellation can still land in one
  tick the other way round: a ``Task.cancel`` on a task whose park was just resolved.
  The rule: **the release wins**: the park returns, and the holder meets the
  cancellation at its next checkpoint (``_rearm``), as after Trio's ``reschedule``.
* A task is *cancelled* (``is_cancelled``) when an anyio scope around it is, or a native
  cancellation is pending on it (``Task.cancelling()``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import sys
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, Final, Protocol, cast

import anyio
import anyio.abc
import anyio.lowlevel
import anyio.to_thread
from anyio._backends import _asyncio as _anyio_asyncio  # see _Scope

__all__ = [
    "ABORTED",
    "CancelScope",
    "Cancelled",
    "CapacityLimiter",
    "Event",
    "Nursery",
    "checkpoint",
    "checkpoint_if_cancelled",
    "current_task",
    "current_time",
    "grouped",
    "is_cancelled",
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

Cancelled = asyncio.CancelledError
#: What an abort function returns (its value is not read here).
ABORTED: Final = None
Event = asyncio.Event
sleep = asyncio.sleep
checkpoint = anyio.lowlevel.checkpoint


def too_slow(message: str) -> TimeoutError:
    """The failure of an enter or an exit that ran out of its time: the builtin
    ``TimeoutError``, as ``anyio.fail_after`` and ``asyncio.timeout`` raise."""
    return TimeoutError(message)


def current_time() -> float:
    return asyncio.get_running_loop().time()


def current_task() -> asyncio.Task[Any]:
    task = asyncio.current_task()
    assert task is not None
    return task


def is_cancelled() -> bool:
    """Whether the current task's next checkpoint raises (see the design notes)."""
    return anyio.current_effective_deadline() == -math.inf or current_task().cancelling() > 0


async def checkpoint_if_cancelled() -> None:
    if is_cancelled():
        await asyncio.sleep(0)


class CapacityLimiter:
    """At most ``total_tokens`` holders at once (an ``asyncio.Semaphore``)."""

    __slots__ = ("_semaphore",)

    def __init__(self, total_tokens: int) -> None:
        self._semaphore = asyncio.Semaphore(total_tokens)

    async def acquire(self) -> None:
        await self._semaphore.acquire()

    def release(self) -> None:
        self._semaphore.release()


def _rearm(task: asyncio.Task[Any], exc: BaseException) -> None:
    """Let ``task`` meet the cancellation ``exc`` it caught at its next checkpoint.

    An anyio scope's cancellation needs nothing: anyio delivers it again, at every
    iteration of the loop, for as long as the scope is cancelled (and no longer once it
    has been exited).  A native one (``Task.cancel``) is requested again, with its
    message, its ``cancelling()`` count unchanged.
    """
    message = exc.args[0] if exc.args else None
    if isinstance(message, str) and message.startswith(_ANYIO_MESSAGE):
        return
    task.uncancel()
    task.cancel(message)


#: How anyio's cancellations begin (what anyio itself looks at, ``is_anyio_cancellation``).
_ANYIO_MESSAGE: Final = "Cancelled via cancel scope "


# ---- parking ---------------------------------------------------------------------------


class _Park(asyncio.Future[None]):
    """A parked task's future: ``unpark`` resolves it; a cancellation (``Task.cancel``,
    which anyio's delivery calls too) cancels it, and so runs ``abort`` at once, in the
    cancelling task, as Trio runs an abort function (see the design notes)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, abort: Callable[[Any], Any]) -> None:
        super().__init__(loop=loop)
        self.abort: Callable[[Any], Any] | None = abort
        self.woken = False

    def cancel(self, msg: Any | None = None) -> bool:
        abort, self.abort = self.abort, None
        if abort is not None and not self.done():
            abort(None)
        return super().cancel(msg)


_parked: dict[asyncio.Task[Any], _Park] = {}


async def park(abort: Callable[[Any], Any]) -> None:
    """Sleep until ``unpark``; a cancellation calls ``abort`` as it lands, then raises
    (see the design notes: a release that landed first wins)."""
    task = current_task()
    parked = _parked[task] = _Park(asyncio.get_running_loop(), abort)
    try:
        await parked
    except asyncio.CancelledError as exc:
        if not parked.woken:
            if parked.abort is not None:  # (not through cancel(): thrown in)
                parked.abort(exc)
            raise
        _rearm(task, exc)
    finally:
        del _parked[task]


def unpark(task: Any) -> None:
    """Wake ``task``, parked by ``park``; a cancellation no longer reaches the park."""
    parked = _parked[cast("asyncio.Task[Any]", task)]
    parked.woken = True
    if not parked.done():
        parked.set_result(None)


# ---- nurseries -------------------------------------------------------------------------

#: anyio's cancel scope on asyncio, made directly: ``anyio.CancelScope()`` looks the
#: backend up (sniffio) at every call, which a holder would pay for several times.
_Scope: Final = _anyio_asyncio.CancelScope
CancelScope = _Scope


class _TaskStatus:
    """The hand-off of one ``start`` (see the design notes)."""

    __slots__ = ("future", "nursery", "scope", "task")

    def __init__(self, nursery: _Starting, scope: _anyio_asyncio.CancelScope) -> None:
        self.nursery = nursery
        self.future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # The task's root scope; the task, once running.
        self.scope = scope
        self.task: asyncio.Task[Any] | None = None

    def started(self, value: None = None) -> None:
        if self.future.done():
            if self.future.cancelled():
                return  # the caller's cancellation landed first: not moved
            raise RuntimeError("called 'started' twice on the same task status")
        self.future.set_result(None)
        assert self.task is not None
        nursery = self.nursery
        nursery._moved[self.task] = self.scope  # pyright: ignore[reportPrivateUsage]
        if nursery.host is not None:
            # Moved: under the scopes its nursery sits in (anyio's TaskGroup.start does
            # the same, with the same private method).
            _reparent(self.scope, nursery.host)


async def _in_scope(
    scope: _anyio_asyncio.CancelScope,
    fn: Callable[..., Awaitable[object]],
    args: tuple[object, ...],
) -> None:
    """A task's body: ``fn(*args)`` inside its root scope."""
    with scope:
        await fn(*args)


class _Starting:
    """Trio's ``start`` over a way to spawn a task in a root scope of its own (see the
    design notes); ``_moved`` holds the tasks it moved here, with their root scopes."""

    __slots__ = ("_moved", "host")

    def __init__(self) -> None:
        self._moved: dict[asyncio.Task[Any], _anyio_asyncio.CancelScope] = {}
        # The anyio scope that encloses the tasks it moves (the engine's nurseries).
        self.host: _anyio_asyncio.CancelScope | None = None

    def _spawn(
        self, scope: _anyio_asyncio.CancelScope, body: Coroutine[Any, Any, None], name: str
    ) -> asyncio.Task[Any] | None:
        """Run ``body`` in a new task here (it enters ``scope``, its root scope); the
        task if known."""
        raise NotImplementedError

    def pass_on_cancellation(self) -> None:
        """See ``pass_on_cancellation``: nothing here (a user's task group)."""

    def start_soon(self, fn: Callable[..., Awaitable[object]], /, *args: object, name: str) -> None:
        scope = _Scope()
        self._spawn(scope, _in_scope(scope, fn, args), name)

    async def start(self, fn: Callable[..., Awaitable[object]], /, *args: object, name: str) -> Any:
        scope = _Scope()
        status = _TaskStatus(self, scope)
        self._spawn(scope, self._run_started(status, fn, args), name)
        try:
            await status.future
        except asyncio.CancelledError as exc:
            future = status.future
            if future.cancelled():
                # Not started: cancel its pending work, wait for it to end, raise.
                scope.cancel()
                await _wait_for(status)
                raise
            error = future.exception()
            if error is exc:
                raise  # it raised a cancellation before started(): as Trio, raise it
            _rearm(current_task(), exc)  # it started first: see the notes
            if error is not None:
                raise error from None
        return None

    async def _run_started(
        self,
        status: _TaskStatus,
        fn: Callable[..., Awaitable[object]],
        args: tuple[object, ...],
    ) -> None:
        task = status.task = current_task()
        try:
            with status.scope:
                await fn(*args, task_status=status)
        except BaseException as exc:
            if status.future.done():
                raise  # moved: the nursery's; or not moved: its starter waits, then raises
            status.future.set_exception(exc)  # raised by start(), as Trio does
            return
        finally:
            if self._moved.pop(task, None) is not None and self.host is not None:
                # Its root scope's exit handed the task to the scope it was moved under:
                # take it back (a scope around many blocks would keep every one).
                _forget(self.host, task)
        if not status.future.done():
            status.future.set_exception(
                RuntimeError("the task exited without calling task_status.started()")
            )


class _GroupNursery(_Starting):
    """A user's anyio task group (``start_context``): its tasks sit inside its cancel
    scope, which sits inside its host's."""

    __slots__ = ("_group", "cancel_scope")

    def __init__(self, group: anyio.abc.TaskGroup) -> None:
        super().__init__()
        self._group = group
        self.cancel_scope = group.cancel_scope

    def _spawn(
        self, scope: _anyio_asyncio.CancelScope, body: Coroutine[Any, Any, None], name: str
    ) -> None:
        self._group.start_soon(lambda: body, name=name)
        return


class _TaskGroupNursery(_Starting):
    """A user's ``asyncio.TaskGroup`` (``start_context``).  Its tasks are *guardians*: a
    task of ours runs in a root scope of its own (the group would cancel it with
    ``Task.cancel``, which no shield stops: a holder would take it for its own context
    manager failing), and the group holds a guardian for it, which waits for it to end.
    A cancellation of the guardian (the group aborting, or its host cancelled) cancels
    the task's root scope instead, which reaches the task once its shields are lifted, as
    a nursery's cancellation reaches a Trio task; what the task raises, the guardian
    raises into the group."""

    __slots__ = ("_group", "_roots", "cancel_scope")

    def __init__(self, group: asyncio.TaskGroup) -> None:
        super().__init__()
        self._group = group
        self._roots: set[_anyio_asyncio.CancelScope] = set()
        self.cancel_scope = _Cancelling(self)

    def _spawn(
        self, scope: _anyio_asyncio.CancelScope, body: Coroutine[Any, Any, None], name: str
    ) -> asyncio.Task[Any]:
        slot: list[asyncio.Task[Any]] = []
        try:
            self._group.create_task(self._guard(slot, scope), name=name)
        except BaseException:  # (a group that has finished, or is shutting down)
            body.close()
            raise
        task = asyncio.get_running_loop().create_task(body, name=name)
        slot.append(task)
        return task

    async def _guard(
        self, slot: list[asyncio.Task[Any]], scope: _anyio_asyncio.CancelScope
    ) -> None:
        """A guardian: wait for the task (see the class's notes)."""
        [task] = slot
        self._roots.add(scope)
        cancelled: BaseException | None = None
        try:
            while not task.done():
                try:
                    await asyncio.wait([task])
                except asyncio.CancelledError as exc:
                    cancelled = cancelled or exc
                    scope.cancel()
        finally:
            self._roots.discard(scope)
        failure = None if task.cancelled() else task.exception()
        if failure is not None:
            raise failure
        if cancelled is not None:
            raise cancelled

    def cancel_all(self) -> None:
        for scope in self._roots:
            scope.cancel()


class _CancelAll(Protocol):
    def cancel_all(self) -> None: ...


class _Cancelling:
    """A nursery's cancel scope: cancelling it cancels the root scope of every task of
    the nursery, now and to come."""

    __slots__ = ("_nursery", "cancel_called")

    def __init__(self, nursery: _CancelAll) -> None:
        self._nursery = nursery
        self.cancel_called = False

    def cancel(self) -> None:
        if not self.cancel_called:
            self.cancel_called = True
            self._nursery.cancel_all()


class Nursery(_Starting):
    """The engine's nurseries: asyncio tasks of their own, each in a root cancel scope,
    waited for on exit; and the hand-offs (``start_from``) it waits for as it would for
    starter tasks, without them (see the design notes)."""

    __slots__ = ("_children", "_failures", "_handing", "_waiter", "cancel_scope")

    def __init__(self) -> None:
        super().__init__()
        # Its tasks sit in the anyio scope its host is in now, once moved.
        self.host = _scope_of(current_task())
        # Its tasks, with their root scopes; the hand-offs not yet settled.
        self._children: dict[asyncio.Task[Any], _anyio_asyncio.CancelScope] = {}
        self._handing: dict[_TaskStatus, asyncio.Task[Any]] = {}
        self._failures: list[BaseException] = []
        self._waiter: asyncio.Future[None] | None = None
        self.cancel_scope = _Cancelling(self)

    def _spawn(
        self, scope: _anyio_asyncio.CancelScope, body: Coroutine[Any, Any, None], name: str
    ) -> asyncio.Task[Any]:
        if self.cancel_scope.cancel_called:
            scope.cancel()
        task = asyncio.get_running_loop().create_task(body, name=name)
        self._children[task] = scope
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        del self._children[task]
        if not task.cancelled():
            exc = task.exception()
            if exc is not None:
                self._fail(exc)
        self._settled()

    def _fail(self, exc: BaseException) -> None:
        self._failures.append(exc)
        self.cancel_scope.cancel()  # as Trio's nursery: the others are cancelled

    def _settled(self) -> None:
        if not (self._children or self._handing):
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def hand_off(
        self,
        nursery: Nursery,
        fn: Callable[..., Awaitable[object]],
        args: tuple[object, ...],
        name: str,
    ) -> None:
        """``start_from``: start ``fn`` in ``nursery`` as a starter task here would."""
        scope = _Scope()
        status = _TaskStatus(nursery, scope)
        body = nursery._run_started(status, fn, args)
        task = status.task = nursery._spawn(scope, body, name)
        self._handing[status] = task
        status.future.add_done_callback(functools.partial(self._handed, status))
        if self.cancel_scope.cancel_called:
            self._abandon(status)

    def _handed(self, status: _TaskStatus, future: asyncio.Future[None]) -> None:
        """A hand-off's start settled: started, failed before it, or abandoned (then it
        settles once its task has ended, as its starter would wait)."""
        task = self._handing[status]
        if future.cancelled() and not task.done():
            task.add_done_callback(lambda _: self._handed(status, future))
            return
        del self._handing[status]
        if not future.cancelled():
            exc = future.exception()
            if exc is not None:
                self._fail(exc)  # raised by start(): the starter's failure
        self._settled()

    def _abandon(self, status: _TaskStatus) -> None:
        """Cancel a hand-off not moved (as its starter's cancellation would): one not yet
        started, or one that started too late, not moved, and still runs under its
        starter, as Trio leaves it."""
        future = status.future
        if future.cancel() or future.cancelled():
            status.scope.cancel()

    def pass_on_cancellation(self) -> None:
        # An anyio scope around the nursery reaches the moved tasks by itself (``host``);
        # a native cancellation of the host reaches the host alone.
        if _natively_cancelled(current_task()):
            for scope in self._moved.values():
                scope.cancel()

    def cancel_all(self) -> None:
        for scope in self._children.values():
            scope.cancel()
        for status in list(self._handing):
            self._abandon(status)

    async def wait(self) -> BaseException | None:
        """Wait for every task and hand-off; a cancellation of the host is passed on to
        them and the wait goes on.  The first such cancellation is returned."""
        caught: BaseException | None = None
        while self._children or self._handing:
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                if caught is None:
                    await waiter
                else:
                    with _Scope(shield=True):  # (anyio would deliver it again and again)
                        await waiter
            except asyncio.CancelledError as exc:
                caught = caught or exc
                self.cancel_all()
        return caught


def _natively_cancelled(task: asyncio.Task[Any]) -> bool:
    """Whether a native ``Task.cancel`` is pending on ``task``: cancellation requests
    beyond those of anyio's scopes (which anyio takes back as they exit)."""
    scope: Any = _scope_of(task)
    by_anyio = 0
    while scope is not None and scope._host_task is task:
        by_anyio += scope._pending_uncancellations or 0
        scope = scope._parent_scope
    return task.cancelling() > by_anyio


# ---- anyio's internals: what its own TaskGroup.start uses (the extra pins anyio < 5) ---

_internals: Any = _anyio_asyncio


def _scope_of(task: asyncio.Task[Any]) -> _anyio_asyncio.CancelScope | None:
    """The anyio scope ``task`` is in now, if any."""
    state = _internals._task_states.get(task)
    return None if state is None else cast(_anyio_asyncio.CancelScope | None, state.cancel_scope)


def _reparent(scope: _anyio_asyncio.CancelScope, parent: _anyio_asyncio.CancelScope) -> None:
    """Move ``scope`` (active, a task's root) under ``parent``, in another task."""
    cast(Any, scope)._reparent(parent)


def _forget(scope: _anyio_asyncio.CancelScope, task: asyncio.Task[Any]) -> None:
    """``task`` has ended: ``scope`` (another task's) no longer delivers to it."""
    cast(Any, scope)._tasks.discard(task)


def start_from(
    entering: object,
    nursery: object,
    fn: Callable[..., Awaitable[object]],
    /,
    *args: object,
    name: str,
    starter_name: str,
) -> None:
    """Start ``fn(*args)`` in ``nursery`` with the hand-off of ``start``, cancelled by
    ``entering`` until it has started: as a starter task in ``entering`` would, without
    one (see the design notes)."""
    cast(Nursery, entering).hand_off(cast(Nursery, nursery), fn, args, name)


def pass_on_cancellation(nursery: object) -> None:
    """The caller is cancelled: so are the nursery's tasks once their shields are lifted.

    A cancellation of the caller (an anyio scope's, or a native ``Task.cancel``) reaches
    the caller alone: the tasks of the engine's nurseries sit in root scopes of their
    own.  Cancel them.  (A user's task group, ``start_context``'s, is not the caller's:
    its own scope governs its tasks, as on Trio.)
    """
    cast(_Starting, nursery).pass_on_cancellation()


def nursery_of(given: object) -> _GroupNursery | _TaskGroupNursery:
    """The nursery a user passed (``start_context``): an anyio task group, or an
    ``asyncio.TaskGroup`` (whose tasks are guardians: ``_TaskGroupNursery``)."""
    if isinstance(given, anyio.abc.TaskGroup):
        return _GroupNursery(given)
    if isinstance(given, asyncio.TaskGroup):
        return _TaskGroupNursery(given)
    raise TypeError(
        "start_context() takes an anyio task group or an asyncio.TaskGroup under asyncio, "
        f"not {type(given).__name__}"
    )


def grouped(cancellation: BaseException) -> bool:
    """An anyio scope's cancellation goes into the group of failures (the scope takes it
    out, as Trio's do); a native one (``Task.cancel``: ``asyncio.timeout``,
    ``asyncio.wait_for``) does not, as in ``asyncio.TaskGroup``: nothing would take it out
    of a group, and the task stays cancelled (``Task.cancelling()``) for what cancelled
    it to count."""
    message = cancellation.args[0] if cancellation.args else None
    return isinstance(message, str) and message.startswith(_ANYIO_MESSAGE)


class _Awaitable(Protocol):
    """An event, as the interface passes it (``_runtime.Event``)."""

    def is_set(self) -> bool: ...
    def wait(self) -> Awaitable[object]: ...


async def wait_shielded(event: _Awaitable, deadline: float = math.inf) -> BaseException | None:
    """Wait for ``event``, shielded from anyio's scopes, until ``deadline``; a native
    cancellation, which no shield stops, is caught and the wait goes on: the first is
    returned, for the caller to act on (the task stays cancelled, ``Task.cancelling()``)."""
    first: BaseException | None = None
    with _Scope(shield=True, deadline=deadline) as scope:
        while not event.is_set():
            caught = await _wait_once(event)
            if scope.cancel_called:  # the deadline (its own delivery, caught here)
                break
            first = first or caught
    return first


async def _wait_once(event: _Awaitable) -> BaseException | None:
    try:
        await event.wait()
    except asyncio.CancelledError as exc:
        return exc
    return None


def task_failure(exc: BaseException) -> BaseException:
    """What a task raises to fail with ``exc``, for its task group to collect: a
    ``KeyboardInterrupt`` or a ``SystemExit`` in a group of one, since asyncio lets those
    two, raised bare by a task, out of the event loop itself."""
    if isinstance(exc, KeyboardInterrupt | SystemExit):
        return BaseExceptionGroup(f"{type(exc).__name__} in a holder task", [exc])
    return exc


def moved(task: Any, nursery: object) -> bool:
    """Whether ``started()`` moved ``task`` into ``nursery`` (see the design notes)."""
    return task in cast(_Starting, nursery)._moved  # pyright: ignore[reportPrivateUsage]


async def _wait_for(status: _TaskStatus) -> None:
    """Wait, whatever cancels the caller meanwhile, for the task of ``status`` to end."""
    with _Scope(shield=True):
        while status.task is None or not status.task.done():
            await _step(status.task)


async def _step(task: asyncio.Task[Any] | None) -> None:
    """Wait a little for ``task`` (or for it to begin); a cancellation only ends the wait."""
    with contextlib.suppress(asyncio.CancelledError):
        if task is None:
            await asyncio.sleep(0)  # (not yet running)
        else:
            await asyncio.wait([task])


class _NurseryManager:
    __slots__ = ("_nursery",)

    def __init__(self) -> None:
        self._nursery = Nursery()

    async def __aenter__(self) -> Nursery:
        return self._nursery

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        raising = sys.exception()  # what the host raises through us, if anything
        nursery = self._nursery
        if exc is not None:
            nursery.cancel_scope.cancel()
        cancelled = await nursery.wait()
        if nursery._failures:  # pyright: ignore[reportPrivateUsage]
            found = nursery._failures  # pyright: ignore[reportPrivateUsage]
            raise BaseExceptionGroup("unhandled errors in a nursery", found)
        if cancelled is None or exc is not None:
            return False
        if not grouped(cancelled) and raising is None:
            raise cancelled  # a native cancellation of its host: met here
        # An anyio scope's: as Trio's nurseries (gh-1457), the exit raises none; anyio
        # delivers it again at the next checkpoint while its scope lasts.  A native one
        # while the host raises something (a failure): that goes on, as in
        # ``asyncio.TaskGroup``, and the host stays cancelled (``cancelling()``).
        return False


def open_nursery() -> _NurseryManager:
    return _NurseryManager()


# ---- threads ---------------------------------------------------------------------------


def thread_limiter() -> anyio.CapacityLimiter:
    """The loop's default limiter of threads (``anyio.to_thread``'s: 40 tokens)."""
    return anyio.to_thread.current_default_thread_limiter()


def threadsafe_caller() -> Callable[[Callable[[], object]], None]:
    """A function that any thread calls to run ``fn()`` soon in this loop; once the loop
    is closed, it does nothing (``loop.call_soon_threadsafe``)."""
    loop = asyncio.get_running_loop()

    def call_soon(fn: Callable[[], object]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed
            loop.call_soon_threadsafe(fn)

    return call_soon
