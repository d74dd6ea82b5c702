"""What the services' commands share: the injectable clock as a command-line argument, and
a sweep run once outside the app."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any


def utc_time(value: str) -> datetime:
    """An ISO 8601 time with its zone (``2027-06-01T00:00:00Z``); a naive time is refused,
    since the clock of a sweep must not depend on the machine's zone."""
    try:
        when = datetime.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if when.tzinfo is None:
        raise argparse.ArgumentTypeError("needs a time zone, e.g. 2027-06-01T00:00:00Z")
    return when


def add_now(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--now", type=utc_time, default=None,
                        help="the clock of this run, e.g. 2027-06-01T00:00:00Z (default: now; "
                             "development only)")


def clock_of_run(now: datetime | None, environment: str) -> datetime | None:
    """``--now`` as the clock of a run, in development only; elsewhere the command stops
    with the reason (the clock is the server's: libs.runtime.clock)."""
    from .clock import ClockNotSettableError, refuse_outside_development

    if now is not None:
        try:
            refuse_outside_development("--now", environment)
        except ClockNotSettableError as exc:
            raise SystemExit(f"error: {exc.detail}") from None
    return now


async def sweep_offline(settings: Any, bootstrap: Callable[[Any], Any], now: datetime | None,
                        run: Callable[..., Awaitable[Any]]) -> dict:
    """``run(deps, now=...)`` once on the service's database, outside the app (its read
    models caught up first), at ``--now`` in development only; the report as JSON data."""
    now = clock_of_run(now, settings.environment)  # development only (A10.2)
    async with bootstrap(settings).offline() as runtime:
        report = await run(runtime.deps, now=now)
    return report.model_dump(mode="json")
