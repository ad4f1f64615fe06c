"""Retries of a ``ResourceGraph`` node's enter (issue 12).

Each async test runs on Trio and on asyncio (``tests/runtime.py``).
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from tests import runtime as rt
from tests.fakes import FakeCM, Log, events, members, notes
from trio_parallel_cm import PhaseEvent, ResourceGraph, Retry, Timeline

pytestmark = pytest.mark.runtimes


class Flaky:
    """A factory whose first ``failures`` context managers fail to enter."""

    def __init__(self, log: Log, failures: int, error: type[BaseException] = OSError) -> None:
        self.log, self.failures, self.error = log, failures, error
        self.made: list[FakeCM] = []
        self.__name__ = "flaky"

    def __call__(self, *values: object) -> FakeCM:
        attempt = len(self.made) + 1
        failing = attempt <= self.failures
        cm = FakeCM(
            f"attempt {attempt}",
            self.log,
            enter_delay=0.05,
            enter_error=self.error(f"refused {attempt}") if failing else None,
        )
        self.made.append(cm)
        return cm


async def test_each_attempt_enters_a_new_context_manager_after_a_growing_wait(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    flaky = Flaky(log, failures=2)
    timeline = Timeline()
    graph = ResourceGraph(observer=timeline)
    node = graph.add(flaky, retry=Retry(attempts=3, backoff=0.1, multiplier=2))
    async with graph as resources:
        assert resources[node] == "attempt 3"
        # 0.05 enter, 0.1 wait, 0.05 enter, 0.2 wait, 0.05 enter.
        assert rt.current_time() == pytest.approx(0.45)
    assert [cm.entered for cm in flaky.made] == [0, 0, 1]
    assert [cm.exited for cm in flaky.made] == [0, 0, 1]  # a failed __aenter__: no __aexit__
    retried = [e for e in timeline.events if e.kind == "enter_retried"]
    assert [(e.attempt, str(e.exception)) for e in retried] == [(1, "refused 1"), (2, "refused 2")]
    assert [e.time for e in retried] == pytest.approx([0.05, 0.2])
    assert [e.kind for e in timeline.events if e.kind.startswith("enter")] == [
        "enter_started",
        "enter_retried",
        "enter_retried",
        "entered",
    ]
    chart = timeline.render()
    assert "3 attempts" in chart
    [bar] = [line for line in chart.splitlines() if "flaky" in line]
    assert bar.split("|")[1].count("r") == 2  # one mark per retried attempt, in the bar
    assert "r retried" in chart
    instants = [e for e in timeline.to_chrome_trace()["traceEvents"] if e["ph"] == "i"]
    assert [e["name"] for e in instants] == ["retried", "retried"]


async def test_when_every_attempt_fails_the_failure_is_a_group_of_all_of_them(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    flaky = Flaky(log, failures=3, error=ConnectionRefusedError)
    graph = ResourceGraph()
    graph.add(flaky, retry=Retry(attempts=3, backoff=0.1))
    with pytest.RaisesGroup(
        pytest.RaisesGroup(
            ConnectionRefusedError,
            ConnectionRefusedError,
            ConnectionRefusedError,
            match="^3 attempts failed",
        )
    ) as caught:
        async with graph:
            pytest.fail("the body ran")  # pragma: no cover
    [attempts] = members(caught.value)
    assert notes(attempts) == ["flaky (position 0) failed while entering"]
    assert [str(e) for e in members(attempts)] == ["refused 1", "refused 2", "refused 3"]
    assert [cm.enter_error for cm in flaky.made] == members(attempts)  # the very objects


async def test_the_enter_timeout_bounds_every_attempt_and_wait_together(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    flaky = Flaky(log, failures=100)
    graph = ResourceGraph()
    graph.add(flaky, retry=Retry(attempts=10, backoff=1), enter_timeout=2.5)
    with pytest.RaisesGroup(
        pytest.RaisesGroup(OSError, OSError, rt.too_slow(), match="^3 attempts failed")
    ):
        async with graph:
            pytest.fail("the body ran")  # pragma: no cover
    assert rt.current_time() == 2.5  # not 10 attempts
    assert len(flaky.made) == 2  # cancelled in the wait after the second


async def test_what_is_never_retried(autojump_clock: trio.testing.MockClock) -> None:
    log: Log = []
    # An exception that is not one of ``on``: raised after one attempt, alone.
    flaky = Flaky(log, failures=5, error=ValueError)
    graph = ResourceGraph()
    graph.add(flaky, retry=Retry(attempts=5, on=OSError))
    with pytest.RaisesGroup(pytest.RaisesExc(ValueError, match="refused 1")):
        async with graph:
            pytest.fail("the body ran")  # pragma: no cover
    assert len(flaky.made) == 1
    # A KeyboardInterrupt.
    flaky = Flaky(log, failures=5, error=KeyboardInterrupt)
    graph = ResourceGraph()
    graph.add(flaky, retry=Retry(attempts=5))
    with pytest.RaisesGroup(KeyboardInterrupt):
        async with graph:
            pytest.fail("the body ran")  # pragma: no cover
    assert len(flaky.made) == 1
    # A cancellation: the caller's, in the middle of an attempt.
    flaky = Flaky(log, failures=0)
    flaky.made.append(FakeCM("placeholder", log))  # so that the next one is "attempt 2"

    def slow() -> FakeCM:
        cm = FakeCM("slow", log, enter_delay=10)
        flaky.made.append(cm)
        return cm

    graph = ResourceGraph()
    graph.add(slow, retry=Retry(attempts=5))
    with rt.move_on_after(1) as scope:
        async with graph:
            pytest.fail("the body ran")  # pragma: no cover
    assert scope.cancelled_caught
    assert events(log, "slow") == [("slow", "enter"), ("slow", "enter cancelled")]


async def test_an_outer_cancellation_in_an_attempt_or_a_wait_is_not_retried(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # In the middle of an attempt (the last case above) and in the wait after a failed one,
    # by a cancel scope and, on asyncio, by a native Task.cancel (rt.cancel_after; on Trio a
    # cancel scope again).
    log: Log = []
    for deadline in (rt.move_on_after, rt.cancel_after):
        for after, seen in ((0.02, "enter cancelled"), (0.5, "enter failed")):
            log.clear()
            graph = ResourceGraph()
            graph.add(Flaky(log, failures=5), retry=Retry(attempts=5, backoff=1))
            start = rt.current_time()
            with deadline(after) as scope:
                async with graph:
                    pytest.fail("the body ran")  # pragma: no cover
            assert scope.cancelled_caught
            assert events(log) == [("attempt 1", "enter"), ("attempt 1", seen)]
            assert rt.current_time() - start == pytest.approx(after)


async def test_an_optional_node_that_never_enters_after_its_retries_is_left_out(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    events_seen: list[PhaseEvent] = []
    graph = ResourceGraph(observer=events_seen.append)
    node = graph.add(Flaky(log, failures=9), retry=Retry(attempts=2, backoff=0), optional=True)
    async with graph as resources:
        assert node not in resources
        [failure] = resources.failures
        assert type(failure.exception) is ExceptionGroup
        assert str(failure.exception) == "2 attempts failed (2 sub-exceptions)"
    assert [e.kind for e in events_seen] == ["enter_started", "enter_retried", "enter_failed"]
    assert all(e.optional for e in events_seen)


async def test_a_graph_wide_retry_retries_every_node_roots_and_dependents(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    root, dependent = Flaky(log, failures=2), Flaky(log, failures=1)
    graph = ResourceGraph(retry=Retry(attempts=3, backoff=0.1, multiplier=2))
    first = graph.add(root)
    second = graph.add(dependent, first)
    async with graph as resources:
        assert (resources[first], resources[second]) == ("attempt 3", "attempt 2")
        # The root: 0.05 enter, 0.1 wait, 0.05, 0.2 wait, 0.05; then the dependent:
        # 0.05 enter, 0.1 wait, 0.05.
        assert rt.current_time() == pytest.approx(0.45 + 0.2)
    assert [len(root.made), len(dependent.made)] == [3, 2]


async def test_a_nodes_own_retry_overrides_the_graphs_and_none_turns_it_off(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    own = Flaky(log, failures=9)
    graph = ResourceGraph(retry=Retry(attempts=5, backoff=0))
    graph.add(own, retry=Retry(attempts=2, backoff=0), optional=True)
    async with graph as resources:
        [failure] = resources.failures
        assert str(failure.exception) == "2 attempts failed (2 sub-exceptions)"
    assert len(own.made) == 2
    # retry=None: one attempt, whatever the graph's (which would have entered it on the
    # second); its failure is that attempt's exception alone.
    once = Flaky(log, failures=1, error=ConnectionRefusedError)
    graph = ResourceGraph(retry=Retry(attempts=5, backoff=0))
    graph.add(once, retry=None)
    with pytest.RaisesGroup(pytest.RaisesExc(ConnectionRefusedError, match="^refused 1")):
        async with graph:
            pytest.fail("the body ran")  # pragma: no cover
    assert len(once.made) == 1


async def test_a_group_is_retried_only_if_every_exception_in_it_is(
    autojump_clock: trio.testing.MockClock,
) -> None:
    retry = Retry(on=(ConnectionError, TimeoutError))
    assert retry.retries(ExceptionGroup("g", [ConnectionResetError(), TimeoutError()]))
    assert not retry.retries(ExceptionGroup("g", [ConnectionResetError(), ValueError()]))
    cancelled = rt.loop().cancelled("by a scope")  # trio.Cancelled, or asyncio's
    assert not retry.retries(BaseExceptionGroup("g", [ConnectionResetError(), cancelled]))
    assert not retry.retries(KeyboardInterrupt())


def test_the_waits_grow_to_their_cap_and_jitter_stays_within_its_fraction() -> None:
    retry = Retry(attempts=6, backoff=0.5, multiplier=3, max_backoff=5)
    assert [retry.delay(n) for n in range(1, 6)] == [0.5, 1.5, 4.5, 5, 5]
    jittery = Retry(backoff=1, multiplier=1, jitter=0.25)
    waits = [jittery.delay(1) for _ in range(200)]
    assert all(0.75 <= wait <= 1.25 for wait in waits)
    assert len(set(waits)) > 1


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"attempts": 0}, ValueError, "Retry attempts must be at least 1, not 0"),
        ({"attempts": 2.5}, TypeError, "Retry attempts must be an int, not 2.5"),
        ({"backoff": -1}, ValueError, "Retry backoff must be at least 0, not -1"),
        ({"multiplier": 0.5}, ValueError, "Retry multiplier must be at least 1, not 0.5"),
        ({"max_backoff": float("nan")}, ValueError, "Retry max_backoff must be at least 0"),
        ({"jitter": 2}, ValueError, "Retry jitter must be a fraction from 0 to 1, not 2"),
        ({"backoff": "1"}, TypeError, "Retry backoff must be a number"),
        ({"on": KeyboardInterrupt}, TypeError, "Retry on must be Exception subclasses"),
        ({"on": (OSError, 3)}, TypeError, "not 3"),
    ],
)
def test_a_bad_retry_is_refused_when_made(
    options: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        Retry(**options)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


def test_a_retry_of_the_wrong_type_is_refused_by_add() -> None:
    graph = ResourceGraph()
    with pytest.raises(TypeError, match="retry must be a Retry record or None, not 3"):
        graph.add(lambda: FakeCM("x", []), retry=3)  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]
    assert Retry(on=OSError).on == (OSError,)
