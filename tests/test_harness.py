"""Fault injection (issue #5): every invariant of ``docs/semantics.rst``, after every scenario.

* ``test_exhaustive``: every combination of two context managers over ``BEHAVIOURS`` x
  ``BODIES`` x ``CANCELS`` (``tests/harness.py``), for ``parallel_with``, for a
  ``ParallelExitStack`` with one context manager per stage and for ``start_context``
  (in CI the last two take two of the four cancellations; a long run takes all).
* ``test_fuzz_*``: hypothesis explores the large space (up to five context managers, any
  script, events that tie, ``limit=``, the mapping form, two stages split anywhere), with
  ``TPCM_FUZZ_EXAMPLES`` examples per test (default 200); ``make fuzz`` runs 100000.
  Set ``TPCM_FUZZ_SEED`` to explore other examples than the derandomized ones.
* ``test_known_bug_*``: strict xfails, one per name in ``KNOWN_BUGS``, which ``check``
  tolerates meanwhile.
* The rest checks the checker: it catches naive implementations, its scenarios reproduce.

Each scenario runs in its own ``trio.run`` on a virtual clock with a seeded scheduler, so a
failing scenario printed here reproduces with ``run_scenario(<that repr>)``.
"""

from __future__ import annotations

import faulthandler
import re
import sys
from collections.abc import AsyncGenerator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from itertools import islice
from pathlib import Path

import attrs
import pytest
import trio
from hypothesis import given

from tests.conftest import HANG_SECONDS
from tests.harness import (
    BEHAVIOURS,
    BODIES,
    CANCELS,
    KNOWN_BUGS,
    Body,
    Ending,
    Fault,
    HangReporter,
    Mode,
    OpenFailure,
    Outcome,
    Scenario,
    Script,
    ScriptedCM,
    check,
    exhaustive,
    run_scenario,
    scenarios,
)
from tests.harness.exceptions import leaves, members, notes
from tests.harness.explore import FUZZ_EXAMPLES, fuzz
from tests.harness.fake import Moment
from tests.harness.oracle import GUARANTEES
from trio_parallel_cm import _flight, _holder, _stage
from trio_parallel_cm._errors import Delivery, cancelled_parts

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup

HANGS = HangReporter()


def violations(scenario: Scenario) -> list[str]:
    """Run ``scenario`` and check it."""
    # The suite's watchdog is per test; a long exploration re-arms it per scenario.
    faulthandler.dump_traceback_later(HANG_SECONDS, exit=True, file=sys.stderr)
    with HANGS.watch(scenario):
        outcome = run_scenario(scenario)
    return check(scenario, outcome)


def report(failures: Sequence[tuple[Scenario, list[str]]], total: int) -> str:
    lines = [f"{len(failures)} of {total} scenarios break an invariant:"]
    for scenario, problems in failures[:20]:
        lines.append(f"run_scenario({scenario!r})")
        lines += [f"    - {problem}" for problem in problems]
    return "\n".join(lines)


# ---- the small space, exhaustively ---------------------------------------------------------

#: A long run (``make fuzz``) enumerates every outer cancellation in every mode; to stay
#: fast under coverage, CI takes only "none" and "while the body runs" for the stack and
#: the handles (``parallel_with`` gets them all).
LONG_RUN = FUZZ_EXAMPLES >= 10_000


def cancels_for(mode: Mode) -> tuple[float | None, ...]:
    return CANCELS if mode is Mode.PARALLEL or LONG_RUN else (None, 1.25)


def exhaustive_size(cancels: int) -> int:
    """How many scenarios ``exhaustive`` yields: it guards against the space shrinking."""
    pairs = len(BEHAVIOURS) ** 2
    without_nursery = sum(
        1
        for a in BEHAVIOURS.values()
        for b in BEHAVIOURS.values()
        if not (a.has_nursery or b.has_nursery)
    )
    spawning = sum(1 for body in BODIES.values() if body.spawn is not None)
    return (pairs * len(BODIES) - without_nursery * spawning) * cancels


@pytest.mark.parametrize("mode", [Mode.PARALLEL, Mode.STACK, Mode.HANDLES])
def test_exhaustive(mode: Mode) -> None:
    failures: list[tuple[Scenario, list[str]]] = []
    total = 0
    for scenario in exhaustive(mode, cancels=cancels_for(mode)):
        total += 1
        problems = violations(scenario)
        if problems:
            failures.append((scenario, problems))
    assert not failures, report(failures, total)
    assert total == exhaustive_size(len(cancels_for(mode)))


