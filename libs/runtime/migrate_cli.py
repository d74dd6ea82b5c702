"""``make migrate``: apply each service's Alembic history to its database.

Usage: python -m libs.runtime.migrate_cli [SERVICE ...]   (default: all five)
Database URLs come from the services' settings (``<SERVICE>_DATABASE_URL`` /
``DATABASE_URL``, else the SQLite default under var/).
"""

from __future__ import annotations

import importlib
import sys

from libs.events.migrate import upgrade
from libs.events.topics import SERVICES


def main(names: list[str]) -> int:
    unknown = [n for n in names if n not in SERVICES]
    if unknown:
        print(f"unknown service(s): {', '.join(unknown)}; known: {', '.join(SERVICES)}")
        return 2
    for name in names or SERVICES:
        # Loaded by name so that libs never imports a service statically.
        bootstrap = importlib.import_module(f"services.{name}.bootstrap")
        settings = importlib.import_module(f"services.{name}.settings").Settings()
        print(f"{name}: migrating {settings.database_url.split('@')[-1]}", flush=True)
        upgrade(settings.database_url, bootstrap.MIGRATIONS)
        print(f"{name}: at head", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
