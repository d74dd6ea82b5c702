"""The one place where the verification service is wired."""

from __future__ import annotations

import logging
from pathlib import Path

from libs.events.contracts import all_contracts
from libs.runtime.pii import Sealer
from libs.runtime.service import ServiceRuntime

from . import inbound, sweep
from .handlers import Deps, catch_up_registry
from .profile_checks import Policy, ProtectedRegistry
from .projections import all_projections
from .providers import provider_named
from .settings import Settings

MIGRATIONS = str(Path(__file__).with_name("migrations") / "versions")
log = logging.getLogger(__name__)


def deps_from(settings: Settings) -> Deps:
    return Deps(
        db=None, store=None,  # type: ignore[arg-type] - set once the runtime has them
        sealer=Sealer(settings.pii_key), provider=provider_named(settings.identity_provider),
        registry=ProtectedRegistry(base_words=settings.prohibited_words),
        policy=Policy(settings.protected_name_threshold, settings.logo_max_distance),
        min_tenure_months=settings.extra_min_phone_tenure_months,
        reinspection_interval_days=settings.reinspection_interval_days,
        sample_fraction=settings.reinspection_sample_fraction)


class VerificationRuntime(ServiceRuntime):
    """The kernel's runtime plus verification's handlers' dependencies, the registry kept
    in memory, and the periodic sweep."""

    def __init__(self, settings: Settings) -> None:
        self.deps = deps_from(settings)
        super().__init__(settings, registry=all_contracts(), migrations=MIGRATIONS,
                         subscriptions=[inbound.subscription(self.deps)],
                         projections=all_projections())
        self.deps.db, self.deps.store, self.deps.committed = self.db, self.store, self.committed

    async def start(self) -> None:
        await super().start()
        log.info("protected-name registry: %d events applied",
                 await catch_up_registry(self.deps))
        s: Settings = self.settings  # type: ignore[assignment]
        if s.sweep_interval_seconds > 0:
            self.background(sweep.periodically(self.deps, s.sweep_interval_seconds), name="sweep")


def bootstrap(settings: Settings | None = None) -> VerificationRuntime:
    """Registry, migrations, subscriptions and projections of the verification service."""
    return VerificationRuntime(settings or Settings())
