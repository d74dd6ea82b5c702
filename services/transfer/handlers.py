"""Use cases: one command or one incoming event -> one transaction.

Handlers return results (pydantic models, kept for an ``Idempotency-Key``) and raise
``libs.domain`` errors. Streams: ``transfer-<id>`` (an application), ``ownership-<account
id>`` (ownership signals). The directory tables change in the same transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from libs.domain import DomainError, InvalidCommandError, NotFoundError
from libs.events import Envelope, Streams, new_id, transact
from libs.events.db import Tx
from libs.runtime.deps import ServiceDeps
from libs.runtime.pii import Sealer

from . import rules, views
from .adapters import Directory
from .domain import APPROVED, Application, Closing, Signals, Transfer, judge_signal
from .policies import LEARN, POLICIES, MeasureNoted, OwnerKnown, OwnerVerified

log = logging.getLogger(__name__)



@dataclass(kw_only=True)
class Deps(ServiceDeps):
    """What the handlers need; built complete in bootstrap."""

    transfers: Streams[Transfer]
    signals: Streams[Signals]
    directory: Directory
    sealer: Sealer
    rules: rules.TradingRules = rules.TradingRules()
    confirmation_days: int = 15
    opt_out_days: int = 7
    ad_revenue_pause_months: int = 3


# -- what handlers take and return ---------------------------------------------------------------
class TransferOut(BaseModel):
    transfer_id: str
    account_id: str
    kind: views.Kind
    status: views.Status
    transferee: views.MaskedIdentity
    transferee_entity_type: str
    deadline: datetime
    verified: bool
    confirmations: dict[str, str]
    missing: list[str]
    followers_opted_out: int
    opt_out_until: datetime | None = None  # a transfer completes no earlier (A11.2)
    reasons: list[str]
    trading_suspected: bool = False
    completed_at: datetime | None = None


class ApplicationShown(TypedDict):  # a dict, as views.MaskedIdentity
    """A granted operator or an open application, as the account's operators show it."""

    transfer_id: str
    kind: views.Kind
    status: views.Status
    identity: views.MaskedIdentity
    entity_type: str
    accepted_by: dict[str, str]
    deadline: str  # ISO 8601, as the application's deadline was written


class OperatorsOut(BaseModel):
    account_id: str
    owner: views.MaskedIdentity
    owner_entity_type: str | None
    owner_verified: bool = False  # verification verified the registrant's identity (A8.1)
    operators: list[ApplicationShown]
    pending: list[ApplicationShown]
    active_measures: list[str] = []  # as enforcement announced them (A11.1)
    last_transferred_at: datetime | None = None


class SignalIn(BaseModel):
    """An ownership signal as the handler takes it (blind-indexed by schemas): the identity
    now acting and/or the changed contact phone."""

    account_id: str
    signal: Literal["login_identity", "contact_changed"]
    id_blind: str | None = None
    masked: str | None = None
    phone_blind: str | None = None
    contact_masked: str | None = None


class SignalOut(BaseModel):
    account_id: str
    signal: Literal["login_identity", "contact_changed"]
    outcome: Literal["cleared", "unapplied_transfer", "unmatched_contact"]
    unapplied_transfer: bool
    covered_by: str | None = None


def present(t: Transfer) -> TransferOut:
    i = t.transferee
    return TransferOut(
        transfer_id=t.transfer_id, account_id=t.account_id, kind=t.kind, status=t.status,
        transferee={k: i.get(k) for k in ("id_kind", "id_number_masked", "holder_name_masked",
                                          "phone_masked")},
        transferee_entity_type=t.entity_type, deadline=t.deadline, verified=t.verified,
        confirmations=t.confirmations, missing=t.missing if t.open else [],
        followers_opted_out=len(t.opt_outs), opt_out_until=t.opt_out_until,
        reasons=list(t.reasons),
        trading_suspected=t.trading_suspected, completed_at=t.completed_at)



async def _existing(deps: Deps, tx: Tx, transfer_id: str) -> Transfer:
    t = await deps.transfers.load(tx, transfer_id)
    if t is None:
        raise NotFoundError(f"no transfer {transfer_id}", code="transfer-not-found",
                            title="No such transfer")
    return t


async def _closing(deps: Deps, tx: Tx, t: Transfer, now: datetime | None = None) -> Closing:
    """The facts a completion may need: the previous owner, the pause, trading."""
    now = now or deps.clock()
    owner = await deps.directory.owner(tx, t.account_id)
    suspicion = None
    if t.kind == "transfer":
        this = rules.Move(t.transfer_id, t.account_id, owner.id_blind if owner else None,
                          t.transferee["id_number_blind"], now)
        since = now - timedelta(days=deps.rules.window_days)
        suspicion = rules.suspected_trading(deps.rules, await deps.directory.moves(tx, since),
                                            this)
    return Closing(
        now=now, previous_entity_type=owner.entity_type if owner else None,
        previous_name=owner.name if owner else None,
        new_name=rules.disclosed_name(t.entity_type, t.transferee.get("holder_name_masked"),
                                      t.organization) or "",
        ad_revenue_paused_until=rules.add_months(now, deps.ad_revenue_pause_months),
        suspicion=suspicion, window_days=deps.rules.window_days)


