"""Fault injection for ``ResourceGraph``: random DAGs of scripted nodes, and an oracle.

A scenario is data (``GraphScenario``): up to six nodes, each with its dependencies (earlier
nodes), its delays and its faults (an enter error, in its ``__aenter__`` or its factory, a
``KeyboardInterrupt`` while entering or exiting, a crash while open, ending by itself
while open (a scope held across the yield and cancelled by its own task, as a
``move_on_after`` would be), an exit error, a suppressing exit), whether it is optional,
how many of its attempts fail (with ``retry``), its own ``enter_timeout`` and
``exit_timeout``, a body, an optional outer cancellation and an optional shutdown budget.
``run_graph`` runs it on the virtual clock of its event loop (``GraphScenario.runtime``:
Trio, its scheduler seeded by the scenario, or asyncio), and records what every node saw,
what the block raised and what escaped the run, and in which order things happened;
``check_graph`` checks the invariants of docs/semantics.rst ("ResourceGraph") against that
record, one checker per guarantee, with a model of the unwinding (what each node must
receive, when it may start, what a suppression takes away) built from the record.

Times are chosen so that no two kinds of event tie: delays are whole seconds, crashes fall
on x.5 s, the outer cancellation on x.25 s, a retry waits 0.1 s, a shutdown budget lasts a
whole number of seconds and 0.6 s, a node's timeouts a whole number and 0.7 s (a crash
scheduled before a node entered, after retries, fires as it enters: that tie is modelled).

Notes: what the oracle does not check, and why.

* What each ``__aexit__`` receives after an enter failure (the body never ran): the graph
  harness has no model of which enter failure is the first in time when several fail in
  one step; the unit tests (tests/test_graph.py) check those deliveries.
* A lost ``TooSlowError`` of a node's ``exit_timeout``: no fault object stands for it, so
  nothing can be counted; a foreign or misplaced one is still caught (its note, its phase,
  and the extras check), and the deliveries use the engine's own object.
* Start-up and teardown times (check_timing) only with no fault but crashes (or ending by
  itself), and no outer cancellation, limit or timeout that fired: the others change
  when things end, and the other checkers bound them.
* A lost ``RuntimeError`` of a node that ended by itself while the others were entering:
  whether it ended first or another's enter failure came first is a tie the records
  cannot always order; its note, phase and the extras check still apply.

On asyncio (``on_asyncio``; the runtime's differences are in the design notes of
``trio_parallel_cm/_runtime/_asyncio.py``), the fakes reach the loop through the flat
harness's ``Loop`` (``tests/harness/loops.py``), and the adjustments are the flat
harness's: a crash comes ``CRASH_LAG_ON_ASYNCIO`` later, off the grid (it reaches its
holder an iteration later); timeouts are the builtin ``TimeoutError``; the outer
cancellation may be native (``Task.cancel``), which is delivered once, so a node that
suppresses it ends it, and never put in a group beside failures.
"""

from __future__ import annotations

import itertools
import math
import zlib
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any

import attrs

from tests.harness.exceptions import leaves, members
from tests.harness.explore import CRASH_LAG_ON_ASYNCIO
from tests.harness.loops import ASYNCIO, CANCELLED, LOOPS, TOO_SLOW, TRIO, Group, Loop, Scope
from trio_parallel_cm import ResourceGraph, Retry, failures_of


@attrs.frozen
class NodeScript:
    """One node: its dependencies and what it does."""

    deps: tuple[int, ...] = ()
    enter_delay: int = 0
    enter_error: bool = False
    crash_at: float | None = None  # a background task fails at this time, while open
    #: It ends by itself at this time, while open: a scope it holds across the yield is
    #: cancelled (as a ``move_on_after`` would be); its exit then ends at once, unscripted.
    ends_at: float | None = None
    exit_delay: int = 0
    exit_error: bool = False
    suppress: bool = False
    optional: bool = False
    # With ``retry`` (this many attempts in all): the first ``failing_attempts`` attempts
    # fail to enter (OSError), the others follow the script.
    retry: int | None = None
    failing_attempts: int = 0
    #: Its failing attempts fail in its factory (at once), not in ``__aenter__``.
    factory_error: bool = False
    #: ``"enter"``: its ``__aenter__`` raises ``KeyboardInterrupt`` (before any other enter
    #: fault: it is never retried); ``"exit"``: its ``__aexit__`` does, instead of KeyError.
    interrupt: str | None = None
    #: Its own ``enter_timeout`` and ``exit_timeout`` (x.7 s: they tie with nothing else).
    enter_timeout: float | None = None
    exit_timeout: float | None = None


#: The wait before each retry (``Retry(backoff=RETRY_WAIT, multiplier=1)``).
RETRY_WAIT = 0.1


#: The fields of a scenario that its repr shows only when they are not at their default:
#: a Trio scenario's repr, which seeds its run, is what it was before asyncio came.
_RUNTIME_FIELDS = ("runtime", "native_cancel")


@attrs.frozen(repr=False)
class GraphScenario:
    nodes: tuple[NodeScript, ...]
    body_delay: int = 0
    body_error: bool = False
    cancel_at: float | None = None
    limit: int | None = None
    shutdown_timeout: float | None = None
    #: The event loop: ``"trio"``, or ``"asyncio"`` (``tests/harness/loops.py``).
    runtime: str = TRIO
    #: asyncio: the outer cancellation at ``cancel_at`` is a native ``Task.cancel`` of the
    #: task running the block (as ``asyncio.timeout`` makes), not an anyio scope's.
    native_cancel: bool = False

    def __repr__(self) -> str:
        """``GraphScenario(field=value, ...)``, as attrs writes it, less the runtime's
        fields at their default: ``run_graph(eval(repr(scenario)))`` reproduces it."""
        parts = [
            f"{field.name}={getattr(self, field.name)!r}"
            for field in attrs.fields(GraphScenario)
            if field.name not in _RUNTIME_FIELDS or getattr(self, field.name) != field.default
        ]
        return f"GraphScenario({', '.join(parts)})"

    def __attrs_post_init__(self) -> None:
        if self.runtime not in LOOPS:
            raise ValueError(f"no event loop named {self.runtime!r}")
        if self.native_cancel and (self.runtime != ASYNCIO or self.cancel_at is None):
            raise ValueError("a native cancellation is asyncio's, of an outer cancellation")

    @property
    def loop(self) -> Loop:
        return LOOPS[self.runtime]


def on_asyncio(scenario: GraphScenario, *, native: bool = False) -> GraphScenario:
    """``scenario`` on asyncio (``native``: its outer cancellation, if any, a
    ``Task.cancel``), each crash ``CRASH_LAG_ON_ASYNCIO`` later, as the flat harness's
    ``on_asyncio`` moves them (``tests/harness/explore.py``)."""
    nodes = tuple(
        node
        if node.crash_at is None
        else attrs.evolve(node, crash_at=node.crash_at + CRASH_LAG_ON_ASYNCIO)
        for node in scenario.nodes
    )
    native = native and scenario.cancel_at is not None
    return attrs.evolve(scenario, nodes=nodes, runtime=ASYNCIO, native_cancel=native)


