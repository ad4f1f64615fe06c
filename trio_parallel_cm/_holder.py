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
  come from a scope *inside* the context manager: it failed, or ended by itself.
* The holder parks with ``wait_task_rescheduled`` and is woken by ``reschedule``: no event,
  no parking lot, and the abort function tells an inner cancellation apart from a release.
* The holder never raises: it records its outcome for the owner, which builds one group.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

import trio
from trio.lowlevel import Abort, RaiseCancelT, current_task, reschedule, wait_task_rescheduled

from ._errors import ENTERING, EXITING, OPEN, add_note, failure_note, own_failure, without
from ._names import name_of

if TYPE_CHECKING:
    from ._stage import Stage

# Holder states.  Small ints, compared with ``is``.
PENDING: Final = 0  # __aenter__ not yet returned
ENTERED: Final = 1  # open, parked until released
EXITING_STATE: Final = 2  # released by the owner: __aexit__ runs or is about to
FAILING: Final = 3  # cancelled from inside while open: it failed, or ended by itself
CLOSED: Final = 4  # __aexit__ finished
NOT_ENTERED: Final = 5  # __aenter__ raised or was cancelled


class Holder:
    """One context manager and the state of the task that owns it."""

    __slots__ = (
        "cm",
        "failure",
        "key",
        "phase",
        "position",
        "scope",
        "stage",
        "state",
        "suppressed",
        "task",
        "value",
    )

    def __init__(self, cm: Any, position: int, key: object = None) -> None:
        self.cm: Any = cm
        self.position = position
        self.key = key
        self.stage: Stage
        self.value: Any = None
        self.scope: trio.CancelScope
        self.task: trio.lowlevel.Task
        self.state: int = PENDING
        self.suppressed = False
        self.failure: BaseException | None = None
        self.phase = ENTERING

    @property
    def name(self) -> str:
        return name_of(self.cm, self.key)

    @property
    def failing(self) -> bool:
        """Cancelled from inside while open (set by the abort function, behind our back)."""
        return self.state is FAILING

    def _fail(self, exc: BaseException, phase: str) -> None:
        add_note(exc, failure_note(self.name, self.position, phase))
        self.failure = exc
        self.phase = phase

    def _abort(self, raise_cancel: RaiseCancelT) -> Abort:
        # Only a scope inside the context manager can reach a parked holder (its own scope
        # is shielded): the context manager failed or ended by itself while open.
        self.state = FAILING
        return Abort.SUCCEEDED

    def release(self, unshield: bool) -> None:
        """Wake the parked holder to exit with the stage's delivery.  Owner's task only."""
        self.state = EXITING_STATE
        reschedule(self.task)
        # After reschedule() the task has no abort function, so lifting the shield cannot
        # abort the park: the holder meets the cancellation at its next checkpoint instead.
        if unshield:
            self.scope.shield = False

    async def run(self, *, task_status: trio.TaskStatus[None]) -> None:
        """The holder task.  Started by ``nursery.start``; never raises."""
        stage = self.stage
        cm: Any = self.cm
        # As `async with` does, look both methods up on the type before entering.
        cls: Any = type(cm)  # pyright: ignore[reportUnknownVariableType]
        aenter: Callable[[Any], Awaitable[Any]] = cls.__aenter__
        aexit: Callable[..., Awaitable[bool | None]] = cls.__aexit__
        scope = self.scope = trio.CancelScope()
        try:
            with scope:
                try:
                    self.value = await aenter(cm)
                except BaseException as exc:  # every outcome of __aenter__ is recorded
                    self.state = NOT_ENTERED
                    failure = own_failure(exc, self.name)
                    if failure is not None:
                        self._fail(failure, ENTERING)
                        stage.enter_failed(self)
                    task_status.started()
                    return
                scope.shield = True
                self.state = ENTERED
                task_status.started()
                self.task = task = current_task()
                exc_in: BaseException | None
                tb: TracebackType | None
                if task.parent_nursery is stage.nursery:
                    try:
                        await wait_task_rescheduled(self._abort)
                    except BaseException as exc:  # cancelled from inside the cm: see _abort
                        native, exc_in, tb = False, exc, exc.__traceback__
                    else:
                        native, exc_in, tb = stage.native, stage.deliver, stage.deliver_tb
                else:
                    # Not moved: the starter was cancelled as we entered, so the stage is
                    # being abandoned and waits, under that starter, for us to finish.
                    native, exc_in, tb = stage.release_unmoved(self)
                if native:
                    # The body was cancelled: meet the cancellation as our own.
                    try:
                        await trio.lowlevel.checkpoint()
                    except BaseException as exc:  # our own Cancelled, passed to __aexit__
                        exc_in, tb = exc, exc.__traceback__
                escaped: BaseException | None
                suppress: bool | None = False
                try:
                    if exc_in is None:
                        suppress = await aexit(cm, None, None, None)
                    else:
                        suppress = await aexit(cm, type(exc_in), exc_in, tb)
                except BaseException as exc:  # a failure while exiting is recorded
                    escaped = exc
                else:
                    escaped = None if suppress else exc_in
                failing = self.failing
                self.state = CLOSED
                if exc_in is not None and suppress and not failing:
                    self.suppressed = True
                if escaped is not None:
                    if not failing and exc_in is not None:
                        # Letting the delivered exception through is not a failure.
                        escaped = without(escaped, exc_in)
                    if escaped is not None:
                        failure = own_failure(escaped, self.name)
                        if failure is not None:
                            self._fail(failure, OPEN if failing else EXITING)
                if failing:
                    stage.ended_while_open(self)
        finally:
            stage.holder_done()
