"""The one place where the registration service is wired."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from libs.events.contracts import all_contracts
from libs.runtime.pii import Sealer
from libs.runtime.service import ServiceRuntime

from . import inbound, sweep
from .handlers import Deps
from .lookups import ClosedNames
from .projections import AccountsProjection
from .rules import LEGAL, NATURAL, UNINCORPORATED, Limit, Policy, Velocity
from .settings import Settings

MIGRATIONS = str(Path(__file__).with_name("migrations") / "versions")
log = logging.getLogger(__name__)


def policy_from(s: Settings) -> Policy:
    win = s.velocity_window_seconds
    return Policy(
        limits={NATURAL: Limit(s.threshold_natural_person, s.limit_natural_person),
                LEGAL: Limit(s.threshold_legal_person, s.limit_legal_person),
                UNINCORPORATED: Limit(s.threshold_unincorporated, s.limit_unincorporated)},
        phone_limit=s.limit_phone,
        velocity={kind: Velocity(win, s.velocity_hold_after, s.velocity_refuse_after)
                  for kind in ("identity", "phone", "device")}
        | {"network": Velocity(win, s.network_hold_after, s.network_refuse_after)},
        correction_days=s.correction_days)


class RegistrationRuntime(ServiceRuntime):
    """The kernel's runtime plus registration's own parts: the handlers' dependencies,
    the closed-names index and its refresher, and the periodic sweep."""

    def __init__(self, settings: Settings) -> None:
        self.sealer = Sealer(settings.pii_key)
        self.deps = Deps(db=None, store=None, policy=policy_from(settings),  # type: ignore[arg-type]
                         agreement_version=settings.agreement_version, names=ClosedNames())
        super().__init__(settings, registry=all_contracts(), migrations=MIGRATIONS,
                         subscriptions=[inbound.subscription(self.deps)],
                         projections=[AccountsProjection()])
        self.db.pool_size = settings.pool_size
        self.deps.db, self.deps.store, self.deps.committed = self.db, self.store, self.committed

    async def start(self) -> None:
        await super().start()
        s: Settings = self.settings  # type: ignore[assignment]
        await self.deps.names.refresh(self.db)
        log.info("closed names indexed: %d", len(self.deps.names.index))
        self.background(self._refresh_names(s.closed_names_refresh_seconds), name="closed-names")
        if s.sweep_interval_seconds > 0:
            self.background(sweep.periodically(self.deps, s.sweep_interval_seconds), name="sweep")

    async def _refresh_names(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.deps.names.refresh(self.db)
            except Exception:  # noqa: BLE001 - stale for one more interval, then retried
                log.exception("closed names refresh failed")


def bootstrap(settings: Settings | None = None) -> RegistrationRuntime:
    """Registry, migrations, subscriptions and projections of the registration service."""
    return RegistrationRuntime(settings or Settings())
