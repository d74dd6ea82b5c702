"""The leak scan's finding (tests/e2e/test_leak_scan.py): a query string reached exported
spans in clear (``http.url`` of ``GET /v1/accounts?owner=<ID number>``). Every service's
app keeps the path and the parameter names in its server spans, never the values."""

from __future__ import annotations

import importlib

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from libs.events.topics import SERVICES
from libs.runtime.tracing import configure_tracing, redact_query

ID_NUMBER = "11010519491231002X"


@pytest.fixture(scope="module")
def exporter() -> InMemorySpanExporter:
    # The provider every service process installs (its query redactor first); a no-op if
    # the process has one already.
    configure_tracing("test", processors=[])
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.mark.parametrize("service", SERVICES)
async def test_query_values_never_reach_a_services_spans(service, exporter):
    app = importlib.import_module(f"services.{service}.main").app
    exporter.clear()
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        await http.get(f"/v1/no-such-route?owner={ID_NUMBER}&status=active")
    spans = [s for s in exporter.get_finished_spans() if s.kind == trace.SpanKind.SERVER]
    assert spans, f"{service}: no server span"
    for span in spans:
        attributes = dict(span.attributes or {})
        assert not any(ID_NUMBER in str(v) for v in attributes.values()), attributes
        assert attributes["url.path"] == "/v1/no-such-route", attributes
        assert attributes["url.query"] == "owner=REDACTED&status=REDACTED", attributes


def test_redact_query_keeps_the_path_and_the_names():
    assert redact_query("http://h/p?a=1&b=&c") == "http://h/p?a=REDACTED&b=REDACTED&c=REDACTED"
    assert redact_query("/p") == "/p" and redact_query("/p?") == "/p?"
    assert redact_query("/p?a=1#frag") == "/p?a=REDACTED#REDACTED"
    assert redact_query("owner=1&x=2", bare=True) == "owner=REDACTED&x=REDACTED"


async def test_a_request_span_is_named_by_its_route_and_probes_make_none(exporter):
    app = importlib.import_module("services.registration.main").app
    exporter.clear()
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        await http.get("/healthz")
        await http.get("/v1/accounts/some-id", headers={"traceparent": caller})
    spans = [s for s in exporter.get_finished_spans() if s.kind == trace.SpanKind.SERVER]
    assert [s.name for s in spans] == ["GET /v1/accounts/{account_id}"]
    # it continues the caller's trace
    assert format(spans[0].context.trace_id, "032x") == caller.split("-")[1]
    assert format(spans[0].parent.span_id, "016x") == caller.split("-")[2]
