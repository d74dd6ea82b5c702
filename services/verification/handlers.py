"""Use cases: one command or one incoming event -> one transaction on one stream.

Handlers return results (pydantic models, kept for an ``Idempotency-Key``) and raise
``libs.domain`` errors; the API presents both. Every change goes through a
:class:`libs.events.Streams`: the account's ``verification-<id>``, a protected name's
``protected-name-<id>``, or the one ``prohibited-words`` stream.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel

from libs.domain import ConflictError, DomainError, NotFoundError
from libs.events import Envelope, EventPayload, Streams, new_id, transact
from libs.events.contracts.registration import (
    AccountRegistrationSubmitted,
    ProfileChangeSubmitted,
)
from libs.events.contracts.transfer import TransferAnnounced, TransferRequested
from libs.events.contracts.verification import (
    AccountVerified,
    ProtectedLogo,
    QualificationExpired,
)
from libs.events.db import Tx
from libs.runtime.deps import ServiceDeps
from libs.runtime.idempotency import run_once
from libs.runtime.pii import Sealer, open_identity
from libs.runtime.tracing import follow_up_span

from . import views
from .adapters import (
    IdentityProvider,
    ProtectedRegistry,
    forget_identity_check,
    keep_document,
    malformed_identity,
    pending_identity_check,
    queue_identity_check,
    reschedule_identity_check,
    verify_identity,
)
from .domain import (
    WORDS_STREAM,
    IdentityDecision,
    Material,
    ProtectedName,
    TransfereeCheck,
    Verification,
    WordList,
    change_words,
    not_verified,
    protect_name,
    stream_of,
    transferee_stream,
    unprotect_name,
)
from .policies import POLICIES, Facts
from .rules import Policy, Subject, check_profile, identity_retry_delay, qualification_needs

log = logging.getLogger(__name__)




@dataclass(kw_only=True)
class Deps(ServiceDeps):
    """What the handlers need; built complete in bootstrap."""

    verifications: Streams[Verification]
    protected_names: Streams[ProtectedName]
    word_list: Streams[WordList]
    sealer: Sealer
    provider: IdentityProvider
    registry: ProtectedRegistry  # in memory, follows the log (catch_up_registry)
    transferees: Streams[TransfereeCheck] | None = None  # transfer applications (A11.2)
    policy: Policy = Policy()
    min_tenure_months: int = 6
    # pending identity checks (ADR 0026): first wait, longest wait, when a person takes over
    identity_retry_seconds: float = 30.0
    identity_retry_max_seconds: float = 1800.0
    identity_check_concurrency: int = 4  # checks asked of the providers at once
    identity_review_after: timedelta = timedelta(hours=24)
    reinspection_interval_days: int = 180
    sample_fraction: float = 0.02
    # the read models brought up to the log (before a sweep reads them)


# -- what handlers take and return ---------------------------------------------------------------
@dataclass(frozen=True)
class Submission:
    """Qualification material and its document, as checked by the API."""

    material: Material
    document: bytes


class NewProtectedName(BaseModel):
    name: str
    kind: Literal["organ", "enterprise", "person", "media"]
    aliases: list[str] = []
    holder_blind: str | None = None
    logo: ProtectedLogo | None = None
    added_by: str


class ProtectedNameKept(NewProtectedName):
    protected_id: str


class ProtectedNameDropped(BaseModel):
    protected_id: str
    removed: bool = True


class WordsChanged(BaseModel):
    added: list[str]
    removed: list[str]


class CaseOpened(BaseModel):
    case_id: str
    account_id: str
    status: Literal["pending"] = "pending"


class CaseDecision(BaseModel):
    case_id: str
    account_id: str
    status: Literal["approved", "rejected"]
    account_verified: bool


class IdentityReviewed(BaseModel):
    account_id: str
    status: Literal["verified", "failed"]
    account_verified: bool


class Reinspected(BaseModel):
    account_id: str
    outcome: Literal["passed", "failed"]


# -- the registry in memory, the profile rules ----------------------------------------------------
async def catch_up_registry(deps: Deps, tx: Tx | None = None) -> int:
    """The in-memory registry brought up to the log (inside a handler: in its transaction)."""
    return await deps.registry.catch_up(deps.db, deps.store, tx)


def _subject(deps: Deps, entity_type: str, category: str, identity: dict[str, Any],
             news_permit: bool) -> Subject:
    """Who runs the account as the name rules see it: its own and its representative's ID."""
    blinds = {identity["id_number_blind"]}
    if identity.get("representative_id_sealed"):
        rep = open_identity(deps.sealer, identity, "representative_id_sealed")
        blinds.add(deps.sealer.blind("id_number", rep.strip().upper()))
    return Subject(entity_type, category, frozenset(blinds), news_permit)


