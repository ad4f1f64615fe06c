"""Fault injection for ``ResourceGraph``: random DAGs of scripted nodes, and an oracle.

A scenario is data (``GraphScenario``): up to six nodes, each with its dependencies (earlier
nodes), its delays and its faults (an enter error, a crash while open, an exit error, a
suppressing exit), whether it is optional and how many of its attempts fail (with
``retry``), a body, an optional outer cancellation and an optional shutdown budget.
``run_graph`` runs it on the virtual clock and records what every node saw;
``check_graph`` checks the invariants of docs/semantics.rst ("ResourceGraph") against that
record, one checker per guarantee.

Times are chosen so that no two kinds of event tie: delays are whole seconds, crashes fall
on x.5 s, the outer cancellation on x.25 s, a retry waits 0.1 s, and a shutdown budget
lasts a whole number of seconds and 0.6 s.
"""

from __future__ import annotations

import contextlib
import itertools
import sys
from collections.abc import Callable
from types import TracebackType
from typing import Any

import attrs
import trio
import trio.testing

from tests.harness.exceptions import leaves, members
from trio_parallel_cm import ResourceGraph, Retry

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup


@attrs.frozen
class NodeScript:
    """One node: its dependencies and what it does."""

    deps: tuple[int, ...] = ()
    enter_delay: int = 0
    enter_error: bool = False
    crash_at: float | None = None  # a background task fails at this time, while open
    exit_delay: int = 0
    exit_error: bool = False
    suppress: bool = False
    optional: bool = False
    # With ``retry`` (this many attempts in all): the first ``failing_attempts`` attempts
    # fail to enter (OSError), the others follow the script.
    retry: int | None = None
    failing_attempts: int = 0


#: The wait before each retry (``Retry(backoff=RETRY_WAIT, multiplier=1)``).
RETRY_WAIT = 0.1


@attrs.frozen
class GraphScenario:
    nodes: tuple[NodeScript, ...]
    body_delay: int = 0
    body_error: bool = False
    cancel_at: float | None = None
    limit: int | None = None
    shutdown_timeout: float | None = None


@attrs.define
class NodeRecord:
    """What happened to one node, on the virtual clock."""

    made_at: float | None = None
    attempts: list[float] = attrs.Factory(list[float])  # when each factory call was made
    made_with: tuple[Any, ...] = ()
    made_in: trio.lowlevel.Task | None = None
    enter_task: trio.lowlevel.Task | None = None
    entered_at: float | None = None
    exit_calls: int = 0
    exit_task: trio.lowlevel.Task | None = None
    exit_started: float | None = None
    exit_ended: float | None = None
    seen: BaseException | None = None
    crashed: bool = False
    faults: list[BaseException] = attrs.Factory(list[BaseException])


@attrs.define
class GraphOutcome:
    records: list[NodeRecord]
    body_started: float | None = None
    body_ended: float | None = None
    body_exc: BaseException | None = None
    raised: BaseException | None = None
    cancel_caught: bool = False
    ended: float = 0
    # What the body saw of the optional nodes: the names of the tolerated failures'
    # nodes, their exceptions, and the names of the skipped ones.
    tolerated: list[str] = attrs.Factory(list[str])
    tolerated_exceptions: list[BaseException] = attrs.Factory(list[BaseException])
    skipped: list[str] = attrs.Factory(list[str])


