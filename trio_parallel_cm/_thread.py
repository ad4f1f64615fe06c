"""``in_thread``: a synchronous context manager held by a thread of its own.

Design notes:

* One thread per adapter, started as it enters and ended after its exit.  The thread
  makes the context manager (``factory(*args, **kwargs)``), enters it, runs each ``run``
  call and exits it: one call at a time, in order (``_serve``).  A resource bound to the
  thread that made it (``sqlite3``'s ``check_same_thread``, a thread-local session, a lock
  that only its owner releases) works.  The thread is a daemon, as Trio's and anyio's
  worker threads are: a process does not wait for it.
* The task waits for a call on an event of its runtime, which the thread sets through
  ``threadsafe_caller``: the thread touches nothing else of the loop.  Each call runs in a
  copy of the caller's context (``thread_context``), as ``to_thread`` calls do.
* A blocking call cannot be interrupted (docs/threads.rst says what users see):

  * the enter is waited for whatever happens; if a cancellation (or a
    ``KeyboardInterrupt``) came meanwhile, ``__exit__`` runs at once, in the thread, with
    it, is waited for, and then it goes on (``_close_at_once``): nothing is left open.
  * ``run`` is waited for likewise, as ``to_thread.run_sync`` is by default; a
    cancellation meanwhile meets the caller's next checkpoint (a native asyncio one,
    delivered once, is raised as the call returns).
  * the exit is waited for whatever cancels the task (an outer scope, ``Task.cancel``,
    Ctrl+C), so that a block that is done has closed what it held, as Trio's ``aclose``
    rule asks of an async resource.  Only the block's own exit budget (``exit_timeout``,
    ``shutdown_timeout``: ``_engine._holder.EXIT_DEADLINE``, set in the holder task) ends
    the wait: the block reports the exit too slow, and the thread finishes ``__exit__``
    on its own.  A failure of it then goes to ``threading.excepthook``, as any thread's.
    The last outcome changes hands under a lock (``_Call``): the task takes it or the
    thread reports it, never both, never neither.

* Threads are bounded where they are made: an enter holds a token of the runtime's
  default thread limiter (the one ``to_thread`` uses) while its thread makes and enters
  the context manager, and gives it back once that returns.  A held resource keeps its
  thread but no token, so a block that holds more of them than there are tokens does not
  deadlock: the enters wait their turn and each ends by itself.  ``run`` and the exit take
  no token: a teardown never waits behind start-ups.
* Chaining: the thread handles no exception as it runs ``__exit__``, so an exception that
  ``__exit__`` raises is chained as the task raises it (``_raise_from_thread``): the first
  exception of its chain gets what ``with`` would have been handling as its context.
"""

from __future__ import annotations

import math
import queue
import sys
import threading
from collections.abc import Callable, Coroutine
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, Generic, NoReturn, ParamSpec, TypeVar, TypeVarTuple, final

import outcome

from . import _runtime
from ._engine._holder import EXIT_DEADLINE
from ._engine._lifecycle import Life, check_transition
from ._names import factory_name

P = ParamSpec("P")
T = TypeVar("T")
R = TypeVar("R")
Ts = TypeVarTuple("Ts")
_Result = outcome.Value[Any] | outcome.Error


@final
class _Call:
    """One call for the thread; the task waits for it on ``done`` (see the design notes)."""

    __slots__ = ("abandoned", "args", "context", "done", "fn", "lock", "result", "wake")

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        runtime: _runtime.Runtime,
        wake: Callable[[Callable[[], object]], None],
        lock: threading.Lock,
    ) -> None:
        self.fn, self.args = fn, args
        self.context = _runtime.thread_context()
        self.done = runtime.Event()
        self.wake, self.lock = wake, lock
        # Written under ``lock``: by the thread (``result``) and the task (``abandoned``).
        self.result: _Result | None = None
        self.abandoned = False

    def run(self) -> BaseException | None:
        """In the thread: make the call and tell the task; the failure of a call the task
        no longer waits for, to report."""
        result: _Result = self.context.run(outcome.capture, self.fn, *self.args)
        with self.lock:
            self.result = result
            if self.abandoned:
                return result.error if type(result) is outcome.Error else None
        self.wake(self.done.set)
        return None

    def abandon(self) -> _Result | None:
        """In the task, which stops waiting: the outcome if the call has ended (the task
        takes it), else None (the thread will report a failure)."""
        with self.lock:
            if self.result is None:
                self.abandoned = True
            return self.result