# ---- the large space, by hypothesis ----------------------------------------------------------


def assert_holds(scenario: Scenario) -> None:
    problems = violations(scenario)
    assert not problems, report([(scenario, problems)], 1)


@fuzz
@given(scenarios([Mode.PARALLEL, Mode.MAPPING]))
def test_fuzz_parallel_with(scenario: Scenario) -> None:
    assert_holds(scenario)


@fuzz
@given(scenarios([Mode.STACK]))
def test_fuzz_parallel_exit_stack(scenario: Scenario) -> None:
    assert_holds(scenario)


@fuzz
@given(scenarios([Mode.HANDLES]))
def test_fuzz_start_context(scenario: Scenario) -> None:
    assert_holds(scenario)


# ---- bugs this harness found, fixed: their scenarios stay as regressions ---------------------

CRASHES_NEXT_TO_A_NURSERY = Scenario(
    (
        Script(enter_delay=1, exit_delay=1, nursery=True),
        Script(enter_delay=1, open_failure=OpenFailure.CRASH, open_after=1.5),
    ),
    Body(delay=3),
)

REGRESSIONS = {
    # A nursery re-raises a copy of the group it receives: not a second failure.
    "echoes": CRASHES_NEXT_TO_A_NURSERY,
    "echoes the body group": Scenario((Script(nursery=True),), Body(ending=Ending.GROUP)),
    # BaseExceptionGroup.split copies: groups are delivered and reported as themselves.
    "copies": Scenario((Script(exit_fault=Fault.GROUP),), Body(ending=Ending.ERROR)),
    # start_context cancelled as it enters, its forced exit failing: reported once.
    "start-twice": Scenario(
        (Script(enter_delay=None, exit_delay=None, exit_fault=Fault.ERROR),),
        mode=Mode.HANDLES,
        cancel_at=0,
    ),
    # An outer cancellation while one that failed during the enters cleans up: the
    # caller's Cancelled is never a member of the group raised.  (Its crash stopped the
    # enters; its cleanup, cut by the caller, raised nothing of it: it fails with the
    # RuntimeError of one that ended by itself, which the others receive after it.)
    "cancelled-member": Scenario(
        (
            Script(enter_delay=None, open_after=0.5, exit_delay=None),
            Script(enter_delay=None, open_after=0.5, exit_delay=None),
            Script(enter_delay=None, open_after=0.5, exit_delay=None),
            Script(enter_delay=1, open_after=0.5, exit_delay=None),
            Script(enter_delay=None, open_failure=OpenFailure.CRASH, open_after=0.5, exit_delay=1),
        ),
        Body(delay=None, child_for=1),
        split=0,
        cancel_at=1.5,
    ),
    # A handle failing before start_context returned: raised by start_context only.
    "start-raises-once": Scenario(
        (
            Script(enter_delay=None, open_after=0.5, exit_delay=None),
            Script(enter_delay=None, open_after=0.5, exit_delay=None),
            Script(enter_delay=1, open_failure=OpenFailure.CRASH, open_after=1, exit_delay=None),
        ),
        Body(delay=None, child_for=1),
        mode=Mode.HANDLES,
        split=0,
        seed=1,
    ),
    # A handle's crash while open stays "open" when its nursery is cancelled later.
    "handle-phase": Scenario(
        (
            Script(
                enter_delay=1,
                open_failure=OpenFailure.CRASH,
                open_after=1.5,
                exit_delay=2,
                shield_exit=True,
            ),
        ),
        Body(delay=1, ending=Ending.ERROR),
        mode=Mode.HANDLES,
    ),
    # One crashing at the very instant the body ends, its task not yet run: no longer a
    # special case, it exits as the body ends, and the others after its cleanup, with its
    # failure.
    "tie-with-body-end": Scenario(
        (
            Script(enter_delay=None, open_after=0.5, exit_delay=None),
            Script(enter_delay=None, open_after=0.5, exit_delay=None),
            Script(enter_delay=None, open_failure=OpenFailure.CRASH, open_after=1, exit_delay=1),
        ),
        Body(delay=1, child_for=1),
        split=0,
    ),
    # Not a library bug (an oracle tie): a handle crashing at the instant another's
    # failure reaches the nursery may count as failing while open or while exiting.
    "handle-tie-with-nursery-cancel": Scenario(
        (
            Script(enter_delay=1, open_failure=OpenFailure.CRASH, exit_delay=1),
            Script(enter_delay=1, open_failure=OpenFailure.CRASH, exit_delay=None),
            Script(enter_delay=1, open_after=0.5, exit_delay=None),
        ),
        Body(delay=None, child_for=1),
        mode=Mode.HANDLES,
        split=0,
        seed=1,
    ),
    # cm0 ends by itself while cm2 enters: cm2's enter is cancelled, the body never runs,
    # and cm0 fails with a RuntimeError.  cm1 ends by itself at 1.5, the very instant
    # cm0's cleanup ends: failing after the exit began, it exits then, with its own
    # Cancelled, and nothing waits for it.  (Formerly "settle-tie-with-a-second-
    # interruption": the stage used to wait for cm0's cleanup before the body started.)
    "second-ends-by-itself-as-the-first-has-cleaned-up": Scenario(
        (
            Script(
                enter_delay=None, open_failure=OpenFailure.MOVE_ON, open_after=0.5, exit_delay=1
            ),
            Script(enter_delay=None, open_failure=OpenFailure.MOVE_ON, exit_delay=1),
            Script(enter_delay=1, open_after=0.5, exit_delay=None),
        ),
        Body(delay=None, child_for=1),
        split=0,
    ),
    # Two members of stage 2 fail while open, at 2.5 and 3.5, while the body cleans up:
    # stage 1 receives both failures, one group (they failed concurrently: in every
    # nesting order the earlier stage receives both), and suppressing it suppresses both.
    # (Found while writing the oracle of issue 16: only the first used to go on.)
    "several-failing-go-on-together": Scenario(
        (
            Script(enter_delay=1, exit_delay=1, suppress=True),
            Script(enter_delay=1, open_failure=OpenFailure.CRASH, open_after=1.5, exit_delay=1),
            Script(
                enter_delay=1, open_failure=OpenFailure.FAIL_AFTER, open_after=2.5, exit_delay=1
            ),
        ),
        Body(delay=1, cleanup=2),
        mode=Mode.STACK,
        split=1,
    ),
    # Not a library bug (an oracle tie): released by the outer cancellation at 1.5, cm0
    # waits for the exit slot (limit=1); its own scope fires at 2.5, the very instant the
    # slot comes free, so its exit failure is one while exiting.
    "limit-slot-tie-with-own-scope": Scenario(
        (
            Script(
                enter_delay=1,
                open_failure=OpenFailure.FAIL_AFTER,
                open_after=2.5,
                exit_delay=None,
                exit_fault=Fault.ERROR,
            ),
            Script(enter_delay=None, open_after=0.5, exit_delay=1, shield_exit=True, nursery=True),
        ),
        Body(delay=1, child_for=1),
        split=0,
        cancel_at=1.5,
        limit=1,
        seed=1,
    ),
}


