"""Real infrastructure for the suite, started once per session by the project's own scripts.

PostgreSQL and Kafka are never skipped: when a test needs them and they cannot be
started, the fixture fails with the script's output.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import ClassVar

import asyncpg
import pytest

from libs.events import Database, EventPayload, EventRegistry, EventStore
from libs.events.migrate import upgrade

# The suite runs the development configuration (its published secrets, SQLite, the test
# clock), which the settings refuse unless ENVIRONMENT=development is set explicitly; child
# processes (the e2e supervisor, fault workers) inherit it.
os.environ.setdefault("ENVIRONMENT", "development")

ROOT = Path(__file__).resolve().parents[1]
PG_PORT = os.environ.get("PG_PORT", "55432")
KAFKA = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")


def _script(path: str, *args: str) -> str:
    proc = subprocess.run(["bash", str(ROOT / path), *args], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"{path} {' '.join(args)} failed ({proc.returncode}):\n"
                    f"{proc.stdout}\n{proc.stderr}", pytrace=False)
    return proc.stdout


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The project's PostgreSQL cluster (installed and started if needed); its admin DSN."""
    _script("deploy/local/postgres/postgres.sh", "start")
    return f"postgresql://postgres@127.0.0.1:{PG_PORT}/postgres"


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """The project's Kafka broker (fetched and started if needed), ready for clients."""
    _script("deploy/local/kafka/kafka.sh", "start")
    _script("deploy/local/kafka/kafka.sh", "wait")
    return KAFKA


async def create_database(admin_dsn: str, prefix: str = "t") -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name


async def drop_database(admin_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
async def database_url(request, tmp_path) -> AsyncIterator[str]:
    """A fresh, migrated database per test: SQLite or PostgreSQL, per the ``backend`` param."""
    backend = getattr(request, "param", "postgres")
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/events.db"
        await asyncio.to_thread(upgrade, url)
        yield url
        return
    admin = request.getfixturevalue("postgres_server")
    name = await create_database(admin)
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{PG_PORT}/{name}"
    await asyncio.to_thread(upgrade, url)
    yield url
    await drop_database(admin, name)


BACKENDS = pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)

# -- a small contract set for kernel tests ---------------------------------------------
registry = EventRegistry()


@registry.contract
class Noted(EventPayload):
    event_type: ClassVar[str] = "test.Noted"
    schema_version: ClassVar[int] = 1
    n: int


@registry.contract
class Renamed(EventPayload):
    """Version 2 split ``name`` into ``name`` and ``normalised``; v1 rows are upcast."""

    event_type: ClassVar[str] = "test.Renamed"
    schema_version: ClassVar[int] = 2
    name: str
    normalised: str


@registry.upcaster("test.Renamed", from_version=1)
def _renamed_v1_to_v2(data: dict) -> dict:
    return {"name": data["name"], "normalised": data["name"].casefold()}


@pytest.fixture
async def db(database_url) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.dispose()


@pytest.fixture
def store(db) -> EventStore:
    return EventStore(registry, dialect=db.dialect)


async def eventually(check: Callable[[], Awaitable[bool]], *, timeout: float = 30,
                     interval: float = 0.05, what: str = "condition") -> None:
    """Poll ``check`` until it is true or the deadline passes (then fail with ``what``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        if await check():
            return
        if loop.time() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


@pytest.fixture
async def topic(kafka_bootstrap) -> str:
    """A new 3-partition topic on the real broker."""
    from tests.integration.kafka_helpers import fresh_topic

    return await fresh_topic(kafka_bootstrap)


@pytest.fixture
async def producer(kafka_bootstrap) -> AsyncIterator:
    """A started producer configured as the relay's (acks=all, idempotent), stopped after."""
    from tests.integration.kafka_helpers import started_producer

    p = await started_producer(kafka_bootstrap)
    yield p
    await p.stop()
