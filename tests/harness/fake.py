"""The fake: a scripted async context manager that records what happened to it."""

from __future__ import annotations

import math
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from types import TracebackType
from typing import Any, Final, cast

import attrs

from tests.harness.loops import CANCELLED, LOOPS, TRIO, Group, Loop, Scope
from tests.harness.scenario import CLOSED, ENTERING, EXITING, NEW, OPEN, Fault, OpenFailure, Script

#: ``1``, a truthy non-bool that ``async with`` takes for a suppression, typed as the
#: protocol has it (``Script.returns_one``).
ONE: Final = cast("bool", 1)


@attrs.frozen
class Moment:
    """A point of a run: a sequence number (total order) and the virtual time."""

    seq: int
    time: float


@attrs.define(eq=False)
class Timeline:
    seq: int = 0
    #: The event loop the scenario runs on.
    loop: Loop = LOOPS[TRIO]

    def now(self) -> Moment:
        self.seq += 1
        return Moment(self.seq, self.loop.current_time())


@attrs.define(eq=False)
class Record:
    """What happened to one fake."""

    enter_calls: int = 0
    exit_calls: int = 0
    enter_task: object = None
    exit_task: object = None
    enter_start: Moment | None = None
    enter_end: Moment | None = None
    #: ``__aenter__`` returned.
    entered: bool = False
    enter_raised: BaseException | None = None
    exit_start: Moment | None = None
    exit_end: Moment | None = None
    #: The exception ``__aexit__`` received.
    seen: BaseException | None = None
    #: What ``__aexit__`` returned (``True``, ``False``, or ``1``: ``Script.returns_one``).
    exit_returned: bool | None = None
    exit_raised: BaseException | None = None
    #: A ``Cancelled`` interrupted the exit latency.
    exit_cancelled: bool = False
    #: When its own failure while open (``Script.open_failure``) fired, and in which phase.
    fired_time: float | None = None
    fired_in: str | None = None
    #: A crash (``OpenFailure.CRASH``) is a task step: the moment of it, in the total
    #: order.  (A deadline fires before any task step of its instant.)
    fired_at: Moment | None = None
    #: It raised its own ``Cancelled`` (``Fault.CANCELLED``) while its task was not
    #: cancelled (``True``: stray, a bug the library reports), or while it was.
    stray: bool | None = None
    #: Every exception object it created.
    faults: list[BaseException] = attrs.Factory(list[BaseException])


def _exc_info(
    exc: BaseException | None,
) -> tuple[type[BaseException] | None, BaseException | None, TracebackType | None]:
    if exc is None:
        return None, None, None
    return type(exc), exc, exc.__traceback__


def _through(
    manager: AbstractContextManager[Any], exc: BaseException | None
) -> BaseException | None:
    """Exit ``manager`` with ``exc`` in flight; what comes out (``None``: swallowed)."""
    try:
        swallowed = manager.__exit__(*_exc_info(exc))
    except BaseException as new:
        return new
    return None if swallowed else exc


async def _athrough(
    manager: AbstractAsyncContextManager[Any], exc: BaseException | None
) -> BaseException | None:
    try:
        swallowed = await manager.__aexit__(*_exc_info(exc))
    except BaseException as new:
        return new
    return None if swallowed else exc


