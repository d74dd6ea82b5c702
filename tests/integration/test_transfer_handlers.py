"""Transfer's handlers on both databases: applications through verification's answer and
the followers' opt-out period to completion, the no-trading rules, ownership signals (an
identity, a changed contact of a verified person), the list, and inbound events delivered
twice."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from libs.domain import InvalidCommandError, NotFoundError
from libs.events import Consumer, Envelope
from libs.events.contracts import all_contracts
from libs.events.kafka_binding import to_kafka
from libs.events.testing import FakeBroker, FakeRecord
from libs.runtime.pii import Sealer
from libs.runtime.settings import DEV_PII_KEY
from services.transfer import bootstrap as boot
from services.transfer import handlers, schemas, sweep
from services.transfer.settings import Settings
from services.verification.domain import IdentityDecision, TransfereeCheck
from tests.conftest import BACKENDS
from tests.integration.test_enforcement_handlers import registered
from tests.registration_support import phone, resident_id
from tests.service_support import Clock, service_dependencies

pytestmark = pytest.mark.postgres
CONTRACTS = all_contracts()
T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
SEALER = Sealer(DEV_PII_KEY)


@pytest.fixture
async def deps(database_url):
    async with service_dependencies(boot, Settings(), database_url, clock=Clock(T0)) as d:
        yield d


async def deliver(deps, env: Envelope, topic: str) -> None:
    """The event delivered twice, as a broker may after a crash."""
    broker = FakeBroker()
    consumer = Consumer(name="transfer-inbound", db=deps.db, registry=CONTRACTS,
                        source=broker.consumer("transfer-inbound", "t"),
                        handler=boot.subscription(deps).handler,
                        dead_letter_producer=broker.producer())
    key, value, headers = to_kafka(CONTRACTS.validate(env)._replace(stream_version=1))
    for offset in (0, 1):
        await consumer.process([FakeRecord(topic, 0, offset, key, value, list(headers))])


def body(account_id: str, name: str = "王五", kind: str = "transfer") -> schemas.TransferIn:
    return schemas.TransferIn(account_id=account_id, kind=kind, contact="13800138000",
                              transferee=schemas.IdentityIn(id_number=resident_id(), name=name,
                                                            phone=phone()))


async def apply(deps, account_id: str, **kw) -> handlers.TransferOut:
    return await handlers.apply(deps, schemas.application(body(account_id, **kw), SEALER),
                                by="platform", key=None, digest="-")


async def answer(deps, transfer: handlers.TransferOut, verified: bool) -> None:
    """Verification's answer on the transferee (built by its domain), delivered twice."""
    async with deps.db.connect() as conn:
        requested = (await deps.store.read_stream(conn, f"transfer-{transfer.transfer_id}"))[0]
    payload = CONTRACTS.payload(requested)
    decision = (IdentityDecision(True, "three_factor", ("carrier", "public_security"), ())
                if verified else IdentityDecision(False, None, (), ("public-security-mismatch",)))
    pending = TransfereeCheck(payload.transfer_id, payload.account_id, "pending",
                              opened_event_id=requested.id)
    [out] = pending.decide(decision, provider="local")
    env = Envelope.new(type=out.event_type, data=out.to_data(), source="/verification",
                       subject=transfer.transfer_id,
                       stream_id=f"transferee-{transfer.transfer_id}", time=T0)
    await deliver(deps, env, "verification.events")


async def types(deps, stream: str) -> list[str]:
    async with deps.db.connect() as conn:
        return [e.type for e in await deps.store.read_stream(conn, stream)]


async def known_account(deps) -> str:
    account = f"acc-{uuid.uuid4().hex[:6]}"
    await deliver(deps, registered(account), "registration.events")
    return account


