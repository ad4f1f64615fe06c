"""Fault injection for ``trio_parallel_cm`` (issue #5).

* :class:`ScriptedCM` is a fake async context manager whose behaviour is data, a frozen
  :class:`Script`: enter and exit latencies (or no checkpoint at all), a failure while
  entering, while open (its own background task crashes, or its own deadline fires) or
  while exiting, suppression, a nursery or a cancel scope held across the yield.  It
  records what happened to it: tasks, calls, what it received and raised, virtual times.
* A :class:`Scenario` is up to five of them, a :class:`Body`, the public face of the
  library that runs them (:class:`Mode`) and an optional outer cancellation.
  :func:`run_scenario` runs one in a fresh ``trio.run`` on a virtual clock, with Trio's
  scheduler seeded: the same scenario always runs the same way.
* :func:`check` states the invariants of ``docs/semantics.rst`` that must hold after any
  scenario, and returns the violations as sentences (an empty list: all good).
* :func:`exhaustive` enumerates a small space completely; :func:`scenarios` is the
  hypothesis strategy for the large one.

The oracle is built from observation, not from a second implementation: each fake
records exactly what escaped its ``__aenter__`` and ``__aexit__`` and what it received,
and :func:`check` derives from that what the library must report, and how.
"""

from __future__ import annotations

import enum
import math
import random
import sys
import threading
import time
import warnings
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable, Generator, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager, contextmanager
from types import TracebackType
from typing import Any, Final

import attrs
import trio
import trio.testing
from attrs import AttrsInstance
from hypothesis import strategies as st

from trio_parallel_cm import ParallelExitStack, parallel_with, start_context

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup, ExceptionGroup

# Phases of a fake, as the library names them in its notes.
NEW: Final = "new"
ENTERING: Final = "entering"
OPEN: Final = "open"
EXITING: Final = "exiting"
CLOSED: Final = "closed"

#: Virtual seconds after which a scenario counts as deadlocked (they all end within 30).
DEADLOCK_AFTER: Final = 1000.0


# ---- behaviour as data ----------------------------------------------------------------------


def _short_repr(obj: AttrsInstance) -> str:
    """``Type(field=value, ...)`` with the fields left at their default omitted."""
    parts: list[str] = []
    for field in attrs.fields(type(obj)):
        value = getattr(obj, field.name)
        if value != field.default:
            parts.append(f"{field.name}={value!r}")
    return f"{type(obj).__name__}({', '.join(parts)})"


class Fault(enum.Enum):
    """An exception a fake raises: a fresh object each time, recorded by the fake."""

    ERROR = "ValueError"
    INTERRUPT = "KeyboardInterrupt"
    GROUP = "ExceptionGroup"

    def __repr__(self) -> str:
        return f"Fault.{self.name}"

    def make(self, label: str) -> BaseException:
        if self is Fault.ERROR:
            return ValueError(label)
        if self is Fault.INTERRUPT:
            return KeyboardInterrupt(label)
        return ExceptionGroup(label, [ValueError(label), KeyError(label)])


class OpenFailure(enum.Enum):
    """How a fake fails (or ends) by itself, ``open_after`` seconds after ``__aenter__`` began."""

    #: A background task in the nursery it holds across the yield raises ``crash_fault``.
    CRASH = "crash"
    #: A ``trio.fail_after`` it holds across the yield fires: ``trio.TooSlowError``.
    FAIL_AFTER = "fail_after"
    #: A ``trio.move_on_after`` it holds across the yield fires: it ends by itself, no error.
    MOVE_ON = "move_on_after"

    def __repr__(self) -> str:
        return f"OpenFailure.{self.name}"


@attrs.frozen(repr=False)
class Script:
    """What one fake context manager does.  ``None`` latencies mean no checkpoint at all.

    Its resources (a cancel scope, then a deadline, then a nursery) are opened at the start
    of ``__aenter__``, before the enter latency, and closed at the start of ``__aexit__``,
    passing the exception on as nested ``with`` blocks would; the exit latency follows.
    A failure while entering unwinds them and raises what comes out; a deadline that fires
    while entering fails (``FAIL_AFTER``) or cuts the enter short (``MOVE_ON``).
    """

    enter_delay: float | None = 0
    enter_fault: Fault | None = None
    open_failure: OpenFailure | None = None
    open_after: float = 1.5
    crash_fault: Fault = Fault.ERROR
    exit_delay: float | None = 0
    #: The exit latency is a graceful close, shielded from cancellation.
    shield_exit: bool = False
    exit_fault: Fault | None = None
    #: Swallow the exception ``__aexit__`` receives (inside its resources) and return True.
    suppress: bool = False
    #: Hold a nursery across the yield, and yield it (a ``CRASH`` holds one anyway).
    nursery: bool = False
    #: Hold a plain cancel scope across the yield.
    scope: bool = False

    def __repr__(self) -> str:
        return _short_repr(self)

    @property
    def has_nursery(self) -> bool:
        return self.nursery or self.open_failure is OpenFailure.CRASH


class Ending(enum.Enum):
    RETURN = "return"
    ERROR = "ValueError"
    INTERRUPT = "KeyboardInterrupt"
    #: An ``ExceptionGroup``, as a nursery in the body raises.
    GROUP = "ExceptionGroup"

    def __repr__(self) -> str:
        return f"Ending.{self.name}"


@attrs.frozen(repr=False)
class Body:
    """What the body of the block does."""

    #: Seconds it sleeps before it ends (``None``: no checkpoint at all).
    delay: float | None = 0
    ending: Ending = Ending.RETURN
    #: Start a child task, sleeping ``child_for``, in the nursery this context manager
    #: yielded (the index of a script with ``has_nursery``).
    spawn: int | None = None
    child_for: float = 2
    #: Seconds of shielded cleanup when an exception (a cancellation) goes through it.
    cleanup: float | None = None

    def __repr__(self) -> str:
        return _short_repr(self)


class Mode(enum.Enum):
    """Which public face of the library runs the context managers."""

    #: ``parallel_with(*cms)``.
    PARALLEL = "parallel"
    #: ``parallel_with({name: cm})``.
    MAPPING = "mapping"
    #: ``ParallelExitStack``: ``enter_all(*cms[:split])``, then ``enter``/``enter_all`` of
    #: the rest (empty stages are skipped).
    STACK = "stack"
    #: ``start_context`` for each in turn in one nursery, then ``aclose`` in reverse order.
    HANDLES = "handles"

    def __repr__(self) -> str:
        return f"Mode.{self.name}"