#: Orders the events of a run in time (several happen at one virtual instant): each
#: ``*_seq`` field is a number from it.
_SEQ = itertools.count(1)


@attrs.define
class NodeRecord:
    """What happened to one node, on the virtual clock (and in the total order of events)."""

    made_at: float | None = None
    attempts: list[float] = attrs.Factory(list[float])  # when each factory call was made
    made_with: tuple[Any, ...] = ()
    made_in: object = None
    enter_task: object = None
    entered_at: float | None = None
    entered_seq: int | None = None
    #: When its last ``__aenter__`` ended (entered, failed or cancelled).
    enter_ended: float | None = None
    enter_ended_seq: int | None = None
    exit_calls: int = 0
    exit_task: object = None
    exit_started: float | None = None
    exit_started_seq: int | None = None
    exit_ended: float | None = None
    exit_ended_seq: int | None = None
    seen: BaseException | None = None
    #: What its ``__aexit__`` returned, or raised.
    exit_returned: bool | None = None
    exit_raised: BaseException | None = None
    crashed: bool = False
    crashed_at: float | None = None
    crashed_seq: int | None = None
    faults: list[BaseException] = attrs.Factory(list[BaseException])


@attrs.define
class GraphOutcome:
    records: list[NodeRecord]
    body_started: float | None = None
    body_ended: float | None = None
    body_ended_seq: int | None = None
    body_exc: BaseException | None = None
    #: What the body raised (its own exception, or the caller's ``Cancelled``).
    body_raised: BaseException | None = None
    #: What ``async with graph`` raised, and what left the run (through the caller's
    #: scope, which takes its own ``Cancelled`` out): nothing else may escape.
    raised: BaseException | None = None
    escaped: BaseException | None = None
    #: The caller's scope: whether its deadline passed, whether it caught its Cancelled.
    cancel_called: bool = False
    cancel_caught: bool = False
    ended: float = 0
    # What the body saw of the optional nodes: the names of the tolerated failures'
    # nodes, their exceptions, and the names of the skipped ones.
    tolerated: list[str] = attrs.Factory(list[str])
    tolerated_exceptions: list[BaseException] = attrs.Factory(list[BaseException])
    skipped: list[str] = attrs.Factory(list[str])


def failing_attempt(script: NodeScript, attempt: int) -> bool:
    """Whether this attempt of the node fails to enter (with an OSError)."""
    return script.enter_error or attempt <= script.failing_attempts


def failing_delay(script: NodeScript) -> int:
    """How long a failing attempt takes: a factory fails at once."""
    return 0 if script.factory_error else script.enter_delay


class ScriptedNode:
    """The async context manager a node's factory makes: it follows its script."""

    def __init__(
        self, index: int, script: NodeScript, rec: NodeRecord, attempt: int, loop: Loop
    ) -> None:
        self.name = f"n{index}"
        self.script = script
        self.rec = rec
        self.attempt = attempt
        self.loop = loop
        self.nursery_manager: AbstractAsyncContextManager[Group] | None = None
        self.nursery: Group | None = None
        self.scope: Scope | None = None

    async def __aenter__(self) -> str:
        loop = self.loop
        self.rec.enter_task = loop.current_task()
        try:
            await loop.sleep(self.script.enter_delay)
            if self.script.interrupt == "enter":
                interrupt = KeyboardInterrupt(f"{self.name} enter")
                self.rec.faults.append(interrupt)
                raise interrupt
            if failing_attempt(self.script, self.attempt):
                error = OSError(f"{self.name} enter (attempt {self.attempt})")
                self.rec.faults.append(error)
                raise error
            if self.script.ends_at is not None:
                self.scope = loop.scope()
                self.scope.__enter__()
            if self.script.crash_at is not None or self.script.ends_at is not None:
                self.nursery_manager = loop.open_group()
                nursery = await self.nursery_manager.__aenter__()
                if self.script.crash_at is not None:
                    nursery.start_soon(self._crash, self.script.crash_at)
                if self.script.ends_at is not None:
                    nursery.start_soon(self._end, self.script.ends_at)
                self.nursery = nursery
            self.rec.entered_at = loop.current_time()
            self.rec.entered_seq = next(_SEQ)
            return self.name
        finally:
            self.rec.enter_ended = loop.current_time()
            self.rec.enter_ended_seq = next(_SEQ)

    async def _crash(self, at: float) -> None:
        await self.loop.sleep_until(at)
        self.rec.crashed = True
        self.rec.crashed_at = self.loop.current_time()
        self.rec.crashed_seq = next(_SEQ)
        error = ValueError(f"{self.name} crash")
        self.rec.faults.append(error)
        raise error

    async def _end(self, at: float) -> None:
        """Ends the node by itself: recorded as a crash without an exception."""
        await self.loop.sleep_until(at)
        self.rec.crashed = True
        self.rec.crashed_at = self.loop.current_time()
        self.rec.crashed_seq = next(_SEQ)
        assert self.scope is not None
        self.scope.cancel()

    async def _close_scope(self, exc: BaseException | None) -> bool:
        """Closes its nursery and the scope it held across the yield, ``exc`` in flight:
        whether it suppressed ``exc`` (its own ``Cancelled``); raises what else came out."""
        assert self.scope is not None and self.nursery is not None
        assert self.nursery_manager is not None
        pending = exc
        self.nursery.cancel_scope.cancel()
        try:
            await self.nursery_manager.__aexit__(None, None, None)
        except BaseException as raised:  # its own Cancelled, at the nursery's checkpoint
            pending = raised
        kind = None if pending is None else type(pending)
        tb = None if pending is None else pending.__traceback__
        if self.scope.__exit__(kind, pending, tb):
            return exc is not None
        if pending is not exc and pending is not None:
            raise pending
        return False

    def _exit_started(self, exc: BaseException | None) -> NodeRecord:
        """Record that ``__aexit__`` began, with ``exc``; the record."""
        rec = self.rec
        rec.exit_calls += 1
        rec.exit_task = self.loop.current_task()
        rec.exit_started = self.loop.current_time()
        rec.exit_started_seq = next(_SEQ)
        rec.seen = exc
        return rec

    async def _exit_ended(self, exc: BaseException | None) -> bool:
        """The exit of a node that may end by itself: its scope closed, nothing else."""
        rec = self._exit_started(exc)
        try:
            suppressed = await self._close_scope(exc)
        except BaseException as raised:
            rec.exit_raised = raised
            raise
        else:
            rec.exit_returned = suppressed
        finally:
            rec.exit_ended = self.loop.current_time()
            rec.exit_ended_seq = next(_SEQ)
        return suppressed

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        if self.scope is not None:
            return await self._exit_ended(exc)
        rec = self._exit_started(exc)
        try:
            if self.nursery is not None:
                assert self.nursery_manager is not None
                self.nursery.cancel_scope.cancel()  # a crash not yet happened never will
                await self.nursery_manager.__aexit__(None, None, None)  # raises a crash
            await self.loop.sleep(self.script.exit_delay)
            if self.script.interrupt == "exit":
                interrupt = KeyboardInterrupt(f"{self.name} exit")
                rec.faults.append(interrupt)
                raise interrupt
            if self.script.exit_error:
                error = KeyError(f"{self.name} exit")
                rec.faults.append(error)
                raise error
        except BaseException as raised:
            rec.exit_raised = raised
            raise
        else:
            rec.exit_returned = self.script.suppress
        finally:
            rec.exit_ended = self.loop.current_time()
            rec.exit_ended_seq = next(_SEQ)
        return self.script.suppress


