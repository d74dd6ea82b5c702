"""Registration's obligations through the running system (real Kafka and PostgreSQL).

Upstream services' events are published into their topics with ``system.publish`` where
those services do not produce them yet. Accounts are registered in "health", a field the
verification service never activates without an approved qualification (A9.1), so the
verification events these tests publish are the only ones that move the account.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from libs.runtime.pii import Sealer
from libs.runtime.settings import DEV_PII_KEY
from tests.conftest import eventually
from tests.registration_support import body, phone, resident_id, unique_name

pytestmark = pytest.mark.kafka
SEALER = Sealer(DEV_PII_KEY)
NOW = datetime.now(UTC)


# -- helpers ----------------------------------------------------------------------------------
async def register(http, b: dict, expect: int = 202) -> dict:
    r = await http.post("/v1/accounts", json=b, headers={"Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == expect, r.text
    return r.json()


async def view(http, account_id: str) -> dict | None:
    r = await http.get(f"/v1/accounts/{account_id}")
    return r.json() if r.status_code == 200 else None


async def until(http, account_id: str, what: str, check) -> dict:
    """Poll the account's view until ``check(view)`` holds; returns that view."""
    seen: dict = {}

    async def ok() -> bool:
        seen["v"] = await view(http, account_id)
        return seen["v"] is not None and bool(check(seen["v"]))

    await eventually(ok, timeout=30, what=f"{account_id}: {what} (last seen {seen})")
    return seen["v"]


async def status_is(http, account_id: str, status: str) -> dict:
    return await until(http, account_id, f"status {status}", lambda v: v["status"] == status)


async def history(http, account_id: str) -> list[dict]:
    r = await http.get(f"/v1/accounts/{account_id}/history")
    assert r.status_code == 200, r.text
    return r.json()["events"]


async def history_types(http, account_id: str) -> list[str]:
    r = await http.get(f"/v1/accounts/{account_id}/history")
    assert r.status_code == 200, r.text
    return [e["type"] for e in r.json()["events"]]


async def activate(system, http, account_id: str) -> dict:
    await status_is(http, account_id, "pending_verification")
    await system.publish("verification", "verification.AccountVerified", {
        "account_id": account_id, "identity_level": "three_factor", "badge": "yellow",
        "legal_basis": ["A8.1", "A8.2"], "evidence_event_ids": []}, subject=account_id)
    return await status_is(http, account_id, "active")


async def active_account(system, http, **kw) -> str:
    account_id = (await register(http, body(**kw)))["account_id"]
    await activate(system, http, account_id)
    return account_id


async def measure(system, account_id: str, kind: str, **extra) -> str:
    measure_id = f"m-{uuid.uuid4().hex[:8]}"
    await system.publish("enforcement", "enforcement.MeasureApplied", {
        "measure_id": measure_id, "account_id": account_id, "measure": kind,
        "starts_at": datetime.now(UTC).isoformat(), "policy_version": "p-1",
        "legal_basis": ["A19.2"], "evidence_event_ids": ["violation-1"], **extra},
        subject=account_id)
    return measure_id


async def sweep(http_op, now: datetime, *ids: str) -> dict:
    r = await http_op.post("/v1/operations/sweep",
                           json={"now": now.isoformat(), "account_ids": list(ids)})
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture
async def http(system):
    async with system.client("registration", "platform") as client:
        yield client


@pytest.fixture
async def ops(system):
    async with system.client("registration", "operator") as client:
        yield client


# -- one test per obligation -------------------------------------------------------------------
async def test_A2_entity_type_is_required_and_one_of_three(http):
    b = body()
    del b["entity_type"]
    r = await http.post("/v1/accounts", json=b)
    assert r.status_code == 422 and r.json()["code"] == "validation-error"
    r = await http.post("/v1/accounts", json=body() | {"entity_type": "company"})
    assert r.status_code == 422
    b = body(entity_type="legal_person")
    del b["organization"]
    r = await http.post("/v1/accounts", json=b)
    assert r.status_code == 422 and r.json()["code"] == "organization-required"
    bad = body() | {"identity": body()["identity"] | {"id_number": "110101199003070012"}}
    r = await http.post("/v1/accounts", json=bad)
    assert r.status_code == 422 and r.json()["code"] == "invalid-resident-id"
    # a resident ID number is not a USCC; one in 31 random ones passes the USCC check
    # character by chance, so take one that does not
    from stdnum.cn import uscc

    not_uscc = next(n for n in iter(resident_id, None) if not uscc.is_valid(n))
    r = await http.post("/v1/accounts", json=body(entity_type="legal_person",
                                                  id_number=not_uscc))
    assert r.status_code == 422 and r.json()["code"] == "invalid-social-credit-code"
    for kind in ("natural_person", "legal_person", "unincorporated_organization"):
        account_id = (await register(http, body(entity_type=kind)))["account_id"]
        v = await status_is(http, account_id, "pending_verification")
        assert v["entity_type"] == kind
        assert v["owner"]["id_kind"] == ("resident_id" if kind == "natural_person" else "uscc")


