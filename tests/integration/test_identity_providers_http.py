"""A8.1: the HTTP adapters of the three real-name checks against a fake provider that runs
as a real HTTP server on 127.0.0.1 (tests/provider_fake.py): the documented mapping,
retries with backoff, timeouts, malformed answers and the circuit breaker.

``FAULTS`` is the table in services/verification/README.md (fault -> outcome).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from libs.identity.providers import Answer, Endpoint, HttpIdentityProviders, ProviderUnavailable
from tests.provider_fake import FakeProvider


@pytest.fixture
def fake():
    server = FakeProvider().start()
    yield server
    server.stop()


def providers(fake: FakeProvider, **kw) -> HttpIdentityProviders:
    opts = {"timeout_seconds": 0.5, "attempts": 3, "backoff_seconds": 0.01,
            "backoff_max_seconds": 0.05, "breaker_failures": 50, "breaker_reset_seconds": 0.5}
    opts |= kw

    def endpoint(check: str) -> Endpoint:
        return Endpoint(url=fake.url(check), credential=f"key-{check}", **opts)

    return HttpIdentityProviders.of(endpoint("public-security"), endpoint("carrier"),
                                    endpoint("business-registry"))


async def ask_carrier(p: HttpIdentityProviders) -> Answer:
    return await p.carrier(name="张三", id_number="11010519491231002X", phone="+8613912345678")


async def test_A8_1_requests_and_answers_follow_the_documented_mapping(fake):
    p = providers(fake)
    fake.set("public-security", result="consistent")
    fake.set("carrier", result="consistent", tenure_months=7)
    fake.set("business-registry", result="inconsistent")
    assert await p.public_security(name="张三", id_number="11010519491231002X") == "match"
    assert await ask_carrier(p) == Answer("match", 7)
    assert await p.business(company_name="某公司", uscc="91110000600037341L",
                            representative_name="李四",
                            representative_id="11010519491231002X") == "mismatch"
    fake.set("public-security", result="no_record")
    assert await p.public_security(name="张三", id_number="11010519491231002X") == "unknown"
    bodies = {check: body for check, _, body in fake.requests}
    assert bodies["public-security"] == {"name": "张三", "id_number": "11010519491231002X"}
    assert bodies["carrier"] == {"name": "张三", "id_number": "11010519491231002X",
                                 "mobile": "13912345678"}
    assert bodies["business-registry"] == {
        "company_name": "某公司", "uscc": "91110000600037341L",
        "legal_representative_name": "李四",
        "legal_representative_id_number": "11010519491231002X"}
    headers = {check: h for check, h, _ in fake.requests}
    assert headers["carrier"]["authorization"] == "Bearer key-carrier"
    assert headers["business-registry"]["authorization"] == "Bearer key-business-registry"


# fault of the fake server -> what the adapter answers, and how many requests reached it
FAULTS = [
    # fault, the fake's settings, outcome (an answer or "unavailable: <reason>"), requests
    ("answers at once", {"fault": "ok"}, "match", 1),
    ("answers slowly, within the timeout (0.2 s of 0.5 s)",
     {"fault": "slow", "delay": 0.2}, "match", 1),
    ("5xx twice, then answers", {"fault": "flaky", "failures": 2}, "match", 3),
    ("5xx on every attempt", {"fault": "5xx"}, "unavailable: http-5xx", 3),
    ("malformed body (HTML with 200)", {"fault": "malformed"}, "unavailable: malformed", 3),
    ("no answer within the timeout (2 s of 0.5 s)", {"fault": "hang", "delay": 2.0},
     "unavailable: timeout", 3),
    ("401: refused credential", {"fault": "4xx"}, "unavailable: http-4xx", 1),
    ("answers no_record", {"fault": "ok", "result": "no_record"}, "unknown", 1),
]


@pytest.mark.parametrize("fault,settings,outcome,requests", FAULTS,
                         ids=[f[0] for f in FAULTS])
async def test_A8_1_provider_fault_to_outcome(fake, fault, settings, outcome, requests):
    p = providers(fake)
    fake.set("carrier", **settings)
    try:
        got = (await ask_carrier(p)).outcome
    except ProviderUnavailable as exc:
        got = f"unavailable: {exc.reason}"
    assert got == outcome, fault
    assert fake.calls("carrier") == requests, fault
    ids = {h["x-request-id"] for c, h, _ in fake.requests if c == "carrier"}
    assert len(ids) == 1, "one request id for all the attempts of one check"


async def test_A8_1_provider_down_is_unavailable_not_a_verdict(fake):
    p = providers(fake)
    fake.stop()
    with pytest.raises(ProviderUnavailable) as err:
        await p.public_security(name="张三", id_number="11010519491231002X")
    assert err.value.reason == "connection"


async def test_A8_1_open_breaker_fails_at_once_then_lets_a_trial_through(fake):
    p = providers(fake, attempts=1, breaker_failures=2, breaker_reset_seconds=0.5)
    fake.set("carrier", fault="5xx")
    for _ in range(2):
        with pytest.raises(ProviderUnavailable):
            await ask_carrier(p)
    assert fake.calls("carrier") == 2
    started = time.monotonic()
    with pytest.raises(ProviderUnavailable) as err:
        await ask_carrier(p)
    assert err.value.reason == "circuit-open" and time.monotonic() - started < 0.1
    assert fake.calls("carrier") == 2, "an open breaker sends nothing"
    # the other providers have their own breakers
    assert await p.public_security(name="张三", id_number="11010519491231002X") == "match"
    fake.set("carrier", fault="ok")
    await asyncio.sleep(0.6)  # past the reset time: one trial goes through and closes it
    assert (await ask_carrier(p)).outcome == "match"
    assert fake.calls("carrier") == 3


async def test_A8_1_retries_back_off_with_jitter(fake):
    p = providers(fake, attempts=4, backoff_seconds=0.1, backoff_max_seconds=1.0)
    fake.set("carrier", fault="5xx")
    started = time.monotonic()
    with pytest.raises(ProviderUnavailable):
        await ask_carrier(p)
    # three waits of about 0.1, 0.2, 0.4 s plus up to 0.1 s of jitter each
    assert 0.6 <= time.monotonic() - started < 3.0
    assert fake.calls("carrier") == 4
