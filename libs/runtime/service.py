"""ServiceRuntime: the kernel's parts wired for one service, run for the life of its app.

A service's ``bootstrap.py`` builds it in one pass: the runtime first (settings, database,
event store), then the handlers' dependencies from its parts, then :meth:`ServiceRuntime.serve`
with those dependencies, the subscriptions, projections and periodic tasks. ``main.py``
hands the bootstrap to :func:`libs.runtime.app.create_app`, whose lifespan starts the
runtime (migrations, producer, topics, relay, consumers, projection runners, the service's
own tasks) and stops it (consumers finish their batch first). Routes receive the
dependencies through :func:`libs.runtime.app.service_deps`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import text

from libs.events import (
    Consumer,
    Database,
    DocumentProjection,
    EventRegistry,
    EventStore,
    ProjectionsRunner,
    Relay,
    dead_letter_topic,
    ensure_topics,
    events_topic,
)
from libs.events.consumer import BatchHandler
from libs.events.migrate import upgrade
from libs.events.topics import SERVICES

from .admission import Admission, Backlog
from .deps import ServiceDeps
from .kafka import make_consumer, make_producer, probe_broker
from .metrics import RuntimeMetrics
from .settings import ServiceSettings
from .tracing import consumer_span, current_traceparent, relay_span

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Subscription:
    """Other services' events this service reacts to: a consumer group and its handler."""

    name: str
    topics: Sequence[str]
    handler: BatchHandler
    event_types: Collection[str] | None = None


@dataclass(frozen=True)
class Periodic:
    """A service's own task run every ``interval`` seconds while the app runs (a sweep, a
    refresher); a failed run is logged and the next one tries again. ``interval`` 0 or
    less: never (the command-line entry still runs it on demand)."""

    name: str
    interval: float
    run: Callable[[], Awaitable[Any]]
    # Also run soon after this service commits (a consumer's batch, a command): for work
    # that the commits queue (verification's identity checks), so it does not wait for
    # the next interval.
    on_commit: bool = False
    # Which processes run it when API and workers run apart (SERVICE_ROLE, ADR 0037):
    # "worker" (decisions on the log: sweeps, identity checks; once per service) or "api"
    # (what serves requests from memory: a refresher, a flush of request-fed state). A
    # process that runs both (``all``) runs every task.
    role: Literal["api", "worker"] = "worker"


@dataclass
class Worker:
    """One of the kernel's long-running tasks (the relay, a projection runner, a consumer)
    under the runtime's supervision: what readiness and ``/metrics`` report of it."""

    name: str
    task: asyncio.Task | None = None
    restarts: int = 0
    last_error: str | None = None
    down_since: float | None = None  # monotonic time of the crash it is restarting after

    def state(self) -> str:
        """"ok" while it runs; otherwise what is wrong, for ``/readyz``."""
        if self.task is None:
            return "not started"
        if self.task.done():
            return f"stopped: {self.last_error or 'ended'}"
        if self.down_since is not None:
            return f"restarting after: {self.last_error}"
        return "ok"


# A worker that dies is restarted after a pause, doubling from RESTART_PAUSE up to
# RESTART_PAUSE_MAX; after GIVE_UP crashes in a row, each within HEALTHY_RUN seconds of
# its start, it stays dead (readiness reports it until someone looks).
RESTART_PAUSE = 0.5
RESTART_PAUSE_MAX = 30.0
HEALTHY_RUN = 60.0
GIVE_UP = 5
# How long a broker probe may take, and how long its answer serves further /readyz calls.
KAFKA_PROBE_TIMEOUT = 1.5
KAFKA_PROBE_TTL = 1.0


async def every(task: Periodic, wake: asyncio.Event | None = None) -> None:
    """Run ``task`` every ``task.interval`` seconds until cancelled; sooner when ``wake``
    is set (it is cleared before each run, so a commit during a run brings another)."""
    while True:
        if wake is None:
            await asyncio.sleep(task.interval)
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), task.interval)
            wake.clear()
        try:
            await task.run()
        except Exception:  # noqa: BLE001 - the next run tries again
            log.exception("%s failed; the next run tries again", task.name)


