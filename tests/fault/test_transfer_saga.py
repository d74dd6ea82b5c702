"""kill -9 each service in turn in the middle of a transfer saga (A11.2): afterwards no
application is stuck and nothing is applied twice.

The five services run as separate processes (as ``make run`` starts them) on fresh
PostgreSQL databases and a namespace of their own; each is killed with SIGKILL at a step
of the saga where it holds work in flight, then started again on the same database.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest

from libs.events import ensure_topics, events_topic
from libs.events.topics import SERVICES
from libs.runtime.auth import issue_token
from libs.runtime.settings import DEV_AUTH_SECRET
from tests.conftest import PG_PORT, ROOT, create_database, drop_database, eventually
from tests.registration_support import body, phone, resident_id

pytestmark = pytest.mark.kafka
BASE_PORT = int(os.environ.get("FAULT_BASE_PORT", "18901"))


class Services:
    """The five services as processes that a test may kill and start again."""

    def __init__(self, env: dict[str, str], dsns: dict[str, str]) -> None:
        self.env, self.dsns = env, dsns
        self.ports = {name: BASE_PORT + i for i, name in enumerate(SERVICES)}
        self.procs: dict[str, asyncio.subprocess.Process] = {}

    async def start(self, name: str) -> None:
        self.procs[name] = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "uvicorn", f"services.{name}.main:app", "--host",
            "127.0.0.1", "--port", str(self.ports[name]), "--no-access-log", cwd=ROOT,
            env=self.env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)

        async def ready() -> bool:
            try:
                async with httpx.AsyncClient(timeout=2) as http:
                    r = await http.get(f"http://127.0.0.1:{self.ports[name]}/readyz")
                return r.status_code == 200
            except httpx.HTTPError:
                return False

        await eventually(ready, timeout=90, interval=0.2, what=f"{name} to be ready")

    async def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGKILL)
        await proc.wait()

    async def restart(self, name: str) -> None:
        await self.kill(name)
        await self.start(name)

    def client(self, name: str, *roles: str) -> httpx.AsyncClient:
        token = issue_token(DEV_AUTH_SECRET, subject="fault", roles=list(roles))
        return httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.ports[name]}", timeout=10,
                                 headers={"Authorization": f"Bearer {token}"})

    async def count(self, name: str, event_type: str, stream: str) -> int:
        conn = await asyncpg.connect(self.dsns[name])
        try:
            return await conn.fetchval("SELECT count(*) FROM events WHERE type = $1 "
                                       "AND stream_id = $2", event_type, stream)
        finally:
            await conn.close()

    async def stop(self) -> None:
        for name in list(self.procs):
            proc = self.procs.pop(name)
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()


@pytest.fixture
async def services(postgres_server, kafka_bootstrap):
    names = {s: await create_database(postgres_server, f"fault_{s[:4]}") for s in SERVICES}
    env = dict(os.environ)
    dsns = {}
    for service, db in names.items():
        env[f"{service.upper()}_DATABASE_URL"] = (
            f"postgresql+asyncpg://postgres@127.0.0.1:{PG_PORT}/{db}")
        dsns[service] = f"postgresql://postgres@127.0.0.1:{PG_PORT}/{db}"
    env |= {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "ENVIRONMENT": "development",
            "KAFKA_NAMESPACE": f"fault-{uuid.uuid4().hex[:8]}.", "LOG_LEVEL": "WARNING"}
    # As the supervisor does: topics first, so no consumer subscribes to one not made yet.
    await ensure_topics(kafka_bootstrap, [env["KAFKA_NAMESPACE"] + events_topic(s)
                                          for s in SERVICES])
    running = Services(env, dsns)
    try:
        await asyncio.gather(*(running.start(s) for s in SERVICES))
        yield running
    finally:
        await running.stop()
        for db in names.values():
            await drop_database(postgres_server, db)


async def poll(services: Services, name: str, path: str, check, what: str) -> dict:
    seen: dict = {}

    async def ok() -> bool:
        try:
            async with services.client(name, "operator", "platform") as http:
                r = await http.get(path)
        except httpx.HTTPError as exc:  # the service is being restarted
            seen["answer"] = repr(exc)
            return False
        seen["v"] = r.json() if r.status_code == 200 else None
        seen["answer"] = (r.status_code, (seen["v"] or {}).get("status") or r.text[:200])
        return seen["v"] is not None and bool(check(seen["v"]))

    try:
        await eventually(ok, timeout=90, interval=0.2, what=what)
    except pytest.fail.Exception:
        pytest.fail(f"timed out waiting for {what}; last answer: {seen.get('answer')}")
    return seen["v"]


async def test_A11_2_a_transfer_saga_survives_each_service_killed_in_turn(services):
    async with services.client("registration", "platform") as http:
        r = await http.post("/v1/accounts", json=body(category="technology"),
                            headers={"Idempotency-Key": "reg"})
    assert r.status_code == 202, r.text
    account_id = r.json()["account_id"]
    # verification killed while registration's event is on its way to it
    await services.restart("verification")
    await poll(services, "registration", f"/v1/accounts/{account_id}",
               lambda v: v["status"] == "active", "the account active")
    await poll(services, "transfer", f"/v1/accounts/{account_id}/operators", lambda v: True,
               "transfer to know the account")

    transferee = {"id_number": resident_id(), "name": "王五", "phone": phone()}
    async with services.client("transfer", "platform") as http:
        r = await http.post("/v1/transfers", headers={"Idempotency-Key": "apply"}, json={
            "account_id": account_id, "contact": "13800138000", "transferee": transferee})
    assert r.status_code == 201, r.text
    transfer_id = r.json()["transfer_id"]
    # verification killed while it checks the transferee; transfer killed while it waits;
    # enforcement (whose measures transfer follows) and credit too
    for name in ("verification", "transfer", "enforcement", "credit"):
        await services.restart(name)
    await poll(services, "transfer", f"/v1/transfers/{transfer_id}",
               lambda v: v["status"] == "awaiting_confirmation", "the transferee verified")

    for party in ("transferor", "transferee"):
        async with services.client("transfer", "platform") as http:
            c = await http.post(f"/v1/transfers/{transfer_id}/confirmation",
                                json={"party": party}, headers={"Idempotency-Key": party})
        assert c.status_code == 200, c.text
    await poll(services, "transfer", f"/v1/transfers/{transfer_id}",
               lambda v: v["status"] == "opt_out_period", "the followers' opt-out period")
    await services.restart("transfer")  # killed while the transfer waits out the period
    # the followers' opt-out period over: the sweep (dev-only clock) completes the transfer,
    # then registration and verification are killed while TransferCompleted is on its way
    later = (datetime.now(UTC) + timedelta(days=8)).isoformat()
    async with services.client("transfer", "operator") as http:
        s = await http.post("/v1/operations/sweep", json={"now": later},
                            headers={"Idempotency-Key": "sweep"})
    assert s.status_code == 200 and s.json()["completed"] == [transfer_id], s.text
    await services.restart("registration")
    await services.restart("verification")
    done = await poll(services, "transfer", f"/v1/transfers/{transfer_id}",
                      lambda v: v["status"] == "completed", "the transfer completed")
    await poll(services, "registration", f"/v1/accounts/{account_id}",
               lambda v: v["owner"]["id_number_masked"] == done["transferee"]["id_number_masked"],
               "the new owner in registration")

    async def once(name: str, event_type: str, stream: str) -> bool:
        return await services.count(name, event_type, stream) == 1

    # nothing applied twice, on the account's streams of each service
    assert await once("registration", "registration.OwnerChanged", f"account-{account_id}")
    assert await once("transfer", "transfer.TransferCompleted", f"transfer-{transfer_id}")
    assert await services.count("registration", "registration.AccountActivated",
                                f"account-{account_id}") == 1
    verified = [await services.count("verification", t, f"transferee-{transfer_id}")
                for t in ("verification.TransfereeVerified",
                          "verification.TransfereeVerificationFailed")]
    assert verified == [1, 0]