async def test_A6_registration_records_the_agreement_version_and_a_new_one_can_be_required(
        system, http):
    r = await http.post("/v1/accounts", json=body(agreement="2019-01"))
    assert r.status_code == 422 and r.json()["code"] == "agreement-version-outdated"
    assert r.json()["current_version"] == "2025-01"
    account_id = await active_account(system, http)
    v = await view(http, account_id)
    assert v["agreement"] == {"accepted_version": "2025-01", "current_version": "2025-01",
                              "current_accepted": True}
    r = await http.post(f"/v1/accounts/{account_id}/agreement", json={"version": "2019-01"})
    assert r.status_code == 422
    r = await http.post(f"/v1/accounts/{account_id}/agreement", json={"version": "2025-01"})
    assert r.status_code == 202, r.text
    await eventually(lambda: _has(http, account_id, "registration.AgreementAccepted"),
                     what="AgreementAccepted")


async def _has(http, account_id: str, etype: str) -> bool:
    return etype in await history_types(http, account_id)


async def test_A7_1_category_taxonomy_by_entity_type_and_provincial_listing(http):
    r = await http.post("/v1/accounts", json=body(category="news"))
    assert r.status_code == 422 and r.json()["code"] == "category-not-allowed-for-entity-type"
    r = await http.post("/v1/accounts", json=body(category="astrology"))
    assert r.status_code == 422 and r.json()["code"] == "unknown-category"
    r = await http.post("/v1/accounts", json=body(province="999999"))
    assert r.status_code == 422 and r.json()["code"] == "unknown-province"
    news = (await register(http, body(entity_type="legal_person", category="news",
                                      province="320000")))["account_id"]
    v = await status_is(http, news, "pending_verification")
    assert (v["category"], v["province"]) == ("news", "320000")
    page = (await http.get("/v1/accounts", params={"province": "320000", "limit": 500})).json()
    assert news in [a["account_id"] for a in page["items"]]
    assert all(a["province"] == "320000" for a in page["items"])


async def test_A8_2_profile_change_is_shown_only_after_it_passes_and_mismatch_suspends(
        system, http, ops):
    account_id = await active_account(system, http)
    old = (await view(http, account_id))["profile"]["name"]
    r = await http.patch(f"/v1/accounts/{account_id}/profile", json={"name": "健康新名字"})
    assert r.status_code == 202, r.text
    assert (await view(http, account_id))["profile"]["name"] == old
    # The real verification service checks the change too, and may pass it before a poll
    # could see it pending; the stream shows the order whatever the timing.
    events = await history(http, account_id)
    change_id = next(e["data"]["change_id"] for e in events
                     if e["type"] == "registration.ProfileChangeSubmitted")
    await system.publish("verification", "verification.ProfileCheckPassed", {
        "account_id": account_id, "change_id": change_id, "source": "profile_change",
        "legal_basis": ["A8.2"]}, subject=account_id)
    await until(http, account_id, "new name", lambda v: v["profile"]["name"] == "健康新名字")
    types = [e["type"] for e in await history(http, account_id)]
    # the old profile stayed until the new one passed: submitted, then applied once
    assert types.index("registration.ProfileChangeSubmitted") < types.index(
        "registration.ProfileChangeApplied")
    assert types.count("registration.ProfileChangeApplied") == 1
    # a failed re-check suspends and asks for correction with a deadline ...
    await system.publish("verification", "verification.ProfileMismatchFound", {
        "account_id": account_id, "source": "reinspection", "legal_basis": ["A8.2", "A9.3"],
        "findings": [{"field": "profile.name", "code": "protected-name", "detail": "x"}]},
        subject=account_id)
    v = await status_is(http, account_id, "suspended")
    assert v["suspensions"] == {"correction_pending": "correction_pending"}
    deadline = datetime.fromisoformat(v["correction_deadline"])
    assert deadline > datetime.now(UTC) + timedelta(days=14)
    # ... and service ceases once the deadline passes uncorrected
    assert (await sweep(ops, deadline - timedelta(hours=1), account_id))["closed"] == []
    assert (await sweep(ops, deadline + timedelta(hours=1), account_id))["closed"] == [account_id]
    v = await status_is(http, account_id, "closed")
    assert v["closed_reason"] == "correction_deadline_passed"


