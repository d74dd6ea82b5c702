"""Use cases: one command or one incoming event -> one transaction.

Streams: ``credit-account-<id>`` (facts, anomalies, forced follows, overrides and level
changes of an account) and ``credit-identity-<blind index>`` (rumor strikes, blacklists).
Handlers return results (pydantic models) and raise ``libs.domain`` errors.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel

from libs.domain import InvalidCommandError, NotFoundError
from libs.events import Envelope, EventPayload, Streams, new_id, transact
from libs.events.contracts.credit import (
    CreditFactRecorded,
    CreditOverridden,
    ForcedFollowsCounted,
    TrafficAnomalyDetected,
)
from libs.events.contracts.registration import AccountRegistrationSubmitted
from libs.events.db import Tx
from libs.runtime.deps import ServiceDeps

from . import rules, views
from .adapters import Baselines, IdentityDirectory
from .domain import Identity, Profile, after
from .policies import POLICIES, Context

log = logging.getLogger(__name__)




@dataclass(kw_only=True)
class Deps(ServiceDeps):
    """What the handlers need; built complete in bootstrap."""

    profiles: Streams[Profile]
    identities: Streams[Identity]
    directory: IdentityDirectory
    baselines: Baselines
    model: rules.ScoringModel = field(default_factory=rules.ScoringModel)
    detector: rules.DetectorModel = field(default_factory=rules.DetectorModel)
    max_batch: int = 100_000


# -- what handlers take and return ---------------------------------------------------------
class Follow(BaseModel):
    account_id: str
    follower_id: str
    at: datetime
    consent: bool


class MetricsBatch(BaseModel):
    samples: list[rules.Sample]
    follows: list[Follow] = []


class IngestOut(BaseModel):
    samples: int
    anomalies: list[dict[str, Any]]
    forced_follows: dict[str, int]
    level_changes: dict[str, str]


class LevelOut(BaseModel):
    account_id: str
    score: int
    level: str
    changed: bool


class SweepReport(BaseModel):
    now: str
    accounts: int
    changed: dict[str, str]
    expired_strikes: list[str] = []


# -- scoring -----------------------------------------------------------------------------------
async def _rescore(deps: Deps, tx: Tx, account_id: str, payloads: list[EventPayload], *,
                   state: Profile | None, cause: Envelope | None,
                   now: datetime | None = None) -> tuple[Profile, list[Envelope]]:
    """Append ``payloads`` on the account's stream with, when the level moves, the
    ``CreditLevelChanged`` that explains it (A13.1, A17.2)."""
    now = now or deps.clock()

    def decide(s: Profile | None) -> list[EventPayload]:
        nxt = after(s, payloads, now) or Profile(account_id=account_id)
        sc = rules.score(nxt, now, deps.model)
        reasons = [f"management grade {sc.grade} ({sc.model_version}, score {sc.score})",
                   *(f"{c.kind}: {c.note} ({c.points:+d})" for c in sc.contributions
                     if c.points < 0)]
        evidence = sorted({c.source_event_id for c in sc.contributions
                           if c.source_event_id and c.source_event_id != "pending"}
                          | ({cause.id} if cause else set()))
        return [*payloads, *nxt.level_change(level=sc.level, score=sc.score, reasons=reasons,
                                             evidence=evidence)]

    changed = await deps.profiles.decide(tx, account_id, decide, cause=cause, state=state)
    return changed.after or Profile(account_id=account_id), changed.events


# -- incoming: registration, verification, enforcement ---------------------------------------
async def when_event(deps: Deps, tx: Tx, event: Envelope) -> None:
    """One upstream event, in the consumer's transaction (with its inbox record): the fact
    recorded and the account rescored; a rumor violation strikes the identity (A13.2), an
    upheld appeal takes its strike off."""
    policy = POLICIES.get(event.type)
    if policy is None:
        return
    payload = deps.store.registry.payload(event)
    account_id = payload.account_id
    profile = await deps.profiles.load(tx, account_id)
    facts = policy(profile, payload, event, Context(now=deps.clock()))
    if isinstance(payload, AccountRegistrationSubmitted):
        # also on a redelivery: a replay of registration's events refills the provinces
        await deps.directory.link(tx, account_id, payload.identity.id_number_blind,
                                  payload.province)
    if not facts:
        log.info("%s %s: nothing to record for %s", event.type, event.id, account_id)
        return
    profile, _ = await _rescore(deps, tx, account_id, facts, state=profile, cause=event)
    for f in facts:
        if not isinstance(f, CreditFactRecorded):
            continue
        if f.kind == "violation" and f.category == deps.model.rumor_category:
            await _strike(deps, tx, profile, f.ref or event.id, event)
        elif f.kind == "appeal_upheld":
            for ref in f.overrules:
                await _overrule_strike(deps, tx, profile, ref, event)


async def _identity(deps: Deps, tx: Tx, profile: Profile) -> str | None:
    return profile.identity_blind or await deps.directory.identity_of(tx, profile.account_id)


async def _strike(deps: Deps, tx: Tx, profile: Profile, strike_id: str, event: Envelope
                  ) -> None:
    blind = await _identity(deps, tx, profile)
    if blind is None:
        log.warning("rumor strike %s on %s: identity unknown, not counted", strike_id,
                    profile.account_id)
        return
    now = deps.clock()
    ident = await deps.identities.load(tx, blind) or Identity(identity_blind=blind)
    accounts = await deps.directory.accounts_of(tx, blind)
    m = deps.model

    def decide(s: Identity | None) -> list[EventPayload]:
        s = s or Identity(identity_blind=blind)
        struck = s.strike(account_id=profile.account_id, strike_id=strike_id, at=event.time,
                          evidence=[event.id])
        standing = {**s.standing, **({strike_id: event.time} if struck else {})}
        window = rules.strikes_in_window(standing, now, m)
        out: list[EventPayload] = list(struck)
        if len(window) >= m.strikes_to_blacklist:
            out += s.blacklist(blacklist_id=f"blacklist-{blind[:16]}-{len(s.blacklists) + 1}",
                               strikes=window, accounts=accounts or [profile.account_id],
                               window_days=m.strike_window_days, at=now,
                               pending=event.id)
        return out

    await deps.identities.decide(tx, blind, decide, cause=event,
                                 state=ident if ident.version else None)


async def _overrule_strike(deps: Deps, tx: Tx, profile: Profile, strike_id: str,
                           event: Envelope) -> None:
    blind = await _identity(deps, tx, profile)
    if blind is None:
        return
    ident = await deps.identities.load(tx, blind)
    if ident is None:
        return

    def decide(s: Identity) -> list[EventPayload]:
        out = s.overrule(account_id=profile.account_id, strike_id=strike_id,
                         evidence=[event.id])
        if out:  # a blacklist that rested on it may no longer stand (A13.2, A20.2)
            out += s.lift_blacklists(account_id=profile.account_id, overruled=strike_id,
                                     threshold=deps.model.strikes_to_blacklist,
                                     evidence=[event.id])
        return out

    await deps.identities.decide(tx, blind, decide, cause=event, state=ident)


# -- commands ------------------------------------------------------------------------------

def check_batch(batch: MetricsBatch, max_samples: int) -> None:
    if not batch.samples and not batch.follows:
        raise InvalidCommandError("the batch holds no samples and no follows",
                                  code="empty-metrics-batch", legal_basis=["A12.1"])
    if len(batch.samples) + len(batch.follows) > max_samples:
        raise InvalidCommandError(f"a batch holds at most {max_samples} samples and follows",
                                  code="metrics-batch-too-large", legal_basis=["A12.1"])
    for s in batch.samples:
        if s.metric not in rules.METRICS:
            raise InvalidCommandError(f"unknown metric {s.metric!r}: one of {rules.METRICS}",
                                      code="unknown-metric", legal_basis=["A12.1"])
        if s.value < 0:
            raise InvalidCommandError(f"a count cannot be negative ({s.metric} of "
                                      f"{s.account_id})", code="negative-count",
                                      legal_basis=["A12.1"])


async def ingest_metrics(deps: Deps, batch: MetricsBatch, *, key: str | None, digest: str,
                         max_samples: int = 100_000) -> IngestOut:
    """A batch of counter samples through the detector (A12.1) and follows with their
    consent flag (A12.2): anomalies and forced follows recorded on each account's stream,
    the accounts rescored."""
    check_batch(batch, max_samples)

    async def work(tx: Tx) -> IngestOut:
        found = await detect_and_learn(deps, tx, batch.samples)
        per_account: dict[str, list[EventPayload]] = {}
        anomalies = []
        for s, v in found:
            anomaly_id = new_id()
            per_account.setdefault(s.account_id, []).append(TrafficAnomalyDetected(
                account_id=s.account_id, anomaly_id=anomaly_id, kind=v.kind, metric=v.metric,
                window_start=s.at - rules.HOUR, window_end=s.at,
                expected_low=round(v.expected_low, 6), expected_high=round(v.expected_high, 6),
                observed=v.observed, score=v.score, model_version=deps.detector.version,
                legal_basis=["A12.1"]))
            anomalies.append({"anomaly_id": anomaly_id, "account_id": s.account_id,
                              "kind": v.kind, "metric": v.metric, "at": s.at.isoformat(),
                              "observed": v.observed, "score": v.score})
        forced: dict[str, int] = {}
        by_account: dict[str, list[Follow]] = {}
        for f in batch.follows:
            by_account.setdefault(f.account_id, []).append(f)
        for account_id, follows in sorted(by_account.items()):
            without = sum(1 for f in follows if not f.consent)
            if without:
                forced[account_id] = without
                per_account.setdefault(account_id, []).append(ForcedFollowsCounted(
                    account_id=account_id, count_id=new_id(), without_consent=without,
                    total=len(follows), window_start=min(f.at for f in follows),
                    window_end=max(f.at for f in follows), legal_basis=["A12.2"]))
        levels: dict[str, str] = {}
        for account_id, payloads in sorted(per_account.items()):
            _, events = await _rescore(deps, tx, account_id, payloads, state=None, cause=None)
            for e in events:
                if e.type == "credit.CreditLevelChanged":
                    levels[account_id] = e.data["level"]
        return IngestOut(samples=len(batch.samples), anomalies=anomalies,
                         forced_follows=forced, level_changes=levels)

    return await deps.command(key, "credit.metrics", digest, work, IngestOut)


async def detect_and_learn(deps: Deps, tx: Tx, samples: list[rules.Sample]
                           ) -> list[tuple[rules.Sample, rules.Verdict]]:
    """The detector over one batch (ADR 0029): the batch numbered and the memory made
    current, the samples judged against it and learned, the samples journalled."""
    memory = deps.baselines
    epoch = await memory.claim(tx)
    found = await memory.learn(tx, samples)
    await memory.journal(tx, epoch, samples)
    if len(memory.dirty) >= memory.max_dirty:
        await memory.flush(tx)
    return found


async def flush_baselines(deps: Deps) -> int:
    """Write the detector's learned rows behind (periodically and at shutdown)."""
    if not deps.baselines.dirty:
        return 0
    return await transact(deps.db, deps.baselines.flush)