def _cancelled_member(out: Outcome) -> None:
    crashed, rest = out.cms[4], out.cms[:3]
    assert out.body_start is None and crashed.rec.fired_in == "open"
    assert not any(isinstance(m, trio.Cancelled) for m in leaves(out.raised))
    [failure] = leaves(out.raised)
    assert isinstance(failure, RuntimeError) and "ended by itself" in str(failure)
    assert crashed.rec.exit_end is not None
    for cm in rest:
        assert cm.rec.seen is failure
        assert cm.rec.exit_start is not None and cm.rec.exit_start.seq > crashed.rec.exit_end.seq


def _echoes(out: Outcome) -> None:
    nursery, crashed = out.cms
    [failure] = members(out.raised) or [None]
    assert nursery.rec.seen is failure and crashed.rec.exit_raised is failure


def _second_ends_by_itself(out: Outcome) -> None:
    first, second, pending = out.cms
    assert out.body_start is None and isinstance(pending.rec.enter_raised, trio.Cancelled)
    assert first.rec.exit_end is not None and second.rec.exit_start is not None
    assert second.rec.fired_time == first.rec.exit_end.time == second.rec.exit_start.time
    assert isinstance(second.rec.seen, trio.Cancelled)
    [failure] = members(out.raised) or [None]
    assert isinstance(failure, RuntimeError) and "position 0" in notes(failure)[0]


