"""Observing a block: phase events, and the ``Timeline`` observer that charts them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final, Literal, final

import attrs

from ._attempts import all_alike

EventKind = Literal[
    "enter_started",
    "enter_retried",
    "entered",
    "enter_failed",
    "skipped",
    "exit_started",
    "exited",
    "exit_failed",
]

ENTER_STARTED: Final = "enter_started"
ENTER_RETRIED: Final = "enter_retried"
SKIPPED: Final = "skipped"
ENTERED: Final = "entered"
ENTER_FAILED: Final = "enter_failed"
EXIT_STARTED: Final = "exit_started"
EXITED: Final = "exited"
EXIT_FAILED: Final = "exit_failed"

logger = logging.getLogger("trio_parallel_cm")


@attrs.frozen
class PhaseEvent:
    """A phase change of one context manager, as an ``observer=`` receives it.

    Attributes:
        kind: ``"enter_started"``, ``"entered"``, ``"enter_failed"``,
            ``"exit_started"``, ``"exited"`` or ``"exit_failed"``; for a
            :class:`ResourceGraph` node also ``"enter_retried"`` (an attempt failed and
            another follows, see :class:`Retry`) and ``"skipped"`` (never started: an
            optional node it depends on did not enter).
        name: the context manager's name (as in notes and reports).
        position: its position in its stage.
        stage: its stage number in a ``ParallelExitStack`` (from 1), else None.
        time: ``trio.current_time()`` when it happened (on asyncio, the loop's ``time()``).
        exception: for ``enter_failed`` and ``exit_failed``, the failure (None for an
            enter that was cancelled because another failed or the caller was cancelled);
            for ``enter_retried``, the failure of that attempt.
        deps: in a :class:`ResourceGraph`, the positions of the nodes it depends on.
        attempt: for ``enter_retried``, the number of the attempt that failed (from 1).
        optional: an optional :class:`ResourceGraph` node (its enter failure is
            tolerated: the graph goes on without it).

    Example::

        def log_phase(event: PhaseEvent) -> None:
            logger.info("%s [%d] %s", event.name, event.position, event.kind)

        async with parallel_with(open_db(), open_cache(), observer=log_phase):
            ...
    """

    kind: EventKind
    name: str
    position: int
    stage: int | None
    time: float
    exception: BaseException | None = None
    deps: tuple[int, ...] = ()
    attempt: int = 1
    optional: bool = False


Observer = Callable[[PhaseEvent], object]


def notify(observer: Observer, event: PhaseEvent) -> None:
    """Call ``observer``; an observer's exception is logged, never raised.

    Observers are diagnostics, called in the holder tasks: a failing one must not stop a
    context manager from being exited.
    """
    try:
        observer(event)
    except Exception:
        logger.exception("trio_parallel_cm observer %r failed on %r", observer, event)


@attrs.frozen
class _Bar:
    key: tuple[int | None, int]
    label: str
    enter: tuple[float, float] | None
    # "" entered, "failed", "failed, tolerated" (an optional node), "cancelled" (another
    # failed, or the caller), or "skipped" (an optional node it needs did not enter)
    enter_end: str
    exit: tuple[float, float] | None
    exit_failed: bool
    retries: tuple[float, ...] = ()  # when an attempt failed and another followed
    alike: bool = False  # its enter failed, and every attempt failed alike


def _tolerated(event: PhaseEvent) -> bool:
    """An optional node's enter failure, which its graph goes on without."""
    return event.kind == ENTER_FAILED and event.optional and isinstance(event.exception, Exception)


@final
class Timeline:
    """An observer that records every phase event, and charts the start-up.

    Pass it as ``observer=``; afterwards, :meth:`render` draws one bar per context
    manager (its enter and exit segments, the one that held the body back marked), and
    :meth:`to_chrome_trace` exports the events for Perfetto or ``chrome://tracing``.

    Example::

        timeline = Timeline()
        async with parallel_with(open_db(), open_cache(), observer=timeline):
            ...
        print(timeline.render())
    """

    def __init__(self) -> None:
        self.events: list[PhaseEvent] = []

    def __call__(self, event: PhaseEvent) -> None:
        """Record ``event``."""
        self.events.append(event)

    def _bars(self) -> list[_Bar]:
        starts: dict[tuple[int | None, int], dict[str, float]] = {}
        labels: dict[tuple[int | None, int], str] = {}
        failed: dict[tuple[int | None, int], set[str]] = {}
        retries: dict[tuple[int | None, int], list[float]] = {}
        tolerated: set[tuple[int | None, int]] = set()
        alike: set[tuple[int | None, int]] = set()
        for event in self.events:
            key = (event.stage, event.position)
            stage = "" if event.stage is None else f"{event.stage}."
            labels.setdefault(key, f"{event.name} [{stage}{event.position}]")
            starts.setdefault(key, {})[event.kind] = event.time
            if event.kind == ENTER_RETRIED:
                retries.setdefault(key, []).append(event.time)
            if _tolerated(event):
                tolerated.add(key)
            if event.kind == ENTER_FAILED and all_alike(event.exception):
                alike.add(key)
            if event.kind == EXIT_FAILED or (event.kind == ENTER_FAILED and event.exception):
                failed.setdefault(key, set()).add(event.kind)
        bars: list[_Bar] = []
        for key, times in sorted(starts.items(), key=lambda item: (item[0][0] or 0, item[0][1])):
            enter_end = times.get(ENTERED, times.get(ENTER_FAILED))
            exit_end = times.get(EXITED, times.get(EXIT_FAILED))
            enter = None
            if ENTER_STARTED in times and enter_end is not None:
                enter = (times[ENTER_STARTED], enter_end)
            exit = None
            if EXIT_STARTED in times and exit_end is not None:
                exit = (times[EXIT_STARTED], exit_end)
            kinds = failed.get(key, set())
            outcome = (
                "failed, tolerated"
                if key in tolerated
                else "failed"
                if ENTER_FAILED in kinds
                else "cancelled"
                if ENTER_FAILED in times
                else "skipped"
                if SKIPPED in times
                else ""
            )
            bar = _Bar(
                key,
                labels[key],
                enter,
                outcome,
                exit,
                EXIT_FAILED in kinds,
                tuple(retries.get(key, ())),
                key in alike,
            )
            bars.append(bar)
        return bars

    def critical(self) -> list[str]:
        """The critical path: the chain of context managers that set the start-up time.

        In each stage, the last to enter held the body back; in a :class:`ResourceGraph`,
        so did the dependency that entered last before it started, and so on back to a
        node without dependencies: the chain is listed from there.  A stage in which an
        enter failed or was cancelled held nothing back (its body never ran), so it has
        none.  An optional node whose failure was tolerated held the body back until it
        failed, so it may be on the path too.
        """
        entered: dict[tuple[int | None, int], PhaseEvent] = {}
        deps: dict[tuple[int | None, int], tuple[int, ...]] = {}
        last: dict[int | None, PhaseEvent] = {}
        incomplete: set[int | None] = set()
        for event in self.events:
            deps[(event.stage, event.position)] = event.deps
            if event.kind == ENTER_FAILED and not _tolerated(event):
                incomplete.add(event.stage)
            elif event.kind == ENTERED or event.kind == ENTER_FAILED:  # (tolerated: it too)
                entered[(event.stage, event.position)] = event
                best = last.get(event.stage)
                # The last to finish; of those that finished together, the first added.
                if best is None or (event.time, -event.position) > (best.time, -best.position):
                    last[event.stage] = event
        path: list[str] = []
        for stage, event in last.items():
            if stage in incomplete:
                continue
            chain = [event]
            while True:
                before = [entered[(stage, d)] for d in deps[(stage, chain[-1].position)]]
                if not before:
                    break
                chain.append(max(before, key=lambda e: (e.time, -e.position)))
            path.extend(_label(e) for e in reversed(chain))
        return path

    def render(self, width: int = 50) -> str:
        """A text chart: one bar per context manager, ``=`` entering, ``-`` exiting.

        ``X`` ends a segment that failed, ``/`` an enter cancelled (because another
        failed, or the caller was cancelled); ``*`` marks the critical path, the context
        manager that held the body back (per stage that entered completely).  In a
        :class:`ResourceGraph`, ``r`` marks a failed attempt that was retried and the
        attempts are counted (``3 attempts``; ``3 attempts alike`` when the enter failed
        and every attempt failed alike, as :func:`format_failures` tells), an optional
        node's tolerated failure reads ``failed, tolerated``, and a node skipped because
        of it has no bar but ``skipped``.  Times are seconds since the first event.
        """
        bars = self._bars()
        if not bars:
            return "(no events)"
        t0 = min(event.time for event in self.events)
        span = max(event.time for event in self.events) - t0
        scale = (width - 1) / span if span > 0 else 0.0
        critical = set(self.critical())
        label_width = max(len(bar.label) for bar in bars)

        def column(t: float) -> int:
            return round((t - t0) * scale)

        end = f"{span:.3f} s"
        lines = [f"{'':{label_width + 4}}0 s{'':{max(width - 3 - len(end), 1)}}{end}"]
        for bar in bars:
            cells = [" "] * width
            details: list[str] = []
            segments: list[tuple[tuple[float, float] | None, str, str, str]] = [
                (bar.enter, "=", bar.enter_end, "enter"),
                (bar.exit, "-", "failed" if bar.exit_failed else "", "exit"),
            ]
            for segment, char, end, what in segments:
                if segment is None:
                    continue
                first, last = column(segment[0]), column(segment[1])
                for i in range(first, last + 1):
                    cells[i] = char
                if end:
                    cells[last] = "X" if end.startswith("failed") else "/"
                outcome = f" {end}" if end else ""
                details.append(f"{what} {segment[1] - segment[0]:.3f} s{outcome}")
            for retried in bar.retries:
                cells[column(retried)] = "r"
            if bar.retries:
                details.append(f"{len(bar.retries) + 1} attempts{' alike' if bar.alike else ''}")
            if bar.enter_end == "skipped":
                details.append("skipped")
            mark = "*" if bar.label in critical else " "
            lines.append(
                f"{mark} {bar.label:<{label_width}} |{''.join(cells)}| {', '.join(details)}"
            )
        legend = "= entering, - exiting, X failed, / cancelled, * held the body back"
        if any(bar.retries for bar in bars):
            legend += ", r retried"
        lines.append(legend)
        return "\n".join(lines)

    def to_chrome_trace(self) -> dict[str, Any]:
        """The events in the Chrome trace event format (a JSON-serialisable dict).

        ``json.dump`` it to a file and open it in https://ui.perfetto.dev or
        ``chrome://tracing``: one track per context manager, one slice per phase, and in
        a :class:`ResourceGraph` a flow arrow from each dependency's ``entered`` to the
        start of each node that needs it.
        """
        trace: list[dict[str, Any]] = []
        bars = self._bars()
        tids = {bar.key: tid for tid, bar in enumerate(bars, start=1)}
        for tid, bar in enumerate(bars, start=1):
            trace.append(
                {
                    "name": "thread_name",
                    "ph": "M",
                    "pid": 1,
                    "tid": tid,
                    "args": {"name": bar.label},
                }
            )
            for segment, what, outcome in (
                (bar.enter, "enter", bar.enter_end or "ok"),
                (bar.exit, "exit", "failed" if bar.exit_failed else "ok"),
            ):
                if segment is not None:
                    trace.append(
                        {
                            "name": f"{what} {bar.label}",
                            "cat": what,
                            "ph": "X",
                            "ts": segment[0] * 1e6,
                            "dur": (segment[1] - segment[0]) * 1e6,
                            "pid": 1,
                            "tid": tid,
                            "args": {"outcome": outcome},
                        }
                    )
            trace.extend(
                {
                    "name": "retried",
                    "cat": "enter",
                    "ph": "i",
                    "s": "t",
                    "ts": retried * 1e6,
                    "pid": 1,
                    "tid": tid,
                }
                for retried in bar.retries
            )
        trace.extend(self._flows(tids))
        return {"traceEvents": trace, "displayTimeUnit": "ms"}

    def _flows(self, tids: dict[tuple[int | None, int], int]) -> list[dict[str, Any]]:
        """Flow events: each node's dependencies, from their ``entered`` to its start."""
        entered: dict[tuple[int | None, int], float] = {}
        flows: list[dict[str, Any]] = []
        for event in self.events:
            if event.kind == ENTERED:
                entered[(event.stage, event.position)] = event.time
            elif event.kind == ENTER_STARTED:
                for dep in event.deps:
                    source = (event.stage, dep)
                    flow = {"name": "needs", "cat": "dependency", "id": len(flows) // 2 + 1}
                    flow |= {"pid": 1}
                    flows.append(
                        flow | {"ph": "s", "tid": tids[source], "ts": entered[source] * 1e6}
                    )
                    key = (event.stage, event.position)
                    flows.append(
                        flow | {"ph": "f", "bp": "e", "tid": tids[key], "ts": event.time * 1e6}
                    )
        return flows


def _label(event: PhaseEvent) -> str:
    stage = "" if event.stage is None else f"{event.stage}."
    return f"{event.name} [{stage}{event.position}]"
