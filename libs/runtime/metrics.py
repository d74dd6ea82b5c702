"""Prometheus metrics of a service runtime, through ``prometheus_client``.

One :class:`RuntimeMetrics` per :class:`libs.runtime.service.ServiceRuntime`, each with its
own ``CollectorRegistry`` (never the process-wide default), so several runtimes in one
process (tests, ``acctctl``) do not collide. Two kinds of series:

- observed as things happen (histograms): HTTP requests by method, route template and
  status (:class:`HttpMetricsMiddleware`), each consumer's handler calls and batch
  transactions, the relay's page publishes;
- read at scrape time (:meth:`RuntimeMetrics.exposition`): the kernel's counters (events
  published, handled, dead-lettered), the relay's backlog (events after its checkpoint and
  the age of the oldest, one indexed query), each consumer's lag per topic and partition
  (the broker's high watermark the consumer already knows minus the consumer's position),
  and how long tailing readers wait on open transactions, and the admission control's
  requests in flight, waiting and shed (:mod:`libs.runtime.admission`).

Series names are a contract of ``deploy/grafana/public-accounts.json``; the names of the
first ``/metrics`` (``events_published_total``, ``relay_publish_lag_seconds``,
``events_handled_total``, ``dead_letters_total``, ``log_reader_wait_seconds``) are kept.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from sqlalchemy import text

from libs.events import load_checkpoint

if TYPE_CHECKING:
    from .service import ServiceRuntime

log = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_LATEST

# Every family this module exports (the dashboard's test checks its expressions against it).
HTTP_REQUEST_SECONDS = "http_server_request_duration_seconds"
HANDLER_SECONDS = "consumer_handler_duration_seconds"
BATCH_SECONDS = "consumer_batch_duration_seconds"
RELAY_PUBLISH_SECONDS = "relay_publish_duration_seconds"
EVENTS_PUBLISHED = "events_published_total"
RELAY_PUBLISH_LAG = "relay_publish_lag_seconds"
RELAY_BACKLOG = "relay_backlog_events"
RELAY_OLDEST_AGE = "relay_backlog_oldest_age_seconds"
EVENTS_HANDLED = "events_handled_total"
DEAD_LETTERS = "dead_letters_total"
CONSUMER_LAG = "consumer_lag_records"
READER_WAIT = "log_reader_wait_seconds"
HTTP_IN_FLIGHT = "http_server_requests_in_flight"
HTTP_QUEUED = "http_server_requests_queued"
HTTP_SHED = "http_server_requests_shed_total"
BACKLOG = "admission_backlog"
BACKLOG_SHED = "admission_backlog_shed_total"
WORKER_RESTARTS = "worker_restarts_total"
WORKER_UP = "worker_up"

HISTOGRAMS = (HTTP_REQUEST_SECONDS, HANDLER_SECONDS, BATCH_SECONDS, RELAY_PUBLISH_SECONDS)
FAMILIES = (*HISTOGRAMS, EVENTS_PUBLISHED, RELAY_PUBLISH_LAG, RELAY_BACKLOG, RELAY_OLDEST_AGE,
            EVENTS_HANDLED, DEAD_LETTERS, CONSUMER_LAG, READER_WAIT, HTTP_IN_FLIGHT,
            HTTP_QUEUED, HTTP_SHED, WORKER_RESTARTS, WORKER_UP)

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# Events after the relay's checkpoint: the checkpoint is a (xid, position) cursor on
# PostgreSQL (ADR 0001), a position on SQLite. The same query as ``acctctl lag``; the
# range is an index scan of the backlog only, so it is cheap while the relay keeps up.
_PG_BACKLOG = text(
    """
    SELECT COUNT(*), MIN(time) FROM events
    WHERE (xid, position) > (CAST(CAST(:xid AS text) AS xid8), CAST(:position AS bigint))
    """
)
_SQLITE_BACKLOG = text("SELECT COUNT(*), MIN(time) FROM events WHERE position > :position")


@dataclass
class Snapshot:
    """What a scrape reads asynchronously before the registry renders it."""

    backlog: int | None = None
    oldest_age: float | None = None
    reader_wait: float | None = None
    lag: list[tuple[str, str, int, int]] = field(default_factory=list)


class RuntimeMetrics:
    """The registry of one service runtime and the instruments its parts observe into."""

    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime
        self.service = runtime.settings.service
        self.registry = CollectorRegistry(auto_describe=True)
        self.http_requests = Histogram(
            HTTP_REQUEST_SECONDS, "HTTP requests served, by method, route template and status",
            ["service", "method", "route", "status"], buckets=_BUCKETS, registry=self.registry)
        self.handler_seconds = Histogram(
            HANDLER_SECONDS, "Seconds per handler call of a consumer (one event per call when "
            "traced)", ["service", "consumer"], buckets=_BUCKETS, registry=self.registry)
        self.batch_seconds = Histogram(
            BATCH_SECONDS, "Seconds per batch transaction of a consumer (inbox, handler, "
            "commit)", ["service", "consumer"], buckets=_BUCKETS, registry=self.registry)
        self.publish_seconds = Histogram(
            RELAY_PUBLISH_SECONDS, "Seconds per page the relay publishes, until acks=all",
            ["service"], buckets=_BUCKETS, registry=self.registry)
        self.snapshot = Snapshot()
        self.registry.register(_KernelCollector(self))
        self._scrape = asyncio.Lock()

    # -- hooks for the kernel's parts ---------------------------------------------------
    def consumer_hooks(self, consumer: str) -> dict[str, Any]:
        """Keyword arguments for :class:`libs.events.Consumer`'s instrumentation hooks."""
        handler = self.handler_seconds.labels(self.service, consumer)
        batch = self.batch_seconds.labels(self.service, consumer)
        return {"observe_handler": lambda seconds, _events: handler.observe(seconds),
                "observe_batch": lambda seconds, _events: batch.observe(seconds)}

    def relay_hook(self):
        """The :class:`libs.events.Relay` hook: one observation per published page."""
        publish = self.publish_seconds.labels(self.service)
        return lambda seconds, _events: publish.observe(seconds)

    # -- scrape ---------------------------------------------------------------------------
    async def exposition(self) -> bytes:
        """Read what is read at scrape time, then render the registry (Prometheus text)."""
        async with self._scrape:  # concurrent scrapes share one set of queries' cost
            self.snapshot = await self.read_snapshot()
            return generate_latest(self.registry)

    async def read_snapshot(self) -> Snapshot:
        snap = Snapshot()
        rt = self.runtime
        try:
            async with rt.db.connect() as conn:
                snap.reader_wait = await rt.store.reader_wait_seconds(conn)
                if rt.relay is not None:
                    snap.backlog, snap.oldest_age = await _backlog(conn, rt)
        except Exception:  # noqa: BLE001 - a scrape reports what it can
            log.warning("metrics: the database did not answer", exc_info=True)
        for consumer in rt.consumers:
            try:
                snap.lag += await asyncio.wait_for(consumer_lag(consumer), 2)
            except Exception:  # noqa: BLE001
                log.warning("metrics: no lag for consumer %s", consumer.name, exc_info=True)
        return snap