def _several_failing_go_on_together(out: Outcome) -> None:
    suppressing, crashed, timed_out = out.cms
    assert crashed.rec.exit_raised is not None and timed_out.rec.exit_raised is not None
    assert leaves(suppressing.rec.seen) == [
        *leaves(crashed.rec.exit_raised),
        timed_out.rec.exit_raised,
    ]
    assert out.raised is None


def _tie_with_body_end(out: Outcome) -> None:
    *rest, crashed = out.cms
    end = out.block_body_end
    assert end is not None and crashed.rec.fired_time == end.time
    assert crashed.rec.exit_start is not None and crashed.rec.exit_start.time == end.time
    assert crashed.rec.exit_end is not None
    [failure] = members(out.raised) or [None]
    for cm in rest:
        assert cm.rec.seen is failure
        assert cm.rec.exit_start is not None and cm.rec.exit_start.seq > crashed.rec.exit_end.seq


#: What makes a regression scenario the race it stands for, under the rules of issue 16
#: (``check`` holds them all; these pin the race itself).
RACES = {
    "cancelled-member": _cancelled_member,
    "echoes": _echoes,
    "second-ends-by-itself-as-the-first-has-cleaned-up": _second_ends_by_itself,
    "several-failing-go-on-together": _several_failing_go_on_together,
    "tie-with-body-end": _tie_with_body_end,
}


@pytest.mark.parametrize("name", sorted(REGRESSIONS))
def test_fixed_bug_stays_fixed(name: str) -> None:
    scenario = REGRESSIONS[name]
    outcome = run_scenario(scenario)
    assert check(scenario, outcome, frozenset()) == []
    if name in RACES:
        RACES[name](outcome)


def test_no_bug_is_tolerated() -> None:
    assert frozenset() == KNOWN_BUGS


# ---- checking the checker ------------------------------------------------------------------


@asynccontextmanager
async def gathered(cms: Sequence[ScriptedCM]) -> AsyncGenerator[Sequence[object], None]:
    """The classic hand-written version: enters gathered in a nursery, exits in the body."""
    values: list[object] = [None] * len(cms)

    async def enter(i: int, cm: ScriptedCM) -> None:
        values[i] = await cm.__aenter__()

    async with trio.open_nursery() as nursery:
        for i, cm in enumerate(cms):
            nursery.start_soon(enter, i, cm)
    try:
        yield tuple(values)
    finally:
        for cm in reversed(cms):
            await cm.__aexit__(None, None, None)


@asynccontextmanager
async def nested(cms: Sequence[ScriptedCM]) -> AsyncGenerator[Sequence[object], None]:
    """Nested ``async with``: correct, but neither concurrent nor in tasks of their own."""
    async with AsyncExitStack() as stack:
        yield tuple([await stack.enter_async_context(cm) for cm in cms])


def test_one_checker_per_guarantee_of_the_semantics_page() -> None:
    page = (Path(__file__).parent.parent / "docs" / "semantics.rst").read_text()
    guarantees = page.split("\nGuarantees\n", 1)[1].split("\nErrors\n", 1)[0]
    numbered = re.findall(r"^(\d+)\. \*\*", guarantees, flags=re.MULTILINE)
    assert [label for label, _ in GUARANTEES] == [*numbered, "errors"]
    assert len({checker for _, checker in GUARANTEES}) == len(GUARANTEES)


def test_the_checker_catches_a_gathering_implementation() -> None:
    plain = Scenario((Script(enter_delay=1, exit_delay=1), Script(enter_delay=2)))
    problems = check(plain, run_scenario(plain, gathered))
    assert "[1] cm0: __aexit__ ran in another task than __aenter__" in problems

    with_nursery = attrs.evolve(plain, scripts=(Script(enter_delay=1, nursery=True),))
    problems = check(with_nursery, run_scenario(with_nursery, gathered))
    assert any(p.startswith("[run]") and "corrupted" in p for p in problems)
    assert "[9] cm0 entered but was exited 0 times" in problems

    error = Scenario(
        (Script(enter_delay=1), Script(exit_fault=Fault.ERROR)), Body(ending=Ending.ERROR)
    )
    problems = check(error, run_scenario(error, gathered))
    assert "[7] the body's ValueError('body') appears 0 times, not 1" in problems
    assert any(p.startswith("[errors] cm1's failure has the notes []") for p in problems)


def test_the_checker_catches_nested_async_with() -> None:
    scenario = Scenario((Script(enter_delay=1, exit_delay=1), Script(enter_delay=2)))
    problems = check(scenario, run_scenario(scenario, nested))
    assert "[1] cm0 was entered in the body's task" in problems
    assert "[2] the enters started at [0.0, 1.0], not all at once" in problems


