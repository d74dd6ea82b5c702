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
from services.registration.rules import LEGAL, Policy
from tests.conftest import BACKENDS
from tests.registration_support import body, phone, resident_id, social_credit_code

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


# -- A8.3 ---------------------------------------------------------------------------------
async def apply_measure(deps, account_id: str, measure: str, **extra) -> str:
    measure_id = f"m-{uuid.uuid4().hex[:8]}"
    await deliver(deps, "enforcement.MeasureApplied", account_id, measure_id=measure_id,
                  measure=measure, starts_at=deps.clock().isoformat(), policy_version="p-1",
                  legal_basis=["A19.2"], evidence_event_ids=["violation-1"], **extra)
    return measure_id


async def lift(deps, account_id: str, measure_id: str) -> None:
    await deliver(deps, "enforcement.MeasureLifted", account_id, measure_id=measure_id,
                  reason="appeal upheld", legal_basis=["A20.2"])


async def refused_as_banned(deps, number: str, **kw) -> ProblemError:
    with pytest.raises(ProblemError) as e:
        await register(deps, body(id_number=number, phone_number=phone(), **kw))
    assert e.value.code == "registration-banned" and e.value.status == 403
    return e.value


@BACKENDS
async def test_A8_3_a_closure_without_a_severity_still_bans_by_the_default(deps):
    number = resident_id()
    account_id = (await register(deps, body(id_number=number))).body["account_id"]
    await verified(deps, account_id)
    await apply_measure(deps, account_id, "closure")  # enforcement named no ban_severity
    acc = await state(deps, account_id)
    assert acc.status == "closed"
    assert [b["severity"] for b in acc.bans.values()] == ["serious"]  # Policy's default
    problem = await refused_as_banned(deps, number)
    assert problem.extensions["until"].startswith(str(T0.year + 1))  # a year from the measure


@BACKENDS
async def test_A8_3_a_measure_against_a_deregistered_account_still_bans(deps):
    number = resident_id()
    account_id = (await register(deps, body(id_number=number))).body["account_id"]
    await verified(deps, account_id)
    await handlers.request_deregistration(deps, account_id, "operator", key=None, digest="d")
    await apply_measure(deps, account_id, "blacklist")  # it arrives after the deregistration
    acc = await state(deps, account_id)
    assert acc.status == "deregistered"  # it stays as the operator left it, and is banned
    assert [b["severity"] for b in acc.bans.values()] == ["permanent"]
    assert (await refused_as_banned(deps, number)).extensions["until"] is None


@BACKENDS
async def test_A8_3_lifting_one_measure_leaves_another_measures_ban(deps):
    number = social_credit_code()  # an organization: a limit of 5, not 2
    first = (await register(deps, body(entity_type=LEGAL, id_number=number))).body["account_id"]
    second = (await register(deps, body(entity_type=LEGAL, id_number=number, phone_number=phone()))
              ).body["account_id"]
    await verified(deps, first)
    await verified(deps, second)
    permanent = await apply_measure(deps, first, "blacklist")  # permanent
    timed = await apply_measure(deps, second, "closure", ban_severity="minor")
    await lift(deps, second, timed)  # the later, shorter ban is lifted on appeal
    assert (await refused_as_banned(deps, number, entity_type=LEGAL)).extensions["until"] is None
    await lift(deps, first, permanent)
    async with deps.db.connect() as conn:
        rows = await conn.fetchval(text("SELECT count(*) FROM registration_bans"))
    assert rows == 0
    deps.clock.at = T0 + timedelta(days=1)
    again = await register(deps, body(entity_type=LEGAL, id_number=number, phone_number=phone()))
    assert again.status == 202, again.body


@BACKENDS
async def test_A8_3_lifting_the_permanent_ban_leaves_a_timed_one_until_it_ends(deps):
    number = social_credit_code()  # an organization: a limit of 5, not 2
    first = (await register(deps, body(entity_type=LEGAL, id_number=number))).body["account_id"]
    second = (await register(deps, body(entity_type=LEGAL, id_number=number, phone_number=phone()))
              ).body["account_id"]
    await verified(deps, first)
    await verified(deps, second)
    permanent = await apply_measure(deps, first, "blacklist")
    await apply_measure(deps, second, "reregistration_ban", ban_severity="minor")  # 180 days
    await lift(deps, first, permanent)
    problem = await refused_as_banned(deps, number, entity_type=LEGAL)
    assert problem.extensions["until"] == (T0 + timedelta(days=180)).isoformat()
    deps.clock.at = T0 + timedelta(days=181)
    again = await register(deps, body(entity_type=LEGAL, id_number=number,
                                      phone_number=phone()))
    assert again.status == 202, again.body


