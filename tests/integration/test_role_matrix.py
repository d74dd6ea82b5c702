"""Who may call what, over every route of every service, generated from the apps' route
tables (libs.runtime.rolematrix), not from a hand-written list: a route added tomorrow is
in the matrix the day it is written.

For each route: 401 problem+json without a token; 403 problem+json for each role it does
not admit; a token holding an admitted role and a refused one passes the role check;
a regulator token with no province, or one that is not a GB/T 2260 province-level code,
is 401 at decoding (ADR 0031), on every route, public ones aside.

The five apps run in process (ASGI) over migrated SQLite databases, without their
lifespans: no relay, no consumers, only the routes. Requests carry no body: an admitted
one ends in the handler or in validation (2xx, 404, 422), never in 401 or 403.
"""

from __future__ import annotations

import asyncio
import importlib
import re

import httpx
import pytest

from libs.events.migrate import upgrade
from libs.events.topics import SERVICES
from libs.runtime.auth import ROLES, issue_token
from libs.runtime.rolematrix import RouteAccess, matrix
from libs.runtime.settings import DEV_AUTH_SECRET
from ops.rolematrix import apps

ROUTES = matrix(apps())
GUARDED = [a for a in ROUTES if not a.public]


def _id(a: RouteAccess) -> str:
    return f"{a.service} {a.method} {a.path}"


def _token(roles: list[str], province: str | None = None) -> str:
    return issue_token(DEV_AUTH_SECRET, subject="matrix", roles=roles, province=province)


def _raw_token(claims: dict) -> str:
    """A token issue_token would refuse to make (a regulator without a valid province)."""
    import jwt

    from libs.runtime.auth import ALGORITHM, ISSUER
    return jwt.encode({"sub": "matrix", "iss": ISSUER, "exp": 4102444800, **claims},
                      DEV_AUTH_SECRET, algorithm=ALGORITHM)


@pytest.fixture(scope="module")
async def clients(tmp_path_factory):
    out, runtimes = {}, []
    base = tmp_path_factory.mktemp("matrix")
    for service in SERVICES:
        boot = importlib.import_module(f"services.{service}.bootstrap")
        settings = importlib.import_module(f"services.{service}.settings")
        app = importlib.import_module(f"services.{service}.main").app
        url = f"sqlite+aiosqlite:///{base}/{service}.db"
        await asyncio.to_thread(upgrade, url, boot.MIGRATIONS)
        runtime = boot.bootstrap(settings.Settings(database_url=url))
        app.state.runtime = runtime
        runtimes.append((app, runtime))
        out[service] = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
            base_url=f"http://{service}")
    try:
        yield out
    finally:
        for client in out.values():
            await client.aclose()
        for app, runtime in runtimes:
            await runtime.db.dispose()
            del app.state.runtime


async def call(clients, a: RouteAccess, token: str | None) -> httpx.Response:
    path = re.sub(r"\{[^}]+\}", "no-such-id", a.path)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await clients[a.service].request(a.method, path, headers=headers)


def _problem(r: httpx.Response, status: int, code: str | None = None) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.text
    if code:
        assert r.json()["code"] == code, r.text


def test_every_service_has_guarded_routes_in_the_matrix():
    assert {a.service for a in GUARDED} == set(SERVICES)


@pytest.mark.parametrize("a", GUARDED, ids=_id)
async def test_A3_no_token_is_401(clients, a):
    _problem(await call(clients, a, None), 401, "unauthenticated")


@pytest.mark.parametrize("a", GUARDED, ids=_id)
async def test_A3_each_role_not_admitted_is_403_and_each_admitted_one_passes(clients, a):
    for role in sorted(ROLES):
        province = "440000" if role == "regulator" else None
        r = await call(clients, a, _token([role], province))
        if role in a.roles:
            assert r.status_code not in (401, 403), (role, r.text)
        else:
            _problem(r, 403, "forbidden")


@pytest.mark.parametrize("a", GUARDED, ids=_id)
async def test_A3_mixed_role_tokens_pass_when_one_role_is_admitted(clients, a):
    refused = sorted(ROLES - a.roles)
    for admitted in sorted(a.roles):
        roles = [admitted, *refused]
        province = "440000" if "regulator" in roles else None
        r = await call(clients, a, _token(roles, province))
        assert r.status_code not in (401, 403), (roles, r.text)
    if refused:  # and a token of refused roles only stays refused, however many
        province = "440000" if "regulator" in refused else None
        _problem(await call(clients, a, _token(refused, province)), 403, "forbidden")


@pytest.mark.parametrize("a", GUARDED, ids=_id)
@pytest.mark.parametrize("claims", [
    {"roles": ["regulator"]},
    {"roles": ["regulator"], "province": None},
    {"roles": ["regulator"], "province": ""},
    {"roles": ["regulator"], "province": "440100"},  # a prefecture, not a province
    {"roles": ["regulator"], "province": "990000"},
    {"roles": ["regulator", "operator"]},  # another role does not excuse the province
], ids=lambda c: repr(c))
async def test_A3_regulator_tokens_without_a_valid_province_are_401(clients, a, claims):
    _problem(await call(clients, a, _raw_token(claims)), 401, "regulator-province-invalid")


@pytest.mark.parametrize("a", [a for a in GUARDED if "regulator" in a.roles], ids=_id)
async def test_A3_regulator_tokens_with_a_province_or_national_pass(clients, a):
    for province in ("440000", "110000", "000000"):
        r = await call(clients, a, _token(["regulator"], province))
        assert r.status_code not in (401, 403), (province, r.text)


def test_A3_regulators_only_read_and_every_read_is_scoped():
    """A regulator is admitted only to reads; every authenticated read (each GET, and the
    search) takes the one scoping dependency (libs.runtime.scope.read_scope), so a route
    that admits regulators tomorrow limits them to their province the day it does."""
    for a in GUARDED:
        read = a.method == "GET" or a.path == "/v1/accounts/search"
        if "regulator" in a.roles:
            assert read, f"{_id(a)} lets a regulator write"
        if read:
            assert a.scoped, f"{_id(a)} reads without read_scope"
