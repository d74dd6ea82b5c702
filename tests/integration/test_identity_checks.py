"""A8.1, ADR 0026: an outage is not a verdict. The verification service's real inbound
handler (through the kernel's consumer) and its identity checker, on both databases, with
the HTTP adapters against a fake provider served on 127.0.0.1 (tests/provider_fake.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from libs.events import Database, EventStore
from libs.identity.providers import Endpoint, HttpIdentityProviders
from services.registration import schemas as registration_schemas
from services.registration.domain import Account, Verdict
from services.verification import bootstrap as verification_boot
from services.verification import sweep
from services.verification.adapters import HttpIdentityProvider, pending_identity_check
from services.verification.settings import Settings
from tests.conftest import BACKENDS, eventually
from tests.integration.test_inbound_redelivery import (
    CONTRACTS,
    SEALER,
    consumer,
    delivered_twice,
    migrated,
)
from tests.provider_fake import FakeProvider
from tests.registration_support import body

pytestmark = pytest.mark.postgres
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def fake():
    server = FakeProvider().start()
    yield server
    server.stop()


@pytest.fixture
async def world(database_url, fake):
    db = await migrated(database_url, verification_boot.MIGRATIONS)
    deps = verification_boot.dependencies(Settings(), db, EventStore(CONTRACTS,
                                                                     dialect=db.dialect))

    def endpoint(check: str) -> Endpoint:
        return Endpoint(url=fake.url(check), credential="k", timeout_seconds=3.0, attempts=2,
                        backoff_seconds=0.01, backoff_max_seconds=0.02,
                        breaker_failures=1000, breaker_reset_seconds=1)

    provider = HttpIdentityProvider(HttpIdentityProviders.of(
        endpoint("public-security"), endpoint("carrier"), endpoint("business-registry")))
    clock = Clock(T0)
    deps = dataclasses.replace(deps, provider=provider, clock=clock,
                               identity_retry_seconds=60, identity_retry_max_seconds=600,
                               identity_review_after=timedelta(hours=2))
    yield deps, clock, db
    await db.dispose()


async def register(deps, account_id: str) -> None:
    """registration.AccountRegistrationSubmitted through the consumer, as Kafka delivers it
    (twice: the second is a redelivery)."""
    from libs.events import Envelope

    app = registration_schemas.application(
        registration_schemas.RegisterAccount(**body(category="lifestyle")), SEALER)
    submitted = Envelope.new(
        type="registration.AccountRegistrationSubmitted", source="/registration",
        subject=account_id, stream_id=f"account-{account_id}", time=T0,
        data=Account.register(account_id, app, Verdict("accept"))[0].to_data())
    inbound = consumer("verification-inbound", deps.db,
                       verification_boot.subscription(deps).handler)
    for record in delivered_twice(submitted, "registration.events"):
        await inbound.process([record])


async def types_of(deps, account_id: str) -> list[str]:
    async with deps.db.connect() as conn:
        return [e.type.removeprefix("verification.") for e in await deps.store.read_stream(
            conn, f"verification-{account_id}")]


@BACKENDS
async def test_A8_1_provider_down_keeps_the_account_pending_until_it_recovers(world, fake):
    deps, clock, _ = world
    fake.set(fault="5xx")
    await register(deps, "acc-outage")
    assert await types_of(deps, "acc-outage") == ["VerificationOpened"]
    assert fake.requests == [], "the consumer's transaction asks no provider"

    assert await sweep.check_identities(deps) == {"acc-outage": "deferred"}
    types = await types_of(deps, "acc-outage")
    assert types == ["VerificationOpened", "IdentityCheckDeferred"], types
    async with deps.db.connect() as conn:
        check = await pending_identity_check(conn, "acc-outage")
        state = await deps.verifications.load(conn, "acc-outage")
    assert state.identity_status == "pending"
    assert check.attempts == 1 and T0 + timedelta(seconds=30) <= check.due_at \
        <= T0 + timedelta(seconds=60)
    assert await sweep.check_identities(deps) == {}, "not due before its backoff"

    clock.now = T0 + timedelta(minutes=5)
    assert await sweep.check_identities(deps) == {"acc-outage": "deferred"}
    async with deps.db.connect() as conn:
        assert (await pending_identity_check(conn, "acc-outage")).attempts == 2

    fake.set(fault="ok")  # the provider recovers
    clock.now = T0 + timedelta(minutes=15)
    assert await sweep.check_identities(deps) == {"acc-outage": "verified"}
    types = await types_of(deps, "acc-outage")
    assert "IdentityVerificationFailed" not in types
    assert types[-4:] == ["IdentityVerified", "ProfileCheckPassed", "AccountVerified",
                          "BadgeGranted"], types
    async with deps.db.connect() as conn:
        assert await pending_identity_check(conn, "acc-outage") is None


@BACKENDS
async def test_A8_1_no_verdict_by_the_deadline_goes_to_manual_review(world, fake):
    deps, clock, _ = world
    fake.set(fault="hang", delay=5.0)  # every attempt times out (3 s)
    fake.set("public-security", fault="ok", result="no_record")
    await register(deps, "acc-review")
    assert await sweep.check_identities(deps) == {"acc-review": "deferred"}
    clock.now = T0 + timedelta(hours=2, seconds=1)  # past VERIFICATION_IDENTITY_REVIEW_AFTER
    fake.set(fault="5xx")
    assert await sweep.check_identities(deps) == {"acc-review": "review"}
    types = await types_of(deps, "acc-review")
    assert types == ["VerificationOpened", "IdentityCheckDeferred", "IdentityReviewRequired"]
    async with deps.db.connect() as conn:
        state = await deps.verifications.load(conn, "acc-review")
        assert await pending_identity_check(conn, "acc-review") is None
        review = [e for e in await deps.store.read_stream(conn, "verification-acc-review")
                  if e.type.endswith("IdentityReviewRequired")][0]
    assert state.identity_status == "manual_review"
    assert review.data["attempts"] == 2 and review.data["case_id"]
    assert set(review.data["reasons"]) == {"provider-unavailable"}
    clock.now += timedelta(days=1)
    assert await sweep.check_identities(deps) == {}, "a person decides now, not the checker"


@BACKENDS
async def test_A8_1_a_mismatch_still_fails_the_identity(world, fake):
    deps, _, _ = world
    fake.set(fault="ok")
    fake.set("public-security", fault="ok", result="inconsistent")
    await register(deps, "acc-false")
    assert await sweep.check_identities(deps) == {"acc-false": "failed"}
    assert (await types_of(deps, "acc-false"))[-1] == "IdentityVerificationFailed"


@BACKENDS
async def test_A8_1_no_transaction_is_held_while_a_provider_is_slow(world, fake):
    """While the provider takes 1.5 s, another writer commits at once (a transaction held
    across the call would make it wait: SQLite's write lock, PostgreSQL's readers of the
    log), and PostgreSQL shows no session of this database inside a transaction."""
    deps, _, db = world
    fake.set(fault="slow", delay=1.5)

    async def verify() -> None:
        await register(deps, "acc-slow")
        await sweep.check_identities(deps)

    task = asyncio.create_task(verify())
    deadline = time.monotonic() + 20
    while not fake.requests:
        assert time.monotonic() < deadline, "the provider was never asked"
        await asyncio.sleep(0.02)
    started = time.monotonic()
    other = Database(db.url)
    try:
        async with other.transaction() as tx:
            await tx.execute(pending_identity_check_sql(), {"a": "someone-else"})
        waited = time.monotonic() - started
        if db.is_postgres:
            async with other.connect() as conn:
                in_tx = await conn.fetchval(_IN_TRANSACTION)
            assert in_tx == 0, f"{in_tx} session(s) inside a transaction during the call"
    finally:
        await other.dispose()
    assert not task.done(), "the provider call was still going on"
    assert waited < 0.5, f"a writer waited {waited:.2f} s for the provider call"
    await task
    assert "IdentityVerified" in await types_of(deps, "acc-slow")


def pending_identity_check_sql():
    from sqlalchemy import text

    return text("DELETE FROM identity_checks WHERE account_id = :a")


_IN_TRANSACTION = __import__("sqlalchemy").text(
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
    "AND pid <> pg_backend_pid() AND xact_start IS NOT NULL")


@BACKENDS
async def test_A8_1_a_reviewer_decides_an_identity_no_provider_could(world, fake):
    """After the deadline the identity waits in the reviewer queue; a reviewer verifies it
    (the account completes) or refuses it (a failed identity, as after a mismatch)."""
    from libs.domain import ConflictError
    from libs.events import ProjectionRunner
    from services.verification import handlers, views
    from services.verification.projections import all_projections

    deps, clock, _ = world
    runners = [ProjectionRunner(db=deps.db, store=deps.store, projection=p)
               for p in all_projections()]

    async def catch_up() -> None:
        for r in runners:
            await r.catch_up()

    fake.set(fault="5xx")
    for account_id in ("acc-rev-yes", "acc-rev-no"):
        await register(deps, account_id)
    assert set((await sweep.check_identities(deps)).values()) == {"deferred"}
    clock.now = T0 + timedelta(hours=2, seconds=1)
    assert set((await sweep.check_identities(deps)).values()) == {"review"}
    queue: list = []

    async def queued() -> bool:
        # a projection reads up to the gap-safe horizon, which a transaction still open
        # elsewhere on the server can hold back: catch up until both have arrived
        nonlocal queue
        await catch_up()
        async with deps.db.connect() as conn:
            queue, _ = await views.page(conn, "identity_reviews", after="", limit=50)
        return len(queue) >= 2

    async def queued_count(count: int) -> bool:
        await queued()
        return len(queue) == count

    await eventually(queued, what="both identities in the reviewer queue")
    assert {q["account_id"] for q in queue} == {"acc-rev-yes", "acc-rev-no"}
    assert all(q["status"] == "pending" and q["case_id"] for q in queue)

    yes = await handlers.decide_identity_review(deps, "acc-rev-yes", approve=True,
                                                reviewer="reviewer-1", note="证件核验",
                                                key=None, digest="-")
    assert (yes.status, yes.account_verified) == ("verified", True)
    types = await types_of(deps, "acc-rev-yes")
    assert types[-4:] == ["IdentityVerified", "ProfileCheckPassed", "AccountVerified",
                          "BadgeGranted"], types
    no = await handlers.decide_identity_review(deps, "acc-rev-no", approve=False,
                                               reviewer="reviewer-1", note="", key=None,
                                               digest="-")
    assert no.status == "failed"
    async with deps.db.connect() as conn:
        events = await deps.store.read_stream(conn, "verification-acc-rev-yes")
        failed = (await deps.store.read_stream(conn, "verification-acc-rev-no"))[-1]
    verified = [e for e in events if e.type.endswith("IdentityVerified")][0]
    assert verified.data["provider"] == "manual-review:reviewer-1"
    assert verified.data["factors"] == ["manual_review"]
    assert failed.type.endswith("IdentityVerificationFailed")
    assert failed.data["reasons"] == ["manual-review-refused"]
    # decided once: neither can be decided again, nor one that never waited for review
    for account_id in ("acc-rev-yes", "acc-rev-no"):
        with pytest.raises(ConflictError) as exc:
            await handlers.decide_identity_review(deps, account_id, approve=True,
                                                  reviewer="r", note="", key=None,
                                                  digest="-")
        assert exc.value.code == "identity-not-in-review"
    await eventually(lambda: queued_count(0), what="the reviewer queue emptied")
    assert queue == []


async def request_transfer(deps, transfer_id: str) -> None:
    """transfer.TransferRequested through the consumer (twice: a redelivery), its
    transferee sealed as the transfer service seals one."""
    from libs.events import Envelope
    from libs.events.contracts.transfer import TransferRequested
    from libs.runtime.pii import seal_identity
    from tests.registration_support import phone, resident_id

    number, mobile = resident_id(), phone()
    transferee = seal_identity(SEALER, organization=False, number=number, name="王五",
                               phone=mobile)
    requested = TransferRequested(
        account_id=f"acc-of-{transfer_id}", transfer_id=transfer_id, transferee=transferee,
        transferee_entity_type="natural_person",
        transferee_contact_sealed=SEALER.seal(mobile, subject=transferee.id_number_blind),
        transferee_contact_masked="138****0000",
        requested_by="platform", deadline=T0 + timedelta(days=15), legal_basis=["A11.2"])
    env = Envelope.new(type=requested.event_type, source="/transfer",
                       subject=requested.account_id, stream_id=f"transfer-{transfer_id}",
                       time=T0, data=requested.to_data())
    inbound = consumer("verification-inbound", deps.db,
                       verification_boot.subscription(deps).handler)
    for record in delivered_twice(env, "transfer.events"):
        await inbound.process([record])


async def transferee_types(deps, transfer_id: str) -> list[str]:
    async with deps.db.connect() as conn:
        return [e.type.removeprefix("verification.") for e in await deps.store.read_stream(
            conn, f"transferee-{transfer_id}")]


@BACKENDS
async def test_A8_1_A11_2_a_transferee_is_checked_outside_the_transaction_and_an_outage_waits(
        world, fake):
    deps, clock, _ = world
    fake.set(fault="5xx")
    await request_transfer(deps, "t-outage")
    await request_transfer(deps, "t-deadline")
    assert fake.requests == [], "the consumer's transaction asks no provider"
    for t in ("t-outage", "t-deadline"):
        assert await transferee_types(deps, t) == ["TransfereeCheckOpened"]
    outcomes = await sweep.check_identities(deps)
    assert outcomes == {"transferee-t-outage": "deferred", "transferee-t-deadline": "deferred"}
    assert await transferee_types(deps, "t-outage") == ["TransfereeCheckOpened"]

    fake.set(fault="ok")  # the providers answer again: one transferee is verified ...
    clock.now = T0 + timedelta(minutes=5)
    async with deps.db.transaction() as tx:  # ... the other one is not due again yet
        await tx.execute(text("UPDATE identity_checks SET due_at = :far "
                              "WHERE account_id = 'transferee-t-deadline'"),
                         {"far": (T0 + timedelta(days=2)).timestamp()})
    assert await sweep.check_identities(deps) == {"transferee-t-outage": "verified"}
    assert await transferee_types(deps, "t-outage") == ["TransfereeCheckOpened",
                                                       "TransfereeVerified"]
    fake.set(fault="5xx")
    clock.now = T0 + timedelta(days=2, seconds=1)  # past the deadline, still no answer
    assert await sweep.check_identities(deps) == {"transferee-t-deadline": "failed"}
    async with deps.db.connect() as conn:
        failed = (await deps.store.read_stream(conn, "transferee-t-deadline"))[-1]
    assert failed.type == "verification.TransfereeVerificationFailed"
    assert failed.data["reasons"][0] == "provider-unavailable"
    assert await sweep.check_identities(deps) == {}


@BACKENDS
async def test_A8_1_one_run_checks_every_due_identity_page_after_page_a_few_at_a_time(
        world, fake):
    """ADR 0037: a run takes the due checks page after page (it used to take 100 a second
    at most, one after the other), ``concurrency`` providers' calls at a time."""
    deps, _, _ = world
    ids = [f"acc-many-{i}" for i in range(7)]
    for account_id in ids:
        await register(deps, account_id)
    in_flight = peak = 0
    ask = deps.provider.public_security

    async def counted(**kw):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            await asyncio.sleep(0.05)  # a provider taking its time: the calls overlap
            return await ask(**kw)
        finally:
            in_flight -= 1

    deps.provider.public_security = counted
    try:
        outcomes = await sweep.check_identities(deps, concurrency=2, page=5)
    finally:
        deps.provider.public_security = ask
    assert outcomes == dict.fromkeys(ids, "verified")
    assert peak == 2, "a page of 5 checks, 2 providers' calls at a time"
    for account_id in ids:
        assert (await types_of(deps, account_id))[-1] == "BadgeGranted"
    assert await sweep.check_identities(deps) == {}, "nothing is due any more"