def _subject_of(deps: Deps, state: Verification) -> Subject:
    return _subject(deps, state.entity_type, state.category, state.identity,
                    state.has_news_permit)


def _findings(deps: Deps, subject: Subject, profile: dict[str, Any]) -> tuple[dict, ...]:
    return tuple(check_profile(name=profile["name"], description=profile.get("description", ""),
                               avatar_phash=profile.get("avatar_phash"), subject=subject,
                               registry=deps.registry, policy=deps.policy))


def _existing(state: Verification | None, account_id: str) -> Verification:
    if state is None:
        raise NotFoundError(f"no verification for account {account_id}",
                            code="verification-not-found", title="No verification for this account")
    return state


# -- incoming: registrations and profile changes ------------------------------------------------
# What each policy needs, gathered here (I/O never happens in a policy). An event its policy
# will refuse (seen already, no verifiable account) gets no provider call.
async def _registration_facts(deps: Deps, tx: Tx, state: Verification | None,
                              p: AccountRegistrationSubmitted) -> Facts:
    now = deps.clock()
    if state is not None:
        return Facts(now)
    malformed = malformed_identity(deps.sealer, p.entity_type, p.identity.model_dump())
    if malformed is not None:  # decided here: no provider to ask
        return Facts(now, malformed, deps.provider.name)
    # The providers are asked by check_identity, outside this transaction (ADR 0026).
    await queue_identity_check(tx, p.account_id, due_at=now,
                               review_at=now + deps.identity_review_after)
    return Facts(now)


async def _change_facts(deps: Deps, tx: Tx, state: Verification | None,
                        p: ProfileChangeSubmitted) -> Facts:
    now = deps.clock()
    if state is None or state.identity_status == "failed":
        return Facts(now)
    await catch_up_registry(deps, tx)
    return Facts(now, findings=_findings(deps, _subject_of(deps, state), p.proposed.model_dump()))


async def _transferee_facts(deps: Deps, tx: Tx, state: TransfereeCheck | None,
                            p: TransferRequested) -> Facts:
    """A new transferee is queued for the identity checker (ADR 0026), as a registrant."""
    now = deps.clock()
    if state is None:
        await queue_identity_check(tx, transferee_stream(p.transfer_id), due_at=now,
                                   review_at=now + deps.identity_review_after)
    return Facts(now)


async def _announcement_facts(deps: Deps, tx: Tx, state: Verification | None,
                              p: TransferAnnounced) -> Facts:
    return Facts(deps.clock())


async def _time_facts(deps: Deps, tx: Tx, state: Verification | None, p: Any) -> Facts:
    return Facts(deps.clock())


_FACTS = {AccountRegistrationSubmitted.event_type: _registration_facts,
          ProfileChangeSubmitted.event_type: _change_facts,
          TransferRequested.event_type: _transferee_facts,
          TransferAnnounced.event_type: _announcement_facts}
# The account's standing (A9.2) needs nothing but the time.
_FACTS |= dict.fromkeys((t for t in POLICIES if t not in _FACTS), _time_facts)


async def when_event(deps: Deps, tx: Tx, event: Envelope) -> None:
    """One registration event, in the consumer's transaction: its policy decides on the
    account's stream, with the event as cause; an event that no longer applies is skipped."""
    policy = POLICIES.get(event.type)
    if policy is None:
        return
    payload: Any = deps.store.registry.payload(event)
    streams: Any = deps.verifications
    key = payload.account_id
    if event.type == TransferRequested.event_type:  # the transferee's own stream
        assert deps.transferees is not None, "bootstrap wires the transferee streams"
        streams, key = deps.transferees, payload.transfer_id
    state = await streams.load(tx, key)
    facts = await _FACTS[event.type](deps, tx, state, payload)
    try:
        await streams.decide(tx, key, lambda s: policy(s, payload, event, facts),
                             cause=event, state=state)
    except DomainError as exc:
        log.info("%s %s: %s; skipped", event.type, event.id, exc.detail)


# -- the identity check, outside the consumer's transaction (A8.1, ADR 0026) --------------------
IdentityOutcome = Literal["verified", "failed", "deferred", "review", "gone"]