async def test_A8_3_closed_identity_and_similar_names_cannot_register_again(system, http):
    number, mobile = resident_id(), phone()
    name = unique_name("健康生活小站")
    account_id = await active_account(system, http, id_number=number, phone_number=mobile,
                                      name=name)
    await measure(system, account_id, "closure", ban_severity="grave")
    v = await status_is(http, account_id, "closed")
    assert v["bans"] and list(v["bans"].values())[0]["severity"] == "grave"
    # the identity and the phone are banned, whatever name they use
    async def banned(b) -> bool:
        r = await http.post("/v1/accounts", json=b)
        return r.status_code == 403 and r.json()["code"] == "registration-banned"

    await eventually(lambda: banned(body(id_number=number)), what="identity ban")
    r = await http.post("/v1/accounts", json=body(phone_number=mobile))
    assert r.status_code == 403 and r.json()["until"] > "2028"
    # the same name (normalised) from another identity is refused ...
    async def same_name_refused() -> bool:
        r = await http.post("/v1/accounts", json=body(name=name.upper() + " "))
        return r.status_code == 409 and r.json()["code"] == "similar-to-closed-account"

    await eventually(same_name_refused, what="closed name in the index")
    # ... and a similar one (same pinyin) is held for review
    held = await register(http, body(name=name.replace("站", "战")))
    assert held["status"] == "held_for_review"
    r = await http.get(f"/v1/accounts/{held['account_id']}/history")
    held_event = r.json()["events"][0]["data"]
    assert held_event["findings"][0]["matched"] == name and "A8.3" in held_event["legal_basis"]


async def test_A10_1_limit_per_identity_with_extra_verification_and_closed_accounts_count(
        http):
    number = resident_id()
    first = await register(http, body(id_number=number))
    assert first["extra_verification_required"] is False
    second = await register(http, body(id_number=number))
    assert second["extra_verification_required"] is True
    await eventually(lambda: _has(http, second["account_id"],
                                  "registration.ExtraVerificationRequired"),
                     what="ExtraVerificationRequired")
    third = await register(http, body(id_number=number), expect=409)
    assert third["code"] == "account-limit-reached" and "A10.1" in third["legal_basis"]
    await status_is(http, first["account_id"], "pending_verification")
    r = await http.post(f"/v1/accounts/{first['account_id']}/deregistration", json={})
    assert r.status_code == 202
    await status_is(http, first["account_id"], "deregistered")
    again = await register(http, body(id_number=number), expect=409)  # deregistered counts
    assert again["code"] == "account-limit-reached"


async def test_A10_2_inactive_for_six_months_is_suspended_and_activity_reinstates(
        system, http, ops):
    account_id = await active_account(system, http)
    now = datetime.now(UTC)
    assert (await sweep(ops, now + timedelta(days=150), account_id))["suspended"] == []
    result = await sweep(ops, now + timedelta(days=200), account_id)
    assert result["suspended"] == [account_id]
    v = await status_is(http, account_id, "suspended")
    assert v["suspensions"] == {"inactivity": "inactivity"}
    r = await http.post(f"/v1/accounts/{account_id}/activity", json={"kind": "login"})
    assert r.status_code == 202 and r.json()["status"] == "active"
    await status_is(http, account_id, "active")


