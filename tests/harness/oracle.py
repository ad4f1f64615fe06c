"""The invariants of ``docs/semantics.rst``, checked after a scenario (``check``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Final

import attrs
import outcome
import trio

from tests.harness.exceptions import has_cancelled, leaves, members, nodes, notes, summary
from tests.harness.fake import Moment, ScriptedCM
from tests.harness.loops import ASYNCIO, CANCELLED, TOO_SLOW
from tests.harness.running import Observed, Outcome
from tests.harness.scenario import DEADLOCK_AFTER, ENTERING, EXITING, OPEN, Mode, Scenario
from tests.harness.unwinding import (
    Unwinding,
    busy_slots,
    ended_by_itself,
    errors_of,
    fired_open,
    runtime_error_message,
    runtime_error_rule,
    slot_instants,
    stage_runs,
    unwind_starts,
    unwindings,
)
from trio_parallel_cm import PhaseEvent


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
        and isinstance(cm.rec.seen, CANCELLED)
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
    elif _released_natively_first(out, cm):
        phases.add(EXITING)
    return phases


def _released_natively_first(out: Outcome, cm: ScriptedCM) -> bool:
    """``cm`` may have been released, natively (its ``__aexit__`` then meets a
    ``Cancelled`` of its own), before its own scope fired: then it fails while exiting.

    Only a native release gives it a ``Cancelled`` without being interrupted: the
    caller's cancellation, or a stage that could not enter.  Released as its stage
    unwinds, at the very instant its scope fired; with ``limit=``, it may wait for an exit
    slot after its release, and its scope fire meanwhile.  Its stage unwinds as
    ``unwinding.unwind_starts`` says: one that could not enter as its enters are over,
    which may be long before the block's body ends (the stage exits inside it).
    """
    rec, sc = cm.rec, out.scenario
    assert out.outer is not None
    if rec.exit_start is None or rec.fired_time is None:
        return False
    if not (out.outer.cancel_called or not out.stage_entered[cm.index]):
        return False
    if rec.exit_start.time == rec.fired_time:
        return True
    if sc.limit is None:
        return False
    unwound = unwind_starts(out).get(out.stage_of[cm.index])
    return unwound is not None and rec.fired_time >= unwound.time


def _failed_at(cm: ScriptedCM, when: float | None) -> bool:
    """``cm`` failed while open at ``when``, or its exit raised a failure then."""
    rec = cm.rec
    if rec.fired_in == OPEN and rec.fired_time == when:
        return True
    return (
        rec.exit_end is not None
        and rec.exit_end.time == when
        and any(not isinstance(leaf, CANCELLED) for leaf in leaves(rec.exit_raised))
    )


def expected_failures(out: Outcome, tolerate: frozenset[str] = frozenset()) -> list[Expected]:
    """The fakes' failures, in report order (stage, then position)."""
    found: list[Expected] = []
    for cm in out.cms:
        rec = cm.rec
        source: BaseException | None
        if rec.enter_raised is not None:
            assert rec.enter_end is not None
            source, dropped, phases = rec.enter_raised, set[int](), {ENTERING}
            reported = rec.enter_end
        elif rec.exit_end is not None:
            source, reported = rec.exit_raised, rec.exit_end
            dropped = {id(leaf) for leaf in leaves(rec.seen)}  # letting it through: no failure
            phases = _exit_phases(out, cm, tolerate)
        else:
            continue
        every = leaves(source)
        kept = tuple(
            leaf for leaf in every if not isinstance(leaf, CANCELLED) and id(leaf) not in dropped
        )
        wanted = frozenset(_note(out, cm, phase) for phase in phases)
        if kept:
            exact = source if len(kept) == len(every) else None
            found.append(Expected(cm, exact, kept, wanted, reported))
        elif rec.enter_raised is not None:
            # Limits and timeouts: an enter that ran out of its enter_timeout.
            made = too_slow_error(out, cm, phases)
            if made is not None:
                found.append(Expected(cm, made, (made,), wanted, reported))
        else:
            # Errors: a stray Cancelled is reported as a RuntimeError caused by it; an exit
            # that ran out of its exit_timeout (with no failure of its own) as a TooSlowError.
            made = stray_error(out, cm) or too_slow_error(out, cm, phases)
            if made is not None:
                found.append(Expected(cm, made, (made,), wanted, reported))
    found.sort(key=lambda e: (out.stage_of[e.cm.index], out.position_of[e.cm.index]))
    return found


def stray_error(out: Outcome, cm: ScriptedCM) -> BaseException | None:
    """The ``RuntimeError`` caused by the stray ``Cancelled`` ``cm`` raised, wherever it
    went (what was raised, what the body or the others received, what a closer got)."""
    rec = cm.rec
    if not rec.stray:
        return None
    return next(
        (
            node
            for place in _places(out)
            for node in nodes(place)
            if isinstance(node, RuntimeError)
            and node.__cause__ is not None
            and rec.exit_raised in leaves(node.__cause__)
        ),
        None,
    )


def ran_out(out: Outcome, cm: ScriptedCM, phase: str = EXITING) -> bool:
    """Its ``__aexit__`` (``phase``: or its ``__aenter__``) was still running when its
    ``exit_timeout`` (``enter_timeout``) ran out."""
    rec = cm.rec
    if phase == ENTERING:
        timeout, start, end = out.scenario.enter_timeout, rec.enter_start, rec.enter_end
    else:
        timeout, start, end = out.scenario.exit_timeout, rec.exit_start, rec.exit_end
    if timeout is None or start is None or end is None or (not rec.entered and phase == EXITING):
        return False
    return end.time >= start.time + timeout


