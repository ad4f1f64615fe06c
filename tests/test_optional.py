"""Optional ``ResourceGraph`` nodes: an enter failure the graph goes on without (issue 12).

Each async test runs on Trio and on asyncio (``tests/runtime.py``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import pytest
import trio
import trio.testing

from tests import runtime as rt
from tests.fakes import FakeCM, Log, crashes_while_open, events, members, notes
from trio_parallel_cm import (
    ContextFailure,
    ResourceGraph,
    Timeline,
    format_failures,
)

pytestmark = pytest.mark.runtimes


def _enter_error_line() -> int:
    """Where a ``FakeCM`` raises its enter error (the reports name that line)."""
    source, first = inspect.getsourcelines(FakeCM.__aenter__)
    return first + next(i for i, line in enumerate(source) if "raise self.enter_error" in line)


ENTER_ERROR_LINE = _enter_error_line()


def returning(cm: FakeCM) -> object:
    """A factory of ``cm`` (whatever its dependencies hold), named after it."""

    def factory(*values: object) -> FakeCM:
        return cm

    factory.__name__ = cm.name
    return factory


async def test_an_optional_node_that_fails_to_enter_is_recorded_not_raised(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    refused = ConnectionRefusedError("search is down")
    db = FakeCM("db", log, exit_delay=1)
    search = FakeCM("search", log, enter_delay=1, enter_error=refused)
    timeline = Timeline()
    graph = ResourceGraph(observer=timeline)
    db_node = graph.add(lambda: db, name="db")
    search_node = graph.add(lambda: search, name="search", optional=True)
    async with graph as resources:
        assert resources[db_node] == "db"
        assert db_node in resources
        assert search_node not in resources
        assert resources.get(search_node) is None
        with pytest.raises(KeyError, match="search is optional and did not enter") as missing:
            resources[search_node]
        assert missing.value.__cause__ is refused
        assert list(resources) == [db_node]
        assert len(resources) == 1
        [failure] = resources.failures
        assert failure == ContextFailure("search", 1, "entering", refused, 1.0)
        assert notes(refused) == ["search (position 1) failed while entering"]
        assert resources.skipped == ()
    assert db.seen is None  # the others exit as if it had never been there
    assert not db.exit_cancelled
    assert search.exited == 0
    assert format_failures(resources.failures) == (
        "search (position 1) failed while entering after 1.000 s: "
        f"ConnectionRefusedError: search is down [fakes.py:{ENTER_ERROR_LINE} in __aenter__]"
    )
    assert "failed, tolerated" in timeline.render()
    # The body waited for its verdict: it held the body back.
    assert timeline.critical() == ["search [1]"]


async def test_what_needs_an_optional_node_that_did_not_enter_is_skipped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    made: list[str] = []
    timeline = Timeline()
    graph = ResourceGraph(observer=timeline)
    config = graph.add(lambda: FakeCM("config", log), name="config")
    slow = FakeCM("cache", log, enter_delay=2, enter_error=OSError("cache is down"))
    cache = graph.add(lambda config: slow, config, name="cache", optional=True)

    def open_metrics(cache: str) -> FakeCM:  # pragma: no cover  # never called
        made.append("metrics")
        return FakeCM("metrics", log)

    metrics = graph.add(open_metrics, cache, optional=True)
    report = graph.add(
        lambda metrics, config: FakeCM("report", log), metrics, config, optional=True
    )
    app = graph.add(lambda config: FakeCM("app", log), config, name="app")
    async with graph as resources:
        assert rt.current_time() == 2  # the body waited for the optional node's verdict
        assert made == []
        assert resources.skipped == (metrics, report)
        assert [f.name for f in resources.failures] == ["cache"]
        for skipped in (metrics, report):
            assert skipped not in resources
            with pytest.raises(KeyError, match="was skipped") as missing:
                resources[skipped]
            assert missing.value.__cause__ is slow.enter_error
        assert list(resources) == [config, app]
    assert ("report", "enter") not in events(log)
    kinds = [(e.name, e.kind) for e in timeline.events if e.kind == "skipped"]
    assert kinds == [("open_metrics", "skipped"), ("<lambda>", "skipped")]
    assert "skipped" in timeline.render()


async def test_an_optional_nodes_enter_timeout_and_factory_failures_are_tolerated(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []

    def broken() -> FakeCM:
        raise LookupError("no such host")

    graph = ResourceGraph()
    graph.add(
        lambda: FakeCM("slow", log, enter_delay=10), name="slow", optional=True, enter_timeout=1
    )
    graph.add(broken, optional=True)
    graph.add(lambda: 42, name="answer", optional=True)  # type: ignore[arg-type,return-value]  # pyright: ignore[reportArgumentType]
    async with graph as resources:
        assert len(resources) == 0
        assert [(f.name, type(f.exception)) for f in resources.failures] == [
            ("slow", rt.too_slow()),
            ("broken", LookupError),
            ("answer", TypeError),
        ]
        assert rt.current_time() == 1


async def test_what_is_never_tolerated(autojump_clock: trio.testing.MockClock) -> None:
    log: Log = []
    # A failure while open cancels the body, optional or not.
    graph = ResourceGraph()
    graph.add(lambda: crashes_while_open(log, "worker", 1, ValueError("crash")), optional=True)
    with pytest.RaisesGroup(pytest.RaisesGroup(ValueError)) as caught:
        async with graph:
            await rt.sleep(5)
    assert notes(members(caught.value)[0]) == ["<lambda> (position 0) failed while open"]
    # An exit failure is raised.
    graph = ResourceGraph()
    failing = FakeCM("flush", log, exit_error=OSError("flush failed"))
    graph.add(lambda: failing, name="flush", optional=True)
    with pytest.RaisesGroup(OSError):
        async with graph:
            pass
    # A KeyboardInterrupt while entering is raised.
    graph = ResourceGraph()
    graph.add(lambda: FakeCM("ki", log, enter_error=KeyboardInterrupt()), name="ki", optional=True)
    graph.add(lambda: FakeCM("other", log), name="other")
    with pytest.RaisesGroup(KeyboardInterrupt):
        async with graph:
            pytest.fail("the body ran")  # pragma: no cover


@rt.OUTER_CANCELLATIONS
async def test_an_outer_cancellation_is_the_callers_unwrapped(
    autojump_clock: trio.testing.MockClock, deadline: Callable[[float], rt.Deadline]
) -> None:
    log: Log = []
    graph = ResourceGraph()
    graph.add(lambda: FakeCM("pending", log, enter_delay=5), name="pending", optional=True)
    quick = FakeCM("quick", log)
    graph.add(lambda: quick, name="quick")
    seen: list[BaseException] = []
    with deadline(1) as scope:
        try:
            async with graph:
                pytest.fail("the body ran")  # pragma: no cover
        except BaseException as exc:
            seen.append(exc)
            raise
    assert scope.cancelled_caught
    assert [type(e) for e in seen] == [rt.cancelled()]
    assert ("pending", "enter cancelled") in events(log)
    assert quick.exited == 1
    assert isinstance(quick.seen, rt.cancelled())
    assert rt.current_time() == 1


async def test_a_required_failure_still_fails_the_graph_with_optional_nodes_around(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    graph = ResourceGraph()
    optional = FakeCM("maybe", log, enter_delay=2)
    graph.add(lambda: optional, name="maybe", optional=True)
    graph.add(
        lambda: FakeCM("db", log, enter_delay=1, enter_error=OSError("db is down")), name="db"
    )
    with pytest.RaisesGroup(OSError) as caught:
        async with graph:
            pytest.fail("the body ran")  # pragma: no cover
    assert notes(members(caught.value)[0]) == ["db (position 1) failed while entering"]
    assert ("maybe", "enter cancelled") in events(log)


def test_a_node_needing_an_optional_one_must_be_optional() -> None:
    graph = ResourceGraph()
    cache = graph.add(lambda: FakeCM("cache", []), name="cache", optional=True)
    with pytest.raises(ValueError, match=r"dependency 0 \(cache\) is optional.*optional=True too"):
        graph.add(lambda cache: FakeCM("app", []), cache, name="app")
    with pytest.raises(TypeError, match="optional must be True or False, not 1"):
        graph.add(lambda: FakeCM("x", []), optional=1)  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]
    assert repr(graph).startswith("<ResourceGraph(cache) at ")  # nothing was added


async def test_the_failures_render_for_people(autojump_clock: trio.testing.MockClock) -> None:
    log: Log = []
    graph = ResourceGraph()
    graph.add(lambda: FakeCM("a", log, enter_error=OSError("a is down")), name="a", optional=True)
    graph.add(lambda: FakeCM("b", log, enter_error=OSError("b is down")), name="b", optional=True)
    async with graph as resources:
        pass
    assert format_failures(resources.failures).splitlines() == [
        "a (position 0) failed while entering after 0.000 s: OSError: a is down "
        f"[fakes.py:{ENTER_ERROR_LINE} in __aenter__]",
        "b (position 1) failed while entering after 0.000 s: OSError: b is down "
        f"[fakes.py:{ENTER_ERROR_LINE} in __aenter__]",
    ]


async def test_an_optional_node_entering_as_its_enter_timeout_passes_exits_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Its __aenter__ cannot be interrupted and returns after the deadline: it entered, too
    # late, so it exits at once with its TooSlowError, which the graph tolerates.
    log: Log = []
    seen: list[object] = []

    class Uninterruptible(FakeCM):
        async def __aenter__(self) -> str:
            with rt.CancelScope(shield=True):
                await rt.sleep(3)
            return "late"

        async def __aexit__(self, *exc_info: object) -> bool:
            seen.extend((rt.current_time(), exc_info[1]))
            return False

    graph = ResourceGraph()
    late = graph.add(lambda: Uninterruptible("late", log), optional=True, enter_timeout=2)
    other_cm = FakeCM("other", log)
    other = graph.add(lambda: other_cm)
    async with graph as resources:
        assert late not in resources and resources[other] == "other"
        [failure] = resources.failures
        assert isinstance(failure.exception, rt.too_slow())
        # It exited before the body started, with its own failure.
        assert seen == [3, failure.exception]
        assert rt.current_time() == 3
