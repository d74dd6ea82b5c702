"""The five services run as deployed: health, readiness, OpenAPI and problem details."""

from __future__ import annotations

import pytest

from libs.events.topics import SERVICES

pytestmark = pytest.mark.kafka


@pytest.mark.parametrize("service", SERVICES)
async def test_service_is_live_ready_and_documents_its_api(system, service):
    async with system.client(service) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        ready = await http.get("/readyz")
        assert ready.status_code == 200, ready.text
        checks = ready.json()["checks"]
        assert {"database", "kafka", "relay"} <= set(checks), checks
        assert any(name.startswith("consumer:") for name in checks), checks
        assert set(checks.values()) == {"ok"}, checks
        spec = (await http.get("/openapi.json")).json()
        assert spec["info"]["title"].lower().startswith(service)
        metrics = (await http.get("/metrics")).text
        assert f'events_published_total{{service="{service}"}}' in metrics


@pytest.mark.parametrize("service", SERVICES)
async def test_unknown_route_is_a_problem_document(system, service):
    async with system.client(service) as http:
        r = await http.get("/v1/no-such-thing")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["code"] == "not-found" and body["type"] == "/problems/not-found"
    assert body["status"] == 404 and body["instance"] == "/v1/no-such-thing"
