"""Other services' events -> the account's lifecycle (choreography, no calls); pure.

Each policy decides from the account's state and the event's typed payload (after
upcasting) what the account's new events are; :func:`.handlers.when_event` loads the
account, gathers the :class:`Context` and appends what the policy decided, caused by the
event, in the consumer's transaction (with its inbox record: a redelivery changes nothing).
A policy that no longer applies (a measure on a closed account) raises
:class:`libs.domain.IllegalTransitionError`; the handler logs and skips the event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from libs.domain import IllegalTransitionError
from libs.events import Envelope
from libs.events.contracts import credit, enforcement, transfer, verification

from .domain import QUALIFICATION_LAPSED, Account, Payloads
from .rules import (
    CAPABILITIES_LIMITED_BY_DEFAULT,
    CREDIT_WITHHELD,
    QUALIFICATION_LAPSED_WITHHELD,
    STOP_ADS,
    ban_until,
)


@dataclass(frozen=True)
class Context:
    """What the handler gathered for a policy: the time and the rules' parameters."""

    now: datetime
    correction_days: int
    closure_ban_severity: str = "serious"  # A8.3: a closure that names no ban severity


Reaction = Callable[[Account, Any, Envelope, Context], Payloads]


def _basis(payload: Any, *ours: str) -> list[str]:
    return sorted({*payload.legal_basis, *ours})


def when_account_verified_activate(acc: Account, p: verification.AccountVerified,
                                   e: Envelope, ctx: Context) -> Payloads:
    return acc.activate(evidence=[e.id])


def when_profile_mismatch_request_correction(acc: Account, p: verification.ProfileMismatchFound,
                                             e: Envelope, ctx: Context) -> Payloads:
    if p.change_id:  # a proposed change failed: the old profile stays (A8.2)
        return acc.reject_profile_change(change_id=p.change_id, findings=p.findings,
                                         evidence=[e.id])
    return acc.request_correction(deadline=ctx.now + timedelta(days=ctx.correction_days),
                                  findings=p.findings, evidence=[e.id],
                                  legal_basis=_basis(p, "A8.2"))


def when_profile_check_passed_apply_change(acc: Account, p: verification.ProfileCheckPassed,
                                           e: Envelope, ctx: Context) -> Payloads:
    if not p.change_id:  # a check of the current profile: nothing to apply
        return []
    return acc.apply_profile_change(change_id=p.change_id, evidence=[e.id])


def when_identity_failed_cease_service(acc: Account,
                                       p: verification.IdentityVerificationFailed,
                                       e: Envelope, ctx: Context) -> Payloads:
    return acc.close(reason="identity_verification_failed", legal_basis=_basis(p, "A8.1"),
                     evidence=[e.id])


def when_qualification_lapsed_restrict_service(acc: Account,
                                              p: verification.QualificationRequired,
                                              e: Envelope, ctx: Context) -> Payloads:
    """A9.1, A5: an approved qualification or news permit expired and none other holds:
    the service that needs it goes (AccountVerified, once a new one passes, restores it)."""
    if p.reason != "expired":  # a new account's needs: it is not active yet anyway
        return []
    return acc.restrict(restriction_id=QUALIFICATION_LAPSED,
                        capabilities=QUALIFICATION_LAPSED_WITHHELD, until=None,
                        legal_basis=_basis(p), evidence=[e.id])


def when_credit_level_changed_set_capabilities(acc: Account, p: credit.CreditLevelChanged,
                                               e: Envelope, ctx: Context) -> Payloads:
    return acc.apply_credit_level(level=p.level, withheld=CREDIT_WITHHELD[p.level],
                                  evidence=[e.id])


def when_identity_blacklisted_close_account(acc: Account, p: credit.IdentityBlacklisted,
                                           e: Envelope, ctx: Context) -> Payloads:
    """A13.2: the identity is blacklisted for rumors: each of its accounts (credit sends one
    event per account) is closed and its identity barred from registering again."""
    basis = _basis(p, "A13.2", "A8.3")
    try:
        events = acc.close(reason="blacklist", measure_id=p.blacklist_id, legal_basis=basis,
                           evidence=[e.id])
    except IllegalTransitionError:  # already closed: the ban still applies
        events = []
    until = ban_until("serious", p.at, None)
    return events + acc.ban(measure_id=p.blacklist_id, severity="serious", until=until,
                            keys=acc.ban_keys, legal_basis=basis, evidence=[e.id])


