"""The one place where the verification service is wired."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import partial
from pathlib import Path

from libs.events import Database, EventStore, Streams, each, events_topic
from libs.events.contracts import all_contracts
from libs.identity.providers import HttpIdentityProviders
from libs.runtime.clock import now as utcnow
from libs.runtime.deps import nothing_to_catch_up
from libs.runtime.pii import install_sealer
from libs.runtime.service import Periodic, ServiceRuntime, Subscription

from . import sweep
from .adapters import ProtectedRegistry, provider_named
from .domain import (
    evolve,
    evolve_protected_name,
    evolve_transferee,
    evolve_word_list,
    stream_of,
    transferee_stream,
)
from .handlers import Deps, catch_up_registry, when_event
from .policies import POLICIES
from .projections import all_projections
from .rules import Policy
from .settings import Settings

MIGRATIONS = str(Path(__file__).with_name("migrations") / "versions")
SOURCE = "/verification"
log = logging.getLogger(__name__)



def identity_provider(settings: Settings):
    """The configured providers: the HTTP adapters in production, the double in development."""
    http = None
    if settings.identity_provider == "http":
        http = HttpIdentityProviders.of(*(settings.provider_endpoint(check) for check in (
            "public_security", "carrier", "business_registry")))
    return provider_named(settings.identity_provider, http)


def dependencies(settings: Settings, db: Database, store: EventStore, *,
                 committed: Callable[[], None] = lambda: None,
                 catch_up: Callable[[], Awaitable[None]] = nothing_to_catch_up) -> Deps:
    """The handlers' dependencies over one database and event store."""
    clock = utcnow

    def streams(stream_id: Callable[[str], str], evolve_) -> Streams:
        return Streams(store, source=SOURCE, stream_id=stream_id, evolve=evolve_, clock=clock)

    return Deps(
        db=db, store=store,
        verifications=streams(stream_of, evolve),
        protected_names=streams(lambda key: f"protected-name-{key}", evolve_protected_name),
        word_list=streams(lambda key: key, evolve_word_list),  # one stream: prohibited-words
        transferees=streams(transferee_stream, evolve_transferee),
        sealer=install_sealer(settings, store.registry), provider=identity_provider(settings),
        registry=ProtectedRegistry(base_words=settings.prohibited_words),
        policy=Policy(settings.protected_name_threshold, settings.logo_max_distance),
        min_tenure_months=settings.extra_min_phone_tenure_months,
        identity_retry_seconds=settings.identity_retry_seconds,
        identity_retry_max_seconds=settings.identity_retry_max_seconds,
        identity_check_concurrency=settings.identity_check_concurrency,
        identity_review_after=timedelta(hours=settings.identity_review_after_hours),
        reinspection_interval_days=settings.reinspection_interval_days,
        sample_fraction=settings.reinspection_sample_fraction,
        clock=clock, committed=committed, catch_up=catch_up)


def subscription(deps: Deps) -> Subscription:
    """Registration's events and transfer's applications and notices (A11.2), each handled
    in the consumer's transaction with its inbox record, so a redelivery changes nothing."""
    return Subscription(name="verification-inbound",
                        topics=[events_topic("registration"), events_topic("transfer")],
                        handler=each(partial(when_event, deps)),
                        event_types=frozenset(POLICIES))


async def _load_registry(deps: Deps) -> None:
    log.info("protected-name registry: %d events applied", await catch_up_registry(deps))


def bootstrap(settings: Settings | None = None) -> ServiceRuntime:
    """The runtime, the complete dependencies, the subscription, the read models, the
    periodic sweep (``VERIFICATION_SWEEP_INTERVAL_SECONDS``, 0: never) and the registry
    loaded at start."""
    settings = settings or Settings()
    runtime = ServiceRuntime(settings, registry=all_contracts(), migrations=MIGRATIONS)
    deps = dependencies(settings, runtime.db, runtime.store, committed=runtime.committed,
                        catch_up=runtime.catch_up_projections)
    return runtime.serve(
        deps, subscriptions=[subscription(deps)], projections=all_projections(),
        periodic=[Periodic("sweep", settings.sweep_interval_seconds,
                           partial(sweep.periodically, deps)),
                  Periodic("identity-checks", settings.identity_check_interval_seconds,
                           partial(sweep.check_identities, deps), on_commit=True)],
        on_start=[partial(_load_registry, deps)])