def test_the_checker_catches_a_tampered_record() -> None:
    scenario = Scenario((Script(enter_delay=1),), Body(delay=1))
    outcome = run_scenario(scenario)
    assert check(scenario, outcome) == []
    outcome.cms[0].rec.exit_calls = 2
    outcome.tasks_after += 1
    assert check(scenario, outcome) == [
        "[9] cm0 entered but was exited 2 times",
        "[9] 1 task(s) outlived the block",
    ]


def test_the_checker_sees_a_pure_cancellation_that_is_wrapped() -> None:
    scenario = Scenario((Script(),), Body(delay=5), cancel_at=1)
    outcome = run_scenario(scenario)
    assert check(scenario, outcome) == []
    assert type(outcome.raised) is trio.Cancelled
    assert outcome.outer is not None and outcome.outer.cancelled_caught
    outcome.raised = wrapped = BaseExceptionGroup("wrapped", [outcome.raised])
    problems = check(scenario, outcome)
    assert f"[8] a pure cancellation came out as {wrapped!r}, not a bare Cancelled" in problems


# ---- checking the checks of issue 16: tampered records, and engines of the old rules --------

#: A crash at 1.5 cancels the body, whose shielded cleanup lasts until 2.5: the crashing
#: cm1 exits then (until 3.5), and cm0 after it, with its failure.
FAILING_IN_CLEANUP = Scenario(
    (
        Script(enter_delay=1, exit_delay=1),
        Script(enter_delay=1, open_failure=OpenFailure.CRASH, open_after=1.5, exit_delay=1),
    ),
    Body(delay=4, cleanup=1),
)

#: Stage 2's exit error supersedes the body's exception: stage 1 receives it alone.
SUPERSEDED = Scenario(
    (Script(enter_delay=1, exit_delay=1), Script(exit_delay=1, exit_fault=Fault.ERROR)),
    Body(delay=1, ending=Ending.ERROR),
    mode=Mode.STACK,
)

#: ... and, suppressing it, stage 1 suppresses the body's exception too: nothing leaves.
SUPPRESSES_THE_SUPERSEDED = attrs.evolve(
    SUPERSEDED, scripts=(Script(enter_delay=2, exit_delay=1, suppress=True), SUPERSEDED.scripts[1])
)


def checked(scenario: Scenario) -> Outcome:
    outcome = run_scenario(scenario)
    assert check(scenario, outcome) == []
    return outcome


def moment_before(moment: Moment | None, time: float) -> Moment:
    assert moment is not None
    return Moment(moment.seq - 1, time)


def test_the_checker_sees_a_failing_one_exit_before_the_body_ended() -> None:
    # The old rule: a failing context manager exited at once, before the body had ended.
    outcome = checked(FAILING_IN_CLEANUP)
    failing = outcome.cms[1]
    failing.rec.exit_start = moment_before(outcome.block_body_end, 1.5)
    problems = check(FAILING_IN_CLEANUP, outcome)
    assert "[3] cm1 began to exit before the body had finished" in problems
    assert (
        "[4] cm1, failing, began to exit at 1.5, not as its stage began to unwind (2.5)" in problems
    )


def test_the_checker_sees_the_rest_exit_before_the_failing_one() -> None:
    outcome = checked(FAILING_IN_CLEANUP)
    rest, failing = outcome.cms
    rest.rec.exit_start = moment_before(failing.rec.exit_end, 2.5)
    problems = check(FAILING_IN_CLEANUP, outcome)
    assert "[3] cm0 began to exit before cm1, failing, had exited" in problems
    assert (
        "[4] cm0 began to exit at 2.5, not as its stage began to unwind and the failing ones "
        "had exited (3.5)" in problems
    )


def test_the_checker_wants_a_failing_one_to_receive_its_own_cancelled() -> None:
    outcome = checked(FAILING_IN_CLEANUP)
    outcome.cms[1].rec.seen = None
    assert "[4] cm1's __aexit__ received None, not its own Cancelled" in check(
        FAILING_IN_CLEANUP, outcome
    )


