"""API and worker processes apart (SERVICE_ROLE, ADR 0037), each app run in-process against
the real broker and a fresh PostgreSQL database, as ``make run DB=postgres SPLIT=1`` and
``make load`` run them:

* an ``api`` process serves requests and runs nothing on the log: no relay, projection or
  consumer, no sweep; its readiness does not depend on the broker;
* a ``worker`` process runs them all, and picks up what an ``api`` process committed
  (nothing nudges it from there: it polls), so a registration accepted by the API reaches
  the read model and the broker;
* ``all`` (the default) keeps one process doing both.
"""

from __future__ import annotations

import importlib
import uuid

import httpx
import pytest

from libs.events.topics import events_topic
from libs.runtime.auth import issue_token
from libs.runtime.settings import DEV_AUTH_SECRET
from tests.conftest import PG_PORT, create_database, drop_database, eventually
from tests.integration.kafka_helpers import read_topic
from tests.registration_support import body

pytestmark = pytest.mark.kafka

TOKEN = issue_token(DEV_AUTH_SECRET, subject="roles", roles=["platform", "operator"])
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def registration(postgres_server, kafka_bootstrap, monkeypatch):
    """A fresh database and topic namespace for registration; yields a function that gives
    a new app object of the service (a process's app) for a role (read from the
    environment when its lifespan starts: enter it before asking for another role)."""
    db = await create_database(postgres_server, "roles_registration")
    ns = f"roles-{uuid.uuid4().hex[:8]}."
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    monkeypatch.setenv("KAFKA_NAMESPACE", ns)
    monkeypatch.setenv("REGISTRATION_DATABASE_URL",
                       f"postgresql+asyncpg://postgres@127.0.0.1:{PG_PORT}/{db}")

    def app_for(role: str):
        monkeypatch.setenv("SERVICE_ROLE", role)
        main = importlib.import_module("services.registration.main")
        return importlib.reload(main).app  # a new app: a new runtime with this role

    yield app_for, ns
    await drop_database(postgres_server, db)


def _client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc",
                             headers=AUTH)


async def test_an_api_process_runs_no_worker_and_does_not_need_the_broker_for_readiness(
        registration):
    app_for, _ = registration
    app = app_for("api")
    async with app.router.lifespan_context(app), _client(app) as http:
        runtime = app.state.runtime
        assert runtime.settings.role == "api"
        assert runtime.relay is None and runtime.consumers == [] and runtime.runners == []
        assert runtime.producer is None
        r = await http.get("/readyz")
        assert r.status_code == 200, r.text
        checks = r.json()["checks"]
        assert "kafka" not in checks and "relay" not in checks
        # the request-side refresher runs; the sweep (a worker's task) does not
        assert "periodic:closed-names" in checks and "periodic:sweep" not in checks


async def test_a_worker_publishes_and_projects_what_an_api_process_accepted(
        registration, kafka_bootstrap):
    app_for, ns = registration
    worker = app_for("worker")
    async with worker.router.lifespan_context(worker), _client(worker) as w_http:
        r = await w_http.get("/readyz")
        assert r.status_code == 200, r.text
        checks = r.json()["checks"]
        assert checks["kafka"] == "ok" and checks["relay"] == "ok"
        assert "periodic:sweep" in checks and "periodic:closed-names" not in checks
        api = app_for("api")
        async with api.router.lifespan_context(api), _client(api) as a_http:
            r = await a_http.post("/v1/accounts", json=body(),
                                  headers={"Idempotency-Key": uuid.uuid4().hex})
            assert r.status_code == 202, r.text
            account_id = r.json()["account_id"]

            async def listed() -> bool:
                got = await a_http.get(f"/v1/accounts/{account_id}")
                return got.status_code == 200

            # the API process's commit reached the worker's projection (by its poll)
            await eventually(listed, timeout=15, what="the account in the read model")
        published = await read_topic(kafka_bootstrap, ns + events_topic("registration"),
                                     expect_at_least=1, timeout=15)
        assert any(account_id in (rec.value or b"").decode() for rec in published)