def run_graph(scenario: GraphScenario) -> GraphOutcome:
    """Run ``scenario`` in a fresh run of its event loop, on a virtual clock, and record
    everything (on Trio, the scheduler seeded by the scenario: a run is a function of it)."""
    records = [NodeRecord() for _ in scenario.nodes]
    out = GraphOutcome(records)
    loop = scenario.loop

    def factory(index: int) -> Callable[..., ScriptedNode]:
        def make(*values: Any) -> ScriptedNode:
            rec = records[index]
            if rec.made_at is None:
                rec.made_at = loop.current_time()
            rec.attempts.append(loop.current_time())
            rec.made_with = values
            rec.made_in = loop.current_task()
            script, attempt = scenario.nodes[index], len(rec.attempts)
            if script.factory_error and failing_attempt(script, attempt):
                rec.enter_ended, rec.enter_ended_seq = loop.current_time(), next(_SEQ)
                error = ConnectionError(f"n{index} factory (attempt {attempt})")
                rec.faults.append(error)
                raise error
            return ScriptedNode(index, script, rec, attempt, loop)

        make.__name__ = f"n{index}"
        return make

    async def main() -> None:
        # Built inside the run: anything ``ResourceGraph`` or ``add`` raises escapes, and
        # check_escaped sees it.
        graph = ResourceGraph(limit=scenario.limit, shutdown_timeout=scenario.shutdown_timeout)
        nodes: list[Any] = []
        for index, script in enumerate(scenario.nodes):
            retry = None if script.retry is None else Retry(script.retry, RETRY_WAIT, 1)
            deps = (nodes[d] for d in script.deps)
            nodes.append(
                graph.add(
                    factory(index),
                    *deps,
                    optional=script.optional,
                    retry=retry,
                    enter_timeout=script.enter_timeout,
                    exit_timeout=script.exit_timeout,
                )
            )
        # The caller's scope (the run begins at 0), or, native, asyncio's Task.cancel.
        seconds = math.inf if scenario.cancel_at is None else scenario.cancel_at
        outer = loop.cancel_after if scenario.native_cancel else loop.move_on_after
        scope: Any = None
        try:
            with outer(seconds) as scope:
                await enter(graph)
        finally:
            out.cancel_called, out.cancel_caught = scope.cancel_called, scope.cancelled_caught

    async def enter(graph: ResourceGraph) -> None:
        try:
            async with graph as resources:
                out.body_started = loop.current_time()
                out.tolerated = [f.name for f in resources.failures]
                out.tolerated_exceptions = [f.exception for f in resources.failures]
                out.skipped = [node.name for node in resources.skipped]
                try:
                    await loop.sleep(scenario.body_delay)
                    if scenario.body_error:
                        out.body_exc = LookupError("body")
                        raise out.body_exc
                except BaseException as exc:
                    out.body_raised = exc
                    raise
                finally:
                    out.body_ended = loop.current_time()
                    out.body_ended_seq = next(_SEQ)
        except BaseException as exc:
            out.raised = exc
            raise

    # Trio shuffles each batch of runnable tasks: seeded by the scenario, a run is a
    # function of it, and a failing scenario printed by the tests reproduces.
    try:
        loop.run(main, zlib.crc32(repr(scenario).encode()))
    except BaseException as exc:  # checked by check_escaped
        out.escaped = exc
    out.ended = max([0.0] + [r.exit_ended or 0.0 for r in records])
    return out


# ---- the unwinding, modelled from the records --------------------------------------------
#
# As for ``parallel_with`` (``tests/harness/unwinding.py``), not a second implementation:
# the model reads what each node received, raised and suppressed, and when each crashed,
# and applies the rules of docs/semantics.rst ("What each __aexit__ receives", "A node
# failing while open"):
#
# * a node *failing* (it crashed while open, so its ``__aexit__`` received its own
#   ``Cancelled``) exits after every node depending on it, directly or not; the nodes
#   related to no node failing as the exit began ("free") wait for every such node too;
# * a node receives the newest of what its entered dependents let through (a failure
#   supersedes what its node received, a failing node's what it would have received), one
#   group when several arrive, less what a dependent suppressed and what it superseded;
#   one without an entered dependent receives the body's outcome, or, free, the first
#   failure in time of the failing ones;
# * suppressing an exception suppresses everything it superseded.
#
# Where the records cannot order two events of one instant, the model has alternatives,
# and the oracle takes the one that fits the records best.


#: Stands for the caller's cancellation, delivered natively, in the model.
_CANCELLATION = BaseException("the caller's cancellation, delivered natively")

Excs = tuple[BaseException, ...]


def dependents_of(s: GraphScenario) -> list[list[int]]:
    """For each node, the nodes that depend on it directly, in node order."""
    n = len(s.nodes)
    return [[j for j in range(n) if i in s.nodes[j].deps] for i in range(n)]


def below(s: GraphScenario, nodes: set[int]) -> set[int]:
    """``nodes`` and every node that depends on one of them, directly or not."""
    dependents = dependents_of(s)
    found, todo = set(nodes), list(nodes)
    while todo:
        for j in dependents[todo.pop()]:
            if j not in found:
                found.add(j)
                todo.append(j)
    return found


def cancelled_only(exc: BaseException | None) -> bool:
    """``exc`` is a ``Cancelled``, or a group of nothing else (a node's nursery wraps it)."""
    found = leaves(exc)
    return bool(found) and all(isinstance(e, CANCELLED) for e in found)


def failing(r: NodeRecord) -> bool:
    """It crashed while open, and its ``__aexit__`` received its own ``Cancelled``."""
    return r.crashed and isinstance(r.seen, CANCELLED)