async def check_identity(deps: Deps, account_id: str) -> IdentityOutcome:
    """Ask the providers about one pending identity with no transaction open, then record
    the answer in one transaction: a verdict (verified or failed), or none (deferred with
    backoff; a person reviews it once the deadline has passed). ``transferee-<id>``: a
    transfer application's transferee (:func:`check_transferee_identity`)."""
    transferee = account_id.startswith(transferee_stream(""))
    stream = account_id if transferee else stream_of(account_id)
    async with deps.db.connect() as conn:  # the event that opened the check
        opened = next(iter(await deps.store.read_stream(conn, stream, limit=1)), None)
    # the check continues the trace and correlation of the event that opened it
    with follow_up_span("verification check identity", opened) if opened else nullcontext():
        if transferee:
            return await check_transferee_identity(deps, account_id, cause=opened)
        return await _check_account_identity(deps, account_id, cause=opened)


async def _check_account_identity(deps: Deps, account_id: str, *, cause: Envelope | None
                                  ) -> IdentityOutcome:
    async with deps.db.connect() as conn:  # a read; the connection goes back at once
        state = await deps.verifications.load(conn, account_id)
    decision = None
    if state is not None and state.identity_status == "pending":
        decision = await verify_identity(deps.provider, deps.sealer, state.entity_type,
                                         state.identity, extra=state.extra,
                                         min_tenure_months=deps.min_tenure_months)
    now = deps.clock()

    async def work(tx: Tx) -> IdentityOutcome:
        pending = await pending_identity_check(tx, account_id)
        current = await deps.verifications.load(tx, account_id)
        if (pending is None or decision is None or current is None
                or current.identity_status != "pending"):
            await forget_identity_check(tx, account_id)
            return "gone"
        evidence = [current.evidence["opened"]]
        outcome: IdentityOutcome
        if decision.retryable and now >= pending.review_at:
            events = current.require_identity_review(
                decision, case_id=new_id(), attempts=pending.attempts + 1,
                evidence=evidence)
            await forget_identity_check(tx, account_id)
            outcome = "review"
        elif decision.retryable:
            attempt, retry_at = _next_attempt(deps, pending, now)
            events = current.defer_identity(decision, attempt=attempt, retry_at=retry_at,
                                            review_at=pending.review_at, evidence=evidence)
            await reschedule_identity_check(tx, account_id, attempts=attempt, due_at=retry_at)
            outcome = "deferred"
        else:
            events = await _identity_verdict(deps, tx, current, decision,
                                             provider=deps.provider.name, now=now)
            await forget_identity_check(tx, account_id)
            outcome = "verified" if decision.verified else "failed"
        await deps.verifications.decide(tx, account_id, lambda s: events, state=current,
                                        cause=cause)
        return outcome

    result = await transact(deps.db, work)
    deps.committed()
    return result


def _next_attempt(deps: Deps, pending: Any, now: datetime) -> tuple[int, datetime]:
    """No verdict yet: the next attempt's number and time (doubling backoff, jitter)."""
    attempt = pending.attempts + 1
    return attempt, now + timedelta(seconds=identity_retry_delay(
        attempt, first=deps.identity_retry_seconds, cap=deps.identity_retry_max_seconds,
        jitter=random.random()))


async def _identity_verdict(deps: Deps, tx: Tx, current: Verification,
                            decision: IdentityDecision, *, provider: str, now: datetime
                            ) -> list[EventPayload]:
    """A verdict on a pending identity (a provider's or a reviewer's): when verified, the
    profile screened and the field's needs, as at registration."""
    findings: tuple[dict, ...] = ()
    needs: tuple[str, ...] = ()
    if decision.verified:
        await catch_up_registry(deps, tx)
        findings = _findings(deps, _subject(deps, current.entity_type, current.category,
                                            current.identity, news_permit=False),
                             current.profile)
        needs = qualification_needs(current.category)
    return current.decide_identity(decision, provider=provider, findings=list(findings),
                                   needs=needs, evidence=[current.evidence["opened"]],
                                   now=now)


