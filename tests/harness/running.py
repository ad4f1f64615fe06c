"""Running a scenario: a fresh run of its event loop (``Scenario.runtime``) on a virtual
clock; on Trio, a seeded scheduler."""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import attrs
import outcome

from tests.harness.exceptions import leaves
from tests.harness.fake import Moment, ScriptedCM, Timeline
from tests.harness.loops import LOOPS, TRIO, Loop, seed_trio
from tests.harness.scenario import DEADLOCK_AFTER, Close, Ending, Mode, Scenario
from trio_parallel_cm import (
    ContextHandle,
    ParallelExitStack,
    PhaseEvent,
    parallel_with,
    start_context,
)


@attrs.define(eq=False)
class Outcome:
    """What happened in one run of a scenario."""

    scenario: Scenario
    cms: list[ScriptedCM]
    timeline: Timeline
    #: ``Mode.STACK``: the stage (1, 2 or 3) and position in it of each fake (0 if its
    #: stage was never entered); else 0 and the argument position.
    stage_of: list[int]
    position_of: list[int]
    #: Whether the stage of each fake entered (the code after it ran).
    stage_entered: list[bool]
    owner_task: object = None
    outer: Any = None
    block_start: Moment | None = None
    body_task: object = None
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
    #: What escaped the run of the loop itself.
    crashed: BaseException | None = None
    warnings: list[str] = attrs.Factory(list[str])
    #: ``Mode.HANDLES``: the exceptions each handle's closers gave ``aexit``
    #: (``Close.AEXIT``: one, ``Close.TWO``: two), and what each closer got, in the order
    #: they ended.
    delivered: dict[int, list[BaseException]] = attrs.Factory(dict[int, list[BaseException]])
    closers: dict[int, list[Closed]] = attrs.Factory(dict[int, list["Closed"]])
    #: ``Scenario.observe``: what the observer received, with the task and the moment.
    observed: list[Observed] = attrs.Factory(list["Observed"])

    @property
    def loop(self) -> Loop:
        return self.timeline.loop

    def observer(self) -> Observer | None:
        """The ``observer=`` to pass (``None`` unless the scenario observes)."""
        if not self.scenario.observe:
            return None

        def observe(event: PhaseEvent) -> None:
            task = self.loop.current_task()
            self.observed.append(Observed(event, task, self.timeline.now()))

        return observe


@attrs.frozen(eq=False)
class Observed:
    """One event the observer received: in which task, at which moment."""

    event: PhaseEvent
    task: object
    moment: Moment


@attrs.frozen(eq=False)
class Closed:
    """What one closer of a handle got (``aexit``'s result, or what it raised), and when."""

    result: outcome.Value[bool] | outcome.Error
    start: Moment
    end: Moment


Observer = Callable[[PhaseEvent], object]
Implementation = Callable[[Sequence[ScriptedCM]], AbstractAsyncContextManager[Sequence[object]]]
Runner = Callable[[Outcome], Awaitable[None]]


def count_tasks() -> int:
    """How many tasks the Trio run has now, its root included (the tests count them too)."""
    return LOOPS[TRIO].count_tasks()


async def _child(out: Outcome, seconds: float) -> None:
    out.child_start = out.timeline.now()
    try:
        await out.loop.sleep(seconds)
    finally:
        out.child_end = out.timeline.now()


async def _user_body(out: Outcome, values: Sequence[object]) -> None:
    body = out.scenario.body
    out.body_task = out.loop.current_task()
    out.body_start = out.timeline.now()
    try:
        if body.spawn is not None:
            nursery = values[body.spawn]
            assert out.loop.is_group(nursery)
            nursery.start_soon(_child, out, body.child_for)  # type: ignore[attr-defined]  # pyright: ignore[reportAttributeAccessIssue,reportUnknownMemberType]
        if body.delay is not None:
            await out.loop.sleep(body.delay)
        if body.ending is Ending.ERROR:
            raise ValueError("body")
        if body.ending is Ending.INTERRUPT:
            raise KeyboardInterrupt("body")
        if body.ending is Ending.GROUP:
            raise ExceptionGroup("body", [ValueError("body"), KeyError("body")])
        if body.ending is Ending.GENERATOR_EXIT:
            raise GeneratorExit("body")
    except BaseException:
        if body.cleanup is not None:
            with out.loop.scope(shield=True):
                await out.loop.sleep(body.cleanup)
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


def _timeouts(scenario: Scenario) -> dict[str, float | None]:
    return {"enter_timeout": scenario.enter_timeout, "exit_timeout": scenario.exit_timeout}


