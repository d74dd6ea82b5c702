"""Verification obligations end to end: the whole system on PostgreSQL and Kafka, accounts
registered through the registration API, effects observed on both services' APIs.

A5 news permits, A8.1 real names, A8.2 profiles and protected names, A9.1 qualifications,
A9.2 badge and disclosure, A9.3 re-inspections. Each test uses fresh identities and names.
"""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from stdnum.cn import ric, uscc

from tests.conftest import eventually
from tests.registration_support import phone as fresh_phone

pytestmark = pytest.mark.kafka


def resident_id() -> str:
    # Independent draws: n % 30, n % 12, n % 28 and n % 1000 of one number repeat every
    # 21,000 values, so two tests of one run shared an identity (and its bans and limits).
    n = uuid.uuid4().int
    n, year = divmod(n, 30)
    n, month = divmod(n, 12)
    n, day = divmod(n, 28)
    body = f"110101{1970 + year}{1 + month:02d}{1 + day:02d}{n % 1000:03d}"
    return body + ric.calc_check_digit(body + "0")


def social_credit_code() -> str:
    n = uuid.uuid4().int
    body = f"91440101{n % 10**9:09d}"
    return body + uscc.calc_check_digit(body)


def phone(ending: str | None = None) -> str:
    """A fresh number with no meaning to the local provider, or ending with ``ending``
    (its conventions: 0000 borrowed, 9999 unknown, 1111 new number)."""
    digits = fresh_phone()
    return digits[:-len(ending)] + ending if ending else digits


def tag() -> str:
    return uuid.uuid4().hex[:6]


def registration(*, entity_type="natural_person", category="technology", name=None,
                 holder="张三", id_number=None, description="分享日常的科技见闻",
                 phone_number=None) -> dict:
    org = entity_type != "natural_person"
    body = {
        "entity_type": entity_type,
        "identity": {"id_number": id_number or (social_credit_code() if org else resident_id()),
                     "name": holder if not org or holder != "张三" else "广州某某科技有限公司",
                     "phone": phone_number or phone(),
                     "representative_name": "李四" if org else None,
                     "representative_id_number": resident_id() if org else None},
        "profile": {"name": name or f"小站{tag()}", "description": description,
                    "avatar": {"url": "https://cdn.example.com/a.png", "sha256": "ab" * 32}},
        "category": category, "province": "440000", "operations_province": "440000",
        "contact": "13800138000", "agreement_version": "2025-01",
        "device_fingerprint": uuid.uuid4().hex,
        "network": f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.1",
    }
    if org:
        body["organization"] = {"business_name": body["identity"]["name"],
                                "registered_address": "广州市天河区某路1号",
                                "primary_business": "信息技术服务",
                                "business_scope": "软件开发；信息技术咨询"}
    return body


