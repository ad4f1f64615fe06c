"""``start_context``: one context manager held open by a task of its own, behind a handle.

Design notes:

* The holder is started with ``nursery.start`` in the caller's nursery, exactly as a
  stage of ``parallel_with`` starts its holders, so ``__aenter__`` and ``__aexit__`` run in
  that one task whoever asks for the exit.  Driving ``__aenter__``/``__aexit__`` by hand from
  different tasks corrupts Trio's cancel-scope stack.
* Cancelling the nursery exits the context manager, whose ``__aexit__`` sees the
  cancellation.  The holder is shielded while open all the same, so that a cancellation
  reaching it can only be the context manager's own (a failure while open); a watcher
  task beside it takes the nursery's cancellation and passes it on (see ``Watcher``).
* A failure is raised exactly once: to the ``aexit``/``aclose`` caller that asked for the
  exit, or, when nobody asked (it failed while open, or while exiting because the nursery
  was cancelled), into the nursery from the holder task, as structured concurrency wants.
"""

from __future__ import annotations

import enum
import math
from contextlib import AbstractAsyncContextManager
from typing import Any, Generic, TypeVar, final

from . import _runtime
from ._engine._flight import Flight
from ._engine._holder import Holder
from ._engine._input import check_observer, holder_for
from ._engine._lifecycle import Life
from ._engine._options import Options
from ._engine._stage import Stage
from ._errors import NATIVE, Delivery, make_group, records_of, summary
from ._timeline import Observer

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class ContextState(enum.Enum):
    """Where a :class:`ContextHandle`'s context manager is in its life.

    Example::

        if handle.state is ContextState.OPEN:
            await handle.aclose()
    """

    ENTERING = "entering"
    OPEN = "open"
    EXITING = "exiting"
    CLOSED = "closed"
    FAILED = "failed"


WATCHER_TASK_NAME = "trio_parallel_cm handle watcher"


@final
class Watcher:
    """A handle's watcher task: tells its holder that a cancellation came from outside.

    A handle's holder is shielded while open, like every holder, so that only the context
    manager's own scopes can cancel it: a cancellation that reaches it is then the context
    manager failing or ending by itself.  Its nursery's cancellation (or an outer scope's)
    reaches this unshielded task instead, whose abort function marks it at once, before
    any other task runs, and which then lifts the holder's shield so that ``__aexit__``
    meets that cancellation natively.  Handle-only: ``parallel_with`` and the other faces
    own their holders' cancellation themselves.
    """

    __slots__ = ("from_outside", "holder", "task")

    def __init__(self, holder: Holder) -> None:
        self.holder = holder
        self.task: object = None
        # Its nursery was cancelled while the holder was still open: read by the holder.
        self.from_outside = False

    async def run(self) -> None:
        holder = self.holder
        if holder.state is Life.CLOSED or holder.state is Life.NOT_ENTERED:
            return
        rt = holder.runtime
        self.task = rt.current_task()
        try:
            await rt.park(self._abort)
        except rt.Cancelled:
            # Its own Cancelled, at the top of its own task: it has passed it on.
            if holder.state is Life.OPEN or holder.state is Life.FAILING:
                holder.unshield()
            elif holder.state is Life.EXITING and holder.scope.deadline == math.inf:
                holder.unshield()  # unless an exit timeout shields its budget

    def _abort(self, raise_cancel: object) -> Any:
        # Only if it is still open: a context manager that failed first failed while open.
        if self.holder.state is Life.OPEN:
            self.from_outside = True
        self.task = None
        return self.holder.runtime.ABORTED

    def stop(self) -> None:
        """The holder has finished: let the watcher task end.  Holder's task."""
        if self.task is not None:
            task, self.task = self.task, None
            self.holder.runtime.unpark(task)


