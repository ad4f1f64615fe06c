"""A stage: context managers entered together, held open together and exited together.

The one engine behind every public face: ``parallel_with`` is a block with one stage,
``ParallelExitStack`` a block with several, ``start_context`` a stage of one whose holder
lives in the caller's nursery.

Design notes:

* Entering: one starter task per context manager in an *entering* nursery, each awaiting
  ``owner_nursery.start(holder.run)``.  Cancelling the entering nursery cancels the enters
  still pending (an enter failed, or failed while open, before all had entered) and only
  them: holders that have entered are shielded and already live in the owner's nursery.
  A stage of one needs no starter: the caller awaits ``nursery.start`` itself.
* Exiting: the stage hands every open holder the same delivery (the exception that an
  ``async with`` block would pass to ``__aexit__``, read once with its traceback, because
  concurrent ``athrow`` calls rewrite ``__traceback__``), or "native": lift the shields so
  that each holder meets the caller's cancellation as its own ``Cancelled``.
* Exits are not cancelled by a failure or by the body's exception, but an outer
  cancellation reaches them as it would reach nested ``async with`` blocks: if the caller
  is (or becomes) cancelled while waiting, the shields are lifted (unless an exit timeout
  gives them a shielded budget).  Nursery exits never raise ``Cancelled`` (trio gh-1457),
  so every wait that could is ours and explicit.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from types import TracebackType
from typing import Protocol

import attrs
import trio

from ._dag import Dag
from ._errors import cancelled_parts, delivery, make_group, records_of, summary
from ._holder import Holder
from ._lifecycle import Life
from ._lowlevel import checkpoint, is_cancelled
from ._options import NO_OPTIONS, Options
from ._timeline import SKIPPED, EventKind, Observer, PhaseEvent, notify

HOLDER_TASK_NAME = "trio_parallel_cm holder"
STARTER_TASK_NAME = "trio_parallel_cm starter"


class Owner(Protocol):
    """What a stage tells the object it belongs to."""

    def interrupted(self, holder: Holder) -> None:
        """``holder``, open, is failing or ending by itself: it is cleaning up."""

    def holder_done(self, holder: Holder) -> BaseException | None:
        """``holder`` finished; return an exception for its task to raise, if any."""


@attrs.frozen
class Unwound:
    """What came of unwinding a stage (``Stage.unwind``)."""

    leaving: list[BaseException]  # what leaves it: not suppressed, plus its failures
    suppressed: bool  # some holder suppressed what it received
    native: bool  # what it received was a cancellation, met natively
    caught: BaseException | None  # what interrupted the wait (see ``Stage.exit``)


def traceback_of(exc: BaseException | None) -> TracebackType | None:
    """Read once, as it is released: concurrent ``athrow`` calls rewrite it."""
    return None if exc is None else exc.__traceback__


class Stage:
    """Holders entered and exited together, living in ``nursery``."""

    __slots__ = (
        "abandoned",
        "dag",
        "done",
        "ended_early",
        "entering",
        "entering_scope",
        "first_failure",
        "first_failure_tb",
        "holders",
        "index",
        "limiter",
        "native_exit",
        "nursery",
        "observer",
        "outer_cancelled",
        "owner",
        "pending",
        "settled",
        "shutdown_deadline",
        "shutdown_timeout",
        "sinks",
        "started_at",
    )

    def __init__(
        self,
        holders: Sequence[Holder],
        nursery: trio.Nursery,
        owner: Owner,
        *,
        index: int | None = None,
        options: Options = NO_OPTIONS,
        started_at: float,
        observer: Observer | None = None,
        deps: Sequence[Sequence[int]] | None = None,
        shutdown_timeout: float | None = None,
    ) -> None:
        self.holders = holders
        for holder in holders:
            if holder.options is NO_OPTIONS:
                holder.options = options
        # A resource graph: holder ``i`` depends on the holders ``deps[i]``.
        self.dag = None if deps is None else Dag(deps)
        self.nursery = nursery
        self.owner = owner
        self.index = index
        limit = options.limit
        self.limiter = None if limit is None else trio.CapacityLimiter(limit)
        self.started_at = started_at
        self.observer = observer
        self.entering = False
        self.entering_scope: trio.CancelScope | None = None
        self.first_failure: BaseException | None = None
        self.first_failure_tb: TracebackType | None = None
        self.ended_early = False
        self.abandoned = False
        # Exiting: what the sinks receive, natively or not, and whether the owner is
        # cancelled (then every holder released meets that cancellation).
        self.sinks: list[BaseException] = []
        self.native_exit = False
        self.outer_cancelled = False
        self.pending = 0
        self.done: trio.Event | None = None
        self.settled: trio.Event | None = None
        # The block's shutdown budget, and when the exits of this stage must end by it.
        self.shutdown_timeout = shutdown_timeout
        self.shutdown_deadline: float | None = None

    # ---- called by holders, in their own tasks ---------------------------------------

    def alert(self, holder: Holder) -> None:
        """Something happened to ``holder`` that the others must react to at once.

        The holder tells the stage two things only: this, and ``holder_done``; the stage
        reads the facts it recorded and decides.
        """
        state = holder.life  # it tells us in its own task, after recording it
        if state is Life.NOT_ENTERED:
            # Its enter failed (or it entered too late): the pending enters are cancelled,
            # unless it is an optional node, which the graph goes on without.
            if not holder.tolerated:
                self._abandon_entering(holder)
        elif state is Life.FAILING:
            # Cancelled from inside while open.  While entering, wait for the verdict
            # (holder_done): a context manager that ends cleanly lets the others finish.
            if not self.entering:
                self.owner.interrupted(holder)
        else:
            # It entered as its starter was cancelled, so it was not moved into the
            # nursery: the stage is being abandoned and it exits at once.
            self.abandoned = True
            if self.first_failure is not None:
                holder.release(
                    self.first_failure, self.first_failure_tb, native=False, unshield=False
                )
            else:
                holder.release(None, None, native=True, unshield=True)

    def _ended_while_open(self, holder: Holder) -> None:
        if not self.entering:
            return  # the owner knew at once (interrupted), and reads holder.failure
        if holder.failure is not None:
            self._abandon_entering(holder)
        else:
            # Python cannot skip the body of `async with` without raising, so the others
            # finish entering and the owner starts the body already cancelled.
            self.ended_early = True

    def _abandon_entering(self, holder: Holder) -> None:
        if self.first_failure is None:
            self.first_failure = failure = holder.failure
            assert failure is not None
            self.first_failure_tb = failure.__traceback__
        if self.entering_scope is not None:
            self.entering_scope.cancel()

    def notify(
        self,
        kind: EventKind,
        holder: Holder,
        exception: BaseException | None = None,
        *,
        attempt: int = 1,
    ) -> None:
        assert self.observer is not None
        deps = () if self.dag is None else self.dag.deps[holder.position]
        event = PhaseEvent(
            kind,
            holder.name,
            holder.position,
            self.index,
            trio.current_time(),
            exception,
            deps,
            attempt,
            holder.options.optional,
        )
        notify(self.observer, event)

    def holder_done(self, holder: Holder) -> BaseException | None:
        if holder.ended_on_its_own:
            self._ended_while_open(holder)
        if self.dag is not None:
            for node in self.dag.finished(holder, self.holders):
                self._release_node(node)
        self.pending -= 1
        if not self.pending and self.done is not None:
            self.done.set()
        if self.settled is not None:
            self.settled.set()
        return self.owner.holder_done(holder)

    def _release_node(self, node: int) -> None:
        """Release an open node of the graph with what its dependents let through."""
        holder = self.holders[node]
        if holder.state is not Life.OPEN:
            return  # it failed, or ended by itself, while open: it exits on its own
        assert self.dag is not None
        received = self.dag.receives(node, self.holders, self.sinks)
        deliver, native = delivery(received)
        native = native or (not received and self.native_exit)
        holder.release(
            deliver, traceback_of(deliver), native=native, unshield=native or self.outer_cancelled
        )

    # ---- called by the owner, in the owner's task -------------------------------------

    async def enter(self) -> None:
        """Enter every context manager concurrently; all or nothing.

        On a failure the context managers that entered exit with the first failure, and
        the failures are raised as one group.  On an outer cancellation they exit with
        their own ``Cancelled`` and the caller's ``Cancelled`` propagates.
        """
        holders = self.holders
        self.entering = True
        caught = await self._start_enters()
        # One interrupted while the others entered: its verdict decides whether the body
        # may run (a failure is handled like an enter failure), so wait for its cleanup.
        caught = await self.settle() or caught
        # The caller's own Cancelled is raised, unwrapped, if nothing else is.
        cancelled: BaseException | None = None
        if isinstance(caught, trio.Cancelled):
            cancelled, caught = caught, None
        if (
            caught is None
            and cancelled is None
            and self.first_failure is None
            and not self.abandoned
            and not any(
                (holder.life is Life.NOT_ENTERED and not holder.tolerated)
                or (holder.life is Life.ENTERING and not self.skipped(holder))
                for holder in holders
            )
        ):
            self.entering = False
            return
        deliver = caught if self.first_failure is None else self.first_failure
        sinks = [] if deliver is None else [deliver]
        if self.shutdown_timeout is not None:
            self.begin_shutdown(trio.current_time() + self.shutdown_timeout)
        caught_later = await self.exit(sinks, deliver, native=deliver is None)
        if isinstance(caught_later, trio.Cancelled):
            cancelled, caught_later = cancelled or caught_later, None
        members = [caught] if caught is not None else []
        members.extend(self.failures())
        if members:
            raise make_group(self.message(), members, records_of(members), len(self.holders))
        if caught_later is not None:
            raise caught_later
        if cancelled is not None:
            raise cancelled
        # No failure, yet not every holder entered and stayed: the enters were cancelled
        # from outside, and so is this task, which now meets its own Cancelled.
        await checkpoint()
        raise AssertionError("enters were cancelled but the caller is not")  # pragma: no cover

    async def _start_enters(self) -> BaseException | None:
        """Start every holder (a graph's as its dependencies enter) and wait for the enters.

        Returns what interrupted the wait: only a ``KeyboardInterrupt`` can.
        """
        holders = self.holders
        # Fixed task names: trio would otherwise format one for every task.
        start = functools.partial(self.nursery.start, name=HOLDER_TASK_NAME)
        try:
            if len(holders) == 1:
                self.pending = 1
                await start(holders[0].run, self)
            else:
                async with trio.open_nursery() as entering:
                    self.entering_scope = entering.cancel_scope
                    if self.dag is None:
                        self.pending = len(holders)
                        for holder in holders:
                            entering.start_soon(start, holder.run, self, name=STARTER_TASK_NAME)
                    else:
                        for node in self.dag.roots():
                            self._start_node(entering, node)
        except BaseException as exc:  # only a KeyboardInterrupt delivered while we wait
            return exc
        return None

    def _start_node(self, entering: trio.Nursery, node: int) -> None:
        self.pending += 1
        entering.start_soon(self._enter_node, entering, node, name=STARTER_TASK_NAME)

    async def _enter_node(self, entering: trio.Nursery, node: int) -> None:
        """A graph node's starter: enter it, then start the dependents it was the last for."""
        holder = self.holders[node]
        await self.nursery.start(holder.run, self, name=HOLDER_TASK_NAME)
        assert self.dag is not None
        if holder.tolerated:
            # An optional node that did not enter: what depends on it never starts.
            for skipped in self.dag.leave_out(node):
                if self.observer is not None:
                    self.notify(SKIPPED, self.holders[skipped])
            return
        if holder.life is Life.NOT_ENTERED or entering.cancel_scope.cancel_called:
            return  # never call the factories of the nodes after a failure
        for dependent in self.dag.entered(node):
            self._start_node(entering, dependent)

    def skipped(self, holder: Holder) -> bool:
        """Never started: an optional node it depends on did not enter."""
        return self.dag is not None and self.dag.skipped[holder.position]

    def begin_shutdown(self, deadline: float) -> None:
        """From now on every exit of this stage ends by ``deadline`` (the shutdown budget):
        those to come, and the cleanups of holders failing (or ending by themselves)."""
        self.shutdown_deadline = deadline
        for holder in self.holders:
            if holder.failing:
                holder.end_exit_by(deadline)

    async def unwind(self, propagating: list[BaseException]) -> Unwound:
        """Exit every open holder with ``propagating`` on its way out, as nested blocks would."""
        deliver, native = delivery(propagating)
        caught = await self.exit(propagating, deliver, native=native)
        suppressed = any(holder.suppressed for holder in self.holders)
        if self.dag is not None:
            return Unwound(self.dag.leaving(), suppressed, native, caught)
        leaving = list(propagating)
        if suppressed:
            leaving = [] if native else cancelled_parts(propagating)
        seen = {id(e) for e in leaving}
        leaving.extend(f for f in self.failures() if id(f) not in seen)
        return Unwound(leaving, suppressed, native, caught)

    async def exit(
        self, sinks: list[BaseException], deliver: BaseException | None, *, native: bool
    ) -> BaseException | None:
        """Release the open holders with ``deliver`` (or natively) and wait for them all.

        Without dependencies every open holder receives ``deliver`` at once; in a graph, the
        nodes nothing depends on do, and each other node, once its dependents have
        finished, what they let through (``_dag.py``); ``sinks`` is what is on its way
        out, of which ``deliver`` is the delivery.  Returns what interrupted the wait (the
        caller's ``Cancelled``, or a ``KeyboardInterrupt``), for the owner to raise once
        every holder has finished.  After ``begin_shutdown``, every exit runs shielded
        until the shutdown deadline, and is then cancelled.
        """
        self.sinks, self.native_exit = sinks, native
        cancelled = self.outer_cancelled = native or is_cancelled()
        if self.dag is None:
            tb = traceback_of(deliver)
            for holder in self.holders:
                if holder.state is Life.OPEN:
                    holder.release(deliver, tb, native=native, unshield=cancelled)
        else:
            for node in self.dag.begin_exit(self.holders):
                self._release_node(node)
        if cancelled:
            self._unshield_exiting()
        caught: BaseException | None = None
        if self.pending:
            self.done = done = trio.Event()
            if not cancelled:
                try:
                    await done.wait()
                except BaseException as exc:  # kept, and raised after every holder finished
                    caught = exc
                    if isinstance(exc, trio.Cancelled):
                        self.outer_cancelled = True
                        self._unshield_exiting()
            if self.pending:
                with trio.CancelScope(shield=True):
                    await done.wait()
        return caught

    async def settle(self, holders: Sequence[Holder] | None = None) -> BaseException | None:
        """Wait for the holders failing (or ending by themselves) while open to finish.

        Their failure, first in time, is what the others receive: it is known only once
        their cleanup is over.  Like ``exit``, an outer cancellation reaches that cleanup;
        what interrupted the wait is returned.  ``holders``: only those (of this stage).
        """
        watched = self.holders if holders is None else holders
        caught: BaseException | None = None
        while any(holder.failing for holder in watched):
            self.settled = settled = trio.Event()
            if caught is None and not is_cancelled():
                try:
                    await settled.wait()
                except BaseException as exc:  # kept, and raised after every holder finished
                    caught = exc
                continue
            self._unshield_exiting()
            with trio.CancelScope(shield=True):
                await settled.wait()
        return caught

    def _unshield_exiting(self) -> None:
        if self.shutdown_deadline is not None:
            return  # every exit has a shielded budget, cancelled by its deadline
        for holder in self.holders:
            if holder.options.exit_timeout is not None:
                continue  # a shielded budget, cancelled by its own deadline
            if holder.state is Life.EXITING or holder.state is Life.FAILING:
                holder.scope.shield = False

    def _failed(self) -> list[Holder]:
        """The holders whose failure counts, in argument order (tolerated ones aside)."""
        return [h for h in self.holders if h.failure is not None and not h.tolerated]

    def failures(self) -> list[BaseException]:
        """The recorded failures, in argument order (an optional node's tolerated aside)."""
        return [holder.failure for holder in self._failed() if holder.failure is not None]

    def message(self) -> str:
        phases = [holder.phase for holder in self._failed()]
        return summary(len(self.holders), phases, body_failed=False)
