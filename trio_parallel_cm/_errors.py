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

import contextlib
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Final, Literal, cast

import attrs

from . import _runtime

if TYPE_CHECKING:
    from typing import Self


ENTERING: Final = "entering"
OPEN: Final = "open"
EXITING: Final = "exiting"


def is_cancellation(exc: BaseException) -> bool:
    """Whether ``exc`` is a ``trio.Cancelled`` or a group made of nothing else."""
    if isinstance(exc, _runtime.cancelled_types):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return all(is_cancellation(e) for e in exc.exceptions)  # pyright: ignore[reportUnknownVariableType,reportUnknownArgumentType,reportUnknownMemberType]
    return False


def contains_cancelled(exc: BaseException) -> bool:
    """Whether ``exc`` is, or is a group that somewhere holds, a ``trio.Cancelled``."""
    if isinstance(exc, _runtime.cancelled_types):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return any(contains_cancelled(e) for e in exc.exceptions)  # pyright: ignore[reportUnknownVariableType,reportUnknownArgumentType,reportUnknownMemberType]
    return False


def leaf_ids(exc: BaseException) -> set[int]:
    """The identities of the exceptions that ``exc`` is made of (itself, if not a group)."""
    if isinstance(exc, BaseExceptionGroup):
        return {leaf for member in exc.exceptions for leaf in leaf_ids(member)}  # pyright: ignore[reportUnknownMemberType,reportUnknownVariableType,reportUnknownArgumentType]
    return {id(exc)}


def without(exc: BaseException, other: BaseException) -> BaseException | None:
    """``exc`` less the exceptions of ``other`` (by identity), or None if nothing is left.

    A context manager that re-raises the exception it was given is not a new failure; one
    that raises a new group containing it contributes the rest of that group.  Leaves are
    compared, not groups: a context manager that passes a group it received through a
    cancel scope or a nursery (``trio.open_nursery()`` does) re-raises a *copy* of it,
    made by ``split``, holding the same leaves.
    """
    received = leaf_ids(other)
    raised = leaf_ids(exc)
    if raised <= received or exc is other:
        return None
    if not received & raised:
        return exc  # as it is: ``split`` would return a copy even if nothing matched
    group = cast("BaseExceptionGroup[BaseException]", exc)  # several leaves: a group
    return group.split(lambda e: id(e) in received)[1]


def own_failure(exc: BaseException, name: str, runtime: _runtime.Runtime) -> BaseException | None:
    """What of ``exc``, raised by a context manager in its holder task, is a failure.

    Must be called in the holder task.  A ``Cancelled`` is the task's own when the task is
    effectively cancelled: it is dropped (the cancellation is reported by the scope that
    owns it).  Otherwise it escaped a context manager whose task was not cancelled, a bug in
    that context manager, reported as a ``RuntimeError`` caused by it.
    """
    if not contains_cancelled(exc):
        return exc
    if runtime.is_cancelled():
        return non_cancelled_part(exc)
    kind = runtime.Cancelled
    error = RuntimeError(
        f"{name} let a {kind.__module__.split('.')[0]}.{kind.__qualname__} escape although "
        "its task was not cancelled "
        "(a cancel scope it opened was probably not exited in the same task)"
    )
    error.__cause__ = exc
    return error


def cancelled_part(exc: BaseException) -> BaseException | None:
    """The ``Cancelled`` part of ``exc``: itself, the matching subgroup, or None."""
    if isinstance(exc, BaseExceptionGroup):
        return exc.split(_runtime.cancelled_types)[0]  # pyright: ignore[reportUnknownMemberType]
    return exc if isinstance(exc, _runtime.cancelled_types) else None


def non_cancelled_part(exc: BaseException) -> BaseException | None:
    """``exc`` less its ``Cancelled`` members: itself, the rest of a group, or None.

    ``exc`` itself, the very object, when it holds no ``Cancelled``: ``split`` copies.
    """
    if not contains_cancelled(exc):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        return exc.split(_runtime.cancelled_types)[1]  # pyright: ignore[reportUnknownMemberType,reportUnknownVariableType]
    return None