@attrs.frozen(repr=False)
class Scenario:
    """One run: the fakes, the body, the mode and an outer cancellation."""

    scripts: tuple[Script, ...] = ()
    body: Body = Body()
    mode: Mode = Mode.PARALLEL
    #: ``Mode.STACK``: the first stage is ``scripts[:split]``.
    split: int = 1
    #: Virtual time at which a ``trio.move_on_after`` around the block fires.
    cancel_at: float | None = None
    #: The ``limit=`` option (not for ``Mode.HANDLES``).
    limit: int | None = None
    #: Seeds Trio's scheduler (it shuffles each batch of runnable tasks).
    seed: int = 0

    def __repr__(self) -> str:
        return _short_repr(self)

    def __attrs_post_init__(self) -> None:
        spawn = self.body.spawn
        if spawn is not None and not self.scripts[spawn].has_nursery:
            raise ValueError(f"the body spawns into scripts[{spawn}], which has no nursery")
        if self.mode is Mode.HANDLES and self.limit is not None:
            raise ValueError("start_context takes no limit")


# ---- the fake -------------------------------------------------------------------------------


@attrs.frozen
class Moment:
    """A point of a run: a sequence number (total order) and the virtual time."""

    seq: int
    time: float


@attrs.define(eq=False)
class Timeline:
    seq: int = 0

    def now(self) -> Moment:
        self.seq += 1
        return Moment(self.seq, trio.current_time())


@attrs.define(eq=False)
class Record:
    """What happened to one fake."""

    enter_calls: int = 0
    exit_calls: int = 0
    enter_task: trio.lowlevel.Task | None = None
    exit_task: trio.lowlevel.Task | None = None
    enter_start: Moment | None = None
    enter_end: Moment | None = None
    #: ``__aenter__`` returned.
    entered: bool = False
    enter_raised: BaseException | None = None
    exit_start: Moment | None = None
    exit_end: Moment | None = None
    #: The exception ``__aexit__`` received.
    seen: BaseException | None = None
    exit_returned: bool | None = None
    exit_raised: BaseException | None = None
    #: A ``Cancelled`` interrupted the exit latency.
    exit_cancelled: bool = False
    #: When its own failure while open (``Script.open_failure``) fired, and in which phase.
    fired_time: float | None = None
    fired_in: str | None = None
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
    _scope: trio.CancelScope | None = attrs.field(default=None, init=False)
    _deadline: AbstractContextManager[trio.CancelScope] | None = attrs.field(
        default=None, init=False
    )
    _deadline_scope: trio.CancelScope | None = attrs.field(default=None, init=False)
    _deadline_at: float = attrs.field(default=math.inf, init=False)
    _nursery_manager: AbstractAsyncContextManager[trio.Nursery] | None = attrs.field(
        default=None, init=False
    )
    _nursery: trio.Nursery | None = attrs.field(default=None, init=False)
    _stop: trio.CancelScope | None = attrs.field(default=None, init=False)

    def __repr__(self) -> str:
        return f"<{self.name} {self.script!r}>"

    async def __aenter__(self) -> object:
        rec = self.rec
        rec.enter_calls += 1
        rec.enter_task = trio.lowlevel.current_task()
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
        rec.exit_task = trio.lowlevel.current_task()
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
        exc = fault.make(f"{self.name} {where}")
        self.rec.faults.append(exc)
        return exc

    async def _enter(self) -> object:
        script = self.script
        if script.scope:
            self._scope = trio.CancelScope()
            self._scope.__enter__()
        if script.open_failure is OpenFailure.FAIL_AFTER:
            self._deadline = trio.fail_after(script.open_after)
        elif script.open_failure is OpenFailure.MOVE_ON:
            self._deadline = trio.move_on_after(script.open_after)
        if self._deadline is not None:
            self._deadline_scope = self._deadline.__enter__()
            self._deadline_at = trio.current_time() + script.open_after
        if script.has_nursery:
            manager = trio.open_nursery()
            self._nursery = await manager.__aenter__()
            self._nursery_manager = manager
            if script.open_failure is OpenFailure.CRASH:
                self._stop = trio.CancelScope()
                self._nursery.start_soon(self._background)
        value: object = self.name if self._nursery is None else self._nursery
        try:
            if script.enter_delay is not None:
                await trio.sleep(script.enter_delay)
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
            await trio.sleep(self.script.open_after)
            self.rec.fired_time = trio.current_time()
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
                self.rec.fired_in = self._phase_at(self._deadline_at)
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
                with trio.CancelScope(shield=script.shield_exit):
                    await trio.sleep(script.exit_delay)
            except trio.Cancelled:
                self.rec.exit_cancelled = True
                raise
        if script.exit_fault is not None:
            raise self._fault(script.exit_fault, "exit")
        if left is None:
            return exc is not None
        if left is exc:
            return False
        raise left


# ---- running a scenario ---------------------------------------------------------------------


@attrs.define(eq=False)
class Outcome:
    """What happened in one run of a scenario."""

    scenario: Scenario
    cms: list[ScriptedCM]
    timeline: Timeline
    #: ``Mode.STACK``: the stage (1 or 2) and position in it of each fake (0 if its stage
    #: was never entered); else 0 and the argument position.
    stage_of: list[int]
    position_of: list[int]
    #: Whether the stage of each fake entered (the code after it ran).
    stage_entered: list[bool]
    owner_task: trio.lowlevel.Task | None = None
    outer: trio.CancelScope | None = None
    block_start: Moment | None = None
    body_task: trio.lowlevel.Task | None = None
    body_start: Moment | None = None
    body_end: Moment | None = None
    #: What escaped the block's body (for a stack, that includes the stages it entered),
    #: and when it ended.
    body_raised: BaseException | None = None
    block_body_end: Moment | None = None
    child_start: Moment | None = None
    child_end: Moment | None = None
    #: What the block raised (for ``Mode.HANDLES``: what the nursery raised).
    raised: BaseException | None = None
    after_block: Moment | None = None
    #: What escaped the outer ``move_on_after``.
    escaped: BaseException | None = None
    tasks_before: int = 0
    tasks_after: int = 0
    deadlocked: bool = False
    #: What escaped ``trio.run`` itself.
    crashed: BaseException | None = None
    warnings: list[str] = attrs.Factory(list[str])


Implementation = Callable[[Sequence[ScriptedCM]], AbstractAsyncContextManager[Sequence[object]]]
Runner = Callable[[Outcome], Awaitable[None]]


def _count_tasks() -> int:
    root = trio.lowlevel.current_root_task()
    assert root is not None
    count, todo = 0, [root]
    while todo:
        task = todo.pop()
        count += 1
        for nursery in task.child_nurseries:
            todo.extend(nursery.child_tasks)
    return count


async def _child(out: Outcome, seconds: float) -> None:
    out.child_start = out.timeline.now()
    try:
        await trio.sleep(seconds)
    finally:
        out.child_end = out.timeline.now()


async def _user_body(out: Outcome, values: Sequence[object]) -> None:
    body = out.scenario.body
    out.body_task = trio.lowlevel.current_task()
    out.body_start = out.timeline.now()
    try:
        if body.spawn is not None:
            nursery = values[body.spawn]
            assert isinstance(nursery, trio.Nursery)
            nursery.start_soon(_child, out, body.child_for)
        if body.delay is not None:
            await trio.sleep(body.delay)
        if body.ending is Ending.ERROR:
            raise ValueError("body")
        if body.ending is Ending.INTERRUPT:
            raise KeyboardInterrupt("body")
        if body.ending is Ending.GROUP:
            raise ExceptionGroup("body", [ValueError("body"), KeyError("body")])
    except BaseException:
        if body.cleanup is not None:
            with trio.CancelScope(shield=True):
                await trio.sleep(body.cleanup)
        raise
    finally:
        out.body_end = out.timeline.now()