def test_the_checker_wants_the_first_failure_in_time() -> None:
    # cm1 crashes at 1.5, cm2's deadline fires at 2.5 (the body cleans up until 3.5): cm0
    # receives cm1's failure, not cm2's.
    scenario = Scenario(
        (
            Script(enter_delay=1, exit_delay=1),
            Script(enter_delay=1, open_failure=OpenFailure.CRASH, open_after=1.5, exit_delay=1),
            Script(open_failure=OpenFailure.FAIL_AFTER, open_after=2.5, exit_delay=1),
        ),
        Body(delay=4, cleanup=2),
    )
    outcome = checked(scenario)
    rest, first, second = outcome.cms
    assert rest.rec.seen is first.rec.exit_raised
    rest.rec.seen = second.rec.exit_raised
    assert f"[4] cm0's __aexit__ received TooSlowError(), not {first.rec.exit_raised!r}" in check(
        scenario, outcome
    )


def test_the_checker_sees_the_old_tie_rule() -> None:
    # The old rule for a crash at the very instant the body ends: the others exited at
    # once, with the body's outcome, not after its cleanup with its failure.
    scenario = REGRESSIONS["tie-with-body-end"]
    outcome = checked(scenario)
    rest, failing = outcome.cms[0], outcome.cms[2]
    rest.rec.seen = None
    rest.rec.exit_start = moment_before(failing.rec.exit_end, 1.0)
    problems = check(scenario, outcome)
    assert f"[4] cm0's __aexit__ received None, not {failing.rec.exit_raised!r}" in problems
    assert "[3] cm0 began to exit before cm2, failing, had exited" in problems


def test_the_checker_wants_the_newest_exception_not_the_old_group() -> None:
    # The old rule: stage 1 received one group of the body's exception and stage 2's
    # failure; the new one: the failure alone, which superseded the body's exception.
    outcome = checked(SUPERSEDED)
    first, second = outcome.cms
    assert first.rec.seen is second.rec.exit_raised
    assert outcome.body_raised is not None and second.rec.exit_raised is not None
    first.rec.seen = group = BaseExceptionGroup(
        "several exceptions propagate", [outcome.body_raised, second.rec.exit_raised]
    )
    assert f"[5] cm0's __aexit__ received {group!r}, not ValueError('cm1 exit')" in check(
        SUPERSEDED, outcome
    )


def test_the_checker_wants_the_superseded_suppressed_too() -> None:
    # The old rule: suppressing stage 2's failure left the body's exception to be raised.
    outcome = checked(SUPPRESSES_THE_SUPERSEDED)
    assert outcome.raised is None
    body = outcome.body_raised
    assert body is not None
    outcome.raised = BaseExceptionGroup("the body raised", [body])
    problems = check(SUPPRESSES_THE_SUPERSEDED, outcome)
    assert "[7] the body's ValueError('body') appears 1 times, not 0" in problems
    assert "[errors] the group holds [ValueError('body')], not [] in that order" in problems


def test_the_checker_sees_a_body_run_after_a_failure_while_entering() -> None:
    # The old rule: one that ended by itself while the others entered let the body run.
    scenario = Scenario(
        (
            Script(open_failure=OpenFailure.MOVE_ON, open_after=1.5),
            Script(enter_delay=1, exit_delay=1),
        ),
        Body(delay=1),
    )
    outcome = checked(scenario)
    assert outcome.body_start is not None
    outcome.cms[0].rec.fired_time = 0.5  # (it fired at 1.5, while the body ran)
    assert (
        "[4] the body ran, though cm0 failed while open at 0.5, before the last context "
        "manager had entered (1.0)" in check(scenario, outcome)
    )


def test_the_checker_wants_the_runtime_error_of_one_that_stopped_the_enters() -> None:
    scenario = REGRESSIONS["second-ends-by-itself-as-the-first-has-cleaned-up"]
    outcome = checked(scenario)
    outcome.raised = None
    message = (
        "ScriptedCM ended by itself while the others were entering; the body cannot run "
        "without them"
    )
    assert (
        f"[4] cm0 ended by itself while the others were entering, but no RuntimeError("
        f"{message!r}) says so" in check(scenario, outcome)
    )


def test_the_checker_sees_a_stage_unwind_before_a_later_one_with_a_failing_member() -> None:
    # Stage 1's cm0 crashes at 2.5, while the body (after stage 2 entered) runs: it exits
    # only once stage 2 (cm1) has exited, which receives what the body let through.
    scenario = Scenario(
        (
            Script(enter_delay=1, open_failure=OpenFailure.CRASH, open_after=2.5, exit_delay=1),
            Script(enter_delay=1, exit_delay=1),
        ),
        Body(delay=3),
        mode=Mode.STACK,
    )
    outcome = checked(scenario)
    failing, later = outcome.cms
    assert later.rec.seen is None
    failing.rec.exit_start = moment_before(later.rec.exit_end, 2.5)
    assert "[3] cm0 began to exit before cm1 had exited" in check(scenario, outcome)


