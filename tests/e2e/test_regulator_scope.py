"""A3: a regulator sees only its province, on every read of every service, whatever other
roles its token holds; the national office (``000000``) sees every province.

The reads are taken from the services' route tables (libs.runtime.rolematrix): every
route a regulator may call is either driven here through an account of each province, or
named below with the test that drives it, so a new regulator route fails this module
until it is covered. Another province's record is a 404 (its existence is not disclosed);
a list asked for another province is a 403 ``province-out-of-scope``.
"""

from __future__ import annotations

import uuid

import pytest

from libs.runtime.pii import Sealer
from libs.runtime.rolematrix import matrix
from libs.runtime.settings import DEV_PII_KEY
from ops.rolematrix import apps
from tests.conftest import eventually
from tests.registration_support import body, resident_id

pytestmark = pytest.mark.kafka

SCOPED = [a for a in matrix(apps()) if a.roles and "regulator" in a.roles]
ACCOUNT_ROUTES = [a for a in SCOPED if a.method == "GET" and a.path.count("{") == 1
                  and "{account_id}" in a.path]
# Lists driven here for every token below: another province asked is 403, and what is
# listed is of the regulator's province only.
LISTS = {
    "registration": ["/v1/accounts"],
    "transfer": ["/v1/transfers"],
    "enforcement": ["/v1/violations", "/v1/cases", "/v1/measures", "/v1/blacklists"],
}
DRIVEN_HERE = {("registration", "/v1/accounts/search"),
               ("credit", "/v1/identities/{identity_blind}/credit"),
               ("enforcement", "/v1/filings"), ("enforcement", "/v1/reports/enforcement")}
DRIVEN_HERE |= {(service, path) for service, paths in LISTS.items() for path in paths}
# Driven elsewhere, or holding no province's data.
ELSEWHERE = {
    ("transfer", "/v1/transfers/{transfer_id}"):
        "test_transfer_obligations::test_A11_2_list_of_transfers_is_paged_and_scoped_to_a_"
        "regulators_province (404 for another province's application)",
    ("enforcement", "/v1/policies"): "the measure policy: no province's data (read recorded)",
    ("enforcement", "/v1/policies/current"): "the same",
}
SEALER = Sealer(DEV_PII_KEY)
GD, BJ = "440000", "110000"


def test_A3_every_regulator_route_is_covered():
    covered = {(a.service, a.path) for a in ACCOUNT_ROUTES} | DRIVEN_HERE | set(ELSEWHERE)
    missing = {(a.service, a.path) for a in SCOPED} - covered
    assert not missing, f"regulator routes with no scope scenario: {sorted(missing)}"


