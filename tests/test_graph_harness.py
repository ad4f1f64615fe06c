"""``ResourceGraph`` under fault injection: small graphs exhaustively, larger ones by hypothesis.

The oracle is ``tests/graph_harness.py``.  ``TPCM_FUZZ_EXAMPLES`` and ``TPCM_FUZZ_SEED`` size
and seed the hypothesis part, as for ``tests/test_harness.py`` (``make fuzz``).
"""

from __future__ import annotations

import faulthandler
import itertools
import sys
from collections.abc import Iterator
from typing import Any

import attrs
import trio
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import HANG_SECONDS
from tests.graph_harness import GraphOutcome, GraphScenario, NodeScript, check_graph, run_graph
from tests.harness.exceptions import leaves, members
from tests.harness.explore import fuzz

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup


FAULTS = ("enter_error", "crash", "exit_error", "suppress", "optional_down", "flaky")


def faulted(script: NodeScript, fault: str) -> NodeScript:
    if fault == "crash":
        return attrs.evolve(script, crash_at=script.enter_delay + 1.5)
    if fault == "optional_down":  # an optional node that never enters
        return attrs.evolve(script, optional=True, enter_error=True)
    if fault == "flaky":  # enters on its third and last attempt
        return attrs.evolve(script, retry=3, failing_attempts=2)
    flags: dict[str, Any] = {fault: True}
    return attrs.evolve(script, **flags)


def optional_closure(nodes: list[NodeScript]) -> list[NodeScript]:
    """What needs an optional node is optional too (``add`` refuses it otherwise)."""
    for i, node in enumerate(nodes):
        if not node.optional and any(nodes[d].optional for d in node.deps):
            nodes[i] = attrs.evolve(node, optional=True)
    return nodes


def small_graphs() -> Iterator[GraphScenario]:
    """Every graph of four nodes, with no fault or one, and a body that raises or not."""
    shapes = itertools.product(
        [(), (0,)],
        [(), (0,), (1,), (0, 1)],
        [(), (0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2)],
    )
    for deps1, deps2, deps3 in shapes:
        base = (
            NodeScript(enter_delay=1, exit_delay=1),
            NodeScript(deps1, 2, exit_delay=1),
            NodeScript(deps2, 1, exit_delay=2),
            NodeScript(deps3, 1, exit_delay=1),
        )
        placements = [None, *itertools.product(range(4), FAULTS)]
        for placement, body_error in itertools.product(placements, [False, True]):
            nodes = list(base)
            if placement is not None:
                index, fault = placement
                nodes[index] = faulted(nodes[index], fault)
            nodes = optional_closure(nodes)
            yield GraphScenario(tuple(nodes), body_delay=2, body_error=body_error)


def problems_of(scenario: GraphScenario) -> list[str]:
    """Run ``scenario`` and check it."""
    # The suite's watchdog is per test; a long exploration re-arms it per scenario.
    faulthandler.dump_traceback_later(HANG_SECONDS, exit=True, file=sys.stderr)
    return check_graph(scenario, run_graph(scenario))


def report(failures: list[tuple[GraphScenario, list[str]]], total: int) -> str:
    lines = [f"{len(failures)} of {total} graph scenarios break an invariant:"]
    for scenario, problems in failures[:10]:
        lines.append(repr(scenario))
        lines += [f"    - {problem}" for problem in problems]
    return "\n".join(lines)


def test_every_small_graph_keeps_every_guarantee() -> None:
    failures: list[tuple[GraphScenario, list[str]]] = []
    total = 0
    for scenario in small_graphs():
        total += 1
        problems = problems_of(scenario)
        if problems:
            failures.append((scenario, problems))
    assert not failures, report(failures, total)
    assert total == 64 * (1 + 4 * len(FAULTS)) * 2


RARE = st.sampled_from([False, False, False, False, True])