@BACKENDS
async def test_A11_2_verified_confirmed_transfer_completes_once_despite_redelivery(deps):
    account = await known_account(deps)
    before = await handlers.operators(deps, account)
    t = await apply(deps, account)
    assert t.status == "verifying"
    await answer(deps, t, verified=True)
    await handlers.confirm(deps, t.transfer_id, party="transferor", by="p", key=None,
                           digest="-")
    confirmed = await handlers.confirm(deps, t.transfer_id, party="transferee", by="p",
                                       key=None, digest="-")
    assert confirmed.status == "opt_out_period"
    assert (await sweep.run(deps, now=T0 + timedelta(days=7))).completed == [t.transfer_id]
    done = await handlers.get_transfer(deps, t.transfer_id)
    assert done.status == "completed"
    assert await types(deps, f"transfer-{t.transfer_id}") == [
        "transfer.TransferRequested", "transfer.FollowersNotified",
        "transfer.TransfereeApproved", "transfer.TransferConfirmed",
        "transfer.TransferConfirmed", "transfer.TransferCompleted",
        "transfer.TransferAnnounced", "transfer.FollowerOptOutsApplied"]
    async with deps.db.connect() as conn:
        events = await deps.store.read_stream(conn, f"transfer-{t.transfer_id}")
    notice = events[-2].data
    assert notice["previous_name"] == before.owner["holder_name_masked"]
    assert notice["new_name"] == "王*" and notice["ad_revenue_paused_until"].startswith(
        "2026-06-09")
    after = await handlers.operators(deps, account)
    assert after.owner["id_number_masked"] == done.transferee["id_number_masked"]
    # the same answer again changes nothing; a new transfer within 180 days is refused
    await answer(deps, t, verified=True)
    assert len(await types(deps, f"transfer-{t.transfer_id}")) == 8
    again = await apply(deps, account, name="赵六")
    assert again.status == "rejected" and again.reasons == ["transferred-recently"]


@BACKENDS
async def test_A11_2_transferee_who_fails_verification_is_rejected(deps):
    account = await known_account(deps)
    t = await apply(deps, account, name="冒用者")
    await answer(deps, t, verified=False)
    out = await handlers.get_transfer(deps, t.transfer_id)
    assert out.status == "rejected" and out.reasons == ["public-security-mismatch"]
    with pytest.raises(Exception) as e:
        await handlers.confirm(deps, t.transfer_id, party="transferor", by="p", key=None,
                               digest="-")
    assert e.value.code == "transfer-not-open"


@BACKENDS
async def test_A11_1_transfer_refused_under_active_measure_until_lifted(deps):
    account = await known_account(deps)
    applied = Envelope.new(
        type="enforcement.MeasureApplied", source="/enforcement", subject=account,
        stream_id=f"enforcement-account-{account}", time=T0,
        data={"account_id": account, "measure_id": "m1", "measure": "blacklist",
              "starts_at": T0.isoformat(), "policy_version": "p@1", "legal_basis": ["A19.2"]})
    await deliver(deps, applied, "enforcement.events")
    refused = await apply(deps, account)
    assert refused.status == "rejected" and refused.reasons == ["account-blacklisted"]
    lifted = Envelope.new(
        type="enforcement.MeasureLifted", source="/enforcement", subject=account,
        stream_id=f"enforcement-account-{account}", time=T0,
        data={"account_id": account, "measure_id": "m1", "reason": "appeal_upheld",
              "legal_basis": ["A20.2"]})
    await deliver(deps, lifted, "enforcement.events")
    ok = await apply(deps, account)
    assert ok.status == "verifying"
    with pytest.raises(InvalidCommandError) as e:  # one open transfer per account
        await apply(deps, account)
    assert e.value.code == "transfer-already-open"


@BACKENDS
async def test_A11_2_unapplied_transfer_detected_unless_covered(deps):
    account = await known_account(deps)
    stranger = schemas.signal(schemas.SignalBody(account_id=account, signal="login_identity",
                                                 id_number=resident_id()), SEALER)
    out = await handlers.ownership_signal(deps, stranger, key=None, digest="-")
    assert out.unapplied_transfer
    assert await types(deps, f"ownership-{account}") == ["transfer.UnappliedTransferDetected"]
    # an approved application covers its transferee
    b = body(account)
    t = await handlers.apply(deps, schemas.application(b, SEALER), by="p", key=None,
                             digest="-")
    await answer(deps, t, verified=True)
    covered = schemas.signal(schemas.SignalBody(
        account_id=account, signal="contact_changed", id_number=b.transferee.id_number),
        SEALER)
    out = await handlers.ownership_signal(deps, covered, key=None, digest="-")
    assert not out.unapplied_transfer and out.covered_by == f"transfer:{t.transfer_id}"
    with pytest.raises(NotFoundError):
        await handlers.ownership_signal(deps, stranger.model_copy(
            update={"account_id": "nobody"}), key=None, digest="-")


@BACKENDS
async def test_A11_2_open_application_expires_with_the_sweep(deps):
    account = await known_account(deps)
    t = await apply(deps, account)
    report = await sweep.run(deps, now=T0 + timedelta(days=14))
    assert report.expired == []
    report = await sweep.run(deps, now=T0 + timedelta(days=15, seconds=1))
    assert report.expired == [t.transfer_id]
    assert (await handlers.get_transfer(deps, t.transfer_id)).status == "expired"
    assert (await sweep.run(deps, now=T0 + timedelta(days=20))).expired == []


