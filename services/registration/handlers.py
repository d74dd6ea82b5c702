"""Use cases: one command or one incoming event -> one transaction on one account stream.

Handlers return results (pydantic models) and raise :mod:`libs.domain` errors; the API edge
presents both. The write side's look-up tables (limits, bans, closed names: adapters.py)
follow the account's events in the transaction that appends them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, Field, RootModel

from libs.domain import IllegalTransitionError
from libs.events import Changed, ConcurrencyError, Envelope, EventStore, Snapshots, Streams, new_id
from libs.events.db import Tx
from libs.runtime.clock import now as utcnow  # UTC; in development a request may name it
from libs.runtime.deps import ServiceDeps
from libs.runtime.pii import Sealer

from . import adapters, rules
from .adapters import ClosedNames
from .domain import (
    ACCOUNT_SCHEMA,
    Account,
    AccountNotFoundError,
    Application,
    P,
    Payloads,
    ProfileChange,
    evolve,
    stream_of,
)
from .policies import POLICIES, Context
from .rules import Policy

if TYPE_CHECKING:
    from .writer import RegistrationWriter

log = logging.getLogger(__name__)
SOURCE = "/registration"
# Closures after which the account never was the identity holder's own (A8.1, A10.1).
NEVER_HELD = frozenset({"identity_verification_failed"})
SNAPSHOT_EVERY = 100


def account_streams(store: EventStore, clock: Callable[[], datetime] = utcnow, *,
                    snapshot_every: int = SNAPSHOT_EVERY) -> Streams[Account]:
    """The ``account-<id>`` streams of ``store``, folded into :class:`Account`, from a
    snapshot kept every ``snapshot_every`` events (0: always the whole stream)."""
    snapshots = (Snapshots(Account, schema_version=ACCOUNT_SCHEMA, every=snapshot_every)
                 if snapshot_every else None)
    return Streams(store, source=SOURCE, stream_id=stream_of, evolve=evolve, clock=clock,
                   snapshots=snapshots)


@dataclass(kw_only=True)
class Deps(ServiceDeps):
    """What the handlers need; built complete in bootstrap (a test database in tests)."""

    accounts: Streams[Account]
    policy: Policy
    agreement_version: str
    names: ClosedNames
    sealer: Sealer
    # Registrations committed in groups (writer.RegistrationWriter; PostgreSQL), or None:
    # each in a transaction of its own.
    registrations: RegistrationWriter | None = None


# -- results ------------------------------------------------------------------------------
class RegistrationAccepted(BaseModel):
    """:class:`Registered` as ``POST /v1/accounts`` answers it (202, ``Location``: the
    account): pending verification, or held for a reviewer for ``reasons``."""

    account_id: str
    status: str = Field(description="pending_verification or held_for_review")
    extra_verification_required: bool
    reasons: list[str]


class Registered(RegistrationAccepted):
    """A registration accepted: pending verification, or held for a reviewer (the handler's
    result, kept for the ``Idempotency-Key``; the answer drops ``outcome``)."""

    outcome: Literal["registered"] = "registered"


class RegistrationRefused(BaseModel):
    """A registration the rules refused; recorded as ``AccountRegistrationRefused`` on
    ``account_id``'s stream. ``kind`` is the kind of domain error it is (libs.domain)."""

    outcome: Literal["refused"] = "refused"
    account_id: str
    kind: str
    code: str
    detail: str
    legal_basis: list[str]


class _Registration(RootModel[Annotated[Registered | RegistrationRefused,
                                        Field(discriminator="outcome")]]):
    """How an ``Idempotency-Key`` keeps either result (a model: a cheap TypeAdapter)."""


class AccountChanged(BaseModel):
    """A command's effect: the account's status after it and the events it added."""

    account_id: str
    status: str
    events: list[str]