def too_slow_error(out: Outcome, cm: ScriptedCM, phases: set[str]) -> BaseException | None:
    """The ``TooSlowError`` of ``cm``'s enter or exit that ran out of time, wherever it
    went."""
    if not ran_out(out, cm, ENTERING if ENTERING in phases else EXITING):
        return None
    wanted = {_note(out, cm, phase) for phase in phases}
    return next(
        (
            node
            for place in _places(out)
            for node in nodes(place)
            if isinstance(node, TOO_SLOW) and set(notes(node)) & wanted
        ),
        None,
    )


def _places(out: Outcome) -> list[BaseException | None]:
    """Where a failure the library made may have gone: what was raised, what the body
    and the others received, what a closer got."""
    places = [out.raised, out.body_raised, *(other.rec.seen for other in out.cms)]
    return places + [
        closed.result.error
        for got in out.closers.values()
        for closed in got
        if isinstance(closed.result, outcome.Error)
    ]


def _check_too_slow(out: Outcome, facts: Facts) -> list[str]:
    """``exit_timeout`` (Limits and timeouts): an exit that ran out of time, with no
    failure of its own, fails with a ``trio.TooSlowError`` that names the timeout."""
    problems: list[str] = []
    if out.scenario.exit_timeout is None and out.scenario.enter_timeout is None:
        return problems
    # Its exit shielded from the caller's cancellation: cancelled only by its deadline
    # (or, failing, by its own cancellation: it is cancelled already).
    problems += [
        f"{cm.name}'s exit was cancelled before its exit_timeout ran out"
        for cm in out.cms
        if out.scenario.exit_timeout is not None
        and cm.rec.exit_cancelled
        and not ran_out(out, cm)
        and not fired_open(cm)
    ]
    for cm in out.cms:
        rec = cm.rec
        if ran_out(out, cm, ENTERING) and not errors_of(rec.enter_raised):
            made = too_slow_error(out, cm, {ENTERING})
            if made is None or f"within {out.scenario.enter_timeout} s" not in str(made):
                problems.append(
                    f"{cm.name}'s enter ran out of its enter_timeout, but no TooSlowError "
                    "naming it says so"
                )
        own = [leaf for leaf in errors_of(rec.exit_raised) if leaf not in leaves(rec.seen)]
        other = [e for e in facts.expected if e.cm is cm and e.exact is not None]
        if not ran_out(out, cm) or own or rec.stray:
            continue
        spec_b = runtime_error_message(out, cm)
        if any(not isinstance(e.exact, TOO_SLOW) for e in other) or any(
            isinstance(node, RuntimeError) and str(node) == spec_b
            for place in _places(out)
            for node in nodes(place)
        ):
            continue  # (reported otherwise: as the RuntimeError of spec B, guarantee 4)
        made = too_slow_error(out, cm, {OPEN, EXITING})
        if made is None and cm.index in facts.gone:
            continue  # superseded by a failure that was suppressed (guarantee 5)
        if made is None:
            problems.append(
                f"{cm.name}'s exit ran out of its exit_timeout, but no TooSlowError says so"
            )
        elif f"within {out.scenario.exit_timeout} s" not in str(made):
            problems.append(f"{made!r} does not name the exit_timeout")
    return problems


def _check_stray(out: Outcome) -> list[str]:
    """Errors: a ``Cancelled`` escaping a context manager whose task was not cancelled is
    reported as a ``RuntimeError`` caused by it, never as a bare ``Cancelled``."""
    problems: list[str] = []
    for cm in out.cms:
        rec = cm.rec
        if not rec.stray:
            continue
        if stray_error(out, cm) is None:
            problems.append(
                f"{cm.name}'s stray {rec.exit_raised!r} was not reported as a RuntimeError "
                "caused by it"
            )
        if any(
            leaf is rec.exit_raised
            for place in (out.raised, out.escaped, out.crashed)
            for leaf in leaves(place)
        ):
            problems.append(f"{cm.name}'s stray {rec.exit_raised!r} came out bare")
    return problems


#: Library bugs that :func:`check` tolerates by name while they are being fixed (none
#: now).  The four this harness found (``copies``, ``echoes``, ``start-twice`` and
#: ``handle-phase``) are fixed; ``test_harness.py`` keeps their scenarios as regressions.
KNOWN_BUGS: Final[frozenset[str]] = frozenset()


def check(scenario: Scenario, out: Outcome, tolerate: frozenset[str] = KNOWN_BUGS) -> list[str]:
    """Every invariant of ``docs/semantics.rst`` that must hold after ``scenario``.

    Returns the violations, as sentences, each labelled with the guarantee it breaks
    (``"[4] ..."``, ``"[errors] ..."``, or ``"[run] ..."`` for a run that crashed,
    deadlocked, warned or corrupted a cancel scope); an empty list when all hold.
    ``tolerate`` names the known bugs (``KNOWN_BUGS``) not to report.
    """
    assert out.scenario is scenario
    if scenario.mode is Mode.HANDLES:
        tolerate |= {_TRIO_COPIES}
    problems = [f"[run] {problem}" for problem in _check_run(out)]
    if out.crashed is not None or out.deadlocked or out.outer is None:
        return problems
    facts = Facts.of(out, tolerate)
    for label, checker in GUARANTEES:
        problems += [f"[{label}] {problem}" for problem in checker(out, facts)]
    return problems