def when_identity_blacklist_lifted_lift_ban(acc: Account, p: credit.IdentityBlacklistLifted,
                                            e: Envelope, ctx: Context) -> Payloads:
    """A13.2, A20.2: the blacklist was overturned on appeal: its re-registration ban goes.
    The account stays closed (closure is final, ADR 0029): the person may register again."""
    return acc.lift(measure_id=p.blacklist_id, legal_basis=_basis(p, "A13.2", "A20.2"),
                    evidence=[e.id])


def when_measure_applied_restrict_account(acc: Account, p: enforcement.MeasureApplied,
                                          e: Envelope, ctx: Context) -> Payloads:
    ev, mid, basis = [e.id], p.measure_id, _basis(p, "A19.2")
    if p.measure == "warning":
        return acc.warn(measure_id=mid, legal_basis=basis, evidence=ev)
    if p.measure in ("function_limit", "stop_ads"):
        caps = (p.capabilities or list(CAPABILITIES_LIMITED_BY_DEFAULT)
                if p.measure == "function_limit" else list(STOP_ADS))
        return acc.restrict(restriction_id=mid, capabilities=caps, until=p.ends_at,
                            legal_basis=basis, evidence=ev)
    if p.measure == "suspend_updates":
        return acc.suspend(suspension_id=mid, reason="enforcement", until=p.ends_at,
                           legal_basis=basis, evidence=ev)
    events: Payloads = []
    if p.measure in ("closure", "blacklist"):
        try:
            events += acc.close(reason="enforcement" if p.measure == "closure" else "blacklist",
                                measure_id=mid, legal_basis=_basis(p, "A19.2", "A8.3"),
                                evidence=ev)
        except IllegalTransitionError:  # closed or deregistered meanwhile: the ban still applies
            pass
    # A8.3: a closure always bans re-registration; enforcement may grade it, else the default.
    severity = p.ban_severity or {"closure": ctx.closure_ban_severity, "blacklist": "permanent",
                                  "reregistration_ban": "serious"}[p.measure]
    until = ban_until(severity, p.starts_at or ctx.now, p.ban_until)
    return events + acc.ban(measure_id=mid, severity=severity, until=until, keys=acc.ban_keys,
                            legal_basis=_basis(p, "A8.3", "A19.2"), evidence=ev)


def when_measure_lifted_undo_it(acc: Account, p: enforcement.MeasureLifted, e: Envelope,
                                ctx: Context) -> Payloads:
    return acc.lift(measure_id=p.measure_id, legal_basis=_basis(p, "A20.2"), evidence=[e.id])


def when_transfer_completed_change_owner(acc: Account, p: transfer.TransferCompleted,
                                         e: Envelope, ctx: Context) -> Payloads:
    return acc.change_owner(transfer_id=p.transfer_id, new_owner=p.new_owner, evidence=[e.id])


def when_unapplied_transfer_suspend(acc: Account, p: transfer.UnappliedTransferDetected,
                                    e: Envelope, ctx: Context) -> Payloads:
    if "unapplied_transfer" in acc.suspensions:
        return []
    return acc.suspend(suspension_id="unapplied_transfer", reason="unapplied_transfer",
                       legal_basis=_basis(p, "A11.2"), evidence=[e.id])


POLICIES: dict[str, Reaction] = {
    "verification.AccountVerified": when_account_verified_activate,
    "verification.ProfileMismatchFound": when_profile_mismatch_request_correction,
    "verification.ProfileCheckPassed": when_profile_check_passed_apply_change,
    "verification.IdentityVerificationFailed": when_identity_failed_cease_service,
    "verification.QualificationRequired": when_qualification_lapsed_restrict_service,
    "credit.CreditLevelChanged": when_credit_level_changed_set_capabilities,
    "credit.IdentityBlacklisted": when_identity_blacklisted_close_account,
    "credit.IdentityBlacklistLifted": when_identity_blacklist_lifted_lift_ban,
    "enforcement.MeasureApplied": when_measure_applied_restrict_account,
    "enforcement.MeasureLifted": when_measure_lifted_undo_it,
    "transfer.TransferCompleted": when_transfer_completed_change_owner,
    "transfer.UnappliedTransferDetected": when_unapplied_transfer_suspend,
}
