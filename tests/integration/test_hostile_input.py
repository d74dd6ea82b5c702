"""Hostile input at the edge of every service (ADR 0030), through each service's own app.

Every route of the five apps that takes a body is driven: an anonymous or unprivileged
body is refused before a byte of it is read; a body larger than its route's class allows
is answered 413 ``body-too-large`` whether it announces its length or arrives chunked; a
NUL anywhere is 422 ``nul-character``, never a 500 from PostgreSQL; names of invisible or
reordering characters are 422 ``invalid-characters``; a document is what its bytes say.
The apps run in process (ASGI, no lifespan: only the routes) over migrated databases (the
character tests over PostgreSQL), as the identity-number API tests run registration's.
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from libs.events.migrate import upgrade
from libs.events.topics import SERVICES
from libs.runtime.auth import ROLES, issue_token
from libs.runtime.limits import LIMIT_KEY, SETTING_OF_CLASS, fastapi_routing
from libs.runtime.settings import DEV_AUTH_SECRET
from tests.conftest import PG_PORT, create_database, drop_database
from tests.registration_support import body as registration_body

MB = 1024 * 1024
CHUNK = 256 * 1024
EVERY_ROLE = {"Authorization": "Bearer " + issue_token(
    DEV_AUTH_SECRET, subject="t", roles=sorted(ROLES), province="440000")}
NO_ROLE = {"Authorization": "Bearer " + issue_token(DEV_AUTH_SECRET, subject="t", roles=[])}
PROBLEM = "application/problem+json"


class Service:
    def __init__(self, name: str, app, runtime, http: httpx.AsyncClient) -> None:
        self.name, self.app, self.runtime, self.http = name, app, runtime, http

    def body_routes(self) -> list[tuple[str, str, Any]]:
        """(method, concrete path, route) of every route that takes a request body (the
        included routers' routes with their prefixes, as the OpenAPI document lists them)."""
        out = []
        for route in fastapi_routing.iter_route_contexts(self.app.routes):
            if getattr(route, "body_field", None) is not None:
                path = re.sub(r"\{[^}]+\}", "x", route.path)
                out.extend((m, path, route) for m in sorted(route.methods))
        assert out, f"{self.name} has no route with a body"
        return out

    def cap(self, route: Any) -> int:
        """The cap the route declares (its class in the OpenAPI operation) in the settings."""
        limit_class = (route.openapi_extra or {}).get(LIMIT_KEY, "default")
        return getattr(self.runtime.settings, SETTING_OF_CLASS[limit_class])


@asynccontextmanager
async def running(name: str, url: str) -> AsyncIterator[Service]:
    boot = importlib.import_module(f"services.{name}.bootstrap")
    settings = importlib.import_module(f"services.{name}.settings").Settings
    app = importlib.import_module(f"services.{name}.main").app
    await asyncio.to_thread(upgrade, url, boot.MIGRATIONS)
    runtime = boot.bootstrap(settings(database_url=url))
    # the app is the module's one instance: another test's runtime may be set on it
    previous = getattr(app.state, "runtime", None)
    app.state.runtime = runtime  # no lifespan: no relay, no consumers, only the routes
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{name}") as http:
            yield Service(name, app, runtime, http)
    finally:
        await runtime.db.dispose()
        if previous is None:
            del app.state.runtime
        else:
            app.state.runtime = previous


@pytest.fixture(scope="module", params=SERVICES)
async def service(request, tmp_path_factory) -> AsyncIterator[Service]:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp(request.param)}/{request.param}.db"
    async with running(request.param, url) as s:
        yield s


@pytest.fixture
async def on_postgres(postgres_server):
    """``await on_postgres(service)``: that service's app over a fresh PostgreSQL database."""
    names: list[str] = []
    async with AsyncExitStack() as stack:

        async def open_(name: str) -> Service:
            names.append(await create_database(postgres_server))
            url = f"postgresql+asyncpg://postgres@127.0.0.1:{PG_PORT}/{names[-1]}"
            return await stack.enter_async_context(running(name, url))

        yield open_
    for name in names:
        await drop_database(postgres_server, name)


class Stream:
    """A request body of ``total`` bytes, handed over in chunks; counts what was taken."""

    def __init__(self, total: int, fill: bytes = b" ", chunk: int = CHUNK) -> None:
        self.total, self.fill, self.chunk, self.taken = total, fill, chunk, 0

    async def __aiter__(self):
        while self.taken < self.total:
            n = min(self.chunk, self.total - self.taken)
            self.taken += n
            yield self.fill * n


async def events_in(service: Service) -> int:
    async with service.runtime.db.connect() as conn:
        return await conn.fetchval(sa.text("SELECT count(*) FROM events"))


def problem(r: httpx.Response, status: int, code: str) -> dict:
    assert r.status_code == status, (r.request.url, r.status_code, r.text[:500])
    assert r.headers["content-type"].startswith(PROBLEM), r.headers
    assert r.json()["code"] == code, r.text[:500]
    return r.json()


