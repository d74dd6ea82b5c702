"""The one place where the registration service is wired."""

from pathlib import Path

from libs.events.contracts import all_contracts
from libs.runtime.service import ServiceRuntime

from .settings import Settings

MIGRATIONS = str(Path(__file__).with_name("migrations") / "versions")


def bootstrap(settings: Settings | None = None) -> ServiceRuntime:
    """Registry, migrations, subscriptions and projections of the registration service."""
    return ServiceRuntime(settings or Settings(), registry=all_contracts(), migrations=MIGRATIONS)
