"""Observers and the ``Timeline``: every phase change, as data and as a chart.

Each async test runs on Trio and on asyncio (``tests/runtime.py``).
"""

from __future__ import annotations

import json
import logging

import pytest
import trio
import trio.testing

from tests import runtime as rt
from tests.examples import example_main, expected_output
from tests.fakes import FakeCM, Log
from trio_parallel_cm import (
    ParallelExitStack,
    PhaseEvent,
    ResourceGraph,
    Retry,
    Timeline,
    parallel_with,
    start_context,
)

pytestmark = pytest.mark.runtimes


async def test_every_phase_change_reaches_the_observer_with_its_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    events: list[PhaseEvent] = []
    error = OSError("refused")
    with pytest.RaisesGroup(OSError):
        async with parallel_with(
            {
                "ok": FakeCM("ok", log, enter_delay=1, exit_delay=2),
                "bad": FakeCM("bad", log, enter_delay=3, enter_error=error),
                "slow": FakeCM("slow", log, enter_delay=5),
            },
            observer=events.append,
        ):
            pass  # pragma: no cover
    seen = sorted((e.time, e.name, e.kind, e.exception) for e in events)
    assert seen == [
        (0, "bad", "enter_started", None),
        (0, "ok", "enter_started", None),
        (0, "slow", "enter_started", None),
        (1, "ok", "entered", None),
        (3, "bad", "enter_failed", error),
        (3, "ok", "exit_started", None),
        (3, "slow", "enter_failed", None),  # cancelled: no failure of its own
        (5, "ok", "exited", None),
    ]


async def test_exit_failures_are_observed(autojump_clock: trio.testing.MockClock) -> None:
    log: Log = []
    events: list[PhaseEvent] = []
    async with rt.open_nursery() as nursery:
        handle = await start_context(
            nursery, FakeCM("c", log, exit_error=KeyError()), observer=events.append
        )
        with pytest.RaisesGroup(KeyError):
            await handle.aclose()
    assert [e.kind for e in events] == ["enter_started", "entered", "exit_started", "exit_failed"]
    assert isinstance(events[-1].exception, KeyError)


