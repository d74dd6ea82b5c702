"""Use cases: one command or one incoming event -> one transaction on one stream."""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Awaitable, Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text

from libs import identity as ids
from libs.events import START, ConcurrencyError, Database, Envelope, EventStore, LogCursor
from libs.events.db import Tx
from libs.runtime.idempotency import Answer, run_idempotent
from libs.runtime.pii import Sealer
from libs.runtime.problems import ProblemError

from .domain import (
    NATURAL,
    Decided,
    DomainError,
    IdentityAnswers,
    IdentityDecision,
    P,
    Verification,
    decide_identity,
    evolve,
    fold,
    qualification_needs,
)
from .profile_checks import Policy, ProtectedRegistry, Subject, check_profile
from .providers import IdentityProvider

log = logging.getLogger(__name__)
SOURCE = "/verification"
REGISTRY_EVENTS = frozenset({P + "ProtectedNameAdded", P + "ProtectedNameRemoved",
                             P + "ProhibitedWordsChanged"})


def stream_of(account_id: str) -> str:
    return f"verification-{account_id}"


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Deps:
    """What the handlers need; built in bootstrap."""

    db: Database
    store: EventStore
    sealer: Sealer
    provider: IdentityProvider
    registry: ProtectedRegistry
    policy: Policy = Policy()
    min_tenure_months: int = 6
    reinspection_interval_days: int = 180
    sample_fraction: float = 0.02
    clock: Callable[[], datetime] = utcnow
    committed: Callable[[], None] = field(default=lambda: None)
    registry_cursor: LogCursor = START
    registry_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class NotFoundError(ProblemError):
    status = 404
    code = "verification-not-found"
    title = "No verification for this account"


@contextmanager
def problems():
    try:
        yield
    except DomainError as exc:
        raise ProblemError(exc.detail, status=exc.status, code=exc.code,
                           title=exc.code.replace("-", " ").capitalize()) from None


# -- the registry in memory: follows the service's own log ---------------------------------
async def catch_up_registry(deps: Deps, tx: Tx | None = None) -> int:
    """Apply registry events committed since the last call (by any worker of the service).

    Reads the gap-safe global log, so a name added by another process is seen as soon as
    it is committed; cheap when nothing is new (one query). Inside a handler pass its
    transaction: SQLite has one writer, and a second connection would wait on it forever.
    """
    applied = 0
    async with deps.registry_lock:
        while True:
            if tx is not None:
                page = await deps.store.read_all(tx, deps.registry_cursor, limit=5000)
            else:
                async with deps.db.connect() as conn:
                    page = await deps.store.read_all(conn, deps.registry_cursor, limit=5000)
            for e in page.events:
                if e.type in REGISTRY_EVENTS:
                    deps.registry.apply(e.type, e.data)
                    applied += 1
            deps.registry_cursor = page.cursor
            if len(page.events) < 5000:
                return applied


# -- identity (A8.1) -------------------------------------------------------------------------
async def check_identity(deps: Deps, entity_type: str, sealed: dict[str, Any], *, extra: bool
                         ) -> IdentityDecision:
    """Formats first (libs.identity), then the providers, then the multi-factor rule."""
    op = deps.sealer.open
    name, number, phone = (op(sealed["holder_name_sealed"]), op(sealed["id_number_sealed"]),
                           op(sealed["phone_sealed"]))
    rep_name = op(sealed["representative_name_sealed"]) if sealed.get(
        "representative_name_sealed") else None
    rep_id = op(sealed["representative_id_sealed"]) if sealed.get(
        "representative_id_sealed") else None
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
    if reasons:
        return IdentityDecision(False, None, (), tuple(reasons))
    p = deps.provider
    carrier_name, carrier_id = (name, number) if entity_type == NATURAL else (rep_name, rep_id)
    carrier = await p.carrier(name=carrier_name, id_number=carrier_id, phone=phone)
    if entity_type == NATURAL:
        answers = IdentityAnswers(public_security=await p.public_security(name=name,
                                                                           id_number=number),
                                  carrier=carrier)
    else:
        answers = IdentityAnswers(
            business=await p.business(company_name=name, uscc=number,
                                      representative_name=rep_name, representative_id=rep_id),
            representative=await p.public_security(name=rep_name, id_number=rep_id),
            carrier=carrier)
    return decide_identity(entity_type, answers, extra=extra,
                           min_tenure_months=deps.min_tenure_months)


