"""Use cases: one command or one incoming event -> one transaction on one account stream."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from libs.events import ConcurrencyError, Database, Envelope, EventStore
from libs.events.db import Tx
from libs.runtime.idempotency import Answer, run_idempotent
from libs.runtime.problems import ProblemError

from . import lookups, rules
from .domain import Account, Decided, DomainError, evolve, fold
from .lookups import ClosedNames
from .rules import Policy, RuleError

log = logging.getLogger(__name__)
SOURCE = "/registration"


def stream_of(account_id: str) -> str:
    return f"account-{account_id}"


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Deps:
    """What the handlers need; built in bootstrap (fakes or a test database in tests)."""

    db: Database
    store: EventStore
    policy: Policy
    agreement_version: str
    names: ClosedNames
    clock: Callable[[], datetime] = utcnow
    committed: Callable[[], None] = field(default=lambda: None)


class AccountNotFoundError(ProblemError):
    status = 404
    code = "account-not-found"
    title = "No such account"


@contextmanager
def problems():
    """Domain refusals as problem details (the domain knows nothing of HTTP)."""
    try:
        yield
    except (DomainError, RuleError) as exc:
        extra = getattr(exc, "extra", {})
        raise ProblemError(exc.detail, status=exc.status, code=exc.code,
                           title=exc.code.replace("-", " ").capitalize(), **extra) from None


# -- registration -------------------------------------------------------------------------
@dataclass(frozen=True)
class Application:
    """A validated registration: personal data already sealed, keys already blinded."""

    entity_type: str
    category: str
    payload: dict[str, Any]  # AccountRegistrationSubmitted fields except account_id
    id_blind: str
    phone_blind: str
    device_blind: str | None
    network_blind: str | None
    profile_name: str
    has_organization: bool
    has_representative: bool


async def register(deps: Deps, app: Application, *, key: str | None, digest: str) -> Answer:
    """RegisterAccount: accept (202), hold for review (202) or refuse with an event."""
    policy = deps.policy
    with problems():
        rules.validate_application(
            entity_type=app.entity_type, category=app.category,
            has_organization=app.has_organization, has_representative=app.has_representative,
            agreement_version=app.payload["agreement_version"],
            current_agreement=deps.agreement_version)
    matches = [rules.Match(m.id, m.name, m.kind, m.score)
               for m in deps.names.similar(app.profile_name, threshold=policy.similar_hold)]
    counted = [(app.id_blind, "identity", 1), (app.phone_blind, "phone", 1)]
    if app.device_blind:
        counted.append((app.device_blind, "device", 0))
    if app.network_blind:
        counted.append((app.network_blind, "network", 0))
    keys = [(k, kind, inc, policy.velocity[kind].window_seconds) for k, kind, inc in counted]

    async def work(tx: Tx) -> Answer:
        now = deps.clock()
        account_id = str(uuid.uuid4())
        states = await lookups.count_attempt(tx, keys, now.timestamp())
        with problems():
            rules.check_bans(states, now.timestamp())
        decision = rules.decide_registration(entity_type=app.entity_type, keys=states,
                                             matches=matches, policy=policy)
        data = {"account_id": account_id, **app.payload}
        if decision.outcome == "refuse":
            await lookups.uncount(tx, [app.id_blind, app.phone_blind])
            refused = {"account_id": account_id, "entity_type": app.entity_type,
                       "code": decision.code, "reasons": list(decision.reasons),
                       "id_number_blind": app.id_blind, "phone_blind": app.phone_blind,
                       "device_blind": app.device_blind, "network_blind": app.network_blind,
                       "legal_basis": list(decision.legal_basis)}
            await _append_new(deps, tx, account_id, now,
                              [("registration.AccountRegistrationRefused", refused)])
            return Answer(decision.status, {
                "type": f"/problems/{decision.code}", "code": decision.code,
                "title": decision.code.replace("-", " ").capitalize(),
                "status": decision.status, "detail": "; ".join(decision.reasons),
                "account_id": account_id, "legal_basis": list(decision.legal_basis)})
        if decision.extra_verification:
            data["extra_verification_required"] = True
            data["extra_verification_reasons"] = list(decision.extra_verification)
        events: Decided = []
        if decision.outcome == "hold":
            events.append(("registration.AccountRegistrationHeld", {
                **data, "reasons": list(decision.reasons), "findings": list(decision.findings),
                "legal_basis": sorted({*data["legal_basis"], *decision.legal_basis})}))
            status = "held_for_review"
        else:
            events.append(("registration.AccountRegistrationSubmitted", data))
            status = "pending_verification"
        if decision.extra_verification:
            events.append(("registration.ExtraVerificationRequired", {
                "account_id": account_id, "reasons": list(decision.extra_verification),
                "accounts_of_identity": decision.identity_accounts,
                "threshold": decision.threshold, "legal_basis": ["A10.1"]}))
        await _append_new(deps, tx, account_id, now, events)
        return Answer(202, {"account_id": account_id, "status": status,
                            "extra_verification_required": bool(decision.extra_verification),
                            "reasons": [*decision.reasons, *decision.extra_verification]})

    answer = await run_idempotent(deps.db, key, scope="registration.accounts", digest=digest,
                                  work=work)
    deps.committed()
    return answer


async def _append_new(deps: Deps, tx: Tx, account_id: str, now: datetime,
                      events: Decided) -> None:
    first = Envelope.new(type=events[0][0], data=events[0][1], stream_id=stream_of(account_id),
                         source=SOURCE, time=now, subject=account_id)
    envs = [first] + [first.caused(type=t, data=d, stream_id=first.stream_id, source=SOURCE,
                                   time=now, subject=account_id) for t, d in events[1:]]
    await deps.store.append(tx, first.stream_id, 0, envs)


# -- commands on an existing account ------------------------------------------------------
async def load(deps: Deps, tx: Tx, account_id: str) -> Account | None:
    return fold(await deps.store.read_stream(tx, stream_of(account_id)))


async def decide_and_append(deps: Deps, tx: Tx, acc: Account, decided: Decided,
                            cause: Envelope | None = None) -> Account:
    """Append the decided events (caused by ``cause`` if any), keep the look-up tables in
    step in the same transaction, and return the account after them."""
    if not decided:
        return acc
    now = deps.clock()
    stream = stream_of(acc.account_id)
    common = {"stream_id": stream, "source": SOURCE, "time": now, "subject": acc.account_id}
    envs = [cause.caused(type=t, data=d, **common) if cause is not None
            else Envelope.new(type=t, data=d, **common) for t, d in decided]
    stored = await deps.store.append(tx, stream, acc.version, envs)
    for e in stored:
        before, acc = acc, replace(evolve(acc, e.type, e.data, e.time), version=e.stream_version)
        await _keep_lookups(deps, tx, before, e)
    return acc


async def _keep_lookups(deps: Deps, tx: Tx, acc: Account, e: Envelope) -> None:
    d, name = e.data, e.type.removeprefix("registration.")
    if name == "ReregistrationBanImposed":
        until = datetime.fromisoformat(d["until"]) if d["until"] else None
        kinds = _key_kinds(acc)
        await lookups.ban(tx, [(k, kinds.get(k, "identity")) for k in d["keys"]], until=until,
                          measure_id=d["measure_id"])
    elif name == "ReregistrationBanLifted":
        await lookups.unban(tx, d["keys"], measure_id=d["measure_id"])
    elif name == "AccountClosed" and d["reason"] in ("enforcement", "blacklist"):
        await lookups.record_closed_name(tx, account_id=acc.account_id,
                                         name=acc.profile.get("name", ""), at=e.time)
    elif name == "OwnerChanged":
        # The account leaves the old owner's count and joins the new owner's (A10.1, A11.2).
        await lookups.uncount(tx, ban_keys(acc))
        owner = d["new_owner"]
        await lookups.add_account(tx, [(owner["id_number_blind"], "identity"),
                                       (owner["phone_blind"], "phone")])


def _key_kinds(acc: Account) -> dict[str, str]:
    return {acc.owner.get("id_number_blind", ""): "identity",
            acc.owner.get("phone_blind", ""): "phone"}


def ban_keys(acc: Account) -> list[str]:
    """A8.3: the ban is on the identity (resident ID or USCC) and the phone, not the name."""
    return [k for k in (acc.owner.get("id_number_blind"), acc.owner.get("phone_blind")) if k]


async def command(deps: Deps, account_id: str, decide: Callable[[Account], Decided], *,
                  key: str | None, digest: str, scope: str) -> Answer:
    """Load the account, let the domain decide, append; answers the account's new status."""

    async def work(tx: Tx) -> Answer:
        acc = await load(deps, tx, account_id)
        if acc is None:
            raise AccountNotFoundError(f"no account {account_id}")
        with problems():
            decided = decide(acc)
        after = await decide_and_append(deps, tx, acc, decided)
        return Answer(202, {"account_id": account_id, "status": after.status,
                            "events": [t for t, _ in decided]})

    answer = await run_idempotent(deps.db, key, scope=scope, digest=digest, work=work)
    deps.committed()
    return answer


# -- the clock: inactivity (A10.2) and correction deadlines (A8.2) ----------------------------
async def sweep(deps: Deps, *, now: datetime, candidates: list[str]) -> dict[str, list[str]]:
    """Apply :meth:`Account.sweep` to each candidate, one transaction each."""
    done: dict[str, list[str]] = {"suspended": [], "closed": [], "lifted": []}
    for account_id in candidates:
        try:
            async with deps.db.transaction() as tx:
                acc = await load(deps, tx, account_id)
                if acc is None:
                    continue
                decided = acc.sweep(now=now, inactivity_months=deps.policy.inactivity_months)
                await decide_and_append(deps, tx, acc, decided)
        except ConcurrencyError:
            log.info("sweep: %s changed meanwhile; the next sweep sees it", account_id)
            continue
        for t, _ in decided:
            if t.endswith("AccountSuspended"):
                done["suspended"].append(account_id)
            elif t.endswith("AccountClosed"):
                done["closed"].append(account_id)
            elif t.endswith(("AccountRestrictionLifted", "AccountReinstated")):
                done["lifted"].append(account_id)
    if any(done.values()):
        deps.committed()
    return done
