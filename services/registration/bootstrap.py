"""The one place where the registration service is wired: settings, database, store,
adapters, the handlers' dependencies, the subscription, the projection, periodic tasks,
the backlog new registrations are admitted against."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

from libs.events import each, events_topic
from libs.events.contracts import all_contracts
from libs.runtime.admission import Backlog
from libs.runtime.clock import now as utcnow
from libs.runtime.pii import install_sealer
from libs.runtime.service import Periodic, ServiceRuntime, Subscription

from . import handlers, sweep, views
from .adapters import ClosedNames
from .handlers import Deps, account_streams
from .policies import POLICIES
from .projections import AccountsProjection
from .rules import LEGAL, NATURAL, UNINCORPORATED, Limit, Policy, Velocity
from .settings import Settings
from .writer import RegistrationWriter

MIGRATIONS = str(Path(__file__).with_name("migrations") / "versions")
log = logging.getLogger(__name__)


def policy_from(s: Settings) -> Policy:
    win = s.velocity_window_seconds
    return Policy(
        limits={NATURAL: Limit(s.threshold_natural_person, s.limit_natural_person),
                LEGAL: Limit(s.threshold_legal_person, s.limit_legal_person),
                UNINCORPORATED: Limit(s.threshold_unincorporated, s.limit_unincorporated)},
        category_limits={c: Limit(v.threshold, v.limit) for c, v in s.category_limits.items()},
        phone_limit=s.limit_phone,
        velocity={kind: Velocity(win, s.velocity_hold_after, s.velocity_refuse_after)
                  for kind in ("identity", "phone", "device")}
        | {"network": Velocity(win, s.network_hold_after, s.network_refuse_after)},
        correction_days=s.correction_days, closure_ban_severity=s.closure_ban_severity)


def subscription(deps: Deps) -> Subscription:
    """Verification, credit, enforcement and transfer events -> :func:`handlers.when_event`."""

    async def one(tx, event) -> None:
        await handlers.when_event(deps, tx, event)

    return Subscription(
        name="registration-inbound",
        topics=[events_topic(s) for s in ("verification", "credit", "enforcement", "transfer")],
        handler=each(one),
        event_types=frozenset(POLICIES),
    )


def bootstrap(settings: Settings | None = None) -> ServiceRuntime:
    """The registration service's runtime, its dependencies and what it runs."""
    s = settings or Settings()
    runtime = ServiceRuntime(s, registry=all_contracts(), migrations=MIGRATIONS,
                             pool_size=s.pool_size)
    deps = Deps(db=runtime.db, store=runtime.store,
                accounts=account_streams(runtime.store, utcnow,
                                         snapshot_every=s.snapshot_every), policy=policy_from(s),
                agreement_version=s.agreement_version, names=ClosedNames(
                    affixes=s.closed_names_affixes,
                    contained_min_length=s.closed_names_contained_min_length),
                sealer=install_sealer(s, runtime.registry), clock=utcnow,
                committed=runtime.committed, catch_up=runtime.catch_up_projections)
    if s.group_commit and runtime.db.dialect == "postgresql":
        deps.registrations = RegistrationWriter(deps)

    async def refresh_names() -> None:
        await deps.names.refresh(deps.db)

    async def load_names() -> None:
        await refresh_names()
        log.info("closed names indexed: %d", len(deps.names.index))

    async def sweep_periodically() -> None:
        await sweep.scheduled(deps)

    async def awaiting() -> int:
        since = utcnow() - timedelta(seconds=s.awaiting_window_seconds)
        return await views.awaiting_verification(deps.db, since=since)

    # ADR 0044: what a registration starts is finished by verification, over Kafka; past
    # what the system finishes, new registrations are shed rather than queued there.
    activation = Backlog("accounts awaiting verification", frozenset({("POST", "/v1/accounts")}),
                         s.max_awaiting_verification, awaiting)

    return runtime.serve(
        deps,
        subscriptions=[subscription(deps)],
        projections=[AccountsProjection()],
        # A8.3: names closed by other workers reach this one within one refresh interval.
        periodic=[Periodic("closed-names", s.closed_names_refresh_seconds, refresh_names,
                           role="api"),
                  Periodic("sweep", s.sweep_interval_seconds, sweep_periodically)],
        backlogs=[(activation, s.awaiting_refresh_seconds)],
        on_start=[load_names])
