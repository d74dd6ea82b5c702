"""Transfer's obligations through the running system (real Kafka and PostgreSQL): the
transferee verified by verification (A11.2), refusals under an active measure (A11.1), an
unapplied transfer suspended by registration, and a completed transfer announced on
verification's public page with the new owner in registration."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import eventually
from tests.e2e.test_enforcement_obligations import active_account, confirmed, registration_view
from tests.registration_support import body, phone, resident_id

pytestmark = pytest.mark.kafka


def key() -> dict:
    return {"Idempotency-Key": uuid.uuid4().hex}


async def known_to_transfer(system, account_id: str, check=lambda v: True) -> dict:
    seen: dict = {}

    async def ok() -> bool:
        async with system.client("transfer", "platform") as http:
            r = await http.get(f"/v1/accounts/{account_id}/operators")
        seen["v"] = r.json() if r.status_code == 200 else None
        return seen["v"] is not None and bool(check(seen["v"]))

    await eventually(ok, timeout=40, what=f"transfer knows {account_id} ({seen.get('v')})")
    return seen["v"]


async def registered(system) -> str:
    async with system.client("registration", "platform") as http:
        r = await http.post("/v1/accounts", json=body(), headers=key())
    assert r.status_code == 202, r.text
    account_id = r.json()["account_id"]
    await known_to_transfer(system, account_id)
    return account_id


def application(account_id: str, name: str = "王五") -> dict:
    return {"account_id": account_id, "contact": "13800138000",
            "transferee": {"id_number": resident_id(), "name": name, "phone": phone()}}


async def transfer_state(system, transfer_id: str, check) -> dict:
    seen: dict = {}

    async def ok() -> bool:
        async with system.client("transfer", "operator") as http:
            r = await http.get(f"/v1/transfers/{transfer_id}")
        seen["v"] = r.json()
        return bool(check(seen["v"]))

    await eventually(ok, timeout=40, what=f"transfer {transfer_id} ({seen.get('v')})")
    return seen["v"]


async def test_A11_2_transferee_who_fails_verification_is_rejected(system):
    account_id = await registered(system)
    async with system.client("transfer", "platform") as http:
        r = await http.post("/v1/transfers", json=application(account_id, "冒用者"),
                            headers=key())
        assert r.status_code == 201, r.text
        assert r.json()["status"] == "verifying"
        bad = await http.post("/v1/transfers", headers=key(), json={
            **application(account_id), "transferee": {"id_number": "123", "name": "x",
                                                      "phone": phone()}})
    # bad input: a problem with a stable code, nothing recorded
    assert bad.status_code == 422, bad.text
    assert bad.headers["content-type"].startswith("application/problem+json")
    assert bad.json()["field"] == "transferee.id_number" and bad.json()["code"]
    out = await transfer_state(system, r.json()["transfer_id"],
                               lambda v: v["status"] == "rejected")
    assert out["reasons"]
    ops = await known_to_transfer(system, account_id)
    assert ops["pending"] == []


async def test_A11_1_transfer_refused_under_an_active_measure(system):
    account_id = await active_account(system)
    await confirmed(system, account_id, 6)
    await known_to_transfer(system, account_id, lambda v: v["active_measures"])
    async with system.client("transfer", "platform") as http:
        r = await http.post("/v1/transfers", json=application(account_id), headers=key())
    assert r.status_code == 409, r.text
    problem = r.json()
    assert problem["code"] == "transfer-refused"
    assert set(problem["reasons"]) & {"account-under-measure", "account-blacklisted"}
    refused = await transfer_state(system, problem["transfer_id"], lambda v: True)
    assert refused["status"] == "rejected"


async def test_A11_2_unapplied_transfer_ends_in_suspension(system):
    account_id = await active_account(system)
    await known_to_transfer(system, account_id)
    async with system.client("transfer", "platform") as http:
        r = await http.post("/v1/signals/ownership", headers=key(), json={
            "account_id": account_id, "signal": "login_identity", "id_number": resident_id()})
    assert r.status_code == 200, r.text
    assert r.json()["unapplied_transfer"] is True
    await registration_view(system, account_id, "suspended",
                            lambda v: v["status"] == "suspended")


async def test_A11_2_completed_transfer_is_announced_and_changes_the_owner(system):
    account_id = await registered(system)
    async with system.client("verification", "platform") as http:
        async def opened() -> bool:
            return (await http.get(f"/v1/public/accounts/{account_id}")).status_code == 200
        await eventually(opened, timeout=40, what="verification opened")
    async with system.client("transfer", "platform") as http:
        r = await http.post("/v1/transfers", json=application(account_id, "王五"),
                            headers=key())
    assert r.status_code == 201, r.text
    transfer = r.json()
    await transfer_state(system, transfer["transfer_id"],
                         lambda v: v["status"] == "awaiting_confirmation")
    async with system.client("transfer", "platform") as http:
        for party in ("transferor", "transferee"):
            c = await http.post(f"/v1/transfers/{transfer['transfer_id']}/confirmation",
                                json={"party": party}, headers=key())
            assert c.status_code == 200, c.text
    assert c.json()["status"] == "completed"
    seen: dict = {}

    async def announced() -> bool:
        async with system.client("verification") as http:
            seen["v"] = (await http.get(f"/v1/public/accounts/{account_id}")).json()
        return bool(seen["v"].get("owner_changes"))

    await eventually(announced, timeout=40, what=f"announcement ({seen.get('v')})")
    [notice] = seen["v"]["owner_changes"]
    assert notice["transfer_id"] == transfer["transfer_id"]
    assert notice["new_name"] == "王*" and notice["previous_name"] == "张*"
    assert notice["new_entity_type"] == "natural_person" and notice["ad_revenue_paused_until"]
    assert seen["v"]["operator"]["id_number"] == transfer["transferee"]["id_number_masked"]
    await registration_view(
        system, account_id, "new owner",
        lambda v: v["owner"]["id_number_masked"] == transfer["transferee"]["id_number_masked"])