async def override(deps: Deps, account_id: str, *, points: int, reason: str, by: str,
                   expires_at: datetime, key: str | None, digest: str) -> LevelOut:
    """An operator's adjustment with a reason and an expiry, recorded as an event."""
    now = deps.clock()
    if expires_at <= now:
        raise InvalidCommandError("an override's expiry must be in the future",
                                  code="override-expired", legal_basis=["A13.1"])
    if not reason.strip():
        raise InvalidCommandError("an override needs a reason", code="override-reason-missing",
                                  legal_basis=["A13.1"])

    async def work(tx: Tx) -> LevelOut:
        profile = await deps.profiles.load(tx, account_id)
        if profile is None:
            raise NotFoundError(f"no credit profile for account {account_id}",
                                code="credit-profile-not-found", title="No such profile")
        payload = CreditOverridden(account_id=account_id, override_id=new_id(),
                                   points=points, reason=reason, by=by, expires_at=expires_at,
                                   legal_basis=["A13.1"])
        after_, events = await _rescore(deps, tx, account_id, [payload], state=profile,
                                        cause=None, now=now)
        sc = rules.score(after_, now, deps.model)
        return LevelOut(account_id=account_id, score=sc.score, level=sc.level,
                        changed=any(e.type == "credit.CreditLevelChanged" for e in events))

    return await deps.command(key, "credit.overrides", digest, work, LevelOut)