async def register(system, body: dict) -> str:
    async with system.client("registration", "platform") as http:
        r = await http.post("/v1/accounts", json=body,
                            headers={"Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 202, r.text
    return r.json()["account_id"]


async def account_status(system, account_id: str, status: str) -> dict:
    """Wait until registration shows the account in ``status``; its document."""
    seen: dict = {}

    async def check() -> bool:
        async with system.client("registration", "platform") as http:
            r = await http.get(f"/v1/accounts/{account_id}")
        if r.status_code == 200:
            seen.update(r.json())
        return seen.get("status") == status

    await eventually(check, timeout=30, what=f"account {account_id} {status} (last: "
                                             f"{seen.get('status')})")
    return seen


async def verification(system, account_id: str, predicate=lambda v: True) -> dict:
    seen: dict = {}

    async def check() -> bool:
        async with system.client("verification", "reviewer") as http:
            r = await http.get(f"/v1/accounts/{account_id}/verification")
        if r.status_code != 200:
            return False
        seen.clear()
        seen.update(r.json())
        return predicate(seen)

    await eventually(check, timeout=30, what=f"verification of {account_id}")
    return seen


def material(kind="professional", *, days=365, number=None) -> dict:
    now = datetime.now(UTC)
    kind_name = "执业医师资格证" if kind == "professional" else "互联网新闻信息服务许可证"
    return {"kind": kind, "type": kind_name,
            "number": number or f"Q{tag()}", "issuer": "广东省卫生健康委员会",
            "valid_from": (now - timedelta(days=10)).isoformat(),
            "valid_until": (now + timedelta(days=days)).isoformat(),
            "document_base64": base64.b64encode(b"%PDF-1.4 qualification").decode(),
            "document_content_type": "application/pdf"}


async def submit(system, account_id: str, body: dict) -> str:
    async with system.client("verification", "platform") as http:
        r = await http.post(f"/v1/accounts/{account_id}/qualifications", json=body,
                            headers={"Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 202, r.text
    return r.json()["case_id"]


async def decide(system, case_id: str, decision: str) -> dict:
    async with system.client("verification", "reviewer") as http:
        pending = (await http.get("/v1/reviews", params={"status": "pending",
                                                          "limit": 500})).json()
        r = await http.post(f"/v1/reviews/{case_id}/decision",
                            json={"decision": decision, "note": "checked"})
    assert r.status_code == 200, r.text
    return {"queue": pending, "answer": r.json()}


async def wait_in_queue(system, case_id: str) -> dict:
    found: dict = {}

    async def check() -> bool:
        async with system.client("verification", "reviewer") as http:
            cursor = ""
            while True:
                page = (await http.get("/v1/reviews", params={"status": "pending",
                                                               "cursor": cursor})).json()
                for item in page["items"]:
                    if item["case_id"] == case_id:
                        found.update(item)
                        return True
                if not page["next_cursor"]:
                    return False
                cursor = page["next_cursor"]

    await eventually(check, what=f"case {case_id} in the reviewer queue")
    return found


# -- A8.1 ---------------------------------------------------------------------------------
async def test_A8_1_verified_identity_activates_the_account(system):
    account_id = await register(system, registration())
    await account_status(system, account_id, "active")
    v = await verification(system, account_id)
    assert v["identity"]["status"] == "verified"
    assert set(v["identity"]["factors"]) >= {"id_name", "phone_owner"}
    assert v["identity"]["level"] in ("two_factor", "three_factor")


async def test_A8_1_borrowed_identity_gets_no_service(system):
    account_id = await register(system, registration(holder="冒用王五"))
    await account_status(system, account_id, "closed")
    v = await verification(system, account_id)
    assert v["identity"]["status"] == "failed"
    assert "id-name-mismatch" in v["identity"]["reasons"]
    async with system.client("verification") as http:
        assert (await http.get(f"/v1/public/accounts/{account_id}")).status_code == 404


async def test_A8_1_phone_of_someone_else_is_a_false_identity(system):
    account_id = await register(system, registration(phone_number=phone("0000")))
    await account_status(system, account_id, "closed")
    v = await verification(system, account_id)
    assert "phone-not-owned" in v["identity"]["reasons"]


async def test_A8_1_invalid_numbers_are_refused_with_a_clear_error(system):
    body = registration(id_number="11010519491231002Y")  # the GB 11643 example, bad check
    async with system.client("registration", "platform") as http:
        r = await http.post("/v1/accounts", json=body)
    assert r.status_code == 422 and r.json()["code"] == "invalid-resident-id"


async def test_A8_1_organization_is_verified_by_the_four_factor_check(system):
    account_id = await register(system, registration(entity_type="legal_person"))
    await account_status(system, account_id, "active")
    v = await verification(system, account_id)
    assert "business_registration" in v["identity"]["factors"]


# -- A8.2 ---------------------------------------------------------------------------------
async def add_protected(system, name: str, *, kind="enterprise", holder=None) -> str:
    async with system.client("verification", "operator") as http:
        r = await http.post("/v1/protected-names",
                            json={"name": name, "kind": kind, "holder_id_number": holder,
                                  "aliases": []},
                            headers={"Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 201, r.text
    return r.json()["protected_id"]


async def test_A8_2_protected_name_hit_by_non_holder_suspends_and_asks_correction(system):
    holder_uscc = social_credit_code()
    protected = f"瀚海{tag()}集团"
    await add_protected(system, protected, holder=holder_uscc)
    # a natural person using the name (with a disguise: full-width, inserted punctuation)
    disguised = protected[:2] + "·" + protected[2:]
    account_id = await register(system, registration(name=disguised))
    acc = await account_status(system, account_id, "suspended")
    assert acc["correction_deadline"]
    v = await verification(system, account_id, lambda v: v["profile"]["status"] == "mismatch")
    codes = {f["code"] for f in v["profile"]["findings"]}
    assert codes & {"protected-name-similar", "protected-name-contained"}
    # the correction: a new name passes, the change is applied and the account activated
    async with system.client("registration", "platform") as http:
        r = await http.patch(f"/v1/accounts/{account_id}/profile",
                             json={"name": f"小站{tag()}"})
    assert r.status_code == 202, r.text
    await account_status(system, account_id, "active")
    # the holder itself may use its name
    holder_account = await register(system, registration(
        entity_type="legal_person", id_number=holder_uscc, name=protected))
    await account_status(system, holder_account, "active")


async def test_A8_2_strict_name_rules_and_contact_details(system):
    national = await register(system, registration(name=f"中国健康{tag()}"))
    contact = await register(system, registration(description="合作请加微信 abc_12345 或扫码"))
    for account_id, code in ((national, "reserved-national-term"), (contact, "contact-details")):
        await account_status(system, account_id, "suspended")
        v = await verification(system, account_id)
        assert code in {f["code"] for f in v["profile"]["findings"]}


async def test_A8_2_failed_profile_change_keeps_the_old_profile(system):
    account_id = await register(system, registration())
    await account_status(system, account_id, "active")
    async with system.client("registration", "platform") as http:
        r = await http.patch(f"/v1/accounts/{account_id}/profile",
                             json={"name": f"朝阳区公安局{tag()}"})
    assert r.status_code == 202

    async def rejected() -> bool:
        async with system.client("registration", "platform") as http:
            h = (await http.get(f"/v1/accounts/{account_id}/history")).json()
        return any(e["type"] == "registration.ProfileChangeRejected" for e in h["events"])

    await eventually(rejected, what="the change rejected")
    acc = await account_status(system, account_id, "active")
    assert "公安局" not in acc["profile"]["name"]


# -- A9.1 ---------------------------------------------------------------------------------
async def test_A9_1_professional_field_needs_an_approved_qualification(system):
    account_id = await register(system, registration(category="health"))
    v = await verification(system, account_id,
                           lambda v: v["status"] == "awaiting_qualification")
    assert v["qualifications"]["missing"] == ["professional"]
    await account_status(system, account_id, "pending_verification")

    rejected = await submit(system, account_id, material())
    assert (await wait_in_queue(system, rejected))["needs"]
    await decide(system, rejected, "reject")
    await account_status(system, account_id, "pending_verification")

    case_id = await submit(system, account_id, material(days=30))
    await wait_in_queue(system, case_id)
    answer = (await decide(system, case_id, "approve"))["answer"]
    assert answer["account_verified"] is True
    await account_status(system, account_id, "active")
    async with system.client("verification") as http:
        public = (await http.get(f"/v1/public/accounts/{account_id}")).json()
    assert public["qualification_labels"] == ["专业资质：执业医师资格证"]

    # expiry is tracked: the sweep at a later clock expires it and asks again
    later = (datetime.now(UTC) + timedelta(days=31)).isoformat()
    async with system.client("verification", "operator") as http:
        r = await http.post("/v1/operations/sweep",
                            json={"now": later, "account_ids": [account_id], "fraction": 0})
    assert r.status_code == 200, r.text
    assert r.json()["expired"] == {account_id: [case_id]}
    v = await verification(system, account_id)
    assert v["qualifications"]["missing"] == ["professional"]
    assert v["badge"]["active"] is False and v["verified"] is False


# -- A5 -----------------------------------------------------------------------------------
async def test_A5_news_account_needs_a_permit_shown_in_its_disclosure(system):
    account_id = await register(system, registration(entity_type="legal_person",
                                                     category="news",
                                                     name=f"湾区新闻{tag()}"))
    v = await verification(system, account_id,
                           lambda v: v["status"] == "awaiting_qualification")
    assert v["qualifications"]["missing"] == ["news_permit"]
    await account_status(system, account_id, "pending_verification")
    permit = f"44120{tag()}"
    case_id = await submit(system, account_id, material("news_permit", number=permit))
    await wait_in_queue(system, case_id)
    await decide(system, case_id, "approve")
    await account_status(system, account_id, "active")
    async with system.client("verification") as http:
        public = (await http.get(f"/v1/public/accounts/{account_id}")).json()
    assert public["news_permit_number"] == permit and public["badge"] == "media"


# -- A9.2 ---------------------------------------------------------------------------------
async def test_A9_2_badge_and_disclosure_of_organizations_and_persons(system):
    org_body = registration(entity_type="legal_person")
    org = await register(system, org_body)
    public_body = {**registration(entity_type="legal_person"), "contact": "020-12345678",
                   "contact_public": True}
    public_org = await register(system, public_body)
    person_body = registration(holder="赵六")
    person = await register(system, {**person_body, "contact_public": True})
    for account_id in (org, public_org, person):
        await account_status(system, account_id, "active")
    async with system.client("verification") as http:  # no token: public
        o = (await http.get(f"/v1/public/accounts/{org}")).json()
        po = (await http.get(f"/v1/public/accounts/{public_org}")).json()
        r = await http.get(f"/v1/public/accounts/{person}")
    assert o["badge"] == "enterprise" and o["category"] == "technology"
    assert o["organization"] == {  # the contact (maybe a personal mobile) only if declared
        "business_name": org_body["organization"]["business_name"],
        "registered_address": org_body["organization"]["registered_address"],
        "unified_social_credit_code": org_body["identity"]["id_number"],
        "contact": None}
    assert po["organization"]["contact"] == "020-12345678"
    p = r.json()
    assert p["badge"] == "personal" and "organization" not in p
    # no identity number (region and last four give it back with a birthday), no phone
    assert p["operator"] == {"name": "赵*"}
    number, mobile = person_body["identity"]["id_number"], person_body["identity"]["phone"]
    for shown in (number, number[-4:] + '"', "*" + number[-4:], mobile, "****" + mobile[-4:],
                  "****" + person_body["contact"][-4:], '"id_number"', '"phone"'):
        assert shown not in r.text, shown


async def test_A9_2_no_public_page_before_verification(system):
    account_id = await register(system, registration(category="health"))
    await verification(system, account_id, lambda v: v["status"] == "awaiting_qualification")
    async with system.client("verification") as http:
        r = await http.get(f"/v1/public/accounts/{account_id}")
    assert r.status_code == 404, r.text
    assert r.headers["content-type"].startswith("application/problem+json")


# -- A9.3 ---------------------------------------------------------------------------------
async def test_A9_3_reinspection_finds_a_name_protected_later(system):
    name = f"星河{tag()}传媒"
    account_id = await register(system, registration(name=name))
    clean = await register(system, registration())
    await account_status(system, account_id, "active")
    await account_status(system, clean, "active")
    await add_protected(system, name, kind="enterprise", holder=social_credit_code())
    later = (datetime.now(UTC) + timedelta(days=181)).isoformat()  # periodic: due
    async with system.client("verification", "operator") as http:
        r = await http.post("/v1/operations/sweep", json={
            "now": later, "fraction": 0, "account_ids": [account_id, clean]})
        assert r.status_code == 200, r.text
        periodic = r.json()["reinspected"]["periodic"]
        sample = await http.post("/v1/reinspections/sample", json={"fraction": 1.0, "seed": 7})
    assert periodic == {account_id: "failed", clean: "passed"}
    assert sample.status_code == 200 and sample.json()["reinspected"]["sample"].get(clean) \
        == "passed"
    await account_status(system, account_id, "suspended")
    v = await verification(system, account_id)
    assert v["badge"]["active"] is False
    assert "failed" in v["reinspections"].values()


async def test_A9_1_a_document_is_what_its_bytes_say_and_is_served_as_an_attachment(system):
    """Issue 10: HTML declared as PDF was kept and served back as ``application/pdf``,
    rendered inline by a reviewer's browser. Now it is refused (nothing kept, no case), and
    a genuine document comes back as an attachment the browser may not sniff."""
    account_id = await register(system, registration(category="health"))
    await verification(system, account_id, lambda v: v["status"] == "awaiting_qualification")
    forged = {**material(), "document_base64": base64.b64encode(
        b"<html><script>alert(document.cookie)</script></html>").decode()}
    async with system.client("verification", "platform") as http:
        r = await http.post(f"/v1/accounts/{account_id}/qualifications", json=forged,
                            headers={"Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 422 and r.json()["code"] == "content-type-mismatch", r.text
    assert r.json()["declared"] == "application/pdf" and r.json()["sniffed"] is None
    v = await verification(system, account_id)
    assert v["status"] == "awaiting_qualification" and not v.get("cases"), v

    case_id = await submit(system, account_id, material())
    await wait_in_queue(system, case_id)
    async with system.client("verification", "reviewer") as http:
        r = await http.get(f"/v1/reviews/{case_id}/document")
    assert r.status_code == 200 and r.content.startswith(b"%PDF-")
    assert r.headers["content-type"] == "application/pdf"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["content-disposition"] == f'attachment; filename="{case_id}.pdf"'
