"""Each service's inbound events, delivered twice (Kafka redelivers), change state once.

The kernel's consumer records each event id in the inbox in the handler's transaction;
these tests drive the services' real inbound handlers through it, on both databases.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from libs.events import Consumer, Database, Envelope, EventStore
from libs.events.contracts import all_contracts
from libs.events.kafka_binding import to_kafka
from libs.events.migrate import upgrade
from libs.events.testing import FakeBroker, FakeRecord
from libs.runtime.pii import Sealer
from libs.runtime.settings import DEV_PII_KEY
from services.registration import bootstrap as registration_boot
from services.registration import handlers as registration
from services.registration import schemas as registration_schemas
from services.registration.adapters import ClosedNames
from services.registration.domain import Account, Verdict, stream_of
from services.registration.rules import Policy
from services.verification import bootstrap as verification_boot
from services.verification import sweep as verification_sweep
from services.verification.settings import Settings as VerificationSettings
from tests.conftest import BACKENDS
from tests.registration_support import body

pytestmark = pytest.mark.postgres
SEALER = Sealer(DEV_PII_KEY)
CONTRACTS = all_contracts()


def delivered_twice(env: Envelope, topic: str) -> list[FakeRecord]:
    key, value, headers = to_kafka(CONTRACTS.validate(env)._replace(stream_version=1))
    return [FakeRecord(topic, 0, offset, key, value, list(headers)) for offset in (0, 1)]


def consumer(name: str, db: Database, handler) -> Consumer:
    broker = FakeBroker()
    return Consumer(name=name, db=db, registry=CONTRACTS, source=broker.consumer(name, "t"),
                    handler=handler, dead_letter_producer=broker.producer())


async def migrated(url: str, migrations: str) -> Database:
    await asyncio.to_thread(upgrade, url, migrations)
    return Database(url)


@BACKENDS
async def test_registration_applies_a_redelivered_verification_once(database_url):
    db = await migrated(database_url, registration_boot.MIGRATIONS)
    store = EventStore(CONTRACTS, dialect=db.dialect)
    deps = registration.Deps(db=db, store=store, accounts=registration.account_streams(store),
                             policy=Policy(), agreement_version="2025-01", names=ClosedNames(),
                             sealer=SEALER)
    try:
        app = registration_schemas.application(
            registration_schemas.RegisterAccount(**body()), SEALER)
        account_id = (await registration.register(deps, app, key=None, digest="-")).account_id
        verified = Envelope.new(
            type="verification.AccountVerified", source="/verification", subject=account_id,
            stream_id=f"verification-{account_id}", time=datetime.now(UTC),
            data={"account_id": account_id, "identity_level": "three_factor",
                  "badge": "personal", "legal_basis": ["A8.1"], "evidence_event_ids": []})
        inbound = consumer("registration-inbound", db,
                           registration_boot.subscription(deps).handler)
        for record in delivered_twice(verified, "verification.events"):
            await inbound.process([record])
        async with db.connect() as conn:
            types = [e.type for e in await deps.store.read_stream(
                conn, stream_of(account_id))]
        assert types.count("registration.AccountActivated") == 1, types
    finally:
        await db.dispose()


@BACKENDS
async def test_verification_checks_a_redelivered_registration_once(database_url):
    db = await migrated(database_url, verification_boot.MIGRATIONS)
    deps = verification_boot.dependencies(VerificationSettings(), db,
                                          EventStore(CONTRACTS, dialect=db.dialect))
    try:
        app = registration_schemas.application(
            registration_schemas.RegisterAccount(**body(category="lifestyle")), SEALER)
        account_id = "acc-redelivered"
        submitted = Envelope.new(
            type="registration.AccountRegistrationSubmitted", source="/registration",
            subject=account_id, stream_id=f"account-{account_id}", time=datetime.now(UTC),
            data=Account.register(account_id, app, Verdict("accept"))[0].to_data())
        inbound = consumer("verification-inbound", db,
                           verification_boot.subscription(deps).handler)
        for record in delivered_twice(submitted, "registration.events"):
            await inbound.process([record])
        # the providers are asked outside the consumer's transaction (ADR 0026)
        assert await verification_sweep.check_identities(deps) == {account_id: "verified"}
        assert await verification_sweep.check_identities(deps) == {}
        async with db.connect() as conn:
            types = [e.type for e in await deps.store.read_stream(
                conn, f"verification-{account_id}")]
        assert types.count("verification.IdentityVerified") == 1, types
        assert types.count("verification.AccountVerified") == 1, types
    finally:
        await db.dispose()