async def _in_block(out: Outcome, body: Callable[[], Awaitable[None]]) -> None:
    try:
        await body()
    except BaseException as exc:
        out.body_raised = exc
        raise
    finally:
        out.block_body_end = out.timeline.now()


def _run_parallel(implementation: Implementation | None) -> Runner:
    async def run(out: Outcome) -> None:
        cms, limit = out.cms, out.scenario.limit

        async def body(values: Sequence[object]) -> None:
            out.stage_entered = [True] * len(cms)
            await _user_body(out, values)

        if implementation is not None:
            async with implementation(cms) as values:
                await _in_block(out, lambda: body(values))
        elif out.scenario.mode is Mode.MAPPING:
            async with parallel_with({cm.name: cm for cm in cms}, limit=limit) as ctx:
                await _in_block(out, lambda: body([ctx[cm.name] for cm in cms]))
        else:
            async with parallel_with(*cms, limit=limit) as values:
                await _in_block(out, lambda: body(values))

    return run


async def _run_stack(out: Outcome) -> None:
    sc = out.scenario
    stages = [stage for stage in (out.cms[: sc.split], out.cms[sc.split :]) if stage]
    async with ParallelExitStack() as stack:

        async def body() -> None:
            values: list[object] = []
            for number, stage in enumerate(stages, 1):
                for position, cm in enumerate(stage):
                    out.stage_of[cm.index] = number
                    out.position_of[cm.index] = position
                if number == 2 and len(stage) == 1:
                    values.append(await stack.enter(stage[0]))
                else:
                    values.extend(await stack.enter_all(*stage, limit=sc.limit))
                for cm in stage:
                    out.stage_entered[cm.index] = True
            await _user_body(out, values)

        await _in_block(out, body)


async def _run_handles(out: Outcome) -> None:
    async with trio.open_nursery() as nursery:

        async def body() -> None:
            handles = [await start_context(nursery, cm, name=cm.name) for cm in out.cms]
            out.stage_entered = [True] * len(out.cms)
            await _user_body(out, [handle.value for handle in handles])
            for handle in reversed(handles):
                await handle.aclose()

        await _in_block(out, body)


async def _main(out: Outcome, runner: Runner) -> None:
    out.tasks_before = _count_tasks()
    cancel_at = out.scenario.cancel_at
    with trio.move_on_after(DEADLOCK_AFTER) as watchdog:
        try:
            with trio.move_on_after(math.inf if cancel_at is None else cancel_at) as outer:
                out.outer = outer
                out.owner_task = trio.lowlevel.current_task()
                out.block_start = out.timeline.now()
                try:
                    await runner(out)
                except BaseException as exc:
                    out.raised = exc
                    raise
                out.after_block = out.timeline.now()
                # Where the code after the block meets a cancellation that a context
                # manager suppressed (as after nested `async with`).
                await trio.lowlevel.checkpoint()
        except BaseException as exc:
            out.escaped = exc
    out.deadlocked = watchdog.cancel_called
    out.tasks_after = _count_tasks()


def _seed_scheduler(seed: int) -> None:
    # Trio shuffles each batch of runnable tasks with a module-level Random (which it
    # registers with hypothesis).  Seeding it makes a run a function of its scenario.
    # Private: if it moves, runs are merely no longer reproducible.
    module = sys.modules.get("trio._core._run")
    rng: object = vars(module).get("_r") if module is not None else None
    if isinstance(rng, random.Random):
        rng.seed(seed)


