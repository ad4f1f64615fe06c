"""Dependencies between the holders of one stage: enter after them, exit before them.

A stage without dependencies enters and exits all its holders at once; a stage with them
(a ``ResourceGraph``) starts each holder when its last dependency has entered and releases
it when its last dependent has finished exiting.  This module keeps that bookkeeping; the
stage (``_stage.py``) owns it and does the entering and the releasing.

Design notes:

* Nodes are numbered in the order they were added, and a dependency is always an earlier
  node, so the graph is acyclic by construction and needs no check.
* Counters, not polling: each node counts the dependencies still to enter and the
  dependents still to finish, so scheduling costs O(nodes + edges) in all, whatever the
  shape.
* What a node's ``__aexit__`` receives generalises nested blocks (docs/semantics.rst,
  "ResourceGraph"), as ``_flight.py`` says: the newest of what its dependents let through
  (a failure supersedes what its node received), in node order and without duplicates
  (one group when several arrive), less every exception that a node depending on it,
  directly or not, suppressed (that node sits inside its block in every nesting order the
  graph allows).  A node without an entered dependent receives what the stage's sinks
  receive: the body's exception, or the failure the stage exits with.
* A node failing while open (it failed, or ends by itself) exits once every node that
  depends on it has finished, as any node does; the nodes it encloses in no nesting order
  (neither its dependents nor theirs) that are not enclosed by a failing node either wait
  for every failing node, and those without a dependent receive the stage's first failure,
  as the rest of a stage without dependencies does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .._errors import delivery
from ._flight import NOTHING, Flight, ids
from ._holder import Holder
from ._lifecycle import Life

Excs = tuple[BaseException, ...]


class Dag:
    """The dependency counters and exit results of one stage's holders."""

    __slots__ = (
        "covers",
        "dependents",
        "deps",
        "exiting",
        "failing",
        "failing_left",
        "finished_early",
        "free",
        "gone",
        "out",
        "received",
        "skipped",
        "unentered_deps",
        "unfinished_dependents",
    )

    def __init__(self, deps: Sequence[Sequence[int]]) -> None:
        self.deps = [tuple(node_deps) for node_deps in deps]
        self.dependents: list[list[int]] = [[] for _ in deps]
        for node, node_deps in enumerate(deps):
            for dep in node_deps:
                self.dependents[dep].append(node)
        self.unentered_deps = [len(node_deps) for node_deps in deps]
        self.unfinished_dependents = [0] * len(deps)
        self.exiting = False
        self.finished_early = [False] * len(deps)
        # Per node, once released (received) and once finished (the rest): what it
        # received, what it lets through (the newest: see ``_flight.py``), what a
        # suppression of that would suppress, and what it and its dependents suppressed.
        self.received: list[Excs | None] = [None] * len(deps)
        self.out: list[Excs | None] = [None] * len(deps)
        self.covers: list[frozenset[int]] = [NOTHING] * len(deps)
        self.gone: list[frozenset[int]] = [NOTHING] * len(deps)
        # Never to start: an optional node it depends on, directly or not, did not enter.
        self.skipped = [False] * len(deps)
        # With nodes failing as the exit begins: those, how many have not finished, and
        # the nodes that wait for them (enclosed by none: see the notes).
        self.failing: frozenset[int] = NOTHING
        self.failing_left = 0
        self.free: list[bool] | None = None

    def roots(self) -> list[int]:
        """The nodes without dependencies: they start entering at once."""
        return [node for node, node_deps in enumerate(self.deps) if not node_deps]

    def entered(self, node: int) -> list[int]:
        """``node`` has entered: the dependents whose last dependency it was."""
        ready: list[int] = []
        for dependent in self.dependents[node]:
            self.unentered_deps[dependent] -= 1
            if not self.unentered_deps[dependent]:  # (never for a skipped one: see leave_out)
                ready.append(dependent)
        return ready

    def leave_out(self, node: int) -> list[int]:
        """``node``, optional, did not enter: the nodes now skipped (its dependents, and
        theirs), in node order.  (They never start: a dependency of each never enters.)"""
        skipped = sorted(self._below([node]) - {node})
        for dependent in skipped:
            self.skipped[dependent] = True
        return skipped

    def _below(self, nodes: Iterable[int]) -> set[int]:
        """``nodes`` and every node that depends on one of them, directly or not."""
        found = set(nodes)
        todo = list(found)
        while todo:
            for dependent in self.dependents[todo.pop()]:
                if dependent not in found:
                    found.add(dependent)
                    todo.append(dependent)
        return found

    def waits_for_failing(self, node: int) -> bool:
        """Whether ``node`` exits after the nodes failing as the exit began."""
        return self.free is not None and self.free[node]

    def begin_exit(self, holders: Sequence[Holder], failing: Sequence[Holder]) -> list[int]:
        """Start exiting: the nodes ready to exit at once (see ``_releasable``).

        Nodes are visited dependents first (a dependent has a larger number), so that one
        that finished early (it never entered, or exited as its starter was cancelled)
        completes, passing on what its dependents let through, before its dependencies
        are counted.
        """
        self.exiting = True
        if failing:
            self.failing = frozenset(holder.position for holder in failing)
            self.failing_left = len(failing)
            enclosed = self._below(self.failing)
            self.free = [node not in enclosed for node in range(len(self.deps))]
        ready: list[int] = []
        for node in reversed(range(len(self.deps))):
            holder = holders[node]
            if holder.life is Life.ENTERING:
                self.finished_early[node] = True  # never started: nothing to exit
            self.unfinished_dependents[node] = sum(
                1 for d in self.dependents[node] if self.out[d] is None
            )
            if self.unfinished_dependents[node]:
                continue
            if self.finished_early[node]:
                ready.extend(self._complete(node, holders))
            elif self._releasable(node, holder):
                ready.append(node)
        return ready

    def _releasable(self, node: int, holder: Holder) -> bool:
        """Open (or failing) and not yet released, and not waiting for failing nodes."""
        if holder.released or not (holder.state is Life.OPEN or holder.failing):
            return False
        return not self.failing_left or not self.waits_for_failing(node)

    def finished(self, holder: Holder, holders: Sequence[Holder]) -> list[int]:
        """``holder`` finished: the nodes now ready to exit."""
        node = holder.position
        if not self.exiting:
            self.finished_early[node] = True  # completed when the exit begins
            return []
        if self.unfinished_dependents[node]:
            self.finished_early[node] = True  # completed when its dependents have
            return []
        ready = self._complete(node, holders)
        if node in self.failing:
            self.failing_left -= 1
            if not self.failing_left:
                ready.extend(
                    free
                    for free in range(len(self.deps))
                    if self.waits_for_failing(free)
                    and not self.unfinished_dependents[free]
                    and not self.finished_early[free]
                    and self._releasable(free, holders[free])
                )
        return ready

    def _complete(self, node: int, holders: Sequence[Holder]) -> list[int]:
        """Record what ``node`` lets through; the dependencies that are now ready."""
        ready: list[int] = []
        todo = [node]
        while todo:
            node = todo.pop()
            self._record(node, holders[node])
            for dep in self.deps[node]:
                self.unfinished_dependents[dep] -= 1
                if self.unfinished_dependents[dep]:
                    continue
                if self.finished_early[dep]:
                    todo.append(dep)
                elif self._releasable(dep, holders[dep]):
                    ready.append(dep)
        return ready

    def _record(self, node: int, holder: Holder) -> None:
        received = self.received[node]
        failure = None if holder.tolerated else holder.failure
        if received is not None and not holder.suppressed and failure is None:
            self.out[node] = received  # the common case: it let through what it received
            return
        if received is None:
            # Not released (it finished early): it passes on what its dependents let
            # through.
            finished = [d for d in self.dependents[node] if self.out[d] is not None]
            received, self.covers[node], self.gone[node] = self._incoming(finished)
        covers, gone = self.covers[node], self.gone[node]
        if failure is not None:
            # Raised while handling what it received (or, failing, instead of it).
            self.out[node], self.covers[node] = (failure,), covers | {id(failure)}
        elif holder.suppressed:
            flight, suppressed = Flight(received, covers).suppressed(
                native=delivery(received).native
            )
            self.out[node], self.covers[node] = flight.current, flight.covers
            self.gone[node] = gone | suppressed
        else:
            self.out[node] = received

    def receives(self, node: int, holders: Sequence[Holder], sinks: Flight) -> Excs:
        """What ``node`` receives, once its dependents have finished (see the notes)."""
        dependents = [d for d in self.dependents[node] if _entered(holders[d])]
        if not dependents:
            self.received[node], self.covers[node] = sinks.current, sinks.covers
            return sinks.current
        received, self.covers[node], self.gone[node] = self._incoming(dependents)
        self.received[node] = received
        return received

    def _incoming(self, dependents: Sequence[int]) -> tuple[Excs, frozenset[int], frozenset[int]]:
        """The newest of what ``dependents`` let through, less what any of them, or of
        theirs, suppressed; with what suppressing it would suppress, and what is gone."""
        gone = covers = superseded = NOTHING
        for d in dependents:
            gone |= self.gone[d]
            covers |= self.covers[d]
            out = self.out[d] or ()
            if self.covers[d] and len(self.covers[d]) > len(out):
                superseded |= self.covers[d] - ids(out)
        received = _collect((self.out[d] for d in dependents), gone | superseded)
        return received, covers - gone, gone

    def leaving(self) -> tuple[Flight, frozenset[int]]:
        """What leaves the stage (what its roots let through), and what was suppressed."""
        roots = [node for node in self.roots() if self.out[node] is not None]
        current, covers, _ = self._incoming(roots)
        return Flight(current, covers), frozenset[int]().union(*self.gone)


def _entered(holder: Holder) -> bool:
    return holder.life in (Life.OPEN, Life.EXITING, Life.FAILING, Life.CLOSED)


def _collect(lists: Iterable[Excs | None], gone: frozenset[int]) -> Excs:
    """The exceptions of ``lists`` in order, each once, less those in ``gone`` (by id)."""
    collected: list[BaseException] = []
    seen: set[int] = set()
    for excs in lists:
        for exc in excs or ():
            if id(exc) not in gone and id(exc) not in seen:
                seen.add(id(exc))
                collected.append(exc)
    return tuple(collected)
