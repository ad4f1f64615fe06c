"""The holder: the one task that enters, holds open and exits one context manager.

Design notes:

* ``__aenter__`` and ``__aexit__`` run in the holder task and nowhere else, so the cancel
  scopes, nurseries and locks a context manager opens stay in the task that opened them.
* The holder is started with ``nursery.start``.  Before ``started()`` it runs under its
  starter, so the stage's entering scope (and any outer scope) cancels a pending enter.
  ``started()`` then moves it into the owner's nursery, unless the starter is already
  cancelled at that instant: Trio then quietly leaves it where it is, so the holder checks
  where it ended up and, if it was not moved, exits at once (trio's ``_TaskStatus.started``).
* The holder's own cancel scope sits *outside* the context manager and is shielded once the
  context manager has entered (the pattern of tricycle's ``open_service_nursery``), so an
  outer cancellation cannot make it exit early.  While open, a cancellation can then only
  come from a scope *inside* the context manager: it is failing (it failed, or ends by
  itself).  It then waits, shielded inside that cancelled scope, until the stage releases
  it: what it encloses (the body, later stages, its dependents) unwinds first, as in
  nested blocks (``_await_release``).  (A
  handle's holder is shielded too; a watcher task passes its nursery's cancellation on:
  see ``_handle.Watcher``.)
* The same scope carries the enter and exit deadlines (set on it, lifted from it), so no
  scope is ever entered around ``__aenter__`` or ``__aexit__`` alone.
* Its life reads in ``run`` as enter (``_enter``, ``_enter_failed``, ``_opened``), hold
  (``_holding``, then a park), exit (``_exit``, ``_exited``); what ``__aenter__`` and
  ``__aexit__`` did is captured as ``outcome`` values and recorded once.
* The holder parks (``_runtime.park``) and is woken by ``unpark``: no event,
  no parking lot, and the abort function tells an inner cancellation apart from a release.
* The holder records its outcome for the owner, which builds one group.  It raises only in
  a handle's holder, where a failure nobody asked for belongs to the nursery.
* ``__aexit__`` is called while the exception it receives is being handled in the holder
  task, as the interpreter calls it for ``async with``: an exception it raises then gets
  that exception as its implicit ``__context__`` ("During handling of the above
  exception...").  Making it the handled exception takes a ``raise``, which would add the
  holder's frame to its traceback (and could set its context): both are put back before
  anything else runs, because other holders read that same object (see ``call_aexit``).
* The holder task is protected from ``KeyboardInterrupt`` (Trio's KI protection, which
  the context manager's own code inherits): a Ctrl+C goes to the main task, which cancels
  the block as any failure does.  Raised in a holder between two of its steps (entered,
  not yet parked), it would leave an entered context manager open for good.
* Once started, it drops its task status: that object keeps the starter's nursery, and the
  finished starter task, alive (about 2 KB per open context manager).
"""

from __future__ import annotations

import contextvars
import itertools
import math
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Protocol

import outcome

from .. import _runtime
from .._attempts import attempts_group
from .._errors import (
    ENTERING,
    EXITING,
    NOTHING_DELIVERED,
    OPEN,
    ContextFailure,
    Delivery,
    Phase,
    add_note,
    attach_record,
    failure_note,
    own_failure,
    without,
)
from .._names import name_of
from .._timeline import (
    ENTER_FAILED,
    ENTER_RETRIED,
    ENTER_STARTED,
    EXIT_FAILED,
    EXIT_STARTED,
    EXITED,
    EventKind,
)
from .._timeline import ENTERED as ENTERED_EVENT
from ._lifecycle import NEXT, Life, check_transition
from ._options import NO_OPTIONS, Options
from ._retry import Retry


class WatcherView(Protocol):
    """What a holder asks of a handle's watcher (``_handle.Watcher``)."""

    @property
    def from_outside(self) -> bool:
        """Its nursery was cancelled while the holder was open."""
        ...

    def stop(self) -> None:
        """The holder has finished: the watcher may end."""


