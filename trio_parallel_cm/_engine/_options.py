"""The options of a stage, as one record checked when it is made."""

from __future__ import annotations

from typing import Any, Final

import attrs

from ._retry import Retry


def _check_limit(instance: Options, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"limit must be an int (a whole number of at least 1), not {value!r}")
    if value < 1:
        raise ValueError(f"limit must be a whole number of at least 1, not {value!r}")


def _check_seconds(instance: Options, attribute: attrs.Attribute[Any], value: object) -> None:
    name = attribute.name
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds (int or float), not {value!r}")
    if not value >= 0:
        raise ValueError(f"{name} must be a number of seconds, at least 0, not {value!r}")


def _check_bool(instance: Options, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{attribute.name} must be True or False, not {value!r}")


def _check_retry(instance: Options, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, Retry):
        raise TypeError(f"retry must be a Retry record or None, not {value!r}")


@attrs.frozen
class Options:
    """How a stage, or one graph node, enters and exits; checked when made, before anything
    is entered.

    ``TypeError`` for a value of the wrong type (``limit=1.5``, ``enter_timeout="5"``),
    ``ValueError`` for one out of range (``limit=0``, a negative or NaN timeout).  A
    ``ResourceGraph``'s record is also the options of its nodes that set none of their
    own (``ResourceGraph.add`` resolves each node's once).

    Attributes:
        limit: at most this many ``__aenter__`` (and ``__aexit__``) calls in flight.
        enter_timeout: seconds each ``__aenter__`` may take.
        exit_timeout: seconds each ``__aexit__`` may take, shielded.
        optional: a graph node whose enter failure is tolerated (``ResourceGraph.add``).
        retry: how a graph node retries its enter.
        shutdown_timeout: seconds the whole exit phase of a block may take, shielded.
    """

    limit: int | None = attrs.field(default=None, validator=_check_limit)
    enter_timeout: float | None = attrs.field(default=None, validator=_check_seconds)
    exit_timeout: float | None = attrs.field(default=None, validator=_check_seconds)
    optional: bool = attrs.field(default=False, validator=_check_bool)
    retry: Retry | None = attrs.field(default=None, validator=_check_retry)
    shutdown_timeout: float | None = attrs.field(default=None, validator=_check_seconds)


NO_OPTIONS: Final = Options()
