"""OpenTelemetry: a tracer provider per service, FastAPI spans, and context for new events.

Spans are exported only when ``OTEL_TRACES_EXPORTER=console`` (locally) or an OTLP
exporter is configured by the deployment; otherwise they are created and dropped,
which keeps ``traceparent`` flowing through events at almost no cost.
"""

from __future__ import annotations

import os

from fastapi import FastAPI
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

_configured = False


def configure_tracing(service: str) -> None:
    global _configured
    if _configured:
        return
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    if os.environ.get("OTEL_TRACES_EXPORTER") == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    trace.set_tracer_provider(provider)
    _configured = True


def instrument_app(app: FastAPI) -> None:
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    # One server span per request; the per-chunk "http send/receive" spans add nothing to a
    # causal trace and cost about a tenth of a small request's CPU.
    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz,metrics",
                                       exclude_spans=["receive", "send"])


def current_traceparent() -> str | None:
    """The W3C traceparent of the active span, to stamp on the events a request decides."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


def context_of(traceparent: str | None):
    """An OpenTelemetry context continuing the trace of an event (for consumer spans)."""
    return propagate.extract({"traceparent": traceparent} if traceparent else {})


def consumer_span(consumer: str):
    """For :class:`libs.events.Consumer`: each event handled in a span continuing its trace,
    so the events the handler appends carry that trace on (one trace per causal chain)."""
    tracer = trace.get_tracer("libs.events.consumer")

    def span(event):
        return tracer.start_as_current_span(
            f"{consumer} {event.type}", context=context_of(event.traceparent),
            kind=trace.SpanKind.CONSUMER,
            attributes={"messaging.system": "kafka", "messaging.consumer.group.name": consumer,
                        "cloudevents.event_id": event.id, "cloudevents.event_type": event.type,
                        "cloudevents.event_subject": event.subject})

    return span