async def check_transferee_identity(deps: Deps, key: str, *, cause: Envelope | None = None
                                    ) -> IdentityOutcome:
    """A transferee's check, like a registrant's: the providers asked with no transaction
    open; no verdict is asked again with backoff. Past the deadline the application's check
    fails with ``provider-unavailable``: the transfer is refused (it can be filed again),
    the account itself is untouched (ADR 0026)."""
    assert deps.transferees is not None, "bootstrap wires the transferee streams"
    transfer_id = key.removeprefix(transferee_stream(""))
    async with deps.db.connect() as conn:  # a read; the connection goes back at once
        state = await deps.transferees.load(conn, transfer_id)
    decision = None
    if state is not None and state.status == "pending":
        decision = await verify_identity(deps.provider, deps.sealer, state.entity_type,
                                         state.identity, extra=False,
                                         min_tenure_months=deps.min_tenure_months)
    now = deps.clock()

    async def work(tx: Tx) -> IdentityOutcome:
        pending = await pending_identity_check(tx, key)
        current = await deps.transferees.load(tx, transfer_id)
        if pending is None or decision is None or current is None \
                or current.status != "pending":
            await forget_identity_check(tx, key)
            return "gone"
        if decision.retryable and now < pending.review_at:
            attempt, retry_at = _next_attempt(deps, pending, now)
            await reschedule_identity_check(tx, key, attempts=attempt, due_at=retry_at)
            return "deferred"
        verdict = decision
        if decision.retryable:  # no answer by the deadline: the application cannot wait
            verdict = IdentityDecision(verified=False, level=None, factors=(),
                                       reasons=("provider-unavailable", *decision.reasons))
        await deps.transferees.decide(tx, transfer_id, lambda s: s.decide(
            verdict, provider=deps.provider.name), state=current, cause=cause)
        await forget_identity_check(tx, key)
        return "verified" if verdict.verified else "failed"

    result = await transact(deps.db, work)
    deps.committed()
    return result


# -- commands on an account ------------------------------------------------------------------------

async def submit_qualification(deps: Deps, account_id: str, submission: Submission, *,
                               by: str, key: str | None, digest: str) -> CaseOpened:
    """Keep the document and open a review case for the material (A9.1, A5)."""
    case_id = new_id()
    m = submission.material

    async def work(tx: Tx) -> CaseOpened:
        state = _existing(await deps.verifications.load(tx, account_id), account_id)
        await keep_document(tx, sha256=m.document_sha256, content_type=m.document_content_type,
                            data=submission.document, now=deps.clock())
        await deps.verifications.decide(
            tx, account_id, lambda s: s.submit_qualification(case_id=case_id, material=m,
                                                             submitted_by=by), state=state)
        return CaseOpened(case_id=case_id, account_id=account_id)

    return await deps.command(key, "verification.qualifications", digest, work, CaseOpened)


async def decide_review(deps: Deps, case_id: str, *, approve: bool, reviewer: str, note: str,
                        key: str | None, digest: str) -> CaseDecision:
    """Approve or reject a review case; an approval may complete the account's verification."""

    async def work(tx: Tx) -> CaseDecision:
        account_id = (await views.review_case(tx, case_id))["account_id"]
        changed = await deps.verifications.decide(tx, account_id, lambda s: _existing(
            s, account_id).decide_case(case_id=case_id, approve=approve, reviewer=reviewer,
                                       note=note, now=deps.clock()))
        return CaseDecision(case_id=case_id, account_id=account_id,
                           status="approved" if approve else "rejected",
                           account_verified=AccountVerified.event_type in changed.types)

    return await deps.command(key, "verification.decisions", digest, work, CaseDecision)


async def decide_identity_review(deps: Deps, account_id: str, *, approve: bool,
                                 reviewer: str, note: str, key: str | None, digest: str
                                 ) -> IdentityReviewed:
    """A reviewer's verdict on an identity no provider could decide (A8.1, ADR 0026):
    verified by manual review (then profile, needs and completion as after a provider's
    verdict), or refused, which is an ``IdentityVerificationFailed`` like any other."""

    async def work(tx: Tx) -> IdentityReviewed:
        current = _existing(await deps.verifications.load(tx, account_id), account_id)
        if current.identity_status != "manual_review":
            raise ConflictError(f"the identity of {account_id} is {current.identity_status}, "
                                "not waiting for a reviewer", code="identity-not-in-review",
                                legal_basis=["A8.1"])
        reasons = ("manual-review",) + ((f"note: {note}",) if note else ())
        if approve:
            # the lowest level: a person's review is not a third independent factor
            decision = IdentityDecision(verified=True, level="two_factor",
                                        factors=("manual_review",), reasons=reasons)
        else:
            decision = IdentityDecision(verified=False, level=None, factors=(),
                                        reasons=("manual-review-refused",) + reasons[1:])
        events = await _identity_verdict(deps, tx, current, decision,
                                         provider=f"manual-review:{reviewer}",
                                         now=deps.clock())
        changed = await deps.verifications.decide(tx, account_id, lambda s: events,
                                                  state=current)
        return IdentityReviewed(account_id=account_id,
                                status="verified" if approve else "failed",
                                account_verified=AccountVerified.event_type in changed.types)

    return await deps.command(key, "verification.identity_reviews", digest, work,
                              IdentityReviewed)


