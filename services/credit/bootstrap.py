"""The one place where the credit service is wired."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

from libs.events import Database, EventStore, Streams, each, events_topic
from libs.events.contracts import all_contracts
from libs.runtime.clock import now as utcnow
from libs.runtime.deps import nothing_to_catch_up
from libs.runtime.pii import install_sealer
from libs.runtime.service import Periodic, ServiceRuntime, Subscription

from . import rules, sweep
from .adapters import Baselines, IdentityDirectory
from .domain import account_stream, evolve_identity, evolve_profile, identity_stream
from .handlers import Deps, flush_baselines, when_event
from .policies import POLICIES
from .projections import all_projections
from .settings import Settings

MIGRATIONS = str(Path(__file__).with_name("migrations") / "versions")
SOURCE = "/credit"



def scoring_model(s: Settings) -> rules.ScoringModel:
    return rules.ScoringModel(
        version=s.model_version, start=s.start_score, severe_points=s.severe_points,
        moderate_points=s.moderate_points, rumor_points=s.rumor_points,
        clean_day_points=s.clean_day_points, clean_day_cap=s.clean_day_cap,
        anomaly_points=s.anomaly_points, forced_follow_points=s.forced_follow_points,
        forced_follow_unit=s.forced_follow_unit, strikes_to_blacklist=s.strikes_to_blacklist,
        strike_window_days=s.strike_window_days, strike_expiry_days=s.strike_expiry_days)


def dependencies(settings: Settings, db: Database, store: EventStore, *,
                 committed: Callable[[], None] = lambda: None,
                 catch_up: Callable[[], Awaitable[None]] = nothing_to_catch_up,
                 clock: Callable = utcnow) -> Deps:
    """The handlers' dependencies over one database and event store."""
    # Credit opens no sealed value, but reads events as every service does: v1: values
    # through the upcaster (ADR 0033).
    install_sealer(settings, store.registry)
    detector = rules.DetectorModel(threshold=settings.detector_threshold,
                                   history=settings.detector_history)
    return Deps(
        db=db, store=store,
        profiles=Streams(store, source=SOURCE, stream_id=account_stream,
                         evolve=evolve_profile, clock=clock),
        identities=Streams(store, source=SOURCE, stream_id=identity_stream,
                           evolve=evolve_identity, clock=clock),
        directory=IdentityDirectory(), baselines=Baselines(
            detector, keep_samples=settings.keep_samples,
            max_rows=settings.baseline_cache_rows, max_dirty=settings.baseline_max_dirty),
        model=scoring_model(settings), detector=detector, clock=clock, committed=committed,
        catch_up=catch_up, max_batch=settings.max_batch)


def subscription(deps: Deps) -> Subscription:
    """Registration (identities), verification (levels) and enforcement (violations,
    measures, appeals), each recorded in the consumer's transaction with its inbox record."""
    return Subscription(name="credit-inbound",
                        topics=[events_topic("registration"), events_topic("verification"),
                                events_topic("enforcement")],
                        handler=each(partial(when_event, deps)),
                        event_types=frozenset(POLICIES))


def bootstrap(settings: Settings | None = None) -> ServiceRuntime:
    """The runtime, the complete dependencies, the subscription, the read model, the
    periodic sweep (``CREDIT_SWEEP_INTERVAL_SECONDS``, 0: never) and the detector's
    memory written behind (every ``CREDIT_BASELINE_FLUSH_SECONDS`` and at shutdown)."""
    settings = settings or Settings()
    runtime = ServiceRuntime(settings, registry=all_contracts(), migrations=MIGRATIONS)
    deps = dependencies(settings, runtime.db, runtime.store, committed=runtime.committed,
                        catch_up=runtime.catch_up_projections)
    return runtime.serve(
        deps, subscriptions=[subscription(deps)], projections=all_projections(),
        periodic=[Periodic("sweep", settings.sweep_interval_seconds,
                           partial(sweep.periodically, deps)),
                  Periodic("baselines", settings.baseline_flush_seconds,
                           partial(flush_baselines, deps), role="api")],
        on_stop=[partial(flush_baselines, deps)])