@BACKENDS
async def test_A17_3_grant_records_both_acceptances_and_is_revoked(deps):
    account = await known_account(deps)
    t = await apply(deps, account, kind="third_party")
    await answer(deps, t, verified=True)
    for party in ("transferee", "transferor"):
        out = await handlers.confirm(deps, t.transfer_id, party=party, by=party, key=None,
                                     digest="-")
    assert out.status == "completed"
    ops = await handlers.operators(deps, account)
    assert [o["accepted_by"] for o in ops.operators] == [
        {"transferee": "transferee", "transferor": "transferor"}]
    await handlers.revoke(deps, t.transfer_id, by="op", reason="", key=None, digest="-")
    assert (await handlers.operators(deps, account)).operators == []
    async with deps.db.connect() as conn:
        n = await conn.fetchval(text("SELECT count(*) FROM events"))
    with pytest.raises(NotFoundError):
        await handlers.confirm(deps, "missing", party="transferor", by="p", key=None,
                               digest="-")
    async with deps.db.connect() as conn:
        assert await conn.fetchval(text("SELECT count(*) FROM events")) == n


def registration_of(account_id: str, *, phone_number: str, province: str = "440000"
                    ) -> Envelope:
    """What registration publishes for an accepted application, with a known phone."""
    from services.registration import schemas as reg_schemas
    from services.registration.domain import Account, Verdict
    from tests.registration_support import body as reg_body

    app = reg_schemas.application(reg_schemas.RegisterAccount(
        **reg_body(phone_number=phone_number, province=province)), SEALER)
    return Envelope.new(type="registration.AccountRegistrationSubmitted",
                        source="/registration", subject=account_id,
                        stream_id=f"account-{account_id}", time=T0,
                        data=Account.register(account_id, app, Verdict("accept"))[0].to_data())


def identity_verified(account_id: str) -> Envelope:
    return Envelope.new(type="verification.IdentityVerified", source="/verification",
                        subject=account_id, stream_id=f"verification-{account_id}", time=T0,
                        data={"account_id": account_id, "level": "three_factor",
                              "factors": ["carrier", "public_security"], "provider": "local",
                              "legal_basis": ["A8.1"]})


async def verified_person(deps, *, verified_first: bool = False) -> str:
    """An account of another person, verified by verification; that person's phone."""
    number, account = phone(), f"acc-{uuid.uuid4().hex[:6]}"
    envs = [(registration_of(account, phone_number=number), "registration.events"),
            (identity_verified(account), "verification.events")]
    for env, topic in reversed(envs) if verified_first else envs:
        await deliver(deps, env, topic)
    return number


async def contact_signal(deps, account: str, contact: str) -> handlers.SignalOut:
    s = schemas.signal(schemas.SignalBody(account_id=account, signal="contact_changed",
                                          contact_phone=contact), SEALER)
    return await handlers.ownership_signal(deps, s, key=None, digest="-")


@BACKENDS
async def test_A11_2_changed_contact_of_a_different_verified_person_is_unapplied(deps):
    own_phone, account = phone(), f"acc-{uuid.uuid4().hex[:6]}"
    await deliver(deps, registration_of(account, phone_number=own_phone),
                  "registration.events")
    other = await verified_person(deps)
    out = await contact_signal(deps, account, other)
    assert out.outcome == "unapplied_transfer" and out.unapplied_transfer
    async with deps.db.connect() as conn:
        [detected] = await deps.store.read_stream(conn, f"ownership-{account}")
    assert detected.type == "transfer.UnappliedTransferDetected"
    assert "phone of a different verified person" in detected.data["evidence"][0]
    assert other not in str(detected.data)  # the phone only masked
    # verification's answer may arrive before registration's event (another topic)
    late = await verified_person(deps, verified_first=True)
    assert (await contact_signal(deps, account, late)).outcome == "unapplied_transfer"
    # the owner's own phone, and the phone of an approved transferee, are covered
    assert (await contact_signal(deps, account, own_phone)).covered_by == "owner"
    b = body(account)
    t = await handlers.apply(deps, schemas.application(b, SEALER), by="p", key=None,
                             digest="-")
    assert (await contact_signal(deps, account, b.transferee.phone)).outcome == \
        "unmatched_contact"  # not verified yet: nobody known
    await answer(deps, t, verified=True)
    covered = await contact_signal(deps, account, b.transferee.phone)
    assert covered.outcome == "cleared" and covered.covered_by == f"transfer:{t.transfer_id}"
    # a phone of nobody verified: recorded, not a change of operator
    unknown = await contact_signal(deps, account, phone())
    assert unknown.outcome == "unmatched_contact" and not unknown.unapplied_transfer
    assert await types(deps, f"ownership-{account}") == [
        "transfer.UnappliedTransferDetected", "transfer.UnappliedTransferDetected",
        "transfer.OwnershipSignalCleared", "transfer.OwnershipSignalUnmatched",
        "transfer.OwnershipSignalCleared", "transfer.OwnershipSignalUnmatched"]