class ServiceRuntime:
    def __init__(
        self,
        settings: ServiceSettings,
        *,
        registry: EventRegistry,
        migrations: str | None = None,
        subscriptions: Sequence[Subscription] = (),
        projections: Sequence[DocumentProjection] = (),
        pool_size: int | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.migrations = migrations
        self.subscriptions = subscriptions
        self.projection_defs = projections
        self.deps: Any = None
        self.periodic: Sequence[Periodic] = ()
        self._wakes: list[asyncio.Event] = []  # periodic tasks run on commit
        self.on_start: Sequence[Callable[[], Awaitable[Any]]] = ()
        self.on_stop: Sequence[Callable[[], Awaitable[Any]]] = ()
        self.db = Database(settings.database_url)
        if pool_size is not None:
            self.db.pool_size = pool_size
        self.store = EventStore(registry, dialect=self.db.dialect,
                                traceparent=current_traceparent)
        self.ns = settings.kafka_namespace
        self.topic = self.ns + events_topic(settings.service)
        self.producer = None
        self.relay: Relay | None = None
        self.consumers: list[Consumer] = []
        self.runners: list[ProjectionsRunner] = []
        self._tasks: list[asyncio.Task] = []
        self._background: list[asyncio.Task] = []
        # The HTTP requests in flight and waiting (libs.runtime.admission): the app's
        # middleware admits or sheds through it, the metrics read it.
        self.admission = Admission(settings.admission_limits())
        self.workers: list[Worker] = []
        self._stopping = asyncio.Event()
        self._kafka_probe: tuple[float, str] | None = None
        self._kafka_probe_lock = asyncio.Lock()
        # Its own registry: several runtimes in one process (tests, acctctl) never collide.
        self.prometheus = RuntimeMetrics(self)

    def serve(
        self,
        deps: Any,
        *,
        subscriptions: Sequence[Subscription] = (),
        projections: Sequence[DocumentProjection] = (),
        periodic: Sequence[Periodic] = (),
        backlogs: Sequence[tuple[Backlog, float]] = (),
        on_start: Sequence[Callable[[], Awaitable[Any]]] = (),
        on_stop: Sequence[Callable[[], Awaitable[Any]]] = (),
    ) -> ServiceRuntime:
        """What the service adds to the kernel: its handlers' dependencies (what routes
        and commands receive), the subscriptions to other services' events, its read
        models, its periodic tasks, the backlogs its requests are admitted against (each
        counted again every so many seconds by the processes that serve requests,
        :class:`libs.runtime.admission.Backlog`), steps to run once everything has
        started, and steps to run at shutdown once requests, consumers and periodic tasks
        have stopped (while the database is still open)."""
        if isinstance(deps, ServiceDeps):  # what a request may decide depends on where
            deps.environment = self.settings.environment
        self.deps = deps
        self.subscriptions = subscriptions
        self.projection_defs = projections
        # A backlog without a limit sheds nothing: it is neither checked nor counted.
        gated = [(backlog, interval) for backlog, interval in backlogs if backlog.limit > 0]
        self.admission.backlogs = [backlog for backlog, _ in gated]
        self.periodic = [*periodic, *(
            Periodic(f"backlog-{backlog.name}", interval, backlog.refresh, role="api")
            for backlog, interval in gated)]
        self.on_start = on_start
        self.on_stop = on_stop
        return self

    @property
    def runs_workers(self) -> bool:
        """Whether this process runs the relay, projections and consumers (not ``api``)."""
        return self.settings.role != "api"

    async def start(self) -> None:
        s = self.settings
        await asyncio.to_thread(upgrade, s.database_url, self.migrations)
        if self.runs_workers:
            await self._start_workers()
        for step in self.on_start:
            await step()
        for task in self.periodic:
            if task.interval > 0 and s.role in ("all", task.role):
                wake = asyncio.Event() if task.on_commit else None
                if wake is not None:
                    self._wakes.append(wake)
                self.background(every(task, wake), name=task.name)
        log.info("%s started (%s): relay to %s, %d consumer(s), %d projection(s)",
                 s.service, s.role, self.topic, len(self.consumers), len(self.runners))

    async def _start_workers(self) -> None:
        s = self.settings
        await ensure_topics(
            s.kafka_bootstrap_servers,
            [self.ns + events_topic(name) for name in SERVICES]
            + [self.ns + dead_letter_topic(sub.name) for sub in self.subscriptions],
            partitions=s.topic_partitions,
        )
        self.producer = make_producer(s.kafka_bootstrap_servers, f"{s.service}-relay")
        await self.producer.start()
        # Apart from the API (role ``worker``), the commands' commits happen in other
        # processes and cannot nudge the tailers: they poll at their shortest interval.
        tailing = {"linger_seconds": s.tailer_linger_seconds,
                   "idle_max_seconds": (s.tailer_idle_max_seconds if s.role == "all"
                                        else 0.0)}
        self.relay = Relay(db=self.db, store=self.store, producer=self.producer, topic=self.topic,
                           observe_publish=self.prometheus.relay_hook(),
                           page_context=relay_span(self.topic), **tailing)
        self.supervise("relay", self.relay.run)
        if self.projection_defs:  # one tailer folds each page into all of them (ADR 0046)
            runner = ProjectionsRunner(db=self.db, store=self.store,
                                       projections=self.projection_defs, **tailing)
            self.runners.append(runner)
            self.supervise(runner.name, runner.run)
        for sub in self.subscriptions:
            consumer = Consumer(
                name=sub.name,
                db=self.db,
                registry=self.registry,
                source=make_consumer(s.kafka_bootstrap_servers, self.ns + sub.name,
                                     [self.ns + t for t in sub.topics],
                                     fetch_min_bytes=s.kafka_fetch_min_bytes,
                                     fetch_max_wait_ms=s.kafka_fetch_max_wait_ms),
                handler=sub.handler,
                dead_letter_producer=self.producer,
                dead_letter_topic=self.ns + dead_letter_topic(sub.name),
                event_context=consumer_span(sub.name),
                event_types=sub.event_types,
                namespace=self.ns,
                after_db_commit=self._after_consumer_commit,
                **self.prometheus.consumer_hooks(sub.name),
            )
            await consumer.start(spawn=self.supervise)
            self.consumers.append(consumer)

    def supervise(self, name: str, run: Callable[[], Awaitable[None]]) -> asyncio.Task:
        """Run a kernel worker (``run`` returns when the worker is stopped) in a task that
        restarts it when it raises, with a growing pause, and gives up on one that keeps
        dying; each crash is logged with its traceback and counted (``/metrics``), and
        ``/readyz`` names a worker that is down."""
        worker = Worker(name)
        self.workers.append(worker)
        worker.task = asyncio.create_task(self._supervised(worker, run), name=name)
        self._tasks.append(worker.task)
        return worker.task

    async def _supervised(self, worker: Worker, run: Callable[[], Awaitable[None]]) -> None:
        loop = asyncio.get_running_loop()
        pause, in_a_row = RESTART_PAUSE, 0
        while True:
            started = loop.time()
            try:
                await run()
                return
            except Exception as exc:
                worker.last_error = f"{type(exc).__name__}: {exc}"
                worker.down_since = time.monotonic()
                if self._stopping.is_set():
                    raise
                if loop.time() - started > HEALTHY_RUN:
                    pause, in_a_row = RESTART_PAUSE, 0
                in_a_row += 1
                if in_a_row >= GIVE_UP:
                    log.exception("%s died %d times in a row; not restarting it", worker.name,
                                  in_a_row)
                    raise
                log.exception("%s died; restarting it in %.1fs", worker.name, pause)
            try:
                await asyncio.wait_for(self._stopping.wait(), pause)
                return  # stopping: no restart
            except TimeoutError:
                pass
            pause = min(pause * 2, RESTART_PAUSE_MAX)
            worker.restarts += 1
            worker.down_since = None

    async def _after_consumer_commit(self, _records: list[Any]) -> None:
        self.committed()

    def committed(self) -> None:
        """Call after a handler's transaction commits: wake the relay and the projections."""
        if self.relay:
            self.relay.nudge()
        for r in self.runners:
            r.nudge()
        for wake in self._wakes:
            wake.set()

    async def catch_up_projections(self) -> None:
        """Bring the read models up to the log now: before a sweep reads them, or in a
        command run outside the app (where no runner is running)."""
        runners = self.runners or ([ProjectionsRunner(db=self.db, store=self.store,
                                                      projections=self.projection_defs)]
                                   if self.projection_defs else [])
        for runner in runners:
            await runner.catch_up()

    @asynccontextmanager
    async def offline(self) -> AsyncIterator[ServiceRuntime]:
        """The service's database, migrated, its read models caught up, for a command run
        outside the app (``python -m services.<name>.sweep``); no broker is needed."""
        await asyncio.to_thread(upgrade, self.settings.database_url, self.migrations)
        try:
            await self.catch_up_projections()
            yield self
        finally:
            await self.db.dispose()

    def background(self, coro, *, name: str) -> asyncio.Task:
        """Run a service's own periodic task (a sweep, a refresher) until the app stops.

        Such tasks loop forever, so stopping cancels them (before the kernel's workers,
        which finish their current batch instead); readiness reports one that died.
        """
        task = asyncio.create_task(coro, name=name)
        self._background.append(task)
        return task

    async def stop(self) -> None:
        self._stopping.set()
        for task in self._background:
            task.cancel()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        for consumer in self.consumers:
            await consumer.stop()
        for step in self.on_stop:
            try:
                await step()
            except Exception:  # noqa: BLE001 - logged; the rest of the shutdown goes on
                log.exception("a shutdown step failed")
        if self.relay:
            self.relay.stop()
        for r in self.runners:
            r.stop()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)
        if self.producer is not None:
            await self.producer.stop()
        await self.db.dispose()

    async def readiness(self) -> dict[str, str]:
        """Each dependency and whether it answers, and each worker (the relay, every
        projection runner and consumer, the periodic tasks by name) and whether it runs; the
        service is ready when all are "ok"."""
        checks: dict[str, str] = {}
        try:
            async with self.db.connect() as conn:
                await conn.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            checks["database"] = f"error: {exc}"
        if self.runs_workers:  # an API process does not use the broker
            checks["kafka"] = await self.kafka_state()
        for worker in self.workers:
            checks[worker.name] = worker.state()
        for task in self._background:
            checks[f"periodic:{task.get_name()}"] = "ok" if not task.done() else "stopped"
        return checks

    async def kafka_state(self) -> str:
        """"ok" when a broker answered a metadata request within KAFKA_PROBE_TIMEOUT; the
        answer is reused for KAFKA_PROBE_TTL, so frequent probes cost one request a second."""
        async with self._kafka_probe_lock:  # concurrent probes wait for one answer
            now = time.monotonic()
            if self._kafka_probe is not None and now - self._kafka_probe[0] < KAFKA_PROBE_TTL:
                return self._kafka_probe[1]
            try:
                if self.producer is None:
                    raise RuntimeError("no producer (not started)")
                await asyncio.wait_for(probe_broker(self.producer, self.topic),
                                       KAFKA_PROBE_TIMEOUT)
                state = "ok"
            except Exception as exc:  # noqa: BLE001 - reported, not raised
                state = f"error: {exc!r}"
            self._kafka_probe = (time.monotonic(), state)
            return state

    async def metrics(self) -> bytes:
        """Prometheus text exposition (``libs.runtime.metrics``): the kernel's counters, the
        relay's backlog, consumer lag, handler, relay and HTTP histograms, reader wait."""
        return await self.prometheus.exposition()