def _check_run(out: Outcome) -> list[str]:
    """The run itself: no crash, deadlock or warning, no corrupted cancel scope."""
    problems: list[str] = []
    if out.crashed is not None:
        problems.append(f"trio.run raised {out.crashed!r}")
    if out.deadlocked:
        problems.append(f"deadlock: still running after {DEADLOCK_AFTER} virtual seconds")
    problems += [f"a warning: {w}" for w in out.warnings]
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


@attrs.frozen(eq=False)
class Facts:
    """What several checkers read, derived once from an outcome: no judgement in it."""

    tolerate: frozenset[str]
    echoes: Echoes
    #: The failures the library must report (``expected_failures``, and the
    #: ``RuntimeError`` of one that ended by itself while the others were entering).
    expected: list[Expected]
    #: The body's exception, unless it is (or holds) a cancellation.
    body_error: BaseException | None
    #: The body's exception was suppressed (by a context manager that received it, or
    #: something that superseded it).
    body_suppressed: bool
    #: The context managers whose failure was suppressed (by one that received it, or
    #: something that superseded it): it must not appear.
    gone: frozenset[int]
    #: For each other failing context manager, the nodes of what was raised that stand
    #: for its failure (one, if all is well).
    found: dict[int, list[BaseException]]
    #: The unwinding (``unwinding.py``) under the order of ties that fits the records
    #: best (``None`` for ``Mode.HANDLES``), and the problems of the ``RuntimeError`` of
    #: spec B (guarantee 4).
    model: Unwinding | None = None
    runtime_problems: tuple[str, ...] = ()
    #: Exits that ran out of their ``exit_timeout`` whose ``TooSlowError`` is found
    #: nowhere (``_lost_too_slow``): failed all the same (the observer says so).
    lost: frozenset[int] = frozenset()

    @classmethod
    def of(cls, out: Outcome, tolerate: frozenset[str]) -> Facts:
        echoes = _echoes(out, tolerate)
        expected = expected_failures(out, tolerate)
        body = out.body_raised
        body_error = None if body is None or has_cancelled(body) else body
        body_ids = {id(leaf) for leaf in leaves(body_error)}
        model: Unwinding | None = None
        runtime_problems: list[str] = []
        lost: list[Expected] = []
        if out.scenario.mode is Mode.HANDLES:
            body_suppressed = _suppressed(out, list(body_ids), None)
            suppressed = {
                e.cm.index
                for e in expected
                if _suppressed(out, ids := [id(leaf) for leaf in e.leaves], e.cm)
                or (all(i in body_ids for i in ids) and body_suppressed)
            }
        else:
            more, runtime_problems = _runtime_errors(out, expected)
            expected = sorted(
                [*expected, *more],
                key=lambda e: (out.stage_of[e.cm.index], out.position_of[e.cm.index]),
            )
            lost = _lost_too_slow(out, expected)
            model = _fitting(out, expected, body_error, echoes, lost)
            body_suppressed = bool(body_ids) and body_ids <= model.gone
            suppressed = {
                e.cm.index
                for e in [*expected, *lost]
                if all(id(leaf) in model.gone for leaf in e.leaves)
            }
        found = {
            e.cm.index: _locate(out.raised, e, echoes, tolerate)
            for e in expected
            if e.cm.index not in suppressed
        }
        return cls(
            tolerate,
            echoes,
            expected,
            body_error,
            body_suppressed,
            frozenset(suppressed),
            found,
            model,
            tuple(runtime_problems),
            frozenset(e.cm.index for e in lost),
        )

    def located(self, index: int) -> BaseException | None:
        """The one node of what was raised that stands for this context manager's failure."""
        nodes = self.found.get(index, [])
        return nodes[0] if len(nodes) == 1 else None


def _runtime_errors(out: Outcome, expected: list[Expected]) -> tuple[list[Expected], list[str]]:
    """The ``RuntimeError`` failures of those that ended by itself, without an error,
    while the others of their stage were entering (4, spec B), and what is wrong with them.

    Made by the library, they are found where they went: what was raised, what the body
    raised (a stack's stage), what the others received.
    """
    failures = {e.cm.index: e for e in expected}
    places = [out.raised, out.body_raised, *(cm.rec.seen for cm in out.cms)]
    more: list[Expected] = []
    problems: list[str] = []
    for run in stage_runs(out):
        for cm in run.exited:
            if not ended_by_itself(cm):
                continue
            message, note = runtime_error_message(out, cm), _note(out, cm, OPEN)
            found = next(
                (
                    node
                    for place in places
                    for node in nodes(place)
                    if isinstance(node, RuntimeError)
                    and str(node) == message
                    and note in notes(node)
                ),
                None,
            )
            rule = runtime_error_rule(out, run, cm, failures)
            if rule and found is None:
                problems.append(
                    f"{cm.name} ended by itself while the others were entering, but no "
                    f"RuntimeError({message!r}) says so"
                )
            if rule is False and found is not None:
                problems.append(
                    f"{cm.name} failed with {found!r}, though it did not stop the enters"
                )
            if found is not None and cm.index not in failures:
                assert cm.rec.exit_end is not None
                more.append(Expected(cm, found, (found,), frozenset({note}), cm.rec.exit_end))
    return more, problems


def _lost_too_slow(out: Outcome, expected: list[Expected]) -> list[Expected]:
    """Exits that ran out of their ``exit_timeout`` with no failure of their own, whose
    ``TooSlowError`` is found nowhere: a stand-in each, for the model to tell whether a
    suppression took it away (else it is missing: ``_check_too_slow``)."""
    failed = {e.cm.index for e in expected}
    lost: list[Expected] = []
    for cm in out.cms:
        rec = cm.rec
        if cm.index in failed or rec.stray or rec.exit_end is None or not ran_out(out, cm):
            continue
        if too_slow_error(out, cm, {OPEN, EXITING}) is not None:
            continue
        stand_in = trio.TooSlowError(f"(found nowhere) {cm.name}'s exit_timeout")
        lost.append(Expected(cm, stand_in, (stand_in,), frozenset(), rec.exit_end))
    return lost