async def _index(deps: Deps, tx: Tx, t: Transfer, events: list[Envelope],
                 now: datetime | None = None) -> None:
    """The directory follows what was decided: the application's status, a verified
    transferee's phone, and for a completed transfer the new owner and the move."""
    now = now or deps.clock()
    await deps.directory.application(
        tx, transfer_id=t.transfer_id, account_id=t.account_id, kind=t.kind, status=t.status,
        transferee=t.transferee, entity_type=t.entity_type, accepted_by=t.confirmations,
        deadline=t.deadline, opt_out_until=t.opt_out_until, at=now)
    if any(e.type == "transfer.TransfereeApproved" for e in events):
        await deps.directory.verified_person(
            tx, phone_blind=t.transferee["phone_blind"], id_blind=t.transferee["id_number_blind"],
            source=f"transferee:{t.transfer_id}", at=now)
    if t.kind == "transfer" and any(e.type == "transfer.TransferCompleted" for e in events):
        owner = await deps.directory.owner(tx, t.account_id)
        await deps.directory.moved(tx, rules.Move(
            t.transfer_id, t.account_id, owner.id_blind if owner else None,
            t.transferee["id_number_blind"], now))
        await deps.directory.owner_is(
            tx, account_id=t.account_id, entity_type=t.entity_type,
            name=rules.disclosed_name(t.entity_type, t.transferee.get("holder_name_masked"),
                                      t.organization),
            identity=t.transferee, at=now, transferred=True)


# -- incoming: registration, enforcement, verification ------------------------------------
async def when_event(deps: Deps, tx: Tx, event: Envelope) -> None:
    """One event, in the consumer's transaction with its inbox record: an owner or a
    measure kept in the directory (upserts), or verification's answer decided on the
    application's stream; an answer that no longer applies is logged and skipped."""
    payload: Any = deps.store.registry.payload(event)
    learn = LEARN.get(event.type)
    if learn is not None:
        learned = learn(payload, event)
        if isinstance(learned, OwnerKnown):
            if await deps.directory.owner(tx, learned.account_id) is None:
                await deps.directory.owner_is(
                    tx, account_id=learned.account_id, entity_type=learned.entity_type,
                    name=learned.name, identity=learned.identity, at=learned.at,
                    province=learned.province)
            # verification's answer may have come first (another topic)
            if await deps.directory.is_verified(tx, learned.account_id):
                await deps.directory.verified_person(
                    tx, phone_blind=learned.identity["phone_blind"],
                    id_blind=learned.identity["id_number_blind"],
                    source=f"registrant:{learned.account_id}", at=learned.at)
        elif isinstance(learned, OwnerVerified):
            await deps.directory.account_verified(tx, learned.account_id, learned.at)
            owner = await deps.directory.owner(tx, learned.account_id)
            if owner is not None and owner.phone_blind and owner.id_blind:
                await deps.directory.verified_person(
                    tx, phone_blind=owner.phone_blind, id_blind=owner.id_blind,
                    source=f"registrant:{learned.account_id}", at=learned.at)
        elif isinstance(learned, MeasureNoted):
            await deps.directory.measure(tx, measure_id=learned.measure_id,
                                         account_id=learned.account_id,
                                         measure=learned.measure, active=learned.active,
                                         at=learned.at)
        return
    policy = POLICIES.get(event.type)
    if policy is None:
        return
    state = await deps.transfers.load(tx, payload.transfer_id)
    try:
        closing = await _closing(deps, tx, state) if state else Closing(deps.clock())
        changed = await deps.transfers.decide(
            tx, payload.transfer_id, lambda s: policy(s, payload, event, closing),
            cause=event, state=state)
    except DomainError as exc:
        log.info("%s %s: %s; skipped", event.type, event.id, exc.detail)
        return
    await _index(deps, tx, changed.after, changed.events)


