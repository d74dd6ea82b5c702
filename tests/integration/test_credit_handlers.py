"""Credit's handlers on both databases: facts from registration, verification and
enforcement rescored into levels (A13.1, A7.2, A17.2), rumor strikes blacklisting every
account of an identity (A13.2), upheld appeals (A20.2), the traffic detector (A12.1),
forced follows (A12.2), overrides, redelivery, and a rebuild of the read model."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from libs.domain import InvalidCommandError, NotFoundError
from libs.events import Consumer, Envelope
from libs.events.contracts import all_contracts
from libs.events.contracts.enforcement import (
    CaseResponded,
    MeasureApplied,
    MeasureLifted,
    ViolationConfirmed,
)
from libs.events.contracts.verification import IdentityVerified
from libs.events.kafka_binding import to_kafka
from libs.events.testing import FakeBroker, FakeRecord
from services.credit import bootstrap as boot
from services.credit import handlers, rules, sweep
from services.credit.projections import all_projections
from services.credit.settings import Settings
from tests.conftest import BACKENDS, eventually
from tests.service_support import Clock, service_dependencies

pytestmark = pytest.mark.postgres
CONTRACTS = all_contracts()
T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


@pytest.fixture
async def deps(database_url):
    async with service_dependencies(boot, Settings(), database_url, clock=Clock(T0),
                                    projections=all_projections()) as d:
        yield d


def _submitted(account_id: str, id_number: str | None = None) -> dict:
    from libs.runtime.pii import Sealer
    from libs.runtime.settings import DEV_PII_KEY
    from services.registration import schemas as reg_schemas
    from services.registration.domain import Account, Verdict
    from tests.registration_support import body

    b = body(province="440000")
    if id_number:
        b["identity"]["id_number"] = id_number
    app = reg_schemas.application(reg_schemas.RegisterAccount(**b), Sealer(DEV_PII_KEY))
    return Account.register(account_id, app, Verdict("accept"))[0].to_data()


def env(type_: str, account_id: str, data: dict, at: datetime = T0) -> Envelope:
    source = "/" + type_.split(".")[0]
    return Envelope.new(type=type_, source=source, subject=account_id,
                        stream_id=f"x-{uuid.uuid4().hex[:8]}", time=at, data=data)


def registered(account_id: str) -> Envelope:
    return env("registration.AccountRegistrationSubmitted", account_id, _submitted(account_id))


def violation(account_id: str, category: int = 1, violation_id: str | None = None
              ) -> Envelope:
    vid = violation_id or f"v-{uuid.uuid4().hex[:8]}"
    return env("enforcement.ViolationConfirmed", account_id, ViolationConfirmed(
        account_id=account_id, violation_id=vid, category=category, decided_by="op",
        reported_at=T0, decided_at=T0, intake_to_decision_seconds=1.0,
        legal_basis=["A18"]).to_data())


def measure(account_id: str, violation_id: str, measure_id: str) -> Envelope:
    return env("enforcement.MeasureApplied", account_id, MeasureApplied(
        account_id=account_id, measure_id=measure_id, measure="suspend_updates",
        starts_at=T0, violation_id=violation_id, category=9, policy_version="p@1",
        legal_basis=["A19.2"]).to_data())


def record(e: Envelope, offset: int) -> FakeRecord:
    """``e`` as a Kafka record on its service's topic."""
    key, value, headers = to_kafka(CONTRACTS.validate(e)._replace(stream_version=1))
    return FakeRecord(e.type.split(".")[0] + ".events", 0, offset, key, value, list(headers))


def inbound(deps, **options) -> Consumer:
    """Credit's consumer over a fake broker."""
    broker = FakeBroker()
    return Consumer(name="credit-inbound", db=deps.db, registry=CONTRACTS,
                    source=broker.consumer("credit-inbound", "t"),
                    handler=boot.subscription(deps).handler,
                    dead_letter_producer=broker.producer(), **options)


async def deliver(deps, e: Envelope) -> None:
    """Through the consumer (inbox), twice: a redelivery changes nothing."""
    consumer = inbound(deps)
    for offset in (0, 1):
        await consumer.process([record(e, offset)])


async def stream(deps, stream_id: str) -> list[Envelope]:
    async with deps.db.connect() as conn:
        return await deps.store.read_stream(conn, stream_id)


async def count_events(deps) -> int:
    async with deps.db.connect() as conn:
        return await conn.fetchval(text("SELECT count(*) FROM events"))