def _fitting(
    out: Outcome,
    expected: list[Expected],
    body_error: BaseException | None,
    echoes: Echoes,
    lost: list[Expected],
) -> Unwinding:
    """The unwinding under the order of ties that explains the records best (``lost``:
    failures the model carries, never weighed: see ``_lost_too_slow``)."""
    failures = {e.cm.index: e for e in [*expected, *lost]}
    shown = {id(leaf) for leaf in _visible_leaves(out.raised, echoes)}
    best: tuple[int, Unwinding] | None = None
    for model in unwindings(out, failures):
        misfits = len(model.timing)
        for index, (wants, _) in model.wants.items():
            if not any(want.accepts(out.cms[index].rec.seen) for want in wants):
                misfits += 1
        for parts in [e.leaves for e in expected] + [tuple(leaves(body_error))]:
            if parts:
                gone = all(id(leaf) in model.gone for leaf in parts)
                misfits += gone == all(id(leaf) in shown for leaf in parts)
        if best is None or misfits < best[0]:
            best = (misfits, model)
        if not misfits:
            break
    return best[1] if best is not None else Unwinding({}, [], frozenset())


def _check_ownership(out: Outcome, facts: Facts) -> list[str]:
    """1. Each in a task of its own, not the body's; exited there; nurseries nest."""
    problems: list[str] = []
    owners: dict[int, str] = {}
    for cm in out.cms:
        rec, who = cm.rec, cm.name
        if rec.entered and rec.exit_calls == 1 and rec.exit_task is not rec.enter_task:
            problems.append(f"{who}: __aexit__ ran in another task than __aenter__")
        task = rec.enter_task
        if task is not None:
            if task is out.owner_task or task is out.body_task:
                problems.append(f"{who} was entered in the body's task")
            if id(task) in owners:
                problems.append(f"{who} was entered in the task of {owners[id(task)]}")
            owners[id(task)] = who
    # A task the body starts in a context manager's nursery ends inside it.
    if out.child_start is not None and out.scenario.body.spawn is not None:
        holder = out.cms[out.scenario.body.spawn].rec
        owner = holder.exit_end
        # (An anyio task group, unlike a Trio nursery, takes a new task while it exits,
        # and need not wait for it: the context manager's own group, not the library.)
        late = out.loop.name == ASYNCIO and (
            holder.exit_start is not None and out.child_start.seq > holder.exit_start.seq
        )
        if out.child_end is None:
            problems.append("the body's child task never finished")
        elif owner is not None and out.child_end.seq > owner.seq and not late:
            problems.append("the body's child task outlived the nursery it was started in")
    return problems


def _check_nothing_leaks(out: Outcome, facts: Facts) -> list[str]:
    """9. Entered once; exited exactly once if it entered, never if not; no task left."""
    problems: list[str] = []
    for cm in out.cms:
        rec, who = cm.rec, cm.name
        if rec.enter_calls > 1:
            problems.append(f"{who}: __aenter__ was called {rec.enter_calls} times")
        if rec.entered and rec.exit_calls != 1:
            problems.append(f"{who} entered but was exited {rec.exit_calls} times")
        elif not rec.entered and rec.exit_calls:
            problems.append(f"{who} was exited although it did not enter")
    if out.tasks_after != out.tasks_before:
        problems.append(f"{out.tasks_after - out.tasks_before} task(s) outlived the block")
    return problems


def _check_no_early_exit(out: Outcome, facts: Facts) -> list[str]:
    """3. No __aexit__ before the body has finished, with no exception (one failing while
    open included); stages unwind in reverse order (a failing member of stage 1 after
    every exit of stage 2); the rest of a stage after its failing members."""
    problems: list[str] = []
    sc, cms = out.scenario, out.cms
    assert out.outer is not None and out.block_start is not None
    end = out.block_body_end
    if sc.mode is not Mode.HANDLES and end is not None:
        # 3. No early exit: not before the body (and its shielded cleanup) has finished.
        for cm in cms:
            start = cm.rec.exit_start
            if out.stage_entered[cm.index] and start is not None and start.seq < end.seq:
                problems.append(f"{cm.name} began to exit before the body had finished")
    if sc.mode is Mode.STACK:
        # Stages unwind in reverse order: an earlier stage only once every later one has
        # exited.
        for first in cms:
            for second in cms:
                a, b = first.rec.exit_start, second.rec.exit_end
                if (
                    0 < out.stage_of[first.index] < out.stage_of[second.index]
                    and out.stage_entered[second.index]
                    and a is not None
                    and b is not None
                    and a.seq < b.seq
                ):
                    problems.append(f"{first.name} began to exit before {second.name} had exited")
    return problems + _timing(facts, "3")


def _check_concurrency(out: Outcome, facts: Facts) -> list[str]:
    """2. The enters start together; the body starts when the last has entered; the exits
    start together when the body ends (when nothing failed while open: else 4)."""
    sc, cms = out.scenario, out.cms
    assert out.block_start is not None
    problems: list[str] = []
    if sc.mode in (Mode.PARALLEL, Mode.MAPPING) and sc.limit is None:
        starts = {cm.rec.enter_start.time for cm in cms if cm.rec.enter_start is not None}
        if starts - {out.block_start.time}:
            problems.append(f"the enters started at {sorted(starts)}, not all at once")
    if sc.limit is not None and sc.mode is not Mode.HANDLES:
        for run in stage_runs(out):
            problems += _check_limit(run.cms, sc.limit)
    return problems + _body_start(out, "2") + _timing(facts, "2")


