"""The one place where the transfer service is wired."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from libs.events import Database, EventStore, Streams, each, events_topic
from libs.events.contracts import all_contracts
from libs.runtime.clock import now as utcnow
from libs.runtime.pii import install_sealer
from libs.runtime.service import Periodic, ServiceRuntime, Subscription

from . import rules, sweep
from .adapters import Directory
from .domain import evolve, evolve_signals, ownership_stream, stream_of
from .handlers import Deps, when_event
from .policies import EVENT_TYPES
from .settings import Settings

MIGRATIONS = str(Path(__file__).with_name("migrations") / "versions")
SOURCE = "/transfer"


def dependencies(settings: Settings, db: Database, store: EventStore, *,
                 committed: Callable[[], None] = lambda: None,
                 clock: Callable = utcnow) -> Deps:
    """The handlers' dependencies over one database and event store."""

    def streams(stream_id: Callable[[str], str], evolve_) -> Streams:
        return Streams(store, source=SOURCE, stream_id=stream_id, evolve=evolve_, clock=clock)

    return Deps(
        db=db, store=store, transfers=streams(stream_of, evolve),
        signals=streams(ownership_stream, evolve_signals), directory=Directory(),
        sealer=install_sealer(settings, store.registry),
        rules=rules.TradingRules(
            refuse_blacklisted=settings.refuse_blacklisted,
            refuse_under_measure=settings.refuse_under_measure,
            min_days_between_transfers=settings.min_days_between_transfers,
            window_days=settings.trading_window_days, threshold=settings.trading_threshold),
        confirmation_days=settings.confirmation_days, opt_out_days=settings.opt_out_days,
        ad_revenue_pause_months=settings.ad_revenue_pause_months,
        clock=clock, committed=committed)


def subscription(deps: Deps) -> Subscription:
    """Registration's owners, enforcement's measures and verification's answers on
    transferees, each handled in the consumer's transaction with its inbox record."""
    return Subscription(name="transfer-inbound",
                        topics=[events_topic("registration"), events_topic("enforcement"),
                                events_topic("verification")],
                        handler=each(partial(when_event, deps)), event_types=EVENT_TYPES)


def bootstrap(settings: Settings | None = None) -> ServiceRuntime:
    """The runtime, the complete dependencies, the subscription and the periodic sweep
    (``TRANSFER_SWEEP_INTERVAL_SECONDS``, 0: never)."""
    settings = settings or Settings()
    runtime = ServiceRuntime(settings, registry=all_contracts(), migrations=MIGRATIONS)
    deps = dependencies(settings, runtime.db, runtime.store, committed=runtime.committed)
    return runtime.serve(
        deps, subscriptions=[subscription(deps)], projections=[],
        periodic=[Periodic("sweep", settings.sweep_interval_seconds,
                           partial(sweep.periodically, deps))])