@BACKENDS
async def test_A13_1_a_confirmed_violation_lowers_the_level_explained_and_kept_once(deps):
    acc = f"acc-{uuid.uuid4().hex[:6]}"
    await deliver(deps, registered(acc))
    await deliver(deps, env("verification.IdentityVerified", acc, IdentityVerified(
        account_id=acc, level="three_factor", factors=["id", "phone", "face"], provider="p",
        legal_basis=["A8.1"]).to_data()))
    v = violation(acc, 9, "v-1")
    await deliver(deps, v)
    m = measure(acc, "v-1", "m-1")
    await deliver(deps, m)
    events = await stream(deps, f"credit-account-{acc}")
    kinds = [(e.type.split(".")[1], e.data.get("kind") or e.data.get("level")) for e in events]
    assert kinds == [("CreditFactRecorded", "registered"), ("CreditFactRecorded", "verification"),
                     ("CreditFactRecorded", "violation"), ("CreditLevelChanged", "C"),
                     ("CreditFactRecorded", "measure")]
    changed = events[3].data
    assert (changed["previous_level"], changed["score"]) == ("A", 75)
    assert v.id in changed["evidence_event_ids"] and "A13.1" in changed["legal_basis"]
    out = await handlers.credit_of(deps, acc)
    assert (out["score"], out["level"], out["management_grade"]) == (70, "C", "watch")
    sources = {c["source_event_id"] for c in out["contributions"] if c["points"] < 0}
    assert sources == {v.id, m.id}
    with pytest.raises(NotFoundError):
        await handlers.credit_of(deps, "nobody")


@BACKENDS
async def test_A13_1_two_facts_of_one_account_in_one_batch_share_its_transaction(deps):
    """A fetch often carries an account's registration and its verification together: both
    facts go on the account's stream in the batch's one transaction, the second after the
    first (the store lets a transaction append after its own events), with no fallback to
    one transaction per event."""
    acc = f"acc-{uuid.uuid4().hex[:6]}"
    batches: list[int] = []
    consumer = inbound(deps, observe_batch=lambda _seconds, n: batches.append(n))
    verified = env("verification.IdentityVerified", acc, IdentityVerified(
        account_id=acc, level="three_factor", factors=["id", "phone", "face"], provider="p",
        legal_basis=["A8.1"]).to_data())
    await consumer.process([record(e, offset)
                            for offset, e in enumerate([registered(acc), verified])])
    assert batches == [2]
    events = await stream(deps, f"credit-account-{acc}")
    assert [(e.type.split(".")[1], e.data.get("kind")) for e in events] == [
        ("CreditFactRecorded", "registered"), ("CreditFactRecorded", "verification")]
    assert [e.stream_version for e in events] == [1, 2]


@BACKENDS
async def test_A13_2_strikes_blacklist_every_account_of_the_identity(deps):
    idn = "11010519491231002X"
    a1, a2 = f"acc-{uuid.uuid4().hex[:6]}", f"acc-{uuid.uuid4().hex[:6]}"
    for a in (a1, a2):
        await deliver(deps, env("registration.AccountRegistrationSubmitted", a,
                                _submitted(a, idn)))
    v1, v2 = violation(a1, 6, "r1"), violation(a2, 6, "r2")
    await deliver(deps, v1)
    await deliver(deps, v2)
    blind = (await stream(deps, f"credit-account-{a1}"))[0].data["identity_blind"]
    assert [e.type for e in await stream(deps, f"credit-identity-{blind}")] == [
        "credit.RumorStrikeRecorded"] * 2
    await deliver(deps, violation(a1, 6, "r3"))
    ident = await stream(deps, f"credit-identity-{blind}")
    black = [e for e in ident if e.type == "credit.IdentityBlacklisted"]
    assert sorted(e.data["account_id"] for e in black) == sorted([a1, a2])
    assert all(e.data["account_ids"] == sorted([a1, a2]) and e.data["legal_basis"] == ["A13.2"]
               and e.data["strike_ids"] == ["r1", "r2", "r3"] for e in black)
    assert len(black[0].data["evidence_event_ids"]) == 3
    out = await handlers.identity_credit(deps, blind)
    assert out["rumor_strikes"]["blacklisted"] and set(out["accounts"]) == {a1, a2}
    # a fourth strike blacklists nobody again
    await deliver(deps, violation(a2, 6, "r4"))
    assert len([e for e in await stream(deps, f"credit-identity-{blind}")
                if e.type == "credit.IdentityBlacklisted"]) == 2
    # a year on, the sweep expires the strikes (A13.2)
    assert (await sweep.run(deps, now=T0 + timedelta(days=364))).expired_strikes == []
    report = await sweep.run(deps, now=T0 + timedelta(days=366))
    assert sorted(report.expired_strikes) == ["r1", "r2", "r3", "r4"]
    assert (await sweep.run(deps, now=T0 + timedelta(days=367))).expired_strikes == []
    deps.clock.now = T0 + timedelta(days=367)
    strikes = (await handlers.identity_credit(deps, blind))["rumor_strikes"]
    assert strikes["live"] == [] and strikes["expired"] == ["r1", "r2", "r3", "r4"]