class StageView(Protocol):
    """What a holder needs of its stage (``_stage.Stage``): read, or told."""

    @property
    def runtime(self) -> _runtime.Runtime: ...
    @property
    def nursery(self) -> _runtime.Nursery: ...
    @property
    def limiter(self) -> _runtime.Limiter | None: ...
    @property
    def observer(self) -> object | None: ...
    @property
    def index(self) -> int | None: ...
    @property
    def started_at(self) -> float: ...
    @property
    def shutdown_deadline(self) -> float | None: ...
    @property
    def shutdown_timeout(self) -> float | None: ...
    @property
    def abandoned_by(self) -> Holder | None: ...

    def has_dependencies(self, holder: Holder) -> bool:
        """A graph node that waited for dependencies to enter."""
        ...

    def notify(
        self,
        kind: EventKind,
        holder: Holder,
        exception: BaseException | None = None,
        *,
        attempt: int = 1,
    ) -> None:
        """Tell the observer (only called when there is one)."""

    def alert(self, holder: Holder) -> None:
        """Something happened to ``holder`` that the others must react to at once."""

    def holder_done(self, holder: Holder) -> BaseException | None:
        """``holder`` finished; an exception for its task to raise, if any."""


async def call_aexit(
    aexit: Callable[..., Awaitable[bool | None]],
    cm: Any,
    exc: BaseException,
    tb: TracebackType | None,
) -> bool | None:
    """``await aexit(cm, type(exc), exc, tb)``, chaining as nested ``async with`` does.

    The interpreter calls ``__aexit__`` while the block's exception is being handled, so an
    exception that ``__aexit__`` raises gets it as its implicit ``__context__`` (an
    explicit ``__context__ = None``, or a context already set, is kept: Python's own
    chaining decides, cycles included).  ``exc`` itself is left exactly as it was: the
    ``raise`` that makes it the handled exception would add this frame to its traceback,
    and other holders read it concurrently, so its traceback and context are put back
    before the first checkpoint.
    """
    traceback, context = exc.__traceback__, exc.__context__
    try:
        raise exc  # noqa: TRY301  # the point: to handle it here
    except BaseException:  # now the handled exception of this task, as in `async with`
        exc.__traceback__, exc.__context__ = traceback, context
        return await aexit(cm, type(exc), exc, tb)


AExit = Callable[..., Awaitable["bool | None"]]

#: In a holder task, as its ``__aexit__`` runs: when its exit budget (``exit_timeout``,
#: ``shutdown_timeout``) runs out, if it has one.  ``in_thread`` reads it: a thread's
#: ``__exit__`` cannot be cut short, so that is when its task stops waiting for it.
EXIT_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "trio_parallel_cm exit deadline", default=None
)

# The order in which holders were interrupted while open (``Holder.interrupted``).
_INTERRUPTIONS = itertools.count(1)


def _never_aborted(raise_cancel: object) -> Any:  # pragma: no cover
    raise AssertionError("a failing holder waits for its release shielded")


def protocol_of(cm: object) -> tuple[Callable[[Any], Awaitable[Any]], AExit]:
    """``__aenter__`` and ``__aexit__``, looked up on the type first, as ``async with`` does."""
    cls: Any = type(cm)
    return cls.__aenter__, cls.__aexit__