@BACKENDS
async def test_A11_2_transfer_completes_only_after_the_opt_out_period(deps):
    account = await known_account(deps)
    t = await apply(deps, account)
    assert t.opt_out_until == T0 + timedelta(days=7)
    for follower in ("f1", "f2", "f1"):
        out = await handlers.opt_out(deps, t.transfer_id, follower_id=follower, key=None,
                                     digest="-")
    assert out.followers_opted_out == 2
    await answer(deps, t, verified=True)
    for party in ("transferor", "transferee"):
        out = await handlers.confirm(deps, t.transfer_id, party=party, by=party, key=None,
                                     digest="-")
    assert out.status == "opt_out_period" and out.completed_at is None
    await handlers.opt_out(deps, t.transfer_id, follower_id="f3", key=None, digest="-")
    early = await sweep.run(deps, now=T0 + timedelta(days=7) - timedelta(seconds=1))
    assert early.completed == [] and early.expired == []
    assert (await handlers.get_transfer(deps, t.transfer_id)).status == "opt_out_period"
    assert (await handlers.operators(deps, account)).last_transferred_at is None
    report = await sweep.run(deps, now=T0 + timedelta(days=7))
    assert report.completed == [t.transfer_id]
    done = await handlers.get_transfer(deps, t.transfer_id)
    assert done.status == "completed" and done.followers_opted_out == 3
    async with deps.db.connect() as conn:
        events = await deps.store.read_stream(conn, f"transfer-{t.transfer_id}")
    [carried] = [e for e in events if e.type == "transfer.FollowerOptOutsApplied"]
    assert carried.data["follower_ids"] == ["f1", "f2", "f3"]
    assert carried.data["opted_out"] == 3
    assert [e.type for e in events].count("transfer.TransferCompleted") == 1
    # the sweep again (and a deadline long past) changes nothing
    again = await sweep.run(deps, now=T0 + timedelta(days=30))
    assert again.completed == [] and again.expired == []
    assert len(await types(deps, f"transfer-{t.transfer_id}")) == len(events)


@BACKENDS
async def test_A11_2_list_of_transfers_filters_and_pages(deps):
    a, b = f"acc-{uuid.uuid4().hex[:6]}", f"acc-{uuid.uuid4().hex[:6]}"
    await deliver(deps, registration_of(a, phone_number=phone(), province="440000"),
                  "registration.events")
    await deliver(deps, registration_of(b, phone_number=phone(), province="110000"),
                  "registration.events")
    t1 = await apply(deps, a)
    g1 = await apply(deps, a, kind="third_party", name="赵六")
    t2 = await apply(deps, b)
    await handlers.withdraw(deps, t2.transfer_id, by="p", reason="", key=None, digest="-")

    async def listed(**kw) -> list[str]:
        args = {"account_id": None, "status": None, "kind": None, "province": None,
                "cursor": "", "limit": 50} | kw
        return [i.transfer_id for i in (await handlers.list_transfers(deps, **args)).items]

    assert await listed(account_id=a) == sorted([t1.transfer_id, g1.transfer_id])
    assert await listed(account_id=a, kind="third_party") == [g1.transfer_id]
    assert await listed(status="withdrawn", account_id=b) == [t2.transfer_id]
    assert await listed(province="110000", account_id=b) == [t2.transfer_id]
    assert await listed(province="110000", account_id=a) == []
    # keyset pages: each transfer once, in id order, then no cursor
    seen, cursor = [], ""
    while True:
        page = await handlers.list_transfers(deps, account_id=a, status=None, kind=None,
                                             province=None, cursor=cursor, limit=1)
        seen += [i.transfer_id for i in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == sorted([t1.transfer_id, g1.transfer_id])
    [item] = (await handlers.list_transfers(deps, account_id=b, status=None, kind=None,
                                            province=None, cursor="", limit=5)).items
    assert item.province == "110000" and item.status == "withdrawn"
    assert item.transferee["id_number_masked"] == t2.transferee["id_number_masked"]
    assert "id_number_blind" not in item.transferee
    # one application, or the account's operators, only within a regulator's province
    assert (await handlers.get_transfer(deps, t2.transfer_id, province="110000")).status == \
        "withdrawn"
    with pytest.raises(NotFoundError):
        await handlers.get_transfer(deps, t1.transfer_id, province="110000")
    with pytest.raises(NotFoundError):
        await handlers.operators(deps, a, province="110000")
    assert (await handlers.operators(deps, b, province="110000")).account_id == b
