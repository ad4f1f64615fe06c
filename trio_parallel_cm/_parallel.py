"""``parallel_with``: enter and exit async context managers concurrently.

``parallel_with`` is a block (``_block.py``) with one stage, entered in ``__aenter__``.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, Generic, TypeVar, final, overload

from . import _runtime
from ._engine._block import Block
from ._engine._holder import Holder
from ._engine._input import check_observer, holders_for
from ._engine._options import Options
from ._timeline import Observer
from ._typevars import T1, T2, T3, T4, T5, T6, T7, T8, K, V

T_co = TypeVar("T_co", covariant=True)


@final
class ParallelContext(Generic[T_co]):
    """The async context manager returned by :func:`parallel_with`.  Enter it once."""

    __slots__ = ("_block", "_holders", "_keys", "_options")

    def __init__(
        self,
        holders: list[Holder],
        keys: list[object] | None,
        options: Options,
        observer: Observer | None,
    ) -> None:
        self._holders = holders
        self._keys = keys
        self._options = options
        self._block = Block("parallel_with()", observer, options.shutdown_timeout)

    def __repr__(self) -> str:
        names = ", ".join(holder.name for holder in self._holders)
        return f"<parallel_with({names}) at {id(self):#x}>"

    @_runtime.ki_protected
    async def __aenter__(self) -> T_co:
        return await self._block.enter_alone(self._holders, self._keys, self._options)  # type: ignore[no-any-return]

    @_runtime.ki_protected
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        return await self._block.close(exc_type, exc, tb)


@overload
def parallel_with(
    *,
    limit: int | None = None,
    enter_timeout: float | None = None,
    exit_timeout: float | None = None,
    shutdown_timeout: float | None = None,
    observer: Observer | None = None,
) -> ParallelContext[tuple[()]]: ...


@overload
def parallel_with(
    cm1: AbstractAsyncContextManager[T1, Any],
    /,
    *,
    limit: int | None = None,
    enter_timeout: float | None = None,
    exit_timeout: float | None = None,
    shutdown_timeout: float | None = None,
    observer: Observer | None = None,
) -> ParallelContext[tuple[T1]]: ...


@overload
def parallel_with(
    cm1: AbstractAsyncContextManager[T1, Any],
    cm2: AbstractAsyncContextManager[T2, Any],
    /,
    *,
    limit: int | None = None,
    enter_timeout: float | None = None,
    exit_timeout: float | None = None,
    shutdown_timeout: float | None = None,
    observer: Observer | None = None,
) -> ParallelContext[tuple[T1, T2]]: ...


@overload
def parallel_with(
    cm1: AbstractAsyncContextManager[T1, Any],
    cm2: AbstractAsyncContextManager[T2, Any],
    cm3: AbstractAsyncContextManager[T3, Any],
    /,
    *,
    limit: int | None = None,
    enter_timeout: float | None = None,
    exit_timeout: float | None = None,
    shutdown_timeout: float | None = None,
    observer: Observer | None = None,
) -> ParallelContext[tuple[T1, T2, T3]]: ...


@overload
def parallel_with(
    cm1: AbstractAsyncContextManager[T1, Any],
    cm2: AbstractAsyncContextManager[T2, Any],
    cm3: AbstractAsyncContextManager[T3, Any],
    cm4: AbstractAsyncContextManager[T4, Any],
    /,
    *,
    limit: int | None = None,
    enter_timeout: float | None = None,
    exit_timeout: float | None = None,
    shutdown_timeout: float | None = None,
    observer: Observer | None = None,
) -> ParallelContext[tuple[T1, T2, T3, T4]]: ...


@overload
def parallel_with(
    cm1: AbstractAsyncContextManager[T1, Any],
    cm2: AbstractAsyncContextManager[T2, Any],
    cm3: AbstractAsyncContextManager[T3, Any],
    cm4: AbstractAsyncContextManager[T4, Any],
    cm5: AbstractAsyncContextManager[T5, Any],
    /,
    *,
    limit: int | None = None,
    enter_timeout: float | None = None,
    exit_timeout: float | None = None,
    shutdown_timeout: float | None = None,
    observer: Observer | None = None,
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
    *,
    limit: int | None = None,
    enter_timeout: float | None = None,
    exit_timeout: float | None = None,
    shutdown_timeout: float | None = None,
    observer: Observer | None = None,
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
    *,
    limit: int | None = None,
    enter_timeout: float | None = None,
    exit_timeout: float | None = None,
    shutdown_timeout: float | None = None,
    observer: Observer | None = None,
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
    *,
    limit: int | None = None,
    enter_timeout: float | None = None,
    exit_timeout: float | None = None,
    shutdown_timeout: float | None = None,
    observer: Observer | None = None,
) -> ParallelContext[tuple[T1, T2, T3, T4, T5, T6, T7, T8]]: ...


@overload
def parallel_with(
    cms: Mapping[K, AbstractAsyncContextManager[V, Any]],
    /,
    *,
    limit: int | None = None,
    enter_timeout: float | None = None,
    exit_timeout: float | None = None,
    shutdown_timeout: float | None = None,
    observer: Observer | None = None,
) -> ParallelContext[dict[K, V]]: ...


@overload
def parallel_with(
    cms: Mapping[K, AbstractAsyncContextManager[Any, Any]],
    /,
    *,
    limit: int | None = None,
    enter_timeout: float | None = None,
    exit_timeout: float | None = None,
    shutdown_timeout: float | None = None,
    observer: Observer | None = None,
) -> ParallelContext[dict[K, Any]]: ...


@overload
def parallel_with(
    *cms: AbstractAsyncContextManager[Any, Any],
    limit: int | None = None,
    enter_timeout: float | None = None,
    exit_timeout: float | None = None,
    shutdown_timeout: float | None = None,
    observer: Observer | None = None,
) -> ParallelContext[tuple[Any, ...]]: ...


def parallel_with(
    *cms: Any,
    limit: int | None = None,
    enter_timeout: float | None = None,
    exit_timeout: float | None = None,
    shutdown_timeout: float | None = None,
    observer: Observer | None = None,
) -> ParallelContext[Any]:
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
        limit: at most this many ``__aenter__`` calls (and as many ``__aexit__`` calls)
            in flight at once; a context manager that has entered holds no slot while open.
        enter_timeout: seconds each ``__aenter__`` may take; a slower one is cancelled
            and fails with ``trio.TooSlowError`` (on asyncio ``TimeoutError``), handled as
            any enter failure.
        exit_timeout: seconds each ``__aexit__`` may take, shielded from an outer
            cancellation (a graceful shutdown budget); then it is cancelled and fails
            with ``trio.TooSlowError`` (on asyncio ``TimeoutError``).
        shutdown_timeout: seconds the whole exit phase may take (every ``__aexit__``,
            from the end of the body), shielded from an outer cancellation; then what is
            still exiting is cancelled and fails with ``trio.TooSlowError`` (on asyncio
            ``TimeoutError``).  Each ``exit_timeout`` still applies within it.
        observer: called with a :class:`PhaseEvent` at every phase change of every
            context manager (a :class:`Timeline`, for example); must not block.

    Returns:
        An async context manager, to be entered once, that yields a tuple of the values
        in argument order (``()`` for no argument), or a dict with the mapping's keys.

    Raises:
        TypeError: before anything is entered, for anything that is not an async context
            manager (the message names the methods it misses, and says so for a
            coroutine or a synchronous context manager), an option of the wrong type, or
            an ``observer`` that cannot be called.
        ValueError: before anything is entered, for the same object passed twice, or an
            option out of range.
        RuntimeError: on entering the same object twice, or outside a Trio or an asyncio task.

    Example::

        async with parallel_with(open_db(), open_cache()) as (db, cache):
            ...
        async with parallel_with({"db": open_db(), "cache": open_cache()}) as ctx:
            ctx["db"], ctx["cache"]
    """
    options = Options(limit, enter_timeout, exit_timeout, shutdown_timeout=shutdown_timeout)
    check_observer(observer)
    holders, keys = holders_for(cms, options)  # rejects bad input now, before anything is entered
    return ParallelContext(holders, keys, options, observer)