async def _backlog(conn, rt: ServiceRuntime) -> tuple[int, float]:
    cursor = await load_checkpoint(conn, rt.relay.name)
    stmt = _PG_BACKLOG if rt.db.is_postgres else _SQLITE_BACKLOG
    count, oldest = await conn.fetchrow(stmt, {"xid": str(cursor.xid),
                                               "position": cursor.position})
    if isinstance(oldest, str):
        oldest = datetime.fromisoformat(oldest)
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=UTC)
    age = (datetime.now(UTC) - oldest).total_seconds() if oldest else 0.0
    return int(count), max(age, 0.0)


async def consumer_lag(consumer) -> list[tuple[str, str, int, int]]:
    """(consumer, topic, partition, lag) for each partition assigned to ``consumer``.

    The end of a partition is the high watermark the consumer's last fetch reported
    (asked of the broker only for a partition not fetched yet); its position is the
    offset after the last record it handled (committed), or, before the first, where it
    will fetch from.
    """
    source = consumer.source
    if not hasattr(source, "assignment") or not hasattr(source, "highwater"):
        return []  # a fake source
    tps = sorted(source.assignment(), key=lambda tp: (tp.topic, tp.partition))
    ends = {tp: source.highwater(tp) for tp in tps}
    missing = [tp for tp, end in ends.items() if end is None]
    if missing:
        ends.update(await source.end_offsets(missing))
    rows = []
    for tp in tps:
        position = consumer.positions.get(tp)
        if position is None:
            position = await asyncio.wait_for(source.position(tp), 1)
        rows.append((consumer.name, tp.topic, tp.partition, max(ends[tp] - position, 0)))
    return rows


