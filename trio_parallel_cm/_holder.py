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
  come from a scope *inside* the context manager: it failed, or ended by itself.  (A
  handle's holder is not shielded: there, its nursery's cancellation exits it.)
* The same scope carries the enter and exit deadlines (set on it, lifted from it), so no
  scope is ever entered around ``__aenter__`` or ``__aexit__`` alone.
* The holder parks with ``wait_task_rescheduled`` and is woken by ``reschedule``: no event,
  no parking lot, and the abort function tells an inner cancellation apart from a release.
* The holder records its outcome for the owner, which builds one group.  It raises only in
  a handle's holder, where a failure nobody asked for belongs to the nursery.
* ``__aexit__`` is called while the exception it receives is being handled in the holder
  task, as the interpreter calls it for ``async with``: an exception it raises then gets
  that exception as its implicit ``__context__`` ("During handling of the above
  exception...").  Making it the handled exception takes a ``raise``, which would add the
  holder's frame to its traceback (and could set its context): both are put back before
  anything else runs, because other holders read that same object (see ``call_aexit``).
* Once started, it drops its task status: that object keeps the starter's nursery, and the
  finished starter task, alive (about 2 KB per open context manager).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

import trio
from trio.lowlevel import Abort, RaiseCancelT, current_task, reschedule, wait_task_rescheduled

from ._errors import (
    ENTERING,
    EXITING,
    OPEN,
    ContextFailure,
    Phase,
    add_note,
    attach_record,
    failure_note,
    own_failure,
    without,
)
from ._names import name_of
from ._options import NO_OPTIONS, Options
from ._timeline import ENTER_FAILED, ENTER_STARTED, EXIT_FAILED, EXIT_STARTED, EXITED
from ._timeline import ENTERED as ENTERED_EVENT

if TYPE_CHECKING:
    from ._stage import Stage

WATCHER_TASK_NAME = "trio_parallel_cm handle watcher"

# Holder states.  Small ints, compared with ``is``.
PENDING: Final = 0  # __aenter__ not yet returned
ENTERED: Final = 1  # open, parked until released
EXITING_STATE: Final = 2  # released by the owner: __aexit__ runs or is about to
FAILING: Final = 3  # cancelled from inside while open: it failed, or ended by itself
CLOSED: Final = 4  # __aexit__ finished
NOT_ENTERED: Final = 5  # __aenter__ raised or was cancelled


async def call_aexit(
    aexit: Callable[..., Awaitable[bool | None]],
    cm: Any,
    exc: BaseException | None,
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
    if exc is None:
        return await aexit(cm, None, None, None)
    traceback, context = exc.__traceback__, exc.__context__
    try:
        raise exc  # noqa: TRY301  # the point: to handle it here
    except BaseException:  # now the handled exception of this task, as in `async with`
        exc.__traceback__, exc.__context__ = traceback, context
        return await aexit(cm, type(exc), exc, tb)


class Holder:
    """One context manager and the state of the task that owns it."""

    __slots__ = (
        "cm",
        "deliver",
        "failure",
        "from_outside",
        "key",
        "make",
        "native",
        "options",
        "phase",
        "position",
        "scope",
        "state",
        "suppressed",
        "task",
        "tb",
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
        # Its own options; else the stage's, set by the stage.
        self.options: Options = NO_OPTIONS if options is None else options
        # What ``__aexit__`` receives, set by ``release``; the traceback read then, since
        # concurrent ``athrow`` calls rewrite ``__traceback__``.
        self.deliver: BaseException | None = None
        self.tb: TracebackType | None = None
        self.native = False
        self.value: Any = None
        self.scope: trio.CancelScope
        self.task: trio.lowlevel.Task
        self.state: int = PENDING
        self.suppressed = False
        self.failure: BaseException | None = None
        self.phase: Phase = ENTERING
        self.from_outside = False
        self.watcher: trio.lowlevel.Task | None = None

    @property
    def name(self) -> str:
        return name_of(self.cm, self.key)

    @property
    def failing(self) -> bool:
        """Cancelled from inside while open (set by the abort function, behind our back)."""
        return self.state is FAILING

    def _fail(self, stage: Stage, exc: BaseException, phase: Phase) -> None:
        name = self.name
        add_note(exc, failure_note(name, self.position, phase, stage.index))
        elapsed = trio.current_time() - stage.started_at
        attach_record(exc, ContextFailure(name, self.position, phase, exc, elapsed, stage.index))
        self.failure = exc
        self.phase = phase

    def _abort(self, raise_cancel: RaiseCancelT) -> Abort:
        # Only a scope inside the context manager can reach a parked holder (its own scope
        # is shielded): the context manager failed or ended by itself while open.  In a
        # handle's unshielded holder it may also be the nursery: `run` tells them apart.
        self.state = FAILING
        return Abort.SUCCEEDED

    def release(self, deliver: BaseException | None, native: bool, unshield: bool) -> None:
        """Wake the parked holder to exit with ``deliver`` (or natively)."""
        self.deliver, self.native = deliver, native
        self.tb = None if deliver is None else deliver.__traceback__
        self.state = EXITING_STATE
        reschedule(self.task)
        # After reschedule() the task has no abort function, so lifting the shield cannot
        # abort the park: the holder meets the cancellation at its next checkpoint instead.
        if unshield:
            self.scope.shield = False

    async def run(self, stage: Stage, *, task_status: trio.TaskStatus[None]) -> None:
        """The holder task.  Started by ``nursery.start``.

        Never raises, except in a handle's holder (``start_context``): a failure that no
        ``aclose()`` claimed is raised into the handle's nursery, as structured
        concurrency wants.
        """
        limiter = stage.limiter
        observer = stage.observer
        options = self.options
        scope = self.scope = trio.CancelScope()
        if options.enter_timeout is not None:
            # On the holder's own scope, outside the context manager, so nesting stays
            # right; lifted once entered.
            scope.deadline = trio.current_time() + options.enter_timeout
        unclaimed: BaseException | None = None
        try:
            with scope:
                try:
                    if limiter is not None:
                        await limiter.acquire()
                    if observer is not None:
                        stage.notify(ENTER_STARTED, self)
                    try:
                        if self.make is not None:
                            # Not after an enter failure cancelled the stage's enters.
                            await trio.lowlevel.checkpoint_if_cancelled()
                            self.cm = self.make()
                        cm: Any = self.cm
                        # As `async with` does, look both methods up on the type first.
                        cls: Any = type(cm)  # pyright: ignore[reportUnknownVariableType]
                        aenter: Callable[[Any], Awaitable[Any]] = cls.__aenter__
                        aexit: Callable[..., Awaitable[bool | None]] = cls.__aexit__
                        self.value = await aenter(cm)
                    finally:
                        if limiter is not None:
                            limiter.release()
                except BaseException as exc:  # every outcome of __aenter__ is recorded
                    self.state = NOT_ENTERED
                    failure = own_failure(exc, self.name)
                    if failure is None and scope.cancel_called:
                        failure = self._too_slow("enter", options.enter_timeout)
                    if failure is not None:
                        self._fail(stage, failure, ENTERING)
                    if observer is not None:
                        stage.notify(ENTER_FAILED, self, failure)
                    if failure is not None:
                        stage.enter_failed(self)
                    task_status.started()
                    return
                if options.enter_timeout is not None:
                    scope.deadline = math.inf
                exc_in: BaseException | None
                tb: TracebackType | None
                if scope.cancel_called:
                    # The deadline passed just as __aenter__ returned: too slow all the
                    # same.  It is entered, so it exits at once with that failure.
                    self.state = NOT_ENTERED
                    exc_in = self._too_slow("enter", options.enter_timeout)
                    self._fail(stage, exc_in, ENTERING)
                    if observer is not None:
                        stage.notify(ENTER_FAILED, self, exc_in)
                    stage.enter_failed(self)
                    native, tb = False, None
                    task_status.started()
                else:
                    scope.shield = True
                    self.state = ENTERED
                    if observer is not None:
                        stage.notify(ENTERED_EVENT, self)
                    task_status.started()
                    del task_status  # see the design notes
                    self.task = task = current_task()
                    if task.parent_nursery is stage.nursery:
                        if stage.watch_outside:
                            stage.nursery.start_soon(self._watch, name=WATCHER_TASK_NAME)
                        try:
                            await wait_task_rescheduled(self._abort)
                        except BaseException as exc:  # cancelled while open: see _abort
                            native, exc_in, tb = False, exc, exc.__traceback__
                            if not self.from_outside:
                                # It failed or ends by itself: as nested `async with`
                                # would, cancel the body now, not after the cleanup.
                                stage.interrupted(self)
                        else:
                            native, exc_in, tb = self.native, self.deliver, self.tb
                    else:
                        # Not moved: the starter was cancelled as we entered, so the stage
                        # is being abandoned and waits, under that starter, for us.
                        native, exc_in, tb = stage.release_unmoved(self)
                if native:
                    # The body was cancelled: meet the cancellation as our own.
                    try:
                        await trio.lowlevel.checkpoint()
                    except BaseException as exc:  # our own Cancelled, passed to __aexit__
                        exc_in, tb = exc, exc.__traceback__
                if limiter is not None:
                    with trio.CancelScope(shield=True):
                        await limiter.acquire()
                if options.exit_timeout is not None:
                    # A graceful shutdown budget: shielded, then cancelled.
                    scope.shield = True
                    scope.deadline = trio.current_time() + options.exit_timeout
                escaped: BaseException | None
                suppress: bool | None = False
                if observer is not None and self.state is not NOT_ENTERED:
                    stage.notify(EXIT_STARTED, self)
                try:
                    suppress = await call_aexit(aexit, cm, exc_in, tb)
                except BaseException as exc:  # a failure while exiting is recorded
                    escaped = exc
                else:
                    escaped = None if suppress else exc_in
                finally:
                    if limiter is not None:
                        limiter.release()
                # Cancelled while open: from inside the context manager (it failed, or
                # ended by itself), unless a handle's watcher saw its nursery cancelled
                # first: then it is an ordinary exit.
                failing = self.failing and not self.from_outside
                if self.state is NOT_ENTERED:
                    # Timed out as it entered: its exit's outcome adds nothing.
                    escaped = None
                else:
                    self.state = CLOSED
                    if exc_in is not None and suppress and not failing:
                        self.suppressed = True
                if escaped is not None and not failing and exc_in is not None:
                    # Letting the delivered exception through is not a failure.
                    escaped = without(escaped, exc_in)
                failure = None if escaped is None else own_failure(escaped, self.name)
                if options.exit_timeout is not None and scope.cancel_called and failure is None:
                    failure = self._too_slow("exit", options.exit_timeout)
                if failure is not None:
                    self._fail(stage, failure, OPEN if failing else EXITING)
                if observer is not None and self.state is not NOT_ENTERED:
                    stage.notify(EXITED if failure is None else EXIT_FAILED, self, failure)
                if failing:
                    stage.ended_while_open(self)
        finally:
            if self.watcher is not None:
                watcher, self.watcher = self.watcher, None
                reschedule(watcher)
            unclaimed = stage.holder_done(self)
        if unclaimed is not None:
            raise unclaimed

    async def _watch(self) -> None:
        """A handle's watcher: tells its holder that a cancellation came from outside.

        A handle's holder is shielded while open, like every holder, so that only the
        context manager's own scopes can cancel it: a cancellation that reaches it is then
        the context manager failing or ending by itself.  Its nursery's cancellation (or an
        outer scope's) reaches this unshielded task instead, whose abort function marks it
        at once, before any other task runs, and which then lifts the holder's shield so
        that ``__aexit__`` meets that cancellation natively.
        """
        if self.state is CLOSED or self.state is NOT_ENTERED:
            return
        self.watcher = current_task()
        try:
            await wait_task_rescheduled(self._outside)
        except trio.Cancelled:
            # Its own Cancelled, at the top of its own task: it has passed it on.
            if self.state is ENTERED or self.state is FAILING:
                self.scope.shield = False
            elif self.state is EXITING_STATE and self.scope.deadline == math.inf:
                self.scope.shield = False  # unless an exit timeout shields its budget

    def _outside(self, raise_cancel: RaiseCancelT) -> Abort:
        # Only if it is still open: a context manager that failed first failed while open.
        if self.state is ENTERED:
            self.from_outside = True
        self.watcher = None
        return Abort.SUCCEEDED

    def _too_slow(self, what: str, seconds: float | None) -> trio.TooSlowError:
        return trio.TooSlowError(f"{self.name} did not {what} within {seconds} s")