async def rescore(deps: Deps, account_id: str, now: datetime) -> str | None:
    """The clock's decision for one account (clean days, ageing, expired overrides and
    strikes): the new level if it moved."""

    async def work(tx: Tx) -> str | None:
        profile = await deps.profiles.load(tx, account_id)
        if profile is None:
            return None
        _, events = await _rescore(deps, tx, account_id, [], state=profile, cause=None,
                                   now=now)
        return next((e.data["level"] for e in events
                     if e.type == "credit.CreditLevelChanged"), None)

    return await transact(deps.db, work)


async def expire_strikes(deps: Deps, identity_blind: str, now: datetime) -> list[str]:
    """The identity's strikes older than ``CREDIT_STRIKE_EXPIRY_DAYS`` expire (A13.2)."""
    horizon = now - timedelta(days=deps.model.strike_expiry_days)

    async def work(tx: Tx) -> list[str]:
        ident = await deps.identities.load(tx, identity_blind)
        if ident is None:
            return []
        accounts = await deps.directory.accounts_of(tx, identity_blind)
        changed = await deps.identities.decide(tx, identity_blind, lambda s: ident.expire(
            account_id=accounts[0] if accounts else "", horizon=horizon), state=ident)
        return [e.data["strike_id"] for e in changed.events]

    return await transact(deps.db, work)