def _serve(calls: queue.SimpleQueue[_Call | None]) -> None:
    """The thread: run the calls in order until told to stop.  A failure nobody waits for
    any more is raised here, for ``threading.excepthook``."""
    while (call := calls.get()) is not None:
        late = call.run()
        if late is not None:
            raise late


def _make_and_enter(
    factory: Callable[..., object], args: tuple[Any, ...], kwargs: dict[str, Any], name: str
) -> tuple[object, Callable[..., Any], object]:
    """In the thread: the context manager, its ``__exit__``, what ``__enter__`` returned
    (looked up on the type, as ``with`` does)."""
    cm = factory(*args, **kwargs)
    cls: Any = type(cm)
    missed = [method for method in ("__enter__", "__exit__") if not hasattr(cls, method)]
    if missed:
        if isinstance(cm, Coroutine):
            cm.close()
        raise TypeError(
            f"{name}: the factory returned {cm!r}, which does not support the context "
            f"manager protocol (missed {' and '.join(missed)})"
            + (
                ": it is an async context manager; use it without in_thread()"
                if hasattr(cls, "__aenter__")
                else ""
            )
        )
    return cm, cls.__exit__, cls.__enter__(cm)


def _unwrap(result: _Result | None, handled: BaseException | None) -> Any:
    """What a call returned, or its exception raised (``_raise_from_thread``)."""
    assert result is not None
    if type(result) is outcome.Error:
        _raise_from_thread(result.error, handled)
    assert type(result) is outcome.Value
    return result.value


def _chain(error: BaseException, handled: BaseException | None) -> None:
    """Chain ``error``, raised in a thread where nothing was handled, as if ``handled`` had
    been handled there: the first exception of its chain gets it as its context."""
    if handled is None:
        return
    first, seen = error, {id(error)}
    while first is not handled:
        context = first.__context__
        if context is None:
            first.__context__ = handled
            return
        if id(context) in seen:  # a cycle: leave it as it is
            return
        seen.add(id(context))
        first = context


def _raise_from_thread(error: BaseException, handled: BaseException | None) -> NoReturn:
    """Raise ``error``, raised in the thread, chained as ``with`` would have chained it
    while ``handled`` was handled; the raise here keeps that chain."""
    _chain(error, handled)
    context = error.__context__
    try:
        raise error  # noqa: TRY301  # the point: to put its context back as it goes
    except BaseException:
        error.__context__ = context  # (raising it here made it the handled one's)
        raise


