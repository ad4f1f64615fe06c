"""OpenTelemetry spans, checked with the SDK's in-memory exporter (issue 12)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import trio.testing
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from tests import runtime as rt
from tests.fakes import FakeCM, Log
from trio_parallel_cm import ResourceGraph, Retry, parallel_with
from trio_parallel_cm.otel import SpanObserver

pytestmark = pytest.mark.runtimes


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {span.name: span for span in spans}


def seconds(span: ReadableSpan) -> float:
    assert span.start_time is not None and span.end_time is not None
    return (span.end_time - span.start_time) / 1e9


async def test_one_span_for_the_block_and_one_per_context_manager_per_phase(
    autojump_clock: trio.testing.MockClock,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    log: Log = []
    tracer = provider.get_tracer("test")
    db, cache = FakeCM("db", log, 0.3, 0.1), FakeCM("cache", log, 0.2, 0.2)
    with tracer.start_as_current_span("service") as service:
        with SpanObserver("start-up", tracer=tracer) as observer:
            async with parallel_with({"db": db, "cache": cache}, observer=observer):
                await rt.sleep(1)
    spans = by_name(exporter.get_finished_spans())
    assert sorted(spans) == [
        "enter cache",
        "enter db",
        "exit cache",
        "exit db",
        "service",
        "start-up",
    ]
    block = spans["start-up"]
    assert block.parent is not None
    assert block.parent.span_id == service.get_span_context().span_id
    assert seconds(block) == pytest.approx(0.3 + 1 + 0.2)
    for name in ("enter db", "enter cache", "exit db", "exit cache"):
        span = spans[name]
        assert span.parent is not None
        assert block.context is not None
        assert span.parent.span_id == block.context.span_id
        assert span.status.status_code is StatusCode.UNSET
    assert seconds(spans["enter db"]) == pytest.approx(0.3)
    assert seconds(spans["exit cache"]) == pytest.approx(0.2)
    assert dict(spans["enter db"].attributes or {}) == {
        "trio_parallel_cm.name": "db",
        "trio_parallel_cm.position": 0,
        "trio_parallel_cm.deps": (),
        "trio_parallel_cm.optional": False,
        "trio_parallel_cm.outcome": "entered",
    }
    assert (spans["exit db"].attributes or {})["trio_parallel_cm.outcome"] == "exited"


async def test_failures_have_an_error_status_and_the_exception_recorded(
    autojump_clock: trio.testing.MockClock,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    log: Log = []
    tracer = provider.get_tracer("test")
    flaky = iter([OSError("refused 1"), None])

    def connect(config: str) -> FakeCM:
        return FakeCM("conn", log, 0.1, enter_error=next(flaky))

    broken = FakeCM("flush", log, exit_error=ValueError("flush failed"))
    with pytest.RaisesGroup(ValueError), SpanObserver("start-up", tracer=tracer) as observer:
        graph = ResourceGraph(observer=observer)
        config = graph.add(lambda: FakeCM("config", log), name="config")
        graph.add(connect, config, retry=Retry(attempts=2, backoff=0.5), name="conn")
        search = graph.add(
            lambda config: FakeCM("search", log, enter_error=ConnectionRefusedError("down")),
            config,
            name="search",
            optional=True,
        )
        graph.add(lambda search: FakeCM("index", log), search, name="index", optional=True)
        graph.add(lambda: broken, name="flush")
        async with graph:
            pass
    spans = by_name(exporter.get_finished_spans())
    conn = spans["enter conn"]
    [retried] = conn.events
    assert retried.name == "enter_retried"
    assert dict(retried.attributes or {}) == {
        "trio_parallel_cm.attempt": 1,
        "exception.type": "OSError",
        "exception.message": "refused 1",
    }
    assert (conn.attributes or {})["trio_parallel_cm.deps"] == (0,)
    assert seconds(conn) == pytest.approx(0.1 + 0.5 + 0.1)
    search_span = spans["enter search"]
    assert search_span.status.status_code is StatusCode.ERROR
    assert (search_span.attributes or {})["trio_parallel_cm.outcome"] == "tolerated"
    assert [e.name for e in search_span.events] == ["exception"]
    assert "enter index" not in spans
    skipped = [e for e in spans["start-up"].events if e.name == "skipped"]
    assert [dict(e.attributes or {})["trio_parallel_cm.name"] for e in skipped] == ["index"]
    flush = spans["exit flush"]
    assert flush.status.status_code is StatusCode.ERROR
    assert flush.status.description == "ValueError: flush failed"
    assert spans["start-up"].status.status_code is StatusCode.ERROR


async def test_a_retried_failure_s_status_says_alike_attempts_once(
    autojump_clock: trio.testing.MockClock,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    log: Log = []
    mixed = iter([OSError("refused"), OSError("refused"), None])

    def down() -> FakeCM:
        return FakeCM("down", log, enter_error=OSError("refused"))

    def hanging_last() -> FakeCM:
        error = next(mixed)
        return FakeCM("mixed", log, enter_delay=0 if error else 60, enter_error=error)

    with SpanObserver("start-up", tracer=provider.get_tracer("test")) as observer:
        graph = ResourceGraph(observer=observer)
        retry = Retry(attempts=3, backoff=0.1, multiplier=1)
        graph.add(down, retry=retry, optional=True, name="down")
        graph.add(hanging_last, retry=retry, optional=True, enter_timeout=1, name="mixed")
        async with graph:
            pass
    spans = by_name(exporter.get_finished_spans())
    assert spans["enter down"].status.description == "3 attempts failed alike: OSError: refused"
    assert spans["enter mixed"].status.description == (
        "3 attempts failed: attempts 1, 2 alike: OSError: refused; "
        f"attempt 3: {rt.too_slow().__name__}: mixed did not enter within 1 s"
    )
    # The exception recorded is the group itself, every attempt in it.
    events = spans["enter down"].events
    assert [e.name for e in events] == ["enter_retried", "enter_retried", "exception"]
    assert (events[-1].attributes or {})["exception.type"] == "ExceptionGroup"


async def test_without_with_the_phase_spans_are_children_of_the_current_span(
    autojump_clock: trio.testing.MockClock,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("request") as request:
        async with parallel_with(FakeCM("a", []), observer=SpanObserver(tracer=tracer)):
            pass
    spans = by_name(exporter.get_finished_spans())
    assert spans["enter FakeCM"].parent is not None
    assert spans["enter FakeCM"].parent.span_id == request.get_span_context().span_id


def test_the_library_does_not_import_opentelemetry() -> None:
    code = "import sys, trio_parallel_cm; print('opentelemetry' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