def subject_of(deps: Deps, state: Verification) -> Subject:
    blinds = {state.identity["id_number_blind"]}
    rep = state.identity.get("representative_id_sealed")
    if rep:
        blinds.add(deps.sealer.blind("id_number", deps.sealer.open(rep).strip().upper()))
    return Subject(state.entity_type, state.category, frozenset(blinds), state.has_news_permit)


def profile_findings(deps: Deps, state: Verification, profile: dict[str, Any]) -> list[dict]:
    return check_profile(name=profile["name"], description=profile.get("description", ""),
                         avatar_phash=profile.get("avatar_phash"),
                         subject=subject_of(deps, state), registry=deps.registry,
                         policy=deps.policy)


# -- appending ---------------------------------------------------------------------------------
async def load(deps: Deps, tx: Tx, account_id: str) -> Verification | None:
    return fold(await deps.store.read_stream(tx, stream_of(account_id)))


async def append(deps: Deps, tx: Tx, stream: str, subject: str, expected: int,
                 decided: Decided, cause: Envelope | None = None) -> list[Envelope]:
    if not decided:
        return []
    now = deps.clock()
    common = {"stream_id": stream, "source": SOURCE, "time": now, "subject": subject}
    if cause is not None:
        envs = [cause.caused(type=t, data=d, **common) for t, d in decided]
    else:
        first = Envelope.new(type=decided[0][0], data=decided[0][1], **common)
        envs = [first] + [first.caused(type=t, data=d, **common) for t, d in decided[1:]]
    return await deps.store.append(tx, stream, expected, envs)


def _state_after(state: Verification | None, decided: Decided, now: datetime) -> Verification:
    for t, d in decided:
        state = evolve(state, t, d, now, "")
    assert state is not None
    return state


# -- incoming: registrations and profile changes --------------------------------------------
async def when_registration_submitted(deps: Deps, tx: Tx, e: Envelope) -> None:
    """Open the account's verification, check identity and profile, say what it needs."""
    d = e.data
    account_id = d["account_id"]
    stream = stream_of(account_id)
    if await deps.store.stream_version(tx, stream) > 0:
        log.info("%s %s: %s is already being verified; skipped", e.type, e.id, account_id)
        return
    await catch_up_registry(deps, tx)
    now = deps.clock()
    opened = {k: d[k] for k in ("account_id", "entity_type", "identity", "profile",
                                "category", "province", "contact_sealed", "contact_masked")}
    opened |= {"organization": d.get("organization"),
               "extra_verification_required": bool(d.get("extra_verification_required"))}
    decided: Decided = [(P + "VerificationOpened", {**opened, "legal_basis": ["A8.1", "A8.2"],
                                                    "evidence_event_ids": [e.id]})]
    state = _state_after(None, decided, now)
    identity = await check_identity(deps, state.entity_type, state.identity, extra=state.extra)
    if not identity.verified:
        decided.append((P + "IdentityVerificationFailed", {
            "account_id": account_id, "reasons": list(identity.reasons),
            "detail": "the identity could not be verified: " + ", ".join(identity.reasons),
            "legal_basis": ["A8.1"] + (["A10.1"] if state.extra else []),
            "evidence_event_ids": [e.id]}))
        await append(deps, tx, stream, account_id, 0, decided, cause=e)
        return
    decided.append((P + "IdentityVerified", {
        "account_id": account_id, "level": identity.level, "factors": list(identity.factors),
        "provider": deps.provider.name, "extra_verification": state.extra,
        "legal_basis": ["A8.1"] + (["A10.1"] if state.extra else []),
        "evidence_event_ids": [e.id]}))
    decided += _profile_result(deps, state, state.profile, source="registration", cause=e)
    needs = qualification_needs(state.category)
    if needs:
        decided.append((P + "QualificationRequired", {
            "account_id": account_id, "kinds": list(needs), "category": state.category,
            "reason": "category", "legal_basis": ["A5"] if "news_permit" in needs else ["A9.1"],
            "evidence_event_ids": [e.id]}))
    decided += _state_after(None, decided, now).complete([e.id])
    await append(deps, tx, stream, account_id, 0, decided, cause=e)


