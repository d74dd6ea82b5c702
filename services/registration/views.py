"""Queries over the ``accounts`` read model (eventually consistent) and the event streams,
and how the API presents an account; each query opens its own connection."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import orjson
from pydantic import BaseModel, Field
from sqlalchemy import text

from libs.events import Database, EventStore
from libs.events.contracts.registration import Organization
from libs.runtime.responses import Page

from .domain import stream_of

_GET = text("SELECT doc FROM projection_documents WHERE projection = 'accounts' AND key = :key")
_LIST = text("""
    SELECT l.account_id, d.doc FROM registration_account_list l
    JOIN projection_documents d ON d.projection = 'accounts' AND d.key = l.account_id
    WHERE (CAST(:owner AS text) IS NULL OR l.owner = CAST(:owner AS text))
      AND (CAST(:status AS text) IS NULL OR l.status = CAST(:status AS text))
      AND (CAST(:province AS text) IS NULL OR l.province = CAST(:province AS text))
      AND l.account_id > CAST(:after AS text)
    ORDER BY l.account_id
    LIMIT :limit
""")
_SWEEP = text("""
    SELECT account_id FROM registration_account_list
    WHERE (status IN ('active', 'restricted') AND last_active_at <= :cutoff)
       OR (due_at IS NOT NULL AND due_at <= :now)
    ORDER BY account_id
""")
_AWAITING = text("""
    SELECT count(*) FROM registration_account_list
    WHERE status = 'pending_verification' AND last_active_at > :since
