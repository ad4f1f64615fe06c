"""Exploring: the exhaustive small space, the hypothesis strategies and their settings."""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final, TypeVar

import attrs
from hypothesis import HealthCheck, seed, settings
from hypothesis import strategies as st

from tests.harness.loops import ASYNCIO, TRIO
from tests.harness.scenario import Body, Close, Ending, Fault, Mode, OpenFailure, Scenario, Script

F = TypeVar("F", bound=Callable[..., Any])

#: Examples per fuzz test (``make fuzz`` runs 100000), and a seed to explore other
#: examples than the derandomized ones CI runs.
FUZZ_EXAMPLES: Final = int(os.environ.get("TPCM_FUZZ_EXAMPLES", "200"))
FUZZ_SEED: Final = os.environ.get("TPCM_FUZZ_SEED")


def fuzz(test: F) -> F:
    """Hypothesis settings for the fuzz tests: reproducible in CI, sized by the environment."""
    configured = settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        derandomize=FUZZ_SEED is None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )(test)
    return configured if FUZZ_SEED is None else seed(int(FUZZ_SEED))(configured)


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
    # (It swallows its own Cancelled: its __aexit__ returns 1, a truthy non-bool.)
    "move_on while open": Script(
        enter_delay=1, open_failure=OpenFailure.MOVE_ON, open_after=1.5, returns_one=True
    ),
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


def on_asyncio(scenario: Scenario, *, native: bool = False) -> Scenario:
    """``scenario`` on asyncio (``native``: its outer cancellation a ``Task.cancel``).

    A ``KeyboardInterrupt`` that a fake's background task raises becomes a ``ValueError``
    there: asyncio lets a ``KeyboardInterrupt`` raised by a task out of the event loop
    itself, after which nothing in the loop can be closed
    (``trio_parallel_cm/_runtime/_asyncio.py``).
    """
    scripts = tuple(_crash_on_asyncio(script) for script in scenario.scripts)
    # (Not for handles: their nursery is the user's anyio task group, whose own handling
    # of a native cancellation decides what leaves it; a body's exception may be lost
    # there with no context manager involved.)
    native = native and scenario.cancel_at is not None and scenario.mode is not Mode.HANDLES
    cancel_at = scenario.cancel_at
    if cancel_at is not None:
        cancel_at += DEADLINE_LAG_ON_ASYNCIO
    return attrs.evolve(
        scenario, scripts=scripts, cancel_at=cancel_at, runtime=ASYNCIO, native_cancel=native
    )


#: How much later a background task crashes on asyncio: off the grid of the other events.
#: (A task group cancels its host an iteration after its task crashed, where Trio does it
#: in the same step: a crash at the very instant of another event (an enter ending, the
#: body ending) is a tie the models do not weigh on asyncio yet.)  The graph harness
#: moves its crashes by as much.
CRASH_LAG_ON_ASYNCIO: Final = 0.05
#: How much later a deadline fires on asyncio (the outer cancellation's, a fake's
#: ``FAIL_AFTER`` or ``MOVE_ON``): off the grid too.  (asyncio runs the timers of one
#: instant in heap order, where Trio's deadlines fire before any task step of their
#: instant, and anyio skips a task whose awaited future is done: an enter ending at the
#: very instant of a deadline may end first, the cancellation landing an iteration
#: later, after a release: a tie the models do not weigh on asyncio.)
DEADLINE_LAG_ON_ASYNCIO: Final = 0.025


def _crash_on_asyncio(script: Script) -> Script:
    """A crash on asyncio: a ``KeyboardInterrupt`` becomes a ``ValueError`` (see
    ``on_asyncio``), and it comes ``CRASH_LAG_ON_ASYNCIO`` later; a deadline comes
    ``DEADLINE_LAG_ON_ASYNCIO`` later."""
    if script.open_failure in (OpenFailure.FAIL_AFTER, OpenFailure.MOVE_ON):
        return attrs.evolve(script, open_after=script.open_after + DEADLINE_LAG_ON_ASYNCIO)
    if script.open_failure is not OpenFailure.CRASH:
        return script
    later = script.open_after + CRASH_LAG_ON_ASYNCIO
    return attrs.evolve(script, crash_fault=Fault.ERROR, open_after=later)


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
                seed = zlib.crc32(repr((combo, body, cancel_at)).encode()) & 0xFFFF
                # Every other scenario tells an observer (cheap: no scenario more).
                observe = seed % 2 == 1
                yield Scenario(
                    scripts, body, mode, split=1, cancel_at=cancel_at, seed=seed, observe=observe
                )


def _maybe(strategy: st.SearchStrategy[Fault], nones: int = 3) -> st.SearchStrategy[Fault | None]:
    """``None`` most of the time: a scenario is interesting with a few faults, not all."""
    return st.one_of(*[st.none()] * nones, strategy)


DELAYS: Final = st.sampled_from([None, 0, 1, 2, 3])
FAULTS: Final = st.sampled_from([fault for fault in Fault if fault is not Fault.CANCELLED])
#: An exit may also raise a ``Cancelled`` of its own (stray, if its task is not cancelled).
EXIT_FAULTS: Final = st.sampled_from(Fault)


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
        exit_fault=draw(_maybe(EXIT_FAULTS)),
        suppress=draw(st.booleans()),
        returns_one=draw(st.booleans()),
        nursery=draw(st.booleans()),
        scope=draw(st.booleans()),
    )


@st.composite
def scenarios(
    draw: st.DrawFn, modes: Sequence[Mode] = tuple(Mode), runtime: str = TRIO
) -> Scenario:
    """Any :class:`Scenario` with 0 to 5 context managers, in one of ``modes``, on
    ``runtime`` (on asyncio, see ``on_asyncio``)."""
    if runtime == ASYNCIO:
        return on_asyncio(draw(scenarios(modes)), native=draw(st.booleans()))
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
    split = draw(st.integers(0, len(chosen)))
    limit = None if mode is Mode.HANDLES else draw(st.sampled_from([None, None, 1, 2]))
    third = st.one_of(st.none(), st.integers(split, len(chosen)))
    return Scenario(
        chosen,
        body,
        mode,
        split=split,
        third_from=draw(third) if mode is Mode.STACK else None,
        cancel_at=draw(st.sampled_from([None, None, 0, 0.25, 1, 1.5, 2, 2.75, 4.25])),
        limit=limit,
        seed=draw(st.integers(0, 0xFFFF)),
        close=draw(st.sampled_from(Close)) if mode is Mode.HANDLES else Close.ACLOSE,
        observe=draw(st.booleans()),
        # (Tenths: no other event of a run ties with an exit's deadline.)
        exit_timeout=draw(st.sampled_from([None, None, 0.3, 1.3])),
        enter_timeout=None if limit is not None else draw(st.sampled_from([None, None, 0.3, 1.3])),
    )


def report(failures: Sequence[tuple[object, list[str]]], total: int, *, shown: int = 20) -> str:
    """The failing scenarios, each as its repr (``run_scenario(...)`` reproduces a flat
    one), with the problems the oracle found."""
    lines = [f"{len(failures)} of {total} scenarios break an invariant:"]
    for scenario, problems in failures[:shown]:
        lines.append(repr(scenario))
        lines += [f"    - {problem}" for problem in problems]
    return "\n".join(lines)
