"""``Retry``: how a graph node tries its enter again, as a small frozen record."""

from __future__ import annotations

import random
from typing import Any, Final, final

import attrs


def _at_least(least: float, *, whole: bool = False) -> Any:
    def check(instance: Retry, attribute: attrs.Attribute[Any], value: object) -> None:
        kind = (int,) if whole else (int, float)
        if isinstance(value, bool) or not isinstance(value, kind):
            what = "an int" if whole else "a number (int or float)"
            raise TypeError(f"Retry {attribute.name} must be {what}, not {value!r}")
        if not value >= least:  # (NaN fails too)
            raise ValueError(f"Retry {attribute.name} must be at least {least:g}, not {value!r}")

    return check


def _check_jitter(instance: Retry, attribute: attrs.Attribute[Any], value: object) -> None:
    _at_least(0)(instance, attribute, value)
    assert isinstance(value, (int, float))
    if value > 1:
        raise ValueError(f"Retry jitter must be a fraction from 0 to 1, not {value!r}")


def _check_on(instance: Retry, attribute: attrs.Attribute[Any], value: object) -> None:
    types: tuple[object, ...] = value if isinstance(value, tuple) else (value,)  # pyright: ignore[reportUnknownVariableType]
    for kind in types:
        if not (isinstance(kind, type) and issubclass(kind, Exception)):
            raise TypeError(
                f"Retry on must be Exception subclasses (a cancellation or a "
                f"KeyboardInterrupt is never retried), not {kind!r}"
            )


def _as_tuple(value: type[Exception] | tuple[type[Exception], ...]) -> tuple[type[Exception], ...]:
    return value if isinstance(value, tuple) else (value,)


@final
@attrs.frozen
class Retry:
    """How a :class:`ResourceGraph` node retries its enter: ``graph.add(..., retry=...)``.

    Each attempt calls the node's factory anew and enters the new context manager in the
    node's own holder task.  A failed attempt is left as ``async with`` leaves a
    context manager whose ``__aenter__`` raised: its ``__aexit__`` is not called.  The
    node's ``enter_timeout`` bounds all attempts and the waits between them together.
    A cancellation or a ``KeyboardInterrupt`` is never retried, nor an exception that is
    not an instance of ``on``.  When every attempt failed, the node's failure is one
    exception group of every attempt's exception, in order, whose message says how many
    attempts were made (one attempt: its exception alone); :func:`format_failures` shows
    the attempts that failed alike once.

    Attributes:
        attempts: how many attempts in all (at least 1).
        backoff: seconds to wait before the second attempt.
        multiplier: each next wait is the previous one times this (at least 1).
        max_backoff: no wait is longer than this many seconds.
        jitter: each wait is varied at random by up to this fraction of it, up or down
            (0 to 1; 0, the default, waits exactly).
        on: the exception types that are retried (default: every ``Exception``).

    Example::

        graph.add(connect, config, retry=Retry(attempts=5, backoff=0.2), enter_timeout=10)
    """

    attempts: int = attrs.field(default=3, validator=_at_least(1, whole=True))
    backoff: float = attrs.field(default=0.1, validator=_at_least(0))
    multiplier: float = attrs.field(default=2.0, validator=_at_least(1))
    max_backoff: float = attrs.field(default=10.0, validator=_at_least(0))
    jitter: float = attrs.field(default=0.0, validator=_check_jitter)
    on: tuple[type[Exception], ...] = attrs.field(
        default=(Exception,), converter=_as_tuple, validator=_check_on
    )

    def delay(self, attempt: int) -> float:
        """Seconds to wait after the failed attempt number ``attempt`` (from 1)."""
        wait = min(self.max_backoff, self.backoff * self.multiplier ** (attempt - 1))
        if self.jitter:
            wait *= 1 + self.jitter * _random.uniform(-1, 1)
        return wait

    def retries(self, exc: BaseException) -> bool:
        """Whether a failed attempt that raised ``exc`` is tried again (attempts left aside).

        Never a cancellation, nor a group holding one: a group only if every exception in
        it is an instance of ``on``.
        """
        if isinstance(exc, BaseExceptionGroup):
            group: BaseExceptionGroup[BaseException] = exc  # pyright: ignore[reportUnknownVariableType]
            return group.split(self.on)[1] is None  # every leaf one of them
        return isinstance(exc, self.on)


# Jitter needs no reproducibility, and must not disturb the user's global random state.
_random: Final = random.Random()
