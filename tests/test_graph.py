"""``ResourceGraph``: each node enters after its dependencies and exits before them.

Each async test runs on Trio and on asyncio (``tests/runtime.py``).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

from tests import runtime as rt
from tests.fakes import (
    FakeCM,
    Log,
    crashes_while_open,
    ends_while_open,
    events,
    members,
    notes,
    time_of,
)
from tests.harness.running import seed_scheduler
from trio_parallel_cm import (
    Node,
    ParallelExitStack,
    ResourceGraph,
    Resources,
    Retry,
    Timeline,
)

pytestmark = pytest.mark.runtimes


def is_group(exc: BaseException | None) -> bool:
    return isinstance(exc, BaseExceptionGroup)


class Made:
    """A factory of one fake: records the values it was called with, and in which task."""

    def __init__(self, cm: FakeCM) -> None:
        self.cm = cm
        self.calls: list[tuple[Any, ...]] = []
        self.task: object = None
        self.__name__ = cm.name

    def __call__(self, *values: Any) -> FakeCM:
        self.calls.append(values)
        self.task = rt.current_task()
        return self.cm


def diamond(
    log: Log, **options: dict[str, Any]
) -> tuple[ResourceGraph, dict[str, Made], dict[str, Node[str]]]:
    """config <- {db, cache} <- app, with the fakes' options by name."""
    made = {
        name: Made(FakeCM(name, log, **options.get(name, {})))
        for name in ("config", "db", "cache", "app")
    }
    graph = ResourceGraph()
    config = graph.add(made["config"])
    db = graph.add(made["db"], config)
    cache = graph.add(made["cache"], config)
    app = graph.add(made["app"], db, cache)
    return graph, made, {"config": config, "db": db, "cache": cache, "app": app}


