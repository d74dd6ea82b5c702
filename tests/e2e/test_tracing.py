"""One trace per causal chain: from the HTTP request, through the outbox and Kafka, into
every consumer and the events it appends (DESIGN: observability)."""

from __future__ import annotations

import secrets

import pytest

from tests.conftest import eventually
from tests.registration_support import body

pytestmark = pytest.mark.kafka


async def test_registration_to_activation_is_one_trace(system):
    trace_id = secrets.token_hex(16)
    header = f"00-{trace_id}-{secrets.token_hex(8)}-01"
    async with system.client("registration", "platform") as http:
        r = await http.post("/v1/accounts", json=body(category="lifestyle"),
                            headers={"traceparent": header})
        assert r.status_code == 202, r.text
        account_id = r.json()["account_id"]
        seen: dict[str, dict] = {}

        async def activated() -> bool:
            h = await http.get(f"/v1/accounts/{account_id}/history")
            seen.update({e["type"]: e for e in h.json()["events"]} if h.status_code == 200
                        else {})
            return "registration.AccountActivated" in seen

        await eventually(activated, timeout=60, what="verification to activate the account")
    submitted = seen["registration.AccountRegistrationSubmitted"]
    activated_event = seen["registration.AccountActivated"]
    # The request's span continues the caller's trace; the activation was decided in
    # registration's consumer span, continuing verification's event, which continued ours.
    assert submitted["traceparent"].split("-")[1] == trace_id
    assert activated_event["traceparent"].split("-")[1] == trace_id
    assert activated_event["traceparent"] != submitted["traceparent"]
    assert activated_event["correlation_id"] == submitted["correlation_id"]