# -- A10.1 --------------------------------------------------------------------------------
@BACKENDS
async def test_A10_1_an_account_closed_for_a_borrowed_identity_leaves_the_real_persons_quota(
        deps):
    number = resident_id()  # someone else registered twice with this person's number
    borrowed = [(await register(deps, body(id_number=number))).body["account_id"]
                for _ in range(2)]
    for account_id in borrowed:
        await deliver(deps, "verification.IdentityVerificationFailed", account_id,
                      reasons=["face-mismatch"], detail="the face is not the holder's",
                      legal_basis=["A8.1"])
        assert (await state(deps, account_id)).status == "closed"
    # the real person registers: neither closed account counts, so no extra check either
    own = await register(deps, body(id_number=number, phone_number=phone()))
    assert own.status == 202 and own.body["extra_verification_required"] is False, own.body
    second = await register(deps, body(id_number=number, phone_number=phone()))
    assert second.status == 202 and second.body["extra_verification_required"] is True
    third = await register(deps, body(id_number=number, phone_number=phone()))
    assert third.status == 409 and third.body["code"] == "account-limit-reached"


@BACKENDS
async def test_A10_1_a_registration_refused_on_review_does_not_count(deps):
    closed_name = "健康科普站"
    deps.names.add("closed-1", closed_name)
    number = resident_id()
    held = await register(deps, body(id_number=number, name="健康科普战"))  # same pinyin
    assert held.body["status"] == "held_for_review"
    await handlers.review(deps, held.body["account_id"], approve=False, reviewer="r-1",
                          note="too close to a closed account", key=None, digest="r")
    assert (await state(deps, held.body["account_id"])).status == "refused"
    for extra in (False, True):  # the natural person's two accounts, the second checked
        answer = await register(deps, body(id_number=number, phone_number=phone()))
        assert answer.status == 202, answer.body
        assert answer.body["extra_verification_required"] is extra


@BACKENDS
async def test_A10_1_government_affairs_accounts_have_a_higher_limit_than_other_fields(deps):
    uscc = social_credit_code()  # a public body with bureaus' accounts under one USCC
    answers = [await register(deps, body(entity_type=LEGAL, category="government_affairs",
                                         id_number=uscc, phone_number=phone()))
               for _ in range(7)]
    assert [a.status for a in answers] == [202] * 7, [a.body for a in answers]
    # the same body in an ordinary field meets the legal person's limit (5)
    other = await register(deps, body(entity_type=LEGAL, category="culture", id_number=uscc,
                                      phone_number=phone()))
    assert other.status == 409 and other.body["code"] == "account-limit-reached"
    assert "5" in other.body["detail"]


# -- A9.1, A5 -----------------------------------------------------------------------------
@BACKENDS
async def test_A9_1_an_expired_qualification_withdraws_the_service_until_a_new_one_passes(deps):
    account_id = (await register(deps, body(category="health"))).body["account_id"]
    await verified(deps, account_id)
    await deliver(deps, "verification.QualificationRequired", account_id, kinds=["professional"],
                  category="health", reason="expired", legal_basis=["A9.1"])
    acc = await state(deps, account_id)
    assert acc.status == "restricted"
    assert not acc.capabilities["publish"] and not acc.capabilities["live_stream"]
    assert acc.capabilities["comment"]  # the account stays; what needs the qualification goes
    # a new qualification passes: verification verifies the account again
    await verified(deps, account_id)
    acc = await state(deps, account_id)
    assert acc.status == "active" and acc.capabilities["publish"]


@BACKENDS
async def test_A5_an_expired_news_permit_withdraws_publishing(deps):
    account_id = (await register(deps, body(entity_type=LEGAL, category="news"))
                  ).body["account_id"]
    await verified(deps, account_id)
    await deliver(deps, "verification.QualificationRequired", account_id, kinds=["news_permit"],
                  category="news", reason="expired", legal_basis=["A5"])
    acc = await state(deps, account_id)
    assert acc.status == "restricted" and not acc.capabilities["publish"]
    assert "A5" in (await history_of(deps, account_id))[-1].data["legal_basis"]


async def history_of(deps, account_id: str):
    async with deps.db.connect() as conn:
        return await deps.store.read_stream(conn, f"account-{account_id}")


# -- migration 0004: the bans already held move to one row per measure -------------------
@BACKENDS
async def test_A8_3_migration_keeps_the_bans_already_held(database_url):
    await asyncio.to_thread(upgrade, database_url, MIGRATIONS, "0003_registration")
    db = Database(database_url)
    try:
        async with db.transaction() as tx:
            await tx.execute(text(
                "INSERT INTO registration_keys (key, kind, accounts, banned_until, "
                "ban_permanent, ban_measure_id) VALUES ('k1', 'identity', 1, NULL, true, 'm1'),"
                " ('k2', 'phone', 1, 1800000000.0, false, 'm2'), ('k3', 'device', 0, NULL,"
                " false, NULL)"))
        await asyncio.to_thread(upgrade, database_url, MIGRATIONS)
        async with db.connect() as conn:
            bans = await conn.fetch(text("SELECT key, measure_id, kind, banned_until, permanent"
                                         " FROM registration_bans ORDER BY key"))
            keys = await conn.fetch(text("SELECT key, accounts FROM registration_keys"
                                         " ORDER BY key"))
    finally:
        await db.dispose()
    assert [tuple(r[:4]) + (bool(r[4]),) for r in bans] == [
        ("k1", "m1", "identity", None, True), ("k2", "m2", "phone", 1800000000.0, False)]
    assert [tuple(r) for r in keys] == [("k1", 1), ("k2", 1), ("k3", 0)]