class ScriptedNode:
    """The async context manager a node's factory makes: it follows its script."""

    def __init__(self, index: int, script: NodeScript, rec: NodeRecord, attempt: int) -> None:
        self.name = f"n{index}"
        self.script = script
        self.rec = rec
        self.attempt = attempt
        self.nursery_manager: Any = None
        self.nursery: trio.Nursery | None = None

    async def __aenter__(self) -> str:
        self.rec.enter_task = trio.lowlevel.current_task()
        await trio.sleep(self.script.enter_delay)
        if self.script.enter_error or self.attempt <= self.script.failing_attempts:
            error = OSError(f"{self.name} enter (attempt {self.attempt})")
            self.rec.faults.append(error)
            raise error
        if self.script.crash_at is not None:
            self.nursery_manager = trio.open_nursery()
            nursery: trio.Nursery = await self.nursery_manager.__aenter__()
            nursery.start_soon(self._crash, self.script.crash_at)
            self.nursery = nursery
        self.rec.entered_at = trio.current_time()
        return self.name

    async def _crash(self, at: float) -> None:
        await trio.sleep_until(at)
        self.rec.crashed = True
        error = ValueError(f"{self.name} crash")
        self.rec.faults.append(error)
        raise error

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        rec = self.rec
        rec.exit_calls += 1
        rec.exit_task = trio.lowlevel.current_task()
        rec.exit_started = trio.current_time()
        rec.seen = exc
        try:
            if self.nursery is not None:
                self.nursery.cancel_scope.cancel()  # a crash not yet happened never will
                await self.nursery_manager.__aexit__(None, None, None)  # raises a crash
            await trio.sleep(self.script.exit_delay)
            if self.script.exit_error:
                error = KeyError(f"{self.name} exit")
                rec.faults.append(error)
                raise error
            return self.script.suppress
        finally:
            rec.exit_ended = trio.current_time()


def run_graph(scenario: GraphScenario) -> GraphOutcome:
    """Run ``scenario`` on a virtual clock and record everything."""
    records = [NodeRecord() for _ in scenario.nodes]
    out = GraphOutcome(records)

    def factory(index: int) -> Callable[..., ScriptedNode]:
        def make(*values: Any) -> ScriptedNode:
            rec = records[index]
            if rec.made_at is None:
                rec.made_at = trio.current_time()
            rec.attempts.append(trio.current_time())
            rec.made_with = values
            rec.made_in = trio.lowlevel.current_task()
            return ScriptedNode(index, scenario.nodes[index], rec, len(rec.attempts))

        make.__name__ = f"n{index}"
        return make

    async def main() -> None:
        graph = ResourceGraph(limit=scenario.limit, shutdown_timeout=scenario.shutdown_timeout)
        nodes: list[Any] = []
        for index, script in enumerate(scenario.nodes):
            retry = None if script.retry is None else Retry(script.retry, RETRY_WAIT, 1)
            deps = (nodes[d] for d in script.deps)
            nodes.append(graph.add(factory(index), *deps, optional=script.optional, retry=retry))
        deadline = trio.current_time() + (
            scenario.cancel_at if scenario.cancel_at is not None else float("inf")
        )
        with trio.CancelScope(deadline=deadline) as scope:
            try:
                async with graph as resources:
                    out.body_started = trio.current_time()
                    out.tolerated = [f.name for f in resources.failures]
                    out.tolerated_exceptions = [f.exception for f in resources.failures]
                    out.skipped = [node.name for node in resources.skipped]
                    try:
                        await trio.sleep(scenario.body_delay)
                        if scenario.body_error:
                            out.body_exc = LookupError("body")
                            raise out.body_exc
                    finally:
                        out.body_ended = trio.current_time()
            except BaseException as exc:
                out.raised = exc
                raise
        out.cancel_caught = scope.cancelled_caught

    with contextlib.suppress(BaseException):  # recorded in out.raised
        trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    out.ended = max([0.0] + [r.exit_ended or 0.0 for r in records])
    return out


# ---- the oracle: one checker per guarantee ----------------------------------------------


def members_of(exc: BaseException | None) -> list[BaseException]:
    """What ``__aexit__`` received, as a list: nothing, one exception, or a group's."""
    if exc is None:
        return []
    inner = members(exc)
    return [exc] if inner is None else list(inner)