@attrs.frozen(eq=False)
class GraphUnwinding:
    """The model under one order of the ties."""

    #: The nodes failing as the exit began, and those related to none of them.
    failing: frozenset[int]
    free: frozenset[int]
    #: What each node that exited must receive: ``None`` (nothing), an exception, a tuple
    #: (a group of exactly these), or ``_CANCELLATION`` (its own ``Cancelled``).
    wants: dict[int, BaseException | Excs | None]
    #: The identities of what was suppressed.
    gone: frozenset[int]


def _failure(
    s: GraphScenario, out: GraphOutcome, i: int, too_slow: dict[int, BaseException]
) -> BaseException | None:
    """What a node's exit raised that is its failure: a cut exit's is the engine's
    ``TooSlowError``, found where it went (else a stand-in, of a budget)."""
    r = out.records[i]
    raised = r.exit_raised
    if raised is None:
        late = _late_for_the_budget(s, out, i)
        if r.exit_returned or not (isinstance(r.seen, CANCELLED) or late):
            return None
        # Failing, it let its own Cancelled through, or it began to exit once the budget
        # had run out (it waited for its dependents, or, with limit=, for an exit slot): a
        # budget that ran out before its exit began cut it all the same.
        seen = [e for other in out.records for e in leaves(other.seen)]
        found = [e for e in [*leaves(out.raised), *seen] if _too_slow(e, i, "exit")]
        if found:
            too_slow.setdefault(i, found[0])
        return too_slow.get(i)
    if not cancelled_only(raised):
        return raised
    if s.shutdown_timeout is not None or s.nodes[i].exit_timeout is not None:
        if i not in too_slow:
            seen = [e for r in out.records for e in leaves(r.seen)]
            found = [e for e in [*leaves(out.raised), *seen] if _too_slow(e, i, "exit")]
            stand_in = BaseException(f"n{i} did not exit within the budget")
            too_slow[i] = found[0] if found else stand_in
        return too_slow[i]
    return None  # the caller's cancellation: it let through what it received


def crashed_first(
    s: GraphScenario, r: NodeRecord, seq: int | None, at: float | None
) -> bool | None:
    """Whether ``r``'s node failed while open (crashed, or ended by itself) before the
    step ``seq`` of the run, at the time ``at``; ``None``: a tie the records cannot order.

    On Trio the order of the steps is the order of the failures.  On asyncio a crash
    reaches its holder an iteration later (the task group cancels its host from a done
    callback: the runtime's notes): in its instant, its order with another step is not
    fixed.  (A node ending by itself cancels its holder at once, as on Trio.)
    """
    if r.crashed_seq is None or seq is None:
        return False
    if s.runtime == ASYNCIO and not ended_by_itself(r) and r.crashed_at == at:
        return None
    return r.crashed_seq < seq


def _subsets(sure: set[int], tied: list[int]) -> list[frozenset[int]]:
    """``sure`` with each subset of ``tied``: every order of the ties."""
    return [
        frozenset(sure | set(extra))
        for k in range(len(tied) + 1)
        for extra in itertools.combinations(tied, k)
    ]


def _failing_choices(s: GraphScenario, out: GraphOutcome) -> list[frozenset[int]]:
    """Which nodes were failing as the exit began, under every order of the ties."""
    records = out.records
    if out.body_ended_seq is not None:
        # The exit begins in the very step in which the body ended: a node that crashed
        # before, parked, was failing (whatever it then received).
        entered = [(i, r) for i, r in enumerate(records) if r.entered_at is not None]
        first = {i: crashed_first(s, r, out.body_ended_seq, out.body_ended) for i, r in entered}
        # A body cut short at the instant of a crash was cut by it: no tie (on asyncio,
        # the holder cancels the body once the crash has reached it).
        assert out.body_started is not None and out.body_ended is not None
        cut = out.body_ended < out.body_started + s.body_delay
        sure = {i for i in first if first[i] or (cut and first[i] is None)}
        return _subsets(sure, [i for i in first if i not in sure and first[i] is None])
    crashed = [i for i, r in enumerate(records) if failing(r) and r.crashed_seq is not None]
    # An enter failed, or a node failed while others entered: the exit begins once the
    # enters are over (cancelled at once), at that instant.
    ends = [(r.enter_ended_seq, r.enter_ended) for r in records if r.enter_ended_seq is not None]
    last_seq, last_time = max(ends, key=lambda pair: pair[0] or 0) if ends else (0, 0.0)
    alerts = [records[i].crashed_at for i in crashed]
    alerts += [
        r.enter_ended
        for i, (script, r) in enumerate(zip(s.nodes, records, strict=True))
        if r.entered_at is None
        and not script.optional
        and (_enter_faults(r) or timed_out_entering(s, out, i))
    ]
    if s.cancel_at is not None:
        alerts.append(s.cancel_at)
    begin = max([last_time or 0.0, min((a for a in alerts if a is not None), default=0.0)])
    sure = {
        i
        for i in crashed
        if crashed_first(s, records[i], last_seq, last_time) or (records[i].crashed_at or 0) < begin
    }
    tied = [i for i in crashed if i not in sure and records[i].crashed_at == begin]
    return _subsets(sure, tied)


def graph_unwindings(s: GraphScenario, out: GraphOutcome) -> list[GraphUnwinding]:
    """The model of ``out`` under every order of its ties."""
    records, n = out.records, len(s.nodes)
    dependents = dependents_of(s)
    body: Excs = (out.body_exc,) if out.body_exc is not None else ()
    cancelled = s.cancel_at is not None and out.body_ended is not None
    if cancelled and not body and (s.cancel_at or 0.0) <= (out.body_ended or 0.0):
        body = (_CANCELLATION,)  # the caller cancelled the body: delivered natively
    too_slow: dict[int, BaseException] = {}
    models: list[GraphUnwinding] = []
    for fs in _failing_choices(s, out):
        free = frozenset(range(n)) - below(s, set(fs)) if fs else frozenset[int]()
        failures = {i: f for i in fs if (f := _failure(s, out, i, too_slow)) is not None}
        soonest = min((records[i].crashed_at or 0.0 for i in failures), default=None)
        firsts: list[int | None] = [i for i in failures if records[i].crashed_at == soonest]
        models += [
            _unwind(s, out, dependents, body, fs, free, first, too_slow)
            for first in firsts or [None]
        ]
    return models