def run_scenario(scenario: Scenario, implementation: Implementation | None = None) -> Outcome:
    """Run ``scenario`` in a fresh ``trio.run`` on a virtual clock and say what happened.

    ``implementation`` replaces ``parallel_with`` (``Mode.PARALLEL``), to check the checker.
    """
    timeline = Timeline()
    n = len(scenario.scripts)
    cms = [ScriptedCM(f"cm{i}", i, script, timeline) for i, script in enumerate(scenario.scripts)]
    out = Outcome(scenario, cms, timeline, [0] * n, list(range(n)), [False] * n)
    runner: Runner
    if scenario.mode is Mode.STACK:
        runner = _run_stack
    elif scenario.mode is Mode.HANDLES:
        runner = _run_handles
    else:
        runner = _run_parallel(implementation)
    _seed_scheduler(scenario.seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            trio.run(_main, out, runner, clock=trio.testing.MockClock(autojump_threshold=0))
        except BaseException as exc:
            out.crashed = exc
    out.warnings = [f"{w.category.__name__}: {w.message}" for w in caught]
    _reraise_a_real_interrupt(out)
    return out


def _reraise_a_real_interrupt(out: Outcome) -> None:
    # Ctrl-C during a long run must stop it, not count as a violation.
    ours = {id(exc) for cm in out.cms for exc in cm.rec.faults for exc in leaves(exc)}
    ours.update(id(exc) for exc in leaves(out.body_raised))
    for exc in (out.escaped, out.crashed):
        for leaf in leaves(exc):
            if isinstance(leaf, KeyboardInterrupt) and id(leaf) not in ours:
                raise leaf


# ---- looking at exceptions ------------------------------------------------------------------


def members(exc: BaseException | None) -> tuple[BaseException, ...] | None:
    """The members of a group; ``None`` for anything else."""
    if isinstance(exc, BaseExceptionGroup):
        group: BaseExceptionGroup[BaseException] = exc  # pyright: ignore[reportUnknownVariableType]
        return group.exceptions
    return None


def leaves(exc: BaseException | None) -> list[BaseException]:
    """The exceptions that are not groups, in a group at any depth (or ``[exc]``)."""
    if exc is None:
        return []
    inner = members(exc)
    if inner is None:
        return [exc]
    return [leaf for member in inner for leaf in leaves(member)]


def nodes(exc: BaseException | None) -> list[BaseException]:
    """Every exception in the tree of ``exc``, groups included."""
    if exc is None:
        return []
    inner = members(exc)
    return [exc] if inner is None else [exc, *(node for m in inner for node in nodes(m))]


def notes(exc: BaseException) -> list[str]:
    return list(getattr(exc, "__notes__", []))


def has_cancelled(exc: BaseException | None) -> bool:
    return any(isinstance(leaf, trio.Cancelled) for leaf in leaves(exc))


def summary(total: int, phases: Sequence[str], body_failed: bool) -> str:
    """The group message of ``docs/semantics.rst`` (Errors, Message)."""
    parts = ["the body raised"] if body_failed else []
    if phases:
        counts = ", ".join(
            f"{phases.count(p)} {p}" for p in (ENTERING, OPEN, EXITING) if p in phases
        )
        noun = "context manager" if total == 1 else "context managers"
        parts.append(f"{len(phases)} of {total} {noun} failed ({counts})")
    return "; ".join(parts)


# ---- the invariants -------------------------------------------------------------------------


@attrs.frozen(eq=False)
class Expected:
    """A failure the library must report: a fake's, derived from what the fake raised."""

    cm: ScriptedCM
    #: The member must be this very object (``None``: a derived group is expected, since
    #: ``Cancelled`` or the delivered exception had to be taken out of what it raised).
    exact: BaseException | None
    #: Its leaves, by identity.
    leaves: tuple[BaseException, ...]
    #: The acceptable notes (one per acceptable phase).
    notes: frozenset[str]
    #: When the library learnt of it.
    reported: Moment


def interrupted_ends(out: Outcome) -> list[Moment]:
    """When the context managers interrupted while the body ran finished their cleanup."""
    end = out.block_body_end
    assert end is not None
    return [
        cm.rec.exit_end
        for cm in out.cms
        if ended_by_itself(cm)
        and cm.rec.exit_start is not None
        and cm.rec.exit_start.seq < end.seq
        and cm.rec.exit_end is not None
    ]


def ended_by_itself(cm: ScriptedCM) -> bool:
    """It failed, or ended, while open: its own scope cancelled its holder, which exited."""
    rec = cm.rec
    return rec.fired_in == OPEN and isinstance(rec.seen, trio.Cancelled)


def _note(out: Outcome, cm: ScriptedCM, phase: str) -> str:
    mode = out.scenario.mode
    name = cm.name if mode is Mode.MAPPING or mode is Mode.HANDLES else "ScriptedCM"
    if mode is Mode.HANDLES:
        where = "position 0"
    elif mode is Mode.STACK:
        where = f"stage {out.stage_of[cm.index]}, position {out.position_of[cm.index]}"
    else:
        where = f"position {cm.index}"
    return f"{name} ({where}) failed while {phase}"


def _exit_phases(out: Outcome, cm: ScriptedCM, tolerate: frozenset[str]) -> set[str]:
    doubt = (
        out.scenario.mode is Mode.HANDLES
        and "handle-phase" in tolerate
        and isinstance(cm.rec.seen, trio.Cancelled)
    )
    if not ended_by_itself(cm):
        return {EXITING, OPEN} if doubt else {EXITING}
    phases = {OPEN}
    assert out.outer is not None
    if doubt:
        phases.add(EXITING)
    elif out.outer.cancel_called and out.scenario.cancel_at == cm.rec.fired_time:
        phases.add(EXITING)  # released by the outer cancellation at that very instant
    elif (
        out.scenario.mode is Mode.HANDLES
        and out.body_end is not None
        and out.body_end.time == cm.rec.fired_time
    ):
        # Its nursery was cancelled (by the body's end) at that very instant: a handle's
        # failure counts as one while open only if it came before that cancellation.
        phases.add(EXITING)
    elif out.scenario.mode is Mode.HANDLES and any(
        other is not cm and _failed_at(other, cm.rec.fired_time) for other in out.cms
    ):
        # Another handle failed at that very instant, or its failure (raised into the
        # nursery once its cleanup was over) reached the nursery then: it may have
        # cancelled the nursery first.
        phases.add(EXITING)
    elif (cm.rec.exit_start is not None and cm.rec.exit_start.time != cm.rec.fired_time) or (
        out.scenario.limit is not None
        and out.body_end is not None
        and cm.rec.fired_time is not None
        and out.body_end.time < cm.rec.fired_time
    ):
        # An aborted holder exits at once; this one waited for an exit slot (``limit=``),
        # so it may have been released (natively) before its own scope fired: also when
        # the slot came free at the very instant its scope fired.
        phases.add(EXITING)
    return phases


def _failed_at(cm: ScriptedCM, when: float | None) -> bool:
    """``cm`` failed while open at ``when``, or its exit raised a failure then."""
    rec = cm.rec
    if rec.fired_in == OPEN and rec.fired_time == when:
        return True
    return (
        rec.exit_end is not None
        and rec.exit_end.time == when
        and any(not isinstance(leaf, trio.Cancelled) for leaf in leaves(rec.exit_raised))
    )


def expected_failures(out: Outcome, tolerate: frozenset[str] = frozenset()) -> list[Expected]:
    """The fakes' failures, in report order (stage, then position)."""
    found: list[Expected] = []
    for cm in out.cms:
        rec = cm.rec
        if rec.enter_raised is not None:
            assert rec.enter_end is not None
            source, dropped, phases = rec.enter_raised, set[int](), {ENTERING}
            reported = rec.enter_end
        elif rec.exit_raised is not None:
            assert rec.exit_end is not None
            source, reported = rec.exit_raised, rec.exit_end
            dropped = {id(leaf) for leaf in leaves(rec.seen)}  # letting it through: no failure
            phases = _exit_phases(out, cm, tolerate)
        else:
            continue
        every = leaves(source)
        kept = tuple(
            leaf
            for leaf in every
            if not isinstance(leaf, trio.Cancelled) and id(leaf) not in dropped
        )
        if kept:
            exact = source if len(kept) == len(every) else None
            wanted = frozenset(_note(out, cm, phase) for phase in phases)
            found.append(Expected(cm, exact, kept, wanted, reported))
    found.sort(key=lambda e: (out.stage_of[e.cm.index], out.position_of[e.cm.index]))
    return found


#: Library bugs that :func:`check` tolerates by name while they are being fixed (none
#: now).  The four this harness found (``copies``, ``echoes``, ``start-twice`` and
#: ``handle-phase``) are fixed; ``test_harness.py`` keeps their scenarios as regressions.
KNOWN_BUGS: Final[frozenset[str]] = frozenset()


def check(scenario: Scenario, out: Outcome, tolerate: frozenset[str] = KNOWN_BUGS) -> list[str]:
    """Every invariant of ``docs/semantics.rst`` that must hold after ``scenario``.

    Returns the violations, as sentences; an empty list when all hold.  ``tolerate``
    names the known bugs (``KNOWN_BUGS``) not to report.
    """
    assert out.scenario is scenario
    if scenario.mode is Mode.HANDLES:
        tolerate |= {_TRIO_COPIES}
    problems = _check_run(out)
    if out.crashed is not None or out.deadlocked or out.outer is None:
        return problems
    problems += _check_lifecycle(out)
    problems += _check_times(out)
    located, more = _check_errors(out, tolerate)
    problems += more
    problems += _check_cancellation(out)
    problems += _check_delivery(out, located, tolerate)
    return problems


def _check_run(out: Outcome) -> list[str]:
    problems: list[str] = []
    if out.crashed is not None:
        problems.append(f"trio.run raised {out.crashed!r}")
    if out.deadlocked:
        problems.append(f"deadlock: still running after {DEADLOCK_AFTER} virtual seconds")
    problems += [f"a warning: {w}" for w in out.warnings]
    if out.tasks_after != out.tasks_before:
        problems.append(f"{out.tasks_after - out.tasks_before} task(s) outlived the block")
    everything = [out.raised, out.escaped, out.crashed, out.body_raised]
    everything += [e for cm in out.cms for e in (cm.rec.enter_raised, cm.rec.exit_raised)]
    for exc in everything:
        for node in nodes(exc):
            causes = [node, node.__cause__, node.__context__]
            for cause in causes:
                if isinstance(cause, trio.TrioInternalError):
                    problems.append(f"TrioInternalError: {cause!r}")
                elif isinstance(cause, RuntimeError) and "corrupted" in str(cause):
                    problems.append(f"a corrupted cancel scope stack: {cause!r}")
    return sorted(set(problems), key=problems.index)


def _check_lifecycle(out: Outcome) -> list[str]:
    problems: list[str] = []
    owners: dict[int, str] = {}
    for cm in out.cms:
        rec, who = cm.rec, cm.name
        if rec.enter_calls > 1:
            problems.append(f"{who}: __aenter__ was called {rec.enter_calls} times")
        if rec.entered:
            if rec.exit_calls != 1:
                problems.append(f"{who} entered but was exited {rec.exit_calls} times")
            elif rec.exit_task is not rec.enter_task:
                problems.append(f"{who}: __aexit__ ran in another task than __aenter__")
        elif rec.exit_calls:
            problems.append(f"{who} was exited although it did not enter")
        task = rec.enter_task
        if task is not None:
            if task is out.owner_task or task is out.body_task:
                problems.append(f"{who} was entered in the body's task")
            if id(task) in owners:
                problems.append(f"{who} was entered in the task of {owners[id(task)]}")
            owners[id(task)] = who
    return problems


def _check_times(out: Outcome) -> list[str]:
    problems: list[str] = []
    sc, cms = out.scenario, out.cms
    assert out.outer is not None and out.block_start is not None
    end = out.block_body_end
    if sc.mode is not Mode.HANDLES and end is not None:
        # 3. No early exit: not before the body (and its shielded cleanup) has finished.
        for cm in cms:
            start = cm.rec.exit_start
            if (
                out.stage_entered[cm.index]
                and start is not None
                and not ended_by_itself(cm)
                and start.seq < end.seq
            ):
                problems.append(f"{cm.name} began to exit before the body had finished")
    if sc.mode is Mode.STACK:
        # Stages unwind in reverse order: stage 1 only once stage 2 has exited.
        for first in cms:
            for second in cms:
                a, b = first.rec.exit_start, second.rec.exit_end
                if (
                    out.stage_of[first.index] == 1
                    and out.stage_of[second.index] == 2
                    and out.stage_entered[second.index]
                    and a is not None
                    and b is not None
                    and not ended_by_itself(first)
                    and a.seq < b.seq
                ):
                    problems.append(f"{first.name} began to exit before {second.name} had exited")
    if sc.mode in (Mode.PARALLEL, Mode.MAPPING) and sc.limit is None:
        # 2. Concurrency: the enters start together; the body starts when the last has
        # entered; the exits start together when the body ends.
        starts = {cm.rec.enter_start.time for cm in cms if cm.rec.enter_start is not None}
        if starts - {out.block_start.time}:
            problems.append(f"the enters started at {sorted(starts)}, not all at once")
        if out.body_start is not None and cms:
            entered = [cm.rec.enter_end for cm in cms if cm.rec.enter_end is not None]
            if len(entered) == len(cms):
                last = max(entered, key=lambda moment: moment.seq)

                # One interrupted while others entered holds the body back until its
                # cleanup tells whether it failed (4).
                # (One interrupted at the very instant the last entered may count either
                # way: the stage may or may not have finished entering.)
                def settled(ties: bool) -> list[float]:
                    return [
                        cm.rec.exit_end.time
                        for cm in cms
                        if ended_by_itself(cm)
                        and cm.rec.exit_start is not None
                        and cm.rec.exit_end is not None
                        and (
                            cm.rec.exit_start.seq < last.seq
                            or (ties and cm.rec.exit_start.time == last.time)
                        )
                    ]

                expected = {max([last.time, *settled(ties)]) for ties in (False, True)}
                if out.body_start.time not in expected:
                    problems.append(
                        f"the body started at {out.body_start.time}, not when the last "
                        f"context manager had entered and any interrupted one had cleaned "
                        f"up ({min(expected)})"
                    )
        if out.body_start is not None and end is not None:
            # ... once the body has ended and every context manager interrupted while it
            # ran (failing or ending by itself) has finished its cleanup (4).
            release = max([end.time, *(m.time for m in interrupted_ends(out))])
            for cm in cms:
                start = cm.rec.exit_start
                if start is not None and not ended_by_itself(cm) and start.time != release:
                    problems.append(
                        f"{cm.name} began to exit at {start.time}, not as the body ended "
                        f"and the interrupted ones had cleaned up ({release})"
                    )
    if sc.mode is not Mode.HANDLES and not out.outer.cancel_called:
        # 5, 7. Neither a failure nor the body's exception cancels a cleanup.
        # (A stage entered in a body that an earlier stage's context manager interrupted
        # is inside that cancellation, as inner `async with` blocks would be.)
        interrupted_stage_1 = sc.mode is Mode.STACK and any(
            ended_by_itself(cm) and out.stage_of[cm.index] == 1 for cm in cms
        )
        problems += [
            f"{cm.name}'s exit was cancelled though nothing outside was"
            for cm in cms
            if cm.rec.exit_cancelled and not (interrupted_stage_1 and out.stage_of[cm.index] == 2)
        ]
    if out.child_start is not None and sc.body.spawn is not None:
        owner = cms[sc.body.spawn].rec.exit_end
        if out.child_end is None:
            problems.append("the body's child task never finished")
        elif owner is not None and out.child_end.seq > owner.seq:
            problems.append("the body's child task outlived the nursery it was started in")
    return problems


def is_copy(a: BaseException | None, b: BaseException | None, same_message: bool = True) -> bool:
    """``a`` is a copy of the group ``b``: same type and message, the very same leaves."""
    return (
        members(a) is not None
        and type(a) is type(b)
        and (str(a) == str(b) or not same_message)
        and [id(x) for x in leaves(a)] == [id(x) for x in leaves(b)]
    )


def _shares_leaves(group: BaseException | None) -> bool:
    """Two members of ``group`` hold the same leaf (only an echo makes that happen)."""
    seen: set[int] = set()
    for member in members(group) or ():
        ids = {id(leaf) for leaf in leaves(member)}
        if ids & seen:
            return True
        seen |= ids
    return False


#: Not a bug: in ``Mode.HANDLES`` what the library raised went on through the user's
#: nursery, whose cancel scope (cancelled by the first failure) ``split``s, so copies, it.
_TRIO_COPIES: Final = "the user's nursery copies"


def _same(a: BaseException | None, b: BaseException | None, tolerate: frozenset[str]) -> bool:
    if a is b:
        return True
    if _TRIO_COPIES in tolerate:
        return is_copy(a, b, same_message=False)  # (a copy of ours recounts its message)
    if "copies" not in tolerate:
        return False
    # A copy of a group with an echo in it may count its members differently.
    return is_copy(a, b, same_message=not ("echoes" in tolerate and _shares_leaves(b)))


#: For each node of what was raised that reports a fake's failure: the ids of the leaves
#: under it that are copies of what that fake received (the ``"echoes"`` bug).
Echoes = dict[int, frozenset[int]]


def _echoes(out: Outcome, tolerate: frozenset[str]) -> Echoes:
    found: Echoes = {}
    if "start-twice" in tolerate and out.scenario.mode is Mode.HANDLES:
        found[_TWICE] = frozenset()
    if "echoes" not in tolerate:
        return found
    for cm in out.cms:
        rec = cm.rec
        received = {id(leaf) for leaf in leaves(rec.seen)}
        echoed = frozenset(id(leaf) for leaf in leaves(rec.exit_raised) if id(leaf) in received)
        if echoed:
            mine = {_note(out, cm, OPEN), _note(out, cm, EXITING)}
            for node in nodes(out.raised):
                # The last note is the library's; a copy keeps the notes of the original.
                if notes(node) and notes(node)[-1] in mine:
                    found[id(node)] = echoed
    return found


#: Marks the ``"start-twice"`` bug as tolerated in :data:`Echoes`.
_TWICE: Final = -1


def _visible(
    exc: BaseException | None, echoes: Echoes, hidden: frozenset[int] = frozenset()
) -> list[BaseException]:
    """The nodes of ``exc`` that are not echoes (see ``KNOWN_BUGS``), groups included."""
    if exc is None:
        return []
    hidden |= echoes.get(id(exc), frozenset())
    if hidden and all(id(leaf) in hidden for leaf in leaves(exc)):
        return []
    inner = members(exc)
    if inner is None:
        return [exc]
    if _TWICE in echoes:
        inner = tuple({id(m): m for m in inner}.values())  # the same member twice: once
    return [exc, *(node for m in inner for node in _visible(m, echoes, hidden))]


def _visible_leaves(exc: BaseException | None, echoes: Echoes) -> list[BaseException]:
    return [node for node in _visible(exc, echoes) if members(node) is None]


def _locate(
    raised: BaseException | None, expected: Expected, echoes: Echoes, tolerate: frozenset[str]
) -> list[BaseException]:
    """The nodes of ``raised`` that stand for ``expected`` (one, if all is well)."""
    exact = expected.exact
    if exact is not None:
        return [
            node
            for node in _visible(raised, echoes)
            if node is exact or (_same(node, exact, tolerate) and notes(node))
        ]
    wanted = [id(leaf) for leaf in expected.leaves]
    return [
        node
        for node in _visible(raised, echoes)
        if members(node) is not None
        and notes(node)
        and wanted
        == [
            id(leaf)
            for leaf in _visible_leaves(node, echoes)
            if not isinstance(leaf, trio.Cancelled)
        ]
    ]


def _suppressed(out: Outcome, leaf_ids: Sequence[int], failed: ScriptedCM | None) -> bool:
    """A context manager received these leaves and suppressed them.

    Anyone may suppress the body's exception (``failed`` is None).  A failure comes out of
    the failing context manager's own exit, so only an earlier stage (an outer ``async
    with``) may suppress it: never a member of its own stage (6, 7: "no failure is lost").
    """
    for cm in out.cms:
        rec = cm.rec
        if not rec.exit_returned or ended_by_itself(cm) or not out.stage_entered[cm.index]:
            continue  # (a member of a stage that did not enter exits before the body ends)
        if failed is not None and out.stage_of[cm.index] >= out.stage_of[failed.index]:
            continue
        received = {id(leaf) for leaf in leaves(rec.seen)}
        if leaf_ids and all(i in received for i in leaf_ids):
            return True
    return False


def _check_errors(
    out: Outcome, tolerate: frozenset[str]
) -> tuple[dict[int, BaseException], list[str]]:
    """No failure lost or doubled (9, Errors), each the original object with its note."""
    problems: list[str] = []
    sc, raised, body = out.scenario, out.raised, out.body_raised
    echoes = _echoes(out, tolerate)
    expected = expected_failures(out, tolerate)
    body_error = None if body is None or has_cancelled(body) else body
    body_ids = [id(leaf) for leaf in leaves(body_error)]
    body_suppressed = _suppressed(out, body_ids, None)
    counts = Counter(id(leaf) for leaf in _visible_leaves(raised, echoes))
    located: dict[int, BaseException] = {}
    top: list[BaseException] = []
    if body_error is not None and not body_suppressed:
        top.append(body_error)
    for e in expected:
        ids = [id(leaf) for leaf in e.leaves]
        inside_body = all(i in body_ids for i in ids)
        gone = _suppressed(out, ids, e.cm) or (inside_body and body_suppressed)
        want = 0 if gone else 1
        problems += [
            f"{e.cm.name}'s failure {leaf!r} appears {counts[id(leaf)]} times in what was "
            f"raised, not {want}"
            for leaf in e.leaves
            if counts[id(leaf)] != want
        ]
        if gone:
            continue
        found = _locate(raised, e, echoes, tolerate)
        if len(found) != 1:
            what = "the very object it raised" if e.exact is not None else "its failure"
            problems.append(f"{e.cm.name}: {what} appears {len(found)} times in {raised!r}")
            continue
        node = located[e.cm.index] = found[0]
        if len(notes(node)) != 1 or notes(node)[0] not in e.notes:
            problems.append(
                f"{e.cm.name}'s failure has the notes {notes(node)}, not one of {sorted(e.notes)}"
            )
        if not inside_body:
            top.append(node)
    if body_error is not None:
        want = 0 if body_suppressed else 1
        problems += [
            f"the body's {leaf!r} appears {counts[id(leaf)]} times, not {want}"
            for leaf in leaves(body_error)
            if counts[id(leaf)] != want
        ]
    accounted = set(body_ids) | {id(leaf) for e in expected for leaf in e.leaves}
    for leaf in _visible_leaves(raised, echoes):
        if id(leaf) in accounted or isinstance(leaf, trio.Cancelled):
            continue
        if (
            sc.mode is Mode.HANDLES
            and isinstance(leaf, RuntimeError)
            and "already failed while" in str(leaf)
        ):
            continue  # aclose() of a handle whose failure went to its nursery
        problems.append(f"{leaf!r} was raised, but nothing raised it")
    if sc.mode is not Mode.HANDLES:
        problems += _check_group_form(out, top, echoes, tolerate)
    return located, problems


def _check_group_form(
    out: Outcome, top: list[BaseException], echoes: Echoes, tolerate: frozenset[str]
) -> list[str]:
    """Flat, ordered (the body's exception first, then argument order), typed, summarised."""
    problems: list[str] = []
    raised, body = out.raised, out.body_raised
    inner = members(raised)
    if inner is None:
        if top:
            problems.append(f"the block raised {raised!r}, not a group of {top!r}")
        elif raised is not None and type(raised) is not trio.Cancelled:
            problems.append(f"the block raised {raised!r} unwrapped: only a pure cancellation may")
        return problems
    assert raised is not None and out.outer is not None
    if not inner:
        return [*problems, "the block raised an empty group"]
    actual = [member for member in inner if _visible(member, echoes)]
    if actual and actual[0] is body and isinstance(body, trio.Cancelled):
        # The body was cancelled from outside and something failed: its Cancelled comes
        # first, and the scope that owns it takes it out of the group.
        actual = actual[1:]
        if not out.outer.cancel_called:
            problems.append("the body's Cancelled is in the group, but nothing cancelled it")
    if len(actual) != len(top) or not all(
        _same(a, b, tolerate) for a, b in zip(actual, top, strict=True)
    ):
        problems.append(f"the group holds {actual!r}, not {top!r} in that order")
    if isinstance(raised, ExceptionGroup) != all(isinstance(m, Exception) for m in inner):
        problems.append(f"a {type(raised).__name__} of {list(inner)!r}")
    if out.scenario.mode in (Mode.PARALLEL, Mode.MAPPING) and not problems:
        body_failed = _same(inner[0], body, tolerate)
        rest = inner[1:] if body_failed else inner
        phases = [notes(m)[-1].rsplit(" ", 1)[1] for m in rest if notes(m)]
        want = summary(len(out.cms), phases, body_failed=body_failed)
        message = str(getattr(raised, "message", ""))
        if message != want:
            problems.append(f"the group's message is {message!r}, not {want!r}")
    return problems


def _check_cancellation(out: Outcome) -> list[str]:
    """8. A pure outer cancellation is its own scope's, unwrapped; none escapes it."""
    problems: list[str] = []
    sc, outer, raised = out.scenario, out.outer, out.raised
    assert outer is not None
    if has_cancelled(out.escaped):
        problems.append(f"a Cancelled escaped the scope that owns it: {out.escaped!r}")
    body = out.body_raised
    pure = (
        outer.cancel_called
        and not expected_failures(out)
        and (body is None or (has_cancelled(body) and not leaves(body)[1:]))
    )
    if not pure:
        return problems
    if not outer.cancelled_caught:
        problems.append("a pure outer cancellation was not caught by its own scope")
    if out.escaped is not None:
        problems.append(f"a pure outer cancellation, yet {out.escaped!r} escaped")
    if sc.mode is Mode.HANDLES:
        return problems
    if raised is None:
        suppressor = any(
            isinstance(cm.rec.seen, trio.Cancelled) and cm.rec.exit_returned for cm in out.cms
        )
        late = out.after_block is not None and out.after_block.time >= (sc.cancel_at or 0)
        if not suppressor and not late:
            problems.append("the block swallowed a cancellation that nothing suppressed")
    elif type(raised) is not trio.Cancelled:
        problems.append(f"a pure cancellation came out as {raised!r}, not a bare Cancelled")
    elif any(raised is cm.rec.seen for cm in out.cms):
        problems.append("the caller's Cancelled is one that a context manager received")
    return problems


def _check_delivery(
    out: Outcome, located: dict[int, BaseException], tolerate: frozenset[str]
) -> list[str]:
    """What each ``__aexit__`` receives (4, 5, 6), and no Cancelled moved between tasks."""
    problems: list[str] = []
    sc, outer = out.scenario, out.outer
    assert outer is not None
    cancelled = [cm.rec.seen for cm in out.cms if isinstance(cm.rec.seen, trio.Cancelled)]
    if len({id(c) for c in cancelled}) != len(cancelled) or any(c is out.raised for c in cancelled):
        problems.append("one Cancelled was received in two tasks")
    if sc.mode not in (Mode.PARALLEL, Mode.MAPPING) or outer.cancel_called:
        return problems
    pairs: list[tuple[int, BaseException]] = []
    for e in expected_failures(out):
        node = located.get(e.cm.index, e.exact)
        note = notes(node)[0] if node is not None and notes(node) else min(e.notes)
        if node is not None and note.endswith((ENTERING, OPEN)):
            pairs.append((e.reported.seq, node))
    body = out.body_raised
    body_error = None if body is None or has_cancelled(body) else body
    # Released as the body ends, the exits receive the failure of the first context
    # manager interrupted while the body ran (4: the first to begin failing, in order of
    # interruption); when the stage could not enter, the first failure of all (6).  With
    # a limit, `__aexit__` may be called later than that.
    end = out.block_body_end
    if out.body_start is not None and end is not None:
        order = {
            cm.index: start.seq
            for cm in out.cms
            if ended_by_itself(cm) and (start := cm.rec.exit_start) is not None
        }
        by_index = {
            id(node): e.cm.index
            for e in expected_failures(out)
            for node in [located.get(e.cm.index, e.exact)]
            if node is not None
        }
        candidates = [
            (order[by_index[id(node)]], node, out.cms[by_index[id(node)]].rec.fired_time)
            for _, node in pairs
            if by_index.get(id(node)) in order
        ]
        # With a limit, `__aexit__` (whose start orders the interruptions here) may wait
        # for a slot: then only the time its own scope fired tells, and a tie (with the
        # body's end, or between them) may go either way.
        reported: list[tuple[int, BaseException, float | None]] = [
            (seq, node, fired)
            for seq, node, fired in candidates
            if (seq < end.seq if sc.limit is None else fired is not None and fired < end.time)
        ]
        tied: list[tuple[int, BaseException, float | None]] = [
            (seq, node, fired)
            for seq, node, fired in candidates
            if sc.limit is not None and fired == end.time
        ]
    else:
        reported, tied = [(seq, node, None) for seq, node in pairs], []
    fallback = body_error if out.body_start is not None else None

    def firsts(
        earlier: list[tuple[int, BaseException, float | None]],
    ) -> list[BaseException | None]:
        if not earlier:
            return [fallback]
        if sc.limit is None:
            first = min(seq for seq, _, _ in earlier)
            return [node for seq, node, _ in earlier if seq == first]
        soonest = min(fired or 0.0 for _, _, fired in earlier)
        return [node for _, node, fired in earlier if (fired or 0.0) == soonest]

    wants = firsts(reported) + (firsts(reported + tied) if tied else [])
    for cm in out.cms:
        if cm.rec.exit_start is None or ended_by_itself(cm):
            continue
        if not any(_same(cm.rec.seen, want, tolerate) for want in wants):
            why = "the first failure" if reported else "the body's outcome"
            problems.append(
                f"{cm.name}'s __aexit__ received {cm.rec.seen!r}, not {why} ({wants[0]!r})"
            )
    return problems


# ---- exploring ------------------------------------------------------------------------------

#: Behaviours of one context manager for the exhaustive enumeration.  Ordinary latencies
#: are whole seconds, failures while open fire at half seconds: no two events tie.
BEHAVIOURS: Final[dict[str, Script]] = {
    "plain": Script(enter_delay=1, exit_delay=1),
    "no checkpoint": Script(enter_delay=None, exit_delay=None),
    "nursery and scope": Script(enter_delay=1, exit_delay=2, nursery=True, scope=True),
    "slow": Script(enter_delay=3, exit_delay=3),
    "enter error": Script(enter_delay=1, enter_fault=Fault.ERROR),
    "enter interrupt at once": Script(enter_delay=None, enter_fault=Fault.INTERRUPT),
    "enter group in nursery": Script(enter_delay=2, enter_fault=Fault.GROUP, nursery=True),
    "crash while entering": Script(enter_delay=2, open_failure=OpenFailure.CRASH, open_after=0.5),
    "crash while open": Script(
        enter_delay=1, open_failure=OpenFailure.CRASH, open_after=1.5, exit_delay=1
    ),
    "interrupt while open": Script(
        open_failure=OpenFailure.CRASH, open_after=2.5, crash_fault=Fault.INTERRUPT
    ),
    "fail_after while open": Script(
        open_failure=OpenFailure.FAIL_AFTER, open_after=1.5, scope=True, exit_delay=1
    ),
    "move_on while open": Script(enter_delay=1, open_failure=OpenFailure.MOVE_ON, open_after=1.5),
    "exit error": Script(exit_delay=1, exit_fault=Fault.ERROR),
    "exit interrupt in nursery": Script(exit_delay=None, exit_fault=Fault.INTERRUPT, nursery=True),
    "exit group": Script(enter_delay=2, exit_fault=Fault.GROUP),
    "suppresses": Script(enter_delay=2, exit_delay=1, suppress=True),
    "graceful close": Script(enter_delay=1, exit_delay=2, shield_exit=True),
}

#: Bodies for the exhaustive enumeration (``spawn`` is filled in when a nursery exists).
BODIES: Final[dict[str, Body]] = {
    "returns at once": Body(delay=None),
    "sleeps": Body(delay=2),
    "raises": Body(delay=1, ending=Ending.ERROR),
    "raises at once": Body(delay=None, ending=Ending.ERROR),
    "interrupt": Body(delay=1, ending=Ending.INTERRUPT),
    "raises a group": Body(delay=1, ending=Ending.GROUP),
    "shielded cleanup": Body(delay=4, cleanup=1),
    "spawns into a nursery": Body(delay=1, spawn=0),
}

#: Outer cancellations for the exhaustive enumeration: none, while entering, while the
#: body runs, while exiting (quarter seconds: no ties).
CANCELS: Final[tuple[float | None, ...]] = (None, 0.25, 1.25, 3.75)


def exhaustive(
    mode: Mode, size: int = 2, cancels: Sequence[float | None] = CANCELS
) -> Iterator[Scenario]:
    """Every combination of ``size`` behaviours x bodies x outer cancellations."""
    names = list(BEHAVIOURS)

    def combos(k: int) -> Iterator[tuple[str, ...]]:
        if k == 0:
            yield ()
            return
        for rest in combos(k - 1):
            for name in names:
                yield (*rest, name)

    for combo in combos(size):
        scripts = tuple(BEHAVIOURS[name] for name in combo)
        with_nursery = [i for i, s in enumerate(scripts) if s.has_nursery]
        for body in BODIES.values():
            if body.spawn is not None:
                if not with_nursery:
                    continue
                body = attrs.evolve(body, spawn=with_nursery[0])
            for cancel_at in cancels:
                yield Scenario(
                    scripts,
                    body,
                    mode,
                    split=1,
                    cancel_at=cancel_at,
                    seed=zlib.crc32(repr((combo, body, cancel_at)).encode()) & 0xFFFF,
                )


def _maybe(strategy: st.SearchStrategy[Fault], nones: int = 3) -> st.SearchStrategy[Fault | None]:
    """``None`` most of the time: a scenario is interesting with a few faults, not all."""
    return st.one_of(*[st.none()] * nones, strategy)


DELAYS: Final = st.sampled_from([None, 0, 1, 2, 3])
FAULTS: Final = st.sampled_from(Fault)


@st.composite
def scripts(draw: st.DrawFn) -> Script:
    """Any :class:`Script` (ties between events included: the oracle allows for them)."""
    return Script(
        enter_delay=draw(DELAYS),
        enter_fault=draw(_maybe(FAULTS)),
        open_failure=draw(st.one_of(st.none(), st.none(), st.sampled_from(OpenFailure))),
        open_after=draw(st.sampled_from([0.5, 1, 1.5, 2.5, 4.5])),
        crash_fault=draw(FAULTS),
        exit_delay=draw(DELAYS),
        shield_exit=draw(st.booleans()),
        exit_fault=draw(_maybe(FAULTS)),
        suppress=draw(st.booleans()),
        nursery=draw(st.booleans()),
        scope=draw(st.booleans()),
    )


@st.composite
def scenarios(draw: st.DrawFn, modes: Sequence[Mode] = tuple(Mode)) -> Scenario:
    """Any :class:`Scenario` with 0 to 5 context managers, in one of ``modes``."""
    mode = draw(st.sampled_from(modes))
    chosen = tuple(draw(st.lists(scripts(), max_size=5)))
    with_nursery = [i for i, s in enumerate(chosen) if s.has_nursery]
    body = Body(
        delay=draw(DELAYS),
        ending=draw(st.sampled_from(Ending)),
        spawn=draw(st.sampled_from([None, *with_nursery])),
        child_for=draw(st.sampled_from([1, 2.5])),
        cleanup=draw(st.sampled_from([None, 1])),
    )
    return Scenario(
        chosen,
        body,
        mode,
        split=draw(st.integers(0, len(chosen))),
        cancel_at=draw(st.sampled_from([None, None, 0, 0.25, 1, 1.5, 2, 2.75, 4.25])),
        limit=None if mode is Mode.HANDLES else draw(st.sampled_from([None, None, 1, 2])),
        seed=draw(st.integers(0, 0xFFFF)),
    )


# ---- hangs ----------------------------------------------------------------------------------


class HangReporter:
    """Names the scenario still running after ``seconds`` of real time, on stderr.

    A scenario that hangs in a shielded wait cannot be stopped from inside Trio; the
    suite's faulthandler watchdog ends the run later, and this says which scenario it was.
    """

    def __init__(self, seconds: float = 20) -> None:
        self.seconds = seconds
        self._current: tuple[str, float] | None = None
        self._thread: threading.Thread | None = None

    @contextmanager
    def watch(self, scenario: Scenario) -> Generator[None, None, None]:
        if self._thread is None:
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        self._current = (repr(scenario), time.monotonic() + self.seconds)
        try:
            yield
        finally:
            self._current = None

    def _poll(self) -> None:
        reported = None
        while True:
            time.sleep(1)
            current = self._current
            if current is not None and current is not reported and time.monotonic() > current[1]:
                print(f"\nstill running after {self.seconds} s: {current[0]}", file=sys.__stderr__)
                reported = current