def _in_flight(spans: Sequence[tuple[Moment | None, Moment | None]]) -> int:
    """The most calls in flight at once, from their (start, end) moments (total order)."""
    steps = sorted(
        [(start.seq, 1) for start, _ in spans if start is not None]
        + [(end.seq, -1) for start, end in spans if start is not None and end is not None]
    )
    most = current = 0
    for _, step in steps:
        current += step
        most = max(most, current)
    return most


def _check_limit(cms: Sequence[ScriptedCM], limit: int) -> list[str]:
    """``limit=N`` (Limits and timeouts): at most N ``__aenter__`` and at most N
    ``__aexit__`` calls of one stage in flight at any moment, failures included; and no
    enter waits for a slot while one is free.

    The engine shares one ``trio.CapacityLimiter`` between the enters and the exits of a
    stage (stricter than the page, which bounds each kind apart), so an enter that waits
    proves only that N calls of either kind were in flight: that is what is checked.
    """
    problems: list[str] = []
    for kind, spans in (
        ("__aenter__", [(cm.rec.enter_start, cm.rec.enter_end) for cm in cms]),
        ("__aexit__", [(cm.rec.exit_start, cm.rec.exit_end) for cm in cms]),
    ):
        most = _in_flight(spans)
        if most > limit:
            problems.append(f"{most} {kind} calls were in flight at once, with limit={limit}")
    starts = [cm.rec.enter_start.time for cm in cms if cm.rec.enter_start is not None]
    first = min(starts, default=0.0)
    for cm in cms:
        began = cm.rec.enter_start
        if began is None or began.time == first:
            continue
        # It waited: at every instant from the stage's first enter until it began, once
        # all of that instant had happened, every slot was taken.
        for when in slot_instants(cms, first, began.time):
            busy = busy_slots(cms, when)
            if busy < limit:
                problems.append(
                    f"{cm.name} began to enter at {began.time}, though only {busy} of "
                    f"limit={limit} slots were taken at {when}"
                )
                break
    return problems


def _timing(facts: Facts, label: str) -> list[str]:
    """The model's problems of timing with this label (``unwinding.py``)."""
    if facts.model is None:
        return []
    return [problem for which, problem in facts.model.timing if which == label]


def _body_start(out: Outcome, label: str) -> list[str]:
    """The body starts the moment the last context manager has entered (2), and never
    after one failed, or ended by itself, while another was still entering (4, spec B:
    the pending enters are cancelled instead)."""
    if out.scenario.mode is Mode.HANDLES or out.body_start is None or not out.cms:
        return []
    entered = [cm.rec.enter_end for cm in out.cms]
    if any(moment is None for moment in entered):
        return []  # (9 says which one never entered)
    last = max((m for m in entered if m is not None), key=lambda moment: moment.seq)
    if label == "2":
        if out.body_start.time != last.time:
            return [
                f"the body started at {out.body_start.time}, not when the last context "
                f"manager had entered ({last.time})"
            ]
        return []
    return [
        f"the body ran, though {cm.name} failed while open at {cm.rec.fired_time}, before "
        f"the last context manager had entered ({last.time})"
        for cm in out.cms
        if fired_open(cm) and cm.rec.fired_time is not None and cm.rec.fired_time < last.time
    ]


def _cleanups_cancelled(out: Outcome) -> list[str]:
    """Neither a failure nor the body's exception cancels a cleanup (7; 5 says it too)."""
    problems: list[str] = []
    sc, cms = out.scenario, out.cms
    assert out.outer is not None and out.block_start is not None
    if sc.mode is not Mode.HANDLES and not out.outer.cancel_called:
        # 5, 7. Neither a failure nor the body's exception cancels a cleanup.  (A stage
        # entered in a body that an earlier stage's context manager interrupted is inside
        # that cancellation, as inner `async with` blocks would be: one of its members
        # that entered as its enter was cancelled meets it.  A later stage that did enter
        # unwinds before the failing one, not cancelled.)
        interrupted = [out.stage_of[cm.index] for cm in cms if fired_open(cm)]
        problems += [
            f"{cm.name}'s exit was cancelled though nothing outside was"
            for cm in cms
            if cm.rec.exit_cancelled
            and not ran_out(out, cm)
            and not (
                sc.mode is Mode.STACK
                and any(0 < stage < out.stage_of[cm.index] for stage in interrupted)
                and not out.stage_entered[cm.index]
            )
        ]
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
        == [id(leaf) for leaf in _visible_leaves(node, echoes) if not isinstance(leaf, CANCELLED)]
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