async def reinspect(deps: Deps, account_id: str, *, reason: str) -> str:
    """One re-inspection (A9.3) in one transaction: the current profile against the current
    registry; ``passed``, or ``failed`` (acting like A8.2)."""
    rid = new_id()
    streams = deps.verifications

    async def work(tx: Tx) -> str:
        await catch_up_registry(deps, tx)
        state = await streams.load(tx, account_id)
        if state is None:
            raise not_verified(account_id)
        # The outcome cites the scheduling event as its evidence, so that one's envelope
        # (and id) comes first; then one append, the store's unit per stream and transaction.
        scheduled = streams.envelopes(account_id, state.schedule_reinspection(rid, reason))
        findings = list(_findings(deps, _subject_of(deps, state), state.profile))
        outcome = state.conclude_reinspection(rid, findings, evidence=[scheduled[0].id])
        await deps.store.append(tx, streams.stream_id(account_id), state.version, scheduled
                                + streams.envelopes(account_id, outcome, cause=scheduled[0]))
        return "failed" if findings else "passed"

    return await transact(deps.db, work)


async def reinspect_now(deps: Deps, account_id: str, *, key: str | None,
                        digest: str) -> Reinspected:
    """Re-inspect one verified account now (A9.3), once per ``Idempotency-Key``."""

    async def once() -> Reinspected:
        outcome = await reinspect(deps, account_id, reason="sample")
        deps.committed()
        return Reinspected(account_id=account_id, outcome=outcome)

    return await run_once(deps.db, key, scope="verification.reinspection", digest=digest,
                          run=once, result=Reinspected)


async def expire(deps: Deps, account_id: str, now: datetime) -> list[str]:
    """Expire the account's qualifications past their validity at ``now``; the case ids."""

    async def work(tx: Tx) -> list[str]:
        changed = await deps.verifications.decide(
            tx, account_id, lambda s: s.expire(now) if s is not None else [])
        return [e.data["case_id"] for e in changed.events
                if e.type == QualificationExpired.event_type]

    return await transact(deps.db, work)


# -- the protected-name registry and the prohibited words (operator commands) --------------------
async def _registry_command(deps: Deps, key: str | None, scope: str, digest: str,
                            work: Callable[[Tx], Awaitable[Any]], result: type[BaseModel]
                            ) -> Any:
    """One change to the registry or the word list, then this process's in-memory registry
    brought up to it (other workers catch up before their next check)."""
    answer = await deps.command(key, scope, digest, work, result)
    await catch_up_registry(deps)
    return answer


async def add_protected_name(deps: Deps, entry: NewProtectedName, *, key: str | None,
                             digest: str) -> ProtectedNameKept:
    """Protect a name (aliases, logo) for its holder (A8.2)."""
    protected_id = new_id()

    async def work(tx: Tx) -> ProtectedNameKept:
        await deps.protected_names.decide(tx, protected_id,
                                          lambda s: protect_name(protected_id, **dict(entry)))
        return ProtectedNameKept(protected_id=protected_id, **dict(entry))

    return await _registry_command(deps, key, "verification.protected-names", digest, work,
                                   ProtectedNameKept)


async def remove_protected_name(deps: Deps, protected_id: str, *, by: str, key: str | None,
                                digest: str) -> ProtectedNameDropped:
    """Stop protecting a name."""

    async def work(tx: Tx) -> ProtectedNameDropped:
        await deps.protected_names.decide(tx, protected_id,
                                          lambda s: unprotect_name(s, protected_id, by=by))
        return ProtectedNameDropped(protected_id=protected_id)

    return await _registry_command(deps, key, "verification.protected-names.delete", digest,
                                   work, ProtectedNameDropped)


async def change_prohibited_words(deps: Deps, *, added: list[str], removed: list[str], by: str,
                                  key: str | None, digest: str) -> WordsChanged:
    """Add and remove prohibited words (A8.2)."""

    async def work(tx: Tx) -> WordsChanged:
        await deps.word_list.decide(tx, WORDS_STREAM, lambda s: change_words(
            added=added, removed=removed, by=by))
        return WordsChanged(added=added, removed=removed)

    return await _registry_command(deps, key, "verification.prohibited-words", digest, work,
                                   WordsChanged)


async def prohibited_words(deps: Deps) -> list[str]:
    """The prohibited words in force (configured plus added, minus removed), as of the log."""
    await catch_up_registry(deps)
    return sorted(deps.registry.words.values())