@st.composite
def node_scripts(draw: st.DrawFn, index: int) -> NodeScript:
    deps = tuple(d for d in range(index) if draw(st.sampled_from([False, True, False])))
    enter_delay = draw(st.integers(0, 2))
    crash = draw(RARE)
    retry = draw(st.sampled_from([None, None, 2, 3]))
    return NodeScript(
        deps=deps,
        enter_delay=enter_delay,
        enter_error=draw(RARE),
        crash_at=enter_delay + draw(st.sampled_from([0.5, 1.5, 3.5])) if crash else None,
        exit_delay=draw(st.integers(0, 2)),
        exit_error=draw(RARE),
        suppress=draw(RARE),
        optional=draw(RARE),
        retry=retry,
        failing_attempts=0 if retry is None else draw(st.integers(0, retry)),
    )


@st.composite
def graph_scenarios(draw: st.DrawFn) -> GraphScenario:
    size = draw(st.integers(1, 6))
    nodes = optional_closure([draw(node_scripts(index)) for index in range(size)])
    cancel = draw(st.sampled_from([None, None, None, 0.25, 1.25, 3.25, 5.25]))
    budget = draw(st.sampled_from([None, None, None, 0.6, 1.6, 2.6]))
    return GraphScenario(
        tuple(nodes),
        body_delay=draw(st.integers(0, 3)),
        body_error=draw(st.booleans()),
        cancel_at=cancel,
        limit=draw(st.sampled_from([None, None, None, 1, 2])),
        shutdown_timeout=budget,
    )


@fuzz
@given(graph_scenarios())
def test_fuzz_resource_graph(scenario: GraphScenario) -> None:
    problems = problems_of(scenario)
    assert not problems, report([(scenario, problems)], 1)


def test_the_checkers_see_what_the_new_options_must_never_do() -> None:
    # A node retried after the caller's cancellation, an exit that outlived the budget, a
    # tolerated failure raised: each tampered record breaks its own guarantee.
    flaky = NodeScript(enter_delay=1, retry=3, failing_attempts=3)
    scenario = GraphScenario((flaky,), cancel_at=1.25)
    out = run_graph(scenario)
    assert check_graph(scenario, out) == []
    assert out.records[0].attempts == [0.0, 1.1]
    out.records[0].attempts.append(2.2)
    assert check_graph(scenario, out) == [
        "n0 retried at 2.2, after a cancellation at 1.25",
    ]

    slow = GraphScenario((NodeScript(exit_delay=1),), shutdown_timeout=0.6)
    out = run_graph(slow)
    assert [str(e) for e in leaves(out.raised)] == [
        "n0 did not exit within the shutdown budget (0.6 s for every exit)"
    ]
    assert check_graph(slow, out) == []
    out.records[0].exit_ended = 1.0
    assert check_graph(slow, out) == ["n0 ended its exit at 1.0, after the budget (0.6)"]

    down = GraphScenario((NodeScript(enter_error=True, optional=True),))
    out = run_graph(down)
    assert out.tolerated == ["n0"]
    assert check_graph(down, out) == []
    out.raised = BaseExceptionGroup("raised", out.tolerated_exceptions)
    assert "the tolerated OSError('n0 enter (attempt 1)') was raised" in check_graph(down, out)


# ---- checking the checks of issue 16: tampered records ---------------------------------------

#: n0 crashes at 2.5, while the body runs: its dependent n1 (and n2, on n1) exit first, with
#: the body's outcome, then n0 with its own Cancelled; n3, related to neither, waits for n0
#: and receives its failure.
CRASH_IN_A_CHAIN = GraphScenario(
    (
        NodeScript(enter_delay=1, crash_at=2.5, exit_delay=1),
        NodeScript((0,), enter_delay=1, exit_delay=1),
        NodeScript((1,), exit_delay=1),
        NodeScript(exit_delay=1),
    ),
    body_delay=3,
)