def _check_nothing_lost(out: Outcome, facts: Facts) -> list[str]:
    """7. Every failure in the group exactly once (unless suppressed), nothing else, and
    no cleanup cancelled by a failure or by the body's exception."""
    problems: list[str] = []
    sc, raised, body_error = out.scenario, out.raised, facts.body_error
    counts = Counter(id(leaf) for leaf in _visible_leaves(raised, facts.echoes))
    for e in facts.expected:
        want = 0 if e.cm.index in facts.gone else 1
        problems += [
            f"{e.cm.name}'s failure {leaf!r} appears {counts[id(leaf)]} times in what was "
            f"raised, not {want}"
            for leaf in e.leaves
            if counts[id(leaf)] != want
        ]
        found = facts.found.get(e.cm.index)
        if found is not None and len(found) != 1:
            what = "the very object it raised" if e.exact is not None else "its failure"
            problems.append(f"{e.cm.name}: {what} appears {len(found)} times in {raised!r}")
    if body_error is not None:
        want = 0 if facts.body_suppressed else 1
        problems += [
            f"the body's {leaf!r} appears {counts[id(leaf)]} times, not {want}"
            for leaf in leaves(body_error)
            if counts[id(leaf)] != want
        ]
    accounted = {id(leaf) for leaf in leaves(body_error)}
    accounted |= {id(leaf) for e in facts.expected for leaf in e.leaves}
    for leaf in _visible_leaves(raised, facts.echoes):
        if id(leaf) in accounted or isinstance(leaf, CANCELLED):
            continue
        if (
            sc.mode is Mode.HANDLES
            and isinstance(leaf, RuntimeError)
            and "already failed while" in str(leaf)
        ):
            continue  # aclose() of a handle whose failure went to its nursery
        problems.append(f"{leaf!r} was raised, but nothing raised it")
    return problems + _cleanups_cancelled(out)


def _check_group(out: Outcome, facts: Facts) -> list[str]:
    """Errors. Each failure noted with its name, position and phase; one group, flat,
    ordered (the body's exception first, then argument order), typed, summarised."""
    problems: list[str] = []
    body_ids = {id(leaf) for leaf in leaves(facts.body_error)}
    top: list[BaseException] = []
    if facts.body_error is not None and not facts.body_suppressed:
        top.append(facts.body_error)
    for e in facts.expected:
        node = facts.located(e.cm.index)
        if node is None:
            continue  # suppressed, or not found once: 7 says so
        if len(notes(node)) != 1 or notes(node)[0] not in e.notes:
            problems.append(
                f"{e.cm.name}'s failure has the notes {notes(node)}, not one of {sorted(e.notes)}"
            )
        if not all(id(leaf) in body_ids for leaf in e.leaves):
            top.append(node)
    if out.scenario.mode is not Mode.HANDLES:
        problems += _check_group_form(out, top, facts.echoes, facts.tolerate)
    return problems + _check_stray(out) + _check_too_slow(out, facts)


def _check_group_form(
    out: Outcome, top: list[BaseException], echoes: Echoes, tolerate: frozenset[str]
) -> list[str]:
    """The group: flat, ordered, typed, summarised (``_check_group``)."""
    problems: list[str] = []
    raised, body = out.raised, out.body_raised
    inner = members(raised)
    if inner is None:
        if top:
            problems.append(f"the block raised {raised!r}, not a group of {top!r}")
        elif raised is not None and type(raised) not in CANCELLED:
            problems.append(f"the block raised {raised!r} unwrapped: only a pure cancellation may")
        return problems
    assert raised is not None and out.outer is not None
    if not inner:
        return [*problems, "the block raised an empty group"]
    actual = [member for member in inner if _visible(member, echoes)]
    if actual and actual[0] is body and isinstance(body, CANCELLED):
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


def _check_cancellation(out: Outcome, facts: Facts) -> list[str]:
    """8. A pure outer cancellation is its own scope's, unwrapped; none escapes it."""
    problems: list[str] = []
    sc, outer, raised = out.scenario, out.outer, out.raised
    assert outer is not None
    if has_cancelled(out.escaped):
        problems.append(f"a Cancelled escaped the scope that owns it: {out.escaped!r}")
    problems += _exits_reached(out)
    body = out.body_raised
    pure = (
        outer.cancel_called
        and not facts.expected
        and (body is None or (has_cancelled(body) and not leaves(body)[1:]))
    )
    if not pure:
        return problems
    suppressor = any(isinstance(cm.rec.seen, CANCELLED) and cm.rec.exit_returned for cm in out.cms)
    # A native cancellation (asyncio's Task.cancel) is delivered once: a context manager
    # that suppresses it ends it, as it would around nested blocks.
    ended = sc.native_cancel and suppressor and raised is None
    if not outer.cancelled_caught and not ended:
        problems.append("a pure outer cancellation was not caught by its own scope")
    if out.escaped is not None:
        problems.append(f"a pure outer cancellation, yet {out.escaped!r} escaped")
    if sc.mode is Mode.HANDLES:
        return problems
    if raised is None:
        late = out.after_block is not None and out.after_block.time >= (sc.cancel_at or 0)
        if not suppressor and not late:
            problems.append("the block swallowed a cancellation that nothing suppressed")
    elif type(raised) not in CANCELLED:
        problems.append(f"a pure cancellation came out as {raised!r}, not a bare Cancelled")
    elif any(raised is cm.rec.seen for cm in out.cms):
        problems.append("the caller's Cancelled is one that a context manager received")
    return problems


def _exits_reached(out: Outcome) -> list[str]:
    """8. An outer cancellation reaches the exits, as it would reach nested blocks': an
    unshielded ``__aexit__`` with no exit budget, running when the outer scope is
    cancelled (or beginning after), ends then.  (Not a native cancellation: delivered
    once, a context manager that suppresses it ends it for the exits after it.)"""
    sc, outer = out.scenario, out.outer
    assert outer is not None
    if not outer.cancel_called or sc.cancel_at is None or sc.native_cancel:
        return []
    if sc.exit_timeout is not None:
        return []  # (every exit has a shielded budget, cancelled by its own deadline)
    problems: list[str] = []
    for cm in out.cms:
        start, end = cm.rec.exit_start, cm.rec.exit_end
        if start is None or end is None or cm.script.shield_exit:
            continue
        if _unmoved(out, cm) or _abandoned_by_a_failing_one(out, cm, sc.cancel_at):
            continue
        if end.time > max(sc.cancel_at, start.time):
            problems.append(
                f"{cm.name}'s unshielded exit ran on to {end.time:g} past the outer "
                f"cancellation at {sc.cancel_at:g}"
            )
    return problems


