"""Apply a service's Alembic history to its database (on start-up and by ``make migrate``).

Every service database has its own history: the kernel's revisions
(``libs/events/alembic/versions``) followed by the service's own
(``services/<name>/migrations/versions``). Tests and benchmarks apply the kernel's
revisions alone.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import pool
from sqlalchemy.ext.asyncio import create_async_engine

KERNEL_SCRIPTS = str(Path(__file__).with_name("alembic"))


KERNEL_VERSIONS = str(Path(KERNEL_SCRIPTS) / "versions")


def alembic_config(database_url: str, versions: str | None = None) -> Config:
    """An Alembic config for one database: the kernel's revisions plus ``versions``.

    The kernel's ``env.py`` serves every service; a service's own revisions live in its
    ``migrations/versions`` folder and start from the kernel's head, so each service
    database has one linear history of its own.
    """
    cfg = Config()
    cfg.set_main_option("script_location", KERNEL_SCRIPTS)
    locations = [KERNEL_VERSIONS]
    if versions and Path(versions).is_dir():
        locations.append(versions)
    cfg.set_main_option("version_locations", " ".join(locations))
    cfg.set_main_option("path_separator", "space")
    cfg.attributes["database_url"] = database_url
    return cfg


def upgrade(database_url: str, versions: str | None = None, revision: str = "heads") -> None:
    """Bring the database to ``revision``; blocking, so call it via ``asyncio.to_thread``."""
    if database_url.startswith("sqlite"):
        _ensure_sqlite_dir(database_url)
    command.upgrade(alembic_config(database_url, versions), revision)


def _ensure_sqlite_dir(url: str) -> None:
    path = url.split("///", 1)[-1]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)


def run_env() -> None:
    """Body of every ``env.py``: run migrations online through the async engine."""
    url = context.config.attributes.get("database_url")
    if not url:
        raise RuntimeError("database_url missing: run migrations through libs.events.migrate")

    def run(sync_conn) -> None:
        context.configure(connection=sync_conn, transactional_ddl=True)
        with context.begin_transaction():
            context.run_migrations()

    async def main() -> None:
        engine = create_async_engine(url, poolclass=pool.NullPool)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(run)
        finally:
            await engine.dispose()

    asyncio.run(main())
