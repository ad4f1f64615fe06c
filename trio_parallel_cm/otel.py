"""OpenTelemetry spans of a block's start-up and shutdown: the optional ``otel`` extra.

``pip install "trio_parallel_cm[otel]"`` (it needs ``opentelemetry-api`` only; configure an
SDK and an exporter as usual).  Nothing else in the library imports this module, so it
costs nothing when it is not used.

Example::

    from trio_parallel_cm.otel import SpanObserver

    with SpanObserver("start-up") as observer:
        async with parallel_with(open_db(), open_cache(), observer=observer) as (db, cache):
            ...
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Final, final

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode, Tracer

from . import _runtime
from ._attempts import attempts_of, summary
from ._errors import is_cancellation
from ._timeline import (
    ENTER_FAILED,
    ENTER_RETRIED,
    ENTER_STARTED,
    ENTERED,
    EXIT_FAILED,
    EXIT_STARTED,
    EXITED,
    SKIPPED,
    PhaseEvent,
)

__all__ = ["SpanObserver"]

#: The prefix of every attribute this module sets.
PREFIX: Final = "trio_parallel_cm"


@final
class SpanObserver:
    """An observer that records a block as OpenTelemetry spans.

    Use it as a context manager around the block, and pass it as ``observer=``: it opens
    one span for the block, a child of the current span, and under it one span per context
    manager per phase (``enter NAME``, ``exit NAME``), timed by the phase events.  Each
    span carries the context manager's name, position, stage and dependencies
    (``trio_parallel_cm.name``, ``.position``, ``.stage``, ``.deps``), whether it is
    optional, and the phase's outcome (``trio_parallel_cm.outcome``: ``entered``,
    ``failed``, ``tolerated``, ``cancelled``, ``exited``).  A failure is recorded as an
    exception event with an error status; a retried attempt is an ``enter_retried``
    event on the enter span; a node skipped because an optional node did not enter is a
    ``skipped`` event on the block span.  Used without ``with``, the phase spans are the
    children of the current span in the context manager's task (the caller's, when the
    block was entered).

    Args:
        name: the block span's name.
        tracer: the tracer to use (default: ``trace.get_tracer("trio_parallel_cm")``).

    Example::

        with SpanObserver("start-up") as observer:
            async with graph_of_services(observer=observer) as resources:
                ...
    """

    def __init__(self, name: str = "trio_parallel_cm block", *, tracer: Tracer | None = None):
        self.name = name
        self._tracer = tracer if tracer is not None else trace.get_tracer(PREFIX)
        self._block: Span | None = None
        self._open: dict[tuple[int | None, int], Span] = {}
        self._offset_ns: int | None = None

    def __enter__(self) -> SpanObserver:
        self._block = self._tracer.start_span(self.name, start_time=self._now_ns())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        block, self._block = self._block, None
        for span in self._open.values():  # a phase that never ended (the block was cut)
            span.end(end_time=self._now_ns())
        self._open.clear()
        if block is None:
            return
        if exc is not None and not is_cancellation(exc):
            block.record_exception(exc)
            block.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        block.end(end_time=self._now_ns())

    def __call__(self, event: PhaseEvent) -> None:
        """Record ``event``: start, annotate or end a span."""
        key = (event.stage, event.position)
        when = self._ns(event.time)
        if event.kind in (ENTER_STARTED, EXIT_STARTED):
            what = "enter" if event.kind == ENTER_STARTED else "exit"
            context = None if self._block is None else trace.set_span_in_context(self._block)
            self._open[key] = self._tracer.start_span(
                f"{what} {event.name}", context, attributes=_attributes(event), start_time=when
            )
        elif event.kind == ENTER_RETRIED:
            span = self._open.get(key)
            if span is not None:
                span.add_event("enter_retried", _failure(event), timestamp=when)
        elif event.kind == SKIPPED:
            if self._block is not None:
                self._block.add_event("skipped", _attributes(event), timestamp=when)
        else:
            span = self._open.pop(key, None)
            if span is not None:
                _finish(span, event)
                span.end(end_time=when)

    def _now_ns(self) -> int:
        return self._ns(_runtime.current("SpanObserver").current_time())

    def _ns(self, loop_time: float) -> int:
        """The event loop's clock (virtual in tests) mapped to the wall clock of spans."""
        if self._offset_ns is None:
            now = _runtime.current("SpanObserver").current_time()
            self._offset_ns = time.time_ns() - round(now * 1e9)
        return self._offset_ns + round(loop_time * 1e9)


def _attributes(event: PhaseEvent) -> dict[str, str | int | bool | list[int]]:
    attributes: dict[str, str | int | bool | list[int]] = {
        f"{PREFIX}.name": event.name,
        f"{PREFIX}.position": event.position,
        f"{PREFIX}.deps": list(event.deps),
        f"{PREFIX}.optional": event.optional,
    }
    if event.stage is not None:
        attributes[f"{PREFIX}.stage"] = event.stage
    return attributes


def _failure(event: PhaseEvent) -> dict[str, str | int]:
    exc = event.exception
    assert exc is not None
    return {
        f"{PREFIX}.attempt": event.attempt,
        "exception.type": type(exc).__qualname__,
        "exception.message": str(exc),
    }


def _finish(span: Span, event: PhaseEvent) -> None:
    """Set the outcome of the phase that ``event`` ends."""
    exc = event.exception
    if event.kind in (ENTERED, EXITED):
        outcome = "entered" if event.kind == ENTERED else "exited"
    elif exc is None:
        outcome = "cancelled"  # an enter cancelled: another failed, or the caller
    else:
        tolerated = event.kind == ENTER_FAILED and event.optional and isinstance(exc, Exception)
        outcome = "tolerated" if tolerated else "failed"
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, _description(exc)))
    assert event.kind in (ENTERED, EXITED, ENTER_FAILED, EXIT_FAILED)
    span.set_attribute(f"{PREFIX}.outcome", outcome)


def _description(exc: BaseException) -> str:
    """A failed phase's status: the exception; a retried node's, alike attempts once."""
    attempts = attempts_of(exc)
    if attempts is None:
        return f"{type(exc).__name__}: {exc}"
    return summary(attempts, _description)
