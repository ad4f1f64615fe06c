"""The guard that turns a ``trio.Cancelled`` escaping a test into a failure."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from trio_parallel_cm._errors import contains_cancelled


def guard_cancelled(func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` unchanged if synchronous, else wrapped to fail on an escaping Cancelled."""
    if not inspect.iscoroutinefunction(func):
        return func

    @functools.wraps(func)
    async def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return await func(*args, **kwargs)
        except BaseException as exc:
            if contains_cancelled(exc):
                raise AssertionError(
                    "a trio.Cancelled escaped the test function; pytest-trio would have "
                    "absorbed it and passed the test without running the rest"
                ) from exc
            raise

    return guarded