@attrs.frozen
class Delivery:
    """What an ``__aexit__`` receives: ``exception`` with the ``traceback`` it had when it
    was released (read once: concurrent ``athrow`` calls rewrite ``__traceback__``), or,
    ``native``, the holder's own ``Cancelled``, met at its next checkpoint."""

    exception: BaseException | None = None
    traceback: TracebackType | None = None
    native: bool = False


NOTHING_DELIVERED: Final = Delivery()
NATIVE: Final = Delivery(native=True)


def delivery(propagating: Sequence[BaseException]) -> Delivery:
    """What ``__aexit__`` receives when ``propagating`` is on its way out.

    Several exceptions on their way out are delivered as one group; a cancellation is
    delivered natively (each holder meets its own ``Cancelled``); a group mixing
    ``Cancelled`` with errors delivers the errors.
    """
    if not propagating:
        return NOTHING_DELIVERED
    if len(propagating) == 1:
        exc = propagating[0]
    else:
        exc = make_group("several exceptions propagate", propagating)
    if is_cancellation(exc):
        return NATIVE
    errors = non_cancelled_part(exc)
    return Delivery(errors, None if errors is None else errors.__traceback__)


def cancelled_parts(excs: Sequence[BaseException]) -> list[BaseException]:
    """The ``Cancelled`` parts of ``excs``: what a suppressing ``__aexit__`` lets through."""
    parts = (cancelled_part(exc) for exc in excs)
    return [part for part in parts if part is not None]


def add_note(exc: BaseException, note: str) -> None:
    """``exc.add_note(note)``."""
    exc.add_note(note)


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
    return "; ".join(parts) or "no failure"


Phase = Literal["entering", "open", "exiting", "body"]

_RECORD_ATTRIBUTE = "__trio_parallel_cm_failure__"


@attrs.frozen
class ContextFailure:
    """One failure of a parallel block, as data.

    Attributes:
        name: the context manager's name (its mapping key, its factory's name, or its
            type's qualified name), or ``"body"``.
        position: its position in its stage (argument order), or None for the body.
        phase: ``"entering"``, ``"open"``, ``"exiting"``, or ``"body"``.
        exception: the exception, the very object in the group.
        elapsed: seconds since the block (or ``start_context`` call) started, on
            Trio's clock, when the failure was recorded.
        stage: the stage number in a ``ParallelExitStack`` (from 1), else None.

    Example::

        except* ConnectionError as group:
            for failure in failures_of(group):
                metrics.increment(f"startup.{failure.name}.{failure.phase}")
    """

    name: str
    position: int | None
    phase: Phase
    exception: BaseException = attrs.field(repr=lambda e: f"{type(e).__name__}({e})")
    elapsed: float
    stage: int | None = None


def record_of(exc: BaseException) -> ContextFailure | None:
    """The record a context manager's failure carries, if any."""
    record: ContextFailure | None = getattr(exc, _RECORD_ATTRIBUTE, None)
    return record


def records_of(members: Sequence[BaseException]) -> list[ContextFailure]:
    """The records that ``members`` carry, in order."""
    return [record for record in map(record_of, members) if record is not None]


def attach_record(exc: BaseException, record: ContextFailure) -> None:
    """Keep ``record`` on ``exc`` itself, so that it survives any re-wrapping."""
    with contextlib.suppress(AttributeError):  # an exception type without a __dict__
        setattr(exc, _RECORD_ATTRIBUTE, record)


