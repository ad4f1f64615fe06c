"""``ParallelExitStack``: a dynamic set of context managers, entered in ordered stages."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, TypeVar, final, overload

from . import _runtime
from ._engine._block import Block
from ._engine._input import check_observer, holder_for, holders_for
from ._engine._options import Options
from ._timeline import Observer
from ._typevars import T1, T2, T3, T4, T5, T6, T7, T8, K, V

T = TypeVar("T")


@final
class ParallelExitStack:
    """Enter context managers in stages, each stage concurrently; exit them in reverse.

    Every guarantee of :func:`parallel_with` holds for each stage: task ownership, no
    early exit, a member failing while open cancels the stack's body, no lost errors, one
    flat group in a fixed order.  On exit the stages unwind from the latest to the
    earliest, the members of a stage concurrently.  The body's exception is seen by the
    latest stage first, and what it lets through (not suppressed, plus its own failures)
    is passed on to the previous stage, as nested ``async with`` blocks would do.

    Example::

        async with ParallelExitStack() as stack:
            db, cache = await stack.enter_all(open_db(), open_cache())  # stage 1
            app = await stack.enter(open_app(db, cache))                # stage 2
            ...
        # exit: stage 2 first, then stage 1 concurrently

    Stages can be entered from the stack's body only; entering one after the stack has
    started closing is a ``RuntimeError``.
    """

    __slots__ = ("_block",)

    def __init__(
        self, *, shutdown_timeout: float | None = None, observer: Observer | None = None
    ) -> None:
        """Make a stack; enter it with ``async with``.

        Args:
            shutdown_timeout: seconds the whole exit phase may take (every stage's
                exits, latest stage first, from the end of the body), shielded from an
                outer cancellation; then what is still exiting is cancelled and fails
                with ``trio.TooSlowError`` (on asyncio ``TimeoutError``).
            observer: called with a :class:`PhaseEvent` at every phase change of every
                context manager of every stage (a :class:`Timeline`, for example).
        """
        options = Options(shutdown_timeout=shutdown_timeout)
        check_observer(observer)
        self._block = Block("ParallelExitStack", observer, options.shutdown_timeout)

    def __repr__(self) -> str:
        return f"<ParallelExitStack({self._block.names()}) at {id(self):#x}>"

    @_runtime.ki_protected
    async def __aenter__(self) -> ParallelExitStack:
        await self._block.open()
        self._block.begin_body()
        return self

    @_runtime.ki_protected
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        return await self._block.close(exc_type, exc, tb)

    @overload
    async def enter_all(
        self,
        cm1: AbstractAsyncContextManager[T1, Any],
        /,
        *,
        limit: int | None = None,
        enter_timeout: float | None = None,
        exit_timeout: float | None = None,
    ) -> tuple[T1]: ...

    @overload
    async def enter_all(
        self,
        cm1: AbstractAsyncContextManager[T1, Any],
        cm2: AbstractAsyncContextManager[T2, Any],
        /,
        *,
        limit: int | None = None,
        enter_timeout: float | None = None,
        exit_timeout: float | None = None,
    ) -> tuple[T1, T2]: ...

    @overload
    async def enter_all(
        self,
        cm1: AbstractAsyncContextManager[T1, Any],
        cm2: AbstractAsyncContextManager[T2, Any],
        cm3: AbstractAsyncContextManager[T3, Any],
        /,
        *,
        limit: int | None = None,
        enter_timeout: float | None = None,
        exit_timeout: float | None = None,
    ) -> tuple[T1, T2, T3]: ...

    @overload
    async def enter_all(
        self,
        cm1: AbstractAsyncContextManager[T1, Any],
        cm2: AbstractAsyncContextManager[T2, Any],
        cm3: AbstractAsyncContextManager[T3, Any],
        cm4: AbstractAsyncContextManager[T4, Any],
        /,
        *,
        limit: int | None = None,
        enter_timeout: float | None = None,
        exit_timeout: float | None = None,
    ) -> tuple[T1, T2, T3, T4]: ...

    @overload
    async def enter_all(
        self,
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
    ) -> tuple[T1, T2, T3, T4, T5]: ...

    @overload
    async def enter_all(
        self,
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
    ) -> tuple[T1, T2, T3, T4, T5, T6]: ...

    @overload
    async def enter_all(
        self,
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
    ) -> tuple[T1, T2, T3, T4, T5, T6, T7]: ...

    @overload
    async def enter_all(
        self,
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
    ) -> tuple[T1, T2, T3, T4, T5, T6, T7, T8]: ...

    @overload
    async def enter_all(
        self,
        cms: Mapping[K, AbstractAsyncContextManager[V, Any]],
        /,
        *,
        limit: int | None = None,
        enter_timeout: float | None = None,
        exit_timeout: float | None = None,
    ) -> dict[K, V]: ...

    @overload
    async def enter_all(
        self,
        cms: Mapping[K, AbstractAsyncContextManager[Any, Any]],
        /,
        *,
        limit: int | None = None,
        enter_timeout: float | None = None,
        exit_timeout: float | None = None,
    ) -> dict[K, Any]: ...

    @overload
    async def enter_all(
        self,
        *cms: AbstractAsyncContextManager[Any, Any],
        limit: int | None = None,
        enter_timeout: float | None = None,
        exit_timeout: float | None = None,
    ) -> tuple[Any, ...]: ...

    async def enter_all(
        self,
        *cms: Any,
        limit: int | None = None,
        enter_timeout: float | None = None,
        exit_timeout: float | None = None,
    ) -> Any:
        """Enter one stage: these context managers concurrently, all or nothing.

        On a failure, the stage's members that entered exit with it, the failure is
        raised from ``enter_all`` (one group), and the earlier stages stay open.

        Args:
            *cms: async context managers, or a single mapping of them.
            limit: at most this many ``__aenter__`` calls (and as many ``__aexit__`` calls)
                in flight at once; a context manager that has entered holds no slot while open.
            enter_timeout: seconds each ``__aenter__`` may take; a slower one is cancelled
                and fails with ``trio.TooSlowError`` (on asyncio ``TimeoutError``), handled
                as any enter failure.
            exit_timeout: seconds each ``__aexit__`` may take, shielded from an outer
                cancellation (a graceful shutdown budget); then it is cancelled and fails
                with ``trio.TooSlowError`` (on asyncio ``TimeoutError``).

        Returns:
            A tuple of the values in argument order, or a dict with the mapping's keys.
        """
        options = Options(limit, enter_timeout, exit_timeout)
        holders, keys = holders_for(cms, options)
        return await self._block.enter_stage(holders, keys, options)

    async def enter(
        self,
        cm: AbstractAsyncContextManager[T, Any],
        *,
        enter_timeout: float | None = None,
        exit_timeout: float | None = None,
    ) -> T:
        """Enter a stage of one context manager and return its value.

        Args:
            cm: an async context manager.
            enter_timeout: as for :meth:`enter_all`.
            exit_timeout: as for :meth:`enter_all`.
        """
        options = Options(enter_timeout=enter_timeout, exit_timeout=exit_timeout)
        holders = [holder_for(cm, "the cm argument of enter()", options)]
        [value] = await self._block.enter_stage(holders, None, options)
        return value  # type: ignore[no-any-return]