def _unwind(
    s: GraphScenario,
    out: GraphOutcome,
    dependents: list[list[int]],
    body: Excs,
    fs: frozenset[int],
    free: frozenset[int],
    first: int | None,
    too_slow: dict[int, BaseException],
) -> GraphUnwinding:
    records = out.records
    outs: dict[int, Excs] = {}
    covers: dict[int, frozenset[int]] = {}
    gones: dict[int, frozenset[int]] = {}
    wants: dict[int, BaseException | Excs | None] = {}
    body_covers = frozenset(map(id, body))
    for i in reversed(range(len(s.nodes))):
        r = records[i]
        if r.entered_at is None or not r.exit_calls:
            continue
        entered = [j for j in dependents[i] if j in outs]
        if entered:
            gone = frozenset[int]().union(*(gones[j] for j in entered))
            cover = frozenset[int]().union(*(covers[j] for j in entered))
            superseded = frozenset[int]().union(
                *(covers[j] - set(map(id, outs[j])) for j in entered)
            )
            received: list[BaseException] = []
            for j in entered:
                for e in outs[j]:
                    if id(e) not in gone | superseded and all(e is not g for g in received):
                        received.append(e)
            got, cover = tuple(received), cover - gone
        else:
            gone, got, cover = frozenset[int](), body, body_covers
            if i in free and first is not None:
                f = _failure(s, out, first, too_slow)
                assert f is not None
                got, cover = (f,), cover | {id(f)}
        is_failing = i in fs or failing(r)
        if is_failing:
            wants[i] = _CANCELLATION
        elif got == (_CANCELLATION,) or not got:
            wants[i] = _CANCELLATION if got else None
        else:
            wants[i] = got[0] if len(got) == 1 else got
        failure = _failure(s, out, i, too_slow)
        if failure is not None:
            outs[i], covers[i] = (failure,), cover | {id(failure)}
        elif not is_failing and r.seen is not None and r.exit_returned and got:
            # The caller's cancellation of the body is no exception to suppress: every
            # holder below is cancelled natively all the same (guarantee 8), also when a
            # failure superseded it on the way.
            kept = body if body == (_CANCELLATION,) else ()
            outs[i], covers[i] = kept, frozenset(map(id, kept))
            gone = gone | (cover - covers[i])
        else:
            outs[i], covers[i] = got, cover
        gones[i] = gone
    total = frozenset[int]().union(*gones.values())
    return GraphUnwinding(fs, free, wants, total)


def accepts(want: BaseException | Excs | None, seen: BaseException | None) -> bool:
    """``seen`` is what the model wants."""
    if want is None:
        return seen is None
    if want is _CANCELLATION:
        return isinstance(seen, CANCELLED)
    if isinstance(want, tuple):
        inner = members(seen)
        return (
            inner is not None
            and len(inner) == len(want)
            and all(a is b for a, b in zip(inner, want, strict=True))
        )
    return seen is want


def _shown(exc: BaseException | Excs | None) -> str:
    if exc is _CANCELLATION:
        return "its own Cancelled"
    return f"a group of {list(exc)!r}" if isinstance(exc, tuple) else repr(exc)


def exit_order_problems(s: GraphScenario, out: GraphOutcome, model: GraphUnwinding) -> list[str]:
    """3. Every entered node exits after the body, after every node that depends on it
    (directly or not), and, free, after every node failing as the exit began."""
    problems: list[str] = []
    records = out.records
    for i, r in enumerate(records):
        begun = r.exit_started_seq
        if r.entered_at is None or begun is None:
            continue
        if out.body_ended_seq is not None and begun < out.body_ended_seq:
            problems.append(f"n{i} began to exit at {r.exit_started}, before the body ended")
        for j in sorted(below(s, {i}) - {i}):
            ended = records[j].exit_ended_seq
            if ended is not None and begun < ended:
                problems.append(f"n{i} began to exit before its dependent n{j} had exited")
        if i in model.free:
            for f in sorted(model.failing):
                ended = records[f].exit_ended_seq
                if ended is not None and begun < ended:
                    problems.append(
                        f"n{i} began to exit before n{f}, failing as the exit began, had exited"
                    )
    return problems


def delivery_problems(s: GraphScenario, out: GraphOutcome, model: GraphUnwinding) -> list[str]:
    """6. What each node received, against the model."""
    return [
        f"n{i} received {_shown(out.records[i].seen)}, not {_shown(want)}"
        for i, want in model.wants.items()
        if not accepts(want, out.records[i].seen)
    ]


def deliveries_checked(s: GraphScenario, out: GraphOutcome) -> bool:
    """Whether the deliveries are checked: the body ran (after an enter failure, the unit
    tests check them)."""
    return out.body_started is not None


def fitting(s: GraphScenario, out: GraphOutcome) -> GraphUnwinding:
    """The model under the order of ties that explains the records best."""
    shown = {id(leaf) for leaf in leaves(out.raised)}
    checked = deliveries_checked(s, out)
    best: tuple[int, GraphUnwinding] | None = None
    for model in graph_unwindings(s, out):
        misfits = len(exit_order_problems(s, out, model))
        if checked:
            misfits += len(delivery_problems(s, out, model))
        if out.body_started is not None:
            for fault, owner in _faults_and_owners(s, out):
                misfits += (id(owner) in model.gone) == (id(fault) in shown)
        if best is None or misfits < best[0]:
            best = (misfits, model)
        if not misfits:
            break
    assert best is not None
    return best[1]


def _faults_and_owners(
    s: GraphScenario, out: GraphOutcome
) -> list[tuple[BaseException, BaseException]]:
    """Each injected fault (a crash, an exit error, the body's exception) and the failure
    that carries it (what a suppression of it takes away)."""
    pairs: list[tuple[BaseException, BaseException]] = []
    for r in out.records:
        for fault in r.faults:
            if any(fault is e for e in _enter_faults(r)):
                continue  # check_nothing_lost checks the enter failures
            owner = r.exit_raised
            if owner is None or all(fault is not leaf for leaf in leaves(owner)):
                owner = fault
            pairs.append((fault, owner))
    if out.body_exc is not None:
        pairs.append((out.body_exc, out.body_exc))
    return pairs


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
    """3. Every entered node exits once: after the body, after every node that depends on
    it, directly or not (a failing one included: no exception), and, related to no node
    failing as the exit began, after those; the body never runs once a node failed while
    others were entering."""
    problems: list[str] = []
    for i, r in enumerate(out.records):
        if r.entered_at is None:
            if r.exit_calls:
                problems.append(f"n{i} exited without having entered")
        elif r.exit_calls != 1:
            problems.append(f"n{i} exited {r.exit_calls} times")
    problems += exit_order_problems(s, out, fitting(s, out))
    if out.body_started is not None:
        seq, at = _last_enter_end(out)
        problems += [
            f"the body ran, though n{i} failed while open before the others had entered"
            for i, r in enumerate(out.records)
            if crashed_first(s, r, seq, at)
        ]
    return problems


def _last_enter_end(out: GraphOutcome) -> tuple[int, float]:
    """The step (and time) at which the last ``__aenter__`` (or failing factory) ended."""
    ends = [(r.enter_ended_seq, r.enter_ended) for r in out.records]
    return max(((seq or 0, at or 0.0) for seq, at in ends), default=(0, 0.0))


def _enter_faults(r: NodeRecord) -> list[BaseException]:
    """Its attempts' failures: OSErrors, or its ``KeyboardInterrupt`` while entering."""
    return [
        f
        for f in r.faults
        if isinstance(f, OSError) or (isinstance(f, KeyboardInterrupt) and "enter" in str(f))
    ]