async def _registered(system, province: str) -> tuple[str, str]:
    number = resident_id()
    async with system.client("registration", "platform") as http:
        r = await http.post("/v1/accounts", json=body(province=province, id_number=number,
                                                      category="technology"),
                            headers={"Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 202, r.text
    return r.json()["account_id"], number


async def _everywhere(system, account_id: str) -> None:
    """Until every service with an account read knows the account (staff's view)."""
    for a in ACCOUNT_ROUTES:
        async def known(a=a) -> bool:
            async with system.client(a.service, "operator") as http:
                r = await http.get(a.path.replace("{account_id}", account_id))
            return r.status_code == 200

        await eventually(known, timeout=60, what=f"{a.service} {a.path} for {account_id}")


@pytest.fixture(scope="module")
async def accounts(system):
    gd, gd_number = await _registered(system, GD)
    bj, bj_number = await _registered(system, BJ)
    for account_id in (gd, bj):
        await _everywhere(system, account_id)
    return {"gd": gd, "bj": bj, "gd_number": gd_number, "bj_number": bj_number}


TOKENS = {  # (roles, province) -> the provinces it may read
    "provincial": (("regulator",), BJ),
    "regulator and operator": (("regulator", "operator"), BJ),
    "regulator and platform": (("platform", "regulator"), BJ),
}


@pytest.mark.parametrize("a", ACCOUNT_ROUTES, ids=lambda a: f"{a.service} {a.path}")
@pytest.mark.parametrize("token", list(TOKENS))
async def test_A3_a_regulator_reads_accounts_of_its_province_only(system, accounts, a, token):
    roles, province = TOKENS[token]
    async with system.client(a.service, *roles, province=province) as http:
        own = await http.get(a.path.replace("{account_id}", accounts["bj"]))
        other = await http.get(a.path.replace("{account_id}", accounts["gd"]))
    assert own.status_code == 200, own.text
    assert other.status_code == 404, other.text
    assert other.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("a", ACCOUNT_ROUTES, ids=lambda a: f"{a.service} {a.path}")
async def test_A3_the_national_office_reads_every_province(system, accounts, a):
    async with system.client(a.service, "regulator", province="000000") as http:
        for account_id in (accounts["gd"], accounts["bj"]):
            r = await http.get(a.path.replace("{account_id}", account_id))
            assert r.status_code == 200, r.text


@pytest.mark.parametrize("token", list(TOKENS))
async def test_A3_owner_searches_are_limited_to_the_province(system, accounts,
                                                                        token):
    roles, province = TOKENS[token]
    async with system.client("registration", *roles, province=province) as http:
        mine = await http.post("/v1/accounts/search", json={"owner": accounts["bj_number"]})
        theirs = await http.post("/v1/accounts/search", json={"owner": accounts["gd_number"]})
        asked = await http.post("/v1/accounts/search", json={"province": GD})
    assert [i["account_id"] for i in mine.json()["items"]] == [accounts["bj"]], mine.text
    assert theirs.json()["items"] == [], theirs.text
    assert asked.status_code == 403 and asked.json()["code"] == "province-out-of-scope"


@pytest.mark.parametrize("token", list(TOKENS))
async def test_A3_an_identitys_credit_shows_only_the_provinces_accounts(system, accounts,
                                                                       token):
    roles, province = TOKENS[token]
    gd_blind = SEALER.blind("id_number", accounts["gd_number"])
    bj_blind = SEALER.blind("id_number", accounts["bj_number"])
    async with system.client("credit", *roles, province=province) as http:
        own = await http.get(f"/v1/identities/{bj_blind}/credit")
        other = await http.get(f"/v1/identities/{gd_blind}/credit")
    assert own.status_code == 200 and list(own.json()["accounts"]) == [accounts["bj"]], own.text
    assert other.status_code == 404, other.text


@pytest.mark.parametrize("token", list(TOKENS))
async def test_A3_lists_refuse_another_province_and_list_only_the_own(system, accounts, token):
    roles, province = TOKENS[token]
    for service, paths in LISTS.items():
        async with system.client(service, *roles, province=province) as http:
            for path in paths:
                asked = await http.get(path, params={"province": GD})
                assert asked.status_code == 403, (path, asked.text)
                assert asked.json()["code"] == "province-out-of-scope"
                listed = await http.get(path, params={"limit": 500})
                assert listed.status_code == 200, (path, listed.text)
                assert {i.get("province") for i in listed.json()["items"]} <= {BJ}, path


@pytest.mark.parametrize("token", list(TOKENS))
async def test_A3_reports_and_filings_are_of_the_own_province(system, accounts, token):
    roles, province = TOKENS[token]
    async with system.client("enforcement", *roles, province=province) as http:
        for path in ("/v1/filings", "/v1/reports/enforcement"):
            asked = await http.get(path, params={"province": GD})
            assert asked.status_code == 403, (path, asked.text)
            assert asked.json()["code"] == "province-out-of-scope"
        filed = (await http.get("/v1/filings")).json()
        report = (await http.get("/v1/reports/enforcement")).json()
    assert filed["province"] == BJ
    assert accounts["gd"] not in {a["account_id"] for a in filed["accounts"]}
    assert set(report["by_province"]) <= {BJ}
