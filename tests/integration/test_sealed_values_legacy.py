"""Values sealed before ADR 0033 (``v1:``: one key, no key id, no subject) stored in events
are read through the upcaster (``libs.runtime.pii.LegacySealedValues``, installed in each
service's event registry by ``install_sealer``): a service's consumer, its store's reads and
the log's read-all see them re-sealed as ``v2:`` for their subject, the same at every read,
and the opener, which refuses ``v1:``, opens them. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from libs.events import Consumer, Database, Envelope, EventStore, LogCursor
from libs.events.contracts import all_contracts
from libs.events.kafka_binding import to_kafka
from libs.events.migrate import upgrade
from libs.events.testing import FakeBroker, FakeRecord
from libs.runtime.pii import LegacySealedValues, Sealer, SealError, install_sealer, open_identity
from libs.runtime.settings import DEV_PII_KEY
from services.enforcement.settings import Settings
from tests.conftest import BACKENDS, eventually
from tests.integration.test_enforcement_handlers import T0
from tests.service_support import Clock, service_dependencies
from tests.unit.test_pii_sealing import legacy_seal

pytestmark = pytest.mark.postgres

SEALED = ("id_number_sealed", "holder_name_sealed", "phone_sealed",
          "representative_name_sealed", "representative_id_sealed")


@pytest.fixture
async def deps(database_url):
    from services.enforcement import bootstrap as boot
    from services.enforcement.projections import all_projections

    async with service_dependencies(boot, Settings(), database_url, clock=Clock(T0),
                                    projections=all_projections()) as d:
        yield d


def legacy_registration(account_id: str) -> tuple[Envelope, dict[str, str]]:
    """An organization's registration as registration published it before ADR 0033: every
    sealed value ``v1:``; and the values in clear."""
    from services.registration import schemas as reg_schemas
    from services.registration.domain import Account, Verdict
    from tests.registration_support import body

    b = body(entity_type="legal_person")
    app = reg_schemas.application(reg_schemas.RegisterAccount(**b), Sealer(DEV_PII_KEY))
    data = Account.register(account_id, app, Verdict("accept"))[0].to_data()
    i = b["identity"]
    clear = {"id_number_sealed": i["id_number"], "holder_name_sealed": i["name"],
             "phone_sealed": "+86" + i["phone"], "representative_name_sealed":
             i["representative_name"], "representative_id_sealed": i["representative_id_number"],
             "contact_sealed": b["contact"]}
    for field in SEALED:
        data["identity"][field] = legacy_seal(DEV_PII_KEY, clear[field])
    data["contact_sealed"] = legacy_seal(DEV_PII_KEY, clear["contact_sealed"])
    return Envelope.new(type="registration.AccountRegistrationSubmitted",
                        source="/registration", subject=account_id,
                        stream_id=f"account-{account_id}", time=T0, data=data), clear


def records(env: Envelope, topic: str) -> list[FakeRecord]:
    """The event as the relay publishes it (the stored JSON verbatim), delivered twice."""
    key, value, headers = to_kafka(all_contracts().validate(env)._replace(stream_version=1))
    assert b'"v1:' in value
    return [FakeRecord(topic, 0, offset, key, value, list(headers)) for offset in (0, 1)]


async def consume(db: Database, store: EventStore, handler, env: Envelope, name: str) -> None:
    """Through the kernel's consumer with the service's own registry (the store's), as the
    service runtime wires it: its decode upcasts, values included."""
    broker = FakeBroker()
    consumer = Consumer(name=name, db=db, registry=store.registry,
                        source=broker.consumer(name, "t"), handler=handler,
                        dead_letter_producer=broker.producer())
    for record in records(env, "registration.events"):
        await consumer.process([record])
    async with db.connect() as conn:
        dead = await conn.fetchval(text("SELECT COUNT(*) FROM dead_letters"))
    assert dead == 0, "the event was handled, not dead-lettered"


def opened(sealer: Sealer, data: dict) -> dict[str, str]:
    """Every sealed value of a registration payload opened for its ADR 0033 subject."""
    identity = data["identity"]
    return {**{f: open_identity(sealer, identity, f) for f in SEALED},
            "contact_sealed": sealer.open(data["contact_sealed"],
                                          subject=identity["id_number_blind"])}


@BACKENDS
async def test_A7_1_a_stored_v1_registration_opens_in_enforcements_filing_through_the_upcaster(
        deps):
    from services.enforcement import bootstrap as boot

    account = f"acc-{uuid.uuid4().hex[:6]}"
    env, clear = legacy_registration(account)
    assert [fn for fn, _ in deps.store.registry.value_upcasters if isinstance(
        fn, LegacySealedValues)], "the service's wiring installed the upcaster"
    with pytest.raises(SealError, match="through the upcaster"):  # never opened as stored
        deps.sealer.open(env.data["identity"]["id_number_sealed"],
                         subject=env.data["identity"]["id_number_blind"])
    await consume(deps.db, deps.store, boot.subscription(deps).handler, env,
                  "enforcement-inbound")
    async with deps.db.connect() as conn:  # the filing's USCC column (A7.1), opened
        uscc = await conn.fetchval(text(
            "SELECT uscc FROM enforcement_accounts WHERE account_id = :a"), {"a": account})
    assert uscc == clear["id_number_sealed"]


@BACKENDS
async def test_A8_1_verification_opens_and_verifies_a_stored_v1_registration(database_url):
    """Verification's consumer checks the numbers (opening them) in its transaction, keeps
    the identity on its own stream and verifies it with the providers afterwards (ADR 0026):
    every step opens values that were stored ``v1:``."""
    from services.verification import bootstrap as boot
    from services.verification import sweep
    from services.verification.settings import Settings as VerificationSettings

    await asyncio.to_thread(upgrade, database_url, boot.MIGRATIONS)
    db = Database(database_url)
    try:
        deps = boot.dependencies(VerificationSettings(), db,
                                 EventStore(all_contracts(), dialect=db.dialect))
        account = f"acc-{uuid.uuid4().hex[:6]}"
        env, clear = legacy_registration(account)
        await consume(db, deps.store, boot.subscription(deps).handler, env,
                      "verification-inbound")
        async with db.connect() as conn:
            [opened_event] = await deps.store.read_stream(conn, f"verification-{account}")
            state = await deps.verifications.load(conn, account)
        assert opened_event.type == "verification.VerificationOpened"
        assert state.identity_status == "pending", "the numbers opened and were well-formed"
        # what verification kept is v2 (the upcaster's form) and opens for its subject
        assert opened(deps.sealer, opened_event.data) == clear
        assert deps.sealer.open(state.contact_sealed, subject=state.contact_subject) == (
            clear["contact_sealed"])
        outcome = await sweep.check_identities(deps, now=datetime.now(UTC))
        assert outcome == {account: "verified"}, outcome
    finally:
        await db.dispose()


@BACKENDS
async def test_a_stored_v1_event_is_upcast_the_same_on_every_store_read_path(database_url):
    """read_stream, read_subject, read_all and read_range: the same v2 values at every read
    (deterministic), opening for the identity's subject and no other; the reads that do not
    upcast (the relay's) return the event as stored."""
    from services.registration import bootstrap as boot
    from services.registration.settings import Settings as RegistrationSettings

    await asyncio.to_thread(upgrade, database_url, boot.MIGRATIONS)
    db = Database(database_url)
    try:
        store = EventStore(all_contracts(), dialect=db.dialect)
        sealer = install_sealer(RegistrationSettings(), store.registry)
        account = f"acc-{uuid.uuid4().hex[:6]}"
        env, clear = legacy_registration(account)
        async with db.transaction() as tx:  # as registration stored it before ADR 0033
            await store.append(tx, env.stream_id, 0, [env])
        async with db.connect() as conn:
            reads = [(await store.read_stream(conn, env.stream_id))[0],
                     (await store.read_stream(conn, env.stream_id))[0],
                     (await store.read_subject(conn, account))[0]]
            page = None

            async def arrived() -> bool:  # the gap-safe horizon may hold it back a moment
                nonlocal page
                page = await store.read_all(conn)
                return bool(page.events)

            await eventually(arrived, timeout=10, what="the event in read_all")
            reads.append(page.events[0])
            reads.append((await store.read_range(conn, LogCursor(), page.cursor)).events[0])
            raw = (await store.read_all(conn, upcast=False)).events[0]
            verbatim = (await store.read_all(conn, decode_data=False)).events[0]
        first = reads[0].data
        assert first["identity"]["id_number_sealed"].startswith("v2:k1:")
        assert first["contact_sealed"].startswith("v2:k1:")
        assert all(e.data == first for e in reads), "the same v2 values at every read"
        assert opened(sealer, first) == clear
        with pytest.raises(SealError, match="another subject"):
            sealer.open(first["contact_sealed"], subject="0" * 32)
        assert raw.data == env.data  # stored unchanged: the upcast happens at each read
        assert '"v1:' in verbatim.data
    finally:
        await db.dispose()