def timed_out_entering(s: GraphScenario, out: GraphOutcome, i: int, sure: bool = True) -> bool:
    """Its ``enter_timeout`` ran out before it entered: counted from when its dependencies
    had entered (with ``limit``, it may wait for a slot, its factory not yet called: then
    it may have, ``sure=False``, or been cancelled before)."""
    script, r = s.nodes[i], out.records[i]
    if script.enter_timeout is None or r.entered_at is not None:
        return False
    if r.enter_ended is None:
        return not sure and not r.attempts
    ready = max([0.0] + [out.records[d].entered_at or 0.0 for d in script.deps])
    return abs(r.enter_ended - (ready + script.enter_timeout)) < 1e-9


def _too_slow(exc: BaseException, i: int, doing: str) -> bool:
    """``exc`` is node ``i``'s ``TooSlowError`` for ``doing`` (``enter`` or ``exit``)."""
    return isinstance(exc, TOO_SLOW) and str(exc).startswith(f"n{i} did not {doing}")


def failed_for_good(s: GraphScenario, i: int, r: NodeRecord) -> bool:
    """A required node whose every attempt failed (none was cancelled): its failure must
    be raised, whatever else is."""
    allowed = s.nodes[i].retry or 1
    attempts = _enter_faults(r)
    interrupted = bool(attempts) and isinstance(attempts[-1], KeyboardInterrupt)
    last = len(r.attempts) == allowed or interrupted  # never retried, never tolerated
    return (
        (not s.nodes[i].optional or interrupted)
        and r.entered_at is None
        and last
        and len(attempts) == len(r.attempts)
    )


def expected_phases(s: GraphScenario, out: GraphOutcome, i: int, exc: BaseException) -> set[str]:
    """The phases node ``i``'s failure ``exc`` may be noted with: none if it is not one of
    its failures.  A crash comes while open, except once its exit was due (the body, or
    the enters after an enter failure, and its dependents done): its holder then exits,
    or, with ``limit``, waits for an exit slot, shielded ("ResourceGraph", ``limit=N``),
    and the crash may count as one while exiting (as in ``parallel_with``, when it comes
    at the very instant its exit begins)."""
    r = out.records[i]
    found = leaves(exc)
    timed_out = timed_out_entering(s, out, i, sure=False)
    if found and all(
        any(f is e for e in _enter_faults(r)) or (timed_out and _too_slow(f, i, "enter"))
        for f in found
    ):
        return {"entering"}
    if _ended_early(s, out, i, exc):
        return {"open"}
    if _late_for_the_budget(s, out, i) and _too_slow(exc, i, "exit"):
        # Its exit began once the budget had run out (it waited for its dependents): too
        # slow all the same, counted while open if it was failing by then.
        first = crashed_first(s, r, r.exit_started_seq, r.exit_started)
        if first is None:
            return {"open", "exiting"}  # (on asyncio, a tie)
        failing_first = r.crashed and first
        if failing_first and s.limit is not None:
            return {"open", "exiting"}  # released, it may have waited for an exit slot
        return {"open"} if failing_first else {"exiting"}
    if exc is not r.exit_raised and not (
        cancelled_only(r.exit_raised) and _too_slow(exc, i, "exit")
    ):
        return set()
    if not any(f is e for e in found for f in r.faults if isinstance(f, ValueError)):
        return {"exiting"}
    dependents = [
        (o.exit_ended_seq or 0, o.exit_ended or 0.0)
        for o in (out.records[j] for j in dependents_of(s)[i])
    ]
    # The exit begins as the body ends, or, after an enter failure, once the enters are over.
    begun = (
        (out.body_ended_seq or 0, out.body_ended or 0.0)
        if out.body_started is not None
        else _last_enter_end(out)
    )
    due_seq, due_at = max([begun, *dependents])
    # Late, or (on asyncio) a tie: the crash may have come once its exit was due.
    late = r.crashed_seq is not None and not crashed_first(s, r, due_seq + 1, due_at)
    return {"open", "exiting"} if late else {"open"}


def _late_for_the_budget(s: GraphScenario, out: GraphOutcome, i: int) -> bool:
    """Node ``i``'s ``__aexit__`` began at or after the end of the shutdown budget (which
    runs from the end of the body, or, if it never ran, from the end of the enters)."""
    r = out.records[i]
    ended = [o.enter_ended for o in out.records if o.enter_ended is not None]
    start = out.body_ended if out.body_started is not None else max(ended, default=None)
    if s.shutdown_timeout is None or start is None or r.exit_started is None:
        return False
    return r.exit_started >= start + s.shutdown_timeout


def ended_by_itself(r: NodeRecord) -> bool:
    """It ended by itself while open (its scope across the yield was cancelled)."""
    return r.crashed and not any(isinstance(f, ValueError) for f in r.faults)


def _ended_early(s: GraphScenario, out: GraphOutcome, i: int, exc: BaseException) -> bool:
    """``exc`` is the ``RuntimeError`` of node ``i`` ending by itself while the others
    were entering (guarantee 4: the body cannot run without it)."""
    return (
        isinstance(exc, RuntimeError)
        and str(exc).startswith(f"n{i} ended by itself while the others were entering")
        and ended_by_itself(out.records[i])
        and out.body_started is None
    )


def unexpected_leaves(s: GraphScenario, out: GraphOutcome) -> list[BaseException]:
    """What was raised that the oracle does not expect: not an injected fault, the body's
    exception or its ``Cancelled``, nor a ``TooSlowError`` of a node whose exit was cut."""
    known = {id(f) for r in out.records for f in r.faults}
    if out.body_raised is not None:
        known.add(id(out.body_raised))
    cut = [
        i
        for i, r in enumerate(out.records)
        if cancelled_only(r.exit_raised) or _late_for_the_budget(s, out, i)
    ]
    slow = [i for i in range(len(s.nodes)) if timed_out_entering(s, out, i, sure=False)]
    return [
        e
        for e in leaves(out.raised)
        if id(e) not in known
        and not any(_too_slow(e, i, "exit") for i in cut)
        and not any(_too_slow(e, i, "enter") for i in slow)
        and not any(_ended_early(s, out, i, e) for i in range(len(s.nodes)))
    ]


