"""The one place where the enforcement service is wired."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from libs.events import Database, Envelope, EventStore, Streams, each, events_topic
from libs.events.contracts import all_contracts
from libs.runtime.clock import now as utcnow
from libs.runtime.deps import nothing_to_catch_up
from libs.runtime.pii import install_sealer
from libs.runtime.service import Periodic, ServiceRuntime, Subscription

from . import rules, sweep
from .adapters import AccountDirectory
from .domain import (
    account_stream,
    case_stream,
    evolve_case,
    evolve_policy_versions,
    evolve_record,
    evolve_violation,
)
from .domain import violation_stream as violation_stream_of
from .handlers import Deps, when_event
from .policies import POLICIES
from .projections import all_projections
from .settings import Settings

MIGRATIONS = str(Path(__file__).with_name("migrations") / "versions")
SOURCE = "/enforcement"
log = logging.getLogger(__name__)



@dataclass(frozen=True)
class _Seen:
    version: int


def _seen(state: _Seen | None, e: Envelope) -> _Seen:
    return _Seen(e.stream_version)


def load_policy(path: str) -> rules.MeasurePolicy:
    """The measure policy document, validated (a broken one stops the start)."""
    return rules.load_policy(Path(path).read_bytes())


def check_calendar(settings: Settings, year: int) -> None:
    """The working-day calendar must cover the current year (A20.2 deadlines): refused
    outside development, logged in development."""
    last = rules.calendar_last_year()
    if last >= year:
        return
    message = (f"chinesecalendar knows holidays up to {last}, the year is {year}: deadlines "
               "would ignore this year's holidays; upgrade chinesecalendar")
    if settings.environment != "development":
        raise RuntimeError(message)
    log.error(message)


def dependencies(settings: Settings, db: Database, store: EventStore, *,
                 committed: Callable[[], None] = lambda: None,
                 catch_up: Callable[[], Awaitable[None]] = nothing_to_catch_up,
                 clock: Callable = utcnow) -> Deps:
    """The handlers' dependencies over one database and event store."""

    def streams(stream_id: Callable[[str], str], evolve_) -> Streams:
        return Streams(store, source=SOURCE, stream_id=stream_id, evolve=evolve_, clock=clock)

    return Deps(
        db=db, store=store,
        violations=streams(violation_stream_of, evolve_violation),
        records=streams(account_stream, evolve_record),
        cases=streams(case_stream, evolve_case),
        policies=streams(lambda key: key, evolve_policy_versions),  # one stream
        accesses=streams(lambda key: f"regulator-access-{key}", _seen),
        directory=AccountDirectory(), sealer=install_sealer(settings, store.registry),
        policy=load_policy(settings.policy_file),
        signing_key=rules.private_key(settings.report_signing_key),
        appeal_window_days=settings.appeal_window_days,
        appeal_working_days=settings.appeal_working_days,
        complaint_working_days=settings.complaint_working_days,
        clock=clock, committed=committed, catch_up=catch_up)


def subscription(deps: Deps) -> Subscription:
    """Registration's registrations (province, filing details), verification's outcomes and
    credit's levels, each kept in the consumer's transaction with its inbox record."""
    return Subscription(name="enforcement-inbound",
                        topics=[events_topic("registration"), events_topic("credit"),
                                events_topic("verification"), events_topic("transfer")],
                        handler=each(partial(when_event, deps)),
                        event_types=frozenset(POLICIES))


def bootstrap(settings: Settings | None = None) -> ServiceRuntime:
    """The runtime, the complete dependencies, the subscription, the read models and the
    periodic sweep (``ENFORCEMENT_SWEEP_INTERVAL_SECONDS``, 0: never)."""
    settings = settings or Settings()
    check_calendar(settings, utcnow().year)
    runtime = ServiceRuntime(settings, registry=all_contracts(), migrations=MIGRATIONS)
    deps = dependencies(settings, runtime.db, runtime.store, committed=runtime.committed,
                        catch_up=runtime.catch_up_projections)
    return runtime.serve(
        deps, subscriptions=[subscription(deps)], projections=all_projections(),
        periodic=[Periodic("sweep", settings.sweep_interval_seconds,
                           partial(sweep.periodically, deps))])
