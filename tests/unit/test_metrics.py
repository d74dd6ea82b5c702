"""Metrics, traces and logs of a service runtime, on fakes (no infrastructure)."""

from __future__ import annotations

import json
import logging
import re
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from libs.events import Envelope
from libs.runtime import metrics as m
from libs.runtime.logs import JsonFormatter
from libs.runtime.tracing import (
    consumer_span,
    exporters_from_env,
    relay_span,
    span_context_of,
    span_processors,
)

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "public-accounts.json"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


class FakeConn:
    def __init__(self, backlog: int, oldest: datetime | None) -> None:
        self.row = (backlog, oldest)

    async def fetchrow(self, stmt, params):
        return self.row


class FakeDb:
    is_postgres = True

    def __init__(self, conn: FakeConn) -> None:
        self.conn = conn

    @asynccontextmanager
    async def connect(self):
        yield self.conn


class FakeStore:
    async def reader_wait_seconds(self, conn) -> float:
        return 0.25


TP = SimpleNamespace


class FakeSource:
    """The parts of aiokafka's consumer the lag reads."""

    def __init__(self) -> None:
        self.tps = [TP(topic="registration.events", partition=1),
                    TP(topic="registration.events", partition=0)]

    def assignment(self):
        return set(map(_hashable, self.tps))

    def highwater(self, tp):
        return {0: 10, 1: None}[tp.partition]

    async def end_offsets(self, tps):
        return {tp: 7 for tp in tps}

    async def position(self, tp):
        return 2


def _hashable(tp):
    return _TP(tp.topic, tp.partition)


class _TP(tuple):
    def __new__(cls, topic, partition):
        return super().__new__(cls, (topic, partition))

    topic = property(lambda self: self[0])
    partition = property(lambda self: self[1])


def fake_runtime(service: str = "registration", *, with_consumer: bool = True):
    consumer = SimpleNamespace(name="verification-reactions", handled=5, dead_lettered=2,
                               source=FakeSource(), positions={_TP("registration.events", 0): 4})
    relay = SimpleNamespace(name="relay:registration.events", published=11,
                            last_publish_lag_seconds=0.5)
    rt = SimpleNamespace(settings=SimpleNamespace(service=service),
                         db=FakeDb(FakeConn(3, datetime.now(UTC) - timedelta(seconds=30))),
                         store=FakeStore(), relay=relay,
                         consumers=[consumer] if with_consumer else [],
                         workers=[SimpleNamespace(name="consumer:verification-reactions",
                                                  restarts=2, state=lambda: "ok")])
    return rt


@pytest.fixture(autouse=True)
def no_checkpoint_table(monkeypatch):
    async def load_checkpoint(conn, name):
        assert name == "relay:registration.events"
        return SimpleNamespace(xid=0, position=0)

    monkeypatch.setattr(m, "load_checkpoint", load_checkpoint)


def families(text: bytes) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text.decode())}


def sample(fams, family: str, name: str | None = None, **labels) -> float:
    for s in fams[family].samples:
        if (name is None or s.name == name) and all(s.labels.get(k) == v
                                                    for k, v in labels.items()):
            return s.value
    raise AssertionError(f"no {family} sample with {labels}: {fams[family].samples}")


async def test_every_family_is_exported_with_the_kernels_figures():
    rt = fake_runtime()
    metrics = m.RuntimeMetrics(rt)
    hooks = metrics.consumer_hooks("verification-reactions")
    hooks["observe_handler"](0.003, 1)
    hooks["observe_batch"](0.02, 4)
    metrics.relay_hook()(0.01, 100)
    fams = families(await metrics.exposition())
    # prometheus_client names counters' families without the _total suffix
    exported = {n if n in fams else n.removesuffix("_total") for n in m.FAMILIES}
    assert exported - {"http_server_request_duration_seconds"} <= set(fams), fams.keys()
    assert sample(fams, "events_published", "events_published_total",
                  service="registration") == 11
    assert sample(fams, "relay_publish_lag_seconds") == 0.5
    assert sample(fams, "relay_backlog_events") == 3
    assert 29 <= sample(fams, "relay_backlog_oldest_age_seconds") < 60
    assert sample(fams, "events_handled", consumer="verification-reactions") == 5
    assert sample(fams, "dead_letters", consumer="verification-reactions") == 2
    assert sample(fams, "log_reader_wait_seconds") == 0.25
    assert sample(fams, "worker_restarts", worker="consumer:verification-reactions") == 2
    assert sample(fams, "worker_up", worker="consumer:verification-reactions") == 1
    # partition 0: highwater 10, handled up to 4; partition 1: end asked of the broker
    # (7), position where the consumer will fetch (2)
    assert sample(fams, "consumer_lag_records", partition="0") == 6
    assert sample(fams, "consumer_lag_records", partition="1") == 5
    assert sample(fams, "consumer_handler_duration_seconds",
                  "consumer_handler_duration_seconds_count",
                  consumer="verification-reactions") == 1
    assert sample(fams, "consumer_batch_duration_seconds",
                  "consumer_batch_duration_seconds_sum") == pytest.approx(0.02)
    assert sample(fams, "relay_publish_duration_seconds",
                  "relay_publish_duration_seconds_count") == 1


