"""The guard that turns a cancellation escaping a test into a failure."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import trio

from tests.harness.loops import CANCELLED


def escaped_cancellation(exc: BaseException) -> BaseException | None:
    """The ``trio.Cancelled`` or ``asyncio.CancelledError`` that ``exc`` is or holds."""
    if isinstance(exc, CANCELLED):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for member in exc.exceptions:  # pyright: ignore[reportUnknownVariableType,reportUnknownMemberType]
            found = escaped_cancellation(member)  # pyright: ignore[reportUnknownArgumentType]
            if found is not None:
                return found
    return None


def guard_cancelled(func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` unchanged if synchronous, else wrapped to fail on an escaping cancellation."""
    if not inspect.iscoroutinefunction(func):
        return func

    @functools.wraps(func)
    async def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return await func(*args, **kwargs)
        except BaseException as exc:
            cancelled = escaped_cancellation(exc)
            if cancelled is not None:
                kind = (
                    "trio.Cancelled"
                    if isinstance(cancelled, trio.Cancelled)
                    else "asyncio.CancelledError"
                )
                raise AssertionError(
                    f"a cancellation ({kind}) escaped the test function; the test runner "
                    "would have absorbed it and passed the test without running the rest"
                ) from exc
            raise

    return guarded