# -- 1. bodies: who may send one, and how large ----------------------------------------------
async def test_an_anonymous_50MB_body_is_refused_before_it_is_read(service):
    """Findings 1: FastAPI parsed the whole body before authenticating (an anonymous 50 MB
    POST cost ~150 MB and was then answered 401)."""
    for method, path, _ in service.body_routes():
        body = Stream(50 * MB)
        r = await service.http.request(method, path, content=body,
                                       headers={"Content-Length": str(body.total),
                                                "Content-Type": "application/json"})
        assert r.status_code in (401, 413), (method, path, r.status_code, r.text[:300])
        problem(r, r.status_code, "unauthenticated" if r.status_code == 401
                else "body-too-large")
        assert body.taken == 0, f"{method} {path} read {body.taken:,} bytes of the body"


async def test_an_anonymous_chunked_body_is_refused_before_it_is_read(service):
    for method, path, _ in service.body_routes():
        body = Stream(50 * MB)
        r = await service.http.request(method, path, content=body,
                                       headers={"Content-Type": "application/json"})
        assert r.status_code in (401, 413), (method, path, r.status_code, r.text[:300])
        # a public route reads up to its cap, never the 50 MB
        assert body.taken <= (0 if r.status_code == 401 else service.cap(_) + CHUNK)


async def test_a_wrong_role_or_a_bad_token_is_refused_before_the_body_is_read(service):
    for method, path, route in service.body_routes():
        for headers, status, code in ((NO_ROLE, 403, "forbidden"),
                                      ({"Authorization": "Bearer forged"}, 401,
                                       "unauthenticated")):
            body = Stream(2 * MB)
            r = await service.http.request(method, path, content=body, headers={
                **headers, "Content-Length": str(body.total)})
            if r.status_code == 413:  # a public route: capped instead
                assert service.cap(route) < body.total and body.taken == 0
                continue
            problem(r, status, code)
            assert body.taken == 0, f"{method} {path} read {body.taken:,} bytes"


async def test_a_body_over_its_routes_cap_is_413_whether_announced_or_chunked(service):
    """Finding 1: a 10 MB body was parsed and answered 422, not 413."""
    for method, path, route in service.body_routes():
        cap = service.cap(route)
        announced = Stream(cap + 1)
        r = await service.http.request(method, path, content=announced, headers={
            **EVERY_ROLE, "Content-Length": str(announced.total)})
        body = problem(r, 413, "body-too-large")
        assert body["instance"] == path and f"{cap:,}" in body["detail"]
        assert announced.taken == 0
        chunked = Stream(cap + 4 * CHUNK)
        r = await service.http.request(method, path, content=chunked, headers=EVERY_ROLE)
        problem(r, 413, "body-too-large")
        assert chunked.taken <= cap + CHUNK, f"{method} {path} read {chunked.taken:,} bytes"


async def test_uploads_and_bulk_ingestion_have_room_for_what_they_carry(service):
    """The caps must not refuse what the schemas accept: a 5 MB document in base64 on an
    upload route, a 100,000-sample batch on credit's bulk ingestion."""
    routes = {(m, route.path): service.cap(route) for m, _, route in service.body_routes()}
    wanted = {"registration": {("POST", "/v1/accounts"): 7 * MB,
                               ("PATCH", "/v1/accounts/{account_id}/profile"): 7 * MB},
              "verification": {("POST", "/v1/accounts/{account_id}/qualifications"): 7 * MB,
                               ("POST", "/v1/protected-names"): 7 * MB},
              "credit": {("POST", "/v1/metrics"): 16 * MB}}.get(service.name, {})
    for key, at_least in wanted.items():
        assert routes[key] >= at_least, (key, routes[key])
    small = [k for k, cap in routes.items() if k not in wanted and cap > 1 * MB]
    assert not small, f"routes with a large cap that carry no upload: {small}"


# -- 2. characters that hurt ------------------------------------------------------------------
@pytest.mark.parametrize("raw", [b'{"x": "a\\u0000b"}', b'{"\\u0000": 1}', b'{"x": "a\x00b"}',
                                 b'{"x": "\\\\\\u0000"}'])
async def test_a_nul_anywhere_in_any_body_is_422_nul_character(service, raw):
    for method, path, _ in service.body_routes():
        r = await service.http.request(method, path, content=raw, headers={
            **EVERY_ROLE, "Content-Type": "application/json"})
        problem(r, 422, "nul-character")
        # and cut across chunks of one byte, as a slow client sends it
        r = await service.http.request(method, path, content=_one_by_one(raw), headers={
            **EVERY_ROLE, "Content-Type": "application/json"})
        problem(r, 422, "nul-character")


async def _one_by_one(raw: bytes):
    for i in range(len(raw)):
        yield raw[i:i + 1]


async def test_an_escaped_backslash_before_u0000_is_not_a_nul(service):
    method, path, _ = service.body_routes()[0]
    r = await service.http.request(method, path, content=b'{"x": "\\\\u0000"}', headers={
        **EVERY_ROLE, "Content-Type": "application/json"})
    assert r.json().get("code") != "nul-character", r.text