# -- commands ---------------------------------------------------------------------------------
async def apply(deps: Deps, app: Application, *, by: str, key: str | None,
                digest: str) -> TransferOut:
    """An application (A11.2; a grant A17.3): refused at once by the no-trading rules
    (A11.1, with an event), else the transferee goes to verification and followers are
    told."""
    transfer_id = new_id()

    async def work(tx: Tx) -> TransferOut:
        now = deps.clock()
        owner = await deps.directory.owner(tx, app.account_id)
        if owner is None:
            raise NotFoundError(f"account {app.account_id} is not known to transfer (yet: it "
                                "learns accounts from registration's events)",
                                code="account-not-known", title="Unknown account")
        if owner.id_blind == app.transferee.id_number_blind:
            raise InvalidCommandError("the transferee already operates the account",
                                      code="transferee-is-owner", legal_basis=["A11.2"])
        for other in await deps.directory.applications(tx, app.account_id):
            if other.status in ("verifying", "awaiting_confirmation") and (
                    app.kind == "transfer" or other.id_blind == app.transferee.id_number_blind):
                raise InvalidCommandError(
                    f"application {other.transfer_id} for this account is still open",
                    code="transfer-already-open", legal_basis=["A11.2"],
                    transfer_id=other.transfer_id)
        refused = rules.refusals(deps.rules, await deps.directory.facts(tx, app.account_id),
                                 kind=app.kind, now=now)
        changed = await deps.transfers.decide(tx, transfer_id, lambda s: Transfer.apply(
            transfer_id, app, by=by, now=now,
            deadline=now + timedelta(days=deps.confirmation_days),
            opt_out_until=now + timedelta(days=deps.opt_out_days), refusals=refused))
        await _index(deps, tx, changed.after, changed.events)
        return present(changed.after)

    return await deps.command(key, "transfer.applications", digest, work, TransferOut)


async def _on_transfer(deps: Deps, transfer_id: str, decision: Callable[[Transfer, Closing], Any],
                       *, key: str | None, scope: str, digest: str) -> TransferOut:
    async def work(tx: Tx) -> TransferOut:
        t = await _existing(deps, tx, transfer_id)
        closing = await _closing(deps, tx, t)
        changed = await deps.transfers.decide(tx, transfer_id, lambda s: decision(t, closing),
                                              state=t)
        await _index(deps, tx, changed.after, changed.events)
        return present(changed.after)

    return await deps.command(key, scope, digest, work, TransferOut)


async def confirm(deps: Deps, transfer_id: str, *, party: str, by: str, key: str | None,
                  digest: str) -> TransferOut:
    """One party's acceptance; the last one needed completes the transfer or grant."""
    return await _on_transfer(deps, transfer_id, lambda t, c: t.confirm(party, by=by, closing=c),
                              key=key, scope="transfer.confirmations", digest=digest)


async def opt_out(deps: Deps, transfer_id: str, *, follower_id: str, key: str | None,
                  digest: str) -> TransferOut:
    return await _on_transfer(deps, transfer_id, lambda t, c: t.opt_out(follower_id),
                              key=key, scope="transfer.opt-outs", digest=digest)


async def withdraw(deps: Deps, transfer_id: str, *, by: str, reason: str, key: str | None,
                   digest: str) -> TransferOut:
    return await _on_transfer(deps, transfer_id, lambda t, c: t.withdraw(by=by, reason=reason),
                              key=key, scope="transfer.withdrawals", digest=digest)


async def revoke(deps: Deps, transfer_id: str, *, by: str, reason: str, key: str | None,
                 digest: str) -> TransferOut:
    return await _on_transfer(deps, transfer_id, lambda t, c: t.revoke(by=by, reason=reason),
                              key=key, scope="transfer.revocations", digest=digest)


async def expire(deps: Deps, transfer_id: str, now: datetime) -> bool:
    """The application expired at ``now`` if still open past its deadline."""

    async def work(tx: Tx) -> bool:
        t = await deps.transfers.load(tx, transfer_id)
        if t is None:
            return False
        changed = await deps.transfers.decide(tx, transfer_id, lambda s: t.expire(now),
                                              state=t)
        if changed.events:
            await _index(deps, tx, changed.after, changed.events)
        return bool(changed.events)

    return await transact(deps.db, work)


async def complete_due(deps: Deps, transfer_id: str, now: datetime) -> bool:
    """The transfer completed at ``now`` if its followers' opt-out period is over (A11.2)."""

    async def work(tx: Tx) -> bool:
        t = await deps.transfers.load(tx, transfer_id)
        if t is None:
            return False
        closing = await _closing(deps, tx, t, now)
        changed = await deps.transfers.decide(tx, transfer_id,
                                              lambda s: t.complete_when_due(closing), state=t)
        if changed.events:
            await _index(deps, tx, changed.after, changed.events, now)
        return bool(changed.events)

    return await transact(deps.db, work)


async def due(deps: Deps, now: datetime) -> list[str]:
    async with deps.db.connect() as conn:
        return await deps.directory.due(conn, now)


async def opt_outs_over(deps: Deps, now: datetime) -> list[str]:
    async with deps.db.connect() as conn:
        return await deps.directory.opt_outs_over(conn, now)