""")

# Fields of the document that are internal state, not part of the account's view.
_HIDDEN = ("application", "owner", "pending_changes", "version")


# -- the account as the API answers it (the response models of its reads) -----------------
# The routes validate what present() builds against AccountView and answer with
# ``response_model_exclude_unset``: a member a document lacks stays absent.
class OwnerView(BaseModel):
    """Who runs the account, masked (the sealed identity never leaves the service)."""

    id_kind: str | None
    id_number_masked: str | None
    holder_name_masked: str | None
    phone_masked: str | None


class ProfileView(BaseModel):
    """The profile in force (proposed changes: ``pending_profile_changes``); empty for a
    registration refused before it was opened."""

    name: str | None = None
    description: str | None = None
    avatar_sha256: str | None = None
    avatar_phash: str | None = None
    avatar_url: str | None = None


class Ban(BaseModel):
    """A re-registration ban on the identity and phone (A8.3); ``until`` null: permanent."""

    severity: str
    until: str | None
    keys: list[str]


class AgreementView(BaseModel):
    accepted_version: str | None
    current_version: str
    current_accepted: bool
    withholds: list[str] | None = Field(None, description="the capabilities withheld until "
                                                          "the current version is accepted "
                                                          "(A6); absent once it is")


class AccountView(BaseModel):
    """An account as the API shows it (present()): status, capabilities and
    restrictions (A17.2, A13.1), profile, agreement; personal data masked."""

    account_id: str
    status: str
    phase: str
    entity_type: str
    category: str
    province: str
    operations_province: str
    registered_at: str
    last_active_at: str
    owner: OwnerView
    profile: ProfileView
    pending_profile_changes: list[str]
    organization: Organization | None  # as the registration event carries it
    contact_masked: str
    capabilities: dict[str, bool]
    suspensions: dict[str, str] = Field(description="suspension id -> reason")
    restrictions: dict[str, list[str]] = Field(description="restriction id -> capabilities")
    expiries: dict[str, str] = Field(description="restriction or suspension id -> its end")
    credit_level: str | None
    credit_withheld: list[str]
    correction_deadline: str | None
    extra_verification: bool
    closed_reason: str | None
    bans: dict[str, Ban] = Field(description="measure id -> ban")
    warnings: int
    agreement: AgreementView
    stream_version: int


class AccountPage(Page[AccountView]):
    """A page of accounts in id order."""


def present(doc: dict[str, Any], *, current_agreement: str) -> dict[str, Any]:
    """The account as the API shows it: personal data masked, never sealed or clear."""
    view = {k: v for k, v in doc.items() if k not in _HIDDEN}
    owner = doc.get("owner") or {}
    view["owner"] = {k: owner.get(k) for k in ("id_kind", "id_number_masked",
                                               "holder_name_masked", "phone_masked")}
    view["pending_profile_changes"] = sorted(doc.get("pending_changes", {}))
    accepted = doc.get("agreement_version") == current_agreement
    view["agreement"] = {"accepted_version": doc.get("agreement_version"),
                         "current_version": current_agreement, "current_accepted": accepted}
    if not accepted and isinstance(view.get("capabilities"), dict):
        # A6: once the platform requires a new agreement version, the account may not
        # publish until its operator accepts it (POST .../agreement). Payloads here, at read
        # time, because the current version is the platform's setting, not an event.
        view["capabilities"] = {**view["capabilities"], "publish": False}
        view["agreement"]["withholds"] = ["publish"]
    view["stream_version"] = doc.get("version")
    view.pop("agreement_version", None)
    return view


async def get_account(db: Database, account_id: str) -> dict[str, Any] | None:
    async with db.connect() as conn:
        raw = await conn.fetchval(_GET, {"key": account_id})
    return orjson.loads(raw) if raw else None


async def list_accounts(db: Database, *, owner: str | None, status: str | None,
                        province: str | None, after: str, limit: int
                        ) -> tuple[list[dict[str, Any]], str | None]:
    """A page of accounts in id order and the cursor of the next page (None at the end)."""
    async with db.connect() as conn:
        rows = await conn.fetch(_LIST, {"owner": owner, "status": status,
                                        "province": province, "after": after,
                                        "limit": limit + 1})
    docs = [orjson.loads(r[1]) for r in rows[:limit]]
    return docs, (rows[limit - 1][0] if len(rows) > limit else None)


async def sweep_candidates(db: Database, *, now: datetime, inactivity_months: int
                           ) -> list[str]:
    """Accounts the sweep may act on; the domain re-decides each on its own stream."""
    cutoff = now - timedelta(days=28 * inactivity_months)  # a superset of "6 months"
    async with db.connect() as conn:
        rows = await conn.fetch(_SWEEP, {"cutoff": cutoff.timestamp(),
                                         "now": now.timestamp()})
    return [r[0] for r in rows]


async def awaiting_verification(db: Database, *, since: datetime) -> int:
    """Accounts registered after ``since`` that still await verification's answer: the
    activation backlog that new registrations are admitted against (ADR 0044)."""
    async with db.connect() as conn:
        return await conn.fetchval(_AWAITING, {"since": since.timestamp()})


HISTORY_PAGE = 100  # events per page of an account's history, unless asked otherwise
HISTORY_PAGE_MAX = 1000
# Stream versions are PostgreSQL integers (libs/events/migrations/kernel_0001.py): a page
# after a larger one would fail in the database, not be empty.
VERSION_MAX = 2**31 - 1


class HistoryEvent(BaseModel):
    """One stored event of the account, personal data sealed and masked as stored."""

    id: str
    type: str
    time: str
    stream_version: int
    schema_version: int
    correlation_id: str
    causation_id: str | None
    traceparent: str | None
    data: dict[str, Any]


class HistoryPage(BaseModel):
    """A page of the account's stream in version order; ``next`` is the ``after`` of the
    next page (``None`` on the last one)."""

    account_id: str
    events: list[HistoryEvent]
    next: int | None


async def history(db: Database, store: EventStore, account_id: str, *, after: int = 0,
                  limit: int = HISTORY_PAGE) -> HistoryPage | None:
    """The account's events after version ``after`` (at most ``limit``): personal data
    sealed and masked, never in clear; ``None`` when the account has no stream."""
    stream_id = stream_of(account_id)
    async with db.connect() as conn:
        events = await store.read_stream(conn, stream_id, after_version=after,
                                         limit=limit + 1)
        if not events and (after == 0 or await store.stream_version(conn, stream_id) == 0):
            return None
    more = len(events) > limit
    events = events[:limit]
    return HistoryPage(
        account_id=account_id,
        events=[HistoryEvent(id=e.id, type=e.type, time=e.time.isoformat(),
                             stream_version=e.stream_version, schema_version=e.schema_version,
                             correlation_id=e.correlation_id, causation_id=e.causation_id,
                             traceparent=e.traceparent, data=e.data) for e in events],
        next=events[-1].stream_version if more else None)
