"""Verification cannot keep up (issue 15, ADR 0044): the five services run as ``make run``
runs them, with registration admitting new registrations against at most three accounts
awaiting verification's answer, and verification's process is paused (SIGSTOP).

- Registration accepts registrations until three await verification. From then on,
  ``POST /v1/accounts`` is answered 503 ``overloaded`` with ``Retry-After``, and nothing
  is registered for it. Reads are served.
- Once verification runs again (SIGCONT), it answers every account it missed and each one
  is activated. Registration then accepts registrations again.
"""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path

import pytest

from tests.conftest import eventually
from tests.e2e.conftest import BASE_PORT, running_system
from tests.registration_support import body

pytestmark = pytest.mark.kafka

LIMIT = 3
PORT = BASE_PORT + 60


@pytest.fixture(scope="module")
def gated(postgres_server, kafka_bootstrap):
    with running_system(postgres_server, kafka_bootstrap, PORT, prefix="backlog", settings={
            "REGISTRATION_MAX_AWAITING_VERIFICATION": str(LIMIT),
            "REGISTRATION_AWAITING_REFRESH_SECONDS": "0.1",
            "ADMISSION_RETRY_AFTER_SECONDS": "2"}) as running:
        yield running


def pid_of(service: str, namespace: str) -> int:
    """The process of ``service`` in the system of ``namespace`` (its uvicorn)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if (f"services.{service}.main:app".encode() in cmdline
                and f"KAFKA_NAMESPACE={namespace}".encode() in environ):
            return int(entry.name)
    raise LookupError(f"no process of {service} in {namespace}")


async def test_registrations_are_shed_while_verification_cannot_keep_up(gated):
    verification = pid_of("verification", gated.namespace)
    accepted: list[str] = []
    async with gated.client("registration", "platform") as http:
        async def register():
            r = await http.post("/v1/accounts", json=body(category="technology"),
                                headers={"Idempotency-Key": uuid.uuid4().hex})
            if r.status_code == 202:
                accepted.append(r.json()["account_id"])
            return r

        os.kill(verification, signal.SIGSTOP)
        try:
            for _ in range(LIMIT):
                r = await register()
                assert r.status_code == 202, r.text
            shed = {}

            async def shed_once_counted() -> bool:
                # the API counts the backlog every 0.1 s, once the worker's projection has
                # the accounts: until then a registration may still be accepted
                r = await register()
                shed["answer"] = r
                return r.status_code == 503

            await eventually(shed_once_counted, timeout=30,
                             what="a registration shed while verification is paused")
            r = shed["answer"]
            assert r.headers["retry-after"] == "2"
            assert r.headers["content-type"] == "application/problem+json"
            problem = r.json()
            assert problem["code"] == "overloaded" and problem["status"] == 503
            assert "accounts awaiting verification" in problem["detail"]
            assert len(accepted) >= LIMIT
            # the accounts accepted are there, pending; reads are not shed
            for account_id in accepted:
                got = await http.get(f"/v1/accounts/{account_id}")
                assert got.status_code == 200
                assert got.json()["status"] == "pending_verification"
            metrics = (await http.get("/metrics")).text
            assert 'admission_backlog_shed_total{backlog="accounts awaiting verification",' \
                   'service="registration"}' in metrics
        finally:
            os.kill(verification, signal.SIGCONT)

        async def all_active() -> bool:
            for account_id in accepted:
                got = await http.get(f"/v1/accounts/{account_id}")
                if got.json()["status"] != "active":
                    return False
            return True

        await eventually(all_active, timeout=90, interval=0.5,
                         what="every account accepted activated once verification runs")
        before = len(accepted)

        async def served_again() -> bool:
            return (await register()).status_code == 202

        await eventually(served_again, timeout=30, what="registrations accepted again")
        assert len(accepted) == before + 1