# -- queries -----------------------------------------------------------------------------------
async def credit_of(deps: Deps, account_id: str, *, province: str | None = None
                    ) -> dict[str, Any]:
    """The account's score explained: every contribution with its source event (A13.1);
    for a provincial regulator (``province``) only an account of its province (A3)."""
    async with deps.db.connect() as conn:
        profile = await deps.profiles.load(conn, account_id)
        if profile is None or (province is not None and
                               await deps.directory.province_of(conn, account_id) != province):
            raise NotFoundError(f"no credit profile for account {account_id}",
                                code="credit-profile-not-found", title="No such profile")
        blind = profile.identity_blind or await deps.directory.identity_of(conn, account_id)
        ident = await deps.identities.load(conn, blind) if blind else None
    return views.explain(profile, ident, deps.clock(), deps.model)


async def identity_credit(deps: Deps, identity_blind: str, *, province: str | None = None
                          ) -> dict[str, Any]:
    """An identity's accounts, their levels, its strikes and blacklists (A13.1, A13.2); for
    a provincial regulator (``province``) only its accounts in that province, and only an
    identity with one there (A3)."""
    now = deps.clock()
    async with deps.db.connect() as conn:
        accounts = await deps.directory.accounts_of(conn, identity_blind)
        ident = await deps.identities.load(conn, identity_blind)
        if province is not None:
            accounts = [a for a in accounts
                        if await deps.directory.province_of(conn, a) == province]
            ident = ident if accounts else None
        if not accounts and ident is None:
            raise NotFoundError("no account of that identity", code="identity-not-found",
                                title="No such identity")
        levels = {}
        for a in accounts:
            p = await deps.profiles.load(conn, a)
            if p is not None:
                s = rules.score(p, now, deps.model)
                levels[a] = {"score": s.score, "level": s.level, "management_grade": s.grade}
    worst = max((v["level"] for v in levels.values()), default="A")
    return {"identity_blind": identity_blind, "accounts": levels, "level": worst,
            "management_grade": deps.model.grades[worst],
            "rumor_strikes": views.strikes(ident, now, deps.model), "as_of": now.isoformat()}
