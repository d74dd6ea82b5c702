"""OpenTelemetry: a tracer provider per service process, FastAPI spans, context for events.

Exporters follow the standard ``OTEL_*`` variables:

- ``OTEL_TRACES_EXPORTER``: ``otlp`` (OTLP over HTTP/protobuf to
  ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_ENDPOINT``, with
  ``OTEL_EXPORTER_OTLP_HEADERS``, ``..._TIMEOUT`` etc. read by the exporter itself),
  ``console`` (development), ``none``; a comma-separated list is honoured. Unset: ``otlp``
  when an OTLP endpoint is set, otherwise ``none`` (tests and ``make run`` export nothing).
- ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES`` add to the resource (the service's
  name is the default); ``OTEL_BSP_*`` tune the batch processor; ``OTEL_SDK_DISABLED=true``.

A process that exports no span records none (:class:`RecordWhenExported`, ADR 0042): its
spans are still made, with their ids, so ``traceparent`` flows through events and logs as
before, but unsampled (flag ``00``) and without attributes, events or span processors. An
exporter added later, as the tests add theirs, turns recording on; ``OTEL_TRACES_SAMPLER``
replaces this rule with the SDK's own.

Every consumed event gets a CONSUMER span that continues the producing trace (its parent is
the span that decided the event) and also carries a span link to that span; every page the
relay publishes gets a PRODUCER span linked to the spans of the events in it.

URL query strings never reach an exported span (:class:`QueryRedactor`, installed first):
a client may put a personal number in one, and spans leave the process
(docs/decisions/0031-regulator-scope.md).
"""

from __future__ import annotations

import contextvars
import logging
import os

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
)
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, TraceFlags

from .admission import PROBE_PATHS

log = logging.getLogger(__name__)

_configured = False

# The correlation id of the event being handled (logs carry it; see libs.runtime.logs).
correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "correlation_id", default=None)

MAX_LINKS = 128  # the SDK's default span link limit


# Span attributes that carry a request's query string (old and stable HTTP conventions).
_URL_ATTRIBUTES = ("http.url", "http.target", "url.full", "url.query")
REDACTED = "REDACTED"


def redact_query(url: str, *, bare: bool = False) -> str:
    """``url`` with every query parameter's value replaced by ``REDACTED`` (the names kept);
    ``bare``: ``url`` is the query string itself (``url.query``)."""
    base, sep, query = ("", "?", url) if bare else url.partition("?")
    if not sep or not query:
        return url
    query, hashed, fragment = query.partition("#")
    names = [part.split("=", 1)[0] for part in query.split("&") if part]
    redacted = "&".join(f"{name}={REDACTED}" for name in names)
    return (redacted if bare else f"{base}?{redacted}") + (hashed and f"#{REDACTED}")


def redact_span(span) -> None:
    """Spans keep a request's path and parameter names, never the values: a query may name
    a person (``GET /v1/accounts?owner=<ID number>``), and spans leave the process (ADR
    0031, ADR 0033, the leak scan). ``span`` must still be recording."""
    if span is None or not span.is_recording():
        return
    attributes = getattr(span, "attributes", None) or {}
    for key in _URL_ATTRIBUTES:
        value = attributes.get(key)
        if isinstance(value, str) and value:
            redacted = redact_query(value, bare=key == "url.query")
            if redacted != value:
                span.set_attribute(key, redacted)


class QueryRedactor(SpanProcessor):
    """Strips URL query strings from a span's attributes as it starts (any instrumentation;
    FastAPI's server span sets ``url.query`` when it starts and never again)."""

    def on_start(self, span, parent_context=None) -> None:
        redact_span(span)


def exporters_from_env(environ=os.environ) -> list[str]:
    """The trace exporters the ``OTEL_*`` variables ask for (``[]``: none)."""
    names = environ.get("OTEL_TRACES_EXPORTER")
    if names is None:
        endpoint = (environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                    or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))
        return ["otlp"] if endpoint else []
    return [n.strip().lower() for n in names.split(",") if n.strip().lower() not in ("", "none")]