# -- registration -------------------------------------------------------------------------
@dataclass(kw_only=True)
class PendingRegistration:
    """A registration checked and screened, waiting for its transaction: what it counts
    (``keys``: key, kind, accounts increment, velocity window) and its Idempotency-Key."""

    app: Application
    matches: list[rules.Match]
    keys: list[tuple[str, str, int, float]]
    key: str | None
    digest: str


@dataclass(kw_only=True)
class DecidedRegistration:
    """What a registration decided on its counted keys: its account's first events, the
    keys to uncount (a refusal) and the handler's result."""

    account_id: str
    payloads: Payloads
    uncount: list[str]
    result: _Registration


REGISTRATION_SCOPE = "registration.accounts"


async def register(deps: Deps, app: Application, *, key: str | None, digest: str
                   ) -> Registered | RegistrationRefused:
    """RegisterAccount (Art. 15): submitted for verification, held for review, or refused."""
    policy = deps.policy
    rules.validate_application(
        entity_type=app.entity_type, category=app.category,
        has_organization=app.organization is not None,
        has_representative=app.has_representative, agreement_version=app.agreement_version,
        current_agreement=deps.agreement_version)
    id_blind, phone_blind = app.identity.id_number_blind, app.identity.phone_blind
    counted = [(id_blind, "identity", 1), (phone_blind, "phone", 1)]
    if app.device_blind:
        counted.append((app.device_blind, "device", 0))
    if app.network_blind:
        counted.append((app.network_blind, "network", 0))
    pending = PendingRegistration(
        app=app, matches=_matches(deps, app.profile.name, policy.similar_hold),
        keys=[(k, kind, inc, policy.velocity[kind].window_seconds) for k, kind, inc in counted],
        key=key, digest=digest)
    if deps.registrations is not None:  # group commit (PostgreSQL): writer.py
        result = await deps.registrations.submit(pending)
    else:
        result = await register_alone(deps, pending)
    return result.root


async def register_alone(deps: Deps, pending: PendingRegistration) -> _Registration:
    """A registration in a transaction of its own (with its Idempotency-Key's)."""

    async def work(tx: Tx) -> _Registration:
        now = deps.clock()
        # Counting locks the keys' rows until commit: limits hold under concurrency.
        states = await adapters.count_attempt(tx, pending.keys, now.timestamp())
        decided = decide_registration(deps, pending, states, now)
        if decided.uncount:
            await adapters.uncount(tx, decided.uncount)
        # A new stream: appended at version 0 without reading it first.
        await deps.accounts.append(tx, decided.account_id, 0, decided.payloads)
        return decided.result

    return await deps.command(pending.key, REGISTRATION_SCOPE, pending.digest, work,
                              _Registration)


def decide_registration(deps: Deps, pending: PendingRegistration,
                        states: list[rules.KeyState], now: datetime) -> DecidedRegistration:
    """The rules on a registration's counted keys (their rows locked by this transaction):
    a ban refuses it with an error (nothing kept); otherwise a new account, registered,
    held or refused (the attempt counts, the account does not: A10.3)."""
    app = pending.app
    rules.check_bans(states, now.timestamp())
    verdict = rules.decide_registration(entity_type=app.entity_type, keys=states,
                                        matches=pending.matches, policy=deps.policy,
                                        category=app.category)
    account_id = new_id()
    payloads = Account.register(account_id, app, verdict)
    if verdict.outcome == "refuse":
        return DecidedRegistration(
            account_id=account_id, payloads=payloads,
            uncount=[app.identity.id_number_blind, app.identity.phone_blind],
            result=_Registration(RegistrationRefused(
                account_id=account_id, kind=verdict.kind, code=verdict.code,
                detail="; ".join(verdict.reasons), legal_basis=list(verdict.legal_basis))))
    registered = Registered(
        account_id=account_id,
        status="held_for_review" if verdict.outcome == "hold" else "pending_verification",
        extra_verification_required=bool(verdict.extra_verification),
        reasons=[*verdict.reasons, *verdict.extra_verification])
    return DecidedRegistration(account_id=account_id, payloads=payloads, uncount=[],
                               result=_Registration(registered))