async def test_a_failing_observer_is_logged_and_changes_nothing(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    log: Log = []

    def broken(event: PhaseEvent) -> None:
        raise RuntimeError("observer bug")

    cm = FakeCM("c", log)
    with caplog.at_level(logging.ERROR, logger="trio_parallel_cm"):
        async with parallel_with(cm, observer=broken):
            pass
    assert cm.exited == 1
    assert len(caplog.records) == 4
    assert "observer" in caplog.records[0].getMessage()


@pytest.mark.trio_only(reason="the documented example is Trio code (trio.sleep, trio.run)")
async def test_the_documented_timeline_renders_as_documented(
    autojump_clock: trio.testing.MockClock, capsys: pytest.CaptureFixture[str]
) -> None:
    await example_main("timeline")()
    assert capsys.readouterr().out == expected_output("timeline")


async def test_timeline_marks_failures_and_the_critical_path_per_stage(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    timeline = Timeline()
    with pytest.RaisesGroup(KeyError):
        async with ParallelExitStack(observer=timeline) as stack:
            await stack.enter_all(FakeCM("a", log, enter_delay=1), FakeCM("b", log, enter_delay=2))
            await stack.enter(FakeCM("c", log, enter_delay=1, exit_error=KeyError()))
    assert timeline.critical() == ["FakeCM [1.1]", "FakeCM [2.0]"]
    chart = timeline.render(width=20)
    [row] = [line for line in chart.splitlines() if "[2.0]" in line]
    assert row.startswith("* FakeCM [2.0]")
    assert "X|" in row or "X " in row
    assert row.endswith("enter 1.000 s, exit 0.000 s failed")


async def test_chrome_trace_is_json_with_one_track_per_context_manager(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    timeline = Timeline()
    async with parallel_with(
        FakeCM("a", log, enter_delay=1), FakeCM("b", log, exit_delay=2), observer=timeline
    ):
        pass
    trace = json.loads(json.dumps(timeline.to_chrome_trace()))
    names = {e["tid"]: e["args"]["name"] for e in trace["traceEvents"] if e["ph"] == "M"}
    assert names == {1: "FakeCM [0]", 2: "FakeCM [1]"}
    slices = sorted(
        (e["tid"], e["cat"], e["ts"], e["dur"]) for e in trace["traceEvents"] if e["ph"] == "X"
    )
    start = slices[0][2]
    assert [(tid, cat, ts - start, dur) for tid, cat, ts, dur in slices] == [
        (1, "enter", 0, 1e6),
        (1, "exit", 1e6, 0),
        (2, "enter", 0, 0),
        (2, "exit", 1e6, 2e6),
    ]


def test_an_empty_timeline_renders_a_placeholder() -> None:
    assert Timeline().render() == "(no events)"
    assert Timeline().to_chrome_trace() == {"traceEvents": [], "displayTimeUnit": "ms"}


async def test_a_cancelled_enter_is_not_drawn_as_a_failure(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    timeline = Timeline()
    with pytest.RaisesGroup(OSError):
        async with parallel_with(
            {
                "ok": FakeCM("ok", log),
                "bad": FakeCM("bad", log, enter_delay=1, enter_error=OSError()),
                "slow": FakeCM("slow", log, enter_delay=5),
            },
            observer=timeline,
        ):
            pass  # pragma: no cover
    rows = {line.split(" [")[0].strip(" *"): line for line in timeline.render(20).splitlines()}
    assert rows["bad"].endswith("enter 1.000 s failed")
    assert "X|" in rows["bad"]
    assert rows["slow"].endswith("enter 1.000 s cancelled")
    assert "/|" in rows["slow"]
    # The body never ran: nothing held it back.
    assert timeline.critical() == []
    assert "*" not in "".join(line[0] for line in rows.values())


def graph_of(log: Log, timeline: Timeline) -> ResourceGraph:
    """config (1 s) <- db (2 s), cache (1 s) <- app (1 s)."""
    graph = ResourceGraph(observer=timeline)
    config = graph.add(lambda: FakeCM("config", log, enter_delay=1), name="config")
    db = graph.add(lambda _: FakeCM("db", log, enter_delay=2), config, name="db")
    cache = graph.add(lambda _: FakeCM("cache", log, enter_delay=1), config, name="cache")

    def open_app(db: str, cache: str) -> FakeCM:
        return FakeCM("app", log, enter_delay=1)

    graph.add(open_app, db, cache, name="app")
    return graph


async def test_in_a_graph_the_critical_path_is_the_chain_that_set_the_start_up(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    timeline = Timeline()
    async with graph_of(log, timeline):
        pass
    # app entered last; it started when db (the slower of its deps) entered; db needed config.
    assert timeline.critical() == ["config [0]", "db [1]", "app [3]"]
    marked = [line[2:].split(" ")[0] for line in timeline.render().splitlines() if line[:1] == "*"]
    assert marked == ["config", "db", "app"]
    app_events = [e for e in timeline.events if e.name == "app"]
    assert {e.deps for e in app_events} == {(1, 2)}


async def test_the_chrome_trace_links_each_node_to_its_dependencies(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    timeline = Timeline()
    async with graph_of(log, timeline):
        pass
    trace = json.loads(json.dumps(timeline.to_chrome_trace()))["traceEvents"]
    tracks = {e["args"]["name"]: e["tid"] for e in trace if e["ph"] == "M"}
    flows = [e for e in trace if e["ph"] in ("s", "f")]
    pairs = {
        (start["tid"], start["ts"], end["tid"], end["ts"])
        for start in flows
        for end in flows
        if start["ph"] == "s" and end["ph"] == "f" and start["id"] == end["id"]
    }
    config, db, cache, app = (
        tracks[f"{n} [{i}]"] for i, n in enumerate(("config", "db", "cache", "app"))
    )
    assert pairs == {
        (config, 1e6, db, 1e6),
        (config, 1e6, cache, 1e6),
        (db, 3e6, app, 3e6),
        (cache, 2e6, app, 3e6),
    }
    assert len(flows) == 8


async def test_a_retried_enter_whose_attempts_failed_alike_says_so(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    timeline = Timeline()
    graph = ResourceGraph(observer=timeline)
    retry = Retry(attempts=3, backoff=0.1, multiplier=1)
    differing = iter([OSError("refused 1"), OSError("refused 2"), OSError("refused 3")])
    graph.add(
        lambda: FakeCM("down", log, enter_error=OSError("refused")),
        retry=retry,
        optional=True,
        name="down",
    )
    graph.add(
        lambda: FakeCM("flaky", log, enter_error=next(differing)),
        retry=retry,
        optional=True,
        name="flaky",
    )
    async with graph:
        pass
    rows = {line.split(" [")[0].strip(" *"): line for line in timeline.render(20).splitlines()}
    assert rows["down"].endswith("| enter 0.200 s failed, tolerated, 3 attempts alike")
    assert rows["flaky"].endswith("| enter 0.200 s failed, tolerated, 3 attempts")


async def test_observers_are_called_synchronously_in_the_holder_tasks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The call happens in the task of the context manager it reports, at the phase change,
    # with no checkpoint between: the clock has not moved and the task is that holder's.
    log: Log = []
    cms = {"a": FakeCM("a", log, enter_delay=1, exit_delay=1), "b": FakeCM("b", log)}
    calls: list[tuple[str, str, object, float, float]] = []

    def observer(event: PhaseEvent) -> None:
        task = rt.current_task()
        calls.append((event.name, event.kind, task, event.time, rt.current_time()))

    body_task = rt.current_task()
    async with parallel_with(cms, observer=observer):
        assert rt.current_task() is body_task
    for name, kind, task, at, now in calls:
        assert task is cms[name].enter_task is cms[name].exit_task, (name, kind)
        assert task is not body_task
        assert at == now
    assert {(name, kind) for name, kind, *_ in calls} == {
        (name, kind)
        for name in cms
        for kind in ("enter_started", "entered", "exit_started", "exited")
    }
