"""Registration's limits, bans and lifecycle on a real database (SQLite and PostgreSQL):
what counts against a person's quota (A10.1), bans that stay (A8.3), the inactivity clock
(A10.2) and lapsed qualifications (A9.1, A5).

Upstream events are delivered to :func:`handlers.when_event` as the consumer delivers them
(checked against their contract); the clock is injected.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from libs.domain import DomainError
from libs.events import Database, Envelope, EventStore
from libs.events.contracts import all_contracts
from libs.events.migrate import upgrade
from libs.runtime.pii import Sealer
from libs.runtime.problems import ProblemError, status_of
from services.registration import handlers, schemas
from services.registration.adapters import ClosedNames
from services.registration.api import answer_of
from services.registration.bootstrap import MIGRATIONS
from services.registration.handlers import Deps, account_streams
from services.registration.rules import Policy
from tests.conftest import BACKENDS
from tests.registration_support import body, phone, resident_id

pytestmark = pytest.mark.postgres
SEALER = Sealer("test-key")
T0 = datetime(2027, 1, 4, 9, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
async def deps(database_url):
    await asyncio.to_thread(upgrade, database_url, MIGRATIONS)
    db = Database(database_url, pool_size=10)
    store = EventStore(all_contracts(), dialect=db.dialect)
    clock = Clock(T0)
    yield Deps(db=db, store=store, accounts=account_streams(store, clock), policy=Policy(),
               agreement_version="2025-01", names=ClosedNames(), sealer=SEALER, clock=clock)
    await db.dispose()


async def register(deps, b):
    app = schemas.application(schemas.RegisterAccount(**b), SEALER)
    try:
        return answer_of(await handlers.register(deps, app, key=None, digest=str(b)))
    except DomainError as exc:
        raise ProblemError(exc.detail, status=status_of(exc.kind), code=exc.code,
                           **exc.extra) from None


async def deliver(deps, type_: str, account_id: str, **data) -> None:
    """An upstream event, as the consumer delivers it."""
    source = type_.split(".")[0]
    event = Envelope.new(type=type_, source=f"/{source}", subject=account_id,
                         stream_id=f"{source}-{uuid.uuid4().hex}", time=deps.clock(),
                         data={"account_id": account_id, **data})
    async with deps.db.transaction() as tx:
        await handlers.when_event(deps, tx, all_contracts().validate(event))


async def verified(deps, account_id: str) -> None:
    await deliver(deps, "verification.AccountVerified", account_id, identity_level="three_factor",
                  badge="personal", legal_basis=["A8.1", "A8.2"])


async def state(deps, account_id: str):
    async with deps.db.connect() as conn:
        return await deps.accounts.load(conn, account_id)


# -- A10.2 --------------------------------------------------------------------------------
@BACKENDS
async def test_A10_2_activation_after_a_long_review_restarts_the_inactivity_clock(deps):
    account_id = (await register(deps, body())).body["account_id"]
    deps.clock.at = T0 + timedelta(days=200)  # months in review before it is verified
    await verified(deps, account_id)
    deps.clock.at = T0 + timedelta(days=201)
    assert await handlers.sweep_account(deps, account_id, now=deps.clock.at) == []
    assert (await state(deps, account_id)).status == "active"
    # six months after activation without use, the sweep does suspend it
    later = T0 + timedelta(days=200) + timedelta(days=185)
    assert await handlers.sweep_account(deps, account_id, now=later) == [
        "registration.AccountSuspended"]
