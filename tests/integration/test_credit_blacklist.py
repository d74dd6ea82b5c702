"""A13.2 downstream: credit's ``IdentityBlacklisted`` closes the account in registration
and bars its identity from registering again (A8.3), and enforcement records it; both
through their consumers, delivered twice."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from libs.domain import ForbiddenError
from libs.events import Consumer, Database, Envelope, EventStore
from libs.events.contracts import all_contracts
from libs.events.contracts.credit import IdentityBlacklisted, IdentityBlacklistLifted
from libs.events.kafka_binding import to_kafka
from libs.events.migrate import upgrade
from libs.events.testing import FakeBroker, FakeRecord
from libs.runtime.pii import Sealer
from services.enforcement import bootstrap as enf_boot
from services.enforcement.projections import BLACKLISTS
from services.enforcement.settings import Settings as EnfSettings
from services.registration import bootstrap as reg_boot
from services.registration import handlers, schemas
from services.registration.adapters import ClosedNames
from services.registration.handlers import Deps, account_streams
from services.registration.rules import Policy
from tests.conftest import BACKENDS
from tests.registration_support import body

pytestmark = pytest.mark.postgres
CONTRACTS = all_contracts()
SEALER = Sealer("test-key")
T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


def blacklisted(account_id: str, blind: str) -> Envelope:
    data = IdentityBlacklisted(account_id=account_id, identity_blind=blind,
                               blacklist_id="blacklist-x-1", account_ids=[account_id],
                               strike_ids=["r1", "r2", "r3"], window_days=180, at=T0,
                               legal_basis=["A13.2"], evidence_event_ids=["e1"]).to_data()
    return Envelope.new(type=IdentityBlacklisted.event_type, source="/credit",
                        subject=account_id, stream_id=f"credit-identity-{blind}", time=T0,
                        data=data)


def lifted(account_id: str, blind: str) -> Envelope:
    data = IdentityBlacklistLifted(
        account_id=account_id, identity_blind=blind, blacklist_id="blacklist-x-1",
        account_ids=[account_id], overruled_strike_id="r3", remaining_strike_ids=["r1", "r2"],
        legal_basis=["A13.2", "A20.2"], evidence_event_ids=["e2"]).to_data()
    return Envelope.new(type=IdentityBlacklistLifted.event_type, source="/credit",
                        subject=account_id, stream_id=f"credit-identity-{blind}", time=T0,
                        data=data)


def twice(e: Envelope) -> list[FakeRecord]:
    key, value, headers = to_kafka(CONTRACTS.validate(e)._replace(stream_version=1))
    return [FakeRecord("credit.events", 0, o, key, value, list(headers)) for o in (0, 1)]


async def consume(db, name: str, handler, e: Envelope) -> None:
    broker = FakeBroker()
    consumer = Consumer(name=name, db=db, registry=CONTRACTS,
                        source=broker.consumer(name, "t"), handler=handler,
                        dead_letter_producer=broker.producer())
    for record in twice(e):
        await consumer.process([record])


@BACKENDS
async def test_A13_2_registration_closes_a_blacklisted_identitys_account_and_bans_it(
        database_url):
    await asyncio.to_thread(upgrade, database_url, reg_boot.MIGRATIONS)
    db = Database(database_url)
    store = EventStore(CONTRACTS, dialect=db.dialect)
    deps = Deps(db=db, store=store, accounts=account_streams(store), policy=Policy(),
                agreement_version="2025-01", names=ClosedNames(), sealer=SEALER)
    try:
        request = body()
        app = schemas.application(schemas.RegisterAccount(**request), SEALER)
        out = await handlers.register(deps, app, key=None, digest="-")
        account_id = out.account_id
        async with db.connect() as conn:
            first = (await store.read_stream(conn, f"account-{account_id}"))[0]
        blind = first.data["identity"]["id_number_blind"]
        await consume(db, "registration-inbound", reg_boot.subscription(deps).handler,
                      blacklisted(account_id, blind))
        async with db.connect() as conn:
            events = await store.read_stream(conn, f"account-{account_id}")
        added = [e for e in events if e.causation_id is not None and e.type in (
            "registration.AccountClosed", "registration.ReregistrationBanImposed")]
        assert [e.type for e in added] == ["registration.AccountClosed",
                                           "registration.ReregistrationBanImposed"]
        assert added[0].data["reason"] == "blacklist"
        assert "A13.2" in added[0].data["legal_basis"]
        assert blind in added[1].data["keys"]
        # the same person is barred from registering again ...
        app = schemas.application(schemas.RegisterAccount(**body(
            id_number=request["identity"]["id_number"],
            phone_number=request["identity"]["phone"])), SEALER)
        with pytest.raises(ForbiddenError) as barred:
            await handlers.register(deps, app, key=None, digest="-")
        assert barred.value.code == "registration-banned"
        # ... until an upheld appeal lifts the blacklist (A20.2): the ban goes, the closed
        # account stays closed, and the person may register again
        await consume(db, "registration-inbound", reg_boot.subscription(deps).handler,
                      lifted(account_id, blind))
        async with db.connect() as conn:
            events = await store.read_stream(conn, f"account-{account_id}")
        assert [e.type for e in events].count("registration.ReregistrationBanLifted") == 1
        assert events[-1].data["measure_id"] == "blacklist-x-1"
        again = await handlers.register(deps, app, key=None, digest="-")
        assert again.status == "pending_verification"
    finally:
        await db.dispose()


@BACKENDS
async def test_A13_2_enforcement_records_the_blacklist_once(database_url):
    await asyncio.to_thread(upgrade, database_url, enf_boot.MIGRATIONS)
    db = Database(database_url)
    store = EventStore(CONTRACTS, dialect=db.dialect)
    deps = enf_boot.dependencies(EnfSettings(), db, store)
    try:
        await consume(db, "enforcement-inbound", enf_boot.subscription(deps).handler,
                      blacklisted("acc-bl", "blind-1"))
        async with db.connect() as conn:
            doc = await BLACKLISTS.get(conn, "acc-bl")
        assert doc["blacklist_id"] == "blacklist-x-1" and doc["legal_basis"] == ["A13.2"]
        assert doc["strike_ids"] == ["r1", "r2", "r3"] and doc["status"] == "standing"
        await consume(db, "enforcement-inbound", enf_boot.subscription(deps).handler,
                      lifted("acc-bl", "blind-1"))
        async with db.connect() as conn:
            doc = await BLACKLISTS.get(conn, "acc-bl")
        assert doc["status"] == "lifted" and doc["overruled_strike_id"] == "r3"
    finally:
        await db.dispose()
