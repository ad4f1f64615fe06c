"""A start-up as OpenTelemetry spans: one for the block, one per resource per phase."""

from functools import partial

import trio
import trio.testing
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from trio_parallel_cm import ResourceGraph
from trio_parallel_cm.otel import SpanObserver

from resources import Journal, open_app, open_cache, open_db, open_search


async def main() -> None:
    exporter = InMemorySpanExporter()  # in production: your exporter, set up once
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("service")

    log = Journal("db", "cache", "search", "app")
    service = tracer.start_as_current_span("service")  # the caller's current span
    with service, SpanObserver("start-up", tracer=tracer) as observer:
        graph = ResourceGraph(observer=observer)
        db = graph.add(partial(open_db, log))
        cache = graph.add(partial(open_cache, log))
        graph.add(partial(open_search, log, reachable=False), optional=True)
        graph.add(partial(open_app, log), db, cache)
        async with graph:
            await trio.sleep(0.1)

    spans = exporter.get_finished_spans()
    names = {span.context.span_id: span.name for span in spans if span.context}
    for span in spans:
        if span.name == "service":
            continue  # (timed by the wall clock, not by this example's virtual one)
        assert span.start_time is not None
        assert span.end_time is not None
        assert span.parent is not None
        seconds = (span.end_time - span.start_time) / 1e9
        outcome = (span.attributes or {}).get("trio_parallel_cm.outcome", "")
        parent = names[span.parent.span_id]
        print(f"{span.name:<17} {seconds:.2f} s  {outcome:<9}  in {parent}")


if __name__ == "__main__":
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
