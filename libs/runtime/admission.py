"""Admission control: overload is shed at the door, not suffered by every request.

Past its sustainable rate a service that admits everything queues work everywhere at once
(the event loop, the connection pool, PostgreSQL, its own relay and consumers); every
request gets slower, clients time out and retry, and the accepted throughput collapses
instead of levelling off. :class:`AdmissionMiddleware` bounds that (ADR 0036):

- at most ``max_in_flight`` requests are being handled at once;
- up to ``max_queue`` more wait, first come first served, for at most ``max_wait``
  seconds each;
- anything beyond, or a wait that runs out, is answered at once ``503`` problem+json
  (code ``overloaded``) with ``Retry-After``, before routing, body parsing or any
  database work: a shed request costs almost nothing, so the admitted ones keep the
  machine, and their latency stays bounded by the wait plus their own service time.

A request can also be shed for what it would start rather than for the requests around
it: a :class:`Backlog` is work accepted here that another part of the system has yet to
finish (registration: accounts awaiting verification's answer, ADR 0044). While the last
measure of a backlog is at its limit, the requests of its routes are shed the same way:
an HTTP queue bounds the wait for an answer, a backlog bounds the wait for the outcome.

Operations routes (health, readiness, metrics) are never queued nor shed: an orchestrator
must see a busy service as alive, and its metrics while it is busy. A request shed here
did nothing: no state was read or written, so a retry after ``Retry-After`` is safe with
or without an ``Idempotency-Key``.

The limits are the runtime's settings (``ADMISSION_*``, :class:`libs.runtime.settings.
ServiceSettings`), read when the app starts; until then (and with ``max_in_flight`` 0)
everything is admitted.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass

from .problems import MEDIA_TYPE, problem_type

OVERLOADED = "overloaded"
AT_CAPACITY = "the service is at capacity"  # why a request was shed, unless a backlog says

# The probes and the scrape (exact paths): never queued nor shed, and never traced
# (libs.runtime.tracing.telemetry_config).
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


@dataclass(frozen=True)
class Limits:
    max_in_flight: int = 0  # 0: no limit (admission control off)
    max_queue: int = 0
    max_wait: float = 0.0
    retry_after: int = 1  # seconds, the Retry-After header of a 503


@dataclass
class Backlog:
    """Work this service accepted that the system has yet to finish, as ``measure()``
    counts it; the requests of ``routes`` (method, path) would add to it. At ``limit``
    (0: none) they are shed, so that what is accepted finishes in bounded time: by
    Little's law, at most ``limit`` over the rate the system finishes at. ``refresh``
    runs periodically (``libs.runtime.service.Periodic``); ``size`` is its last count."""

    name: str
    routes: frozenset[tuple[str, str]]
    limit: int
    measure: Callable[[], Awaitable[int]]
    size: int = 0
    shed: int = 0  # requests shed for it since start (exported by libs.runtime.metrics)

    @property
    def full(self) -> bool:
        return 0 < self.limit <= self.size

    async def refresh(self) -> None:
        self.size = await self.measure()


class Admission:
    """Requests in flight and waiting: a counting semaphore with a bounded FIFO queue whose
    waits time out. One per app (per process); all state lives on the event loop. And the
    service's backlogs, which shed the requests that would add to a full one."""

    def __init__(self, limits: Limits | None = None,
                 backlogs: list[Backlog] | None = None) -> None:
        self.limits = limits or Limits()
        self.in_flight = 0
        self.waiters: deque[asyncio.Future] = deque()
        self.shed = 0  # requests shed since start (exported by libs.runtime.metrics)
        self.backlogs: list[Backlog] = backlogs or []

    def full_backlog(self, method: str, path: str) -> Backlog | None:
        """The full backlog that a ``method`` ``path`` request would add to, if any."""
        for backlog in self.backlogs:
            if backlog.full and (method, path) in backlog.routes:
                return backlog
        return None

    @property
    def queued(self) -> int:
        return len(self.waiters)

    async def acquire(self) -> bool:
        """Wait for a slot: True once this request holds one (release it after), False
        when it is shed (the queue is full or the wait ran out)."""
        limit = self.limits.max_in_flight
        if limit <= 0 or (self.in_flight < limit and not self.waiters):
            self.in_flight += 1
            return True
        if len(self.waiters) >= self.limits.max_queue or self.limits.max_wait <= 0:
            self.shed += 1
            return False
        slot = asyncio.get_running_loop().create_future()
        self.waiters.append(slot)
        try:
            async with asyncio.timeout(self.limits.max_wait):
                await slot
        except TimeoutError:
            if slot.done() and not slot.cancelled():  # handed a slot as the wait ran out
                return True
            self._forget(slot)
            self.shed += 1
            return False
        except asyncio.CancelledError:  # the client went away while waiting
            if slot.done() and not slot.cancelled():
                self.release()
            else:
                self._forget(slot)
            raise
        return True

    def release(self) -> None:
        """A request finished: its slot passes to the longest waiter, or is freed."""
        while self.waiters:
            slot = self.waiters.popleft()
            if not slot.done():
                slot.set_result(None)  # in_flight unchanged: the slot changes hands
                return
        self.in_flight -= 1

    def _forget(self, slot: asyncio.Future) -> None:
        try:
            self.waiters.remove(slot)
        except ValueError:
            pass


def overloaded_body(path: str, retry_after: int, why: str = AT_CAPACITY) -> bytes:
    return json.dumps({
        "type": problem_type(OVERLOADED), "title": "Overloaded", "status": 503,
        "detail": f"{why}; retry after {retry_after} s",
        "instance": path, "code": OVERLOADED, "retry_after": retry_after,
    }).encode()


class AdmissionMiddleware:
    """ASGI middleware over :class:`Admission`; ``admission_of()`` returns the app's (it is
    configured in the lifespan, from the settings)."""

    def __init__(self, app, *, admission_of: Callable[[], Admission | None],
                 exempt: Collection[str] = PROBE_PATHS) -> None:
        self.app = app
        self.admission_of = admission_of
        self.exempt = frozenset(exempt)

    async def __call__(self, scope, receive, send):
        admission = self.admission_of() if scope["type"] == "http" else None
        if admission is None or scope["path"] in self.exempt:
            return await self.app(scope, receive, send)
        if admission.backlogs:
            backlog = admission.full_backlog(scope["method"], scope["path"])
            if backlog is not None:
                backlog.shed += 1
                admission.shed += 1
                return await self._shed(scope, send, admission.limits.retry_after,
                                        f"{backlog.size} {backlog.name} already (at most "
                                        f"{backlog.limit})")
        if not await admission.acquire():
            return await self._shed(scope, send, admission.limits.retry_after)
        try:
            await self.app(scope, receive, send)
        finally:
            admission.release()

    @staticmethod
    async def _shed(scope, send, retry_after: int, why: str = AT_CAPACITY) -> None:
        body = overloaded_body(scope["path"], retry_after, why)
        await send({"type": "http.response.start", "status": 503, "headers": [
            (b"content-type", MEDIA_TYPE.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(retry_after).encode()),
        ]})
        await send({"type": "http.response.body", "body": body})
