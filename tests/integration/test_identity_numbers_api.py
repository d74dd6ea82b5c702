"""A8.1 through registration's HTTP API: a malformed or unknown resident id is a 422 problem
with a stable code, never a 500; a genuine one is accepted whatever its county's history.

The registration app runs in process (ASGI) over a migrated SQLite database; the format
checks run before any database work, and a valid number goes on to the handler.
"""

from __future__ import annotations

import asyncio
from datetime import date

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stdnum.cn import ric

from libs.events.migrate import upgrade
from libs.runtime.auth import issue_token
from libs.runtime.settings import DEV_AUTH_SECRET
from services.registration.bootstrap import MIGRATIONS, bootstrap
from services.registration.main import app
from services.registration.settings import Settings
from tests.registration_support import body


def _with_check(body17: str) -> str:
    return body17 + ric.calc_check_digit(body17 + "0")


@pytest.fixture(scope="module")
async def http(tmp_path_factory):
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('reg')}/registration.db"
    await asyncio.to_thread(upgrade, url, MIGRATIONS)
    runtime = bootstrap(Settings(database_url=url))
    app.state.runtime = runtime  # no lifespan: no relay, no consumers, only the routes
    token = issue_token(DEV_AUTH_SECRET, subject="t", roles=["platform"])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                                 base_url="http://registration",
                                 headers={"Authorization": f"Bearer {token}"}) as client:
        yield client
    await runtime.db.dispose()
    del app.state.runtime


async def post(http, id_number: str) -> httpx.Response:
    return await http.post("/v1/accounts", json=body(id_number=id_number))


@pytest.mark.parametrize("number,code", [
    (_with_check("11030019900101001"), "invalid-resident-id"),  # KeyError in stdnum: was 500
    (_with_check("44059919900101001"), "invalid-resident-id"),
    ("1101051949123100٢X", "invalid-resident-id"),
    ("11010519491231002Y", "invalid-resident-id"),
])
async def test_A8_1_malformed_resident_id_is_a_422_with_a_stable_code(http, number, code):
    r = await post(http, number)
    assert r.status_code == 422, r.text
    problem = r.json()
    assert r.headers["content-type"].startswith("application/problem+json")
    assert problem["code"] == code and problem["field"] == "identity.id_number"


async def test_A8_1_county_created_after_birth_registers(http):
    # 通州区 110112 exists since 1997; a citizen born 1970 there holds 110112 1970… (ADR 0025)
    r = await post(http, _with_check("11011219700315002"))
    assert r.status_code == 202, r.text


async def test_A8_1_full_width_resident_id_registers_as_half_width(http):
    half = _with_check("11010519800101003")
    full = "".join(chr(ord(c) + 0xFEE0) for c in half)
    r = await post(http, full)
    assert r.status_code == 202, r.text


_regions = st.one_of(st.sampled_from(["110105", "110112", "110300", "440524", "440599",
                                      "990105", "000000", "810000"]),
                     st.from_regex(r"\A[0-9]{6}\Z"),
                     st.text(alphabet="0123456789XＸ０-٢ ", max_size=7))
_dates = st.one_of(st.dates(date(1880, 1, 1), date(2040, 12, 31)).map(
    lambda d: f"{d.year:04d}{d.month:02d}{d.day:02d}"),
                   st.from_regex(r"\A[0-9]{8}\Z"))


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(region=_regions, born=_dates, serial=st.from_regex(r"\A[0-9]{3}\Z"),
       check=st.sampled_from(list("0123456789XxＸ") + ["", "XX"]), right_check=st.booleans())
async def test_A8_1_property_no_resident_id_makes_registration_answer_500(
        http, region, born, serial, check, right_check):
    number = f"{region}{born}{serial}"
    if right_check and len(number) == 17 and number.isascii() and number.isdigit():
        check = ric.calc_check_digit(number + "0")
    r = await post(http, number + check)
    assert r.status_code in (202, 409, 422), (number + check, r.status_code, r.text)
    if r.status_code == 422:
        assert r.json()["code"] in ("invalid-resident-id", "validation-error")