async def test_A10_3_burst_from_one_device_is_held_then_refused_with_an_event(http, ops):
    device = uuid.uuid4().hex
    answers = [await http.post("/v1/accounts", json=body(device=device)) for _ in range(8)]
    codes = [r.json().get("status") if r.status_code == 202 else r.json()["code"]
             for r in answers]
    assert codes[:3] == ["pending_verification"] * 3
    assert codes[3:7] == ["held_for_review"] * 4
    assert codes[7] == "velocity-limit" and answers[7].status_code == 429
    refused_id = answers[7].json()["account_id"]
    await eventually(lambda: _has(http, refused_id, "registration.AccountRegistrationRefused"),
                     what="refusal event")
    v = await status_is(http, refused_id, "refused")
    assert v["status"] == "refused"
    held_id = answers[3].json()["account_id"]
    await status_is(http, held_id, "held_for_review")
    r = await ops.post(f"/v1/accounts/{held_id}/review", json={"approve": True, "note": "ok"})
    assert r.status_code == 202, r.text
    await status_is(http, held_id, "pending_verification")


async def test_A11_2_completed_transfer_changes_owner_and_unapplied_transfer_suspends(
        system, http):
    account_id = await active_account(system, http)
    new_number, new_phone = resident_id(), phone()
    who = SEALER.blind("id_number", new_number)  # the subject the values are sealed for
    owner = {"id_kind": "resident_id", "id_number_sealed": SEALER.seal(new_number, subject=who),
             "id_number_blind": SEALER.blind("id_number", new_number),
             "id_number_masked": new_number[:6] + "********" + new_number[-4:],
             "holder_name_sealed": SEALER.seal("王五", subject=who), "holder_name_masked": "王*",
             "phone_sealed": SEALER.seal(new_phone, subject=who),
             "phone_blind": SEALER.blind("phone", "+86" + new_phone),
             "phone_masked": new_phone[:3] + "****" + new_phone[-4:]}
    await system.publish("transfer", "transfer.TransferCompleted", {
        "transfer_id": "t-1", "account_id": account_id, "new_owner": owner,
        "legal_basis": ["A11.2"]}, subject=account_id)
    await until(http, account_id, "new owner",
                lambda v: v["owner"]["holder_name_masked"] == "王*")
    page = (await http.post("/v1/accounts/search", json={"owner": new_number})).json()
    assert [a["account_id"] for a in page["items"]] == [account_id]
    await system.publish("transfer", "transfer.UnappliedTransferDetected", {
        "account_id": account_id, "evidence": ["login from new device cluster"],
        "legal_basis": ["A11.2"]}, subject=account_id)
    v = await status_is(http, account_id, "suspended")
    assert v["suspensions"] == {"unapplied_transfer": "unapplied_transfer"}


async def test_A11_3_operator_requests_suspension_and_deregistration(system, http):
    account_id = await active_account(system, http)
    r = await http.post(f"/v1/accounts/{account_id}/suspension", json={"note": "holiday"})
    assert r.status_code == 202 and r.json()["status"] == "suspended"
    r = await http.post(f"/v1/accounts/{account_id}/suspension", json={})
    assert r.status_code == 409 and r.json()["code"] == "illegal-transition"
    r = await http.post(f"/v1/accounts/{account_id}/reinstatement", json={})
    assert r.json()["status"] == "active"
    r = await http.post(f"/v1/accounts/{account_id}/deregistration", json={})
    assert r.status_code == 202 and r.json()["status"] == "deregistered"
    await status_is(http, account_id, "deregistered")
    r = await http.post(f"/v1/accounts/{account_id}/activity", json={})
    assert r.status_code == 409 and r.json()["code"] == "illegal-transition"


async def test_A13_1_credit_level_decides_interactive_functions(system, http):
    account_id = await active_account(system, http)
    await system.publish("credit", "credit.CreditLevelChanged", {
        "account_id": account_id, "level": "D", "previous_level": "B", "score": 40,
        "reasons": ["rumor strikes"], "legal_basis": ["A13.1"]}, subject=account_id)
    v = await until(http, account_id, "level D", lambda v: v["credit_level"] == "D")
    caps = v["capabilities"]
    assert not caps["comment"] and not caps["message"] and not caps["advertise"]
    assert caps["publish"] and v["status"] == "restricted"
    await system.publish("credit", "credit.CreditLevelChanged", {
        "account_id": account_id, "level": "A", "previous_level": "D", "score": 95,
        "reasons": ["recovered"], "legal_basis": ["A13.1"]}, subject=account_id)
    v = await until(http, account_id, "level A", lambda v: v["credit_level"] == "A")
    assert all(v["capabilities"].values()) and v["status"] == "active"


