"""Other services' events -> the account's lifecycle (choreography, no calls).

Each event is handled in the consumer's transaction together with its inbox record, so a
redelivery changes nothing. The topics are shared logs: an event for an account this
service does not know, or one that no longer applies (a measure on a closed account), is
logged and skipped rather than dead-lettered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from libs.events import Envelope, each, events_topic
from libs.events.db import Tx
from libs.runtime.service import Subscription

from .domain import Account, Decided, IllegalTransitionError
from .handlers import Deps, ban_keys, decide_and_append, load
from .rules import CAPABILITIES_LIMITED_BY_DEFAULT, STOP_ADS, ban_until

log = logging.getLogger(__name__)

Rule = Callable[[Deps, Account, Envelope], Decided]


def _basis(e: Envelope, *ours: str) -> list[str]:
    return sorted({*e.data.get("legal_basis", []), *ours})


def _ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def when_account_verified_activate(deps: Deps, acc: Account, e: Envelope) -> Decided:
    return acc.activate(evidence=[e.id])


def when_profile_mismatch_request_correction(deps: Deps, acc: Account, e: Envelope) -> Decided:
    d = e.data
    if d.get("change_id"):  # a proposed change failed: the old profile stays (A8.2)
        return acc.reject_profile_change(change_id=d["change_id"], findings=d["findings"],
                                         evidence=[e.id])
    deadline = deps.clock() + timedelta(days=deps.policy.correction_days)
    return acc.request_correction(deadline=deadline, findings=d["findings"], evidence=[e.id],
                                  legal_basis=_basis(e, "A8.2"))


def when_profile_check_passed_apply_change(deps: Deps, acc: Account, e: Envelope) -> Decided:
    change_id = e.data.get("change_id")
    return acc.apply_profile_change(change_id=change_id, evidence=[e.id]) if change_id else []


def when_identity_failed_cease_service(deps: Deps, acc: Account, e: Envelope) -> Decided:
    return acc.close(reason="identity_verification_failed", legal_basis=_basis(e, "A8.1"),
                     evidence=[e.id])


def when_credit_level_changed_set_capabilities(deps: Deps, acc: Account, e: Envelope
                                               ) -> Decided:
    return acc.apply_credit_level(level=e.data["level"], evidence=[e.id])


def when_measure_applied_restrict_account(deps: Deps, acc: Account, e: Envelope) -> Decided:
    d, ev = e.data, [e.id]
    measure, mid, basis = d["measure"], d["measure_id"], _basis(e, "A19.2")
    if measure == "warning":
        return acc.warn(measure_id=mid, legal_basis=basis, evidence=ev)
    if measure in ("function_limit", "stop_ads"):
        caps = (d.get("capabilities") or list(CAPABILITIES_LIMITED_BY_DEFAULT)
                if measure == "function_limit" else list(STOP_ADS))
        return acc.restrict(restriction_id=mid, capabilities=caps, until=_ts(d.get("ends_at")),
                            legal_basis=basis, evidence=ev)
    if measure == "suspend_updates":
        return acc.suspend(suspension_id=mid, reason="enforcement", until=_ts(d.get("ends_at")),
                           legal_basis=basis, evidence=ev)
    events: Decided = []
    if measure in ("closure", "blacklist"):
        events += acc.close(reason="enforcement" if measure == "closure" else "blacklist",
                            measure_id=mid, legal_basis=_basis(e, "A19.2", "A8.3"), evidence=ev)
    severity = d.get("ban_severity") or {"blacklist": "permanent",
                                         "reregistration_ban": "serious"}.get(measure)
    if severity:  # A8.3: a closure under enforcement bans re-registration
        until = ban_until(severity, _ts(d["starts_at"]) or deps.clock(), _ts(d.get("ban_until")))
        events += acc.ban(measure_id=mid, severity=severity, until=until, keys=ban_keys(acc),
                          legal_basis=_basis(e, "A8.3", "A19.2"), evidence=ev)
    return events


def when_measure_lifted_undo_it(deps: Deps, acc: Account, e: Envelope) -> Decided:
    return acc.lift(measure_id=e.data["measure_id"], legal_basis=_basis(e, "A20.2"),
                    evidence=[e.id])


def when_transfer_completed_change_owner(deps: Deps, acc: Account, e: Envelope) -> Decided:
    return acc.change_owner(transfer_id=e.data["transfer_id"], new_owner=e.data["new_owner"],
                            evidence=[e.id])


def when_unapplied_transfer_suspend(deps: Deps, acc: Account, e: Envelope) -> Decided:
    if "unapplied_transfer" in acc.suspensions:
        return []
    return acc.suspend(suspension_id="unapplied_transfer", reason="unapplied_transfer",
                       legal_basis=_basis(e, "A11.2"), evidence=[e.id])


RULES: dict[str, Rule] = {
    "verification.AccountVerified": when_account_verified_activate,
    "verification.ProfileMismatchFound": when_profile_mismatch_request_correction,
    "verification.ProfileCheckPassed": when_profile_check_passed_apply_change,
    "verification.IdentityVerificationFailed": when_identity_failed_cease_service,
    "credit.CreditLevelChanged": when_credit_level_changed_set_capabilities,
    "enforcement.MeasureApplied": when_measure_applied_restrict_account,
    "enforcement.MeasureLifted": when_measure_lifted_undo_it,
    "transfer.TransferCompleted": when_transfer_completed_change_owner,
    "transfer.UnappliedTransferDetected": when_unapplied_transfer_suspend,
}


async def handle(deps: Deps, tx: Tx, e: Envelope) -> None:
    """One upstream event: load its account, let the rule decide, append."""
    rule = RULES.get(e.type)
    account_id = e.data.get("account_id") or e.subject
    if rule is None or not account_id:
        return
    acc = await load(deps, tx, account_id)
    if acc is None:
        log.info("%s %s: unknown account %s, skipped", e.type, e.id, account_id)
        return
    try:
        decided = rule(deps, acc, e)
    except IllegalTransitionError as exc:
        log.info("%s %s on %s: %s; skipped", e.type, e.id, account_id, exc.detail)
        return
    await decide_and_append(deps, tx, acc, decided, cause=e)


def subscription(deps: Deps) -> Subscription:
    async def one(tx: Tx, e: Envelope) -> None:
        await handle(deps, tx, e)

    return Subscription(
        name="registration-inbound",
        topics=[events_topic(s) for s in ("verification", "credit", "enforcement", "transfer")],
        handler=each(one),
        event_types=frozenset(RULES),
    )