def _unmoved(out: Outcome, cm: ScriptedCM) -> bool:
    """``cm`` may have entered as its stage's enters were cancelled, at the very instant
    another of its stage failed: then it is left under its starter, whose cancellation
    its shield keeps out, and so the outer one too while the stage waits for the enters
    (a gap of the engine, on both runtimes, written in docs/semantics.rst)."""
    entered = cm.rec.enter_end
    if entered is None or out.stage_entered[cm.index]:
        return False
    stage = out.stage_of[cm.index]
    return any(
        other is not cm
        and out.stage_of[other.index] == stage
        and (
            (other.rec.enter_raised is not None and _at(other.rec.enter_end, entered.time))
            or other.rec.fired_time == entered.time
        )
        for other in out.cms
    )


def _abandoned_by_a_failing_one(out: Outcome, cm: ScriptedCM, cancel_at: float) -> bool:
    """``cm``'s stage never entered: one of it failed while open as the others entered,
    before the outer cancellation (or at its very instant).  Its exits were released to
    meet their own cancellations, and the stage then waits for them shielded: an outer
    cancellation that comes later does not reach them (a gap of the engine, on both
    runtimes, written in docs/semantics.rst)."""
    if out.stage_entered[cm.index]:
        return False
    stage = out.stage_of[cm.index]
    return any(
        out.stage_of[other.index] == stage
        and fired_open(other)
        and other.rec.fired_time is not None
        and other.rec.fired_time <= cancel_at
        for other in out.cms
    )


def _at(moment: Moment | None, time: float) -> bool:
    return moment is not None and moment.time == time


def _check_failure_while_open(out: Outcome, facts: Facts) -> list[str]:
    """4. One failing (or ending by itself) while open: while the others enter, the body
    never runs (a ``RuntimeError`` if it ended by itself); while the body runs, it exits
    after the body and the later stages with its own ``Cancelled``, then the rest of its
    stage, with the failure of the first failing one in time."""
    problems = _body_start(out, "4") + list(facts.runtime_problems)
    return problems + _timing(facts, "4") + _deliveries(out, facts, "4")


def _check_body_delivery(out: Outcome, facts: Facts) -> list[str]:
    """5. Every ``__aexit__`` receives the newest exception on its way out (the body's
    outcome, what a later stage let through, its failures superseding it); a
    ``Cancelled`` is never moved between tasks."""
    problems: list[str] = []
    cancelled = [cm.rec.seen for cm in out.cms if isinstance(cm.rec.seen, CANCELLED)]
    if len(cancelled) != len({id(c) for c in cancelled}) or any(c is out.raised for c in cancelled):
        problems.append("one Cancelled was received in two tasks")
    return problems + _deliveries(out, facts, "5") + _closers(out)


def _closers(out: Outcome) -> list[str]:
    """A handle closed by hand (``Close.AEXIT``, ``Close.TWO``): the exception given to
    ``aexit`` reaches ``__aexit__``, whose return value is the result (``False`` if it
    raised nothing but what it was given, or ``Cancelled``); every closer waits for the
    one exit and gets the same result (or its own ``Cancelled`` after it)."""
    problems: list[str] = []
    for index, got in out.closers.items():
        cm, given = out.cms[index], out.delivered[index]
        rec = cm.rec
        if len(got) != len(given):
            problems.append(f"{len(given)} closers of {cm.name}, but {len(got)} ended")
        end = rec.exit_end
        if end is not None and any(closed.end.seq < end.seq for closed in got):
            problems.append(f"a closer of {cm.name} returned before its __aexit__ had ended")
        results = [
            closed.result
            for closed in got
            if not (
                isinstance(closed.result, outcome.Error)
                and isinstance(closed.result.error, CANCELLED)
            )
        ]
        if any(not _same_result(results[0], other) for other in results[1:]):
            problems.append(f"the closers of {cm.name} got different results: {results!r}")
        asked = min((closed.start.seq for closed in got), default=None)
        if rec.exit_start is None or asked is None or rec.exit_start.seq < asked:
            continue  # it exited by itself (its nursery cancelled, or failing) before
        asked_at = min(closed.start.time for closed in got)
        returned = [r.value for r in results if isinstance(r, outcome.Value)]
        if fired_open(cm) and rec.fired_time is not None and rec.fired_time <= asked_at:
            # Failing as it was asked to exit, in the same instant (a tie: either may
            # come first, as in nested blocks): it meets its own cancellation.
            if not isinstance(rec.seen, CANCELLED) and not any(rec.seen is e for e in given):
                problems.append(f"{cm.name}'s __aexit__ received {rec.seen!r}")
        elif not any(rec.seen is exc for exc in given):
            problems.append(f"{cm.name}'s __aexit__ received {rec.seen!r}, not one of {given!r}")
        elif returned:
            errors = [leaf for leaf in errors_of(rec.exit_raised) if leaf is not rec.seen]
            want = bool(rec.exit_returned) and rec.exit_raised is None
            if errors or returned[0] is not want:
                problems.append(
                    f"aexit() of {cm.name} returned {returned[0]!r}, but its __aexit__ "
                    f"returned {rec.exit_returned!r} and raised {rec.exit_raised!r}"
                )
    return problems


