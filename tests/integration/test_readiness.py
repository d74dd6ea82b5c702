"""``/readyz`` watches every kernel worker of every service (issue 10, finding 1), each app
run in-process against the real broker and a fresh PostgreSQL database: a consumer whose
task dies makes the service not ready, by name, until the runtime's supervisor has
restarted it; one that keeps dying is given up and stays reported."""

from __future__ import annotations

import importlib
import uuid

import httpx
import pytest

import libs.runtime.service as service_module
from libs.events.topics import SERVICES
from tests.conftest import PG_PORT, create_database, drop_database, eventually

pytestmark = pytest.mark.kafka


class Broken(RuntimeError):
    pass


async def _fail(*_a, **_k):
    raise Broken("the fetch blew up")


@pytest.fixture
async def app_of(postgres_server, kafka_bootstrap, monkeypatch):
    """Start ``services.<name>.main:app`` (its lifespan: migrations, topics, relay,
    projections, consumers) on a fresh database and its own topic namespace."""
    created: list[str] = []
    monkeypatch.setattr(service_module, "RESTART_PAUSE", 0.2, raising=False)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    monkeypatch.setenv("KAFKA_NAMESPACE", f"rd-{uuid.uuid4().hex[:8]}.")

    async def start(name: str):
        db = await create_database(postgres_server, f"rd_{name}")
        created.append(db)
        monkeypatch.setenv(f"{name.upper()}_DATABASE_URL",
                           f"postgresql+asyncpg://postgres@127.0.0.1:{PG_PORT}/{db}")
        return importlib.import_module(f"services.{name}.main").app

    yield start
    for db in created:
        await drop_database(postgres_server, db)


async def readyz(http) -> tuple[int, dict]:
    r = await http.get("/readyz")
    return r.status_code, r.json()["checks"]


@pytest.mark.parametrize("service", SERVICES)
async def test_readiness_names_a_dead_consumer_and_recovers_once_it_is_restarted(
        app_of, service):
    app = await app_of(service)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://svc") as http:
        runtime = app.state.runtime
        status, checks = await readyz(http)
        assert status == 200, checks
        expected = {"database", "kafka", "relay",
                    *(f"consumer:{c.name}" for c in runtime.consumers),
                    *(r.name for r in runtime.runners)}
        assert expected <= set(checks), checks
        assert runtime.consumers, f"{service} subscribes to other services' events"

        consumer = runtime.consumers[0]
        real_getmany = consumer.source.getmany
        consumer.source.getmany = _fail  # the consumer's task dies on its next fetch
        name = f"consumer:{consumer.name}"

        async def reported() -> bool:
            status, checks = await readyz(http)
            return status == 503 and "Broken" in checks[name]

        await eventually(reported, timeout=30, what=f"/readyz to report {name} down")
        consumer.source.getmany = real_getmany

        async def recovered() -> bool:
            status, checks = await readyz(http)
            return status == 200 and checks[name] == "ok"

        await eventually(recovered, timeout=30, what=f"{name} restarted and ready again")
        worker = next(w for w in runtime.workers if w.name == name)
        assert worker.restarts >= 1
        metrics = (await http.get("/metrics")).text
        assert f'worker_restarts_total{{service="{service}",worker="{name}"}}' in metrics


async def test_a_consumer_that_keeps_dying_is_given_up_and_stays_not_ready(app_of, monkeypatch):
    monkeypatch.setattr(service_module, "GIVE_UP", 2)
    app = await app_of("credit")
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://svc") as http:
        runtime = app.state.runtime
        consumer = runtime.consumers[0]
        consumer.source.getmany = _fail
        name = f"consumer:{consumer.name}"
        await eventually(lambda: _done(runtime, name), timeout=30,
                         what=f"the supervisor to give {name} up")
        status, checks = await readyz(http)
        assert status == 503
        assert checks[name].startswith("stopped: Broken"), checks
        assert (await http.get("/healthz")).status_code == 200  # liveness is not readiness


async def _done(runtime, name: str) -> bool:
    return any(w.name == name and w.task.done() for w in runtime.workers)
