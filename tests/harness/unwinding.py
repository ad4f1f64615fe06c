"""The unwinding of a block, modelled from what the fakes recorded: what each ``__aexit__``
must receive, when it may start, and what a suppression takes away (docs/semantics.rst,
guarantees 3 to 6, "The newest exception goes on", and "ParallelExitStack").

Not a second implementation: the model reads the records (when each fake's own scope
fired, what each fake raised, received and suppressed) and applies the rules:

* A context manager *failing* (its own scope fired while it was open) when its stage
  begins to unwind exits first, with its own ``Cancelled``, after the body and the later
  stages; the rest of its stage exits once every failing one has finished, and receives
  the failure of the first of them in time that has one (else what the stage receives).
  One that begins to fail after that (before it was released) exits with the rest, with
  its own ``Cancelled`` too.
* What a stage passes on to the previous one is the *newest*: the exit failures of its
  members (one group when several), which supersede what they received; else what they
  received, unless one of them suppressed it.  A failing member's failure supersedes what
  its stage received (the rest receive it instead).  Suppressing an exception suppresses
  everything it superseded (``Flight.covers``).
* A stage that could not enter (an enter failure, or one failing while the others were
  entering, spec B): its failing members exit first, then the rest, with the first
  failure in time; one that ended by itself without an error, and so stopped the enters,
  fails with a ``RuntimeError``.  Nothing suppresses there: every failure is raised.

Where the records cannot order two events of one instant (a scope firing as its stage
began to unwind, two failing at once) the model has alternatives: the oracle takes the one
that fits the records best, so a violation is what no order of those ties explains.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from typing import Final, Protocol

import attrs

from tests.harness.exceptions import has_cancelled, leaves, members
from tests.harness.fake import Moment, ScriptedCM
from tests.harness.loops import ASYNCIO, CANCELLED
from tests.harness.running import Outcome
from tests.harness.scenario import OPEN, Mode

#: Kinds of delivery.
NOTHING: Final = "nothing"
OWN: Final = "its own Cancelled"
OBJECT: Final = "the object"
GROUP: Final = "a group"

#: At most this many orders of ties are weighed (there are rarely more than two).
MAX_ALTERNATIVES: Final = 64


class Failure(Protocol):
    """A failure the library must report (``oracle.Expected``)."""

    @property
    def cm(self) -> ScriptedCM: ...
    @property
    def exact(self) -> BaseException | None: ...
    @property
    def leaves(self) -> tuple[BaseException, ...]: ...


def errors_of(exc: BaseException | None) -> tuple[BaseException, ...]:
    """The leaves of ``exc`` that are not ``Cancelled``."""
    return tuple(leaf for leaf in leaves(exc) if not isinstance(leaf, CANCELLED))


@attrs.frozen(eq=False)
class Item:
    """One exception on its way out, as the oracle knows it."""

    #: The object itself, if known (``None``: a derived group, known by its leaves).
    exc: BaseException | None
    #: Its leaves that are not ``Cancelled`` (what a suppression takes away, by identity).
    parts: tuple[BaseException, ...]
    #: A cancellation of the caller, delivered natively (each holder meets its own).
    native: bool = False

    @classmethod
    def of(cls, failure: Failure) -> Item:
        return cls(failure.exact, tuple(failure.leaves))


@attrs.frozen(eq=False)
class Want:
    """What one ``__aexit__`` must receive."""

    kind: str
    exc: BaseException | None = None
    parts: tuple[BaseException, ...] = ()

    def accepts(self, seen: BaseException | None) -> bool:
        if self.kind == NOTHING:
            return seen is None
        if self.kind == OWN:
            return isinstance(seen, CANCELLED)
        if self.kind == OBJECT:
            return seen is self.exc
        # A group (of several, or derived): exactly these leaves, in order.
        return members(seen) is not None and [id(leaf) for leaf in errors_of(seen)] == [
            id(part) for part in self.parts
        ]

    def __str__(self) -> str:
        if self.kind == OBJECT:
            return repr(self.exc)
        if self.kind == GROUP:
            return f"a group of {list(self.parts)!r}"
        return self.kind


@attrs.frozen(eq=False)
class Flight:
    """What is on its way out between two steps of the unwinding: the newest exceptions,
    and the identities of everything a suppression of them would suppress."""

    current: tuple[Item, ...] = ()
    covers: frozenset[int] = frozenset()

    def superseded_by(self, items: Sequence[Item]) -> Flight:
        """``items`` were raised while this was handled: they are the newest."""
        return Flight(tuple(items), self.covers | {id(p) for item in items for p in item.parts})

    def want(self) -> Want:
        """What an ``__aexit__`` receives while this is on its way out."""
        errors = [item for item in self.current if not item.native]
        if not errors:
            return Want(OWN if self.current else NOTHING)
        if len(self.current) == 1 and errors[0].exc is not None:
            return Want(OBJECT, errors[0].exc)
        return Want(GROUP, parts=tuple(part for item in errors for part in item.parts))


@attrs.frozen(eq=False)
class StageRun:
    """One stage of a block as it ran: its context managers, and whether it entered."""

    number: int  # its number in a stack (0: a parallel_with block)
    cms: tuple[ScriptedCM, ...]
    entered: bool

    @property
    def exited(self) -> list[ScriptedCM]:
        return [cm for cm in self.cms if cm.rec.exit_start is not None]


def stage_runs(out: Outcome) -> list[StageRun]:
    """The stages of a block (not ``Mode.HANDLES``), earliest first."""
    if out.scenario.mode is Mode.STACK:
        runs: list[StageRun] = []
        for number in range(1, max(out.stage_of, default=0) + 1):
            cms = tuple(cm for cm in out.cms if out.stage_of[cm.index] == number)
            if cms:
                entered = all(out.stage_entered[cm.index] for cm in cms)
                runs.append(StageRun(number, cms, entered))
        return runs
    return [StageRun(0, tuple(out.cms), all(out.stage_entered))] if out.cms else []


def busy_slots(cms: Sequence[ScriptedCM], when: float) -> int:
    """How many ``__aenter__`` and ``__aexit__`` calls of ``cms`` were in flight at
    ``when``, once everything of that instant had happened (a stage's calls share its
    limiter: see ``oracle._check_limit``)."""
    spans = [(cm.rec.enter_start, cm.rec.enter_end) for cm in cms]
    spans += [(cm.rec.exit_start, cm.rec.exit_end) for cm in cms]
    return sum(
        1
        for start, end in spans
        if start is not None and start.time <= when and (end is None or end.time > when)
    )


def slot_instants(cms: Sequence[ScriptedCM], since: float, until: float) -> list[float]:
    """The instants in ``[since, until)`` at which a call of ``cms`` began or ended."""
    moments = [
        moment
        for cm in cms
        for moment in (cm.rec.enter_start, cm.rec.enter_end, cm.rec.exit_start, cm.rec.exit_end)
        if moment is not None
    ]
    return sorted({m.time for m in moments if since <= m.time < until} | {since})


def waited_for_a_slot(run: StageRun, begun: Moment, due: float, limit: int | None) -> bool:
    """With ``limit=``, a call that began at ``begun``, later than ``due``, waited for a
    slot: every slot of its stage was taken at every instant from ``due`` until then."""
    if limit is None or begun.time < due:
        return False
    return all(
        busy_slots(run.cms, when) >= limit for when in slot_instants(run.cms, due, begun.time)
    )


def fired_open(cm: ScriptedCM) -> bool:
    """Its own scope fired (or its task crashed) while it was open."""
    return cm.rec.fired_in == OPEN and cm.rec.fired_time is not None


def ended_by_itself(cm: ScriptedCM) -> bool:
    """It failed, or ended, while open: its own scope cancelled its holder, which exited."""
    return fired_open(cm) and isinstance(cm.rec.seen, CANCELLED)


def _fired(cm: ScriptedCM) -> float:
    assert cm.rec.fired_time is not None
    return cm.rec.fired_time


def _latest(moments: Sequence[Moment | None]) -> Moment | None:
    known = [m for m in moments if m is not None]
    return max(known, key=lambda m: m.seq) if known else None


def runtime_error_message(out: Outcome, cm: ScriptedCM) -> str:
    """The message of the failure of one that ended by itself while the others entered."""
    name = cm.name if out.scenario.mode is Mode.MAPPING else "ScriptedCM"
    return (
        f"{name} ended by itself while the others were entering; the body cannot run without them"
    )


@attrs.frozen(eq=False)
class Abandon:
    """A stage that could not enter: who stopped the enters, and when."""

    #: The first of its own alerts (an enter failure, one failing), in time.
    first_alert: float | None
    #: A cancellation from outside the stage (the caller's; in a stack, the body's scope,
    #: cancelled by an earlier stage's member failing while open).
    outside: float | None


def abandon_of(out: Outcome, run: StageRun, failures: Mapping[int, Failure]) -> Abandon:
    enter_failed = [
        cm.rec.enter_end.time
        for cm in run.cms
        if cm.rec.enter_raised is not None and cm.index in failures and cm.rec.enter_end
    ]
    alerts = enter_failed + [_fired(cm) for cm in run.cms if fired_open(cm)]
    outside: list[float] = []
    assert out.outer is not None
    if out.outer.cancel_called and out.scenario.cancel_at is not None:
        outside.append(out.scenario.cancel_at)
    outside += [
        _fired(cm) for cm in out.cms if 0 < out.stage_of[cm.index] < run.number and fired_open(cm)
    ]
    return Abandon(min(alerts, default=None), min(outside, default=None))


def runtime_error_rule(
    out: Outcome, run: StageRun, cm: ScriptedCM, failures: Mapping[int, Failure]
) -> bool | None:
    """Whether ``cm`` must fail with the ``RuntimeError`` of spec B (``None``: a tie
    decides).  Only one that ended by itself, without an error, while the others of its
    stage were entering (its alert abandoned the stage) does."""
    if run.entered or not ended_by_itself(cm) or cm.index in failures:
        return False
    when = _fired(cm)
    enter_failed = [
        other.rec.enter_end.time
        for other in run.cms
        if other.rec.enter_raised is not None and other.index in failures and other.rec.enter_end
    ]
    others = enter_failed + [_fired(o) for o in run.cms if o is not cm and fired_open(o)]
    abandon = abandon_of(out, run, failures)
    if abandon.outside is not None:
        others.append(abandon.outside)
    if any(t < when for t in others):
        return False  # the enters were stopped before: it ended by itself while exiting
    if any(t == when for t in others):
        return None
    return True


@attrs.frozen(eq=False)
class Choice:
    """One order of the ties of one stage: which are failing as it begins to unwind, and
    whose failure the rest receive."""

    failing: tuple[ScriptedCM, ...]
    first: ScriptedCM | None


@attrs.define(eq=False)
class Unwinding:
    """The model under one order of the ties."""

    #: For each context manager that exited: what its ``__aexit__`` may receive (the
    #: first is the rule; the others are allowed by a tie), with the guarantee's label.
    wants: dict[int, tuple[list[Want], str]]
    #: Problems of timing, with the guarantee's label.
    timing: list[tuple[str, str]]
    #: The identities of what was suppressed (leaves that are not ``Cancelled``).
    gone: frozenset[int]


def _unwind_start(run: StageRun, out: Outcome, after: Moment | None) -> Moment | None:
    """When ``run`` began to unwind: as the body ended (``after``: what it waited for),
    or, for one that could not enter, once its enters were over."""
    if run.entered:
        return after
    return _latest([cm.rec.enter_end for cm in run.cms])


def fired_before(cm: ScriptedCM, start: Moment, exact: bool) -> bool | None:
    """Whether ``cm``'s own scope fired (so its holder, parked, was interrupted) before
    ``start`` (``None``: the records cannot tell).

    A deadline fires before any task step of its instant; a crash is a task step, ordered
    by its moment.  ``exact``: ``start`` is the very step in which the stage began to
    unwind (else a step of that instant before it).  On asyncio a crash reaches its
    holder a loop iteration later (the task group cancels its host from a done callback):
    in its instant, its order with the start is a tie.
    """
    when = _fired(cm)
    if when != start.time:
        return when < start.time
    at = cm.rec.fired_at
    if at is None:
        return True
    if cm.timeline.loop.name == ASYNCIO:
        return None
    if at.seq < start.seq:
        return True
    return False if exact else None


def _choices(
    run: StageRun, start: Moment, exact: bool, failures: Mapping[int, Failure]
) -> list[Choice]:
    """The orders of ties for ``run``, which began to unwind at ``start``."""
    exited = run.exited
    sure = [cm for cm in exited if fired_open(cm) and fired_before(cm, start, exact)]
    tied = [cm for cm in exited if ended_by_itself(cm) and fired_before(cm, start, exact) is None]
    choices: list[Choice] = []
    for k in range(len(tied) + 1):
        for extra in itertools.combinations(tied, k):
            failing = (*sure, *extra)
            alerts = [(_fired(cm), cm) for cm in failing if cm.index in failures]
            if not run.entered:
                alerts += [
                    (cm.rec.enter_end.time, cm)
                    for cm in run.cms
                    if cm.rec.enter_raised is not None and cm.index in failures and cm.rec.enter_end
                ]
            if not alerts:
                choices.append(Choice(failing, None))
                continue
            soonest = min(t for t, _ in alerts)
            choices += [Choice(failing, cm) for t, cm in alerts if t == soonest]
    return choices


def _label(cm: ScriptedCM | None) -> str:
    if cm is None:
        return "5"
    return "6" if cm.rec.enter_raised is not None else "4"


def _body_flight(out: Outcome) -> Flight:
    """What the latest stage receives: what the body let through, our own cancellation
    absorbed (the caller's, delivered natively)."""
    body = out.body_raised
    if body is None:
        return Flight()
    if not has_cancelled(body):
        parts = errors_of(body)
        return Flight((Item(body, parts),), frozenset(map(id, parts)))
    assert out.outer is not None
    end = out.block_body_end
    outer = (
        out.outer.cancel_called
        and out.scenario.cancel_at is not None
        and end is not None
        and out.scenario.cancel_at <= end.time
    )
    parts = errors_of(body)
    items: list[Item] = []
    if parts:
        items.append(Item(None, parts))  # a group less its Cancelled (derived)
    if outer:
        items.append(Item(None, (), native=True))
    return Flight(tuple(items), frozenset(map(id, parts)))


def _unwind_entered(
    out: Outcome,
    run: StageRun,
    start: Moment,
    choice: Choice,
    incoming: Flight,
    failures: Mapping[int, Failure],
    model: Unwinding,
) -> Flight:
    """Unwind a stage that entered, with ``incoming`` on its way out; what goes on."""
    exited = run.exited
    failing = set(choice.failing)
    late = [cm for cm in exited if cm not in failing and ended_by_itself(cm)]
    rest = [cm for cm in exited if cm not in failing and not ended_by_itself(cm)]
    received = incoming
    if choice.first is not None:
        received = incoming.superseded_by([Item.of(failures[choice.first.index])])
    for cm in [*choice.failing, *late]:
        model.wants[cm.index] = ([Want(OWN)], "4")
    for cm in rest:
        model.wants[cm.index] = ([received.want()], _label(choice.first))
    _rest_after_failing(out, run, choice.failing, [*late, *rest], start, model, "3")
    # What goes on: the newest.
    passed = received
    if received.current and any(cm.rec.seen is not None and cm.rec.exit_returned for cm in rest):
        model.gone |= received.covers  # (a Cancelled part goes on: none in these scenarios)
        passed = Flight()
    failed = [Item.of(failures[cm.index]) for cm in rest if cm.index in failures]
    newest = passed.superseded_by(failed) if failed else passed
    # The failures of the failing members that the rest did not receive go on too: they
    # failed concurrently (in every nesting order, the previous stage receives them).
    others = [
        Item.of(failures[cm.index])
        for cm in exited
        if cm not in rest and cm is not choice.first and cm.index in failures
    ]
    parts = {id(part) for item in others for part in item.parts}
    # One group, the stage's failures in position order (as a graph's, in node order),
    # whichever superseded what; what is not theirs (what the stage received) first.
    position = {
        id(part): place
        for place, cm in enumerate(run.cms, start=1)
        if cm.index in failures
        for part in failures[cm.index].leaves
    }
    current = sorted(
        (*newest.current, *others),
        key=lambda item: min((position.get(id(p), 0) for p in item.parts), default=0),
    )
    return Flight(tuple(current), newest.covers | parts)


def _unwind_abandoned(
    out: Outcome,
    run: StageRun,
    start: Moment,
    choice: Choice,
    failures: Mapping[int, Failure],
    model: Unwinding,
) -> None:
    """A stage that could not enter: the failing ones first, then the rest with the first
    failure; every failure is raised (from the enter)."""
    exited = run.exited
    failing = set(choice.failing)
    late = [cm for cm in exited if cm not in failing and ended_by_itself(cm)]
    rest = [cm for cm in exited if cm not in failing and not ended_by_itself(cm)]
    if choice.first is not None:
        want = Flight().superseded_by([Item.of(failures[choice.first.index])]).want()
    else:
        # Released "natively": each meets its own Cancelled if its task is cancelled (the
        # caller's cancellation), else nothing (in a stack, a stage entered in a body that
        # our scope cancelled: its holders live outside that scope).
        assert out.outer is not None
        cancel_at = out.scenario.cancel_at
        outer = out.outer.cancel_called and cancel_at is not None and cancel_at <= start.time
        want = Want(OWN if outer else NOTHING)
    abandon = abandon_of(out, run, failures)
    stopped = min(t for t in (abandon.first_alert, abandon.outside, start.time) if t is not None)
    unmoved: list[ScriptedCM] = []
    for cm in [*choice.failing, *late]:
        model.wants[cm.index] = ([Want(OWN)], "4")
    for cm in rest:
        wants = [want]
        end = cm.rec.enter_end
        if end is not None and end.time >= stopped:
            # It may have entered as its starter was cancelled: not moved into the block's
            # nursery, it exits at once, with its own Cancelled or the first enter failure
            # known by then.
            unmoved.append(cm)
            wants += [Want(OWN)]
            wants += [
                Flight().superseded_by([Item.of(failures[o.index])]).want()
                for o in run.cms
                if o.rec.enter_raised is not None and o.index in failures
            ]
        model.wants[cm.index] = (wants, _label(choice.first))
    others = [cm for cm in [*late, *rest] if cm not in unmoved]
    _rest_after_failing(out, run, choice.failing, others, start, model, "4")


def _rest_after_failing(
    out: Outcome,
    run: StageRun,
    failing: Sequence[ScriptedCM],
    others: Sequence[ScriptedCM],
    start: Moment,
    model: Unwinding,
    label: str,
) -> None:
    """The failing ones start as the stage unwinds; the others once they have ended."""
    ends = [cm.rec.exit_end for cm in failing]
    for cm in others:
        begun = cm.rec.exit_start
        assert begun is not None
        for failed, end in zip(failing, ends, strict=True):
            if end is not None and begun.seq < end.seq:
                model.timing.append(
                    (label, f"{cm.name} began to exit before {failed.name}, failing, had exited")
                )
    if not run.entered:
        return
    limit = out.scenario.limit
    release = max([start.time, *(end.time for end in ends if end is not None)])
    for cm in failing:
        begun = cm.rec.exit_start
        assert begun is not None
        if begun.time != start.time and not waited_for_a_slot(run, begun, start.time, limit):
            model.timing.append(
                (
                    "4",
                    f"{cm.name}, failing, began to exit at {begun.time}, not as its stage "
                    f"began to unwind ({start.time})",
                )
            )
    for cm in others:
        begun = cm.rec.exit_start
        assert begun is not None
        if begun.time != release and not waited_for_a_slot(run, begun, release, limit):
            model.timing.append(
                (
                    "4" if failing else "2",
                    f"{cm.name} began to exit at {begun.time}, not as its stage began to "
                    f"unwind and the failing ones had exited ({release})",
                )
            )


def unwind_starts(out: Outcome) -> dict[int, Moment]:
    """When each stage (by number) began to unwind, releasing its holders: the latest that
    entered as the body ended, an earlier one once every later one had finished, one that
    could not enter once its enters were over (not ``Mode.HANDLES``)."""
    runs = stage_runs(out)
    starts: dict[int, Moment] = {}
    after = out.block_body_end
    for run in reversed([run for run in runs if run.entered]):
        if after is None:
            break
        starts[run.number] = after
        after = _latest([after, *(cm.rec.exit_end for cm in run.exited)])
    for run in runs:
        start = None if run.entered or not run.exited else _unwind_start(run, out, None)
        if start is not None:
            starts[run.number] = start
    return starts


def unwindings(out: Outcome, failures: Mapping[int, Failure]) -> Iterator[Unwinding]:
    """The model of ``out`` under every order of its ties (at most ``MAX_ALTERNATIVES``)."""
    runs = stage_runs(out)
    entered = [run for run in runs if run.entered]
    abandoned = [run for run in runs if not run.entered and run.exited]
    starts = unwind_starts(out)
    ordered = [run for run in [*reversed(entered), *abandoned] if run.number in starts]
    # Only the latest stage's start is the very step in which it began to unwind.
    exact = {entered[-1].number} if entered and entered[-1].number in starts else set[int]()
    options = [_choices(run, starts[run.number], run.number in exact, failures) for run in ordered]
    for combination in itertools.islice(itertools.product(*options), MAX_ALTERNATIVES):
        model = Unwinding({}, [], frozenset())
        flight = _body_flight(out)
        for run, choice in zip(ordered, combination, strict=True):
            start = starts[run.number]
            if run.entered:
                flight = _unwind_entered(out, run, start, choice, flight, failures, model)
            else:
                _unwind_abandoned(out, run, start, choice, failures, model)
        yield model