def _same_result(
    a: outcome.Value[bool] | outcome.Error, b: outcome.Value[bool] | outcome.Error
) -> bool:
    if isinstance(a, outcome.Value) and isinstance(b, outcome.Value):
        return a.value is b.value
    return isinstance(a, outcome.Error) and isinstance(b, outcome.Error) and a.error is b.error


def _check_enter_failure(out: Outcome, facts: Facts) -> list[str]:
    """6. After an enter failure, those that entered receive it (the first in time)."""
    return _deliveries(out, facts, "6")


def _deliveries(out: Outcome, facts: Facts, label: str) -> list[str]:
    """What each ``__aexit__`` received, against the model (``unwinding.py``), for the
    deliveries its guarantee ``label`` rules: 4 (its own ``Cancelled``, a failure while
    open), 5 (the body's outcome, what a later stage passed on), 6 (an enter failure)."""
    if facts.model is None:
        return []
    problems: list[str] = []
    for cm in out.cms:
        wants, which = facts.model.wants.get(cm.index, ([], ""))
        if which == label and not any(want.accepts(cm.rec.seen) for want in wants):
            problems.append(f"{cm.name}'s __aexit__ received {cm.rec.seen!r}, not {wants[0]}")
    return problems


def _check_observer(out: Outcome, facts: Facts) -> list[str]:
    """Observers: every phase change of every context manager reported once, in its
    holder task, at the time (and the place in the order) of what the fake recorded."""
    if not out.scenario.observe:
        return []
    problems: list[str] = []
    by_cm: dict[int, list[Observed]] = {}
    for seen in out.observed:
        cm = _observed_cm(out, seen.event)
        if cm is None:
            problems.append(f"an event of no context manager: {seen.event!r}")
        else:
            by_cm.setdefault(cm.index, []).append(seen)
    for cm in out.cms:
        # Its exit failed: a failure it must be reported with (not one that ended by
        # itself, as the RuntimeError of spec B, which reports its exit as failed too).
        failed = cm.index in facts.lost or any(
            e.cm is cm and e.reported == cm.rec.exit_end for e in facts.expected
        )
        problems += _observed_phases(cm, by_cm.get(cm.index, []), failed)
    return problems


def _observed_cm(out: Outcome, event: PhaseEvent) -> ScriptedCM | None:
    mode = out.scenario.mode
    for cm in out.cms:
        if mode is Mode.HANDLES:
            found = event.name == cm.name and event.stage is None
        elif mode is Mode.STACK:
            found = (event.stage, event.position) == (
                out.stage_of[cm.index],
                out.position_of[cm.index],
            )
        else:
            found = event.position == cm.index and event.stage is None
        if found:
            return cm
    return None


def _observed_phases(cm: ScriptedCM, seen: list[Observed], exit_failed: bool) -> list[str]:
    """The events of one context manager against its record."""
    rec = cm.rec
    failed_enter = rec.enter_raised is not None
    # kind: (the moment it must match, before (-1) or after (+1) that moment, or None if
    # it must not happen).
    wanted: dict[str, tuple[Moment | None, int]] = {
        "enter_started": (rec.enter_start, -1),
        "entered": (rec.enter_end if rec.entered else None, 1),
        "enter_failed": (rec.enter_end if failed_enter else None, 1),
        "exit_started": (rec.exit_start, -1),
        "exited": (None if exit_failed else rec.exit_end, 1),
        "exit_failed": (rec.exit_end if exit_failed else None, 1),
    }
    problems: list[str] = []
    kinds = Counter[str](s.event.kind for s in seen)
    for kind, (moment, side) in wanted.items():
        events = [s for s in seen if s.event.kind == kind]
        if moment is None:
            if events and not (kind == "enter_failed" and _cancelled_before_entering(cm, events)):
                problems.append(f"{cm.name}: {kind} was reported, but did not happen")
            continue
        if kinds[kind] != 1:
            problems.append(f"{cm.name}: {kind} was reported {kinds[kind]} times, not once")
            continue
        [event] = events
        task = rec.exit_task if kind.startswith("exit") else rec.enter_task
        if event.task is not task:
            problems.append(f"{cm.name}: {kind} was reported in another task than its holder")
        if event.event.time != moment.time:
            problems.append(
                f"{cm.name}: {kind} was reported at {event.event.time}, not {moment.time}"
            )
        if (event.moment.seq - moment.seq) * side < 0:
            where = "before" if side > 0 else "after"
            problems.append(f"{cm.name}: {kind} was reported {where} it happened")
    return problems


def _cancelled_before_entering(cm: ScriptedCM, events: list[Observed]) -> bool:
    """An enter cancelled before ``__aenter__`` was called (waiting for a slot, or
    never begun) is an ``enter_failed`` with no exception, once."""
    return cm.rec.enter_start is None and len(events) == 1 and events[0].event.exception is None


#: One checker per numbered guarantee of ``docs/semantics.rst``, one for its Errors
#: section and one for its Observers section, by label.
GUARANTEES: Final[tuple[tuple[str, Callable[[Outcome, Facts], list[str]]], ...]] = (
    ("1", _check_ownership),
    ("2", _check_concurrency),
    ("3", _check_no_early_exit),
    ("4", _check_failure_while_open),
    ("5", _check_body_delivery),
    ("6", _check_enter_failure),
    ("7", _check_nothing_lost),
    ("8", _check_cancellation),
    ("9", _check_nothing_leaks),
    ("errors", _check_group),
    ("observer", _check_observer),
)
