"""``parallel_with``: enter and exit async context managers concurrently.

Design notes:

* One stage (``_stage.py``) inside a nursery that this object opens in ``__aenter__`` and
  closes in ``__aexit__``, in the caller's task.  The body runs inside that nursery and
  inside a cancel scope of ours, which a context manager failing while open cancels.
* ``__aexit__`` first leaves the body's scope: what comes out is exactly what the body
  passes on to nested ``async with`` blocks (our own cancellation absorbed, a group split
  by Trio's rules).  That, or a failure of a context manager while open (first in time),
  is what every ``__aexit__`` receives.
* A body cancelled from outside is passed on "natively": each holder meets the same
  cancellation as its own ``Cancelled``.  A ``Cancelled`` is never moved between tasks.
* We follow Trio: failures always come out as one group; a pure cancellation is never
  wrapped, and is re-raised as the very exception the caller's scope is waiting for.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, Generic, TypeVar, final, overload

import trio

from ._errors import cancelled_part, is_cancellation, make_group, non_cancelled_part
from ._holder import Holder
from ._input import holders_for
from ._stage import Stage

T_co = TypeVar("T_co", covariant=True)
K = TypeVar("K")
V = TypeVar("V")
T1 = TypeVar("T1")
T2 = TypeVar("T2")
T3 = TypeVar("T3")
T4 = TypeVar("T4")
T5 = TypeVar("T5")
T6 = TypeVar("T6")
T7 = TypeVar("T7")
T8 = TypeVar("T8")


@final
class ParallelContext(Generic[T_co]):
    """The async context manager returned by :func:`parallel_with`.  Enter it once."""

    __slots__ = (
        "_body_running",
        "_body_scope",
        "_holders",
        "_keys",
        "_manager",
        "_open_failure",
        "_stage",
        "_used",
    )

    def __init__(self, holders: list[Holder], keys: list[object] | None) -> None:
        self._holders = holders
        self._keys = keys
        self._used = False
        self._body_running = False
        self._open_failure: BaseException | None = None
        self._manager: AbstractAsyncContextManager[trio.Nursery]
        self._stage: Stage
        self._body_scope: trio.CancelScope

    def __repr__(self) -> str:
        names = ", ".join(holder.name for holder in self._holders)
        return f"<parallel_with({names}) at {id(self):#x}>"

    @trio.lowlevel.enable_ki_protection
    async def __aenter__(self) -> T_co:
        if self._used:
            raise RuntimeError(
                "this parallel_with(...) object was already entered; "
                "call parallel_with() again for a new block"
            )
        self._used = True
        if not trio.lowlevel.in_trio_task():
            raise RuntimeError(
                "parallel_with() must be entered in a Trio task (inside trio.run); "
                "it relies on Trio's nurseries and cancel scopes"
            )
        # Entering is a checkpoint, even with nothing to enter.
        await trio.lowlevel.checkpoint_if_cancelled()
        manager = self._manager = trio.open_nursery()
        nursery = await manager.__aenter__()
        stage = self._stage = Stage(self._holders, nursery, self)
        try:
            await stage.enter()
        except BaseException:
            # Every holder has finished: the nursery closes at once.
            await manager.__aexit__(None, None, None)
            raise
        scope = self._body_scope = trio.CancelScope()
        if stage.ended_early:
            scope.cancel()
        scope.__enter__()
        self._body_running = True
        keys = self._keys
        if keys is None:
            return tuple([holder.value for holder in self._holders])  # type: ignore[return-value]
        return dict(zip(keys, [holder.value for holder in self._holders], strict=True))  # type: ignore[return-value]

    def ended_while_open(self, holder: Holder) -> None:
        """Stage callback: ``holder`` failed, or ended by itself, while the body ran."""
        if not self._body_running:
            return
        if holder.failure is not None and self._open_failure is None:
            self._open_failure = holder.failure
        self._body_scope.cancel()

    @trio.lowlevel.enable_ki_protection
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        self._body_running = False
        stage = self._stage
        remaining: BaseException | None
        try:
            remaining = None if self._body_scope.__exit__(exc_type, exc, tb) else exc
        except BaseException as new:  # the scope split a group: this is what is left
            remaining = new
        failure = self._open_failure
        native = False
        deliver: BaseException | None
        if failure is not None:
            deliver = failure
        elif remaining is None:
            deliver = None
        elif is_cancellation(remaining):
            deliver, native = None, True
        else:
            # A group mixing Cancelled with errors: the context managers get the errors.
            deliver = non_cancelled_part(remaining)
        caught = await stage.exit(deliver, native=native)
        await self._manager.__aexit__(None, None, None)

        body = remaining
        failures = stage.failures()
        if any(holder.suppressed for holder in stage.holders):
            if failure is not None:
                failures = [f for f in failures if f is not failure]
            elif body is not None:
                # Only what the context managers were given can be suppressed.
                body = None if native else cancelled_part(body)
        if caught is not None and isinstance(caught, trio.Cancelled):
            if body is None and not failures:
                raise caught
            caught = None
        if not failures and caught is None:
            if body is None:
                return exc is not None
            if is_cancellation(body):
                if body is exc:
                    return False
                raise body
        members: list[BaseException] = []
        if body is not None:
            members.append(body)
        if caught is not None:
            members.append(caught)
        members.extend(failures)
        group = make_group(stage.message(body_failed=body is not None), members)
        try:
            raise group
        finally:
            # The body's exception is a member, not the context of the group.
            group.__context__ = None
            del group


@overload
def parallel_with() -> ParallelContext[tuple[()]]: ...


@overload
def parallel_with(cm1: AbstractAsyncContextManager[T1, Any], /) -> ParallelContext[tuple[T1]]: ...


@overload
def parallel_with(
    cm1: AbstractAsyncContextManager[T1, Any], cm2: AbstractAsyncContextManager[T2, Any], /
) -> ParallelContext[tuple[T1, T2]]: ...


@overload
def parallel_with(
    cm1: AbstractAsyncContextManager[T1, Any],
    cm2: AbstractAsyncContextManager[T2, Any],
    cm3: AbstractAsyncContextManager[T3, Any],
    /,
) -> ParallelContext[tuple[T1, T2, T3]]: ...


@overload
def parallel_with(
    cm1: AbstractAsyncContextManager[T1, Any],
    cm2: AbstractAsyncContextManager[T2, Any],
    cm3: AbstractAsyncContextManager[T3, Any],
    cm4: AbstractAsyncContextManager[T4, Any],
    /,
) -> ParallelContext[tuple[T1, T2, T3, T4]]: ...


@overload
def parallel_with(
    cm1: AbstractAsyncContextManager[T1, Any],
    cm2: AbstractAsyncContextManager[T2, Any],
    cm3: AbstractAsyncContextManager[T3, Any],
    cm4: AbstractAsyncContextManager[T4, Any],
    cm5: AbstractAsyncContextManager[T5, Any],
    /,
) -> ParallelContext[tuple[T1, T2, T3, T4, T5]]: ...


@overload
def parallel_with(
    cm1: AbstractAsyncContextManager[T1, Any],
    cm2: AbstractAsyncContextManager[T2, Any],
    cm3: AbstractAsyncContextManager[T3, Any],
    cm4: AbstractAsyncContextManager[T4, Any],
    cm5: AbstractAsyncContextManager[T5, Any],
    cm6: AbstractAsyncContextManager[T6, Any],
    /,
) -> ParallelContext[tuple[T1, T2, T3, T4, T5, T6]]: ...


@overload
def parallel_with(
    cm1: AbstractAsyncContextManager[T1, Any],
    cm2: AbstractAsyncContextManager[T2, Any],
    cm3: AbstractAsyncContextManager[T3, Any],
    cm4: AbstractAsyncContextManager[T4, Any],
    cm5: AbstractAsyncContextManager[T5, Any],
    cm6: AbstractAsyncContextManager[T6, Any],
    cm7: AbstractAsyncContextManager[T7, Any],
    /,
) -> ParallelContext[tuple[T1, T2, T3, T4, T5, T6, T7]]: ...


@overload
def parallel_with(
    cm1: AbstractAsyncContextManager[T1, Any],
    cm2: AbstractAsyncContextManager[T2, Any],
    cm3: AbstractAsyncContextManager[T3, Any],
    cm4: AbstractAsyncContextManager[T4, Any],
    cm5: AbstractAsyncContextManager[T5, Any],
    cm6: AbstractAsyncContextManager[T6, Any],
    cm7: AbstractAsyncContextManager[T7, Any],
    cm8: AbstractAsyncContextManager[T8, Any],
    /,
) -> ParallelContext[tuple[T1, T2, T3, T4, T5, T6, T7, T8]]: ...


@overload
def parallel_with(
    cms: Mapping[K, AbstractAsyncContextManager[V, Any]], /
) -> ParallelContext[dict[K, V]]: ...


@overload
def parallel_with(
    cms: Mapping[K, AbstractAsyncContextManager[Any, Any]], /
) -> ParallelContext[dict[K, Any]]: ...


@overload
def parallel_with(
    *cms: AbstractAsyncContextManager[Any, Any],
) -> ParallelContext[tuple[Any, ...]]: ...


def parallel_with(*cms: Any) -> ParallelContext[Any]:
    """Enter async context managers concurrently, each in a task of its own.

    ``async with parallel_with(a, b, c) as (x, y, z):`` gives every guarantee of
    ``async with a as x, b as y, c as z:`` while the enters run concurrently, and so do
    the exits:

    * each context manager's ``__aenter__`` and ``__aexit__`` run in one task of its own
      (a *holder*, started with ``nursery.start``), never in the body's task;
    * the body starts once every context manager has entered, and no ``__aexit__``
      starts before the body has finished, even under an outer cancellation;
    * if one ``__aenter__`` fails, the pending enters are cancelled, the context managers
      that entered exit with that failure, and the body does not run;
    * a context manager that fails while open (its background task crashed) cancels the
      body, and the others exit with its failure;
    * the body's exception reaches every ``__aexit__`` (the same object) and any of them
      may suppress it; a failure never cancels another context manager's cleanup;
    * failures come out as one exception group, flat: the body's exception first, then
      each context manager's failure in argument order, each with a note naming it, its
      position and the phase (``entering``, ``open`` or ``exiting``).  A pure
      cancellation propagates unwrapped.

    Args:
        *cms: async context managers, or a single mapping of them.

    Returns:
        An async context manager, to be entered once, that yields a tuple of the values
        in argument order (``()`` for no argument), or a dict with the mapping's keys.

    Raises:
        TypeError: before anything is entered, for anything that is not an async context
            manager (a coroutine, a synchronous context manager, ...).
        ValueError: before anything is entered, for the same object passed twice.

    Example::

        async with parallel_with(open_db(), open_cache()) as (db, cache):
            ...
        async with parallel_with({"db": open_db(), "cache": open_cache()}) as ctx:
            ctx["db"], ctx["cache"]
    """
    holders, keys = holders_for(cms)
    return ParallelContext(holders, keys)
