"""``make run DB=postgres SPLIT=1`` (ADR 0037): each service as a worker process (relay,
projections, consumers, sweeps, identity checks) and an API process, as a deployment scales
them. A registration accepted by registration's API process is checked by verification's
worker (A8.1) and activated by registration's worker, and every API answers as before."""

from __future__ import annotations

import uuid

import httpx
import pytest

from libs.events.topics import SERVICES
from libs.runtime.supervisor import WORKER_PORT_OFFSET
from tests.conftest import eventually
from tests.e2e.conftest import BASE_PORT, running_system
from tests.registration_support import body

pytestmark = pytest.mark.kafka

SPLIT_PORT = BASE_PORT + 40


@pytest.fixture(scope="module")
def split_system(postgres_server, kafka_bootstrap):
    with running_system(postgres_server, kafka_bootstrap, SPLIT_PORT, prefix="split",
                        split=True) as running:
        yield running


async def test_A8_1_a_registration_is_verified_and_activated_by_the_workers(split_system):
    async with split_system.client("registration", "platform") as http:
        # a field that needs no qualification: the identity check alone activates it
        r = await http.post("/v1/accounts", json=body(category="technology"),
                            headers={"Idempotency-Key": uuid.uuid4().hex})
        assert r.status_code == 202, r.text
        account_id = r.json()["account_id"]
        seen: dict = {}

        async def active() -> bool:
            got = await http.get(f"/v1/accounts/{account_id}")
            seen["view"] = got.json() if got.status_code == 200 else got.status_code
            return got.status_code == 200 and got.json()["status"] == "active"

        try:
            await eventually(active, timeout=30, what=f"{account_id} active")
        except BaseException:
            print("last seen:", seen, "\n", "".join(split_system.output))
            raise


@pytest.mark.parametrize("service", SERVICES)
async def test_each_service_runs_an_api_and_a_worker_process(split_system, service):
    api = split_system.urls[service]
    port = int(api.rsplit(":", 1)[1]) + WORKER_PORT_OFFSET
    async with httpx.AsyncClient(timeout=10) as http:
        checks = (await http.get(f"{api}/readyz")).json()["checks"]
        assert "kafka" not in checks and "relay" not in checks, checks
        worker = await http.get(f"http://127.0.0.1:{port}/readyz")
        assert worker.status_code == 200, worker.text
        w = worker.json()["checks"]
        assert w["kafka"] == "ok" and w["relay"] == "ok", w
        assert any(name.startswith("consumer:") for name in w), w