def _matches(deps: Deps, name: str, threshold: float) -> list[rules.Match]:
    return [rules.Match(m.id, m.name, m.kind, m.score)
            for m in deps.names.similar(name, threshold=threshold)]


# -- commands on an existing account ------------------------------------------------------
def _found(acc: Account | None, account_id: str) -> Account:
    if acc is None:
        raise AccountNotFoundError(f"no account {account_id}")
    return acc


async def _change(deps: Deps, tx: Tx, account_id: str, decide: Callable[[Account], Payloads],
                  *, state: Account | None = None, cause: Envelope | None = None
                  ) -> Changed[Account]:
    """Decide on the account's stream, then bring the look-up tables in step."""
    changed = await deps.accounts.decide(
        tx, account_id, lambda acc: decide(_found(acc, account_id)), state=state, cause=cause)
    await _keep_lookups(tx, changed)
    return changed


async def _keep_lookups(tx: Tx, changed: Changed[Account]) -> None:
    acc = changed.before
    if acc is None:
        return
    for e in changed.events:
        d, name = e.data, e.type.removeprefix(P)
        if name == "ReregistrationBanImposed":
            until = datetime.fromisoformat(d["until"]) if d["until"] else None
            kinds = {acc.owner.get("id_number_blind", ""): "identity",
                     acc.owner.get("phone_blind", ""): "phone"}
            await adapters.ban(tx, [(k, kinds.get(k, "identity")) for k in d["keys"]],
                               until=until, measure_id=d["measure_id"])
        elif name == "AccountRegistrationRefused" or (
                name == "AccountClosed" and d["reason"] in NEVER_HELD):
            # A10.1 counts what the person really holds: not a registration refused on
            # review, nor an account that someone else opened with a borrowed or false
            # identity (a refusal at registration is uncounted in its own transaction).
            await adapters.uncount(tx, acc.ban_keys)
        elif name == "ReregistrationBanLifted":
            await adapters.unban(tx, d["keys"], measure_id=d["measure_id"])
        elif name == "AccountClosed" and d["reason"] in ("enforcement", "blacklist"):
            await adapters.record_closed_name(tx, account_id=acc.account_id,
                                              name=acc.profile.get("name", ""), at=e.time)
        elif name == "OwnerChanged":
            # The account leaves the old owner's count and joins the new one's (A10.1, A11.2).
            await adapters.uncount(tx, acc.ban_keys)
            owner = d["new_owner"]
            await adapters.add_account(tx, [(owner["id_number_blind"], "identity"),
                                            (owner["phone_blind"], "phone")])


async def _command(deps: Deps, account_id: str, decide: Callable[[Account], Payloads], *,
                   key: str | None, digest: str, scope: str) -> AccountChanged:
    async def work(tx: Tx) -> AccountChanged:
        changed = await _change(deps, tx, account_id, decide)
        return AccountChanged(account_id=account_id, status=changed.after.status,
                              events=changed.types)

    result = await deps.command(key, f"registration.{scope}", digest, work, AccountChanged)
    return result


async def change_profile(deps: Deps, account_id: str, change: ProfileChange, *,
                         key: str | None, digest: str) -> AccountChanged:
    """ChangeProfile (A8.2): the merged profile awaits verification; the old one stays."""
    if change.name is not None:
        rules.refuse_same_name(_matches(deps, change.name, deps.policy.similar_refuse),
                               deps.policy)
    change_id = new_id()
    return await _command(deps, account_id, lambda acc: acc.submit_profile_change(
        change_id=change_id, change=change), key=key, digest=digest, scope="profile")


async def accept_agreement(deps: Deps, account_id: str, version: str, *, key: str | None,
                           digest: str) -> AccountChanged:
    """AcceptAgreement (A6): only the current version."""
    rules.require_current_agreement(version, deps.agreement_version)
    return await _command(deps, account_id, lambda acc: acc.accept_agreement(version=version),
                          key=key, digest=digest, scope="agreement")


