"""Enforcement's obligations through the running system (real Kafka and PostgreSQL):
violations confirmed into measures that registration applies (A18, A19.2), escalation,
expiry by the sweep, appeals (A20.2), complaints, provincial scope (A3) and signed reports
(A19.2, A21.2). Accounts are registered through registration in "health" (verification
never activates them alone) and activated with a published ``AccountVerified``.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from libs.events.topics import SERVICES
from services.enforcement import rules
from tests.conftest import eventually
from tests.registration_support import body

pytestmark = pytest.mark.kafka
PROVINCE = "440000"


# -- helpers -------------------------------------------------------------------------------
def key() -> dict:
    return {"Idempotency-Key": uuid.uuid4().hex}


async def registration_view(system, account_id: str, what: str, check) -> dict:
    seen: dict = {}

    async def ok() -> bool:
        async with system.client("registration", "platform") as http:
            r = await http.get(f"/v1/accounts/{account_id}")
        seen["v"] = r.json() if r.status_code == 200 else None
        return seen["v"] is not None and bool(check(seen["v"]))

    await eventually(ok, timeout=40, what=f"{account_id}: {what} (last {seen.get('v')})")
    return seen["v"]


async def active_account(system, province: str = PROVINCE) -> str:
    async with system.client("registration", "platform") as http:
        r = await http.post("/v1/accounts", json=body(province=province), headers=key())
    assert r.status_code == 202, r.text
    account_id = r.json()["account_id"]
    await registration_view(system, account_id, "pending",
                            lambda v: v["status"] == "pending_verification")
    await system.publish("verification", "verification.AccountVerified", {
        "account_id": account_id, "identity_level": "three_factor", "badge": "personal",
        "legal_basis": ["A8.1", "A8.2"], "evidence_event_ids": []}, subject=account_id)
    await registration_view(system, account_id, "active", lambda v: v["status"] == "active")

    async def known() -> bool:  # enforcement learned the province from registration
        async with system.client("enforcement", "operator") as http:
            r = await http.get("/v1/filings", params={"province": province})
        return any(a["account_id"] == account_id for a in r.json()["accounts"])

    await eventually(known, timeout=40, what=f"enforcement knows {account_id}")
    return account_id


async def confirmed(system, account_id: str, category) -> dict:
    async with system.client("enforcement", "platform") as http:
        r = await http.post("/v1/violations", headers=key(), json={
            "account_id": account_id, "category": category, "source": "moderation",
            "evidence": {"content_ids": ["c1"], "hashes": ["ab" * 32],
                         "urls": ["https://example.com/p/1"], "reporter": "王小明"}})
    assert r.status_code == 201, r.text
    assert r.json()["province"] == PROVINCE
    async with system.client("enforcement", "operator") as http:
        d = await http.post(f"/v1/violations/{r.json()['violation_id']}/decision",
                            headers=key(), json={"decision": "confirm", "note": "核实"})
    assert d.status_code == 200, d.text
    out = d.json()
    assert out["status"] == "confirmed" and out["intake_to_decision_seconds"] >= 0
    return out["measure"]


# -- one scenario per obligation ------------------------------------------------------------
async def test_A19_2_confirmed_violation_restricts_the_account_and_repeats_escalate(system):
    account_id = await active_account(system)
    first = await confirmed(system, account_id, 3)
    assert first["measure"] == "function_limit" and first["capabilities"] == ["publish"]
    assert first["policy_version"] == "1" and first["step"] == 0
    v = await registration_view(system, account_id, "publishing limited",
                                lambda v: not v["capabilities"]["publish"])
    assert v["status"] == "restricted"
    second = await confirmed(system, account_id, 3)
    assert second["measure"] == "suspend_updates" and second["prior_violations"] == 1
    await registration_view(system, account_id, "suspended",
                            lambda v: v["status"] == "suspended")


async def test_A19_2_a_timed_measure_expires_by_itself_and_capabilities_return(system):
    account_id = await active_account(system)
    m = await confirmed(system, account_id, 3)
    await registration_view(system, account_id, "publishing limited",
                            lambda v: not v["capabilities"]["publish"])
    ends = datetime.fromisoformat(m["ends_at"])
    async with system.client("enforcement", "operator") as ops:
        r = await ops.post("/v1/operations/sweep", json={
            "now": (ends - timedelta(hours=1)).isoformat(), "account_ids": [account_id]})
        assert r.status_code == 200 and m["measure_id"] not in r.json()["lifted"]

        async def lifted() -> bool:  # the sweep reads the read model: poll until it has it
            r = await ops.post("/v1/operations/sweep", json={
                "now": (ends + timedelta(hours=1)).isoformat(), "account_ids": [account_id]})
            assert r.status_code == 200, r.text
            return m["measure_id"] in r.json()["lifted"]

        await eventually(lifted, timeout=30, what="the sweep lifts the measure")
    v = await registration_view(system, account_id, "publishing back",
                                lambda v: v["capabilities"]["publish"])
    assert v["status"] == "active"


async def test_A20_2_an_upheld_appeal_restores_the_account(system):
    account_id = await active_account(system)
    m = await confirmed(system, account_id, 3)
    await registration_view(system, account_id, "publishing limited",
                            lambda v: not v["capabilities"]["publish"])
    appeal = {"account_id": account_id, "measure_id": m["measure_id"], "reason": "内容已获许可"}
    async with system.client("enforcement", "platform") as platform:
        r = await platform.post("/v1/appeals", json=appeal, headers=key())
        assert r.status_code == 201, r.text
        case = r.json()
        again = await platform.post("/v1/appeals", json=appeal, headers=key())
    assert again.status_code == 409 and again.json()["code"] == "appeal-exists"
    assert again.headers["content-type"].startswith("application/problem+json")
    assert case["step"] == "received"
    async with system.client("enforcement", "reviewer", subject="reviewer-1") as staff:
        early = await staff.post(f"/v1/cases/{case['case_id']}/response", headers=key(),
                                 json={"outcome": "upheld", "response": "撤销"})
        assert early.status_code == 409 and early.json()["code"] == "case-step-out-of-order"
        for step in ("accepted", "screened", "handled"):
            r = await staff.post(f"/v1/cases/{case['case_id']}/steps", headers=key(),
                                 json={"step": step, "assignee": "reviewer-1"})
            assert r.status_code == 200 and r.json()["step"] == step, r.text
        r = await staff.post(f"/v1/cases/{case['case_id']}/response", headers=key(),
                             json={"outcome": "upheld", "response": "经复核，撤销处置"})
        assert r.status_code == 200 and r.json()["measure_lifted"], r.text
    v = await registration_view(system, account_id, "publishing back",
                                lambda v: v["capabilities"]["publish"])
    assert v["status"] == "active"


async def test_A20_2_a_public_complaint_gets_a_working_day_deadline(system):
    account_id = await active_account(system)
    async with system.client("enforcement") as public:
        r = await public.post("/v1/complaints", json={
            "account_id": account_id, "reason": "发布谣言", "category": 6,
            "contact": "13800138000", "urls": ["https://example.com/p/2"]})
        assert r.status_code == 201, r.text
        bad = await public.post("/v1/complaints", json={
            "account_id": account_id, "reason": "x", "category": 11})
    assert bad.status_code == 422 and bad.json()["code"] == "invalid-violation-category"
    case = r.json()
    assert case["kind"] == "complaint" and case["step"] == "received"
    deadline = datetime.fromisoformat(case["deadline"])
    today = datetime.now(UTC)
    assert deadline in {rules.working_days_after(today - timedelta(minutes=1), 10),
                        rules.working_days_after(today, 10)}
    assert deadline - today >= timedelta(days=10)  # ten working days and a weekend or more


async def test_A20_2_a_complaint_deadline_skips_a_public_holiday(system):
    """Filed two days before National Day (the development clock of the request): the ten
    working days skip the holiday week, which a count of weekdays would not."""
    account_id = await active_account(system)
    filed = datetime(2026, 9, 29, 10, 0, tzinfo=timezone(timedelta(hours=8)))
    async with system.client("enforcement") as public:
        r = await public.post("/v1/complaints", headers={"X-Clock-Now": filed.isoformat()},
                              json={"account_id": account_id, "reason": "虚假宣传",
                                    "category": "false_advertising"})
    assert r.status_code == 201, r.text
    deadline = datetime.fromisoformat(r.json()["deadline"])
    weekdays, day = 0, filed.date()
    while weekdays < 10:  # what the deadline would be without the holiday calendar
        day += timedelta(days=1)
        weekdays += day.weekday() < 5
    assert deadline == rules.working_days_after(filed, 10)
    assert deadline.astimezone(filed.tzinfo).date() > day


async def test_A3_a_provincial_regulator_cannot_see_another_province(system):
    async with system.client("enforcement", "regulator", province="110000",
                             subject="bj-office") as regulator:
        other = await regulator.get("/v1/reports/enforcement", params={"province": PROVINCE})
        own = await regulator.get("/v1/reports/enforcement")
        measures = await regulator.get("/v1/measures", params={"province": PROVINCE})
    assert other.status_code == 403 and other.json()["code"] == "province-out-of-scope"
    assert measures.status_code == 403
    assert own.status_code == 200
    assert set(own.json()["by_province"]) <= {"110000"}


async def test_A19_2_xlsx_totals_equal_the_json_report_and_the_manifest_verifies(system):
    from openpyxl import load_workbook

    account_id = await active_account(system)
    await confirmed(system, account_id, "false_advertising")
    async with system.client("enforcement", "regulator", province=PROVINCE,
                             subject="gd-office") as regulator:
        public_key = (await regulator.get("/v1/reports/signing-key")).json()["public_key"]
        seen: dict = {}

        async def consistent() -> bool:
            j = await regulator.get("/v1/reports/enforcement", params={"format": "json"})
            x = await regulator.get("/v1/reports/enforcement", params={"format": "xlsx"})
            assert j.status_code == 200 and x.status_code == 200, (j.text, x.text)
            report = j.json()
            wb = load_workbook(io.BytesIO(x.content), read_only=True)
            summary = dict(list(wb["summary"].values)[1:])
            totals = {k.removeprefix("totals."): v for k, v in summary.items()
                      if k.startswith("totals.")}
            rows = {name: sum(1 for _ in wb[name].values) - 1
                    for name in ("violations", "measures", "cases")}
            seen.update(report=report, x=x, totals=totals, rows=rows)
            return (report["totals"] == totals and report["totals"]["measures"] >= 1
                    and rows["measures"] == report["totals"]["measures"]
                    and rows["violations"] == report["totals"]["violations"]
                    and any(m["account_id"] == account_id for m in report["measures"]))

        await eventually(consistent, timeout=30, what="the JSON and XLSX reports agree")
    report, x = seen["report"], seen["x"]
    assert set(report["by_province"]) == {PROVINCE}
    assert all(v["reporter"] in (None, "王*明") for v in report["violations"])
    manifest = json.loads(base64.b64decode(x.headers["Enforcement-Manifest"]))
    rules.verify_manifest(manifest, {"report.xlsx": x.content}, public_key=public_key)
    assert manifest["rows"]["measures"] == report["totals"]["measures"]
    flipped = bytearray(x.content)
    flipped[len(flipped) // 2] ^= 0x01  # one byte changed
    with pytest.raises(rules.ManifestError):
        rules.verify_manifest(manifest, {"report.xlsx": bytes(flipped)})
    rules.verify_manifest(report["manifest"], {}, public_key=public_key)


async def topic_offsets(system) -> dict:
    """The end offset of every partition of the five services' topics in this run."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=system.bootstrap)
    await consumer.start()
    try:
        parts = [TopicPartition(system.topic(s), p) for s in SERVICES for p in range(3)]
        return {f"{tp.topic}:{tp.partition}": o
                for tp, o in (await consumer.end_offsets(parts)).items()}
    finally:
        await consumer.stop()


