"""``ResourceGraph``: resources that depend on one another, opened with maximal concurrency.

A graph is a block (``_block.py``) with one stage whose holders depend on one another
(``_dag.py``): ``parallel_with`` is the same stage without dependencies.

Design notes: a node's options are resolved once, in ``add``, into the one ``Options``
record its holder reads (the graph's own record when the node sets none of its own), so
the graph-wide defaults cost nothing per holder.  A node's ``enter_timeout``,
``exit_timeout`` and ``retry`` default to ``FROM_GRAPH``, not ``None``: ``None`` keeps
its meaning everywhere else in the library, "none", and so turns a graph default off for
one node (as ``timeout=None`` does per request against an httpx client's default).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, Final, Generic, TypeVar, final, overload

from . import _runtime
from ._engine._block import NEW, Block
from ._engine._holder import Holder
from ._engine._input import check_observer, checked_result, is_async_cm
from ._engine._lifecycle import Life
from ._engine._options import Options
from ._engine._retry import Retry
from ._errors import ContextFailure, record_of
from ._names import factory_name
from ._timeline import Observer
from ._typevars import T1, T2, T3, T4, T5, T6

T = TypeVar("T")
D = TypeVar("D")
T_co = TypeVar("T_co", covariant=True)
Factory = Callable[..., AbstractAsyncContextManager[Any, Any]]


class _FromGraph(enum.Enum):
    """The default of a node's ``enter_timeout``, ``exit_timeout`` and ``retry``."""

    FROM_GRAPH = "the graph's"

    def __repr__(self) -> str:  # as help() and inspect.signature show the default
        return "<the graph's>"


FROM_GRAPH: Final = _FromGraph.FROM_GRAPH


@final
class Node(Generic[T_co]):
    """A resource of a :class:`ResourceGraph`, as returned by :meth:`ResourceGraph.add`.

    ``resources[node]`` is its value, typed ``T_co``, once the graph is entered.

    Attributes:
        name: its name in notes, reports and the timeline.
        deps: the nodes it depends on, in the order given to ``add``.
    """

    __slots__ = ("_factory", "_graph", "_index", "_options", "deps", "name")

    def __init__(
        self,
        graph: ResourceGraph,
        index: int,
        factory: Factory,
        deps: tuple[Node[Any], ...],
        name: str,
        options: Options,
    ) -> None:
        self._graph = graph
        self._index = index
        self._factory = factory
        self._options = options
        self.deps = deps
        self.name = name

    def __repr__(self) -> str:
        return f"<Node {self.name} ({self._index}) of {self._graph!r}>"


@final
class Resources(Mapping[Node[Any], Any]):
    """The values of an entered :class:`ResourceGraph`: a read-only mapping of its nodes.

    ``resources[node]`` is typed as the node's value; iterating gives the nodes that
    entered, in the order they were added.  An optional node that did not enter, or one
    skipped because of it, is not in the mapping: ``node in resources`` is false,
    ``resources.get(node)`` is None, and ``resources[node]`` raises a ``KeyError`` (a
    ``LookupError``) whose ``__cause__`` is the failure that left it out.

    Attributes:
        failures: the tolerated failures of the optional nodes that did not enter, as
            :class:`ContextFailure` records, in the order the nodes were added
            (``format_failures`` renders them).
        skipped: the nodes never started because an optional node they depend on,
            directly or not, did not enter.
    """

    __slots__ = ("_graph", "_left_out", "_values", "failures", "skipped")

    def __init__(
        self,
        graph: ResourceGraph,
        values: Sequence[Any],
        left_out: Mapping[int, BaseException],
        skipped: tuple[Node[Any], ...],
    ) -> None:
        self._graph = graph
        self._values = values
        self._left_out = left_out
        self.skipped = skipped
        nodes = graph._nodes  # pyright: ignore[reportPrivateUsage]
        self.failures: tuple[ContextFailure, ...] = tuple(
            record
            for index, exc in left_out.items()
            if nodes[index] not in skipped and (record := record_of(exc)) is not None
        )

    def __getitem__(self, node: Node[T]) -> T:
        if not isinstance(node, Node) or node._graph is not self._graph:  # pyright: ignore[reportPrivateUsage,reportUnnecessaryIsInstance]
            raise KeyError(node)
        failure = self._left_out.get(node._index)  # pyright: ignore[reportPrivateUsage]
        if failure is not None:
            why = "was skipped: an optional node it needs" if node in self.skipped else ""
            raise KeyError(f"{node.name} {why or 'is optional and'} did not enter") from failure
        value: T = self._values[node._index]  # pyright: ignore[reportPrivateUsage]
        return value

    # Typed by the node, as ``resources[node]`` is (pyright cannot match these overloads
    # to Mapping's, which they narrow).
    @overload
    def get(self, node: Node[T], /) -> T | None: ...

    @overload
    def get(self, node: Node[T], default: D, /) -> T | D: ...

    def get(self, node: Node[Any], default: object = None, /) -> object:  # pyright: ignore[reportIncompatibleMethodOverride]
        """``resources[node]``, or ``default`` for a node that did not enter."""
        try:
            return self[node]
        except KeyError:
            return default

    def __iter__(self) -> Iterator[Node[Any]]:
        nodes = self._graph._nodes  # pyright: ignore[reportPrivateUsage]
        return (node for node in nodes if node._index not in self._left_out)  # pyright: ignore[reportPrivateUsage]

    def __len__(self) -> int:
        return len(self._values) - len(self._left_out)

    def __repr__(self) -> str:
        return f"<Resources of {self._graph!r}>"