async def record_activity(deps: Deps, account_id: str, kind: str, *, key: str | None,
                          digest: str) -> AccountChanged:
    """RecordActivity (A10.2): a login or use; reinstates an inactivity suspension."""
    return await _command(deps, account_id, lambda acc: acc.record_activity(kind=kind),
                          key=key, digest=digest, scope="activity")


async def request_suspension(deps: Deps, account_id: str, *, key: str | None, digest: str
                             ) -> AccountChanged:
    """RequestSuspension (A11.3): the operator suspends its own account."""
    return await _command(deps, account_id, lambda acc: acc.suspend(
        suspension_id="self_requested", reason="self_requested", legal_basis=["A11.3"]),
        key=key, digest=digest, scope="suspension")


async def request_reinstatement(deps: Deps, account_id: str, *, key: str | None, digest: str
                                ) -> AccountChanged:
    """RequestReinstatement (A11.3): the operator ends its own suspension only."""
    return await _command(deps, account_id, lambda acc: acc.reinstate(
        suspension_id="self_requested", legal_basis=["A11.3"]),
        key=key, digest=digest, scope="reinstatement")


async def request_deregistration(deps: Deps, account_id: str, requested_by: str, *,
                                 key: str | None, digest: str) -> AccountChanged:
    """RequestDeregistration (A11.3): the account ends; it still counts for A10.1."""
    return await _command(deps, account_id,
                          lambda acc: acc.deregister(requested_by=requested_by),
                          key=key, digest=digest, scope="deregistration")


async def review(deps: Deps, account_id: str, *, approve: bool, reviewer: str, note: str,
                 key: str | None, digest: str) -> AccountChanged:
    """ReviewRegistration (A10.3, A8.3): a held registration goes on, or is refused."""
    return await _command(deps, account_id, lambda acc: acc.review(
        approve=approve, reviewer=reviewer, note=note, evidence=[]),
        key=key, digest=digest, scope="review")


# -- incoming events and the clock ----------------------------------------------------------
async def when_event(deps: Deps, tx: Tx, event: Envelope) -> None:
    """One upstream event: load its account, let the policy decide, append (caused by it)."""
    policy = POLICIES.get(event.type)
    if policy is None:
        log.info("%s %s: no policy for this type, skipped", event.type, event.id)
        return
    payload = deps.store.registry.payload(event)
    account_id = getattr(payload, "account_id", None) or event.subject
    acc = await deps.accounts.load(tx, account_id) if account_id else None
    if acc is None:  # the topics are shared logs: not every account is ours
        log.info("%s %s: unknown account %s, skipped", event.type, event.id, account_id)
        return
    ctx = Context(now=deps.clock(), correction_days=deps.policy.correction_days,
                  closure_ban_severity=deps.policy.closure_ban_severity)
    try:
        decided = policy(acc, payload, event, ctx)
    except IllegalTransitionError as exc:  # no longer applies (a measure on a closed account)
        log.info("%s %s on %s: %s; skipped", event.type, event.id, account_id, exc.detail)
        return
    await _change(deps, tx, account_id, lambda _: decided, state=acc, cause=event)


async def sweep_account(deps: Deps, account_id: str, *, now: datetime) -> list[str]:
    """What the clock decides for one account (A8.2, A10.2, A19.2); the event types added."""
    try:
        async with deps.db.transaction() as tx:
            acc = await deps.accounts.load(tx, account_id)
            if acc is None:
                return []
            changed = await _change(deps, tx, account_id, lambda a: a.sweep(
                now=now, inactivity_months=deps.policy.inactivity_months), state=acc)
    except ConcurrencyError:
        log.info("sweep: %s changed meanwhile; the next sweep sees it", account_id)
        return []
    return changed.types