async def settled_offsets(system) -> dict:
    """The end offsets once the earlier tests' events stopped flowing (two reads agree)."""
    seen: dict = {}

    async def still() -> bool:
        first = await topic_offsets(system)
        await asyncio.sleep(1)  # the window in which a relay would publish
        seen["offsets"] = await topic_offsets(system)
        return seen["offsets"] == first

    await eventually(still, timeout=60, what="the topics to settle")
    return seen["offsets"]


async def test_A7_3_a_candidate_policy_is_simulated_over_history(system):
    account_id = await active_account(system)
    assert (await confirmed(system, account_id, 6))["measure"] == "warning"
    async with system.client("enforcement", "operator") as ops:
        current = (await ops.get("/v1/policies/current")).json()["policy"]
        candidate = {**current, "version": "2-draft"}
        for rule in candidate["rules"]:
            if 6 in rule["categories"]:
                rule["ladder"][0] = {"measure": "suspend_updates", "duration_days": 3,
                                     "reversible": True}
        seen: dict = {}

        async def differs() -> bool:
            r = await ops.post("/v1/policies/simulate", json={"policy": candidate})
            assert r.status_code == 200, r.text
            seen.update(r.json())
            return any(e["account_id"] == account_id for e in seen["examples"]) or \
                seen["changes"].get("warning -> suspend_updates", 0) >= 1

        await eventually(differs, timeout=30, what=f"a difference in the simulation ({seen})")
        assert seen["candidate_version"] == "2-draft" and seen["different"] >= 1
        # the what-if leaves every topic as it was: the end offsets do not move
        before = await settled_offsets(system)
        again = await ops.post("/v1/policies/simulate", json={"policy": candidate})
        assert again.status_code == 200 and again.json()["different"] >= 1
        assert await topic_offsets(system) == before
        broken = {**candidate, "rules": candidate["rules"][1:]}
        bad = await ops.post("/v1/policies/simulate", json={"policy": broken})
    assert bad.status_code == 422 and bad.json()["code"] == "invalid-policy"


async def test_A18_a_bad_violation_is_a_problem_and_changes_nothing(system):
    account_id = await active_account(system)
    async with system.client("enforcement", "operator") as ops:
        bad = await ops.post("/v1/violations", headers=key(), json={
            "account_id": account_id, "category": 11, "source": "moderation",
            "evidence": {"urls": ["https://example.com/x"]}})
        missing = await ops.post("/v1/violations/nope/decision", headers=key(),
                                 json={"decision": "confirm"})
        listed = await ops.get("/v1/violations", params={"account_id": account_id})
    assert bad.status_code == 422 and bad.json()["code"] == "invalid-violation-category"
    assert bad.headers["content-type"].startswith("application/problem+json")
    assert missing.status_code == 404 and missing.json()["code"] == "violation-not-found"
    assert listed.json()["items"] == []
    async with system.client("enforcement") as anonymous:
        r = await anonymous.post("/v1/violations", json={})
    assert r.status_code == 401
