"""Enforcement's handlers on both databases: violations to measures, escalation, expiry,
appeals, complaints, reports, the what-if, and its inbound events delivered twice."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from sqlalchemy import text

from libs.domain import ConflictError, ForbiddenError, InvalidCommandError
from libs.events import Consumer, Envelope, LogCursor
from libs.events.checkpoints import save_checkpoint
from libs.events.contracts import all_contracts
from libs.events.contracts.enforcement import Evidence
from libs.events.kafka_binding import to_kafka
from libs.events.testing import FakeBroker, FakeRecord
from services.enforcement import bootstrap as boot
from services.enforcement import handlers, rules, sweep, views
from services.enforcement.projections import all_projections
from services.enforcement.settings import Settings
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


async def count_events(deps) -> int:
    async with deps.db.connect() as conn:
        return await conn.fetchval(text("SELECT count(*) FROM events"))


async def settled(deps) -> None:
    """The read models caught up with every event appended so far (on PostgreSQL the log's
    horizon waits for any older transaction of the cluster: poll with a deadline)."""

    async def done() -> bool:
        await deps.catch_up()
        async with deps.db.connect() as conn:
            last = await conn.fetchval(text(
                "SELECT max(position) FROM events"))
            return last is None or (await views.position(conn)).endswith(f":{last}")

    await eventually(done, timeout=30, what="read models caught up")


def registered(account_id: str, province: str = "440000") -> Envelope:
    return Envelope.new(
        type="registration.AccountRegistrationSubmitted", source="/registration",
        subject=account_id, stream_id=f"account-{account_id}", time=T0,
        data=_submitted(account_id, province))


def _submitted(account_id: str, province: str) -> dict:
    from libs.runtime.pii import Sealer
    from libs.runtime.settings import DEV_PII_KEY
    from services.registration import schemas as reg_schemas
    from services.registration.domain import Account, Verdict
    from tests.registration_support import body

    app = reg_schemas.application(reg_schemas.RegisterAccount(**body(province=province)),
                                  Sealer(DEV_PII_KEY))
    # what registration publishes for an accepted application
    return Account.register(account_id, app, Verdict("accept"))[0].to_data()


def delivered_twice(env: Envelope, topic: str) -> list[FakeRecord]:
    key, value, headers = to_kafka(CONTRACTS.validate(env)._replace(stream_version=1))
    return [FakeRecord(topic, 0, offset, key, value, list(headers)) for offset in (0, 1)]


async def deliver(deps, env: Envelope, topic: str) -> None:
    broker = FakeBroker()
    consumer = Consumer(name="enforcement-inbound", db=deps.db, registry=CONTRACTS,
                        source=broker.consumer("enforcement-inbound", "t"),
                        handler=boot.subscription(deps).handler,
                        dead_letter_producer=broker.producer())
    for record in delivered_twice(env, topic):
        await consumer.process([record])


async def confirmed(deps, account_id: str, category=6, *, province=None) -> handlers.ViolationOut:
    v = await handlers.report_violation(deps, handlers.NewViolation(
        account_id=account_id, category=category, evidence=Evidence(urls=["https://x/1"],
                                                                    reporter="王小明"),
        source="moderation", province=province), by="op", key=None, digest="-")
    return await handlers.decide_violation(deps, v.violation_id, confirm=True, by="op",
                                           note="", key=None, digest="-")


async def types(deps, stream: str) -> list[str]:
    async with deps.db.connect() as conn:
        return [e.type for e in await deps.store.read_stream(conn, stream)]


@BACKENDS
async def test_A3_redelivered_registration_and_credit_are_kept_once(deps):
    account = f"acc-{uuid.uuid4().hex[:6]}"
    await deliver(deps, registered(account, "110000"), "registration.events")
    credit = Envelope.new(type="credit.CreditLevelChanged", source="/credit", subject=account,
                          stream_id=f"credit-{account}", time=T0,
                          data={"account_id": account, "level": "D", "score": 300,
                                "reasons": ["x"], "legal_basis": ["A13.1"]})
    await deliver(deps, credit, "credit.events")
    async with deps.db.connect() as conn:
        known = await deps.directory.get(conn, account)
        inbox = await conn.fetchval(text(
            "SELECT count(*) FROM inbox"))
    assert (known.province, known.credit_level) == ("110000", "D")
    staff = handlers.Scope(subject="op", regulator=False)
    filed = await handlers.filings(deps, staff, "110000")
    assert [a["account_id"] for a in filed] == [account]
    assert views.filing_csv(filed).decode().startswith("\ufeff账号 / account")
    assert inbox == 2
    # the province comes from registration; credit D escalates one rung (policy)
    out = await confirmed(deps, account, 6)
    assert out.province == "110000"
    assert out.measure.measure == "function_limit" and out.measure.credit_level == "D"


@BACKENDS
async def test_A19_2_confirmed_violation_applies_a_measure_and_escalates(deps):
    account = "acc-esc"
    first = await confirmed(deps, account, 6, province="440000")
    assert first.status == "confirmed" and first.intake_to_decision_seconds == 0
    assert first.measure.measure == "warning" and first.measure.step == 0
    second = await confirmed(deps, account, 4, province="440000")
    assert second.measure.measure == "function_limit" and second.measure.prior_violations == 1
    assert second.measure.ends_at == T0 + timedelta(days=7)
    stream = await types(deps, f"enforcement-account-{account}")
    assert stream == ["enforcement.MeasureDecided", "enforcement.MeasureApplied"] * 2
    async with deps.db.connect() as conn:
        applied = (await deps.store.read_stream(conn, f"enforcement-account-{account}"))[1]
    assert applied.data["ban_severity"] is None and applied.data["category"] == 6
    assert applied.data["policy_version"] == "measure-policy@1"
    assert len(applied.data["evidence_event_ids"]) == 2
    with pytest.raises(ConflictError) as exc:
        await handlers.decide_violation(deps, first.violation_id, confirm=False, by="op",
                                        note="", key=None, digest="-")
    assert exc.value.code == "violation-decided"


@BACKENDS
async def test_A18_unknown_category_or_province_is_refused_without_events(deps):
    with pytest.raises(InvalidCommandError) as exc:
        await handlers.report_violation(deps, handlers.NewViolation(
            account_id="a", category=11, evidence=Evidence(), source="moderation",
            province="440000"), by="op", key=None, digest="-")
    assert exc.value.code == "invalid-violation-category"
    with pytest.raises(InvalidCommandError) as exc:
        await handlers.report_violation(deps, handlers.NewViolation(
            account_id="nobody", category=1, evidence=Evidence(), source="moderation"),
            by="op", key=None, digest="-")
    assert exc.value.code == "province-unknown"
    assert await count_events(deps) == 0


@BACKENDS
async def test_A19_2_timed_measure_expires_with_the_sweep(deps):
    account = "acc-timed"
    await confirmed(deps, account, "false_advertising", province="440000")
    ads = await confirmed(deps, account, "commercial_fraud", province="440000")
    assert ads.measure.measure == "stop_ads"
    await settled(deps)
    early = await sweep.run(deps, now=ads.measure.ends_at - timedelta(hours=1))
    assert early.lifted == []
    late = await sweep.run(deps, now=ads.measure.ends_at + timedelta(hours=1))
    assert late.lifted == [ads.measure.measure_id]
    await settled(deps)
    again = await sweep.run(deps, now=ads.measure.ends_at + timedelta(hours=2))
    assert again.lifted == []
    assert (await types(deps, f"enforcement-account-{account}"))[-1] == \
        "enforcement.MeasureLifted"


@BACKENDS
async def test_A20_2_appeal_once_within_window_upheld_lifts_the_measure(deps):
    account = "acc-appeal"
    out = await confirmed(deps, account, 3, province="440000")
    mid = out.measure.measure_id
    case = await handlers.appeal(deps, account_id=account, measure_id=mid, reason="误判",
                                 by="platform", key=None, digest="-")
    assert case.step == "received" and case.deadline > T0
    with pytest.raises(ConflictError) as exc:
        await handlers.appeal(deps, account_id=account, measure_id=mid, reason="again",
                              by="platform", key=None, digest="-")
    assert exc.value.code == "appeal-exists"
    with pytest.raises(ConflictError) as exc:
        await handlers.respond(deps, case.case_id, outcome="upheld", response="ok", by="r",
                               key=None, digest="-")
    assert exc.value.code == "case-step-out-of-order"
    for step in ("accepted", "screened", "handled"):
        await handlers.take_step(deps, case.case_id, step=step, by="r", assignee="r1",
                                 note="", key=None, digest="-")
    done = await handlers.respond(deps, case.case_id, outcome="upheld", response="撤销",
                                  by="r", key=None, digest="-")
    assert done.step == "responded" and done.measure_lifted
    async with deps.db.connect() as conn:
        lifted = (await deps.store.read_stream(conn, f"enforcement-account-{account}"))[-1]
    assert lifted.type == "enforcement.MeasureLifted"
    assert lifted.data["reason"] == "appeal_upheld" and lifted.data["legal_basis"] == ["A20.2"]
    # the window: a later measure appealed too late
    later = await confirmed(deps, account, 3, province="440000")
    deps.clock.now = T0 + timedelta(days=31)
    with pytest.raises(ConflictError) as exc:
        await handlers.appeal(deps, account_id=account, measure_id=later.measure.measure_id,
                              reason="late", by="platform", key=None, digest="-")
    assert exc.value.code == "appeal-window-closed"


@BACKENDS
async def test_A3_A21_2_report_scoped_signed_and_recorded(deps):
    await confirmed(deps, "acc-gd", 6, province="440000")
    await confirmed(deps, "acc-bj", 9, province="110000")
    await handlers.complain(deps, handlers.NewComplaint(
        account_id="acc-gd", reason="谣言", contact="13800138000"), key=None, digest="-")
    regulator = handlers.Scope(subject="gd-office", regulator=True, province="440000")
    await settled(deps)
    with pytest.raises(ForbiddenError) as exc:
        await handlers.enforcement_report(deps, regulator, province="110000", start=None,
                                          end=None, fmt="json")
    assert exc.value.code == "province-out-of-scope"
    out = await handlers.enforcement_report(deps, regulator, province=None, start=None,
                                            end=None, fmt="xlsx")
    assert out.report["totals"]["violations"] == 1 and out.report["by_province"].keys() == {
        "440000"}
    assert out.report["cases"][0]["contact"] == "1*********0"
    rules.verify_manifest(out.manifest, out.files)
    from openpyxl import load_workbook

    wb = load_workbook(io.BytesIO(out.files["report.xlsx"]), read_only=True)
    summary = dict(list(wb["summary"].values)[1:])
    assert summary["totals.violations"] == 1 and summary["totals.measures"] == 1
    csv_out = await handlers.enforcement_report(deps, regulator, province=None, start=None,
                                                end=None, fmt="csv")
    assert set(csv_out.files) == {"summary.csv", "violations.csv", "measures.csv", "cases.csv"}
    async with deps.db.connect() as conn:
        accesses = [orjson.loads(r[0])["outcome"] for r in await conn.fetch(text(
            "SELECT CAST(data AS text) FROM events WHERE type = 'enforcement.RegulatorAccessed' "
            "ORDER BY position"))]
    assert accesses == ["refused", "granted", "granted"]


@BACKENDS
async def test_A7_3_simulation_reports_differences_and_appends_nothing(deps):
    await confirmed(deps, "acc-sim", 6, province="440000")
    await confirmed(deps, "acc-sim", 6, province="440000")
    doc = deps.policy.model_dump(mode="json")
    doc["version"] = "2"
    for rule in doc["rules"]:
        if rule["id"] == "traffic-and-rumours":
            rule["ladder"][0] = {"measure": "suspend_updates", "duration_days": 3,
                                 "reversible": True}
    await settled(deps)
    before = await count_events(deps)
    sim = await handlers.simulate(deps, rules.MeasurePolicy.model_validate(doc))
    assert (sim.violations, sim.same, sim.different) == (2, 1, 1)
    assert sim.changes == {"warning -> suspend_updates": 1}
    assert await count_events(deps) == before


@BACKENDS
async def test_A19_2_an_operator_lifts_a_measure_once(deps):
    out = await confirmed(deps, "acc-lift", 9, province="440000")
    lifted = await handlers.lift_measure(deps, "acc-lift", out.measure.measure_id,
                                         note="误报", by="op", key=None, digest="-")
    assert lifted.reason == "operator_decision: 误报"
    with pytest.raises(ConflictError) as exc:
        await handlers.lift_measure(deps, "acc-lift", out.measure.measure_id, note="",
                                    by="op", key=None, digest="-")
    assert exc.value.code == "measure-lifted"


def _stricter(deps, version: str) -> dict:
    doc = deps.policy.model_dump(mode="json")
    doc["version"] = version
    for rule in doc["rules"]:
        if rule["id"] == "traffic-and-rumours":
            rule["ladder"][0] = {"measure": "suspend_updates", "duration_days": 3,
                                 "reversible": True}
    return doc


@BACKENDS
async def test_A7_3_an_activated_version_decides_from_then_on_after_a_what_if(deps):
    await confirmed(deps, "acc-v1", 6, province="440000")
    await settled(deps)
    doc = _stricter(deps, "2")
    out = await handlers.activate_policy(deps, rules.MeasurePolicy.model_validate(doc),
                                         by="op", key=None, digest="-")
    assert (out.version, out.replayed_violations, out.would_differ) == ("2", 1, 1)
    later = await confirmed(deps, "acc-v2", 6, province="440000")
    assert later.measure.measure == "suspend_updates"
    assert later.measure.policy_version == "2"
    staff = handlers.Scope(subject="op", regulator=False)
    versions = await handlers.policy_versions(deps, staff)
    assert [v["version"] for v in versions] == ["1", "2"]
    assert versions[1]["would_differ"] == 1 and versions[1]["activated_by"] == "op"
    assert (await handlers.current_policy(deps, staff))["sha256"] == out.sha256


@BACKENDS
async def test_A7_3_a_version_number_is_never_reused_and_a_same_document_is_refused(deps):
    same_version = _stricter(deps, deps.policy.version)
    with pytest.raises(ConflictError) as exc:
        await handlers.activate_policy(
            deps, rules.MeasurePolicy.model_validate(same_version), by="op", key=None,
            digest="-")
    assert exc.value.code == "policy-version-exists"
    with pytest.raises(ConflictError) as exc:
        await handlers.activate_policy(deps, deps.policy, by="op", key=None, digest="-")
    assert exc.value.code == "policy-unchanged"
    async with deps.db.connect() as conn:
        assert await deps.store.stream_version(conn, "measure-policy") == 0


@BACKENDS
async def test_A3_a_filtered_list_fills_its_pages(deps):
    for i in range(6):
        await confirmed(deps, f"acc-page-{i}", 9, province="440000" if i % 3 == 0 else "110000")
    await settled(deps)
    staff = handlers.Scope(subject="op", regulator=False)
    seen, cursor = [], ""
    while cursor is not None:
        items, cursor = await handlers.list_docs(deps, staff, views.VIOLATIONS,
                                                 province="110000", account_id=None,
                                                 cursor=cursor, limit=2)
        assert len(items) == 2 or cursor is None
        seen += [d["account_id"] for d in items]
    assert sorted(seen) == sorted(f"acc-page-{i}" for i in range(6) if i % 3)


@BACKENDS
async def test_A11_1_suspected_trading_from_transfer_is_reported_once_under_art_18_8(deps):
    account = f"acc-{uuid.uuid4().hex[:6]}"
    await deliver(deps, registered(account, "440000"), "registration.events")
    suspected = Envelope.new(
        type="transfer.SuspectedAccountTrading", source="/transfer", subject=account,
        stream_id="transfer-t1", time=T0,
        data={"account_id": account, "transfer_id": "t1", "identity_blinds": ["a" * 32],
              "account_ids": [account], "transfers_in_window": 3, "window_days": 365,
              "legal_basis": ["A11.1"], "evidence_event_ids": []})
    await deliver(deps, suspected, "transfer.events")  # delivered twice: kept once
    async with deps.db.connect() as conn:
        rows = await conn.fetch(text(
            "SELECT CAST(data AS text), causation_id FROM events "
            "WHERE type = 'enforcement.ViolationReported'"))
    assert len(rows) == 1
    reported = orjson.loads(rows[0][0])
    assert (reported["category"], reported["source"], reported["province"]) == (8, "transfer",
                                                                                "440000")
    assert "A11.1" in reported["legal_basis"] and rows[0][1] == suspected.id


@BACKENDS
async def test_reports_are_stamped_with_the_least_advanced_read_model_in_log_order(deps):
    """A report's ``event_position`` is where the slowest of its read models stands, in log
    order (xid, then position): a smaller position in a younger transaction is further."""
    cursors = {views.VIOLATIONS: LogCursor(100, 5), views.MEASURES: LogCursor(90, 7),
               views.CASES: LogCursor(95, 1)}
    async with deps.db.transaction() as tx:
        for name, cursor in cursors.items():
            await save_checkpoint(tx, f"projection:{name}", cursor)
    async with deps.db.connect() as conn:
        assert await views.position(conn) == "90:7"