def _profile_result(deps: Deps, state: Verification, profile: dict[str, Any], *, source: str,
                    cause: Envelope, change_id: str | None = None) -> Decided:
    findings = profile_findings(deps, state, profile)
    common = {"account_id": state.account_id, "change_id": change_id, "source": source,
              "evidence_event_ids": [cause.id]}
    if findings:
        return [(P + "ProfileMismatchFound", {**common, "findings": findings,
                                              "legal_basis": ["A8.2"]})]
    return [(P + "ProfileCheckPassed", {**common, "profile": profile, "legal_basis": ["A8.2"]})]


async def when_profile_change_submitted(deps: Deps, tx: Tx, e: Envelope) -> None:
    """The same checks for a proposed profile: passed (with the change) or a mismatch."""
    d = e.data
    state = await load(deps, tx, d["account_id"])
    if state is None or state.identity_status == "failed":
        log.info("%s %s: no verifiable account %s; skipped", e.type, e.id, d["account_id"])
        return
    await catch_up_registry(deps, tx)
    decided = _profile_result(deps, state, d["proposed"], source="profile_change", cause=e,
                              change_id=d["change_id"])
    decided += _state_after(state, decided, deps.clock()).complete([e.id])
    await append(deps, tx, stream_of(state.account_id), state.account_id, state.version,
                 decided, cause=e)


# -- commands on an account ----------------------------------------------------------------
async def account_command(deps: Deps, account_id: str,
                          decide: Callable[[Verification, Tx], Any], *, key: str | None,
                          digest: str, scope: str, answer: Callable[[Verification, Decided],
                                                                     Answer]) -> Answer:
    async def work(tx: Tx) -> Answer:
        state = await load(deps, tx, account_id)
        if state is None:
            raise NotFoundError(f"no verification for account {account_id}")
        with problems():
            decided = await decide(state, tx)
        await append(deps, tx, stream_of(account_id), account_id, state.version, decided)
        return answer(state, decided)

    result = await run_idempotent(deps.db, key, scope=scope, digest=digest, work=work)
    deps.committed()
    return result


_KEEP_DOCUMENT = text(
    "INSERT INTO verification_documents (sha256, content_type, data, created_at) "
    "VALUES (:sha256, :content_type, :data, :created_at) ON CONFLICT (sha256) DO NOTHING")


async def keep_document(tx: Tx, *, sha256: str, content_type: str, data: bytes,
                        now: datetime) -> None:
    await tx.execute(_KEEP_DOCUMENT, {"sha256": sha256, "content_type": content_type,
                                      "data": data, "created_at": now})


async def reinspect(deps: Deps, account_id: str, *, reason: str, now: datetime
                    ) -> str | None:
    """Schedule and run one re-inspection (A9.3): the current profile against the current
    registry; a failure acts like A8.2. Returns the outcome, None if not applicable."""
    await catch_up_registry(deps)
    async with deps.db.transaction() as tx:
        state = await load(deps, tx, account_id)
        if state is None or not state.verified:
            return None
        rid = str(uuid.uuid4())
        common = {"stream_id": stream_of(account_id), "source": SOURCE, "time": deps.clock(),
                  "subject": account_id}
        scheduled = Envelope.new(type=P + "ReinspectionScheduled", data={
            "account_id": account_id, "reinspection_id": rid, "reason": reason,
            "legal_basis": ["A9.3"]}, **common)
        findings = profile_findings(deps, state, state.profile)
        ev = [scheduled.id]
        if findings:
            result: Decided = [(P + "ProfileMismatchFound", {
                "account_id": account_id, "source": "reinspection", "reinspection_id": rid,
                "findings": findings, "legal_basis": ["A9.3", "A8.2"],
                "evidence_event_ids": ev})]
            result += state.suspend_badge("reinspection_failed", ["A9.3", "A8.2"], ev)
        else:
            result = [(P + "ReinspectionPassed", {"account_id": account_id,
                                                  "reinspection_id": rid,
                                                  "legal_basis": ["A9.3"],
                                                  "evidence_event_ids": ev})]
        # one append: the store takes one append per stream and transaction
        await deps.store.append(tx, stream_of(account_id), state.version, [scheduled] + [
            scheduled.caused(type=t, data=d, **common) for t, d in result])
    return "failed" if findings else "passed"