def check_nothing_lost(s: GraphScenario, out: GraphOutcome) -> list[str]:
    """4. Every failure is raised, once, unless a node that received it suppressed it.

    A node's failed attempts are not failures if a later attempt entered; an optional
    node's tolerated failure is recorded instead (7); a node whose enter was cancelled (by
    the caller, or by another's failure) between or during attempts has no failure.  A
    required node whose last attempt failed (or was interrupted), or whose
    ``enter_timeout`` ran out, has one, raised whatever else is.
    """
    problems: list[str] = []
    raised = leaves(out.raised)
    if len(set(map(id, raised))) != len(raised):
        problems.append("an exception appears twice in what was raised")
    for i, r in enumerate(out.records):
        attempts = _enter_faults(r)
        shown = [f for f in attempts if any(f is e for e in raised)]
        if r.entered_at is not None or f"n{i}" in out.tolerated:
            if shown:
                problems.append(f"n{i}'s failed attempts were raised: {shown!r}")
        elif shown and len(shown) != len(attempts):
            problems.append(f"n{i}'s attempts {attempts!r} were raised in part: {shown!r}")
        elif failed_for_good(s, i, r) and not shown:
            # Whatever else was raised: its last attempt failed, nothing cancelled it.
            problems.append(f"n{i}'s failure {attempts[-1]!r} was lost")
        elif (
            timed_out_entering(s, out, i)
            and not s.nodes[i].optional
            and not any(_too_slow(e, i, "enter") for e in raised)
        ):
            problems.append(f"n{i}'s enter timed out, but no TooSlowError says so")
    # A fault leaves the block unless a node suppressed what carries it, or something that
    # superseded it (the model's ``gone``); after an enter failure, every one does.
    gone = fitting(s, out).gone if out.body_started is not None else frozenset[int]()
    for fault, owner in _faults_and_owners(s, out):
        want = 0 if id(owner) in gone else 1
        count = sum(1 for e in raised if e is fault)
        if count != want:
            problems.append(f"{fault!r} appears {count} times in what was raised, not {want}")
    if out.raised is not None and not isinstance(out.raised, (BaseExceptionGroup, CANCELLED)):
        problems.append(f"raised {out.raised!r}, not a group")
    return problems


def check_timing(s: GraphScenario, out: GraphOutcome) -> list[str]:
    """5. Start-up and teardown each cost the longest chain: a node starts exiting the
    moment the body has ended and its dependents (and, free, the nodes failing as the
    exit began) have exited.  Without other faults than crashes while open, an outer
    cancellation or a limit."""
    crash_only = all(isinstance(f, ValueError) for r in out.records for f in r.faults)
    if not crash_only or s.cancel_at is not None or s.limit is not None:
        return []
    slow = [*leaves(out.raised), *out.tolerated_exceptions]
    cut = any(
        n.exit_timeout is not None and cancelled_only(r.exit_raised)
        for n, r in zip(s.nodes, out.records, strict=True)
    )
    if cut or any(isinstance(e, TOO_SLOW) for e in slow):
        return []  # a timeout or the budget cut an enter or exit: checked elsewhere
    if out.body_started is None:
        return []  # a node failed while the others were entering: check_exits
    if any(
        n.ends_at is not None and not r.crashed for n, r in zip(s.nodes, out.records, strict=True)
    ):
        # One set to end by itself did not before its exit began: its own scope then cuts
        # its exit short, which the model of exit delays does not know (check_exits
        # still checks the order).
        return []
    start = [0.0] * len(s.nodes)
    for i, script in enumerate(s.nodes):
        start[i] = max([0.0] + [start[d] + s.nodes[d].enter_delay for d in script.deps])
    body = max([0.0] + [start[i] + n.enter_delay for i, n in enumerate(s.nodes)])
    problems: list[str] = []
    if out.body_started != body:
        problems.append(f"the body started at {out.body_started}, not {body}")
    assert out.body_ended is not None
    model = fitting(s, out)
    ends = [0.0] * len(s.nodes)
    # The free nodes wait for the failing ones: those (and their dependents) first.
    enclosed = below(s, set(model.failing))
    order = sorted(range(len(s.nodes)), key=lambda i: (i not in enclosed, -i))
    for i in order:
        after = [ends[j] for j, n in enumerate(s.nodes) if i in n.deps]
        if i in model.free:
            after += [ends[f] for f in model.failing]
        begin = max([out.body_ended, *after])
        # A crashed node's exit raises its crash at once (its nursery's exit).
        ends[i] = begin if out.records[i].crashed else begin + s.nodes[i].exit_delay
        if out.records[i].exit_started != begin:
            problems.append(f"n{i} began to exit at {out.records[i].exit_started}, not {begin}")
    return problems


def check_received(s: GraphScenario, out: GraphOutcome) -> list[str]:
    """6. What each __aexit__ receives follows the rule of docs/semantics.rst: the newest
    of what its dependents let through (a failure supersedes what it was handling), one
    group when several arrive, less what a dependent suppressed or what that superseded;
    its own ``Cancelled`` for a failing node; the body's outcome, or (free) the first
    failure in time, for one without an entered dependent.  Also with optional nodes, a
    limit, an outer cancellation (which no suppression takes from the nodes below) and a
    budget or timeout that cut an exit (its ``TooSlowError`` goes on); not after an enter
    failure (the module's notes)."""
    if not deliveries_checked(s, out):
        return []
    return delivery_problems(s, out, fitting(s, out))


def check_group(s: GraphScenario, out: GraphOutcome) -> list[str]:
    """Errors.  One flat group: the body's exception first, then the failures in the order
    the nodes were added, each noted ``nI (position I) failed while <phase>`` once and
    recorded (``failures_of``) with that phase; nothing in it the oracle did not expect."""
    inner = members(out.raised)
    if inner is None:
        return []
    problems: list[str] = []
    order: list[int] = []
    for member in inner:
        marks = [note for note in getattr(member, "__notes__", []) if " (position " in note]
        if not marks:
            # The body's exception (or the caller's cancellation of the body, which the
            # scope that owns it takes out of the group).
            if member is not out.body_exc and not isinstance(member, CANCELLED):
                problems.append(f"{member!r} in the group has no note naming its node")
            order.append(-1)
            continue
        if len(marks) != 1:
            problems.append(f"{member!r} has the notes {marks}, not one")
        order.append(int(marks[-1].split(" (position ", 1)[1].split(")", 1)[0]))
    if order != sorted(order) or len(set(order)) != len(order):
        problems.append(
            f"the group's members come from {order}, not the body first, then node order"
        )
    return (
        problems
        + _notes_and_phases(s, out, inner)
        + [
            f"the group holds {e!r}, which the oracle does not expect"
            for e in unexpected_leaves(s, out)
        ]
    )