@attrs.define(eq=False, repr=False)
class ScriptedCM:
    """A fake async context manager driven by a :class:`Script`; see ``Record``."""

    name: str
    index: int
    script: Script
    timeline: Timeline
    rec: Record = attrs.Factory(Record)
    _phase: str = attrs.field(default=NEW, init=False)
    _scope: Scope | None = attrs.field(default=None, init=False)
    _deadline: AbstractContextManager[Any] | None = attrs.field(default=None, init=False)
    _deadline_scope: Scope | None = attrs.field(default=None, init=False)
    _deadline_at: float = attrs.field(default=math.inf, init=False)
    _nursery_manager: AbstractAsyncContextManager[Group] | None = attrs.field(
        default=None, init=False
    )
    _nursery: Group | None = attrs.field(default=None, init=False)
    _stop: Scope | None = attrs.field(default=None, init=False)

    @property
    def loop(self) -> Loop:
        return self.timeline.loop

    def __repr__(self) -> str:
        return f"<{self.name} {self.script!r}>"

    async def __aenter__(self) -> object:
        rec = self.rec
        rec.enter_calls += 1
        rec.enter_task = self.loop.current_task()
        rec.enter_start = self.timeline.now()
        self._phase = ENTERING
        try:
            value = await self._enter()
        except BaseException as exc:
            rec.enter_raised = exc
            rec.enter_end = self.timeline.now()
            self._phase = CLOSED
            raise
        rec.entered = True
        rec.enter_end = self.timeline.now()
        self._phase = OPEN
        return value

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        rec = self.rec
        rec.exit_calls += 1
        rec.exit_task = self.loop.current_task()
        rec.exit_start = self.timeline.now()
        rec.seen = exc
        self._phase = EXITING
        try:
            result = await self._exit(exc)
        except BaseException as raised:
            rec.exit_raised = raised
            rec.exit_end = self.timeline.now()
            self._phase = CLOSED
            raise
        rec.exit_returned = result
        rec.exit_end = self.timeline.now()
        self._phase = CLOSED
        return result

    def _fault(self, fault: Fault, where: str) -> BaseException:
        exc = fault.make(f"{self.name} {where}", self.loop.cancelled)
        self.rec.faults.append(exc)
        return exc

    async def _enter(self) -> object:
        script = self.script
        if script.scope:
            self._scope = self.loop.scope()
            self._scope.__enter__()
        if script.open_failure is OpenFailure.FAIL_AFTER:
            self._deadline = self.loop.fail_after(script.open_after)
        elif script.open_failure is OpenFailure.MOVE_ON:
            self._deadline = self.loop.move_on_after(script.open_after)
        if self._deadline is not None:
            self._deadline_scope = self._deadline.__enter__()
            self._deadline_at = self.loop.current_time() + script.open_after
        if script.has_nursery:
            manager = self.loop.open_group()
            self._nursery = await manager.__aenter__()
            self._nursery_manager = manager
            if script.open_failure is OpenFailure.CRASH:
                self._stop = self.loop.scope()
                self._nursery.start_soon(self._background)
        value: object = self.name if self._nursery is None else self._nursery
        try:
            if script.enter_delay is not None:
                await self.loop.sleep(script.enter_delay)
            if script.enter_fault is not None:
                raise self._fault(script.enter_fault, "enter")
        except BaseException as exc:
            left = await self._unwind(exc)
            if left is not None:
                raise left  # noqa: B904  # what came out of the resources, as is
            # Its own move_on_after fired while entering: the enter was cut short.
        return value

    async def _background(self) -> None:
        stop = self._stop
        assert stop is not None
        with stop:  # cancelled when it exits: a service stopped, not a crash
            await self.loop.sleep(self.script.open_after)
            self.rec.fired_at = self.timeline.now()
            self.rec.fired_time = self.rec.fired_at.time
            self.rec.fired_in = self._phase
            raise self._fault(self.script.crash_fault, "crash")

    async def _unwind(self, exc: BaseException | None) -> BaseException | None:
        """Close the resources, innermost first, with ``exc`` in flight; what comes out."""
        if self._nursery_manager is not None:
            manager, self._nursery_manager = self._nursery_manager, None
            if self._stop is not None:
                self._stop.cancel()
            exc = await _athrough(manager, exc)
        if self._deadline is not None:
            deadline, self._deadline = self._deadline, None
            exc = _through(deadline, exc)
            assert self._deadline_scope is not None
            if self._deadline_scope.cancel_called:
                self.rec.fired_time = self._deadline_at
                # Unwound by __aenter__ itself: it fired while entering, also when that
                # was the very instant the enter ended.
                entering = self._phase == ENTERING
                self.rec.fired_in = ENTERING if entering else self._phase_at(self._deadline_at)
        if self._scope is not None:
            scope, self._scope = self._scope, None
            exc = _through(scope, exc)
        return exc

    def _phase_at(self, when: float) -> str:
        rec = self.rec
        if rec.enter_end is None or when < rec.enter_end.time:
            return ENTERING
        if rec.exit_start is None or when <= rec.exit_start.time:
            return OPEN
        return EXITING

    async def _exit(self, exc: BaseException | None) -> bool:
        script = self.script
        left = await self._unwind(None if script.suppress else exc)
        if script.exit_delay is not None:
            try:
                with self.loop.scope(shield=script.shield_exit):
                    await self.loop.sleep(script.exit_delay)
            except CANCELLED:
                self.rec.exit_cancelled = True
                raise
        if script.exit_fault is not None:
            if script.exit_fault is Fault.CANCELLED:
                # As the library asks in the holder task, with nothing between.
                self.rec.stray = not self.loop.effectively_cancelled()
            raise self._fault(script.exit_fault, "exit")
        if left is None:
            return (ONE if script.returns_one else True) if exc is not None else False
        if left is exc:
            return False
        raise left