@pytest.mark.parametrize(
    ("mutation", "scenario", "caught"),
    [
        # The old order: a failing holder exits at once.
        ("await-release", FAILING_IN_CLEANUP, "[3] cm1 began to exit before the body had finished"),
        # The rest receive what the stage received, not the failure that supersedes it.
        (
            "deliver-to-the-rest",
            FAILING_IN_CLEANUP,
            "[4] cm0's __aexit__ received None, not ExceptionGroup('Exceptions from Trio "
            "nursery', [ValueError('cm1 crash')])",
        ),
        # A suppression leaves alone what the suppressed exception superseded.
        (
            "suppressed",
            SUPPRESSES_THE_SUPERSEDED,
            "[7] the body's ValueError('body') appears 1 times, not 0",
        ),
    ],
)
def test_the_checker_catches_an_engine_of_the_old_rules(
    monkeypatch: pytest.MonkeyPatch, mutation: str, scenario: Scenario, caught: str
) -> None:
    assert check(scenario, run_scenario(scenario)) == []
    if mutation == "await-release":

        async def at_once(self: _holder.Holder) -> None:
            return

        monkeypatch.setattr(_holder.Holder, "_await_release", at_once)
    elif mutation == "deliver-to-the-rest":

        def unchanged(self: _stage.Stage, found: Delivery) -> Delivery:
            return found

        monkeypatch.setattr(_stage.Stage, "_deliver_to_the_rest", unchanged)
    else:

        def keeps_the_superseded(
            self: _flight.Flight, *, native: bool
        ) -> tuple[_flight.Flight, frozenset[int]]:
            kept = () if native else tuple(cancelled_parts(self.current))
            return _flight.Flight(kept, _flight.ids(kept)), (
                self.covers & _flight.ids(self.current)
            ) - _flight.ids(kept)

        monkeypatch.setattr(_flight.Flight, "suppressed", keeps_the_superseded)
    assert caught in check(scenario, run_scenario(scenario))


# ---- reproducibility -----------------------------------------------------------------------

RACY = Scenario(
    (
        Script(enter_delay=1, open_failure=OpenFailure.CRASH, open_after=1, exit_delay=1),
        Script(enter_delay=1, open_failure=OpenFailure.FAIL_AFTER, open_after=2, nursery=True),
        Script(enter_delay=2, exit_fault=Fault.GROUP, suppress=True),
    ),
    Body(delay=1, ending=Ending.ERROR, spawn=1, cleanup=1),
    cancel_at=2,
    seed=7,
)


def trace(outcome: Outcome) -> list[object]:
    """What happened, in order, without object identities."""

    def text(exc: BaseException | None) -> str:
        return re.sub(r" at 0x[0-9a-f]+", "", repr(exc))

    events: list[object] = [text(outcome.raised), outcome.timeline.seq]
    for cm in outcome.cms:
        rec = cm.rec
        moments = (rec.enter_start, rec.enter_end, rec.exit_start, rec.exit_end)
        events += [moments, text(rec.seen), text(rec.exit_raised), rec.fired_in]
    return events


def test_a_scenario_runs_the_same_way_every_time() -> None:
    first = trace(run_scenario(RACY))
    assert all(trace(run_scenario(RACY)) == first for _ in range(20))


def test_a_scenario_repr_reproduces_it() -> None:
    namespace = {
        "Scenario": Scenario,
        "Script": Script,
        "Body": Body,
        "Fault": Fault,
        "OpenFailure": OpenFailure,
        "Ending": Ending,
        "Mode": Mode,
    }
    for scenario in [RACY, CRASHES_NEXT_TO_A_NURSERY, *islice(exhaustive(Mode.STACK), 500)]:
        assert eval(repr(scenario), namespace) == scenario


def test_a_scenario_is_checked_when_made() -> None:
    with pytest.raises(ValueError, match="no nursery"):
        Scenario((Script(),), Body(spawn=0))
    with pytest.raises(ValueError, match="no limit"):
        Scenario(mode=Mode.HANDLES, limit=1)