async def test_start_up_and_teardown_cost_the_longest_chain_not_the_stages(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    delays: dict[str, dict[str, Any]] = {
        "config": {"enter_delay": 1, "exit_delay": 1},
        "db": {"enter_delay": 2, "exit_delay": 1},
        "cache": {"enter_delay": 1, "exit_delay": 3},
        "app": {"enter_delay": 1, "exit_delay": 1},
    }
    graph, made, nodes = diamond(log, **delays)
    async with graph as resources:
        # config (1) then db (2) then app (1): the longest chain.
        assert rt.current_time() == 4
        assert resources[nodes["app"]] == "app"
    # app (1), then cache (3), then config (1).
    assert rt.current_time() == 4 + 5
    # db and cache start the moment config has entered; app when both have.
    assert time_of(log, "db", "enter") == time_of(log, "cache", "enter") == 1
    assert time_of(log, "app", "enter") == 3
    # db exits as soon as app has exited, not when cache has.
    assert time_of(log, "db", "exit") == time_of(log, "cache", "exit") == 5
    assert time_of(log, "config", "exit") == 8
    # The same resources in stages wait for the slowest of each stage, both ways.
    stage_log: Log = []
    cms = {name: FakeCM(name, stage_log, **delays[name]) for name in delays}
    start = rt.current_time()
    async with ParallelExitStack() as stack:
        await stack.enter(cms["config"])
        await stack.enter_all(cms["db"], cms["cache"])
        await stack.enter(cms["app"])
        assert rt.current_time() - start == 4
    assert rt.current_time() - start == 4 + 5
    # The app was made once, with both of its dependencies' values.
    assert made["app"].calls == [("db", "cache")]


async def test_a_chain_beside_a_slow_node_starts_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    graph = ResourceGraph()
    slow = graph.add(Made(FakeCM("slow", log, enter_delay=5)))
    a = graph.add(Made(FakeCM("a", log, enter_delay=1)))
    b = graph.add(Made(FakeCM("b", log, enter_delay=1)), a)
    async with graph as resources:
        assert rt.current_time() == 5
        assert [resources[n] for n in (slow, a, b)] == ["slow", "a", "b"]
    # In stages, b (stage 2) could start only after slow (stage 1): 6 s, not 5.
    assert time_of(log, "b", "enter") == 1


async def test_each_factory_is_called_in_its_holder_task_with_the_values_of_its_deps() -> None:
    log: Log = []
    graph, made, _ = diamond(log)
    body_task = rt.current_task()
    async with graph:
        pass
    for name, factory in made.items():
        cm = factory.cm
        assert factory.task is cm.enter_task is cm.exit_task, name
        assert cm.enter_task is not body_task
    assert [made[n].calls for n in ("config", "db", "cache", "app")] == [
        [()],
        [("config",)],
        [("config",)],
        [("db", "cache")],
    ]
    assert len({made[n].task for n in made}) == 4


async def test_no_node_enters_before_its_deps_nor_exits_before_its_dependents(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    options = {
        name: {"enter_delay": delay, "exit_delay": delay}
        for name, delay in (("config", 2), ("db", 1), ("cache", 3), ("app", 1))
    }
    graph, _, _ = diamond(log, **options)
    async with graph:
        pass
    order = [(name, event) for name, event in events(log) if event in ("entered", "exit")]
    position = {item: index for index, item in enumerate(order)}
    edges = [("db", "config"), ("cache", "config"), ("app", "db"), ("app", "cache")]
    for node, dep in edges:
        assert position[(dep, "entered")] < position[(node, "entered")]
        assert time_of(log, dep, "exit") >= time_of(log, node, "exited")


async def test_the_nodes_nested_scopes_stay_in_their_own_task() -> None:
    graph = ResourceGraph()
    # A Trio nursery, or on asyncio an anyio task group.
    nursery_node = graph.add(rt.open_nursery)
    done: list[int] = []

    @asynccontextmanager
    async def worker(nursery: Any) -> AsyncGenerator[int, None]:
        nursery.start_soon(rt.checkpoint)
        with rt.CancelScope():
            yield 7
        done.append(1)

    value = graph.add(worker, nursery_node)
    async with graph as resources:
        assert resources[value] == 7
    assert done == [1]


# ---- what each __aexit__ receives -----------------------------------------------------


async def test_along_a_chain_each_exit_receives_what_nested_blocks_would_give() -> None:
    def build(log: Log) -> list[FakeCM]:
        return [
            FakeCM("outer", log),
            FakeCM("middle", log, exit_error=KeyError("middle")),
            FakeCM("inner", log),
        ]

    nested_log: Log = []
    outer, middle, inner = build(nested_log)
    with pytest.raises(KeyError):
        async with outer, middle, inner:
            raise ValueError("body")
    log: Log = []
    cms = build(log)
    graph = ResourceGraph()
    node = graph.add(Made(cms[0]))
    for cm in cms[1:]:
        node = graph.add(Made(cm), node)
    with pytest.RaisesGroup(ValueError, KeyError):
        async with graph:
            raise ValueError("body")
    # inner: the body's exception; middle: the same; outer: middle's failure, the newest
    # (the body's exception is its __context__), as nested blocks give it.
    assert type(cms[2].seen) is type(inner.seen) is ValueError
    assert type(cms[1].seen) is type(middle.seen) is ValueError
    assert type(cms[0].seen) is type(outer.seen) is KeyError
    assert isinstance(getattr(cms[0].seen, "__context__", None), ValueError)


async def test_in_a_diamond_a_suppression_never_reaches_the_common_dependency() -> None:
    log: Log = []
    graph, made, _ = diamond(log, db={"suppress": True})
    body = ValueError("body")
    async with graph:
        raise body
    # app, db and cache receive it; db suppresses it, so config (inside db's block in every
    # nesting order the graph allows) receives nothing of it, although cache let it through.
    assert made["app"].cm.seen is made["db"].cm.seen is made["cache"].cm.seen is body
    assert made["config"].cm.seen is None


async def test_a_suppression_by_an_indirect_dependent_never_reaches_the_dependency() -> None:
    # base <- mid <- top (suppresses), and base <- side: top is inside base's block in every
    # nesting order, so base receives nothing of what top suppressed, though side let it
    # through.
    log: Log = []
    graph = ResourceGraph()
    made = {
        name: Made(FakeCM(name, log, suppress=name == "top"))
        for name in ("base", "mid", "top", "side")
    }
    base = graph.add(made["base"])
    mid = graph.add(made["mid"], base)
    graph.add(made["top"], mid)
    graph.add(made["side"], base)
    body = ValueError("body")
    async with graph:
        raise body
    assert made["top"].cm.seen is made["side"].cm.seen is body
    assert made["mid"].cm.seen is None
    assert made["base"].cm.seen is None


async def test_in_a_diamond_the_common_dependency_receives_the_newest() -> None:
    log: Log = []
    graph, made, _ = diamond(log, db={"exit_error": KeyError("db")})
    body = ValueError("body")
    with pytest.RaisesGroup(ValueError, KeyError) as caught:
        async with graph:
            raise body
    seen = made["config"].cm.seen
    # cache let the body's exception through, db raised over it: in every nesting order
    # config receives db's failure alone (the body's exception is its __context__).
    [_, failure] = members(caught.value)
    assert seen is failure and failure.__context__ is body
    assert members(caught.value)[0] is body  # superseded, not suppressed: it leaves
    assert notes(failure) == ["db (position 1) failed while exiting"]


async def test_several_dependents_failing_deliver_one_group_to_their_dependency() -> None:
    log: Log = []
    graph, made, _ = diamond(
        log, db={"exit_error": KeyError("db")}, cache={"exit_error": OSError("cache")}
    )
    with pytest.RaisesGroup(ValueError, KeyError, OSError) as caught:
        async with graph:
            raise ValueError("body")
    # Neither superseded the other (they failed concurrently): one group, in node order.
    assert members(made["config"].cm.seen) == members(caught.value)[1:]


async def test_two_independent_chains_each_unwind_on_their_own() -> None:
    log: Log = []
    graph = ResourceGraph()
    specs: list[tuple[str, dict[str, Any]]] = [
        ("a1", {}),
        ("a2", {"suppress": True}),
        ("b1", {}),
        ("b2", {"exit_error": OSError("b2")}),
    ]
    made = {name: Made(FakeCM(name, log, **opts)) for name, opts in specs}
    a1 = graph.add(made["a1"])
    graph.add(made["a2"], a1)
    b1 = graph.add(made["b1"])
    graph.add(made["b2"], b1)
    body = ValueError("body")
    with pytest.RaisesGroup(OSError) as caught:
        async with graph:
            raise body
    # a2 suppressed the body's exception: a1 sees nothing, and it does not leave the block;
    # b1 received b2's failure, the newest; b2's failure leaves.
    assert made["a1"].cm.seen is None
    assert made["b1"].cm.seen is members(caught.value)[0]


async def test_a_graph_without_edges_behaves_as_parallel_with() -> None:
    log: Log = []
    graph = ResourceGraph()
    made = [Made(FakeCM(f"cm{i}", log, suppress=i == 1)) for i in range(3)]
    for factory in made:
        graph.add(factory)
    body = ValueError("body")
    async with graph:
        raise body
    assert all(factory.cm.seen is body for factory in made)


async def test_a_chain_graph_and_a_stack_of_single_stages_deliver_the_same() -> None:
    def build(log: Log) -> list[FakeCM]:
        return [
            FakeCM("c0", log),
            FakeCM("c1", log, suppress=True, exit_error=None),
            FakeCM("c2", log, exit_error=KeyError("c2")),
            FakeCM("c3", log),
        ]

    stack_log: Log = []
    stacked = build(stack_log)
    async with ParallelExitStack() as stack:
        for cm in stacked:
            await stack.enter(cm)
        raise ValueError("body")
    log: Log = []
    chained = build(log)
    graph = ResourceGraph()
    node = graph.add(Made(chained[0]))
    for cm in chained[1:]:
        node = graph.add(Made(cm), node)
    async with graph:
        raise ValueError("body")

    def shape(cm: FakeCM) -> object:
        if is_group(cm.seen):
            return [type(e) for e in members(cm.seen)]
        return type(cm.seen)

    assert [shape(cm) for cm in chained] == [shape(cm) for cm in stacked]
    # c1 receives c2's failure alone and suppresses it, and with it the body's exception
    # it superseded: c0 receives nothing, and nothing leaves.
    assert [shape(cm) for cm in chained] == [type(None), KeyError, ValueError, ValueError]


# ---- failures -------------------------------------------------------------------------


async def test_an_enter_failure_cancels_enters_in_flight_and_skips_the_nodes_not_started(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    graph, made, _ = diamond(
        log,
        config={"exit_delay": 1},
        db={"enter_delay": 1, "enter_error": OSError("refused")},
        cache={"enter_delay": 5},
    )
    with pytest.RaisesGroup(OSError) as caught:
        async with graph:
            pytest.fail("the body ran")  # pragma: no cover
    assert notes(members(caught.value)[0]) == ["db (position 1) failed while entering"]
    assert ("cache", "enter cancelled") in events(log)
    assert made["app"].calls == []  # its factory is never called
    # config exits with the failure, uncancelled, after the enters in flight ended.
    assert made["config"].cm.seen is members(caught.value)[0]
    assert not made["config"].cm.exit_cancelled
    assert rt.current_time() == 2


async def test_a_factory_that_raises_or_returns_no_context_manager_fails_its_enter() -> None:
    graph = ResourceGraph()
    log: Log = []
    first = graph.add(Made(FakeCM("first", log)))

    def broken(value: str) -> FakeCM:
        raise LookupError(f"no {value}")

    graph.add(broken, first)
    with pytest.RaisesGroup(LookupError) as caught:
        async with graph:
            pytest.fail("the body ran")  # pragma: no cover
    assert notes(members(caught.value)[0]) == ["broken (position 1) failed while entering"]

    async def open_db() -> None:  # an async function, not a context-manager factory
        pass  # pragma: no cover

    graph = ResourceGraph()
    graph.add(open_db)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    with pytest.RaisesGroup(
        pytest.RaisesExc(TypeError, match=r"^what the factory of open_db returned is a coroutine")
    ):
        async with graph:
            pytest.fail("the body ran")  # pragma: no cover
    graph = ResourceGraph()
    graph.add(lambda: 42, name="answer")  # type: ignore[arg-type,return-value]  # pyright: ignore[reportArgumentType]
    with pytest.RaisesGroup(
        pytest.RaisesExc(
            TypeError,
            match=r"what the factory of answer returned \(42\) does not support the asynchronous "
            r"context manager protocol \(missed __aenter__ and __aexit__ methods\)",
        )
    ):
        async with graph:
            pytest.fail("the body ran")  # pragma: no cover


@pytest.mark.parametrize("seed", range(8))
def test_roots_start_with_the_graph_and_dependents_only_once_their_deps_entered(
    seed: int,
) -> None:
    # Trio runs the roots' tasks in either order (seeded here, as the harness does): a
    # root's factory is called all the same, as parallel_with's arguments are evaluated;
    # the dependent's never, since the enter failure came before its dependency entered.
    log: Log = []
    other, dependent = Made(FakeCM("other", log, enter_delay=1)), Made(FakeCM("late", log))

    def refused() -> FakeCM:
        raise ConnectionRefusedError("refused")

    async def main() -> None:
        graph = ResourceGraph()
        graph.add(refused)
        graph.add(dependent, graph.add(other))
        with pytest.RaisesGroup(ConnectionRefusedError):
            async with graph:
                pytest.fail("the body ran")  # pragma: no cover

    seed_scheduler(seed)
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert other.calls == [()]
    assert ("other", "enter cancelled") in events(log)
    assert dependent.calls == []


async def test_a_failure_while_open_cancels_the_body_and_the_others_exit_with_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    graph = ResourceGraph()
    base = graph.add(Made(FakeCM("base", log)))
    crash = ValueError("crash")
    graph.add(lambda _: crashes_while_open(log, "worker", 1, crash), base, name="worker")
    top = Made(FakeCM("top", log))
    graph.add(top, base)
    with pytest.RaisesGroup(pytest.RaisesGroup(ValueError)) as caught:
        async with graph:
            await rt.sleep_forever()
    [failure] = members(caught.value)
    assert notes(failure) == ["worker (position 1) failed while open"]
    assert top.cm.seen is failure
    assert rt.current_time() == 1


async def test_a_failing_node_exits_after_its_dependents_and_before_the_rest(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # config <- db (crashes at 1) <- app (exit 2 s), and cache <- config on its own.  app,
    # inside db's block in every nesting order, unwinds first with what the body let
    # through; then db; then config, with db's failure.  cache, inside db's block in no
    # nesting order, waits for db too and receives its failure, as the rest of a
    # parallel_with does.
    log: Log = []
    crash = ValueError("crash")
    graph = ResourceGraph()
    made = {name: Made(FakeCM(name, log)) for name in ("config", "cache")}
    app = Made(FakeCM("app", log, exit_delay=2))
    config = graph.add(made["config"])
    db = graph.add(lambda _: crashes_while_open(log, "db", 1, crash), config, name="db")
    graph.add(made["cache"], config)
    graph.add(app, db)
    with pytest.RaisesGroup(pytest.RaisesGroup(ValueError)) as caught:
        async with graph:
            await rt.sleep_forever()
    [failure] = members(caught.value)
    assert app.cm.seen is None and not app.cm.exit_cancelled
    assert time_of(log, "app", "exited") == time_of(log, "db", "exit") == 3
    order = events(log)
    assert order.index(("app", "exited")) < order.index(("db", "exit"))
    assert order.index(("db", "exit")) < order.index(("cache", "exit"))
    assert order.index(("cache", "exited")) < order.index(("config", "exit"))
    assert made["cache"].cm.seen is made["config"].cm.seen is failure


async def test_a_node_failing_while_its_dependents_enter_cancels_them_first(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # db crashes at 1 while app, which needs it, is still entering: app's enter (inside
    # db's block) is cancelled, and quick, which needs it too and has entered, exits
    # before db does; the body never runs, config exits last with the failure.
    log: Log = []
    graph = ResourceGraph()
    config = Made(FakeCM("config", log))
    app = Made(FakeCM("app", log, enter_delay=5))
    quick = Made(FakeCM("quick", log))
    base = graph.add(config)
    db = graph.add(lambda _: crashes_while_open(log, "db", 1, ValueError("crash")), base, name="db")
    graph.add(app, db)
    graph.add(quick, db)
    with pytest.RaisesGroup(
        pytest.RaisesGroup(
            ValueError, check=lambda g: notes(g) == ["db (position 1) failed while open"]
        )
    ) as caught:
        async with graph:
            pytest.fail("the body ran")  # pragma: no cover
    assert ("app", "enter cancelled") in events(log)
    order = events(log)
    assert order.index(("quick", "exited")) < order.index(("db", "exit"))
    assert quick.cm.seen is None
    assert config.cm.seen is members(caught.value)[0]
    assert rt.current_time() == 1


async def test_a_node_ending_by_itself_while_others_enter_fails_the_start_up(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # timer ends by itself at 1 while slow still enters: slow's enter is cancelled, and
    # its entered dependent exits before it; the graph cannot give the body every value.
    log: Log = []
    graph = ResourceGraph()
    timer = graph.add(lambda: ends_while_open(log, "timer", 1), name="timer")
    user = Made(FakeCM("user", log))
    graph.add(user, timer)
    graph.add(Made(FakeCM("slow", log, enter_delay=5)))
    with pytest.RaisesGroup(
        pytest.RaisesExc(
            RuntimeError,
            match="^timer ended by itself while the others were entering",
            check=lambda e: notes(e) == ["timer (position 0) failed while open"],
        )
    ):
        async with graph:
            pytest.fail("the body ran")  # pragma: no cover
    assert ("slow", "enter cancelled") in events(log)
    order = events(log)
    assert order.index(("user", "exited")) < order.index(("timer", "exit"))
    assert rt.current_time() == 1


async def test_an_outer_cancellation_exits_every_node_natively_in_dependency_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    await outer_cancellation_of_a_diamond(rt.move_on_after)


async def test_a_native_outer_cancellation_exits_every_node_in_dependency_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # On asyncio a native Task.cancel (rt.cancel_after), not an anyio scope; on Trio, the
    # test above again.
    await outer_cancellation_of_a_diamond(rt.cancel_after)


async def outer_cancellation_of_a_diamond(deadline: Callable[[float], rt.Deadline]) -> None:
    log: Log = []
    graph, made, _ = diamond(log, app={"exit_delay": 1}, cache={"exit_delay": 1})
    with deadline(2) as scope:
        async with graph:
            await rt.sleep_forever()
    assert scope.cancelled_caught
    for name in ("config", "db", "cache", "app"):
        assert isinstance(made[name].cm.seen, rt.cancelled()), name
    # Nested: the outer cancellation reaches the exits (app and cache are cut short).
    assert made["app"].cm.exit_cancelled
    # (All at the instant of the cancellation: the order shows in the log.)
    order = events(log)
    for node, dep in (("app", "db"), ("app", "cache"), ("db", "config"), ("cache", "config")):
        finished = "exit cancelled" if made[node].cm.exit_cancelled else "exited"
        assert order.index((node, finished)) < order.index((dep, "exit")), (node, dep)


@rt.OUTER_CANCELLATIONS
async def test_an_outer_cancellation_while_the_graph_enters_makes_no_more_nodes(
    autojump_clock: trio.testing.MockClock, deadline: Callable[[float], rt.Deadline]
) -> None:
    # At 2, config and cache have entered and db is entering.
    log: Log = []
    graph, made, _ = diamond(
        log, config={"enter_delay": 1}, db={"enter_delay": 2}, cache={"enter_delay": 0.5}
    )
    start = rt.current_time()
    seen: list[BaseException] = []
    with deadline(2) as scope:
        try:
            async with graph:
                pytest.fail("the body ran")  # pragma: no cover
        except BaseException as exc:
            seen.append(exc)
            raise
    assert scope.cancelled_caught
    assert [type(e) for e in seen] == [rt.cancelled()]
    assert ("db", "enter cancelled") in events(log)
    assert made["app"].calls == []
    for name in ("cache", "config"):
        assert isinstance(made[name].cm.seen, rt.cancelled()), name
    order = events(log)
    assert order.index(("cache", "exit cancelled")) < order.index(("config", "exit"))
    assert rt.current_time() - start == 2


async def test_nodes_have_their_own_timeouts(autojump_clock: trio.testing.MockClock) -> None:
    log: Log = []
    graph = ResourceGraph()
    fast = graph.add(Made(FakeCM("fast", log, exit_delay=5)), exit_timeout=1)
    graph.add(Made(FakeCM("slow", log, enter_delay=5)), fast, enter_timeout=2)
    with pytest.RaisesGroup(
        pytest.RaisesExc(rt.too_slow(), match="^slow did not enter within 2 s"),
        pytest.RaisesExc(rt.too_slow(), match="^fast did not exit within 1 s"),
    ):
        async with graph:
            pytest.fail("the body ran")  # pragma: no cover
    assert rt.current_time() == 2 + 1


async def test_limit_bounds_the_enters_in_flight(autojump_clock: trio.testing.MockClock) -> None:
    log: Log = []
    graph = ResourceGraph(limit=1)
    for name in ("a", "b", "c"):
        graph.add(Made(FakeCM(name, log, enter_delay=1)))
    async with graph:
        assert rt.current_time() == 3


# ---- graph-wide options: defaults for every node ---------------------------------------


async def test_the_graphs_timeouts_apply_to_every_node_that_sets_none(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    graph = ResourceGraph(enter_timeout=2, exit_timeout=1)
    fast = graph.add(Made(FakeCM("fast", log, exit_delay=5)))
    graph.add(Made(FakeCM("slow", log, enter_delay=5)), fast)
    with pytest.RaisesGroup(
        pytest.RaisesExc(rt.too_slow(), match="^slow did not enter within 2 s"),
        pytest.RaisesExc(rt.too_slow(), match="^fast did not exit within 1 s"),
    ):
        async with graph:
            pytest.fail("the body ran")  # pragma: no cover
    assert rt.current_time() == 2 + 1


async def test_a_node_that_sets_some_options_keeps_the_graphs_others(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Each option is resolved on its own: optional=True, retry=None or an exit timeout of
    # its own does not drop the graph's other options.
    log: Log = []
    graph = ResourceGraph(enter_timeout=2, exit_timeout=1)
    maybe = graph.add(Made(FakeCM("maybe", log, enter_delay=5)), optional=True)
    kept = Made(FakeCM("kept", log, exit_delay=3))
    graph.add(kept, exit_timeout=4)
    graph.add(Made(FakeCM("cut", log, exit_delay=3)), optional=True, retry=None)
    with pytest.RaisesGroup(pytest.RaisesExc(rt.too_slow(), match="^cut did not exit within 1 s")):
        async with graph as resources:
            assert rt.current_time() == 2  # the optional node's verdict, at the timeout
            assert maybe not in resources
            [failure] = resources.failures
            assert str(failure.exception) == "maybe did not enter within 2 s"
    assert not kept.cm.exit_cancelled
    assert rt.current_time() == 2 + 3


async def test_a_nodes_own_options_override_the_graphs_and_none_turns_them_off(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    graph = ResourceGraph(enter_timeout=1, exit_timeout=1)
    longer = Made(FakeCM("longer", log, enter_delay=2, exit_delay=2))
    unbounded = Made(FakeCM("unbounded", log, enter_delay=5, exit_delay=3))
    graph.add(longer, enter_timeout=3, exit_timeout=3)
    graph.add(unbounded, enter_timeout=None, exit_timeout=None)
    async with graph:
        assert rt.current_time() == 5
    assert (longer.cm.exit_cancelled, unbounded.cm.exit_cancelled) == (False, False)
    assert time_of(log, "longer", "exited") == 5 + 2
    assert rt.current_time() == 5 + 3
    # "Omitted" is the graph's, as help() and inspect show it.
    default = inspect.signature(ResourceGraph.add).parameters["exit_timeout"].default
    assert repr(default) == "<the graph's>"


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        (
            {"enter_timeout": -1},
            ValueError,
            "enter_timeout must be a number of seconds, at least 0",
        ),
        ({"exit_timeout": float("nan")}, ValueError, "exit_timeout must be a number of seconds"),
        ({"enter_timeout": "5"}, TypeError, r"enter_timeout must be a number of seconds \(int or"),
        ({"retry": 3}, TypeError, "retry must be a Retry record or None, not 3"),
        ({"retry": Retry}, TypeError, "retry must be a Retry record or None, not <class"),
    ],
)
def test_bad_graph_wide_options_are_rejected_by_the_graph_itself(
    options: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=f"^{message}"):
        ResourceGraph(**options)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    # And a node's own, whatever the graph's.
    graph = ResourceGraph(enter_timeout=1, exit_timeout=1, retry=Retry())
    with pytest.raises(error, match=f"^{message}"):
        graph.add(Made(FakeCM("a", [])), **options)  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]
    assert repr(graph).startswith("<ResourceGraph() at")  # nothing was added


# ---- the API --------------------------------------------------------------------------


async def test_resources_is_a_read_only_mapping_of_nodes_to_values() -> None:
    log: Log = []
    graph, _, nodes = diamond(log)
    other = ResourceGraph().add(Made(FakeCM("other", log)))
    async with graph as resources:
        assert isinstance(resources, Resources)
        assert list(resources) == list(nodes.values())
        assert len(resources) == 4
        assert dict(resources) == {node: name for name, node in nodes.items()}
        assert nodes["db"] in resources
        assert other not in resources
        with pytest.raises(KeyError):
            resources[other]
        assert not hasattr(resources, "__setitem__")


def test_bad_input_is_rejected_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    log: Log = []
    graph = ResourceGraph()
    node = graph.add(Made(FakeCM("a", log)))
    other = ResourceGraph().add(Made(FakeCM("b", log)))
    with pytest.raises(TypeError, match=r"^dependency 1 \('a'\) is not a Node"):
        graph.add(Made(FakeCM("c", log)), node, "a")  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]
    with pytest.raises(ValueError, match=r"^dependency 0 .* belongs to another ResourceGraph"):
        graph.add(Made(FakeCM("c", log)), other)
    with pytest.raises(TypeError, match=r"^factory must be callable.*async context manager itself"):
        graph.add(FakeCM("c", log))  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match=r"^name must be a str or None, not 3"):
        graph.add(Made(FakeCM("c", log)), name=3)  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]
    with pytest.raises(ValueError, match=r"^enter_timeout must be a number of seconds, at least 0"):
        graph.add(Made(FakeCM("c", log)), enter_timeout=-1)
    with pytest.raises(ValueError, match=r"^limit must be a whole number of at least 1"):
        ResourceGraph(limit=0)
    assert [n.name for n in (node,)] == ["a"]
    assert log == []


async def test_a_graph_is_entered_once_and_grows_only_before() -> None:
    log: Log = []
    graph = ResourceGraph()
    graph.add(Made(FakeCM("a", log)))
    async with graph:
        with pytest.raises(RuntimeError, match=r"cannot add 'b': this ResourceGraph was already"):
            graph.add(Made(FakeCM("b", log)))
    with pytest.raises(RuntimeError, match="already entered"):
        async with graph:
            pytest.fail("entered twice")  # pragma: no cover
    assert events(log).count(("a", "entered")) == 1


async def test_names_default_to_the_factory_through_partials() -> None:
    @asynccontextmanager
    async def open_db(url: str) -> AsyncGenerator[str, None]:
        yield url

    graph = ResourceGraph()
    db = graph.add(functools.partial(open_db, "pg://"))
    named = graph.add(functools.partial(open_db, "x"), name="replica")
    assert (db.name, named.name) == ("open_db", "replica")
    assert repr(db).startswith("<Node open_db (0) of <ResourceGraph(open_db, replica) at 0x")
    timeline = Timeline()
    graph2 = ResourceGraph(observer=timeline)
    graph2.add(functools.partial(open_db, "pg://"))
    async with graph2:
        pass
    assert {event.name for event in timeline.events} == {"open_db"}


async def test_an_empty_graph_is_an_empty_block() -> None:
    async with ResourceGraph() as resources:
        assert len(resources) == 0