#: n1's exit error supersedes the body's exception: n0 receives it alone; n0 suppressing
#: it suppresses the body's exception too.
SUPERSEDED = GraphScenario((NodeScript(), NodeScript((0,), exit_error=True)), body_error=True)
SUPPRESSES_THE_SUPERSEDED = attrs.evolve(
    SUPERSEDED, nodes=(NodeScript(suppress=True), SUPERSEDED.nodes[1])
)


def checked(scenario: GraphScenario) -> GraphOutcome:
    out = run_graph(scenario)
    assert check_graph(scenario, out) == []
    return out


def test_the_checkers_see_a_failing_node_exit_before_its_dependents() -> None:
    # The old rule: a failing node exited at once, before the body and its dependents.
    out = checked(CRASH_IN_A_CHAIN)
    failing, _, last, _ = out.records
    assert isinstance(failing.seen, trio.Cancelled) and failing.crashed
    assert last.exit_ended_seq is not None and out.body_ended_seq is not None
    failing.exit_started, failing.exit_started_seq = 2.5, out.body_ended_seq - 1
    problems = check_graph(CRASH_IN_A_CHAIN, out)
    assert "n0 began to exit at 2.5, before the body ended" in problems
    assert "n0 began to exit before its dependent n2 had exited" in problems
    assert "n0 began to exit at 2.5, not 4.5" in problems


def test_the_checkers_see_a_free_node_exit_before_the_failing_one() -> None:
    out = checked(CRASH_IN_A_CHAIN)
    failing, free = out.records[0], out.records[3]
    assert failing.exit_ended_seq is not None and free.exit_started == failing.exit_ended
    free.exit_started_seq = failing.exit_ended_seq - 1
    assert "n3 began to exit before n0, failing as the exit began, had exited" in check_graph(
        CRASH_IN_A_CHAIN, out
    )


def test_the_checkers_want_the_deliveries_around_a_failing_node() -> None:
    out = checked(CRASH_IN_A_CHAIN)
    failing, dependent, _, free = out.records
    assert dependent.seen is None and free.seen is failing.exit_raised
    failing.seen, free.seen = None, None
    problems = check_graph(CRASH_IN_A_CHAIN, out)
    assert "n0 received None, not its own Cancelled" in problems
    assert f"n3 received None, not {failing.exit_raised!r}" in problems


def test_the_checkers_want_the_newest_exception_not_the_old_group() -> None:
    out = checked(SUPERSEDED)
    dependency, dependent = out.records
    assert out.body_exc is not None and dependent.exit_raised is not None
    assert dependency.seen is dependent.exit_raised
    dependency.seen = group = BaseExceptionGroup("old", [out.body_exc, dependent.exit_raised])
    assert f"n0 received {group!r}, not KeyError('n1 exit')" in check_graph(SUPERSEDED, out)


def test_the_checkers_want_the_superseded_suppressed_too() -> None:
    out = checked(SUPPRESSES_THE_SUPERSEDED)
    assert out.raised is None and out.body_exc is not None
    out.raised = BaseExceptionGroup("the body raised", [out.body_exc])
    assert "LookupError('body') appears 1 times in what was raised, not 0" in check_graph(
        SUPPRESSES_THE_SUPERSEDED, out
    )


def test_the_checkers_want_one_flat_group_in_node_order() -> None:
    scenario = GraphScenario((NodeScript(exit_error=True), NodeScript(exit_error=True)))
    out = checked(scenario)
    inner = members(out.raised)
    assert inner is not None
    out.raised = BaseExceptionGroup("reversed", inner[::-1])
    assert (
        "the group's members come from [1, 0], not the body first, then node order"
        in check_graph(scenario, out)
    )


def test_the_checkers_see_a_body_run_after_a_crash_while_entering() -> None:
    out = checked(CRASH_IN_A_CHAIN)
    out.records[0].crashed_seq = 0  # (it crashed at 2.5, while the body ran)
    assert "the body ran, though n0 failed while open before the others had entered" in check_graph(
        CRASH_IN_A_CHAIN, out
    )