class _KernelCollector:
    """Series read from the runtime's parts when the registry is rendered."""

    def __init__(self, metrics: RuntimeMetrics) -> None:
        self.m = metrics

    def describe(self):
        return []

    def collect(self):
        rt, svc, snap = self.m.runtime, self.m.service, self.m.snapshot
        relay = rt.relay
        published = CounterMetricFamily(EVENTS_PUBLISHED, "Events the relay published to Kafka",
                                        labels=["service"])
        published.add_metric([svc], relay.published if relay else 0)
        yield published
        lag = GaugeMetricFamily(RELAY_PUBLISH_LAG, "Seconds from the last published event's "
                                "time to its publication", labels=["service"])
        lag.add_metric([svc], relay.last_publish_lag_seconds if relay else 0.0)
        yield lag
        backlog = GaugeMetricFamily(RELAY_BACKLOG, "Events after the relay's checkpoint "
                                    "(not published yet)", labels=["service"])
        oldest = GaugeMetricFamily(RELAY_OLDEST_AGE, "Age of the oldest event the relay has "
                                   "not published (0 when none)", labels=["service"])
        if snap.backlog is not None:
            backlog.add_metric([svc], snap.backlog)
            oldest.add_metric([svc], snap.oldest_age or 0.0)
        yield backlog
        yield oldest
        handled = CounterMetricFamily(EVENTS_HANDLED, "Events a consumer handled",
                                      labels=["service", "consumer"])
        dead = CounterMetricFamily(DEAD_LETTERS, "Events a consumer dead-lettered",
                                   labels=["service", "consumer"])
        for c in rt.consumers:
            handled.add_metric([svc, c.name], c.handled)
            dead.add_metric([svc, c.name], c.dead_lettered)
        yield handled
        yield dead
        clag = GaugeMetricFamily(CONSUMER_LAG, "Records of a partition after the consumer's "
                                 "position", labels=["service", "consumer", "topic", "partition"])
        for consumer, topic, partition, n in snap.lag:
            clag.add_metric([svc, consumer, topic, str(partition)], n)
        yield clag
        wait = GaugeMetricFamily(READER_WAIT, "Seconds the oldest open write transaction has "
                                 "held tailing readers back", labels=["service"])
        if snap.reader_wait is not None:
            wait.add_metric([svc], snap.reader_wait)
        yield wait
        admission = getattr(rt, "admission", None)  # libs.runtime.admission
        in_flight = GaugeMetricFamily(HTTP_IN_FLIGHT, "HTTP requests being handled (admitted, "
                                      "not finished)", labels=["service"])
        queued = GaugeMetricFamily(HTTP_QUEUED, "HTTP requests waiting for admission",
                                   labels=["service"])
        shed = CounterMetricFamily(HTTP_SHED, "HTTP requests shed with 503 (queue full, "
                                   "wait ran out, or a full backlog)", labels=["service"])
        in_flight.add_metric([svc], admission.in_flight if admission else 0)
        queued.add_metric([svc], admission.queued if admission else 0)
        shed.add_metric([svc], admission.shed if admission else 0)
        yield in_flight
        yield queued
        yield shed
        backlog = GaugeMetricFamily(BACKLOG, "Work accepted that the system has yet to finish, "
                                    "at its last count (e.g. accounts awaiting verification)",
                                    labels=["service", "backlog"])
        backlog_shed = CounterMetricFamily(BACKLOG_SHED, "HTTP requests shed with 503 because "
                                           "the backlog they would add to was full",
                                           labels=["service", "backlog"])
        for b in admission.backlogs if admission else ():
            backlog.add_metric([svc, b.name], b.size)
            backlog_shed.add_metric([svc, b.name], b.shed)
        yield backlog
        yield backlog_shed
        restarts = CounterMetricFamily(WORKER_RESTARTS, "Times the runtime restarted a kernel "
                                       "worker (relay, projection runner, consumer) that died",
                                       labels=["service", "worker"])
        up = GaugeMetricFamily(WORKER_UP, "1 while a kernel worker runs, 0 while it is down "
                               "(restarting, or given up)", labels=["service", "worker"])
        for w in getattr(rt, "workers", ()):
            restarts.add_metric([svc, w.name], w.restarts)
            up.add_metric([svc, w.name], 1 if w.state() == "ok" else 0)
        yield restarts
        yield up


class HttpMetricsMiddleware:
    """ASGI middleware: one observation per HTTP request, labelled by the route's template
    (``/v1/accounts/{account_id}``, never the raw path) so the series stay few."""

    def __init__(self, app, *, metrics_of) -> None:
        self.app = app
        self.metrics_of = metrics_of  # () -> RuntimeMetrics | None (built in the lifespan)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        status = 500
        start = time.perf_counter()

        async def send_wrapper(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            metrics = self.metrics_of()
            if metrics is not None:
                route = scope.get("route")
                template = getattr(route, "path", None) or "unmatched"
                metrics.http_requests.labels(metrics.service, scope["method"], template,
                                             str(status)).observe(time.perf_counter() - start)