class Holder:
    """One context manager and the state of the task that owns it.

    One writer per field.  The holder task records its life (``_lifecycle.Life``) through
    ``_become`` only, which checks each transition against the table.  Two things happen to
    a parked holder from outside, each recorded by its own writer as a fact: ``release``
    (the owner lets it exit, with what ``__aexit__`` receives) and ``_abort`` (its park was
    cancelled: its own context manager cancelled it while open).  ``state``, what the
    others read, is derived from the three.
    """

    __slots__ = (
        "awaiting_release",
        "cm",
        "delivery",
        "failed_attempts",
        "failure",
        "interrupted",
        "key",
        "life",
        "make",
        "options",
        "phase",
        "position",
        "released",
        "runtime",
        "scope",
        "suppressed",
        "task",
        "value",
        "watcher",
    )

    def __init__(
        self,
        cm: Any,
        position: int,
        key: object = None,
        *,
        make: Callable[[], Any] | None = None,
        options: Options | None = None,
    ) -> None:
        self.cm: Any = cm
        self.position = position
        self.key = key
        # A resource graph's node: the factory call that makes ``cm``, in this task, once
        # its dependencies have entered.
        self.make = make
        # Its options, resolved by the face that made it (a stage's, or a graph node's).
        self.options: Options = NO_OPTIONS if options is None else options
        # Written by ``release`` only: the owner let it exit, with what ``__aexit__``
        # receives (one record for every holder of the stage).
        self.released = False
        self.delivery: Delivery = NOTHING_DELIVERED
        # Written by ``_abort`` only: its park was cancelled (the order of that, from 1:
        # the first in time wins where several are).
        self.interrupted = 0
        # Written by ``_await_release`` only: interrupted, it waits for ``release``.
        self.awaiting_release = False
        self.value: Any = None
        # Its stage's runtime, and its own scope (both set as its task begins).
        self.runtime: _runtime.Runtime
        self.scope: _runtime.CancelScope
        # Set once it is held open in the owner's nursery (then it parks at once).
        self.task: object = None
        # Written by ``_become`` only, in the holder task.
        self.life = Life.ENTERING
        self.suppressed = False
        self.failure: BaseException | None = None
        # With ``retry``: the failures of the attempts made before the last, in order.
        self.failed_attempts: list[BaseException] | None = None
        self.phase: Phase = ENTERING
        # A handle's watcher (``_handle.Watcher``), set by ``start_context`` before entering.
        self.watcher: WatcherView | None = None

    @property
    def name(self) -> str:
        return name_of(self.cm, self.key)

    @property
    def from_outside(self) -> bool:
        """A handle's nursery was cancelled while it was open (its watcher saw it first)."""
        return self.watcher is not None and self.watcher.from_outside

    @property
    def state(self) -> Life:
        """Its life as the others see it: what the holder task recorded, and what has
        happened to it while parked (released, or interrupted) that it has not yet seen."""
        life = self.life
        if life is Life.OPEN:
            if self.interrupted:
                return Life.FAILING
            if self.released:
                return Life.EXITING
        return life

    @property
    def tolerated(self) -> bool:
        """An optional node that failed to enter with an ``Exception``: the graph goes on
        without it (a cancellation, a ``KeyboardInterrupt`` or a later failure is never
        tolerated)."""
        return (
            self.options.optional
            and self.life is Life.NOT_ENTERED
            and isinstance(self.failure, Exception)
        )

    @property
    def failing(self) -> bool:
        """Cancelled from inside while open (it failed, or ends by itself), not yet closed.

        (``state is Life.FAILING``, without the call: the stage asks it of every holder.)
        """
        life = self.life
        return life is Life.FAILING or (life is Life.OPEN and self.interrupted != 0)

    def _become(self, life: Life) -> None:
        if life not in NEXT[self.life._name_]:  # check_transition, inlined: per holder
            check_transition(self.life, life)  # raises
        self.life = life

    def _fail(self, stage: StageView, exc: BaseException, phase: Phase) -> None:
        name = self.name
        add_note(exc, failure_note(name, self.position, phase, stage.index))
        elapsed = self.runtime.current_time() - stage.started_at
        attach_record(exc, ContextFailure(name, self.position, phase, exc, elapsed, stage.index))
        self.failure = exc
        self.phase = phase

    def _abort(self, raise_cancel: object) -> Any:
        # Only a scope inside the context manager can reach a parked holder (its own scope
        # is shielded): the context manager failed or ended by itself while open.  In a
        # handle's holder it may also be the nursery: its watcher tells them apart.
        self.interrupted = next(_INTERRUPTIONS)
        return self.runtime.ABORTED

    def release(self, delivery: Delivery, *, unshield: bool = False) -> None:
        """Let the holder exit with ``delivery``, waking it if parked.

        The owner's side: the stage calls it once, on a holder whose ``state`` is open or
        failing.  A failing one (interrupted while open) ignores ``delivery``: its
        ``__aexit__`` receives its own cancellation, once what it encloses has unwound.
        (One that entered as its stage was abandoned is not parked: the stage, alerted by
        the holder task, releases it from there, and it exits at once.)
        """
        assert not self.released
        self.released = True
        self.delivery = delivery
        task = self.task
        if task is not None and (self.awaiting_release or not self.interrupted):
            # (Interrupted but not yet waiting: it is already scheduled, and will see
            # ``released`` before it waits.)
            self.runtime.unpark(task)
        # After unpark() the task has no abort function, so lifting the shield cannot
        # abort the park: the holder meets the cancellation at its next checkpoint instead.
        if unshield:
            self.unshield()

    def unshield(self) -> None:
        """Let an outer cancellation reach the holder's exit (or its enter, not yet moved).

        The owner's side (the stage, a handle's watcher); the holder's own scope is
        written here and in the holder task only.
        """
        self.scope.shield = False

    @_runtime.ki_protected  # (see the design notes)
    async def run(self, stage: StageView, *, task_status: _runtime.TaskStatus) -> None:
        """The holder task: enter, hold open, exit.  Started by ``nursery.start``.

        Never raises, except in a handle's holder (``start_context``): a failure that no
        ``aclose()`` claimed is raised into the handle's nursery, as structured
        concurrency wants.
        """
        rt = self.runtime = stage.runtime
        scope = self.scope = rt.CancelScope()
        if self.options.enter_timeout is not None:
            # On the holder's own scope, outside the context manager, so nesting stays
            # right; lifted once entered.
            scope.deadline = rt.current_time() + self.options.enter_timeout
        unclaimed: BaseException | None = None
        try:
            with scope:
                entering: outcome.Value[AExit] | outcome.Error
                try:
                    entering = outcome.Value(await self._enter(stage))
                except BaseException as exc:  # every outcome of __aenter__ is recorded
                    entering = outcome.Error(exc)
                if type(entering) is outcome.Error:  # (isinstance of an ABC is slow)
                    self._enter_failed(stage, entering.error)
                    task_status.started()
                    return
                aexit = entering.value
                del entering  # not held while it is open (memory per open context manager)
                late = self._opened(stage)
                task_status.started()
                del task_status  # see the design notes
                delivery = None if late is None else Delivery(late)
                if delivery is None and self._holding(stage):
                    try:
                        await rt.park(self._abort)
                    except BaseException as exc:  # cancelled while open: see _abort
                        delivery = self._interrupted(stage, exc)
                        del exc
                        await self._await_release()
                if delivery is None:
                    if not self.released:  # not moved, held back: see _holding
                        await self._await_release()
                    delivery = self._released()
                await self._exit(stage, aexit, delivery)
        finally:
            if self.watcher is not None:
                self.watcher.stop()
            unclaimed = stage.holder_done(self)
        if unclaimed is not None:
            raise rt.task_failure(unclaimed)

    async def _enter(self, stage: StageView) -> AExit:
        """Make the context manager (a graph node's factory), enter it; its ``__aexit__``."""
        limiter = stage.limiter
        if limiter is not None:
            await limiter.acquire()
        try:
            if stage.observer is not None:
                stage.notify(ENTER_STARTED, self)
            if self.make is not None:
                if stage.has_dependencies(self):
                    # A dependent, started once its dependencies entered: not if an enter
                    # failure has cancelled the stage's enters since.  (A root starts with
                    # the graph, as the context managers of parallel_with do.)
                    await self.runtime.checkpoint_if_cancelled()
                if self.options.retry is not None:
                    return await self._attempts(stage, self.options.retry)
                self.cm = self.make()
            aenter, aexit = protocol_of(self.cm)
            self.value = await aenter(self.cm)
            return aexit
        finally:
            if limiter is not None:
                limiter.release()

    async def _attempts(self, stage: StageView, retry: Retry) -> AExit:
        """Enter, retrying: each attempt makes a new context manager (see ``Retry``).

        A failed attempt's context manager is left as ``async with`` leaves one whose
        ``__aenter__`` raised.  Its failure is kept in ``failed_attempts``; the holder's
        scope (its enter deadline) bounds every attempt and every wait.
        """
        assert self.make is not None
        attempt = 1
        while True:
            try:
                self.cm = self.make()
                aenter, aexit = protocol_of(self.cm)
                self.value = await aenter(self.cm)
            except Exception as exc:  # (a cancellation, or a KeyboardInterrupt, is not)
                if attempt >= retry.attempts or not retry.retries(exc):
                    raise
                failed = exc
            else:
                return aexit
            self.failed_attempts = [*(self.failed_attempts or ()), failed]
            if stage.observer is not None:
                stage.notify(ENTER_RETRIED, self, failed, attempt=attempt)
            del failed
            await self.runtime.sleep(retry.delay(attempt))
            attempt += 1

    def _enter_failed(self, stage: StageView, exc: BaseException) -> None:
        """Record an ``__aenter__`` that raised or was cancelled (every outcome counts)."""
        self._become(Life.NOT_ENTERED)
        failure = own_failure(exc, self.name, self.runtime)
        if failure is None and self.scope.cancel_called:
            failure = self._too_slow("enter", self.options.enter_timeout)
        if failure is not None and self.failed_attempts:
            attempts = [*self.failed_attempts, failure]
            failure = attempts_group(attempts)
        if failure is not None:
            self._fail(stage, failure, ENTERING)
        if stage.observer is not None:
            stage.notify(ENTER_FAILED, self, failure)
        if failure is not None:
            stage.alert(self)

    def _opened(self, stage: StageView) -> BaseException | None:
        """``__aenter__`` returned: open and shielded, or too late (the failure, returned)."""
        scope = self.scope
        # Only its deadline ever cancels the holder's own scope (no deadline, no question:
        # ``cancel_called`` reads the clock).
        if self.options.enter_timeout is not None and self._lift_deadline():
            # The deadline passed just as __aenter__ returned: too slow all the same.  It
            # is entered, so it exits at once with that failure.
            self._enter_failed(stage, self._too_slow("enter", self.options.enter_timeout))
            return self.failure
        scope.shield = True
        self._become(Life.OPEN)
        if stage.observer is not None:
            stage.notify(ENTERED_EVENT, self)
        return None

    def _lift_deadline(self) -> bool:
        """Lift the enter deadline; whether it had already fired."""
        self.scope.deadline = math.inf
        return self.scope.cancel_called

    def _holding(self, stage: StageView) -> bool:
        """Hold it open: whether to park (else it was released at once: exit)."""
        task = self.runtime.current_task()
        if not self.runtime.moved(task, stage.nursery):
            # Not moved: the starter was cancelled as we entered, so the stage is being
            # abandoned and waits, under that starter, for us.
            stage.alert(self)  # it releases us, now or once the failing ones have exited
            return False
        self.task = task
        return True

    def _released(self) -> Delivery:
        """Released by the owner: what ``__aexit__`` receives."""
        self._become(Life.EXITING)
        return self.delivery

    def _interrupted(self, stage: StageView, exc: BaseException) -> Delivery:
        """Cancelled while parked: what ``__aexit__`` receives (its own ``Cancelled``)."""
        self._become(Life.FAILING)
        if not self.from_outside:
            # It failed or ends by itself: as nested `async with` would, cancel the body
            # now; its cleanup waits for what it encloses (``_await_release``).
            stage.alert(self)
        return Delivery(exc, exc.__traceback__)

    async def _await_release(self) -> None:
        """Failing: wait, shielded inside its own cancelled scope, until released.

        As in nested blocks, what it encloses (the body, later stages, the nodes that
        depend on it) unwinds before its ``__aexit__`` runs.  A handle's holder (no
        body) is released at once, and so is one cancelled from outside.  (Also one not
        moved, entered as its stage's enters were cancelled for one failing: it waits
        for that one to exit.)
        """
        if self.released or self.from_outside:
            return
        with self.runtime.CancelScope(shield=True):
            self.task = self.runtime.current_task()
            self.awaiting_release = True
            await self.runtime.park(_never_aborted)

    async def _exit(
        self,
        stage: StageView,
        aexit: AExit,
        delivery: Delivery,
    ) -> None:
        """Run ``__aexit__`` with what was delivered (or our own ``Cancelled``), record it."""
        exc_in, tb = delivery.exception, delivery.traceback
        if delivery.native:
            # The body was cancelled: meet the cancellation as our own.
            try:
                await self.runtime.checkpoint()
            except BaseException as exc:  # our own Cancelled, passed to __aexit__
                exc_in, tb = exc, exc.__traceback__
        limiter = stage.limiter
        if limiter is not None:
            with self.runtime.CancelScope(shield=True):
                await limiter.acquire()
        deadline = self._exit_deadline(stage)
        if deadline is not None:
            # A graceful shutdown budget: shielded, then cancelled (a failing holder's
            # own context manager is cancelled already: its deadline decides the report).
            self.scope.shield = True
            self.scope.deadline = deadline
            EXIT_DEADLINE.set(deadline)  # (the holder task ends with its exit)
        if stage.observer is not None and self.life is not Life.NOT_ENTERED:
            stage.notify(EXIT_STARTED, self)
        exiting: outcome.Value[bool | None] | outcome.Error
        try:
            if exc_in is None:  # the common case needs no chaining: one coroutine less
                exiting = outcome.Value(await aexit(self.cm, None, None, None))
            else:
                exiting = outcome.Value(await call_aexit(aexit, self.cm, exc_in, tb))
        except BaseException as exc:  # a failure while exiting is recorded
            exiting = outcome.Error(exc)
        if limiter is not None:
            limiter.release()
        self._exited(stage, exiting, exc_in)

    def _exited(
        self,
        stage: StageView,
        exiting: outcome.Value[bool | None] | outcome.Error,
        exc_in: BaseException | None,
    ) -> None:
        """Record what ``__aexit__`` did: suppressed, let through, or failed."""
        # Cancelled while open: from inside the context manager (it failed, or ended by
        # itself), unless a handle's watcher saw its nursery cancelled first: then it is
        # an ordinary exit.
        failing = self.interrupted and not self.from_outside  # (its life is FAILING)
        escaped: BaseException | None
        if type(exiting) is outcome.Error:  # (isinstance of an ABC is slow)
            suppress, escaped = False, exiting.error
        else:
            assert type(exiting) is outcome.Value
            suppress = bool(exiting.value)
            escaped = None if suppress else exc_in
        if self.life is Life.NOT_ENTERED:
            escaped = None  # timed out as it entered: its exit's outcome adds nothing
        else:
            self._become(Life.CLOSED)
            if exc_in is not None and suppress and not failing:
                self.suppressed = True
        if escaped is not None and not failing and exc_in is not None:
            # Letting the delivered exception through is not a failure.
            escaped = without(escaped, exc_in)
        failure = None if escaped is None else own_failure(escaped, self.name, self.runtime)
        if (
            failure is None
            and failing
            and stage.abandoned_by is self
            and not self.runtime.is_cancelled()
        ):
            # It ended by itself while the others were entering: their enters were
            # cancelled, as nested blocks inside it would be, so the body cannot run.
            # (If the caller is cancelled, that cancellation says why already.)
            failure = RuntimeError(
                f"{self.name} ended by itself while the others were entering; "
                "the body cannot run without them"
            )
        if (
            failure is None
            and self.life is not Life.NOT_ENTERED
            and self.scope.deadline != math.inf  # (else nothing cancels it: no clock read)
            and self.scope.cancel_called
        ):
            failure = self._exit_too_slow(stage)
        if failure is not None:
            self._fail(stage, failure, OPEN if failing else EXITING)
        if stage.observer is not None and self.life is not Life.NOT_ENTERED:
            stage.notify(EXITED if failure is None else EXIT_FAILED, self, failure)

    def _exit_deadline(self, stage: StageView) -> float | None:
        """When its ``__aexit__`` must end: its own exit timeout from now, or the block's
        shutdown deadline, whichever comes first (None: no budget)."""
        own, shutdown = self.options.exit_timeout, stage.shutdown_deadline
        if own is None:
            return shutdown
        deadline = self.runtime.current_time() + own
        return deadline if shutdown is None or deadline < shutdown else shutdown

    def _exit_too_slow(self, stage: StageView) -> Exception | None:
        """The failure of an exit whose budget ran out (None: it had none)."""
        shutdown = stage.shutdown_deadline
        if shutdown is not None and self.scope.deadline == shutdown:
            return self.runtime.too_slow(
                f"{self.name} did not exit within the shutdown budget "
                f"({stage.shutdown_timeout} s for every exit)"
            )
        if self.options.exit_timeout is not None:
            return self._too_slow("exit", self.options.exit_timeout)
        return None

    def _too_slow(self, what: str, seconds: float | None) -> Exception:
        return self.runtime.too_slow(f"{self.name} did not {what} within {seconds} s")