@final
class ContextHandle(Generic[T_co]):
    """A context manager held open by its own task; returned by :func:`start_context`.

    Any task may close it; the holder task runs ``__aexit__``.

    Example::

        async with trio.open_nursery() as nursery:
            handle = await start_context(nursery, open_db())
            assert handle.state is ContextState.OPEN
            nursery.start_soon(serve, handle.value)
            ...
            await handle.aclose()  # from any task: the holder task runs __aexit__
    """

    __slots__ = ("_claimed", "_closed", "_holder", "_result", "_stage")

    def __init__(self, holder: Holder, runtime: _runtime.Runtime) -> None:
        self._holder = holder
        self._stage: Stage
        self._claimed = False
        self._closed = runtime.Event()
        self._result: bool | BaseException | None = None

    def __repr__(self) -> str:
        return f"<ContextHandle {self.name} {self.state.value}>"

    @property
    def value(self) -> T_co:
        """What the context manager's ``__aenter__`` returned."""
        return self._holder.value  # type: ignore[no-any-return]

    @property
    def name(self) -> str:
        """The ``name`` given to :func:`start_context`, else as in notes and reports."""
        return self._holder.name

    @property
    def state(self) -> ContextState:
        """``entering``, ``open``, ``exiting``, ``closed`` or ``failed``."""
        holder = self._holder
        if holder.state is Life.ENTERING:
            return ContextState.ENTERING
        if holder.state is Life.OPEN:
            return ContextState.OPEN
        if holder.state is Life.CLOSED or holder.state is Life.NOT_ENTERED:
            return ContextState.FAILED if holder.failure is not None else ContextState.CLOSED
        return ContextState.EXITING

    async def aexit(self, exc: BaseException | None = None) -> bool:
        """Exit the context manager as an ``async with`` block ending with ``exc`` would.

        ``exc`` reaches ``__aexit__`` as ``(type(exc), exc, exc.__traceback__)``; the
        result says whether ``__aexit__`` suppressed it.  Exiting again, or from several
        tasks at once, waits for the one exit and gives its result again.  This waits for
        the exit to finish even if the calling task is cancelled (then its ``Cancelled``
        follows); bound it with ``exit_timeout``.

        Raises:
            BaseExceptionGroup: ``__aexit__`` failed (annotated, as by ``parallel_with``).
            RuntimeError: the context manager already failed while open; its failure
                was raised in its nursery.
        """
        holder = self._holder
        caught: BaseException | None = None
        if holder.state is Life.OPEN:
            self._claimed = True
            flight = Flight.of([] if exc is None else [exc])
            caught = await self._stage.exit(
                flight, Delivery(exc, None if exc is None else exc.__traceback__)
            )
        elif not self._closed.is_set():
            with self._stage.runtime.CancelScope(shield=True):
                await self._closed.wait()
        result = self._result
        if isinstance(result, BaseException):
            raise result
        if caught is not None:
            raise caught
        return bool(result)

    async def aclose(self) -> None:
        """Exit the context manager with no exception (see :meth:`aexit`)."""
        await self.aexit()

    # ---- stage owner callbacks ----------------------------------------------------------

    def failing(self, holder: Holder) -> None:
        """Nothing encloses it: it exits at once, and its failure is raised in the
        nursery (see holder_done)."""
        if not holder.released:
            holder.release(NATIVE)

    def holder_done(self, holder: Holder) -> BaseException | None:
        failure = holder.failure
        unclaimed: BaseException | None = None
        if failure is None:
            self._result = holder.suppressed
        elif self._claimed:
            message = summary(1, [holder.phase], body_failed=False)
            self._result = make_group(message, [failure], records_of([failure]), 1)
        elif holder.state is not Life.NOT_ENTERED and not self._stage.entering:
            # Failed while open, or while exiting a cancelled nursery: nobody asked.
            # (Not while ``start_context`` is still entering: it raises the failure
            # itself, and no handle was returned.)
            self._result = RuntimeError(
                f"{holder.name} already failed while {holder.phase}; "
                "its failure was raised in its nursery"
            )
            unclaimed = failure
        self._closed.set()
        return unclaimed


async def start_context(
    nursery: _runtime.UserNursery,
    cm: AbstractAsyncContextManager[T, Any],
    *,
    name: str | None = None,
    enter_timeout: float | None = None,
    exit_timeout: float | None = None,
    observer: Observer | None = None,
) -> ContextHandle[T]:
    """Enter ``cm`` in a new task in ``nursery`` and return a handle once it has entered.

    The cancellation-correct way to hold a context manager open beyond one ``async with``
    block: ``__aenter__`` and ``__aexit__`` both run in the holder task (started with
    ``nursery.start``), so its cancel scopes and nurseries stay nested whoever closes it.

    * An enter failure is raised from ``start_context`` itself (one group, with the same
      note as in :func:`parallel_with`), and nothing is left in ``nursery``.
    * ``await handle.aclose()`` (or ``handle.aexit(exc)``) from any task makes the holder
      run ``__aexit__``; a failure there is raised to that caller.
    * If the context manager fails while open, the failure surfaces in ``nursery``
      (which is cancelled), and a later ``aclose()`` says it already failed.
    * If ``nursery`` is cancelled, the context manager exits, and its ``__aexit__`` sees
      the cancellation.

    Args:
        nursery: where the holder task lives: a Trio nursery or an anyio task group;
            on asyncio also an ``asyncio.TaskGroup`` (it holds a guardian task that waits
            for the holder: its ``Task.cancel`` reaches the holder as a cancellation
            from outside, shields respected, as a nursery's would).
        cm: an async context manager.
        name: the name used in notes and reports (default: as in :func:`parallel_with`).
        enter_timeout: seconds ``__aenter__`` may take; then it is cancelled and fails
            with ``trio.TooSlowError`` (on asyncio ``TimeoutError``).
        exit_timeout: seconds ``__aexit__`` may take, shielded from cancellation; then
            it is cancelled and fails with ``trio.TooSlowError`` (on asyncio ``TimeoutError``).
        observer: called with a :class:`PhaseEvent` at every phase change.

    Example::

        async with trio.open_nursery() as nursery:
            handle = await start_context(nursery, open_connection(host))
            conn = handle.value
            ...
            await handle.aclose()  # from any task: the owning task runs __aexit__
    """
    options = Options(enter_timeout=enter_timeout, exit_timeout=exit_timeout)
    check_observer(observer)
    runtime = _runtime.current("start_context")
    where = runtime.nursery_of(nursery)
    holder = holder_for(cm, "the cm argument of start_context()", options, key=name)
    watcher = holder.watcher = Watcher(holder)
    handle: ContextHandle[T] = ContextHandle(holder, runtime)
    stage = Stage(
        [holder],
        where,
        handle,
        runtime,
        started_at=runtime.current_time(),
        observer=observer,
        options=options,
    )
    handle._stage = stage  # pyright: ignore[reportPrivateUsage]
    await stage.enter()
    # Entered and parked: from now on its nursery's cancellation must reach it.
    where.start_soon(watcher.run, name=WATCHER_TASK_NAME)
    return handle
