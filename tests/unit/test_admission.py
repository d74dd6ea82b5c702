"""Admission control (libs.runtime.admission, ADR 0036): the bounded queue's rules, and every
service's app shedding past its limit with a 503 problem while its operations routes answer.

Pure logic over a stub runtime (no database): the integration test
``tests/integration/test_admission.py`` drives real registrations over PostgreSQL.
"""

from __future__ import annotations

import asyncio
import importlib
from types import SimpleNamespace

import httpx
import pytest

from libs.events.topics import SERVICES
from libs.runtime.admission import Admission, AdmissionMiddleware, Backlog, Limits
from libs.runtime.settings import ServiceSettings


async def test_within_the_limit_everything_is_admitted_at_once():
    a = Admission(Limits(max_in_flight=2, max_queue=0, max_wait=0))
    assert await a.acquire() and await a.acquire()
    assert a.in_flight == 2 and a.shed == 0
    assert not await a.acquire()  # no queue: the third is shed
    assert a.shed == 1
    a.release()
    assert await a.acquire()


async def test_waiters_are_served_first_come_first_served_and_hand_the_slot_over():
    a = Admission(Limits(max_in_flight=1, max_queue=3, max_wait=5))
    assert await a.acquire()
    order: list[int] = []

    async def wait(n: int) -> None:
        assert await a.acquire()
        order.append(n)

    tasks = [asyncio.create_task(wait(n)) for n in range(3)]
    await asyncio.sleep(0)
    assert a.queued == 3 and a.in_flight == 1
    for _ in range(3):
        a.release()
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2] and a.in_flight == 1 and a.queued == 0
    a.release()
    assert a.in_flight == 0


async def test_a_full_queue_sheds_at_once_and_a_wait_that_runs_out_is_shed():
    a = Admission(Limits(max_in_flight=1, max_queue=1, max_wait=0.05))
    assert await a.acquire()
    waiter = asyncio.create_task(a.acquire())
    await asyncio.sleep(0)
    assert not await a.acquire()  # the queue (1) is full: shed without waiting
    assert await waiter is False  # its 50 ms ran out
    assert a.shed == 2 and a.queued == 0 and a.in_flight == 1
    a.release()
    assert a.in_flight == 0


async def test_a_waiter_cancelled_gives_its_place_back():
    a = Admission(Limits(max_in_flight=1, max_queue=2, max_wait=5))
    assert await a.acquire()
    gone = asyncio.create_task(a.acquire())
    await asyncio.sleep(0)
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert a.queued == 0
    a.release()
    assert a.in_flight == 0


def test_the_limits_are_settings_with_defaults(monkeypatch):
    s = ServiceSettings(service="registration", port=1, environment="development")
    assert s.admission_limits() == Limits(32, 64, 0.25, 1)
    monkeypatch.setenv("ADMISSION_MAX_IN_FLIGHT", "4")
    monkeypatch.setenv("ADMISSION_MAX_WAIT_SECONDS", "0.1")
    s = ServiceSettings(service="registration", port=1, environment="development")
    assert (s.admission_limits().max_in_flight, s.admission_limits().max_wait) == (4, 0.1)


@pytest.mark.parametrize("service", SERVICES)
async def test_every_service_sheds_past_its_limit_and_keeps_its_operations_routes(service):
    app = importlib.import_module(f"services.{service}.main").app
    admission = Admission(Limits(max_in_flight=1, max_queue=0, max_wait=0, retry_after=3))
    stub = SimpleNamespace(admission=admission, prometheus=None,
                           settings=SimpleNamespace(environment="development"))
    app.state.runtime = stub
    try:
        assert await admission.acquire()  # the one slot is busy
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://svc") as http:
            # every route of the service, whatever its method: shed before routing
            paths = {(method.upper(), path) for path, ops in app.openapi()["paths"].items()
                     for method in ops if path.startswith("/v1")}
            assert paths
            for method, path in sorted(paths):
                r = await http.request(method, path.replace("{", "x").replace("}", "x"))
                assert r.status_code == 503, (method, path, r.text)
                assert r.headers["retry-after"] == "3"
                assert r.headers["content-type"] == "application/problem+json"
                assert r.json()["code"] == "overloaded" and r.json()["status"] == 503
            assert admission.shed == len(paths)
            # liveness is never shed: a busy service is alive
            assert (await http.get("/healthz")).status_code == 200
    finally:
        del app.state.runtime


async def test_a_full_backlog_sheds_the_routes_that_add_to_it_and_only_those():
    size = 0

    async def count() -> int:
        return size

    backlog = Backlog("accounts awaiting verification", frozenset({("POST", "/v1/accounts")}),
                      limit=2, measure=count)
    admission = Admission(Limits(), [backlog])
    size = 1
    await backlog.refresh()
    assert not backlog.full and admission.full_backlog("POST", "/v1/accounts") is None
    size = 2
    assert admission.full_backlog("POST", "/v1/accounts") is None  # until it is counted
    await backlog.refresh()
    assert backlog.full and admission.full_backlog("POST", "/v1/accounts") is backlog
    assert admission.full_backlog("GET", "/v1/accounts") is None
    assert admission.full_backlog("POST", "/v1/accounts/a-1/agreement") is None
    backlog.limit = 0  # no limit: never full
    assert not backlog.full


async def test_a_request_to_a_full_backlog_is_shed_before_the_app_sees_it():
    async def count() -> int:
        return 5

    seen: list[str] = []

    async def app(scope, receive, send) -> None:
        seen.append(scope["path"])
        await send({"type": "http.response.start", "status": 202, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    backlog = Backlog("accounts awaiting verification", frozenset({("POST", "/v1/accounts")}),
                      limit=5, measure=count)
    await backlog.refresh()
    admission = Admission(Limits(retry_after=4), [backlog])
    gate = AdmissionMiddleware(app, admission_of=lambda: admission)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gate),
                                 base_url="http://svc") as http:
        shed = await http.post("/v1/accounts", json={})
        other = await http.post("/v1/accounts/a-1/agreement", json={})
    assert shed.status_code == 503 and shed.headers["retry-after"] == "4"
    problem = shed.json()
    assert problem["code"] == "overloaded" and problem["status"] == 503
    assert problem["detail"] == ("5 accounts awaiting verification already (at most 5); "
                                 "retry after 4 s")
    assert other.status_code == 202 and seen == ["/v1/accounts/a-1/agreement"]
    assert backlog.shed == 1 and admission.shed == 1
