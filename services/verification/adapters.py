"""Verification's outside world: the real-name providers (A8.1) behind one interface and
their local test double, the identity check that asks them, the protected-name registry
kept in memory from the log, and the table of submitted documents.

In practice three external checks exist: the carrier's three-factor check (name + ID
number + phone: is the phone registered to that person, and since when), the public
security two-factor check (name + ID number) and the business registry's four-factor
check (company name + USCC + legal representative's name + ID number). Each answers
``match``, ``mismatch`` or ``unknown`` (it cannot tell: no record, provider down); the
rule (:func:`services.verification.rules.decide_identity`) turns the answers into a
decision. :class:`HttpIdentityProvider` asks the real services over HTTP
(``libs.identity.providers``: endpoints, credentials, timeouts, retries, circuit
breakers; the mapping is in the README); a provider that gives no answer is
``unavailable``, never a verdict (ADR 0026).

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

import asyncio
import logging
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import text

from libs import identity as ids
from libs.events import START, Database, EventStore, LogCursor
from libs.events.contracts.verification import (
    ProhibitedWordsChanged,
    ProtectedNameAdded,
    ProtectedNameRemoved,
)
from libs.events.db import Tx
from libs.identity.providers import HttpIdentityProviders, ProviderUnavailable
from libs.runtime.pii import Sealer, open_identity
from libs.screening import LogoIndex, NameIndex, normalise

from .domain import NATURAL, IdentityDecision
from .rules import CarrierAnswer, IdentityAnswers, Outcome, ProtectedEntry, decide_identity

log = logging.getLogger(__name__)


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


@dataclass
class HttpIdentityProvider:
    """The real providers over HTTP; :class:`ProviderUnavailable` when one gives no answer."""

    checks: HttpIdentityProviders
    name: str = "http"

    async def public_security(self, *, name: str, id_number: str) -> Outcome:
        return await self.checks.public_security(name=name, id_number=id_number)

    async def carrier(self, *, name: str, id_number: str, phone: str) -> CarrierAnswer:
        answer = await self.checks.carrier(name=name, id_number=id_number, phone=phone)
        return CarrierAnswer(answer.outcome, answer.tenure_months)

    async def business(self, *, company_name: str, uscc: str, representative_name: str,
                       representative_id: str) -> Outcome:
        return await self.checks.business(company_name=company_name, uscc=uscc,
                                          representative_name=representative_name,
                                          representative_id=representative_id)


def provider_named(name: str, http: HttpIdentityProviders | None = None) -> IdentityProvider:
    """``local`` (the test double) or ``http`` (the real providers, configured)."""
    if name == "local":
        return LocalIdentityProvider()
    if name == "http" and http is not None:
        return HttpIdentityProvider(http)
    raise ValueError(f"no identity provider adapter named {name!r} (known: local, http)")


async def _asked(call: Awaitable[Any], unavailable: Any) -> Any:
    """The provider's answer, or ``unavailable`` when it gave none (logged)."""
    try:
        return await call
    except ProviderUnavailable as exc:
        log.warning("identity provider unavailable: %s", exc)
        return unavailable


# -- the identity check (A8.1) ------------------------------------------------------------------
@dataclass(frozen=True)
class _Numbers:
    name: str
    number: str
    phone: str
    rep_name: str | None
    rep_id: str | None
    reasons: tuple[str, ...]


def _numbers(sealer: Sealer, entity_type: str, sealed: dict[str, Any]) -> _Numbers:
    """The identity opened and its numbers checked (libs.identity); no provider asked."""
    def op(field: str) -> str:
        return open_identity(sealer, sealed, field)

    name, number, phone = op("holder_name_sealed"), op("id_number_sealed"), op("phone_sealed")
    rep_name = op("representative_name_sealed") if sealed.get(
        "representative_name_sealed") else None
    rep_id = op("representative_id_sealed") if sealed.get("representative_id_sealed") else None
    reasons: list[str] = []
    try:
        number = (ids.resident_id(number) if entity_type == NATURAL
                  else ids.social_credit_code(number))
    except ids.IdentityNumberError as exc:
        reasons.append(exc.code)
    try:
        phone = ids.mobile_number(phone)
    except ids.IdentityNumberError as exc:
        reasons.append(exc.code)
    if entity_type != NATURAL:
        if not (rep_name and rep_id):
            reasons.append("representative-missing")
        else:
            try:
                rep_id = ids.resident_id(rep_id)
            except ids.IdentityNumberError as exc:
                reasons.append("representative-" + exc.code)
    return _Numbers(name, number, phone, rep_name, rep_id, tuple(reasons))


