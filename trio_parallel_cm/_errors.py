"""Classifying, annotating and grouping the failures of a parallel block.

Design notes:

* A holder task decides *in its own task* whether a ``trio.Cancelled`` it sees is its own
  (its task is effectively cancelled) or a bug of the context manager (a ``Cancelled`` that
  escaped although nothing around the task was cancelled).  Only the task that received a
  ``Cancelled`` can ask Trio that question, and nothing in Trio ties a ``Cancelled`` to its
  scope, so it must never be re-raised elsewhere.
* Groups are flat: each member is one original exception object, never a copy.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import Final

import trio

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup

ENTERING: Final = "entering"
OPEN: Final = "open"
EXITING: Final = "exiting"


def is_cancellation(exc: BaseException) -> bool:
    """Whether ``exc`` is a ``trio.Cancelled`` or a group made of nothing else."""
    if isinstance(exc, trio.Cancelled):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return all(is_cancellation(e) for e in exc.exceptions)  # pyright: ignore[reportUnknownVariableType,reportUnknownArgumentType,reportUnknownMemberType]
    return False


def contains_cancelled(exc: BaseException) -> bool:
    """Whether ``exc`` is, or is a group that somewhere holds, a ``trio.Cancelled``."""
    if isinstance(exc, trio.Cancelled):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return any(contains_cancelled(e) for e in exc.exceptions)  # pyright: ignore[reportUnknownVariableType,reportUnknownArgumentType,reportUnknownMemberType]
    return False


def without(exc: BaseException, other: BaseException) -> BaseException | None:
    """``exc`` less the exception object ``other`` (by identity), or None if nothing is left.

    A context manager that re-raises the exception it was given is not a new failure; one
    that raises a new group containing it contributes the rest of that group.
    """
    if exc is other:
        return None
    if isinstance(exc, BaseExceptionGroup):
        return exc.split(lambda e: e is other)[1]  # pyright: ignore[reportUnknownMemberType,reportUnknownLambdaType,reportUnknownVariableType]
    return exc


def own_failure(exc: BaseException, name: str) -> BaseException | None:
    """What of ``exc``, raised by a context manager in its holder task, is a failure.

    Must be called in the holder task.  A ``Cancelled`` is the task's own when the task is
    effectively cancelled: it is dropped (the cancellation is reported by the scope that
    owns it).  Otherwise it escaped a context manager whose task was not cancelled, a bug in
    that context manager, reported as a ``RuntimeError`` caused by it.
    """
    if not contains_cancelled(exc):
        return exc
    if trio.current_effective_deadline() == -math.inf:
        return non_cancelled_part(exc)
    error = RuntimeError(
        f"{name} let a trio.Cancelled escape although its task was not cancelled "
        "(a cancel scope it opened was probably not exited in the same task)"
    )
    error.__cause__ = exc
    return error


def cancelled_part(exc: BaseException) -> BaseException | None:
    """The ``Cancelled`` part of ``exc``: itself, the matching subgroup, or None."""
    if isinstance(exc, BaseExceptionGroup):
        return exc.split(trio.Cancelled)[0]  # pyright: ignore[reportUnknownMemberType,reportUnknownVariableType]
    return exc if isinstance(exc, trio.Cancelled) else None


def non_cancelled_part(exc: BaseException) -> BaseException | None:
    """``exc`` less its ``Cancelled`` members: itself, the rest of a group, or None."""
    if isinstance(exc, BaseExceptionGroup):
        return exc.split(trio.Cancelled)[1]  # pyright: ignore[reportUnknownMemberType,reportUnknownVariableType]
    return None if isinstance(exc, trio.Cancelled) else exc


def add_note(exc: BaseException, note: str) -> None:
    """``exc.add_note(note)``, also on Python 3.10 (where tracebacks read ``__notes__``)."""
    if sys.version_info >= (3, 11):
        exc.add_note(note)
    else:  # pragma: no cover
        notes: list[str] = getattr(exc, "__notes__", None) or []
        notes.append(note)
        exc.__notes__ = notes  # type: ignore[attr-defined]  # pyright: ignore[reportAttributeAccessIssue]


def failure_note(name: str, position: int, phase: str, stage: int | None = None) -> str:
    """The note attached to a context manager's failure."""
    where = f"position {position}" if stage is None else f"stage {stage}, position {position}"
    return f"{name} ({where}) failed while {phase}"


def summary(total: int, phases: Sequence[str], body_failed: bool) -> str:
    """The message of the group: how many failed, in which phases."""
    parts: list[str] = []
    if body_failed:
        parts.append("the body raised")
    if phases:
        counts = ", ".join(
            f"{phases.count(phase)} {phase}"
            for phase in (ENTERING, OPEN, EXITING)
            if phase in phases
        )
        noun = "context manager" if total == 1 else "context managers"
        parts.append(f"{len(phases)} of {total} {noun} failed ({counts})")
    return "; ".join(parts)


def make_group(message: str, members: Sequence[BaseException]) -> BaseException:
    """One flat group of ``members``: an ``ExceptionGroup`` when every member allows it."""
    # BaseExceptionGroup's constructor returns an ExceptionGroup when every member is an
    # Exception, which is the rule we document.
    group: BaseException = BaseExceptionGroup(message, list(members))
    return group