async def expire(deps: Deps, account_id: str, now: datetime) -> list[str]:
    async with deps.db.transaction() as tx:
        state = await load(deps, tx, account_id)
        if state is None:
            return []
        decided = state.expire(now)
        await append(deps, tx, stream_of(account_id), account_id, state.version, decided)
    return [d["case_id"] for t, d in decided if t == P + "QualificationExpired"]


def sample(account_ids: list[str], fraction: float, seed: int | None) -> list[str]:
    """A reproducible random sample (given a seed) of about ``fraction`` of the accounts."""
    rng = random.Random(seed)
    return [a for a in sorted(account_ids) if rng.random() < fraction]


async def retrying(fn, *args, **kwargs):
    """Run a one-transaction step again if its stream moved on meanwhile."""
    for attempt in range(3):
        try:
            return await fn(*args, **kwargs)
        except ConcurrencyError:
            if attempt == 2:
                raise
            log.info("%s: stream moved on, retrying", fn.__name__)



# -- the protected-name registry and the prohibited words (operator commands) --------------
async def _registry_command(deps: Deps, key: str | None, scope: str, digest: str,
                            work: Callable[[Tx], Awaitable[Answer]]) -> Answer:
    """One change to the protected-name registry or the word list, then this process's
    in-memory registry brought up to it (other workers catch up before their next check)."""
    answer = await run_idempotent(deps.db, key, scope=scope, digest=digest, work=work)
    deps.committed()
    await catch_up_registry(deps)
    return answer


async def add_protected_name(deps: Deps, data: dict[str, Any], *, key: str | None,
                             digest: str) -> Answer:
    protected_id = str(uuid.uuid4())

    async def work(tx: Tx) -> Answer:
        await append(deps, tx, f"protected-name-{protected_id}", protected_id, 0,
                     [(P + "ProtectedNameAdded", {"protected_id": protected_id, **data,
                                                  "legal_basis": ["A8.2"]})])
        return Answer(201, {"protected_id": protected_id, **data})

    return await _registry_command(deps, key, "verification.protected-names", digest, work)


async def remove_protected_name(deps: Deps, protected_id: str, *, by: str, key: str | None,
                                digest: str) -> Answer:
    stream = f"protected-name-{protected_id}"

    async def work(tx: Tx) -> Answer:
        events = await deps.store.read_stream(tx, stream)
        if not events or events[-1].type == P + "ProtectedNameRemoved":
            raise ProblemError(f"no protected name {protected_id}", status=404,
                               code="protected-name-not-found", title="No such protected name")
        await append(deps, tx, stream, protected_id, len(events),
                     [(P + "ProtectedNameRemoved", {"protected_id": protected_id,
                                                    "removed_by": by,
                                                    "legal_basis": ["A8.2"]})])
        return Answer(200, {"protected_id": protected_id, "removed": True})

    return await _registry_command(deps, key, "verification.protected-names.delete", digest, work)


async def change_prohibited_words(deps: Deps, *, added: list[str], removed: list[str], by: str,
                                  key: str | None, digest: str) -> Answer:
    async def work(tx: Tx) -> Answer:
        version = await deps.store.stream_version(tx, "prohibited-words")
        await append(deps, tx, "prohibited-words", "prohibited-words", version,
                     [(P + "ProhibitedWordsChanged", {"added": added, "removed": removed,
                                                      "changed_by": by,
                                                      "legal_basis": ["A8.2"]})])
        return Answer(200, {"added": added, "removed": removed})

    return await _registry_command(deps, key, "verification.prohibited-words", digest, work)