def span_processors(environ=os.environ) -> list[SpanProcessor]:
    processors: list[SpanProcessor] = []
    for name in exporters_from_env(environ):
        if name == "console":
            processors.append(BatchSpanProcessor(ConsoleSpanExporter()))
        elif name == "otlp":
            protocol = (environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"))
            if protocol != "http/protobuf":
                log.warning("OTLP protocol %s is not installed; using http/protobuf", protocol)
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            processors.append(BatchSpanProcessor(OTLPSpanExporter()))
        else:
            log.warning("unknown OTEL_TRACES_EXPORTER %r ignored", name)
    return processors


class RecordWhenExported(Sampler):
    """The SDK's default (``parentbased_always_on``) while the provider has an exporter;
    until then every span is dropped: a non-recording span that still has its ids, so the
    trace goes on through ``traceparent`` (unsampled), at a fraction of a recorded span's
    cost (ADR 0042)."""

    def __init__(self) -> None:
        self.exporting = False
        self._recording = ParentBased(ALWAYS_ON)

    def should_sample(self, parent_context, trace_id, name, kind=None, attributes=None,
                      links=None, trace_state=None) -> SamplingResult:
        if self.exporting:
            return self._recording.should_sample(parent_context, trace_id, name, kind,
                                                 attributes, links, trace_state)
        parent = trace.get_current_span(parent_context).get_span_context()
        return SamplingResult(Decision.DROP, None, parent.trace_state if parent.is_valid
                              else None)

    def get_description(self) -> str:
        return f"RecordWhenExported{{exporting={self.exporting}}}"


class _Provider(TracerProvider):
    """A tracer provider that tells its :class:`RecordWhenExported` sampler when a span
    processor other than the query redactor (an exporter's) joins."""

    def add_span_processor(self, span_processor: SpanProcessor) -> None:
        super().add_span_processor(span_processor)
        if isinstance(self.sampler, RecordWhenExported) and not isinstance(
                span_processor, QueryRedactor):
            self.sampler.exporting = True


# Headers whose context only OpenTelemetry's own propagators read: a request carrying one
# takes the framework's path (:func:`dropped_request_context`).
_PROPAGATED_ELSEWHERE = (b"tracestate", b"baggage")


def dropped_request_context(scope, provider=None) -> Context | None:
    """The context of an HTTP request whose server span would be dropped, made without the
    framework's telemetry; None where the framework's path must run (ADR 0043).

    While the process's provider records nothing (:class:`RecordWhenExported` without an
    exporter), FastAPI's server span is a non-recording span whose only use is its ids: the
    caller's trace id (or a new one), a new span id, flag ``00``. Building its attributes,
    asking the sampler and the propagators cost more than the span is worth (about a tenth
    of a registration's CPU in the API process), so this makes the same span directly.
    None when a span would be recorded (an exporter, ``OTEL_TRACES_SAMPLER``, another
    provider) or when the request carries ``tracestate`` or ``baggage``. ``provider``: the
    process's unless given."""
    provider = provider or trace.get_tracer_provider()
    sampler = getattr(provider, "sampler", None)
    if not isinstance(sampler, RecordWhenExported) or sampler.exporting:
        return None
    traceparent = None
    for name, value in scope["headers"]:
        if name == b"traceparent":
            traceparent = value
        elif name in _PROPAGATED_ELSEWHERE:
            return None
    ids = provider.id_generator
    caller = span_context_of(traceparent.decode("latin-1")) if traceparent else None
    span = NonRecordingSpan(SpanContext(
        trace_id=caller.trace_id if caller is not None else ids.generate_trace_id(),
        span_id=ids.generate_span_id(), is_remote=False, trace_flags=TraceFlags(0)))
    return trace.set_span_in_context(span)


def make_provider(service: str, processors: list[SpanProcessor] | None = None,
                  environ=os.environ) -> TracerProvider:
    """A service's tracer provider: resource ``service.name`` = the service unless
    ``OTEL_SERVICE_NAME`` says otherwise, the query redactor first, then ``processors``
    (default: the exporters ``OTEL_*`` ask for); spans recorded only once it has an exporter,
    unless ``OTEL_TRACES_SAMPLER`` names the SDK's sampler to use instead."""
    attrs = {} if environ.get("OTEL_SERVICE_NAME") else {"service.name": service}
    # None: the SDK reads OTEL_TRACES_SAMPLER (and its argument) itself
    sampler = None if environ.get("OTEL_TRACES_SAMPLER") else RecordWhenExported()
    provider = _Provider(sampler=sampler, resource=Resource.create(attrs))
    provider.add_span_processor(QueryRedactor())  # first: the exporters see redacted spans
    for processor in span_processors(environ) if processors is None else processors:
        provider.add_span_processor(processor)
    return provider


def configure_tracing(service: str, *, processors: list[SpanProcessor] | None = None) -> None:
    """Install the process's tracer provider (:func:`make_provider`), once."""
    global _configured
    if _configured or os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return
    trace.set_tracer_provider(make_provider(service, processors))
    _configured = True


def _untraced(scope) -> bool:
    # probes and scrapes: their spans would say nothing
    return scope.get("path") in PROBE_PATHS


def telemetry_config() -> dict:
    """FastAPI's own OpenTelemetry support (``FastAPI(telemetry=...)``): one SERVER span per
    request, continuing the caller's ``traceparent``, named by the route's template, on the
    process's tracer provider (:func:`configure_tracing`). No span per dependency, endpoint
    and serialization, no HTTP metrics through OpenTelemetry (Prometheus has them,
    :mod:`libs.runtime.metrics`), no log records through it (:mod:`libs.runtime.logs`).

    The query string FastAPI records (``url.query``) is redacted as the span starts
    (:class:`QueryRedactor`). This replaced opentelemetry-instrumentation-fastapi, whose
    ASGI middleware cost about 0.3 ms of CPU per request more for the same span (ADR 0039).
    """
    return {"tracing": True, "metrics": False, "logs": False, "operation_spans": False,
            "auto_configure": False, "exclude": _untraced}


def current_traceparent() -> str | None:
    """The W3C traceparent of the active span, to stamp on the events a request decides."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


def context_of(traceparent: str | None):
    """An OpenTelemetry context continuing the trace of an event (for consumer spans)."""
    return propagate.extract({"traceparent": traceparent} if traceparent else {})


def span_context_of(traceparent: str | None) -> SpanContext | None:
    """The (remote) span context a W3C ``traceparent`` names, or None if it names none.

    Parsed by hand: the relay links every event of a page, and ``propagate.extract``
    costs several times more."""
    if not traceparent:
        return None
    parts = traceparent.split("-")
    if len(parts) < 4 or len(parts[1]) != 32 or len(parts[2]) != 16:
        return None
    try:
        ctx = SpanContext(trace_id=int(parts[1], 16), span_id=int(parts[2], 16),
                          is_remote=True, trace_flags=TraceFlags(int(parts[3][:2], 16)))
    except ValueError:
        return None
    return ctx if ctx.is_valid else None


class _EventSpan:
    """Context manager: the consumer span of one event, with the correlation id set."""

    __slots__ = ("_span", "_correlation", "_token")

    def __init__(self, span_cm, event) -> None:
        self._span = span_cm
        self._correlation = getattr(event, "correlation_id", None)

    def __enter__(self):
        self._token = correlation_id.set(self._correlation)
        return self._span.__enter__()

    def __exit__(self, *exc):
        try:
            return self._span.__exit__(*exc)
        finally:
            correlation_id.reset(self._token)


def consumer_span(consumer: str, provider=None):
    """For :class:`libs.events.Consumer`: each event handled in a span continuing its trace,
    so the events the handler appends carry that trace on (one trace per causal chain), with
    a link to the producing span (where a batch or a redrive would start a new trace, the
    link still leads back)."""
    tracer = trace.get_tracer("libs.events.consumer", tracer_provider=provider)

    def span(event):
        producer = span_context_of(event.traceparent)
        links = [Link(producer, {"messaging.link": "producer"})] if producer else None
        return _EventSpan(tracer.start_as_current_span(
            f"{consumer} process {event.type}", context=context_of(event.traceparent),
            kind=trace.SpanKind.CONSUMER, links=links,
            attributes={"messaging.system": "kafka", "messaging.operation.type": "process",
                        "messaging.consumer.group.name": consumer,
                        "cloudevents.event_id": event.id, "cloudevents.event_type": event.type,
                        "cloudevents.event_subject": event.subject or "",
                        "correlation_id": event.correlation_id or ""}), event)

    return span


def follow_up_span(name: str, event, provider=None):
    """Work done later on behalf of ``event`` (a periodic task finishing what a consumed
    event started): a span continuing its trace, linked to it, with its correlation id, so
    that the events appended inside stay in the event's causal chain."""
    tracer = trace.get_tracer("libs.runtime.follow_up", tracer_provider=provider)
    producer = span_context_of(event.traceparent)
    links = [Link(producer, {"messaging.link": "follows"})] if producer else None
    return _EventSpan(tracer.start_as_current_span(
        name, context=context_of(event.traceparent), kind=trace.SpanKind.INTERNAL,
        links=links, attributes={"cloudevents.event_id": event.id,
                                 "cloudevents.event_type": event.type,
                                 "correlation_id": event.correlation_id or ""}), event)


def relay_span(topic: str, provider=None):
    """For :class:`libs.events.Relay`: a PRODUCER span per published page, linked to the
    span that decided each of its events (the first ``MAX_LINKS``)."""
    tracer = trace.get_tracer("libs.events.outbox", tracer_provider=provider)

    def span(events):
        links = []
        for e in events:
            ctx = span_context_of(e.traceparent)
            if ctx is not None:
                links.append(Link(ctx, {"cloudevents.event_id": e.id}))
                if len(links) >= MAX_LINKS:
                    break
        return tracer.start_as_current_span(
            f"{topic} publish", kind=trace.SpanKind.PRODUCER, links=links,
            context=context_of(None),
            attributes={"messaging.system": "kafka", "messaging.operation.type": "send",
                        "messaging.destination.name": topic,
                        "messaging.batch.message_count": len(events)})

    return span