async def test_each_runtime_has_its_own_registry():
    a, b = m.RuntimeMetrics(fake_runtime("registration")), m.RuntimeMetrics(
        fake_runtime("verification"))
    assert a.registry is not b.registry
    assert REGISTRY.get_sample_value("events_published_total",
                                     {"service": "registration"}) is None
    fa, fb = families(await a.exposition()), families(await b.exposition())
    assert sample(fa, "events_published", service="registration") == 11
    assert sample(fb, "events_published", service="verification") == 11


async def test_a_scrape_survives_a_database_that_does_not_answer():
    rt = fake_runtime(with_consumer=False)

    @asynccontextmanager
    async def broken():
        raise ConnectionError("down")
        yield

    rt.db.connect = broken
    fams = families(await m.RuntimeMetrics(rt).exposition())
    assert sample(fams, "events_published") == 11
    assert fams["relay_backlog_events"].samples == []


async def test_http_requests_are_labelled_by_route_template_and_status():
    rt = fake_runtime(with_consumer=False)
    metrics = m.RuntimeMetrics(rt)
    app = FastAPI()
    app.add_middleware(m.HttpMetricsMiddleware, metrics_of=lambda: metrics)

    @app.get("/v1/accounts/{account_id}")
    async def get(account_id: str):
        return {"id": account_id}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://t") as http:
        for i in range(3):
            assert (await http.get(f"/v1/accounts/a{i}")).status_code == 200
        assert (await http.get("/nowhere")).status_code == 404
    fams = families(await metrics.exposition())
    count = "http_server_request_duration_seconds_count"
    assert sample(fams, "http_server_request_duration_seconds", count, method="GET",
                  route="/v1/accounts/{account_id}", status="200") == 3
    assert sample(fams, "http_server_request_duration_seconds", count,
                  route="unmatched", status="404") == 1


def event(traceparent: str | None) -> Envelope:
    return Envelope.new(type="registration.AccountRegistrationSubmitted", data={},
                        stream_id="acc-1", source="/registration", time=T0,
                        traceparent=traceparent)


def test_a_consumed_event_continues_and_links_the_producing_span():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace_id, span_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    e = event(f"00-{trace_id}-{span_id}-01")
    with consumer_span("verification-reactions", provider)(e):
        logging.getLogger("t").info("handling")
    with relay_span("registration.events", provider)([e, event(None)]):
        pass
    consumed, published = exporter.get_finished_spans()
    assert format(consumed.context.trace_id, "032x") == trace_id
    assert format(consumed.parent.span_id, "016x") == span_id
    [link] = consumed.links
    assert (format(link.context.trace_id, "032x"), format(link.context.span_id, "016x")) == (
        trace_id, span_id)
    assert consumed.attributes["correlation_id"] == e.correlation_id
    assert [format(lk.context.span_id, "016x") for lk in published.links] == [span_id]
    assert published.parent is None


def test_traceparents_that_name_no_span_give_no_link():
    assert span_context_of(None) is None
    assert span_context_of("garbage") is None
    assert span_context_of("00-" + "0" * 32 + "-" + "0" * 16 + "-01") is None


def test_json_logs_carry_the_trace_and_the_correlation_id():
    provider = TracerProvider()
    e = event("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    formatter = JsonFormatter("verification")
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "hello", None, None)
    with consumer_span("c", provider)(e):
        entry = json.loads(formatter.format(record))
    assert entry["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert entry["correlation_id"] == e.correlation_id
    assert "trace_id" not in json.loads(formatter.format(record))


def test_exporters_follow_the_standard_variables():
    assert exporters_from_env({}) == []
    assert exporters_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}) == ["otlp"]
    assert exporters_from_env({"OTEL_TRACES_EXPORTER": "console"}) == ["console"]
    assert exporters_from_env({"OTEL_TRACES_EXPORTER": "none",
                               "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}) == []
    [otlp] = span_processors({"OTEL_TRACES_EXPORTER": "otlp"})
    assert type(otlp.span_exporter).__name__ == "OTLPSpanExporter"
    otlp.shutdown()


def test_the_dashboard_names_only_exported_metrics_and_shows_every_family():
    board = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    assert exprs
    known = set(m.FAMILIES)
    series = known | {f"{h}_{s}" for h in m.HISTOGRAMS for s in ("bucket", "sum", "count")}
    shown = set()
    for expr in exprs:
        names = {n for n in re.findall(r"\b([a-z_][a-z0-9_]*)\s*[{\[]", expr)
                 if n not in PROMQL_WORDS}
        assert names, expr
        assert names <= series, f"{expr}: {names - series}"
        shown |= {n.removesuffix("_bucket").removesuffix("_sum").removesuffix("_count")
                  if n not in known else n for n in names}
    assert shown == known, known - shown


PROMQL_WORDS = {"sum", "rate", "irate", "increase", "histogram_quantile", "max", "min", "avg",
                "by", "without", "topk", "count", "max_over_time", "clamp_min"}