def check_ownership(s: GraphScenario, out: GraphOutcome) -> list[str]:
    """1. A node's factory, enter and exit run in one task of its own."""
    problems: list[str] = []
    tasks = [r.enter_task for r in out.records if r.enter_task is not None]
    if len(set(map(id, tasks))) != len(tasks):
        problems.append("two nodes entered in the same task")
    for i, r in enumerate(out.records):
        if r.enter_task is not None and r.made_in is not r.enter_task:
            problems.append(f"n{i}'s factory ran in another task than its __aenter__")
        if r.exit_task is not None and r.exit_task is not r.enter_task:
            problems.append(f"n{i}'s __aexit__ ran in another task than its __aenter__")
    return problems


def check_dependencies(s: GraphScenario, out: GraphOutcome) -> list[str]:
    """2. A node starts the moment its last dependency has entered, with their values."""
    problems: list[str] = []
    for i, (script, r) in enumerate(zip(s.nodes, out.records, strict=True)):
        if r.made_at is None:
            continue
        entered = [out.records[d].entered_at for d in script.deps]
        if any(t is None for t in entered):
            problems.append(f"n{i}'s factory was called before all its dependencies entered")
            continue
        ready = max([0.0] + [t for t in entered if t is not None])
        # With limit=, it may wait for an enter slot; without, it starts at that instant.
        late = s.limit is None and r.made_at != ready
        if r.made_at < ready or late:
            problems.append(f"n{i} started at {r.made_at}, not when its deps were open ({ready})")
        if r.made_with != tuple(f"n{d}" for d in script.deps):
            problems.append(f"n{i}'s factory got {r.made_with}")
    return problems


def check_exits(s: GraphScenario, out: GraphOutcome) -> list[str]:
    """3. Every entered node exits once: after the body, and after its dependents."""
    problems: list[str] = []
    for i, r in enumerate(out.records):
        if r.entered_at is None:
            if r.exit_calls:
                problems.append(f"n{i} exited without having entered")
            continue
        if r.exit_calls != 1:
            problems.append(f"n{i} exited {r.exit_calls} times")
            continue
        assert r.exit_started is not None
        if r.crashed:
            continue  # it failed while open: it exits at once, by itself
        if out.body_ended is not None and r.exit_started < out.body_ended:
            problems.append(f"n{i} began to exit at {r.exit_started}, before the body ended")
        for j, other in enumerate(s.nodes):
            dependent = out.records[j]
            ended = dependent.exit_ended
            if i in other.deps and ended is not None and r.exit_started < ended:
                problems.append(f"n{i} began to exit before its dependent n{j} had exited")
    return problems


def _enter_faults(r: NodeRecord) -> list[BaseException]:
    return [f for f in r.faults if isinstance(f, OSError)]


def check_nothing_lost(s: GraphScenario, out: GraphOutcome) -> list[str]:
    """4. Every failure is raised, once, unless a node that received it suppressed it.

    A node's failed attempts are not failures if a later attempt entered; an optional
    node's tolerated failure is recorded instead (7); a node whose enter was cancelled (by
    the caller, or by another's failure) between or during attempts has no failure.
    """
    problems: list[str] = []
    raised = leaves(out.raised)
    if len(set(map(id, raised))) != len(raised):
        problems.append("an exception appears twice in what was raised")
    injected = [f for r in out.records for f in r.faults if not isinstance(f, OSError)]
    if out.body_exc is not None:
        injected.append(out.body_exc)
    for i, r in enumerate(out.records):
        attempts = _enter_faults(r)
        shown = [f for f in attempts if any(f is e for e in raised)]
        if r.entered_at is not None or f"n{i}" in out.tolerated:
            if shown:
                problems.append(f"n{i}'s failed attempts were raised: {shown!r}")
        elif shown and len(shown) != len(attempts):
            problems.append(f"n{i}'s attempts {attempts!r} were raised in part: {shown!r}")
        elif attempts and not shown and out.raised is None:
            problems.append(f"n{i}'s failure {attempts[-1]!r} was lost")
    suppressors = [
        r
        for script, r in zip(s.nodes, out.records, strict=True)
        if script.suppress and r.exit_calls and not script.exit_error and not r.crashed
    ]
    for fault in injected:
        if any(fault is e for e in raised):
            continue
        if any(any(fault is e for e in leaves(r.seen)) for r in suppressors):
            continue
        problems.append(f"{fault!r} was lost")
    if out.raised is not None and not isinstance(out.raised, (BaseExceptionGroup, trio.Cancelled)):
        problems.append(f"raised {out.raised!r}, not a group")
    return problems


