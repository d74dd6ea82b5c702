"""Field types shared by several producers' contracts (not a producer itself)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from ..registry import EventPayload

EntityType = Literal["natural_person", "legal_person", "unincorporated_organization"]
IdKind = Literal["resident_id", "uscc"]

# What an account may do; restrictions (A17.2, A13.1, A19.2) remove capabilities.
Capability = Literal[
    "publish", "comment", "message", "advertise", "follow_recommendation", "live_stream",
    "tipping", "paid_content", "ecommerce",
]
CAPABILITIES: tuple[str, ...] = Capability.__args__  # type: ignore[attr-defined]


class Part(BaseModel):
    """A frozen value inside a payload; unknown fields are refused like in payloads."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class SealedIdentity(Part):
    """Who runs an account, as events carry it: sealed, blind-indexed and masked.

    Never in clear (DESIGN: personal data in events); see ``libs.runtime.pii``. The
    blind indexes let a service match "the same ID number" or "the same phone" across
    accounts (limits A10.1, bans A8.3) without holding the number.
    """

    id_kind: IdKind
    id_number_sealed: str
    id_number_blind: str
    id_number_masked: str
    holder_name_sealed: str
    holder_name_masked: str
    phone_sealed: str
    phone_blind: str
    phone_masked: str
    # Organizations: the legal representative, for the four-factor business check.
    representative_name_sealed: str | None = None
    representative_id_sealed: str | None = None


class Finding(Part):
    """One reason a check failed: which field, a stable code, and what it matched."""

    field: str
    code: str
    detail: str
    matched: str | None = None
    score: float | None = None


class AccountDecision(EventPayload):
    """The base of every decision about an account: which account, the obligations it
    applies (``legal_basis``, ids of OBLIGATIONS.md) and the events that caused it
    (``evidence_event_ids``; empty when a person's request or the clock decided alone).

    A decision traced to its article and to the events behind it is what lets a
    regulator, an appeal or a replay explain it.
    """

    account_id: str
    legal_basis: list[str]
    evidence_event_ids: list[str] = []
