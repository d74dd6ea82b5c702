"""Every metric family the dashboard shows is scraped from the running system's /metrics."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from libs.runtime.metrics import CONTENT_TYPE, FAMILIES
from tests.conftest import eventually
from tests.registration_support import body

pytestmark = pytest.mark.kafka


def scrape(text: str) -> dict[str, list]:
    """family name (as exported, counters with ``_total``) -> its samples."""
    out: dict[str, list] = {}
    for f in text_string_to_metric_families(text):
        name = f.name + "_total" if f.type == "counter" else f.name
        out[name] = f.samples
    return out


async def test_registration_and_verification_export_every_family(system):
    async with system.client("registration", "platform") as http:
        r = await http.post("/v1/accounts", json=body(category="lifestyle"))
        assert r.status_code == 202, r.text
        account_id = r.json()["account_id"]

        async def activated() -> bool:
            h = await http.get(f"/v1/accounts/{account_id}/history")
            return h.status_code == 200 and "registration.AccountActivated" in {
                e["type"] for e in h.json()["events"]}

        await eventually(activated, timeout=60, what="the account to be activated")

    for service in ("registration", "verification"):
        families: dict[str, list] = {}

        async def complete(service=service, families=families) -> bool:
            async with system.client(service) as http:
                m = await http.get("/metrics")
            assert m.status_code == 200
            assert m.headers["content-type"] == CONTENT_TYPE  # prometheus_client's latest
            families.clear()
            families.update(scrape(m.text))
            # every family present with at least one sample (lag: once partitions are
            # assigned; the handler histogram: once an event was handled)
            return all(families.get(f) for f in FAMILIES)

        await eventually(complete, timeout=30, interval=0.5,
                         what=f"{service}'s /metrics to show every family")
        handled = {s.labels["consumer"]: s.value for s in families["events_handled_total"]
                   if s.name == "events_handled_total"}
        assert sum(handled.values()) >= 1, handled
        assert all(s.labels["service"] == service for f in FAMILIES for s in families[f])
        routes = {s.labels["route"] for s in families["http_server_request_duration_seconds"]}
        assert "/readyz" in routes  # the supervisor asked; this scrape counts from the next
        assert not any(account_id in r for r in routes)  # templates, never raw paths
        lag = families["consumer_lag_records"]
        assert {"consumer", "topic", "partition"} <= set(lag[0].labels)
        if service == "registration":
            assert {"/v1/accounts", "/v1/accounts/{account_id}/history"} <= routes, routes
