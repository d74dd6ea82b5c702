"""Credit's obligations through the running system (real Kafka and PostgreSQL): a confirmed
violation lowers the level and registration withholds capabilities (A13.1, A17.2); rumor
strikes blacklist every account of the identity (A13.2); an upheld appeal restores the
level (A20.2); fake traffic (A12.1) and forced follows (A12.2) through ``POST
/v1/metrics``; bad input is a problem with a stable code."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import eventually
from tests.e2e.test_enforcement_obligations import (
    PROVINCE,
    confirmed,
    key,
    registration_view,
)
from tests.registration_support import body, resident_id

pytestmark = pytest.mark.kafka


async def active(system, id_number: str | None = None) -> str:
    async with system.client("registration", "platform") as http:
        r = await http.post("/v1/accounts", json=body(province=PROVINCE, id_number=id_number),
                            headers=key())
    assert r.status_code == 202, r.text
    account_id = r.json()["account_id"]
    await registration_view(system, account_id, "pending",
                            lambda v: v["status"] == "pending_verification")
    await system.publish("verification", "verification.AccountVerified", {
        "account_id": account_id, "identity_level": "three_factor", "badge": "personal",
        "legal_basis": ["A8.1", "A8.2"], "evidence_event_ids": []}, subject=account_id)
    await registration_view(system, account_id, "active", lambda v: v["status"] == "active")
    await credit_view(system, account_id, "known to credit", lambda c: True)

    async def known() -> bool:
        async with system.client("enforcement", "operator") as http:
            r = await http.get("/v1/filings", params={"province": PROVINCE})
        return any(a["account_id"] == account_id for a in r.json()["accounts"])

    await eventually(known, timeout=40, what=f"enforcement knows {account_id}")
    return account_id


async def credit_view(system, account_id: str, what: str, check) -> dict:
    seen: dict = {}

    async def ok() -> bool:
        async with system.client("credit", "operator") as http:
            r = await http.get(f"/v1/accounts/{account_id}/credit")
        seen["v"] = r.json() if r.status_code == 200 else None
        return seen["v"] is not None and bool(check(seen["v"]))

    await eventually(ok, timeout=40, what=f"{account_id}: {what} (last {seen.get('v')})")
    return seen["v"]


async def test_A13_1_A17_2_a_confirmed_violation_lowers_the_level_and_capabilities_go(system):
    account_id = await active(system)
    await confirmed(system, account_id, 9)  # illegal information: severe
    c = await credit_view(system, account_id, "level C", lambda c: c["level"] == "C")
    assert c["management_grade"] == "watch" and c["announced_level"] == "C"
    negative = [x for x in c["contributions"] if x["points"] < 0]
    assert "violation" in {x["kind"] for x in negative}
    assert all(x["source_event_id"] for x in negative)
    v = await registration_view(system, account_id, "advertising withheld",
                                lambda v: not v["capabilities"]["advertise"])
    assert not v["capabilities"]["live_stream"]


async def uphold_appeal(system, account_id: str, measure_id: str) -> None:
    """The operator appeals the measure (A20.1) and a reviewer upholds it (A20.2)."""
    async with system.client("enforcement", "platform") as platform:
        r = await platform.post("/v1/appeals", headers=key(), json={
            "account_id": account_id, "measure_id": measure_id, "reason": "误判"})
        assert r.status_code == 201, r.text
        case = r.json()
    async with system.client("enforcement", "reviewer", subject="reviewer-1") as staff:
        for step in ("accepted", "screened", "handled"):
            r = await staff.post(f"/v1/cases/{case['case_id']}/steps", headers=key(),
                                 json={"step": step, "assignee": "reviewer-1"})
            assert r.status_code == 200, r.text
        r = await staff.post(f"/v1/cases/{case['case_id']}/response", headers=key(),
                             json={"outcome": "upheld", "response": "撤销"})
        assert r.status_code == 200, r.text


async def test_A13_2_strikes_blacklist_every_account_of_the_identity(system):
    number = resident_id()
    first, second = await active(system, number), await active(system, number)
    for account_id in (first, second, first):
        last = await confirmed(system, account_id, 6)
    for account_id in (first, second):
        v = await registration_view(system, account_id, "closed (blacklist)",
                                    lambda v: v["status"] == "closed")
        assert v["status"] == "closed"
    c = await credit_view(system, second, "blacklisted",
                          lambda c: c["rumor_strikes"]["blacklisted"])
    assert len(c["rumor_strikes"]["live"]) == 3
    async with system.client("credit", "regulator", province=PROVINCE) as http:
        r = await http.get(f"/v1/identities/{c['identity_blind']}/credit")
    assert r.status_code == 200 and set(r.json()["accounts"]) == {first, second}
    # enforcement lists the blacklisted accounts, to the regulator of their province only
    both = {first, second}
    listed = await blacklists(system, PROVINCE, both, lambda items: len(items) == 2)
    assert {i["account_id"] for i in listed} == both
    assert all(i["status"] == "standing" and i["province"] == PROVINCE for i in listed)
    assert await blacklists(system, "110000", both, lambda items: True) == []
    # the third strike's measure is appealed and upheld (A20.2): the blacklist goes
    await uphold_appeal(system, first, last["measure_id"])
    c = await credit_view(system, second, "blacklist lifted",
                          lambda c: not c["rumor_strikes"]["blacklisted"])
    assert c["rumor_strikes"]["lifted_blacklist_ids"]
    listed = await blacklists(system, PROVINCE, both, lambda items: len(items) == 2 and all(
        i["status"] == "lifted" for i in items))
    assert {i["overruled_strike_id"] for i in listed} == set(c["rumor_strikes"]["overruled"])


async def blacklists(system, province: str, accounts: set[str], done) -> list[dict]:
    """Enforcement's blacklist entries of ``accounts`` as the province's regulator sees
    them, once ``done(entries)``."""
    seen: dict[str, list[dict]] = {}
    async with system.client("enforcement", "regulator", province=province) as http:
        async def listing() -> bool:
            items, cursor = [], ""
            while cursor is not None:
                r = await http.get("/v1/blacklists", params={"limit": 500, "cursor": cursor})
                assert r.status_code == 200, r.text
                items += [i for i in r.json()["items"] if i["account_id"] in accounts]
                cursor = r.json()["next_cursor"]
            seen["items"] = items
            return done(items)
        await eventually(listing, timeout=40, what=f"blacklists of {province}")
    return seen["items"]


async def test_A20_2_an_upheld_appeal_restores_the_level(system):
    account_id = await active(system)
    m = await confirmed(system, account_id, 9)
    await credit_view(system, account_id, "level C", lambda c: c["level"] == "C")
    await registration_view(system, account_id, "advertising withheld",
                            lambda v: not v["capabilities"]["advertise"])
    await uphold_appeal(system, account_id, m["measure_id"])
    c = await credit_view(system, account_id, "level A again", lambda c: c["level"] == "A")
    assert any(x["kind"] == "appeal_upheld" for x in c["contributions"])
    await registration_view(system, account_id, "advertising back",
                            lambda v: v["capabilities"]["advertise"])


async def test_A12_1_A12_2_traffic_anomalies_and_forced_follows_are_reported(system):
    account_id = await active(system)
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(weeks=4)
    samples = [{"account_id": account_id, "metric": "clicks",
                "at": (start + timedelta(hours=h)).isoformat(), "value": 100 + h % 3}
               for h in range(3 * 7 * 24)]
    async with system.client("credit", "platform") as http:
        r = await http.post("/v1/metrics", json={"samples": samples}, headers=key())
        assert r.status_code == 200, r.text and r.json()["anomalies"] == []
        at = (start + timedelta(weeks=3, hours=2)).isoformat()
        r = await http.post("/v1/metrics", headers=key(), json={
            "samples": [{"account_id": account_id, "metric": "clicks", "at": at,
                         "value": 9000}],
            "follows": [{"account_id": account_id, "follower_id": f"u{i}", "at": at,
                         "consent": False} for i in range(20)]})
        assert r.status_code == 200, r.text
        assert [a["kind"] for a in r.json()["anomalies"]] == ["jump"]
        bad = await http.post("/v1/metrics", headers=key(), json={"samples": []})
        assert bad.status_code == 422 and bad.json()["code"] == "empty-metrics-batch"
        assert bad.headers["content-type"].startswith("application/problem+json")
        # without a key a retried batch would be learned twice: refused, nothing learned
        nokey = await http.post("/v1/metrics", json={"samples": samples[:1]})
        assert nokey.status_code == 422, nokey.text
        assert nokey.json()["code"] == "idempotency-key-required"
    c = await credit_view(system, account_id, "anomaly recorded",
                          lambda c: c["traffic_anomalies"])
    assert c["forced_follows"]["without_consent"] == 20
    assert {x["kind"] for x in c["contributions"] if x["points"] < 0} == {
        "traffic_anomaly", "forced_follows"}


async def test_A13_1_an_override_needs_a_future_expiry(system):
    account_id = await active(system)
    async with system.client("credit", "operator") as http:
        r = await http.post(f"/v1/accounts/{account_id}/credit/overrides", headers=key(),
                            json={"points": -5, "reason": "test",
                                  "expires_at": "2020-01-01T00:00:00Z"})
        assert r.status_code == 422 and r.json()["code"] == "override-expired"
        r = await http.post(f"/v1/accounts/{uuid.uuid4().hex}/credit/overrides",
                            headers=key(), json={"points": -5, "reason": "x",
                                                 "expires_at": "2099-01-01T00:00:00Z"})
        assert r.status_code == 404 and r.json()["code"] == "credit-profile-not-found"
