"""Overload is shed end to end (issue 15, ADR 0044): registration admits new registrations
against the accounts that still await verification's answer. While that backlog is at its
limit, ``POST /v1/accounts`` is answered 503 ``overloaded`` with ``Retry-After`` before
anything is read or written; every other route is served, and the registrations already
accepted stay as they were.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import text

from libs.events.contracts.registration import AccountRegistrationSubmitted
from libs.events.migrate import upgrade
from libs.runtime.auth import issue_token
from libs.runtime.settings import DEV_AUTH_SECRET
from services.registration import views
from services.registration.bootstrap import MIGRATIONS, bootstrap
from services.registration.main import app
from services.registration.settings import Settings
from tests.conftest import BACKENDS
from tests.registration_support import body

LIMIT = 3


@pytest.fixture
async def runtime(database_url):
    await asyncio.to_thread(upgrade, database_url, MIGRATIONS)
    runtime = bootstrap(Settings(database_url=database_url, environment="development",
                                 group_commit=False, max_awaiting_verification=LIMIT,
                                 admission_retry_after_seconds=5))
    app.state.runtime = runtime  # no lifespan: the routes and the middleware only
    try:
        yield runtime
    finally:
        await runtime.db.dispose()
        del app.state.runtime


@pytest.fixture
async def http(runtime):
    token = issue_token(DEV_AUTH_SECRET, subject="t", roles=["platform"])
    async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
            base_url="http://registration",
            headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


async def _submitted(runtime) -> list[str]:
    async with runtime.db.connect() as conn:
        rows = await conn.fetch(text("SELECT stream_id FROM events WHERE type = :t"),
                                {"t": AccountRegistrationSubmitted.event_type})
    return sorted(r[0] for r in rows)


@BACKENDS
async def test_registrations_are_shed_while_too_many_accounts_await_verification(
        runtime, http):
    [backlog] = runtime.admission.backlogs
    accepted = []
    for _ in range(LIMIT):
        r = await http.post("/v1/accounts", json=body(category="technology"))
        assert r.status_code == 202, r.text
        accepted.append(r.json()["account_id"])
    # what the processes serving requests do every REGISTRATION_AWAITING_REFRESH_SECONDS,
    # once the worker's projection has the accounts
    await runtime.catch_up_projections()
    await backlog.refresh()
    assert backlog.size == LIMIT and backlog.full
    before = await _submitted(runtime)

    r = await http.post("/v1/accounts", json=body(category="technology"),
                        headers={"Idempotency-Key": "backlog-1"})
    assert r.status_code == 503 and r.headers["retry-after"] == "5"
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["code"] == "overloaded" and problem["instance"] == "/v1/accounts"
    assert f"{LIMIT} accounts awaiting verification" in problem["detail"]
    assert await _submitted(runtime) == before  # nothing written

    # the accounts already accepted are served, and so is every other route
    r = await http.get(f"/v1/accounts/{accepted[0]}")
    assert r.status_code == 200 and r.json()["status"] == "pending_verification"
    r = await http.post(f"/v1/accounts/{accepted[0]}/activity", json={})
    assert r.status_code != 503, r.text

    exposition = (await runtime.metrics()).decode()
    name = 'backlog="accounts awaiting verification"'
    assert f'admission_backlog{{{name},service="registration"}} {LIMIT}.0' in exposition
    assert f'admission_backlog_shed_total{{{name},service="registration"}} 1.0' in exposition

    # once the backlog is counted below the limit, the same request is served
    backlog.limit = LIMIT + 1
    r = await http.post("/v1/accounts", json=body(category="technology"),
                        headers={"Idempotency-Key": "backlog-1"})
    assert r.status_code == 202, r.text


@BACKENDS
async def test_the_backlog_counts_recent_accounts_awaiting_verification(runtime, http):
    for _ in range(2):
        assert (await http.post("/v1/accounts", json=body())).status_code == 202
    refused = await http.post("/v1/accounts", json=body(agreement="1999-01"))
    assert refused.status_code >= 400  # refused: no account awaits anything
    await runtime.catch_up_projections()
    now = datetime.now(UTC)
    assert await views.awaiting_verification(runtime.db, since=now - timedelta(minutes=5)) == 2
    # registered before the window: not counted (a stuck account ages out of it)
    assert await views.awaiting_verification(runtime.db, since=now + timedelta(seconds=1)) == 0