@final
class ThreadContext(Generic[T]):
    """The async context manager returned by :func:`in_thread`: its thread holds the
    synchronous context manager from the enter to the exit, and :meth:`run` makes calls in
    that thread while it is held.  Enter it once; make a new one for a new block."""

    __slots__ = (
        "_args",
        "_calls",
        "_cm",
        "_exit",
        "_factory",
        "_kwargs",
        "_life",
        "_lock",
        "_rt",
        "_tpcm_name",
        "_wake",
    )

    def __init__(
        self, factory: Callable[..., object], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        self._factory, self._args, self._kwargs = factory, args, kwargs
        # How notes, reports and the thread name it (``_names.name_of`` reads it).
        self._tpcm_name = f"in_thread({factory_name(factory)})"
        self._life: Life | None = None  # None: not entered yet
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        # Once entered: the context manager (made in the thread), its ``__exit__``.
        self._cm: object = None
        self._exit: Callable[..., Any] | None = None
        self._rt: _runtime.Runtime | None = None
        self._wake: Callable[[Callable[[], object]], None] | None = None

    def __repr__(self) -> str:
        return f"<{self._tpcm_name} at {id(self):#x}>"

    def _become(self, life: Life) -> None:
        if self._life is not None:
            check_transition(self._life, life)
        self._life = life

    def _submit(self, fn: Callable[..., Any], *args: Any) -> _Call:
        assert self._rt is not None
        assert self._wake is not None
        call = _Call(fn, args, self._rt, self._wake, self._lock)
        self._calls.put(call)
        return call

    @_runtime.ki_protected
    async def __aenter__(self) -> T:
        """Start the thread; make and enter the context manager there (see ``in_thread``)."""
        if self._life is not None:
            raise RuntimeError(f"{self!r} was already entered; make a new one for a new block")
        handled = sys.exception()
        rt = self._rt = _runtime.current("in_thread()")
        self._wake = rt.threadsafe_caller()
        limiter = rt.thread_limiter()
        await limiter.acquire_on_behalf_of(self)
        self._become(Life.ENTERING)
        try:
            threading.Thread(
                target=_serve, args=(self._calls,), name=self._tpcm_name, daemon=True
            ).start()
            entering = self._submit(
                _make_and_enter, self._factory, self._args, self._kwargs, self._tpcm_name
            )
            interruption = await self._wait(entering)
        finally:
            limiter.release_on_behalf_of(self)
        if type(entering.result) is outcome.Error:
            self._calls.put(None)
            self._become(Life.NOT_ENTERED)
        self._cm, self._exit, value = _unwrap(entering.result, handled)
        if interruption is None and rt.is_cancelled():
            interruption = await self._cancellation()
        if interruption is not None:
            await self._close_at_once(interruption)
        self._become(Life.OPEN)
        return value  # type: ignore[no-any-return]

    async def _wait(self, call: _Call, deadline: float | None = None) -> BaseException | None:
        """Wait for ``call`` whatever happens, until ``deadline`` if given (then ``call``
        may not be done); what interrupted the wait first, if anything (a native asyncio
        cancellation, a ``KeyboardInterrupt``), for the caller to raise."""
        rt = self._rt
        assert rt is not None
        until = math.inf if deadline is None else deadline
        first: BaseException | None = None
        while not call.done.is_set() and (deadline is None or rt.current_time() < until):
            try:
                late = await rt.wait_shielded(call.done, until)
            except BaseException as exc:  # a KeyboardInterrupt, in Trio's main task
                late = exc
            first = first or late
        return first

    async def _cancellation(self) -> BaseException | None:
        """The cancellation of the task, met now (None if it did not land)."""
        assert self._rt is not None
        try:
            await self._rt.checkpoint_if_cancelled()
        except BaseException as exc:
            return exc
        return None

    async def _close_at_once(self, interruption: BaseException) -> NoReturn:
        """Entered while cancelled (or interrupted): exit in the thread with that, wait for
        it, and raise it (or what ``__exit__`` raised, chained to it)."""
        assert self._exit is not None
        exiting = self._submit(
            self._exit, self._cm, type(interruption), interruption, interruption.__traceback__
        )
        self._calls.put(None)
        await self._wait(exiting)
        self._become(Life.NOT_ENTERED)
        _unwrap(exiting.result, interruption)
        raise interruption

    @_runtime.ki_protected
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        """Exit in the thread with what the block delivers, then end the thread."""
        if self._life is not Life.OPEN:
            raise RuntimeError(f"{self!r} is not held: it cannot exit")
        rt = self._rt
        assert rt is not None
        assert self._exit is not None
        self._become(Life.EXITING)
        exiting = self._submit(self._exit, self._cm, exc_type, exc, tb)
        self._calls.put(None)
        interruption = await self._wait(exiting, EXIT_DEADLINE.get())
        self._become(Life.CLOSED)
        result = exiting.result if exiting.done.is_set() else exiting.abandon()
        if result is None:
            # Its exit budget ran out: the thread finishes on its own.  The budget's
            # cancellation, met here, tells the block, which reports the exit too slow.
            if interruption is not None:
                raise interruption
            await rt.checkpoint_if_cancelled()
            return False
        if interruption is not None and not (
            isinstance(interruption, rt.Cancelled) and type(result) is outcome.Error
        ):
            raise interruption  # (an exit's failure comes before a cancellation)
        return bool(_unwrap(result, exc))

    async def run(self, fn: Callable[[*Ts], R], *args: *Ts) -> R:
        """Call ``fn(*args)`` in the thread that holds the context manager; its result.

        ``fn``'s exception is raised here, with its traceback.  The call cannot be
        interrupted: it is waited for, and a cancellation meanwhile is met at the next
        checkpoint, as with ``trio.to_thread.run_sync`` (on asyncio, a native
        ``Task.cancel`` that comes meanwhile is raised as the call returns).  Calls run one
        at a time, in the order made.  Raises ``RuntimeError`` if the context manager is not
        held (before it has entered, or once it exits).
        """
        if self._life is not Life.OPEN:
            state = "not entered yet" if self._life in (None, Life.ENTERING) else "closed"
            raise RuntimeError(
                f"{self!r} is {state}: run() works while it is held, between its enter and its exit"
            )
        handled = sys.exception()
        call = self._submit(fn, *args)
        interruption = await self._wait(call)
        if interruption is not None:
            raise interruption
        return _unwrap(call.result, handled)  # type: ignore[no-any-return]


def in_thread(
    factory: Callable[P, AbstractContextManager[T]], /, *args: P.args, **kwargs: P.kwargs
) -> ThreadContext[T]:
    """A synchronous context manager held by a thread of its own, as an async one.

    ``async with in_thread(factory, *args, **kwargs) as value:`` starts one thread, which
    calls ``factory(*args, **kwargs)`` (where a blocking connect often is) and enters what
    it returns; ``value`` is what ``__enter__`` returned.  The same thread later runs
    ``__exit__`` with the exception the block delivers (a true return value suppresses it,
    as in ``with``), and then ends.  While it is held, ``await cm.run(fn, *args)`` runs a
    call in that thread: a resource bound to the thread that made it (a ``sqlite3``
    connection, a thread-local session, a lock) is used from async code this way.  It
    works in plain ``async with``, in an ``AsyncExitStack`` and in every face of this
    library, on Trio and on asyncio; in :func:`parallel_with`, ten of them open in about
    the time of the slowest.

    A blocking call cannot be interrupted:

    * a cancellation (or timeout) that comes while the thread enters is waited out: then
      ``__exit__`` runs at once, in the thread, with that cancellation, and it goes on.
      Nothing is left open.
    * ``run`` calls are waited for; a cancellation meanwhile meets the next checkpoint.
    * the exit is waited for, whatever cancels the task (an outer scope,
      ``Task.cancel``, Ctrl+C): a block that is done has closed it.  Only the block's own
      exit budget (``exit_timeout``, ``shutdown_timeout``) ends the wait: the block
      reports the exit as too slow, and the thread finishes ``__exit__`` on its own.  A
      failure it meets then goes to :func:`threading.excepthook`.  In a plain
      ``async with``, nothing ends the wait.

    The enters hold a token of the default thread limiter of ``trio.to_thread`` (of
    ``anyio.to_thread`` on asyncio: 40 tokens unless changed) while their thread makes and
    enters the context manager; a held context manager keeps its thread but no token, and
    ``run`` calls and exits take none.  The thread is a daemon named after the factory:
    ``in_thread(connect)``.

    Example::

        @contextlib.contextmanager
        def open_sqlite(path):  # commits or rolls back, then closes, in its thread
            with contextlib.closing(sqlite3.connect(path)) as conn, conn:
                yield conn

        db = in_thread(open_sqlite, path)
        async with parallel_with(db, open_cache()) as (conn, cache):
            await db.run(conn.execute, "insert into t values (?)", (1,))

    Raises:
        TypeError: at once, if ``factory`` is not callable.
    """
    given: object = factory  # (checked: the types say callable, a caller may not)
    if not callable(given):
        hint = ""
        if hasattr(type(given), "__enter__"):
            hint = (
                ": pass how to make the context manager, and its arguments, as in "
                "`in_thread(open_sqlite, path)`, so that the thread that enters it makes it"
            )
        raise TypeError(
            f"in_thread() takes a callable that returns a context manager, not {given!r}{hint}"
        )
    return ThreadContext(factory, args, kwargs)
