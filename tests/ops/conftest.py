"""Two service databases (registration, verification) per test, on SQLite or PostgreSQL,
configured through the environment exactly as ``make run`` configures the services."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from libs.events.migrate import upgrade
from libs.runtime.pii import Sealer
from libs.runtime.settings import DEV_PII_KEY
from services.registration import handlers, schemas
from services.registration.bootstrap import MIGRATIONS as REGISTRATION
from services.verification.bootstrap import MIGRATIONS as VERIFICATION
from tests.conftest import PG_PORT, create_database, drop_database
from tests.registration_support import body

SEALER = Sealer(DEV_PII_KEY)


@pytest.fixture
async def ops_env(request, tmp_path, monkeypatch):
    """``{service: url}``; the env points each service (and acctctl) at its database."""
    backend = getattr(request, "param", "postgres")
    urls, created = {}, []
    for svc, versions in (("registration", REGISTRATION), ("verification", VERIFICATION)):
        if backend == "sqlite":
            url = f"sqlite+aiosqlite:///{tmp_path}/{svc}.db"
        else:
            admin = request.getfixturevalue("postgres_server")
            name = await create_database(admin, prefix=f"ops_{svc[:3]}")
            created.append((admin, name))
            url = f"postgresql+asyncpg://postgres@127.0.0.1:{PG_PORT}/{name}"
        await asyncio.to_thread(upgrade, url, versions)
        urls[svc] = url
        monkeypatch.setenv(f"{svc.upper()}_DATABASE_URL", url)
    monkeypatch.setenv("KAFKA_NAMESPACE", f"ops{uuid.uuid4().hex[:8]}.")
    monkeypatch.setenv("REGISTRATION_SWEEP_INTERVAL_SECONDS", "0")
    yield urls
    for admin, name in created:
        await drop_database(admin, name)


OPS_BACKENDS = pytest.mark.parametrize("ops_env", ["sqlite", "postgres"], indirect=True)


async def register(deps, **kw) -> str:
    b = body(**kw)
    result = await handlers.register(deps, schemas.application(schemas.RegisterAccount(**b),
                                                               SEALER),
                                     key=None, digest=str(b))
    assert isinstance(result, handlers.Registered), result
    return result.account_id


async def acctctl(*args: str):
    """The CLI in-process (a thread: each command runs its own event loop)."""
    from typer.testing import CliRunner

    from ops.cli import app

    return await asyncio.to_thread(CliRunner().invoke, app, list(args))
