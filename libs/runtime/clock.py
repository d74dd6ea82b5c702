"""The clock handlers read: UTC now, or in development a time a request names.

Deadlines, expiries and "6 months inactive" are decided from the clock. Tests drive them by
injecting a clock into a service's dependencies; a test that talks to the running system
over HTTP cannot, so in development only (``ENVIRONMENT=development``, which ``make run``
and the test suite set) a request may carry ``X-Clock-Now: <ISO 8601 time>`` and every
handler it reaches reads that time instead.

Outside development the clock is the server's: a request carrying the header, a sweep's
``now`` (:meth:`libs.runtime.deps.ServiceDeps.requested_clock`) and a command's ``--now``
(:func:`libs.runtime.cli.clock_of_run`) are refused with :class:`ClockNotSettableError`
(422 ``clock-not-settable``), rather than silently ignored: a caller who meant to move
the clock learns it did not.
"""

from __future__ import annotations

import json
from contextvars import ContextVar
from datetime import UTC, datetime

from libs.domain import InvalidCommandError

HEADER = "x-clock-now"
DEVELOPMENT = "development"


class ClockNotSettableError(InvalidCommandError):
    """A request or command named the clock where only the server's clock counts."""

    code = "clock-not-settable"
    title = "The clock is the server's"


def refuse_outside_development(what: str, environment: str) -> None:
    """Raise :class:`ClockNotSettableError` unless ``environment`` is development."""
    if environment != DEVELOPMENT:
        raise ClockNotSettableError(
            f"{what} sets the clock, which only a service in development allows "
            f"(ENVIRONMENT={DEVELOPMENT}); here decisions are made at the server's clock: "
            f"leave it out", legal_basis=["A10.2"], environment=environment)
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


def _environment(scope) -> str | None:
    runtime = getattr(getattr(scope.get("app"), "state", None), "runtime", None)
    return None if runtime is None else runtime.settings.environment


class DevelopmentClock:
    """ASGI middleware (every app of :func:`libs.runtime.app.create_app` has it): in a
    service running in development, a request's ``X-Clock-Now`` becomes the clock of
    everything it runs; elsewhere a request carrying it is refused (422 problem)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        at = None
        if scope["type"] == "http":
            value = next((v for n, v in scope.get("headers", ()) if n == HEADER.encode()), None)
            environment = _environment(scope)
            if value is not None and environment is not None:
                if environment != DEVELOPMENT:
                    await _refuse(scope, send, environment)
                    return
                at = parse(value.decode("latin-1"))
        if at is None:
            await self.app(scope, receive, send)
            return
        token = _override.set(at)
        try:
            await self.app(scope, receive, send)
        finally:
            _override.reset(token)


async def _refuse(scope, send, environment: str) -> None:
    try:
        refuse_outside_development("the X-Clock-Now header", environment)
    except ClockNotSettableError as exc:
        body = json.dumps({
            "type": f"/problems/{exc.code}", "title": exc.title, "status": 422,
            "detail": exc.detail, "instance": scope.get("path", ""), "code": exc.code,
            "legal_basis": exc.legal_basis, **exc.extra}).encode()
    await send({"type": "http.response.start", "status": 422,
                "headers": [(b"content-type", b"application/problem+json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
