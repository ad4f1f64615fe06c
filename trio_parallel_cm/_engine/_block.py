"""A block: the caller's side of ``parallel_with`` and ``ParallelExitStack``.

A block opens a nursery in the caller's task when entered and closes it when exited; the
body runs inside that nursery and inside a cancel scope of ours.  Its stages (one for
``parallel_with``, any number for a stack) keep their holders in that nursery.

Design notes:

* Leaving the body's scope first gives exactly what the body passes on to nested
  ``async with`` blocks: our own cancellation absorbed, a group split by Trio's rules.
  That is what the latest stage's ``__aexit__`` calls receive.
* Stages unwind from the latest to the earliest, each concurrently.  What a stage lets
  through (its failures, which supersede what it received, else what it did not
  suppress) is what the previous stage receives, as nested ``async with`` blocks would
  pass it on (``_flight.py``).  A context manager failing while open exits, in its
  stage, before the others of that stage, and after the body and the later stages.
* A body cancelled from outside is passed on "natively": each holder meets the same
  cancellation as its own ``Cancelled``.  A ``Cancelled`` is never moved between tasks.
* We follow Trio: failures always come out as one group, flat and ordered; a pure
  cancellation is never wrapped, and is re-raised as the very exception the caller's
  scope is waiting for.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any

from .. import _runtime
from .._errors import (
    ContextFailure,
    ParallelBaseExceptionGroup,
    cancelled_part,
    contains_cancelled,
    is_cancellation,
    make_group,
    records_of,
    summary,
)
from .._timeline import Observer
from ._flight import Flight
from ._holder import Holder
from ._options import Options
from ._stage import Stage

# Block phases.
NEW, STARTING, RUNNING, CLOSING = range(4)


class Block:
    """The machinery shared by ``parallel_with`` and ``ParallelExitStack``."""

    __slots__ = (
        "_body_scope",
        "_manager",
        "_nursery",
        "_shutdown_timeout",
        "_stages",
        "_started_at",
        "_task",
        "kind",
        "observer",
        "phase",
        "runtime",
    )

    def __init__(
        self,
        kind: str,
        observer: Observer | None = None,
        shutdown_timeout: float | None = None,
    ) -> None:
        self.kind = kind
        self.observer = observer
        # The one budget of the whole exit phase (every stage's exits), if any.
        self._shutdown_timeout = shutdown_timeout
        self.phase = NEW
        self._stages: list[Stage] = []
        self.runtime: _runtime.Runtime
        self._manager: AbstractAsyncContextManager[_runtime.Nursery]
        self._nursery: _runtime.Nursery
        self._body_scope: _runtime.CancelScope
        self._task: object

    # ---- the owner's side ---------------------------------------------------------------

    async def open(self) -> None:
        """Open the block's nursery.  The first half of ``__aenter__``."""
        if self.phase is not NEW:
            raise RuntimeError(
                f"this {self.kind} object was already entered; make a new one for a new block"
            )
        self.phase = STARTING
        rt = self.runtime = _runtime.current(self.kind)
        self._task = rt.current_task()
        self._started_at = rt.current_time()
        # Entering is a checkpoint, even with nothing to enter.
        await rt.checkpoint_if_cancelled()
        self._manager = rt.open_nursery()
        self._nursery = await self._manager.__aenter__()

    async def enter_alone(
        self,
        holders: list[Holder],
        keys: list[object] | None,
        options: Options,
        deps: Sequence[Sequence[int]] | None = None,
    ) -> Any:
        """``__aenter__`` of a block of one stage (``parallel_with``, a ``ResourceGraph``):
        open it, enter the stage (see ``enter_stage``), start the body; the values."""
        await self.open()
        try:
            values = await self.enter_stage(holders, keys, options, deps)
        except BaseException:
            # The body will not run and every holder has finished: close the nursery.
            self.phase = CLOSING
            await self._manager.__aexit__(None, None, None)
            raise
        self.begin_body()
        return values

    def begin_body(self) -> None:
        """Enter the body's scope.  The last step of ``__aenter__``."""
        scope = self._body_scope = self.runtime.CancelScope()
        scope.__enter__()
        self.phase = RUNNING

    async def enter_stage(
        self,
        holders: list[Holder],
        keys: list[object] | None,
        options: Options,
        deps: Sequence[Sequence[int]] | None = None,
    ) -> Any:
        """Enter a stage of context managers concurrently and return their values.

        With ``deps``, holder ``i`` enters after the holders ``deps[i]`` and exits before
        them (a ``ResourceGraph``).
        """
        if self.phase is RUNNING:
            if self.runtime.current_task() is not self._task:
                raise RuntimeError(f"stages of a {self.kind} can be entered from its body only")
        elif self.phase is not STARTING:
            state = "has started closing" if self.phase is CLOSING else "is not entered"
            raise RuntimeError(f"cannot enter a stage: the {self.kind} {state}")
        index = len(self._stages) + 1 if self.kind == "ParallelExitStack" else None
        stage = Stage(
            holders,
            self._nursery,
            self,
            self.runtime,
            index=index,
            started_at=self._started_at,
            observer=self.observer,
            options=options,
            deps=deps,
            shutdown_timeout=self._shutdown_timeout,
        )
        await stage.enter()
        self._stages.append(stage)
        values = [holder.value for holder in holders]
        if keys is None:
            return tuple(values)
        return dict(zip(keys, values, strict=True))

    # ---- the stages' side ---------------------------------------------------------------

    def failing(self, holder: Holder) -> None:
        """A holder is failing, or ending by itself, while the body runs: cancel it.

        (It exits once the body has finished, and every later stage.)
        """
        if self.phase is RUNNING:
            self._body_scope.cancel()

    def holder_done(self, holder: Holder) -> None:
        """Holders of a block never raise into its nursery."""
        return

    # ---- exit ---------------------------------------------------------------------------

    async def close(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        """``__aexit__``: unwind the stages, close the nursery, raise one group."""
        self.phase = CLOSING
        body_ended = self.runtime.current_time()
        remaining = self._leave_body_scope(exc_type, exc, tb)
        if self._shutdown_timeout is not None:
            # One budget for every exit of every stage, from now.
            for stage in self._stages:
                stage.begin_shutdown(body_ended + self._shutdown_timeout)
        body, gone, caught = await self._unwind(remaining)
        await self._manager.__aexit__(None, None, None)
        failures = [f for f in self._failures() if id(f) not in gone]
        if isinstance(caught, self.runtime.Cancelled):
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
        if body is not None and is_cancellation(body) and not self.runtime.grouped(body):
            body = None  # (the runtime's rule: its task stays cancelled, see ``grouped``)
        group = self._group(body, body_ended, caught, failures)
        try:
            raise group
        finally:
            # The body's exception is a member, not the context of the group.
            group.__context__ = None
            del group

    def _leave_body_scope(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> BaseException | None:
        """Exit the body's scope: what of the body's exception is left (ours absorbed)."""
        if exc is None or not contains_cancelled(exc):
            # Only a Cancelled concerns the scope; given a group, it would split (copy) it.
            self._body_scope.__exit__(None, None, None)
            return exc
        try:
            return None if self._body_scope.__exit__(exc_type, exc, tb) else exc
        except BaseException as new:  # the scope split a group: this is what is left
            return new

    async def _unwind(
        self, body: BaseException | None
    ) -> tuple[BaseException | None, frozenset[int], BaseException | None]:
        """Unwind the stages, latest first: the body's exception still to report, the
        identities of what was suppressed, and what interrupted the waits."""
        caught: BaseException | None = None
        flight = Flight.of([] if body is None else [body])
        gone: frozenset[int] = frozenset()
        for stage in reversed(self._stages):
            unwound = await stage.unwind(flight)
            flight, caught = unwound.flight, unwound.caught or caught
            gone |= unwound.gone
        if body is not None and id(body) in gone:
            # Suppressed, but for its Cancelled part (all of it, if delivered natively).
            body = None if is_cancellation(body) else cancelled_part(body)
        return body, gone, caught

    def _group(
        self,
        body: BaseException | None,
        body_ended: float,
        caught: BaseException | None,
        failures: list[BaseException],
    ) -> ParallelBaseExceptionGroup:
        """The one group: the body's exception, what interrupted us, then the failures."""
        members = [body] if body is not None else []
        records = records_of(failures)
        if body is not None:
            elapsed = body_ended - self._started_at
            records.insert(0, ContextFailure("body", None, "body", body, elapsed))
        if caught is not None:
            members.append(caught)
        members.extend(failures)
        phases = [record.phase for record in records if record.position is not None]
        total = sum(len(stage.holders) for stage in self._stages)
        message = summary(total, phases, body_failed=body is not None)
        return make_group(message, members, records, total)

    def _failures(self) -> list[BaseException]:
        return [f for stage in self._stages for f in stage.failures()]

    def names(self) -> str:
        return ", ".join(h.name for stage in self._stages for h in stage.holders)