def check_timing(s: GraphScenario, out: GraphOutcome) -> list[str]:
    """5. Without faults, start-up and teardown each cost the longest chain."""
    faults = any(r.faults for r in out.records)
    if out.raised is not None or faults or s.cancel_at is not None or s.limit is not None:
        return []
    start = [0.0] * len(s.nodes)
    for i, script in enumerate(s.nodes):
        start[i] = max([0.0] + [start[d] + s.nodes[d].enter_delay for d in script.deps])
    body = max([0.0] + [start[i] + n.enter_delay for i, n in enumerate(s.nodes)])
    problems: list[str] = []
    if out.body_started != body:
        problems.append(f"the body started at {out.body_started}, not {body}")
    assert out.body_ended is not None
    ends = [0.0] * len(s.nodes)
    for i in reversed(range(len(s.nodes))):
        after = [ends[j] for j, n in enumerate(s.nodes) if i in n.deps]
        begin = max([out.body_ended, *after])
        ends[i] = begin + s.nodes[i].exit_delay
        if out.records[i].exit_started != begin:
            problems.append(f"n{i} began to exit at {out.records[i].exit_started}, not {begin}")
    return problems


def check_received(s: GraphScenario, out: GraphOutcome) -> list[str]:
    """6. What each __aexit__ receives follows the rule of docs/semantics.rst."""
    if s.cancel_at is not None or any(r.crashed for r in out.records):
        return []
    if any(isinstance(e, trio.TooSlowError) for e in leaves(out.raised)):
        return []  # the shutdown budget cut an exit: checked by check_budget
    if any(r.entered_at is None for r in out.records):
        return []  # an enter failure: checked by the unit tests
    n = len(s.nodes)
    dependents = [[j for j in range(n) if i in s.nodes[j].deps] for i in range(n)]
    sinks = [] if out.body_exc is None else [out.body_exc]
    received: list[list[BaseException]] = [[] for _ in range(n)]
    passed: list[list[BaseException]] = [[] for _ in range(n)]
    gone: list[set[int]] = [set() for _ in range(n)]
    problems: list[str] = []
    for i in reversed(range(n)):
        suppressed = set[int]().union(*(gone[j] for j in dependents[i]))
        if dependents[i]:
            got: list[BaseException] = []
            for j in dependents[i]:
                for e in passed[j]:
                    if id(e) not in suppressed and all(e is not g for g in got):
                        got.append(e)
        else:
            got = list(sinks)
        received[i] = got
        seen = members_of(out.records[i].seen)
        if len(seen) != len(got) or any(a is not b for a, b in zip(seen, got, strict=False)):
            problems.append(f"n{i} received {seen!r}, not {got!r}")
        script = s.nodes[i]
        let_through = [] if script.suppress and got and not script.exit_error else list(got)
        if script.suppress and got and not script.exit_error:
            suppressed |= {id(e) for e in got}
        own: list[BaseException] = [f for f in out.records[i].faults if isinstance(f, KeyError)]
        passed[i] = let_through + own
        gone[i] = suppressed
    return problems


