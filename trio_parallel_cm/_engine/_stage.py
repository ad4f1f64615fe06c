"""A stage: context managers entered together, held open together and exited together.

The one engine behind every public face: ``parallel_with`` is a block with one stage,
``ParallelExitStack`` a block with several, ``ResourceGraph`` a block with one stage whose
holders depend on one another, ``start_context`` a stage of one whose holder lives in the
caller's nursery.

Glossary (one word for one thing, in the code and its comments):

* **holder**: the task that enters, holds open and exits one context manager
  (``_holder.py``); its **life** is a ``_lifecycle.Life``, its **state** what the others
  see of it (derived).
* **owner**: what a stage belongs to and tells (a ``Block``, or a handle).
* **release**: the owner's side lets a holder exit, with a **delivery**
  (``_errors.Delivery``: what its ``__aexit__`` receives: an exception with the traceback
  read once, or **native**: its own ``Cancelled``).
* **failing**: an open context manager cancelled from inside (it failed, or ends by
  itself): ``Life.FAILING``.  **interrupted** is the raw fact its holder records, the
  order in time its park was cancelled (a handle's also from outside, then not failing).
  A failing holder waits to be released until what it **encloses** (the body, later
  stages, its dependents: what sits inside it in every nesting order) has unwound.
* **alert**: a holder tells its stage at once that its enter failed or it is failing;
  **abandon**: the stage cancels its pending enters (``abandoned_by`` names why);
  **unmoved**: a holder entered as its starter was cancelled, so Trio left it there.
* **flight**: what is on its way out, between two steps of the unwinding
  (``_flight.py``): the newest exceptions, and what suppressing them **covers**;
  **supersede**: an exception raised while another was handled replaces it;
  **gone**: what was suppressed.
* **unwind**: a stage's exit as one step of its block's unwinding.

Design notes:

* Entering: each context manager is started from an *entering* nursery into the owner's
  with the hand-off of ``nursery.start`` (``runtime.start_from``: on Trio a starter task
  awaiting ``owner_nursery.start(holder.run)``; on asyncio the entering nursery does a
  starter's work without one).  Cancelling the entering nursery cancels the enters
  still pending (an enter failed, or one is failing, before all had entered) and only
  them: holders that have entered are shielded and already live in the owner's nursery.
  A stage of one needs no starter: the caller awaits ``nursery.start`` itself.
* Exiting: the stage hands every open holder the same delivery (the exception that an
  ``async with`` block would pass to ``__aexit__``, read once with its traceback, because
  concurrent ``athrow`` calls rewrite ``__traceback__``), or "native": lift the shields so
  that each holder meets the caller's cancellation as its own ``Cancelled``.  Failing
  holders are released first, and the others receive the first failure among them.
* Exits are not cancelled by a failure or by the body's exception, but an outer
  cancellation reaches them as it would reach nested ``async with`` blocks: if the caller
  is (or becomes) cancelled while waiting, the shields are lifted (unless an exit timeout
  gives them a shielded budget).  Nursery exits never raise ``Cancelled`` (trio gh-1457),
  so every wait that could is ours and explicit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, cast

import attrs

from .. import _runtime
from .._errors import (
    NATIVE,
    NOTHING_DELIVERED,
    Delivery,
    delivery,
    make_group,
    records_of,
    summary,
)
from .._timeline import SKIPPED, EventKind, Observer, PhaseEvent, notify
from ._dag import Dag
from ._flight import NO_FLIGHT, NOTHING, Flight
from ._holder import Holder
from ._lifecycle import Life
from ._options import NO_OPTIONS, Options

HOLDER_TASK_NAME = "trio_parallel_cm holder"
STARTER_TASK_NAME = "trio_parallel_cm starter"


def _bare(exc: BaseException) -> BaseException:
    """``exc`` out of the groups of one that nurseries wrap it in: a ``KeyboardInterrupt``
    met in the entering nursery's wait comes out of it in Trio's group; what a block
    delivers and raises is the exception itself."""
    bare: BaseException = exc
    while isinstance(bare, BaseExceptionGroup):
        members = cast("BaseExceptionGroup[BaseException]", bare).exceptions
        if len(members) != 1:
            break
        bare = members[0]
    return cast(BaseException, bare)  # type: ignore[redundant-cast]  # (pyright sees a group of unknowns)


class Owner(Protocol):
    """What a stage tells the object it belongs to."""

    def failing(self, holder: Holder) -> None:
        """``holder``, open, is failing (it failed, or ends by itself) after the enter."""

    def holder_done(self, holder: Holder) -> BaseException | None:
        """``holder`` finished; return an exception for its task to raise, if any."""


@attrs.frozen
class Unwound:
    """What came of unwinding a stage (``Stage.unwind``)."""

    flight: Flight  # what goes on to the previous stage (see ``_flight.py``)
    gone: frozenset[int]  # the identities of what its context managers suppressed
    caught: BaseException | None  # what interrupted the wait (see ``Stage.exit``)


class Stage:
    """Holders entered and exited together, living in ``nursery``."""

    __slots__ = (
        "abandoned_by",
        "alerts",
        "dag",
        "done",
        "entering",
        "entering_scope",
        "held_back",
        "holders",
        "index",
        "limiter",
        "native_exit",
        "nursery",
        "observer",
        "outer_cancelled",
        "owner",
        "pending",
        "runtime",
        "settled",
        "shutdown_deadline",
        "shutdown_timeout",
        "sinks",
        "started_at",
        "unmoved",
    )

    def __init__(
        self,
        holders: Sequence[Holder],
        nursery: _runtime.Nursery,
        owner: Owner,
        runtime: _runtime.Runtime,
        *,
        index: int | None = None,
        options: Options = NO_OPTIONS,
        started_at: float,
        observer: Observer | None = None,
        deps: Sequence[Sequence[int]] | None = None,
        shutdown_timeout: float | None = None,
    ) -> None:
        self.holders = holders  # each with its own options (the stage's limit is ours)
        # A resource graph: holder ``i`` depends on the holders ``deps[i]``.
        self.dag = None if deps is None else Dag(deps)
        self.nursery = nursery
        self.owner = owner
        # The block's runtime (its holders reach it through us).
        self.runtime = runtime
        self.index = index
        limit = options.limit
        self.limiter = None if limit is None else runtime.CapacityLimiter(limit)
        self.started_at = started_at
        self.observer = observer
        self.entering = False
        self.entering_scope: _runtime.Cancellable | None = None
        # The holders whose enter failed, or that are failing, in the order they told us
        # (the first in time with a failure is what the others receive).
        self.alerts: list[Holder] = []
        # The one whose enter failure (or failing) made us cancel the pending enters.
        self.abandoned_by: Holder | None = None
        # A holder entered as its starter was cancelled, and was not moved; those waiting
        # for the failing ones to exit first.
        self.unmoved = False
        self.held_back: list[Holder] = []
        # Exiting: what the innermost context managers receive, natively or not, and
        # whether the owner is cancelled (then every holder released meets that
        # cancellation).
        self.sinks = NO_FLIGHT
        self.native_exit = False
        self.outer_cancelled = False
        self.pending = 0
        self.done: _runtime.Event | None = None
        self.settled: _runtime.Event | None = None
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
                self.alerts.append(holder)
                self._abandon(holder)
        elif state is Life.FAILING:
            self.alerts.append(holder)
            if self.entering:
                # As in nested blocks, whose later enters would sit inside it: cancel the
                # pending enters; the body will not run.  Without dependencies it encloses
                # nothing: it exits now, and the others after it.
                self._abandon(holder)
                others = (h for h in self.alerts if h is not holder)
                if self.dag is None and not holder.released and not any(h.failing for h in others):
                    holder.release(NATIVE)  # (one failing later waits for it: see exit)
            else:
                self.owner.failing(holder)
        else:
            # It entered as its starter was cancelled, so it was not moved into the
            # nursery: the stage is being abandoned and it exits at once (its starter
            # waits for it), with the failure known by then.  Only an outer
            # cancellation reaches its exit: a failure never cancels a cleanup.
            self.unmoved = True
            failing = [h for h in self.alerts if h.failing]
            # (One failing not yet released waits for the one failing before it, and so
            # does this one: it waits for them all.)
            if self.dag is None and any(h.released for h in failing):
                self.held_back.append(holder)  # released once they have exited
                return
            first = self.first_failure()
            if first is not None:
                holder.release(Delivery(first, first.__traceback__))
            elif self.abandoned_by is not None:
                holder.release(NOTHING_DELIVERED)  # one failing: its verdict is to come
            else:
                holder.release(NATIVE, unshield=True)

    def _abandon(self, holder: Holder) -> None:
        """Cancel the pending enters (once): the stage will not finish entering."""
        if self.abandoned_by is None:
            self.abandoned_by = holder
        if self.entering_scope is not None:
            self.entering_scope.cancel()

    def first_failure(self) -> BaseException | None:
        """The failure of the first holder in time whose enter failed, or that failed
        while open: what the others of the stage receive."""
        return next((h.failure for h in self.alerts if h.failure is not None), None)

    def has_dependencies(self, holder: Holder) -> bool:
        """A graph node started once its dependencies entered (not a root)."""
        return self.dag is not None and bool(self.dag.deps[holder.position])

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
            self.runtime.current_time(),
            exception,
            deps,
            attempt,
            holder.options.optional,
        )
        notify(self.observer, event)

    def holder_done(self, holder: Holder) -> BaseException | None:
        if self.entering and self.dag is None:
            self._next_failing()
        if self.held_back and not any(h.failing for h in self.alerts):
            first = self.first_failure()
            found = NOTHING_DELIVERED if first is None else Delivery(first, first.__traceback__)
            for held in self.held_back:
                held.release(found)
            self.held_back.clear()
        if self.dag is not None:
            for node in self.dag.finished(holder, self.holders):
                self._release_node(node)
        self.pending -= 1
        if not self.pending and self.done is not None:
            self.done.set()
        if self.settled is not None:
            self.settled.set()
        return self.owner.holder_done(holder)

    def _next_failing(self) -> None:
        """Entering, without dependencies: one failing waits for the failing one still
        cleaning up (``alert``); once none is, the first of those waiting exits."""
        failing = [h for h in self.alerts if h.failing]
        if failing and not any(h.released for h in failing):
            failing[0].release(NATIVE)

    def _release_node(self, node: int) -> None:
        """Release a node of the graph with what its dependents let through (a failing
        one, once they have finished, with its own cancellation)."""
        holder = self.holders[node]
        assert self.dag is not None
        received = self.dag.receives(node, self.holders, self._sinks_for(node))
        if holder.failing:
            holder.release(NATIVE)  # it meets its own cancellation: the delivery is moot
            return
        found = delivery(received)
        if not received and self.native_exit:
            found = NATIVE
        holder.release(found, unshield=found.native or self.outer_cancelled)

    def _sinks_for(self, node: int) -> Flight:
        """What a node that no entered node depends on receives: what the stage received,
        or, once the failing nodes it does not enclose have finished, the first failure."""
        assert self.dag is not None
        first = self.first_failure() if self.dag.waits_for_failing(node) else None
        return self.sinks if first is None else self.sinks.superseded_by((first,))

    # ---- called by the owner, in the owner's task -------------------------------------

    async def enter(self) -> None:
        """Enter every context manager concurrently; all or nothing.

        On a failure the context managers that entered exit with the first failure, and
        the failures are raised as one group.  On an outer cancellation they exit with
        their own ``Cancelled`` and the caller's ``Cancelled`` propagates.
        """
        self.entering = True
        caught = await self._start_enters()
        # The caller's own Cancelled is raised, unwrapped, if nothing else is.
        cancelled: BaseException | None = None
        if isinstance(caught, self.runtime.Cancelled):
            cancelled, caught = caught, None
        if (
            caught is None
            and cancelled is None
            and self.abandoned_by is None
            and not self.unmoved
            and not any(
                (holder.life is Life.NOT_ENTERED and not holder.tolerated)
                or (holder.life is Life.ENTERING and not self.skipped(holder))
                for holder in self.holders
            )
        ):
            self.entering = False
            return
        sinks = NO_FLIGHT if caught is None else Flight.of([caught])
        first = self.first_failure()
        if first is not None:
            sinks = sinks.superseded_by((first,))
        if self.shutdown_timeout is not None:
            self.begin_shutdown(self.runtime.current_time() + self.shutdown_timeout)
        found = delivery(sinks.current) if sinks.current else NATIVE
        caught_later = await self.exit(sinks, found)
        if isinstance(caught_later, self.runtime.Cancelled):
            cancelled, caught_later = cancelled or caught_later, None
        members = [caught] if caught is not None else []
        members.extend(self.failures())
        if members:
            message = self.message(interrupted=caught)
            raise make_group(message, members, records_of(members), len(self.holders))
        if caught_later is not None:
            raise caught_later
        if cancelled is not None:
            raise cancelled
        # No failure, yet not every holder entered and stayed: the enters were cancelled
        # from outside, and so is this task, which now meets its own Cancelled.
        await self.runtime.checkpoint()
        raise AssertionError("enters were cancelled but the caller is not")  # pragma: no cover

    async def _start_enters(self) -> BaseException | None:
        """Start every holder (a graph's as its dependencies enter) and wait for the enters.

        Returns what interrupted the wait: only a ``KeyboardInterrupt`` can.
        """
        holders, rt = self.holders, self.runtime
        try:
            if len(holders) == 1:
                self.pending = 1
                # Fixed task names: trio would otherwise format one for every task.
                await self.nursery.start(holders[0].run, self, name=HOLDER_TASK_NAME)
            else:
                async with rt.open_nursery() as entering:
                    self.entering_scope = entering.cancel_scope
                    if self.dag is None:
                        self.pending = len(holders)
                        for holder in holders:
                            rt.start_from(
                                entering,
                                self.nursery,
                                holder.run,
                                self,
                                name=HOLDER_TASK_NAME,
                                starter_name=STARTER_TASK_NAME,
                            )
                    else:
                        for node in self.dag.roots():
                            self._start_node(entering, node)
        except BaseException as exc:  # only a KeyboardInterrupt delivered while we wait
            return _bare(exc)
        return None

    def _start_node(self, entering: _runtime.Nursery, node: int) -> None:
        self.pending += 1
        entering.start_soon(self._enter_node, entering, node, name=STARTER_TASK_NAME)

    @_runtime.ki_protected  # (as a holder is: see _holder's design notes)
    async def _enter_node(self, entering: _runtime.Nursery, node: int) -> None:
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
        """From now on every exit of this stage ends by ``deadline`` (the shutdown budget).

        (A failing holder's cleanup starts after it is released, so it has that deadline
        too.)
        """
        self.shutdown_deadline = deadline

    async def unwind(self, flight: Flight) -> Unwound:
        """Exit every open holder with ``flight`` on its way out, as nested blocks would.

        What goes on to the previous stage is the newest (see ``_flight.py``): the exit
        failures of the members that were not failing (they supersede what those
        received), else what those let through; with the failures of the failing members
        that nothing received, one group, in position order, when several failed.
        """
        found = delivery(flight.current)
        caught = await self.exit(flight, found)
        if self.dag is not None:
            out, gone = self.dag.leaving()
            return Unwound(out, gone, caught)
        flight = self.sinks  # what the members that were not failing received
        gone = NOTHING
        if any(holder.suppressed for holder in self.holders):
            flight, gone = flight.suppressed(native=self.native_exit)
        failed = self._failed()
        exited = [h.failure for h in failed if h.failure is not None and not h.interrupted]
        if exited:
            flight = flight.superseded_by(exited)
        received = self.sinks.current
        unseen = [
            h.failure
            for h in failed
            if h.interrupted and h.failure is not None and h.failure not in received
        ]
        if unseen:
            flight = flight.alongside(unseen, order=self.failures())
        return Unwound(flight, gone, caught)

    async def exit(self, flight: Flight, found: Delivery) -> BaseException | None:
        """Release the open holders with ``found`` (or what supersedes it), wait for all.

        ``flight`` is what is on its way out, of which ``found`` is the delivery.  The
        failing holders go first: each exits, with its own cancellation, once what it
        encloses has unwound; then, without dependencies, every other holder receives the
        first failure (in time) of the stage, or else ``found``, at once.  In a graph,
        each node receives, once its dependents have finished, what they let through
        (``_dag.py``).  Returns what interrupted the waits (the caller's ``Cancelled``, or
        a ``KeyboardInterrupt``), for the owner to raise once every holder has finished.
        After ``begin_shutdown``, every exit runs shielded until the shutdown deadline,
        and is then cancelled.
        """
        self.sinks, self.native_exit = flight, found.native
        caller_cancelled = self.runtime.is_cancelled()
        cancelled = self.outer_cancelled = found.native or caller_cancelled
        if caller_cancelled:
            self.runtime.pass_on_cancellation(self.nursery)
        caught: BaseException | None = None
        if self.dag is not None:
            failing = [h for h in self.holders if h.failing]
            self._note_ties(failing)
            for node in self.dag.begin_exit(self.holders, failing):
                self._release_node(node)
        else:
            caught = await self._exit_failing_first(cancelled)
            found = self._deliver_to_the_rest(found)
            for holder in self.holders:
                if holder.state is Life.OPEN:
                    holder.release(found, unshield=cancelled)
                elif holder.failing and not holder.released:
                    holder.release(NATIVE)  # failing since: it meets its own cancellation
        if cancelled:
            self._unshield_exiting()
        if self.pending:
            self.done = done = self.runtime.Event()
            caught = await self._wait(done, cancelled=cancelled) or caught
        return caught

    async def _exit_failing_first(self, cancelled: bool) -> BaseException | None:
        """Without dependencies: release the failing holders, and wait for them.

        As if each were the innermost of its stage: what it encloses (the body, later
        stages) has unwound already, and the rest of the stage exits after it.
        """
        failing = [h for h in self.holders if h.failing]
        if not failing:
            return None
        self._note_ties(failing)
        for holder in failing:
            if not holder.released:
                holder.release(NATIVE, unshield=cancelled)
        caught: BaseException | None = None
        while any(holder.life is not Life.CLOSED for holder in failing):
            self.settled = settled = self.runtime.Event()
            caught = await self._wait(settled, cancelled=cancelled or caught is not None) or caught
        return caught

    def _deliver_to_the_rest(self, found: Delivery) -> Delivery:
        """What the holders that are not failing receive: the first failure of the stage
        (it supersedes what the stage received), else ``found``."""
        first = self.first_failure()
        if first is None or first in self.sinks.current:
            return found
        self.sinks = self.sinks.superseded_by((first,))
        self.native_exit = False
        return Delivery(first, first.__traceback__)

    def _note_ties(self, failing: Sequence[Holder]) -> None:
        """Failing holders that have not told us yet (their scope fired as the body
        ended): they count after those that did, in the order they were interrupted."""
        untold = [holder for holder in failing if holder not in self.alerts]
        self.alerts.extend(sorted(untold, key=lambda holder: holder.interrupted))

    async def _wait(self, event: _runtime.Event, *, cancelled: bool) -> BaseException | None:
        """Wait for ``event``; an outer cancellation reaches the exits (see the notes).

        Returns what interrupted the wait, for the owner to raise once every holder has
        finished; the wait then goes on, shielded.
        """
        caught: BaseException | None = None
        if not cancelled:
            try:
                await event.wait()
            except BaseException as exc:  # kept, and raised after every holder finished
                caught = exc
                if isinstance(exc, self.runtime.Cancelled):
                    self._cancelled_while_waiting()
        if not event.is_set():
            late = await self.runtime.wait_shielded(event)
            if late is not None and caught is None:
                # (A cancellation no shield stops: asyncio's native one.)
                caught = late
                self._cancelled_while_waiting()
        return caught

    def _cancelled_while_waiting(self) -> None:
        """The owner is cancelled: the exits meet it (see the notes)."""
        self.outer_cancelled = True
        self.runtime.pass_on_cancellation(self.nursery)
        self._unshield_exiting()

    def _unshield_exiting(self) -> None:
        if self.shutdown_deadline is not None:
            return  # every exit has a shielded budget, cancelled by its deadline
        for holder in self.holders:
            if holder.options.exit_timeout is not None:
                continue  # a shielded budget, cancelled by its own deadline
            if holder.state is Life.EXITING or holder.state is Life.FAILING:
                holder.unshield()

    def _failed(self) -> list[Holder]:
        """The holders whose failure counts, in argument order (tolerated ones aside)."""
        return [h for h in self.holders if h.failure is not None and not h.tolerated]

    def failures(self) -> list[BaseException]:
        """The recorded failures, in argument order (an optional node's tolerated aside)."""
        return [holder.failure for holder in self._failed() if holder.failure is not None]

    def message(self, interrupted: BaseException | None = None) -> str:
        """The group's message: the failures, after what interrupted the enters if
        anything did (a ``KeyboardInterrupt``)."""
        phases = [holder.phase for holder in self._failed()]
        failed = summary(len(self.holders), phases, body_failed=False)
        if interrupted is None:
            return failed
        head = f"{type(interrupted).__name__} while entering"
        return f"{head}; {failed}" if phases else head
