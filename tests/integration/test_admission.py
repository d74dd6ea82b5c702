"""Overload is shed, not suffered (issue 15, ADR 0036): registrations over real PostgreSQL,
many at once against a tiny admission limit. Some are shed with 503 problem+json and
``Retry-After`` before doing anything; every 202 is durable (its registration event is in
the store, read back on another connection) and a shed request left nothing behind.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import text

from libs.events import Database
from libs.events.contracts.registration import AccountRegistrationSubmitted
from libs.events.migrate import upgrade
from libs.runtime.auth import issue_token
from libs.runtime.settings import DEV_AUTH_SECRET
from services.registration.bootstrap import MIGRATIONS, bootstrap
from services.registration.main import app
from services.registration.settings import Settings
from tests.registration_support import body

CONCURRENT = 40


@pytest.fixture
async def http(database_url):
    await asyncio.to_thread(upgrade, database_url, MIGRATIONS)
    runtime = bootstrap(Settings(database_url=database_url, environment="development",
                                 admission_max_in_flight=2, admission_max_queue=2,
                                 admission_max_wait_seconds=0.02,
                                 admission_retry_after_seconds=2))
    app.state.runtime = runtime  # no lifespan: the routes and the middleware only
    token = issue_token(DEV_AUTH_SECRET, subject="t", roles=["platform"])
    try:
        async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                base_url="http://registration",
                headers={"Authorization": f"Bearer {token}"}) as client:
            yield client
    finally:
        await runtime.db.dispose()
        del app.state.runtime


async def test_overload_is_shed_with_503_and_every_202_is_durable(http, database_url):
    async def register(i: int) -> httpx.Response:
        return await http.post("/v1/accounts", json=body(category="technology"),
                               headers={"Idempotency-Key": f"admission-{i}"})

    answers = await asyncio.gather(*(register(i) for i in range(CONCURRENT)))
    accepted = [r for r in answers if r.status_code == 202]
    shed = [r for r in answers if r.status_code == 503]
    assert len(accepted) + len(shed) == CONCURRENT, [r.status_code for r in answers]
    assert accepted and shed, [r.status_code for r in answers]
    for r in shed:
        assert r.headers["retry-after"] == "2"
        assert r.headers["content-type"] == "application/problem+json"
        problem = r.json()
        assert problem["code"] == "overloaded" and problem["status"] == 503
        assert problem["type"] == "/problems/overloaded"
        assert problem["instance"] == "/v1/accounts"
    admission = app.state.runtime.admission
    assert admission.shed == len(shed) and admission.in_flight == 0 and admission.queued == 0

    # durable: read back on a fresh connection pool, one registration per 202, none else
    db = Database(database_url)
    try:
        async with db.connect() as conn:
            rows = await conn.fetch(text(
                "SELECT stream_id FROM events WHERE type = :t"),
                {"t": AccountRegistrationSubmitted.event_type})
    finally:
        await db.dispose()
    stored = [r[0].removeprefix("account-") for r in rows]
    assert sorted(stored) == sorted(r.json()["account_id"] for r in accepted)

    # the metrics show what happened
    exposition = (await app.state.runtime.metrics()).decode()
    assert f'http_server_requests_shed_total{{service="registration"}} {len(shed)}.0' \
        in exposition
    assert 'http_server_requests_in_flight{service="registration"} 0.0' in exposition


async def test_a_shed_client_retrying_after_retry_after_is_served(http):
    b = body(category="technology")
    admission = app.state.runtime.admission
    held = [await admission.acquire(), await admission.acquire()]  # both slots busy
    assert all(held)
    r = await http.post("/v1/accounts", json=b, headers={"Idempotency-Key": "retry-1"})
    assert r.status_code == 503 and r.headers["retry-after"] == "2"
    admission.release()
    admission.release()
    r = await http.post("/v1/accounts", json=b, headers={"Idempotency-Key": "retry-1"})
    assert r.status_code == 202, r.text