def malformed_identity(sealer: Sealer, entity_type: str,
                       sealed: dict[str, Any]) -> IdentityDecision | None:
    """The failed decision when the identity's numbers are malformed (no provider is asked
    then), else None."""
    reasons = _numbers(sealer, entity_type, sealed).reasons
    return IdentityDecision(False, None, (), reasons) if reasons else None


async def verify_identity(provider: IdentityProvider, sealer: Sealer, entity_type: str,
                          sealed: dict[str, Any], *, extra: bool, min_tenure_months: int
                          ) -> IdentityDecision:
    """Formats first (libs.identity), then the providers, then the multi-factor rule.
    Call it with no transaction open: a provider may take seconds (ADR 0026)."""
    n = _numbers(sealer, entity_type, sealed)
    if n.reasons:
        return IdentityDecision(False, None, (), n.reasons)
    name, number, phone, rep_name, rep_id = n.name, n.number, n.phone, n.rep_name, n.rep_id
    p, down = provider, "unavailable"
    carrier_name, carrier_id = (name, number) if entity_type == NATURAL else (rep_name, rep_id)
    carrier = await _asked(p.carrier(name=carrier_name, id_number=carrier_id, phone=phone),
                           CarrierAnswer(down))
    if entity_type == NATURAL:
        answers = IdentityAnswers(
            public_security=await _asked(p.public_security(name=name, id_number=number), down),
            carrier=carrier)
    else:
        answers = IdentityAnswers(
            business=await _asked(p.business(company_name=name, uscc=number,
                                             representative_name=rep_name,
                                             representative_id=rep_id), down),
            representative=await _asked(p.public_security(name=rep_name, id_number=rep_id),
                                        down),
            carrier=carrier)
    return decide_identity(entity_type, answers, extra=extra, min_tenure_months=min_tenure_months)


# -- the protected-name registry, in memory (A8.2) --------------------------------------------
REGISTRY_EVENTS = frozenset({ProtectedNameAdded.event_type, ProtectedNameRemoved.event_type,
                             ProhibitedWordsChanged.event_type})
_PAGE = 5000


@dataclass
class ProtectedRegistry:
    """Protected names, their logos and the prohibited words, in memory; fed by the
    registry's events (``apply``) and by the configured words."""

    base_words: Iterable[str] = ()
    names: NameIndex = field(default_factory=NameIndex)
    logos: LogoIndex = field(default_factory=LogoIndex)
    entries: dict[str, ProtectedEntry] = field(default_factory=dict)
    extra_words: set[str] = field(default_factory=set)
    removed_words: set[str] = field(default_factory=set)
    # how far the log has been applied, and one catch-up at a time
    cursor: LogCursor = START
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def __post_init__(self) -> None:
        self.base_words = frozenset(self.base_words)
        self._words: dict[str, str] | None = None

    def add(self, entry: ProtectedEntry, logo_phash: str | None = None) -> None:
        self.remove(entry.protected_id)
        self.entries[entry.protected_id] = entry
        self.names.add(entry.protected_id, entry.name)
        for i, alias in enumerate(entry.aliases):
            self.names.add(f"{entry.protected_id}#{i}", alias)
        if logo_phash:
            self.logos.add(entry.protected_id, logo_phash)

    def remove(self, protected_id: str) -> None:
        old = self.entries.pop(protected_id, None)
        if old is None:
            return
        self.names.remove(protected_id)
        for i in range(len(old.aliases)):
            self.names.remove(f"{protected_id}#{i}")
        self.logos.remove(protected_id)

    def change_words(self, added: Iterable[str], removed: Iterable[str]) -> None:
        for w in added:
            self.extra_words.add(w)
            self.removed_words.discard(w)
        for w in removed:
            self.extra_words.discard(w)
            self.removed_words.add(w)
        self._words = None

    @property
    def words(self) -> dict[str, str]:
        """Normalised prohibited word -> the word as listed."""
        if self._words is None:
            listed = (set(self.base_words) | self.extra_words) - self.removed_words
            self._words = {normalise(w): w for w in listed if normalise(w)}
        return self._words

    def apply(self, event_type: str, data: dict) -> None:
        """Fold one registry event (others are ignored)."""
        name = event_type.removeprefix("verification.")
        if name == "ProtectedNameAdded":
            logo = data.get("logo") or {}
            self.add(ProtectedEntry(data["protected_id"], data["name"], data["kind"],
                                    data.get("holder_blind"), tuple(data.get("aliases", []))),
                     logo.get("phash"))
        elif name == "ProtectedNameRemoved":
            self.remove(data["protected_id"])
        elif name == "ProhibitedWordsChanged":
            self.change_words(data.get("added", []), data.get("removed", []))

    def entry_of(self, match_id: str) -> ProtectedEntry | None:
        return self.entries.get(match_id.split("#", 1)[0])

    async def catch_up(self, db: Database, store: EventStore, tx: Tx | None = None) -> int:
        """Apply the registry events committed since the last call (by any worker of the
        service): the gap-safe global log, so a name added by another process counts as
        soon as it is committed; one query when nothing is new. Inside a handler pass its
        transaction: SQLite has one writer, and a second connection would wait forever."""
        async with self.lock:
            if tx is not None:
                return await self._follow(store, tx)
            async with db.connect() as conn:
                return await self._follow(store, conn)

    async def _follow(self, store: EventStore, conn: Tx) -> int:
        applied = 0
        while True:
            page = await store.read_all(conn, self.cursor, limit=_PAGE)
            for e in page.events:
                if e.type in REGISTRY_EVENTS:
                    self.apply(e.type, e.data)
                    applied += 1
            self.cursor = page.cursor
            if len(page.events) < _PAGE:
                return applied


