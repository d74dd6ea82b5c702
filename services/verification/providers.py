"""Real-name providers (A8.1) behind one interface, and the local test double.

In practice three external checks exist: the carrier's three-factor check (name + ID
number + phone: is the phone registered to that person, and since when), the public
security two-factor check (name + ID number) and the business registry's four-factor
check (company name + USCC + legal representative's name + ID number). Each answers
``match``, ``mismatch`` or ``unknown`` (it cannot tell: no record, provider down); the
domain (:func:`services.verification.domain.decide_identity`) turns the answers into a
decision. Adapters for the real services implement :class:`IdentityProvider`.

:class:`LocalIdentityProvider` is a TEST DOUBLE for development and tests, never for
production (settings refuse it outside development). It is deterministic, and a test
produces a false or borrowed identity with these conventions
(docs/decisions/0013-verification-qualifications-and-providers.md):

- a person's or company's name containing a mismatch marker (default ``冒用`` or
  ``假冒``) does not match its ID number or USCC (public security / business registry
  answer ``mismatch``); a representative's name with a marker fails the four-factor check;
- a phone number ending in ``0000`` is registered to someone else (carrier ``mismatch``);
  ending in ``9999``, the carrier has no record (``unknown``); ending in ``1111``, it
  was registered one month ago (short tenure); any other number: 36 months.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

Outcome = Literal["match", "mismatch", "unknown"]


@dataclass(frozen=True)
class CarrierAnswer:
    outcome: Outcome
    tenure_months: int | None = None


class IdentityProvider(Protocol):
    """The external real-name checks; every method is one provider call."""

    name: str

    async def public_security(self, *, name: str, id_number: str) -> Outcome:
        """Two-factor: does the resident ID number belong to a person of this name?"""
        ...

    async def carrier(self, *, name: str, id_number: str, phone: str) -> CarrierAnswer:
        """Three-factor: is the phone registered to this person, and since when?"""
        ...

    async def business(self, *, company_name: str, uscc: str, representative_name: str,
                       representative_id: str) -> Outcome:
        """Four-factor: is the company registered under this USCC with this representative?"""
        ...


@dataclass(frozen=True)
class LocalIdentityProvider:
    """Deterministic answers by the conventions of the module docstring (a test double)."""

    name: str = "local"
    mismatch_markers: tuple[str, ...] = ("冒用", "假冒")

    def _false(self, name: str) -> bool:
        return any(marker in name for marker in self.mismatch_markers)

    async def public_security(self, *, name: str, id_number: str) -> Outcome:
        return "mismatch" if self._false(name) else "match"

    async def carrier(self, *, name: str, id_number: str, phone: str) -> CarrierAnswer:
        if phone.endswith("0000") or self._false(name):
            return CarrierAnswer("mismatch")
        if phone.endswith("9999"):
            return CarrierAnswer("unknown")
        return CarrierAnswer("match", 1 if phone.endswith("1111") else 36)

    async def business(self, *, company_name: str, uscc: str, representative_name: str,
                       representative_id: str) -> Outcome:
        if self._false(company_name) or self._false(representative_name):
            return "mismatch"
        return "match"


def provider_named(name: str) -> IdentityProvider:
    if name == "local":
        return LocalIdentityProvider()
    raise ValueError(f"no identity provider adapter named {name!r} (known: local)")