class ParallelBaseExceptionGroup(BaseExceptionGroup[BaseException]):
    """The group raised by ``parallel_with``, ``ParallelExitStack`` and ``start_context``.

    Its message summarises (``"2 of 5 context managers failed (1 entering, 1
    exiting)"``) and :attr:`failures` gives one :class:`ContextFailure` per member that
    failed.  ``split``, ``subgroup`` and ``except*`` keep the records of the members they
    keep (and their message counts what they keep).  When every member is an
    ``Exception`` the group is a :class:`ParallelExceptionGroup` (an ``ExceptionGroup``).

    Example::

        try:
            async with parallel_with(open_db(), open_cache()) as (db, cache):
                ...
        except ParallelExceptionGroup as group:
            for failure in group.failures:
                log.error("%s failed while %s", failure.name, failure.phase)
            raise
    """

    def __new__(
        cls,
        message: str,
        exceptions: Sequence[BaseException],
        failures: Sequence[ContextFailure] = (),
        total: int = 0,
    ) -> Self:
        self = super().__new__(cls, message, exceptions)
        self._failures = tuple(failures)
        self._total = total
        return self

    def __init__(
        self,
        message: str,
        exceptions: Sequence[BaseException],
        failures: Sequence[ContextFailure] = (),
        total: int = 0,
    ) -> None:
        super().__init__(message, exceptions)

    _failures: tuple[ContextFailure, ...]
    _total: int

    def _record_for(self, exc: BaseException) -> ContextFailure | None:
        """The record of ``exc``, a member kept by ``split``: itself, or a derived group.

        ``split`` keeps leaves by identity but derives new nested groups (a body group
        less its ``Cancelled``): such a member is the one whose leaves it holds.
        """
        for record in self._failures:
            if record.exception is exc:
                return record
        if isinstance(exc, BaseExceptionGroup):
            kept = leaf_ids(exc)  # pyright: ignore[reportUnknownArgumentType]
            for record in self._failures:
                if kept <= leaf_ids(record.exception):
                    return attrs.evolve(record, exception=exc)
        return None

    @property
    def failures(self) -> tuple[ContextFailure, ...]:
        """One record per failure that is a member of this group, in member order."""
        return self._failures

    def derive(  # type: ignore[override]  # pyright: ignore[reportIncompatibleMethodOverride]
        self, excs: Sequence[BaseException]
    ) -> ParallelBaseExceptionGroup:
        failures = [record for record in map(self._record_for, excs) if record is not None]
        message = self.message
        if self._failures:
            # Count what is kept: a stale "the body raised" would mislead.
            phases = [record.phase for record in failures if record.position is not None]
            body = any(record.position is None for record in failures)
            message = summary(self._total, phases, body_failed=body)
        return make_group(message, excs, failures, self._total)


class ParallelExceptionGroup(  # pyright: ignore[reportIncompatibleMethodOverride]
    ParallelBaseExceptionGroup, ExceptionGroup[Exception]
):
    """A :class:`ParallelBaseExceptionGroup` whose members are all ``Exception``."""


def make_group(
    message: str,
    members: Sequence[BaseException],
    failures: Sequence[ContextFailure] = (),
    total: int = 0,
) -> ParallelBaseExceptionGroup:
    """One flat group of ``members``: a :class:`ParallelExceptionGroup` when it can be.

    ``total`` is how many context managers the block had, for the messages of the groups
    that ``split`` and ``subgroup`` derive.
    """
    if all(isinstance(member, Exception) for member in members):
        exceptions = cast("Sequence[Exception]", members)
        return ParallelExceptionGroup(message, exceptions, failures, total)
    return ParallelBaseExceptionGroup(message, members, failures, total)


def failures_of(exc: BaseException | None) -> list[ContextFailure]:
    """Every :class:`ContextFailure` found in ``exc``, however it was caught or wrapped.

    Walks ``exc``, the members of groups (nested at any depth) and the ``__cause__`` and
    ``__context__`` chains, and returns each failure once, in the order found: a group
    of ours gives its records (the body's included); any other exception that a context
    manager raised carries its own record.
    """
    found: list[ContextFailure] = []
    seen_records: set[int] = set()
    seen: set[int] = set()
    todo: list[BaseException] = [] if exc is None else [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        records: list[ContextFailure] = []
        if isinstance(current, ParallelBaseExceptionGroup):
            records.extend(current.failures)
        own = record_of(current)
        if own is not None:
            records.append(own)
        for record in records:
            if id(record) not in seen_records:
                seen_records.add(id(record))
                found.append(record)
        nested: list[BaseException] = []
        if isinstance(current, BaseExceptionGroup):
            nested.extend(current.exceptions)  # pyright: ignore[reportUnknownMemberType,reportUnknownArgumentType]
        if current.__cause__ is not None:
            nested.append(current.__cause__)
        if current.__context__ is not None:
            nested.append(current.__context__)
        todo.extend(reversed(nested))
    return found
