"""The real-name providers over HTTP (A8.1): public security two-factor, carrier
three-factor, business registry four-factor.

Each check is one ``POST`` of a JSON body to the provider's endpoint with its credential
(``Authorization: Bearer …``) and an ``X-Request-Id`` that stays the same across the
retries of one check (the provider may deduplicate on it). The answer is
``{"result": "consistent" | "inconsistent" | "no_record"}`` (the carrier adds
``"tenure_months"``), read as ``match`` / ``mismatch`` / ``unknown``. The mapping is
documented in services/verification/README.md.

What is *not* an answer raises :class:`ProviderUnavailable`: a timeout, a connection
error, a 5xx or 429, a 4xx, a body that is not the documented JSON, or the circuit
breaker open. Transient failures (timeout, connection, 5xx, 429, malformed body) are
retried within the call with exponential backoff and jitter (``tenacity``); every failed
attempt counts towards the provider's circuit breaker (``purgatory``), which, once open,
fails calls at once without touching the network until its reset time has passed.
Whether an unavailable provider delays the verification or decides it is the caller's
business: here it is never a verdict.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

Outcome = Literal["match", "mismatch", "unknown"]
RESULTS: dict[str, Outcome] = {"consistent": "match", "inconsistent": "mismatch",
                               "no_record": "unknown"}


class ProviderUnavailable(Exception):
    """The provider gave no answer (``reason``: timeout, connection, http-5xx, http-4xx,
    malformed, circuit-open); never a verdict on the person."""

    def __init__(self, provider: str, reason: str, detail: str = "") -> None:
        super().__init__(f"{provider}: {reason}{': ' + detail if detail else ''}")
        self.provider = provider
        self.reason = reason


class _Transient(Exception):
    """One failed attempt worth retrying."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason


class _Refused(Exception):
    """A 4xx other than 429: the request or the credential is wrong; retrying the same
    request cannot help."""


@dataclass(frozen=True)
class Endpoint:
    """Where and how to call one provider."""

    url: str
    credential: str
    timeout_seconds: float = 3.0
    attempts: int = 3
    backoff_seconds: float = 0.2
    backoff_max_seconds: float = 2.0
    breaker_failures: int = 5
    breaker_reset_seconds: float = 30.0


@dataclass(frozen=True)
class Answer:
    outcome: Outcome
    tenure_months: int | None = None


@dataclass
class HttpCheck:
    """One provider's check: retries, breaker, and the answer's mapping."""

    name: str
    endpoint: Endpoint
    client: httpx.AsyncClient | None = None
    breakers: AsyncCircuitBreakerFactory = field(init=False)

    def __post_init__(self) -> None:
        e = self.endpoint
        self.breakers = AsyncCircuitBreakerFactory(default_threshold=e.breaker_failures,
                                                   default_ttl=e.breaker_reset_seconds)

    async def ask(self, body: dict[str, Any]) -> Answer:
        """The provider's answer to ``body``, or :class:`ProviderUnavailable`."""
        e = self.endpoint
        headers = {"Authorization": f"Bearer {e.credential}",
                   "X-Request-Id": str(uuid.uuid4())}
        retrying = AsyncRetrying(
            stop=stop_after_attempt(max(1, e.attempts)),
            wait=wait_exponential_jitter(multiplier=e.backoff_seconds, max=e.backoff_max_seconds,
                                         jitter=e.backoff_seconds),
            retry=retry_if_exception_type(_Transient), reraise=True)
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._once(body, headers)
        except _Transient as exc:
            raise ProviderUnavailable(self.name, exc.reason, str(exc)) from None
        except _Refused as exc:
            raise ProviderUnavailable(self.name, "http-4xx", str(exc)) from None
        except OpenedState:
            raise ProviderUnavailable(self.name, "circuit-open") from None
        raise AssertionError("unreachable: tenacity returns or raises")

    async def _once(self, body: dict[str, Any], headers: dict[str, str]) -> Answer:
        breaker = await self.breakers.get_breaker(self.name)
        async with breaker:  # an exception leaving this block counts as a failure
            return await self._post(body, headers)

    async def _post(self, body: dict[str, Any], headers: dict[str, str]) -> Answer:
        client = self.client or httpx.AsyncClient()
        try:
            r = await client.post(self.endpoint.url, json=body, headers=headers,
                                  timeout=self.endpoint.timeout_seconds)
        except httpx.TimeoutException as exc:
            raise _Transient("timeout", repr(exc)) from None
        except httpx.TransportError as exc:
            raise _Transient("connection", repr(exc)) from None
        finally:
            if self.client is None:
                await client.aclose()
        if r.status_code >= 500 or r.status_code == 429:
            raise _Transient(f"http-{r.status_code // 100}xx", f"status {r.status_code}")
        if r.status_code >= 400:
            raise _Refused(f"status {r.status_code}")
        return _parse(r)


def _parse(r: httpx.Response) -> Answer:
    try:
        data = r.json()
    except ValueError:
        raise _Transient("malformed", "the body is not JSON") from None
    if not isinstance(data, dict) or data.get("result") not in RESULTS:
        raise _Transient("malformed", f"no known result in {str(data)[:80]!r}")
    tenure = data.get("tenure_months")
    if tenure is not None and (not isinstance(tenure, int) or isinstance(tenure, bool)
                               or tenure < 0):
        raise _Transient("malformed", f"tenure_months {tenure!r}")
    return Answer(RESULTS[data["result"]], tenure)


@dataclass
class HttpIdentityProviders:
    """The three checks, each with its own endpoint, credential and breaker."""

    public_security_check: HttpCheck
    carrier_check: HttpCheck
    business_check: HttpCheck
    name: str = "http"

    @classmethod
    def of(cls, public_security: Endpoint, carrier: Endpoint, business: Endpoint,
           client: httpx.AsyncClient | None = None) -> HttpIdentityProviders:
        return cls(HttpCheck("public-security", public_security, client),
                   HttpCheck("carrier", carrier, client),
                   HttpCheck("business-registry", business, client))

    async def public_security(self, *, name: str, id_number: str) -> Outcome:
        return (await self.public_security_check.ask(
            {"name": name, "id_number": id_number})).outcome

    async def carrier(self, *, name: str, id_number: str, phone: str) -> Answer:
        # the carriers take the 11-digit national number
        return await self.carrier_check.ask({"name": name, "id_number": id_number,
                                             "mobile": phone.removeprefix("+86")})

    async def business(self, *, company_name: str, uscc: str, representative_name: str,
                       representative_id: str) -> Outcome:
        return (await self.business_check.ask(
            {"company_name": company_name, "uscc": uscc,
             "legal_representative_name": representative_name,
             "legal_representative_id_number": representative_id})).outcome