@BACKENDS
async def test_A13_2_A20_2_an_upheld_appeal_against_a_strike_lifts_the_blacklist_it_made(deps):
    idn = "360426199101010071"
    a1, a2 = f"acc-{uuid.uuid4().hex[:6]}", f"acc-{uuid.uuid4().hex[:6]}"
    for a in (a1, a2):
        await deliver(deps, env("registration.AccountRegistrationSubmitted", a,
                                _submitted(a, idn)))
    for acc, v in ((a1, "r1"), (a2, "r2"), (a1, "r3")):
        await deliver(deps, violation(acc, 6, v))
    await deliver(deps, measure(a1, "r3", "m3"))
    blind = (await stream(deps, f"credit-account-{a1}"))[0].data["identity_blind"]
    assert (await handlers.identity_credit(deps, blind))["rumor_strikes"]["blacklisted"]
    await deliver(deps, env("enforcement.CaseResponded", a1, CaseResponded(
        account_id=a1, case_id="appeal-m3", outcome="upheld", response="not a rumor",
        by="r", at=T0, measure_id="m3", legal_basis=["A20.2"]).to_data()))
    ident = await stream(deps, f"credit-identity-{blind}")
    lifted = [e for e in ident if e.type == "credit.IdentityBlacklistLifted"]
    assert sorted(e.data["account_id"] for e in lifted) == sorted([a1, a2])
    assert all(e.data["overruled_strike_id"] == "r3" and e.data["remaining_strike_ids"] ==
               ["r1", "r2"] and "A20.2" in e.data["legal_basis"] for e in lifted)
    strikes = (await handlers.identity_credit(deps, blind))["rumor_strikes"]
    assert not strikes["blacklisted"] and strikes["lifted_blacklist_ids"] != []
    # the appeal delivered again changes nothing; a new third strike blacklists again
    await deliver(deps, env("enforcement.CaseResponded", a1, CaseResponded(
        account_id=a1, case_id="appeal-m3", outcome="upheld", response="not a rumor",
        by="r", at=T0, measure_id="m3", legal_basis=["A20.2"]).to_data()))
    await deliver(deps, violation(a2, 6, "r5"))
    ident = await stream(deps, f"credit-identity-{blind}")
    assert [e.type for e in ident].count("credit.IdentityBlacklistLifted") == 2
    again = [e for e in ident if e.type == "credit.IdentityBlacklisted"][2:]
    assert sorted(e.data["account_id"] for e in again) == sorted([a1, a2])
    assert again[0].data["strike_ids"] == ["r1", "r2", "r5"]
    assert again[0].data["blacklist_id"] != lifted[0].data["blacklist_id"]


@BACKENDS
async def test_A20_2_an_upheld_appeal_overrules_its_strike_and_restores_the_level(deps):
    acc = f"acc-{uuid.uuid4().hex[:6]}"
    await deliver(deps, registered(acc))
    await deliver(deps, violation(acc, 6, "r1"))
    await deliver(deps, env("enforcement.MeasureApplied", acc, MeasureApplied(
        account_id=acc, measure_id="m1", measure="suspend_updates", starts_at=T0,
        violation_id="r1", category=6, policy_version="p@1", legal_basis=["A19.2"]).to_data()))
    assert (await handlers.credit_of(deps, acc))["level"] == "C"
    await deliver(deps, env("enforcement.MeasureLifted", acc, MeasureLifted(
        account_id=acc, measure_id="m1", reason="appeal_upheld",
        legal_basis=["A20.2"]).to_data()))
    await deliver(deps, env("enforcement.CaseResponded", acc, CaseResponded(
        account_id=acc, case_id="appeal-m1", outcome="upheld", response="ok", by="r", at=T0,
        measure_id="m1", legal_basis=["A20.2"]).to_data()))
    out = await handlers.credit_of(deps, acc)
    assert (out["score"], out["level"]) == (100, "A")
    assert out["rumor_strikes"]["overruled"] == ["r1"] and out["rumor_strikes"]["live"] == []
    levels = [e.data["level"] for e in await stream(deps, f"credit-account-{acc}")
              if e.type == "credit.CreditLevelChanged"]
    assert levels == ["B", "C", "A"]