@final
class ResourceGraph:
    """Open resources that depend on one another, each as soon as its dependencies are open.

    ``async with graph as resources:`` enters every node's context manager in a holder
    task of its own, the moment the last of its dependencies has entered, and, after the
    body, exits each one the moment everything that depends on it has exited.  Start-up
    and teardown each cost the longest chain of dependencies, not the sum of stages, and
    every guarantee of :func:`parallel_with` holds for every node (see
    :doc:`semantics`).

    The ``enter_timeout``, ``exit_timeout`` and ``retry`` given to the graph are every
    node's, roots included, unless the node sets its own in :meth:`add` (where ``None``
    turns one off for that node); ``limit`` and ``shutdown_timeout`` bound the whole
    graph.  They are checked when the graph is made.

    Example::

        graph = ResourceGraph(exit_timeout=2)      # every node's, unless it sets its own
        config = graph.add(load_config)
        db = graph.add(open_db, config)            # open_db(config) -> async CM of Db
        cache = graph.add(open_cache, config, name="cache")
        app = graph.add(open_app, db, cache, enter_timeout=5)

        async with graph as resources:
            await serve(resources[app])
    """

    __slots__ = ("_block", "_nodes", "_optional", "_options")

    def __init__(
        self,
        *,
        limit: int | None = None,
        enter_timeout: float | None = None,
        exit_timeout: float | None = None,
        retry: Retry | None = None,
        shutdown_timeout: float | None = None,
        observer: Observer | None = None,
    ) -> None:
        """Make an empty graph; add nodes with :meth:`add`, then enter it once.

        ``enter_timeout``, ``exit_timeout`` and ``retry`` are defaults for every node,
        roots included; a node's own argument to :meth:`add` wins, ``None`` included
        (``add(..., retry=None)``: this node is not retried).

        Args:
            limit: at most this many ``__aenter__`` calls (and as many ``__aexit__``
                calls) in flight at once.
            enter_timeout: seconds each node's ``__aenter__`` may take (its factory call
                and every attempt of its retry included); then it fails with
                ``trio.TooSlowError`` (on asyncio ``TimeoutError``).
            exit_timeout: seconds each node's ``__aexit__`` may take, shielded from an
                outer cancellation; then it fails with ``trio.TooSlowError`` (on asyncio
                ``TimeoutError``).
            retry: a :class:`Retry` for each node's enter.
            shutdown_timeout: seconds the whole exit phase may take (every node's
                ``__aexit__``, in dependency order, from the end of the body), shielded
                from an outer cancellation; then what is still exiting is cancelled and
                fails with ``trio.TooSlowError`` (on asyncio ``TimeoutError``).
            observer: called with a :class:`PhaseEvent` at every phase change of every
                node (a :class:`Timeline`, for example).

        Raises:
            TypeError: an option has the wrong type (``retry=3``), or ``observer``
                cannot be called; before anything is entered.
            ValueError: an option is out of range (``limit=0``, a negative timeout).
        """
        # One record, checked now: the stage reads its limit, and it is the very record
        # of every node that sets none of its own options (``add``).
        self._options = Options(
            limit=limit,
            enter_timeout=enter_timeout,
            exit_timeout=exit_timeout,
            retry=retry,
            shutdown_timeout=shutdown_timeout,
        )
        check_observer(observer)
        self._block = Block("ResourceGraph", observer, shutdown_timeout)
        self._nodes: list[Node[Any]] = []
        self._optional = False  # some node is optional

    def __repr__(self) -> str:
        names = ", ".join(node.name for node in self._nodes)
        return f"<ResourceGraph({names}) at {id(self):#x}>"

    # In the overloads, ``= ...`` stands for the implementation's default, FROM_GRAPH (the
    # graph's), which no caller passes: the public types stay ``float | None``.
    @overload
    def add(
        self,
        factory: Callable[[], AbstractAsyncContextManager[T, Any]],
        /,
        *,
        name: str | None = None,
        enter_timeout: float | None = ...,
        exit_timeout: float | None = ...,
        optional: bool = False,
        retry: Retry | None = ...,
    ) -> Node[T]: ...

    @overload
    def add(
        self,
        factory: Callable[[T1], AbstractAsyncContextManager[T, Any]],
        dep1: Node[T1],
        /,
        *,
        name: str | None = None,
        enter_timeout: float | None = ...,
        exit_timeout: float | None = ...,
        optional: bool = False,
        retry: Retry | None = ...,
    ) -> Node[T]: ...

    @overload
    def add(
        self,
        factory: Callable[[T1, T2], AbstractAsyncContextManager[T, Any]],
        dep1: Node[T1],
        dep2: Node[T2],
        /,
        *,
        name: str | None = None,
        enter_timeout: float | None = ...,
        exit_timeout: float | None = ...,
        optional: bool = False,
        retry: Retry | None = ...,
    ) -> Node[T]: ...

    @overload
    def add(
        self,
        factory: Callable[[T1, T2, T3], AbstractAsyncContextManager[T, Any]],
        dep1: Node[T1],
        dep2: Node[T2],
        dep3: Node[T3],
        /,
        *,
        name: str | None = None,
        enter_timeout: float | None = ...,
        exit_timeout: float | None = ...,
        optional: bool = False,
        retry: Retry | None = ...,
    ) -> Node[T]: ...

    @overload
    def add(
        self,
        factory: Callable[[T1, T2, T3, T4], AbstractAsyncContextManager[T, Any]],
        dep1: Node[T1],
        dep2: Node[T2],
        dep3: Node[T3],
        dep4: Node[T4],
        /,
        *,
        name: str | None = None,
        enter_timeout: float | None = ...,
        exit_timeout: float | None = ...,
        optional: bool = False,
        retry: Retry | None = ...,
    ) -> Node[T]: ...

    @overload
    def add(
        self,
        factory: Callable[[T1, T2, T3, T4, T5], AbstractAsyncContextManager[T, Any]],
        dep1: Node[T1],
        dep2: Node[T2],
        dep3: Node[T3],
        dep4: Node[T4],
        dep5: Node[T5],
        /,
        *,
        name: str | None = None,
        enter_timeout: float | None = ...,
        exit_timeout: float | None = ...,
        optional: bool = False,
        retry: Retry | None = ...,
    ) -> Node[T]: ...

    @overload
    def add(
        self,
        factory: Callable[[T1, T2, T3, T4, T5, T6], AbstractAsyncContextManager[T, Any]],
        dep1: Node[T1],
        dep2: Node[T2],
        dep3: Node[T3],
        dep4: Node[T4],
        dep5: Node[T5],
        dep6: Node[T6],
        /,
        *,
        name: str | None = None,
        enter_timeout: float | None = ...,
        exit_timeout: float | None = ...,
        optional: bool = False,
        retry: Retry | None = ...,
    ) -> Node[T]: ...

    @overload
    def add(
        self,
        factory: Callable[..., AbstractAsyncContextManager[T, Any]],
        dep1: Node[Any],
        dep2: Node[Any],
        dep3: Node[Any],
        dep4: Node[Any],
        dep5: Node[Any],
        dep6: Node[Any],
        dep7: Node[Any],
        /,
        *deps: Node[Any],
        name: str | None = None,
        enter_timeout: float | None = ...,
        exit_timeout: float | None = ...,
        optional: bool = False,
        retry: Retry | None = ...,
    ) -> Node[T]: ...

    def add(
        self,
        factory: Factory,
        /,
        *deps: Node[Any],
        name: str | None = None,
        enter_timeout: float | _FromGraph | None = FROM_GRAPH,
        exit_timeout: float | _FromGraph | None = FROM_GRAPH,
        optional: bool = False,
        retry: Retry | _FromGraph | None = FROM_GRAPH,
    ) -> Node[Any]:
        """Add a resource: ``factory(*values_of_deps)`` makes its async context manager.

        The factory is called in the node's own holder task once every dependency has
        entered, and never if the graph fails before that.  What it returns must be an
        async context manager; anything else is that node's enter failure.

        Args:
            factory: called with the values of ``deps``, in order.
            *deps: nodes added earlier to this graph (so a graph is acyclic by
                construction).
            name: the name in notes, reports and the timeline (default: the
                factory's name, looking through ``functools.partial``).
            enter_timeout: seconds its ``__aenter__`` may take (the factory call
                included); then it fails with ``trio.TooSlowError`` (on asyncio
                ``TimeoutError``).  Omitted: the graph's ``enter_timeout``; ``None``: no
                timeout, whatever the graph's.
            exit_timeout: seconds its ``__aexit__`` may take, shielded from an outer
                cancellation; then it fails with ``trio.TooSlowError`` (on asyncio
                ``TimeoutError``).  Omitted: the graph's; ``None``: no timeout.
            optional: if it fails to enter (its factory or ``__aenter__`` raises an
                ``Exception``, or its enter timeout passes), the graph goes on without
                it: the failure is recorded in ``resources.failures``, not raised, and
                the nodes that depend on it are skipped (so they must be optional too).
            retry: a :class:`Retry`: try the enter again, with a new context manager
                from the factory each time, after a growing wait.  Omitted: the graph's
                ``retry``; ``None``: one attempt, whatever the graph's.

        Returns:
            The node: ``resources[node]`` is its value once the graph is entered.

        Raises:
            TypeError: ``factory`` is not callable, a dependency is not a node, or an
                option has the wrong type.
            ValueError: a dependency belongs to another graph, a node that is not
                optional depends on an optional one, or an option is out of range.
            RuntimeError: the graph was already entered.
        """
        if self._block.phase is not NEW:
            raise RuntimeError(
                f"cannot add {name or factory_name(factory)!r}: this ResourceGraph was "
                "already entered; add every node before entering it"
            )
        if (  # most nodes: the graph's record, nothing made (inline: add is per node)
            enter_timeout is FROM_GRAPH
            and exit_timeout is FROM_GRAPH
            and retry is FROM_GRAPH
            and optional is False
        ):
            options = self._options
        else:
            options = self._node_options(enter_timeout, exit_timeout, optional, retry)
        _check_factory(factory)
        for position, dep in enumerate(deps):
            _check_dep(self, position, dep, options.optional)
        if name is not None and not isinstance(name, str):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise TypeError(f"name must be a str or None, not {name!r}")
        node: Node[Any] = Node(
            self, len(self._nodes), factory, deps, name or factory_name(factory), options
        )
        self._nodes.append(node)
        self._optional = self._optional or options.optional
        return node

    def _node_options(
        self,
        enter_timeout: float | _FromGraph | None,
        exit_timeout: float | _FromGraph | None,
        optional: bool,
        retry: Retry | _FromGraph | None,
    ) -> Options:
        """The options of a node that sets some of its own: each its own, else the graph's."""
        graph = self._options
        return Options(
            enter_timeout=graph.enter_timeout if enter_timeout is FROM_GRAPH else enter_timeout,
            exit_timeout=graph.exit_timeout if exit_timeout is FROM_GRAPH else exit_timeout,
            optional=optional,
            retry=graph.retry if retry is FROM_GRAPH else retry,
        )

    @_runtime.ki_protected
    async def __aenter__(self) -> Resources:
        holders: list[Holder] = []
        deps: list[Sequence[int]] = []
        edges = False
        for node in self._nodes:
            node_deps: Sequence[int] = ()
            dep_holders: tuple[Holder, ...] = ()
            if node.deps:  # (a root needs no list of its own: most nodes are roots)
                edges = True
                node_deps = [dep._index for dep in node.deps]  # pyright: ignore[reportPrivateUsage]
                dep_holders = tuple(holders[d] for d in node_deps)
            make = _Maker(node, dep_holders)
            holders.append(
                Holder(None, len(holders), node.name, make=make, options=node._options)  # pyright: ignore[reportPrivateUsage]
            )
            deps.append(node_deps)
        # Without edges, a graph is exactly a stage of parallel_with: no dependency to track.
        block = self._block
        values = await block.enter_alone(holders, None, self._options, deps if edges else None)
        return self._resources(holders, values)

    def _resources(self, holders: list[Holder], values: Sequence[Any]) -> Resources:
        """The entered values, and why each node left out is (its own tolerated failure,
        or, skipped, that of the first of its dependencies left out)."""
        left_out: dict[int, BaseException] = {}
        skipped: list[Node[Any]] = []
        if not self._optional:
            return Resources(self, values, left_out, ())
        for node, holder in zip(self._nodes, holders, strict=True):
            if holder.tolerated:
                assert holder.failure is not None
                left_out[node._index] = holder.failure  # pyright: ignore[reportPrivateUsage]
            elif holder.life is Life.ENTERING:  # never started: skipped
                cause = next(d._index for d in node.deps if d._index in left_out)  # pyright: ignore[reportPrivateUsage]
                left_out[node._index] = left_out[cause]  # pyright: ignore[reportPrivateUsage]
                skipped.append(node)
        return Resources(self, values, left_out, tuple(skipped))

    @_runtime.ki_protected
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        return await self._block.close(exc_type, exc, tb)


