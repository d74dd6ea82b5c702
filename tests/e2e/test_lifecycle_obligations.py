"""Lifecycle across services, through the running system (real Kafka and PostgreSQL):
a lapsed qualification restricts the account in registration (A9.1), and verification's
public page follows the account's suspensions, closure and deregistration (A9.2)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import eventually
from tests.e2e.test_verification_obligations import (
    account_status,
    decide,
    material,
    register,
    registration,
    submit,
    verification,
    wait_in_queue,
)

pytestmark = pytest.mark.kafka


async def public_page(system, account_id: str, what: str, check) -> dict:
    """Poll the public page (A9.2) until ``check(page)`` holds; the page."""
    seen: dict = {}

    async def ok() -> bool:
        async with system.client("verification") as http:  # no token: the public
            r = await http.get(f"/v1/public/accounts/{account_id}")
        seen["page"] = r.json() if r.status_code == 200 else None
        return seen["page"] is not None and bool(check(seen["page"]))

    await eventually(ok, timeout=40, what=f"public page of {account_id}: {what} "
                                          f"(last seen {seen.get('page')})")
    return seen["page"]


async def no_public_page(system, account_id: str, what: str) -> None:
    """Poll until the public page of a closed or deregistered account is gone (404)."""
    async def gone() -> bool:
        async with system.client("verification") as http:
            r = await http.get(f"/v1/public/accounts/{account_id}")
        return r.status_code == 404

    await eventually(gone, timeout=40, what=f"no public page once {what}")


async def test_A9_1_an_expired_qualification_restricts_the_service_until_a_new_one_passes(
        system):
    account_id = await register(system, registration(category="health"))
    await verification(system, account_id, lambda v: v["status"] == "awaiting_qualification")
    case_id = await submit(system, account_id, material(days=30))
    await wait_in_queue(system, case_id)
    await decide(system, case_id, "approve")
    active = await account_status(system, account_id, "active")
    assert active["capabilities"]["publish"] is True
    later = (datetime.now(UTC) + timedelta(days=31)).isoformat()
    async with system.client("verification", "operator") as http:
        r = await http.post("/v1/operations/sweep",
                            json={"now": later, "account_ids": [account_id], "fraction": 0})
    assert r.status_code == 200 and r.json()["expired"] == {account_id: [case_id]}, r.text
    restricted = await account_status(system, account_id, "restricted")
    assert restricted["restrictions"] == {
        "qualification_lapsed": ["live_stream", "paid_content", "publish"]}
    assert restricted["capabilities"]["publish"] is False
    renewed = await submit(system, account_id, material(days=365))
    await wait_in_queue(system, renewed)
    await decide(system, renewed, "approve")
    again = await account_status(system, account_id, "active")
    assert again["capabilities"]["publish"] is True


async def test_A9_2_the_public_page_follows_suspension_reinstatement_and_closure(system):
    account_id = await register(system, registration())
    await account_status(system, account_id, "active")
    page = await public_page(system, account_id, "badge", lambda p: p["badge"])
    assert page["badge"] == "personal" and page["standing"] == "in_service"
    async with system.client("registration", "platform") as http:
        r = await http.post(f"/v1/accounts/{account_id}/suspension", json={})
        assert r.status_code == 202, r.text
        await public_page(system, account_id, "suspended, no badge",
                          lambda p: p["standing"] == "suspended" and p["badge"] is None)
        r = await http.post(f"/v1/accounts/{account_id}/reinstatement", json={})
        assert r.status_code == 202, r.text
    await public_page(system, account_id, "badge back",
                      lambda p: p["standing"] == "in_service" and p["badge"] == "personal")
    await system.publish("enforcement", "enforcement.MeasureApplied", {
        "measure_id": f"m-{uuid.uuid4().hex[:8]}", "account_id": account_id,
        "measure": "closure", "starts_at": datetime.now(UTC).isoformat(),
        "policy_version": "p-1", "legal_basis": ["A19.2"],
        "evidence_event_ids": ["violation-1"]}, subject=account_id)
    await account_status(system, account_id, "closed")
    await no_public_page(system, account_id, "closed")


async def test_A9_2_a_deregistered_account_has_no_public_page(system):
    account_id = await register(system, registration())
    await account_status(system, account_id, "active")
    await public_page(system, account_id, "badge", lambda p: p["badge"])
    async with system.client("registration", "platform") as http:
        r = await http.post(f"/v1/accounts/{account_id}/deregistration", json={})
    assert r.status_code == 202, r.text
    await no_public_page(system, account_id, "deregistered")