def _series(acc: str, start: datetime, weeks: int, value: float = 100.0):
    return [rules.Sample(acc, "clicks", start + timedelta(hours=h), value + (h % 3))
            for h in range(weeks * 7 * 24)]


@BACKENDS
async def test_A12_1_a_jump_against_the_seasonal_baseline_is_an_anomaly_that_costs_points(
        deps):
    acc = f"acc-{uuid.uuid4().hex[:6]}"
    await deliver(deps, registered(acc))
    start = T0 - timedelta(weeks=4)
    await handlers.ingest_metrics(deps, handlers.MetricsBatch(samples=_series(acc, start, 3)),
                                  key=None, digest="-")
    at = start + timedelta(weeks=3, hours=5)
    follows = [handlers.Follow(account_id=acc, follower_id=f"f{i}", at=at, consent=i % 4 == 0)
               for i in range(40)]
    out = await handlers.ingest_metrics(deps, handlers.MetricsBatch(
        samples=[rules.Sample(acc, "clicks", at, 5000.0)], follows=follows),
        key=None, digest="-")
    assert [(a["kind"], a["metric"]) for a in out.anomalies] == [("jump", "clicks")]
    assert out.forced_follows == {acc: 30}
    credit = await handlers.credit_of(deps, acc)
    assert [c["kind"] for c in credit["contributions"]] == [
        "start", "traffic_anomaly", "forced_follows", "clean_days"]
    assert credit["forced_follows"]["without_consent"] == 30
    assert credit["traffic_anomalies"][0]["expected_high"] < 5000
    # bad input: refused with a stable code, nothing recorded
    before = await count_events(deps)
    for bad, code in ((handlers.MetricsBatch(samples=[]), "empty-metrics-batch"),
                      (handlers.MetricsBatch(samples=[rules.Sample(acc, "likes", at, 1.0)]),
                       "unknown-metric")):
        with pytest.raises(InvalidCommandError) as exc:
            await handlers.ingest_metrics(deps, bad, key=None, digest="-")
        assert exc.value.code == code
    assert await count_events(deps) == before


@BACKENDS
async def test_A13_1_an_override_with_reason_and_expiry_then_the_sweep_restores(deps):
    acc = f"acc-{uuid.uuid4().hex[:6]}"
    await deliver(deps, registered(acc))
    out = await handlers.override(deps, acc, points=-45, reason="coordinated fraud",
                                  by="op-1", expires_at=T0 + timedelta(days=3), key="k1",
                                  digest="d")
    assert (out.level, out.changed) == ("D", True)
    again = await handlers.override(deps, acc, points=-45, reason="coordinated fraud",
                                    by="op-1", expires_at=T0 + timedelta(days=3), key="k1",
                                    digest="d")
    assert again == out  # the Idempotency-Key keeps the answer
    with pytest.raises(InvalidCommandError) as exc:
        await handlers.override(deps, acc, points=5, reason="x", by="op", expires_at=T0,
                                key=None, digest="-")
    assert exc.value.code == "override-expired"
    [projection] = all_projections()

    async def listed() -> bool:  # the sweep picks its candidates from the read model
        await deps.catch_up()
        async with deps.db.connect() as conn:
            doc = await projection.get(conn, acc)
        return bool(doc and doc["overrides"] == 1)

    await eventually(listed, timeout=30, what="read model caught up")
    report = await sweep.run(deps, now=T0 + timedelta(days=4), only=[acc])
    assert report.changed == {acc: "A"}
    assert (await sweep.run(deps, now=T0 + timedelta(days=5), only=[acc])).changed == {}


@BACKENDS
async def test_A13_1_rebuilding_the_credit_read_model_gives_the_same_state_hash(deps):
    accounts = [f"acc-{uuid.uuid4().hex[:6]}" for _ in range(3)]
    for i, acc in enumerate(accounts):
        await deliver(deps, registered(acc))
        for c in range(i + 1):
            await deliver(deps, violation(acc, [1, 9, 6][c]))
    [projection] = all_projections()
    [runner] = deps.runners

    async def settled() -> bool:
        await runner.catch_up()
        async with deps.db.connect() as conn:
            docs = {d: await projection.get(conn, d) for d in accounts}
        return all(d and d["facts"] >= 2 for d in docs.values()) and \
            docs[accounts[2]]["level"] == "E"

    await eventually(settled, timeout=30, what="credit read model caught up")
    async with deps.db.connect() as conn:
        live = await projection.state_hash(conn)
    await runner.rebuild()
    async with deps.db.connect() as conn:
        assert await projection.state_hash(conn) == live
