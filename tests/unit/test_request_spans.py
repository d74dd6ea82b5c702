"""A request's server span where nothing records it (libs.runtime.tracing, ADR 0043).

Without an exporter, FastAPI's server span would be dropped: a non-recording span that
only carries its ids on. The services' app makes that span itself, without the framework's
telemetry, and it must be the span the SDK would have made: the caller's trace (or a new
one), a span id of its own, flag ``00``. Wherever a span is recorded, or the request
carries context only OpenTelemetry's propagators read, FastAPI's own telemetry runs.
"""

from __future__ import annotations

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from libs.runtime.app import ServiceApp
from libs.runtime.tracing import (
    context_of,
    current_traceparent,
    dropped_request_context,
    make_provider,
    telemetry_config,
)

CALLER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TRACE, CALLER_SPAN = CALLER.split("-")[1:3]


def scope_with(*headers: tuple[bytes, bytes]) -> dict:
    return {"type": "http", "path": "/v1/accounts", "headers": list(headers)}


def _span(context):
    return trace.get_current_span(context).get_span_context()


def test_the_span_made_directly_is_the_one_the_sdk_would_drop():
    provider = make_provider("test", environ={})
    made = _span(dropped_request_context(scope_with((b"traceparent", CALLER.encode())),
                                         provider))
    with provider.get_tracer("t").start_as_current_span(
            "POST", context=context_of(CALLER), kind=trace.SpanKind.SERVER) as sdk_span:
        sdk = sdk_span.get_span_context()
    for ctx in (made, sdk):
        assert format(ctx.trace_id, "032x") == TRACE  # the caller's trace goes on
        assert format(ctx.span_id, "016x") != CALLER_SPAN and ctx.is_valid
        assert ctx.trace_flags == 0 and not ctx.is_remote  # unsampled, this process's own
    assert made.span_id != sdk.span_id


def test_without_a_caller_a_new_trace_begins():
    provider = make_provider("test", environ={})
    first = _span(dropped_request_context(scope_with(), provider))
    second = _span(dropped_request_context(scope_with((b"traceparent", b"garbage")),
                                           provider))
    assert first.is_valid and second.is_valid and first.trace_id != second.trace_id


@pytest.mark.parametrize("header", [b"tracestate", b"baggage"])
def test_context_the_propagators_read_takes_the_frameworks_path(header):
    provider = make_provider("test", environ={})
    scope = scope_with((b"traceparent", CALLER.encode()), (header, b"k=v"))
    assert dropped_request_context(scope, provider) is None


def test_a_recorded_span_takes_the_frameworks_path():
    exporting = make_provider("test", processors=[SimpleSpanProcessor(InMemorySpanExporter())],
                              environ={})
    assert dropped_request_context(scope_with(), exporting) is None
    # the SDK's sampler decides, or another provider
    assert dropped_request_context(scope_with(), make_provider("test", environ={
        "OTEL_TRACES_SAMPLER": "always_off"})) is None
    assert dropped_request_context(scope_with(), trace.NoOpTracerProvider()) is None


def _app() -> ServiceApp:
    app = ServiceApp(telemetry=telemetry_config())

    @app.post("/v1/accounts")
    async def decide() -> dict:
        return {"traceparent": current_traceparent()}  # what the events decided carry

    return app


async def _decide(app, **headers) -> str | None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        return (await http.post("/v1/accounts", headers=headers)).json()["traceparent"]


async def test_the_events_of_an_unrecorded_request_carry_the_callers_trace(monkeypatch):
    provider = make_provider("test", environ={})
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    carried = await _decide(_app(), traceparent=CALLER)
    version, trace_id, span_id, flags = carried.split("-")
    assert (version, trace_id, flags) == ("00", TRACE, "00") and span_id != CALLER_SPAN
    assert (await _decide(_app())).split("-")[1] != TRACE


async def test_a_recorded_request_gets_frameworks_server_span(monkeypatch):
    exporter = InMemorySpanExporter()
    provider = make_provider("test", processors=[SimpleSpanProcessor(exporter)], environ={})
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    carried = await _decide(_app(), traceparent=CALLER)
    [span] = [s for s in exporter.get_finished_spans() if s.kind == trace.SpanKind.SERVER]
    assert span.name == "POST /v1/accounts"
    assert format(span.parent.span_id, "016x") == CALLER_SPAN
    assert carried == f"00-{TRACE}-{format(span.context.span_id, '016x')}-01"
