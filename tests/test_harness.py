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
from tests.harness.explore import FUZZ_EXAMPLES, fuzz
from tests.harness.oracle import GUARANTEES

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
    # caller's Cancelled is never a member of the group raised.
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
    # One crashing at the very instant the body ends, its task not yet run: it fails
    # after the body, and the others exit at once (not after its cleanup, with nothing).
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
    # Not a library bug (an oracle tie): the stage waits for cm0's cleanup (it ended by
    # itself while cm2 entered) until 1.5, the very instant cm1 ends by itself too: the
    # stage may wait for cm1's cleanup as well (the body then starts at 2.5), or not.
    "settle-tie-with-a-second-interruption": Scenario(
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


@pytest.mark.parametrize("name", sorted(REGRESSIONS))
def test_fixed_bug_stays_fixed(name: str) -> None:
    scenario = REGRESSIONS[name]
    assert check(scenario, run_scenario(scenario), frozenset()) == []


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