def _notes_and_phases(s: GraphScenario, out: GraphOutcome, inner: Excs) -> list[str]:
    """Each node's failure: noted ``nI (position I) failed while <phase>``, and recorded
    (``failures_of``) with that name, position and phase."""
    problems: list[str] = []
    records = failures_of(out.raised)
    for member in inner:
        if member is out.body_raised:
            continue
        owners = [
            (i, phases)
            for i in range(len(s.nodes))
            if (phases := expected_phases(s, out, i, member))
        ]
        if len(owners) != 1:
            problems.append(f"{member!r} in the group is no single node's failure")
            continue
        i, phases = owners[0]
        wants = [f"n{i} (position {i}) failed while {phase}" for phase in sorted(phases)]
        marks = [note for note in getattr(member, "__notes__", []) if " (position " in note]
        if len(marks) != 1 or marks[0] not in wants:
            problems.append(f"{member!r} has the notes {marks}, not one of {wants}")
        mine = [f for f in records if f.exception is member]
        if len(mine) != 1 or (mine[0].name, mine[0].position) != (f"n{i}", i):
            problems.append(f"{member!r} is recorded as {mine!r}, not as n{i}'s failure")
        elif mine[0].phase not in phases or not marks or not marks[0].endswith(mine[0].phase):
            problems.append(f"{member!r} is recorded {mine[0].phase}, not as its note says")
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
        elif r.made_at is None and name in out.tolerated:
            if not timed_out_entering(s, out, i, sure=False):
                problems.append(f"{name} was never started, yet its failure was recorded")
        elif r.made_at is None:
            if name not in out.skipped:
                problems.append(f"{name} was never started, yet is not listed as skipped")
            left_out = [d for d in script.deps if out.records[d].entered_at is None]
            if not left_out:
                problems.append(f"{name} was skipped, though every node it needs entered")
        elif name not in out.tolerated:
            problems.append(f"{name} did not enter, yet its failure was not recorded")
    problems += [
        f"the {exc!r} of a KeyboardInterrupt was tolerated"
        for exc in out.tolerated_exceptions
        if any(isinstance(leaf, KeyboardInterrupt) for leaf in leaves(exc))
    ]
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
    for i, (script, r) in enumerate(zip(s.nodes, out.records, strict=True)):
        if failed_for_good(s, i, r) or (timed_out_entering(s, out, i) and not script.optional):
            stops.append(r.enter_ended or 0.0)  # it failed for good then
    for i, (script, r) in enumerate(zip(s.nodes, out.records, strict=True)):
        allowed = script.retry or 1
        if len(r.attempts) > allowed:
            problems.append(f"n{i} made {len(r.attempts)} attempts, not at most {allowed}")
        for attempt, (before, at) in enumerate(itertools.pairwise(r.attempts), start=2):
            want = before + failing_delay(script) + RETRY_WAIT
            if abs(at - want) > 1e-9:
                problems.append(f"n{i}'s attempt {attempt} came at {at}, not {want}")
            if any(at > stop for stop in stops):
                problems.append(f"n{i} retried at {at}, after a cancellation at {min(stops)}")
        wanted = min(script.failing_attempts + 1, allowed)
        if r.entered_at is not None and not script.enter_error and len(r.attempts) != wanted:
            problems.append(f"n{i} entered after {len(r.attempts)} attempts, not {wanted}")
    return problems


def check_budget(s: GraphScenario, out: GraphOutcome) -> list[str]:
    """9. Nothing outlives the shutdown budget, counted from the end of the body (a failing
    node, which now exits after the body, gets what is left of it): an exit still running
    when it runs out is cancelled then, and fails with TooSlowError."""
    problems: list[str] = []
    if s.shutdown_timeout is None or out.body_ended is None:
        return problems
    deadline = out.body_ended + s.shutdown_timeout
    too_slow = [e for e in leaves(out.raised) if isinstance(e, TOO_SLOW)]
    for i, r in enumerate(out.records):
        if r.exit_ended is None:
            continue
        if r.exit_ended > deadline + 1e-9:
            problems.append(f"n{i} ended its exit at {r.exit_ended}, after the budget ({deadline})")
        # (A crashed node's exit raises its crash at once: that is its failure.)
        cut = abs(r.exit_ended - deadline) < 1e-9 and not r.crashed
        if cut and not any(
            f"n{i} did not exit within the shutdown budget" in str(e) for e in too_slow
        ):
            problems.append(f"n{i}'s exit was cut by the budget, but no TooSlowError says so")
    return problems


def check_escaped(s: GraphScenario, out: GraphOutcome) -> list[str]:
    """Nothing escapes the run but what ``async with graph`` raised, less the caller's
    ``Cancelled``, which its scope takes out (a setup error, ``add`` refusing a node, is
    caught here too)."""
    raised, escaped = out.raised, out.escaped
    if raised is None:
        return [] if escaped is None else [f"{escaped!r} escaped, not from the graph"]
    if isinstance(raised, CANCELLED):
        return [] if escaped is None else [f"{escaped!r} escaped, not the scope's Cancelled"]
    if not out.cancel_called and escaped is not raised:
        return [f"{escaped!r} escaped, not {raised!r}"]
    # The scope that caught its Cancelled splits the group: the rest escapes.
    rest = [e for e in leaves(raised) if not isinstance(e, CANCELLED)]
    got = leaves(escaped)
    if len(got) != len(rest) or not all(a is b for a, b in zip(got, rest, strict=True)):
        return [f"{escaped!r} escaped, not {rest!r} (what was raised, less the Cancelled)"]
    return []


def check_cancellation(s: GraphScenario, out: GraphOutcome) -> list[str]:
    """8. A pure outer cancellation propagates unwrapped, and its own scope catches it; a
    ``Cancelled`` is in a group only as the body's, first, beside failures."""
    raised = out.raised
    problems: list[str] = []
    if isinstance(raised, CANCELLED):
        if s.cancel_at is None or not out.cancel_caught:
            problems.append(f"{raised!r} was raised, but the caller's scope did not catch it")
        if any(raised is r.seen for r in out.records):
            problems.append("the caller's Cancelled is one that a node received")
        return problems
    if out.cancel_caught and s.cancel_at is None:
        problems.append("a scope that nothing cancelled caught a Cancelled")
    by_caller = s.cancel_at is not None and (out.body_ended or 0.0) >= s.cancel_at
    swallowed = by_caller and raised is None and isinstance(out.body_raised, CANCELLED)
    if swallowed and not any(r.seen is not None and r.exit_returned for r in out.records):
        problems.append("the block swallowed the caller's cancellation, nothing suppressed it")
    inner = members(raised)
    if inner is None:
        return problems
    found = leaves(raised)
    cancelled = [e for e in found if isinstance(e, CANCELLED)]
    if cancelled and len(cancelled) == len(found):
        problems.append(f"a pure cancellation came out wrapped: {raised!r}")
    elif cancelled and (
        s.cancel_at is None or cancelled != [out.body_raised] or inner[0] is not out.body_raised
    ):
        problems.append(f"{cancelled!r} in the group, not the cancelled body's, first")
    return problems


CHECKERS = (
    check_escaped,
    check_cancellation,
    check_ownership,
    check_dependencies,
    check_exits,
    check_nothing_lost,
    check_group,
    check_timing,
    check_received,
    check_optional,
    check_retries,
    check_budget,
)


def check_graph(s: GraphScenario, out: GraphOutcome) -> list[str]:
    return [problem for checker in CHECKERS for problem in checker(s, out)]
