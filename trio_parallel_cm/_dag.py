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
  "ResourceGraph"): the exceptions that its dependents let through (their failures
  included), in node order and without duplicates, less every exception that a node
  depending on it, directly or not, suppressed (that node sits inside its block in every
  nesting order the graph allows).  A node without an entered dependent receives what the
  stage's sinks receive: the body's exception, or the failure the stage exits with.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ._errors import cancelled_parts, delivery
from ._holder import Holder
from ._lifecycle import Life

_NOTHING: frozenset[int] = frozenset()


class Dag:
    """The dependency counters and exit results of one stage's holders."""

    __slots__ = (
        "dependents",
        "deps",
        "exiting",
        "finished_early",
        "out",
        "received",
        "skipped",
        "suppressed",
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
        self.received: list[list[BaseException] | None] = [None] * len(deps)
        self.out: list[list[BaseException] | None] = [None] * len(deps)
        self.suppressed: list[frozenset[int]] = [_NOTHING] * len(deps)
        # Never to start: an optional node it depends on, directly or not, did not enter.
        self.skipped = [False] * len(deps)

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
        skipped: list[int] = []
        todo = list(self.dependents[node])
        while todo:
            dependent = todo.pop()
            if not self.skipped[dependent]:
                self.skipped[dependent] = True
                skipped.append(dependent)
                todo.extend(self.dependents[dependent])
        return sorted(skipped)

    def begin_exit(self, holders: Sequence[Holder]) -> list[int]:
        """Start exiting: the open nodes whose dependents have all finished already.

        Nodes are visited dependents first (a dependent has a larger number), so that one
        that finished early (it failed or ended by itself while open, or never entered)
        completes, passing on what its dependents let through, before its dependencies
        are counted.
        """
        self.exiting = True
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
            elif holder.state is Life.OPEN:
                ready.append(node)
        return ready

    def finished(self, holder: Holder, holders: Sequence[Holder]) -> list[int]:
        """``holder`` finished: the dependencies now ready to exit."""
        node = holder.position
        if not self.exiting:
            self.finished_early[node] = True  # completed when the exit begins
            return []
        if self.unfinished_dependents[node]:
            self.finished_early[node] = True  # completed when its dependents have
            return []
        return self._complete(node, holders)

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
                elif holders[dep].state is Life.OPEN:
                    ready.append(dep)
        return ready

    def _record(self, node: int, holder: Holder) -> None:
        dependents = [d for d in self.dependents[node] if self.out[d]]
        suppressed = set[int]().union(*(self.suppressed[d] for d in self.dependents[node]))
        received = self.received[node]
        if received is not None and not (suppressed or holder.suppressed or holder.failure):
            self.out[node] = received  # the common case: it let through what it received
            return
        out: list[BaseException]
        if received is None:
            # Not released (it finished early): it passes on what its dependents let through.
            out = _collect((self.out[d] for d in dependents), suppressed)
        elif holder.suppressed:
            out = [] if delivery(received)[1] else cancelled_parts(received)
            suppressed.update(id(e) for e in received if all(e is not o for o in out))
        else:
            out = list(received)
        if (
            holder.failure is not None
            and not holder.tolerated
            and all(holder.failure is not e for e in out)
        ):
            out.append(holder.failure)
        self.out[node] = out
        self.suppressed[node] = frozenset(suppressed)

    def receives(
        self, node: int, holders: Sequence[Holder], sinks: list[BaseException]
    ) -> list[BaseException]:
        """What ``node`` receives, once its dependents have finished (see the notes)."""
        dependents = [d for d in self.dependents[node] if _entered(holders[d])]
        if not dependents:
            self.received[node] = sinks  # shared, never changed
            return sinks
        gone = set[int]().union(*(self.suppressed[d] for d in dependents))
        received = self.received[node] = _collect((self.out[d] for d in dependents), gone)
        return received

    def leaving(self) -> list[BaseException]:
        """What leaves the stage: what its roots let through, less anything suppressed."""
        gone = set[int]().union(*self.suppressed)
        return _collect((self.out[node] for node in self.roots()), gone)


def _entered(holder: Holder) -> bool:
    return holder.life in (Life.OPEN, Life.EXITING, Life.FAILING, Life.CLOSED)


def _collect(lists: Iterable[list[BaseException] | None], gone: set[int]) -> list[BaseException]:
    """The exceptions of ``lists`` in order, each once, less those in ``gone`` (by id)."""
    collected: list[BaseException] = []
    seen: set[int] = set()
    for excs in lists:
        for exc in excs or ():
            if id(exc) not in gone and id(exc) not in seen:
                seen.add(id(exc))
                collected.append(exc)
    return collected
