"""The clock handlers read: UTC now, or in development a time a request names.

Deadlines, expiries and "6 months inactive" are decided from the clock. Tests drive them by
injecting a clock into a service's dependencies; a test that talks to the running system
over HTTP cannot, so in development only (``ENVIRONMENT=development``, which ``make run``
and the test suite set) a request may carry ``X-Clock-Now: <ISO 8601 time>`` and every
handler it reaches reads that time instead. Outside development the header is ignored.
"""

from __future__ import annotations

from contextvars import ContextVar
from datetime import UTC, datetime

HEADER = "x-clock-now"
_override: ContextVar[datetime | None] = ContextVar("clock_override", default=None)


def now() -> datetime:
    """The time handlers decide by: the request's development clock, or UTC now."""
    return _override.get() or datetime.now(UTC)


def parse(value: str) -> datetime | None:
    """The header's time as an aware datetime (UTC assumed when it names no zone); None
    when it is not a time."""
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _in_development(scope) -> bool:
    runtime = getattr(getattr(scope.get("app"), "state", None), "runtime", None)
    return runtime is not None and runtime.settings.environment == "development"


class DevelopmentClock:
    """ASGI middleware (every app of :func:`libs.runtime.app.create_app` has it): in a
    service running in development, a request's ``X-Clock-Now`` becomes the clock of
    everything it runs; elsewhere the header changes nothing."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        at = None
        if scope["type"] == "http" and _in_development(scope):
            for name, value in scope.get("headers", ()):
                if name == HEADER.encode():
                    at = parse(value.decode("latin-1"))
        if at is None:
            await self.app(scope, receive, send)
            return
        token = _override.set(at)
        try:
            await self.app(scope, receive, send)
        finally:
            _override.reset(token)
