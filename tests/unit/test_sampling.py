"""Spans are recorded only where they are exported (libs.runtime.tracing, ADR 0042).

A service process that exports nothing still makes every span with its ids, so a request's
trace goes on through the events it decides (their ``traceparent``) and the consumers that
handle them; the spans only record nothing. An exporter turns recording on, whenever it is
added; ``OTEL_TRACES_SAMPLER`` puts the SDK's own sampler in place of this rule.
"""

from __future__ import annotations

from opentelemetry import propagate
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased

from libs.runtime.tracing import RecordWhenExported, context_of, make_provider

CALLER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_without_an_exporter_spans_keep_their_ids_and_record_nothing():
    provider = make_provider("test", environ={})
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("request", context=context_of(CALLER),
                                      attributes={"url.path": "/v1/accounts"}) as span:
        assert not span.is_recording()
        assert not isinstance(span, ReadableSpan)
        ctx = span.get_span_context()
        # the caller's trace goes on, under a span id of this process's own
        assert format(ctx.trace_id, "032x") == CALLER.split("-")[1]
        assert ctx.is_valid and format(ctx.span_id, "016x") != CALLER.split("-")[2]
        carrier: dict[str, str] = {}
        propagate.inject(carrier)  # what the events decided here carry
        assert carrier["traceparent"] == (
            f"00-{CALLER.split('-')[1]}-{format(ctx.span_id, '016x')}-00")
        with tracer.start_as_current_span("child") as child:
            assert child.get_span_context().trace_id == ctx.trace_id
            assert not child.is_recording()


def test_an_exporter_added_later_turns_recording_on():
    provider = make_provider("test", environ={})
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("before") as span:
        assert not span.is_recording()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with tracer.start_as_current_span("after", context=context_of(CALLER)) as span:
        assert span.is_recording()
    [finished] = exporter.get_finished_spans()
    assert finished.name == "after"
    assert format(finished.context.trace_id, "032x") == CALLER.split("-")[1]
    assert finished.resource.attributes["service.name"] == "test"


def test_exporters_from_the_environment_record_from_the_start():
    provider = make_provider("test", environ={"OTEL_TRACES_EXPORTER": "console"})
    assert isinstance(provider.sampler, RecordWhenExported) and provider.sampler.exporting
    with provider.get_tracer("t").start_as_current_span("request") as span:
        assert span.is_recording()
    provider.shutdown()


def test_otel_traces_sampler_replaces_the_rule(monkeypatch):
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_always_on")
    provider = make_provider("test", processors=[])
    assert isinstance(provider.sampler, ParentBased)
    with provider.get_tracer("t").start_as_current_span("request") as span:
        assert span.is_recording()  # no exporter, recorded all the same
