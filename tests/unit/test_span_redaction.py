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
from libs.runtime.tracing import redact_query

ID_NUMBER = "11010519491231002X"


@pytest.fixture(scope="module")
def exporter() -> InMemorySpanExporter:
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):  # nothing installed yet in this process
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
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
        url = attributes.get("http.url") or attributes.get("url.full")
        assert url.endswith("/v1/no-such-route?owner=REDACTED&status=REDACTED"), url


def test_redact_query_keeps_the_path_and_the_names():
    assert redact_query("http://h/p?a=1&b=&c") == "http://h/p?a=REDACTED&b=REDACTED&c=REDACTED"
    assert redact_query("/p") == "/p" and redact_query("/p?") == "/p?"
    assert redact_query("/p?a=1#frag") == "/p?a=REDACTED#REDACTED"
    assert redact_query("owner=1&x=2", bare=True) == "owner=REDACTED&x=REDACTED"