async def test_a_nul_in_the_path_or_the_query_is_422(service):
    for url in ("/v1/accounts/a%00b", "/v1/reviews?cursor=%00"):
        r = await service.http.get(url, headers=EVERY_ROLE)
        problem(r, 422, "nul-character")


async def test_every_response_says_nosniff(service):
    for r in (await service.http.get("/healthz"),
              await service.http.get("/v1/no-such-route", headers=EVERY_ROLE)):
        assert r.headers["x-content-type-options"] == "nosniff"


async def test_A8_2_nul_and_invisible_names_are_422_on_postgres_and_nothing_is_stored(
        on_postgres):
    """Finding 2: a NUL was a 500 on PostgreSQL (jsonb cannot hold it); names of zero-width
    characters only, or carrying a bidi override, were registered."""
    reg = await on_postgres("registration")
    auth = {"Authorization": EVERY_ROLE["Authorization"]}

    async def register(**profile) -> httpx.Response:
        b = registration_body()
        b["profile"].update(profile)
        return await reg.http.post("/v1/accounts", json=b, headers=auth)

    problem(await register(name="科技\x00频道"), 422, "nul-character")
    problem(await register(description="简介\x00"), 422, "nul-character")
    for name in ("\u200b\u200c\u200d", "\u200b", "\u3164\u3164", "\u3000 ",
                 "\u202e道频技科", "频道\u2066x\u2069", "a\ufeffb", "频\u00ad道"):
        body = problem(await register(name=name), 422, "invalid-characters")
        assert body["errors"][0]["location"] == ["body", "profile", "name"], body
    problem(await register(description="简介\u202e"), 422, "invalid-characters")
    problem(await register(description="简介\x1b[31m"), 422, "invalid-characters")
    assert await events_in(reg) == 0
    # what people write is still accepted: CJK, spaces, line breaks, emoji sequences
    ok = await register(name="科技 频道", description="第一行\n第二行\t👨\u200d👩\u200d👧")
    assert ok.status_code == 202, ok.text
    assert await events_in(reg) > 0


@pytest.mark.parametrize("name,path,body", [
    ("transfer", "/v1/transfers", {"account_id": "a", "transferee": {
        "id_number": "x", "name": "\u202e四李", "phone": "1"}, "contact": "13800138000"}),
    ("enforcement", "/v1/complaints", {"account_id": "a", "reason": "诈骗\x00"}),
    ("credit", "/v1/accounts/a/credit/overrides", {"points": 1, "reason": "r\x00",
                                                   "expires_at": "2030-01-01T00:00:00Z"}),
    ("verification", "/v1/protected-names", {"name": "\u200b\u200b", "kind": "enterprise"}),
])
async def test_other_services_refuse_them_on_postgres_too(on_postgres, name, path, body):
    s = await on_postgres(name)
    r = await s.http.post(path, json=body, headers=EVERY_ROLE)
    assert r.status_code == 422, r.text
    assert r.json()["code"] in ("nul-character", "invalid-characters"), r.text
    assert await events_in(s) == 0


# -- 3. uploads are what their bytes say -----------------------------------------------------
def _material(data: bytes, content_type: str) -> dict:
    now = datetime.now(UTC)
    return {"kind": "professional", "type": "执业医师资格证", "number": "Q1",
            "issuer": "广东省卫生健康委员会", "valid_from": now.isoformat(),
            "valid_until": (now + timedelta(days=30)).isoformat(),
            "document_base64": base64.b64encode(data).decode(),
            "document_content_type": content_type}


@pytest.mark.parametrize("data,declared", [
    (b"<html><script>alert(1)</script></html>", "application/pdf"),
    (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/png"),
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 32, "image/jpeg"),
    (b"%PDF-1.4 but declared an image", "image/png"),
])
async def test_A9_1_a_document_not_of_its_declared_type_is_refused(on_postgres, data, declared):
    """Finding 3: HTML declared as PDF was kept and served back as PDF."""
    s = await on_postgres("verification")
    account = uuid.uuid4().hex
    r = await s.http.post(f"/v1/accounts/{account}/qualifications",
                          json=_material(data, declared), headers=EVERY_ROLE)
    body = problem(r, 422, "content-type-mismatch")
    assert body["declared"] == declared
    async with s.runtime.db.connect() as conn:
        assert await conn.fetchval(sa.text("SELECT count(*) FROM verification_documents")) == 0
    assert await events_in(s) == 0


async def test_a_request_refused_before_its_body_is_counted_under_its_route(service):
    """The HTTP metrics label a request by its route's template; one answered by the guard
    (before the router) too, not as "unmatched"."""
    method, path, route = service.body_routes()[0]
    r = await service.http.request(method, path, content=b"{}",
                                   headers={"Content-Type": "application/json"})
    assert r.status_code in (401, 422), r.text
    exposition = (await service.http.get("/metrics")).text
    assert any(f'route="{route.path}"' in line and f'status="{r.status_code}"' in line
               for line in exposition.splitlines()
               if line.startswith("http_server_request_duration_seconds_count")), exposition