async def test_A17_2_function_limits_are_visible_and_lifted(system, http):
    account_id = await active_account(system, http)
    mid = await measure(system, account_id, "function_limit", capabilities=["comment", "message"])
    v = await status_is(http, account_id, "restricted")
    assert v["restrictions"] == {mid: ["comment", "message"]}
    assert not v["capabilities"]["comment"] and v["capabilities"]["publish"]
    await system.publish("enforcement", "enforcement.MeasureLifted", {
        "measure_id": mid, "account_id": account_id, "reason": "appeal upheld",
        "legal_basis": ["A20.2"]}, subject=account_id)
    v = await status_is(http, account_id, "active")
    assert all(v["capabilities"].values())


async def test_A19_2_each_measure_has_its_effect_on_the_account(system, http):
    account_id = await active_account(system, http)
    await measure(system, account_id, "warning")
    await eventually(lambda: _has(http, account_id, "registration.AccountWarned"),
                     what="warning recorded")
    await measure(system, account_id, "stop_ads")
    v = await until(http, account_id, "ads stopped", lambda v: not v["capabilities"]["advertise"])
    assert v["status"] == "restricted"
    mid = await measure(system, account_id, "suspend_updates")
    v = await status_is(http, account_id, "suspended")
    assert v["suspensions"] == {mid: "enforcement"}
    await measure(system, account_id, "blacklist")
    v = await status_is(http, account_id, "closed")
    assert v["closed_reason"] == "blacklist"
    assert list(v["bans"].values())[0]["severity"] == "permanent"
    events = (await http.get(f"/v1/accounts/{account_id}/history")).json()["events"]
    closed = next(e for e in events if e["type"] == "registration.AccountClosed")
    assert "A19.2" in closed["data"]["legal_basis"] and closed["causation_id"]
    assert closed["data"]["evidence_event_ids"] == [closed["causation_id"]]


async def test_A19_2_a_timed_function_limit_ends_with_the_sweep(system, http, ops):
    account_id = await active_account(system, http)
    ends = datetime.now(UTC) + timedelta(days=7)
    await measure(system, account_id, "function_limit", capabilities=["comment", "message"],
                  ends_at=ends.isoformat())
    v = await until(http, account_id, "comments limited",
                    lambda v: not v["capabilities"]["comment"])
    assert v["status"] == "restricted" and v["capabilities"]["publish"]
    early = await sweep(ops, ends - timedelta(hours=1), account_id)
    assert account_id not in early["lifted"]
    late = await sweep(ops, ends + timedelta(hours=1), account_id)
    assert late["lifted"] == [account_id]
    v = await status_is(http, account_id, "active")
    assert v["capabilities"]["comment"] and v["capabilities"]["message"]


async def test_A10_2_A19_history_is_read_in_pages_completely_and_in_order(http):
    """A stream longer than a page comes back whole and in version order across pages,
    following ``next`` (and the ``Link: rel="next"`` header)."""
    account_id = (await register(http, body()))["account_id"]
    for _ in range(12):
        r = await http.post(f"/v1/accounts/{account_id}/activity", json={"kind": "login"})
        assert r.status_code == 202, r.text
    whole = (await http.get(f"/v1/accounts/{account_id}/history",
                            params={"limit": 1000})).json()
    assert whole["next"] is None and len(whole["events"]) >= 13
    paged, after, pages = [], 0, 0
    while True:
        r = await http.get(f"/v1/accounts/{account_id}/history",
                           params={"after": after, "limit": 5})
        assert r.status_code == 200, r.text
        page = r.json()
        pages += 1
        assert len(page["events"]) <= 5
        paged += page["events"]
        if page["next"] is None:
            assert "link" not in r.headers
            break
        assert page["next"] == page["events"][-1]["stream_version"]
        assert r.headers["link"] == (f'</v1/accounts/{account_id}/history?after={page["next"]}'
                                     f'&limit=5>; rel="next"')
        after = page["next"]
    assert pages == -(-len(whole["events"]) // 5)
    assert [e["stream_version"] for e in paged] == list(range(1, len(whole["events"]) + 1))
    assert paged == whole["events"]


@pytest.mark.parametrize("params", [{"after": "abc"}, {"after": -1}, {"limit": 0},
                                    {"limit": 100_000}, {"after": "1.5"}])
async def test_A10_2_A19_a_bad_history_cursor_is_a_422_problem(http, params):
    account_id = (await register(http, body()))["account_id"]
    r = await http.get(f"/v1/accounts/{account_id}/history", params=params)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "validation-error"