@final
class _Maker:
    """The call that makes a node's context manager, in its holder task.

    One small object per node, not a closure and its cells: the memory held per node is a
    benchmark target.
    """

    __slots__ = ("dep_holders", "node")

    def __init__(self, node: Node[Any], dep_holders: tuple[Holder, ...]) -> None:
        self.node = node
        self.dep_holders = dep_holders

    def __call__(self) -> object:
        factory = self.node._factory  # pyright: ignore[reportPrivateUsage]
        deps = self.dep_holders
        cm = factory(*[holder.value for holder in deps]) if deps else factory()
        if not is_async_cm(cm):
            checked_result(cm, f"what the factory of {self.node.name} returned")  # raises
        return cm


def _check_factory(factory: object) -> None:
    if callable(factory):
        return
    hint = ""
    cls = type(factory)
    if hasattr(cls, "__aenter__") and hasattr(cls, "__aexit__"):
        hint = (
            ": it is an async context manager itself; pass the function that makes one "
            "(`graph.add(open_db, config)`, not `graph.add(open_db(config))`)"
        )
    raise TypeError(f"factory must be callable, not {factory!r}{hint}")


def _check_dep(graph: ResourceGraph, position: int, dep: object, optional: bool) -> None:
    if not isinstance(dep, Node):
        raise TypeError(
            f"dependency {position} ({dep!r}) is not a Node: pass what graph.add() returned"
        )
    if dep._graph is not graph:  # pyright: ignore[reportPrivateUsage]
        raise ValueError(
            f"dependency {position} ({dep!r}) belongs to another ResourceGraph; a node can "
            "depend only on nodes of its own graph"
        )
    if dep._options.optional and not optional:  # pyright: ignore[reportPrivateUsage]
        raise ValueError(
            f"dependency {position} ({dep.name}) is optional, so this node is skipped when "
            "it does not enter: add it with optional=True too"
        )