# -- submitted documents ------------------------------------------------------------------------
_KEEP_DOCUMENT = text(
    "INSERT INTO verification_documents (sha256, content_type, data, created_at) "
    "VALUES (:sha256, :content_type, :data, :created_at) ON CONFLICT (sha256) DO NOTHING")


async def keep_document(tx: Tx, *, sha256: str, content_type: str, data: bytes,
                        now: datetime) -> None:
    """Store a document once by its digest (the events carry only the digest)."""
    await tx.execute(_KEEP_DOCUMENT, {"sha256": sha256, "content_type": content_type,
                                      "data": data, "created_at": now})


# -- pending identity checks (A8.1, ADR 0026) -------------------------------------------------
# Written in the transaction that opens the verification (so a redelivered registration
# queues nothing twice); read and updated by the identity checker, which asks the providers
# with no transaction open.
@dataclass(frozen=True)
class PendingCheck:
    account_id: str
    due_at: datetime
    review_at: datetime
    attempts: int


def _row(r: Any) -> PendingCheck:
    return PendingCheck(r[0], datetime.fromtimestamp(r[1], UTC),
                        datetime.fromtimestamp(r[2], UTC), r[3])


async def queue_identity_check(tx: Tx, account_id: str, *, due_at: datetime,
                               review_at: datetime) -> None:
    await tx.execute(text(
        "INSERT INTO identity_checks (account_id, due_at, review_at, attempts) "
        "VALUES (:a, :due, :review, 0) ON CONFLICT (account_id) DO NOTHING"),
        {"a": account_id, "due": due_at.timestamp(), "review": review_at.timestamp()})


async def identity_checks_due(tx: Tx, now: datetime, limit: int = 100) -> list[PendingCheck]:
    rows = await tx.fetch(text(
        "SELECT account_id, due_at, review_at, attempts FROM identity_checks "
        "WHERE due_at <= :now ORDER BY due_at LIMIT :limit"),
        {"now": now.timestamp(), "limit": limit})
    return [_row(r) for r in rows]


async def pending_identity_check(tx: Tx, account_id: str) -> PendingCheck | None:
    row = await tx.fetchrow(text(
        "SELECT account_id, due_at, review_at, attempts FROM identity_checks "
        "WHERE account_id = :a"), {"a": account_id})
    return _row(row) if row is not None else None


async def reschedule_identity_check(tx: Tx, account_id: str, *, attempts: int,
                                    due_at: datetime) -> None:
    await tx.execute(text(
        "UPDATE identity_checks SET attempts = :n, due_at = :due WHERE account_id = :a"),
        {"a": account_id, "n": attempts, "due": due_at.timestamp()})


async def forget_identity_check(tx: Tx, account_id: str) -> None:
    await tx.execute(text("DELETE FROM identity_checks WHERE account_id = :a"),
                     {"a": account_id})