async def list_transfers(deps: Deps, *, account_id: str | None, status: str | None,
                         kind: str | None, province: str | None, cursor: str,
                         limit: int) -> views.TransferPage:
    """A page of applications in id order (a regulator's limited to its province)."""
    async with deps.db.connect() as conn:
        return await views.page(conn, account_id=account_id, status=status, kind=kind,
                                province=province, after=cursor, limit=limit)


async def get_transfer(deps: Deps, transfer_id: str, *, province: str | None = None
                       ) -> TransferOut:
    """One application; for a provincial regulator (``province``) only of its province."""
    async with deps.db.connect() as conn:
        t = await _existing(deps, conn, transfer_id)
        if province is not None:
            owner = await deps.directory.owner(conn, t.account_id)
            if owner is None or owner.province != province:
                raise NotFoundError(f"no transfer {transfer_id} in province {province}",
                                    code="transfer-not-found", title="No such transfer")
        return present(t)


async def operators(deps: Deps, account_id: str, *, province: str | None = None
                    ) -> OperatorsOut:
    """The account's owner, its granted operators and open applications (A11.2, A17.3);
    for a provincial regulator (``province``) only an account of its province."""
    async with deps.db.connect() as conn:
        owner = await deps.directory.owner(conn, account_id)
        if owner is None or (province is not None and owner.province != province):
            raise NotFoundError(f"account {account_id} is not known to transfer",
                                code="account-not-known", title="Unknown account")
        apps = await deps.directory.applications(conn, account_id)
        facts = await deps.directory.facts(conn, account_id)
        verified = await deps.directory.is_verified(conn, account_id)

    def shown(a) -> ApplicationShown:
        return {"transfer_id": a.transfer_id, "kind": a.kind, "status": a.status,
                "identity": a.masked, "entity_type": a.entity_type,
                "accepted_by": a.accepted_by, "deadline": a.deadline.isoformat()}

    return OperatorsOut(
        account_id=account_id, owner=owner.masked, owner_entity_type=owner.entity_type,
        owner_verified=verified,
        operators=[shown(a) for a in apps if a.kind != "transfer" and a.status == "completed"],
        pending=[shown(a) for a in apps if a.status in ("verifying", "awaiting_confirmation")],
        active_measures=list(facts.active_measures),
        last_transferred_at=facts.last_transferred_at)


async def ownership_signal(deps: Deps, signal: SignalIn, *, key: str | None,
                           digest: str) -> SignalOut:
    """A new identity at login, or a changed contact that is the phone of a verified person:
    covered by the owner, a granted operator or an approved application, or an unapplied
    transfer (A11.2) that registration applies as a suspension. A contact of no verified
    person names nobody: recorded, not judged."""

    async def work(tx: Tx) -> SignalOut:
        owner = await deps.directory.owner(tx, signal.account_id)
        if owner is None:
            raise NotFoundError(f"account {signal.account_id} is not known to transfer",
                                code="account-not-known", title="Unknown account")
        apps = await deps.directory.applications(tx, signal.account_id)

        def cover(id_blind: str) -> str | None:
            if id_blind == owner.id_blind:
                return "owner"
            for a in apps:
                if a.id_blind == id_blind and (
                        a.status in APPROVED or (a.status == "completed" and a.kind != "transfer")):
                    return f"{a.kind}:{a.transfer_id}"
            return None

        named: list[tuple[str, str]] = []  # (identity blind index, how the signal names it)
        if signal.id_blind:
            named.append((signal.id_blind, f"a different identity is acting ({signal.masked})"))
        unmatched = None
        if signal.phone_blind:
            person = (owner.id_blind if signal.phone_blind == owner.phone_blind
                      else await deps.directory.person_of(tx, signal.phone_blind))
            if person is None:
                unmatched = signal.contact_masked or ""
            else:
                named.append((person, f"the contact changed to {signal.contact_masked}, the "
                                      "phone of a different verified person"))
        covers = [cover(i) for i, _ in named]
        evidence = [f"{signal.signal}: {how}; no approved application covers it"
                    for (_, how), c in zip(named, covers, strict=True) if c is None]
        covered = None if evidence or not named else ", ".join(dict.fromkeys(covers))
        outcome = ("unmatched_contact" if not named
                   else "unapplied_transfer" if evidence else "cleared")
        await deps.signals.decide(tx, signal.account_id, lambda s: judge_signal(
            account_id=signal.account_id, signal=signal.signal, covered_by=covered,
            evidence=evidence, unmatched_contact=unmatched if not named else None))
        return SignalOut(account_id=signal.account_id, signal=signal.signal, outcome=outcome,
                         unapplied_transfer=outcome == "unapplied_transfer",
                         covered_by=covered)

    return await deps.command(key, "transfer.ownership-signals", digest, work, SignalOut)