def _run_parallel(implementation: Implementation | None) -> Runner:
    async def run(out: Outcome) -> None:
        cms, limit, timeouts = out.cms, out.scenario.limit, _timeouts(out.scenario)

        async def body(values: Sequence[object]) -> None:
            out.stage_entered = [True] * len(cms)
            await _user_body(out, values)

        if implementation is not None:
            async with implementation(cms) as values:
                await _in_block(out, lambda: body(values))
        elif out.scenario.mode is Mode.MAPPING:
            mapping = {cm.name: cm for cm in cms}
            async with parallel_with(
                mapping, limit=limit, observer=out.observer(), **timeouts
            ) as ctx:
                await _in_block(out, lambda: body([ctx[cm.name] for cm in cms]))
        else:
            async with parallel_with(
                *cms, limit=limit, observer=out.observer(), **timeouts
            ) as values:
                await _in_block(out, lambda: body(values))

    return run


async def _run_stack(out: Outcome) -> None:
    sc = out.scenario
    bounds = [0, sc.split, *([] if sc.third_from is None else [sc.third_from]), len(out.cms)]
    stages = [out.cms[a:b] for a, b in itertools.pairwise(bounds) if out.cms[a:b]]
    async with ParallelExitStack(observer=out.observer()) as stack:

        async def body() -> None:
            values: list[object] = []
            for number, stage in enumerate(stages, 1):
                for position, cm in enumerate(stage):
                    out.stage_of[cm.index] = number
                    out.position_of[cm.index] = position
                if number > 1 and len(stage) == 1:
                    values.append(await stack.enter(stage[0], **_timeouts(sc)))
                else:
                    values.extend(await stack.enter_all(*stage, limit=sc.limit, **_timeouts(sc)))
                for cm in stage:
                    out.stage_entered[cm.index] = True
            await _user_body(out, values)

        await _in_block(out, body)


async def _run_handles(out: Outcome) -> None:
    async with out.loop.open_group() as nursery:

        async def body() -> None:
            observer = out.observer()
            handles = [
                await start_context(
                    nursery,  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
                    cm,
                    name=cm.name,
                    observer=observer,
                    **_timeouts(out.scenario),
                )
                for cm in out.cms
            ]
            out.stage_entered = [True] * len(out.cms)
            await _user_body(out, [handle.value for handle in handles])
            for index in reversed(range(len(handles))):
                await _close(out, index, handles[index])

        await _in_block(out, body)


async def _close(out: Outcome, index: int, handle: ContextHandle[object]) -> None:
    """Close one handle as ``out.scenario.close`` says; raise what the first closer got."""
    how = out.scenario.close
    if how is Close.ACLOSE:
        await handle.aclose()
        return
    name = out.cms[index].name
    count = 1 if how is Close.AEXIT else 2
    given = out.delivered[index] = [ValueError(f"{name} closer {i}") for i in range(count)]
    got = out.closers[index] = []

    async def closer(exc: BaseException) -> None:
        start = out.timeline.now()
        result = await outcome.acapture(handle.aexit, exc)
        got.append(Closed(result, start, out.timeline.now()))

    try:
        async with out.loop.open_group() as nursery:
            for exc in given:
                nursery.start_soon(closer, exc)
    finally:
        # (In ``finally``: on asyncio the group's exit raises its host's cancellation, as
        # Trio's nursery exit does not; what the closer got goes on in its place.)
        if got and isinstance(got[0].result, outcome.Error):
            got[0].result.unwrap()


async def _main(out: Outcome, runner: Runner) -> None:
    loop = out.loop
    out.tasks_before = loop.count_tasks()
    cancel_at = out.scenario.cancel_at
    with loop.move_on_after(DEADLOCK_AFTER) as watchdog:
        try:
            seconds = math.inf if cancel_at is None else cancel_at
            native = out.scenario.native_cancel
            with (loop.cancel_after if native else loop.move_on_after)(seconds) as outer:
                out.outer = outer
                out.owner_task = loop.current_task()
                out.block_start = out.timeline.now()
                try:
                    await runner(out)
                except BaseException as exc:
                    out.raised = exc
                    raise
                out.after_block = out.timeline.now()
                # Where the code after the block meets a cancellation that a context
                # manager suppressed (as after nested `async with`).
                await loop.checkpoint()
        except BaseException as exc:
            out.escaped = exc
    out.deadlocked = watchdog.cancel_called
    out.tasks_after = loop.count_tasks()


def seed_scheduler(seed: int) -> None:
    """Seed Trio's scheduler (see ``loops``)."""
    seed_trio(seed)


def run_scenario(scenario: Scenario, implementation: Implementation | None = None) -> Outcome:
    """Run ``scenario`` in a fresh run of its loop on a virtual clock; what happened.

    ``implementation`` replaces ``parallel_with`` (``Mode.PARALLEL``), to check the checker.
    """
    timeline = Timeline(loop=LOOPS[scenario.runtime])
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
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            timeline.loop.run(lambda: _main(out, runner), scenario.seed)
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