def check_optional(s: GraphScenario, out: GraphOutcome) -> list[str]:
    """7. An optional node that fails to enter is recorded, never raised; what needs it is
    skipped, its factory never called."""
    problems: list[str] = []
    if out.body_started is None:
        return problems  # the graph did not enter: 4 says what was raised
    raised = {id(e) for e in leaves(out.raised)}
    for i, (script, r) in enumerate(zip(s.nodes, out.records, strict=True)):
        name = f"n{i}"
        if r.entered_at is not None:
            if name in out.tolerated or name in out.skipped:
                problems.append(f"{name} entered, yet is listed as left out")
            continue
        if not script.optional:
            problems.append(f"the body ran without {name}, which is not optional")
        elif r.made_at is None:
            if name not in out.skipped:
                problems.append(f"{name} was never started, yet is not listed as skipped")
            left_out = [d for d in script.deps if out.records[d].entered_at is None]
            if not left_out:
                problems.append(f"{name} was skipped, though every node it needs entered")
        elif name not in out.tolerated:
            problems.append(f"{name} did not enter, yet its failure was not recorded")
    problems += [
        f"the tolerated {exc!r} was raised"
        for exc in out.tolerated_exceptions
        if any(id(leaf) in raised for leaf in leaves(exc))
    ]
    problems += [
        f"{name} is listed as skipped, yet its factory was called"
        for name in out.skipped
        if out.records[int(name[1:])].made_at is not None
    ]
    return problems


def check_retries(s: GraphScenario, out: GraphOutcome) -> list[str]:
    """8. At most the attempts allowed, each after a failed one, never after a cancellation
    (the caller's, or one that another node's failure caused)."""
    problems: list[str] = []
    stops = [s.cancel_at] if s.cancel_at is not None else []
    for script, r in zip(s.nodes, out.records, strict=True):
        allowed = script.retry or 1
        if r.entered_at is None and not script.optional and len(r.attempts) == allowed:
            stops.append(r.attempts[-1] + script.enter_delay)  # it failed for good then
    for i, (script, r) in enumerate(zip(s.nodes, out.records, strict=True)):
        allowed = script.retry or 1
        if len(r.attempts) > allowed:
            problems.append(f"n{i} made {len(r.attempts)} attempts, not at most {allowed}")
        for attempt, (before, at) in enumerate(itertools.pairwise(r.attempts), start=2):
            want = before + script.enter_delay + RETRY_WAIT
            if abs(at - want) > 1e-9:
                problems.append(f"n{i}'s attempt {attempt} came at {at}, not {want}")
            if any(at > stop for stop in stops):
                problems.append(f"n{i} retried at {at}, after a cancellation at {min(stops)}")
        wanted = min(script.failing_attempts + 1, allowed)
        if r.entered_at is not None and not script.enter_error and len(r.attempts) != wanted:
            problems.append(f"n{i} entered after {len(r.attempts)} attempts, not {wanted}")
    return problems


def check_budget(s: GraphScenario, out: GraphOutcome) -> list[str]:
    """9. Nothing outlives the shutdown budget: an exit still running when it runs out is
    cancelled then, and fails with TooSlowError."""
    problems: list[str] = []
    if s.shutdown_timeout is None or out.body_ended is None:
        return problems
    deadline = out.body_ended + s.shutdown_timeout
    too_slow = [e for e in leaves(out.raised) if isinstance(e, trio.TooSlowError)]
    for i, r in enumerate(out.records):
        if r.exit_ended is None or r.crashed:
            continue
        if r.exit_ended > deadline + 1e-9:
            problems.append(f"n{i} ended its exit at {r.exit_ended}, after the budget ({deadline})")
        cut = abs(r.exit_ended - deadline) < 1e-9
        if cut and not any(
            f"n{i} did not exit within the shutdown budget" in str(e) for e in too_slow
        ):
            problems.append(f"n{i}'s exit was cut by the budget, but no TooSlowError says so")
    return problems


CHECKERS = (
    check_ownership,
    check_dependencies,
    check_exits,
    check_nothing_lost,
    check_timing,
    check_received,
    check_optional,
    check_retries,
    check_budget,
)


def check_graph(s: GraphScenario, out: GraphOutcome) -> list[str]:
    return [problem for checker in CHECKERS for problem in checker(s, out)]
