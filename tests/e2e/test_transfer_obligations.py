"""Transfer's obligations through the running system (real Kafka and PostgreSQL): the
transferee verified by verification (A11.2), refusals under an active measure (A11.1), an
unapplied transfer suspended by registration (a new identity, or a changed contact of a
different verified person), a transfer completed by the sweep once its followers' opt-out
period is over and announced on verification's public page with the new owner in
registration, and the list of transfers scoped to a regulator's province (A3)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaConsumer

from libs.events.kafka_binding import from_kafka
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


async def registered(system, **kw) -> str:
    async with system.client("registration", "platform") as http:
        r = await http.post("/v1/accounts", json=body(**kw), headers=key())
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
    # a field that needs no qualification: the account is verified, so it has a public
    # page for the announcement (an unverified account has none, ADR 0031)
    account_id = await registered(system, category="technology")
    async with system.client("verification", "platform") as http:
        async def opened() -> bool:
            # the state, not the public page: that one waits for a verified account
            r = await http.get(f"/v1/accounts/{account_id}/verification")
            return r.status_code == 200
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
    assert c.json()["status"] == "opt_out_period"
    await swept(system, days=8)
    await transfer_state(system, transfer["transfer_id"], lambda v: v["status"] == "completed")
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
    assert seen["v"]["operator"] == {"name": "王*"}  # no identity number on the page
    await registration_view(
        system, account_id, "new owner",
        lambda v: v["owner"]["id_number_masked"] == transfer["transferee"]["id_number_masked"])


async def swept(system, *, days: float) -> dict:
    """The transfer sweep run as if ``days`` from now (the dev-only clock)."""
    at = (datetime.now(UTC) + timedelta(days=days)).isoformat()
    async with system.client("transfer", "operator") as http:
        r = await http.post("/v1/operations/sweep", json={"now": at}, headers=key())
    assert r.status_code == 200, r.text
    return r.json()


async def published(system, service: str, event_type: str, check, timeout: float = 40):
    """The first event of ``event_type`` on the service's topic that passes ``check``."""
    consumer = AIOKafkaConsumer(system.topic(service), bootstrap_servers=system.bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                for rec in records:
                    env = from_kafka(rec.key, rec.value, rec.headers)
                    if env.type == event_type and check(env.data):
                        return env
    finally:
        await consumer.stop()
    pytest.fail(f"no {event_type} on {service}.events within {timeout}s")


async def test_A11_2_changed_contact_of_a_different_verified_person_ends_in_suspension(system):
    own_phone, other_phone = phone(), phone()
    account_id = await registered(system, category="technology", phone_number=own_phone)
    other = await registered(system, category="technology", phone_number=other_phone)
    for a in (account_id, other):  # verification verified both registrants
        await registration_view(system, a, "active", lambda v: v["status"] == "active")
        await known_to_transfer(system, a, lambda v: v["owner_verified"])

    async def signal(contact: str) -> dict:
        async with system.client("transfer", "platform") as http:
            r = await http.post("/v1/signals/ownership", headers=key(), json={
                "account_id": account_id, "signal": "contact_changed",
                "contact_phone": contact})
        assert r.status_code == 200, r.text
        return r.json()

    # the owner's own phone, or a phone of nobody verified: no change of operator
    assert (await signal(own_phone))["covered_by"] == "owner"
    unknown = await signal(phone())
    assert unknown["outcome"] == "unmatched_contact" and not unknown["unapplied_transfer"]
    async with system.client("transfer", "platform") as http:
        bad = await http.post("/v1/signals/ownership", headers=key(), json={
            "account_id": account_id, "signal": "contact_changed", "contact_phone": "12"})
    assert bad.status_code == 422 and bad.json()["field"] == "contact_phone"
    assert bad.headers["content-type"].startswith("application/problem+json")
    await registration_view(system, account_id, "still active",
                            lambda v: v["status"] == "active")
    # the phone of a different verified person, with no application: suspended
    out = await signal(other_phone)
    assert out["outcome"] == "unapplied_transfer" and out["unapplied_transfer"] is True
    await registration_view(system, account_id, "suspended",
                            lambda v: v["status"] == "suspended")
    await registration_view(system, other, "the other untouched",
                            lambda v: v["status"] == "active")


async def test_A11_2_transfer_completes_only_after_the_followers_opt_out_period(system):
    account_id = await registered(system)
    async with system.client("transfer", "platform") as http:
        r = await http.post("/v1/transfers", json=application(account_id), headers=key())
    assert r.status_code == 201, r.text
    transfer_id = r.json()["transfer_id"]
    opt_out_until = datetime.fromisoformat(r.json()["opt_out_until"])
    assert timedelta(days=6) < opt_out_until - datetime.now(UTC) <= timedelta(days=7)
    async with system.client("transfer", "platform") as http:
        for follower in ("f-1", "f-2", "f-1"):
            o = await http.post(f"/v1/transfers/{transfer_id}/follower-opt-outs",
                                json={"follower_id": follower}, headers=key())
            assert o.status_code == 200, o.text
    assert o.json()["followers_opted_out"] == 2
    await transfer_state(system, transfer_id, lambda v: v["status"] == "awaiting_confirmation")
    async with system.client("transfer", "platform") as http:
        for party in ("transferor", "transferee"):
            c = await http.post(f"/v1/transfers/{transfer_id}/confirmation",
                                json={"party": party}, headers=key())
            assert c.status_code == 200, c.text
    assert c.json()["status"] == "opt_out_period" and c.json()["completed_at"] is None
    early = await swept(system, days=6)
    assert transfer_id not in early["completed"] and transfer_id not in early["expired"]
    assert (await transfer_state(system, transfer_id, lambda v: True))["status"] == \
        "opt_out_period"
    late = await swept(system, days=7.01)
    assert transfer_id in late["completed"]
    done = await transfer_state(system, transfer_id, lambda v: v["status"] == "completed")
    assert done["followers_opted_out"] == 2
    carried = await published(system, "transfer", "transfer.FollowerOptOutsApplied",
                              lambda d: d["transfer_id"] == transfer_id)
    assert carried.data["follower_ids"] == ["f-1", "f-2"] and carried.data["opted_out"] == 2
    await registration_view(
        system, account_id, "new owner",
        lambda v: v["owner"]["id_number_masked"] == done["transferee"]["id_number_masked"])


async def test_A11_2_list_of_transfers_is_paged_and_scoped_to_a_regulators_province(system):
    guangdong = await registered(system, province="440000")
    beijing = await registered(system, province="110000")
    ids: dict[str, list[str]] = {guangdong: [], beijing: []}
    async with system.client("transfer", "platform") as http:
        for account_id, kind in ((guangdong, "transfer"), (guangdong, "co_operator"),
                                 (beijing, "transfer")):
            r = await http.post("/v1/transfers", headers=key(), json={
                **application(account_id), "kind": kind})
            assert r.status_code == 201, r.text
            ids[account_id].append(r.json()["transfer_id"])

    async def listing(roles: tuple[str, ...], region: str | None = None, **params):
        async with system.client("transfer", *roles, province=region) as http:
            return await http.get("/v1/transfers", params=params)

    # pages of one, by keyset cursor, each application once
    seen, cursor = [], ""
    while True:
        r = await listing(("platform",), account_id=guangdong, limit=1, cursor=cursor)
        assert r.status_code == 200, r.text
        seen += [i["transfer_id"] for i in r.json()["items"]]
        if not (cursor := r.json()["next_cursor"]):
            break
    assert seen == sorted(ids[guangdong])
    r = await listing(("reviewer",), account_id=guangdong, kind="co_operator")
    [grant] = r.json()["items"]
    assert grant["transfer_id"] == ids[guangdong][1] and grant["province"] == "440000"
    assert "id_number_blind" not in grant["transferee"]
    # a regulator of Beijing sees Beijing's, not Guangdong's, and may not ask for them
    r = await listing(("regulator",), "110000", account_id=beijing)
    assert [i["transfer_id"] for i in r.json()["items"]] == ids[beijing]
    assert (await listing(("regulator",), "110000", account_id=guangdong)).json()["items"] == []
    refused = await listing(("regulator",), "110000", province="440000")
    assert refused.status_code == 403 and refused.json()["code"] == "province-out-of-scope"
    async with system.client("transfer", "regulator", province="110000") as http:
        assert (await http.get(f"/v1/transfers/{ids[beijing][0]}")).status_code == 200
        hidden = await http.get(f"/v1/transfers/{ids[guangdong][0]}")
        assert hidden.status_code == 404 and hidden.json()["code"] == "transfer-not-found"
        assert (await http.get(f"/v1/accounts/{guangdong}/operators")).status_code == 404
        # the list's typed response in the OpenAPI document
        spec = (await http.get("/openapi.json")).json()
    ok = spec["paths"]["/v1/transfers"]["get"]["responses"]["200"]["content"]
    assert ok["application/json"]["schema"]["$ref"].endswith("/TransferPage")
    # bad input and no token: problems
    bad = await listing(("platform",), status="sold")
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")
    assert (await listing(())).status_code == 401
