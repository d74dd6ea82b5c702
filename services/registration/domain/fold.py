"""The fold: an account's state after each of its events, as stored."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from libs.events import Envelope

from .account import CLOSED, DEREGISTERED, HELD, LIVE, PENDING, REFUSED, Account

P = "registration."


def _expiring(expiries: dict[str, str], key: str, until: str | None) -> dict[str, str]:
    rest = {k: v for k, v in expiries.items() if k != key}
    return {**rest, key: until} if until else rest


def _ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _opened(acc: Account | None, d: dict, time: datetime, phase: str) -> Account:
    return Account(
        account_id=d["account_id"], phase=phase, registered_at=time, last_active_at=time,
        entity_type=d["entity_type"], category=d["category"], province=d["province"],
        operations_province=d["operations_province"], owner=d["identity"],
        profile=d["profile"], organization=d.get("organization"),
        contact_masked=d["contact_masked"], agreement_version=d["agreement_version"],
        extra_verification=d.get("extra_verification_required", False),
        application=d if phase == HELD else {},
        version=acc.version if acc else 0)


def evolve(acc: Account | None, e: Envelope) -> Account:
    """The account after one of its events, at that event's stream version (pure; types
    with no state of their own leave the rest unchanged)."""
    return replace(_evolve(acc, e.type.removeprefix(P), e.data, e.time),
                   version=e.stream_version)


def _evolve(acc: Account | None, name: str, d: dict[str, Any], time: datetime) -> Account:
    # Reads the stored data (JSON), not the contract: the fold runs for every event read.
    if name == "AccountRegistrationSubmitted":
        return _opened(acc, d, time, PENDING)
    if name == "AccountRegistrationHeld":
        return _opened(acc, d, time, HELD)
    if name == "AccountRegistrationRefused":
        if acc is None:
            return Account(account_id=d["account_id"], phase=REFUSED, registered_at=time,
                           last_active_at=time, entity_type=d["entity_type"])
        return replace(acc, phase=REFUSED, application={})
    if acc is None:
        raise ValueError(f"{P}{name} before the account was registered")
    if name == "AccountActivated":  # A10.2: unused "after registration" counts from here,
        # not from an application that waited months for review
        return replace(acc, phase=LIVE, last_active_at=max(acc.last_active_at, time))
    if name == "AccountSuspended":
        return replace(acc, suspensions={**acc.suspensions, d["suspension_id"]: d["reason"]},
                       expiries=_expiring(acc.expiries, d["suspension_id"], d.get("until")))
    if name == "AccountReinstated":
        rest = {k: v for k, v in acc.suspensions.items() if k != d["suspension_id"]}
        deadline = None if d["reason"] == "correction_pending" else acc.correction_deadline
        return replace(acc, suspensions=rest, correction_deadline=deadline,
                       expiries=_expiring(acc.expiries, d["suspension_id"], None))
    if name == "AccountCorrectionRequested":
        return replace(acc, correction_deadline=_ts(d["deadline"]))
    if name == "AccountRestricted":
        return replace(acc, restrictions={**acc.restrictions,
                                          d["restriction_id"]: tuple(d["capabilities"])},
                       expiries=_expiring(acc.expiries, d["restriction_id"], d.get("until")))
    if name == "AccountRestrictionLifted":
        return replace(acc, restrictions={k: v for k, v in acc.restrictions.items()
                                          if k != d["restriction_id"]},
                       expiries=_expiring(acc.expiries, d["restriction_id"], None))
    if name == "CreditLevelApplied":
        return replace(acc, credit_level=d["level"], credit_withheld=tuple(d["withheld"]))
    if name == "AccountWarned":
        return replace(acc, warnings=acc.warnings + 1)
    if name == "AccountClosed":
        return replace(acc, phase=CLOSED, closed_reason=d["reason"])
    if name == "AccountDeregistered":
        return replace(acc, phase=DEREGISTERED, closed_reason="deregistered")
    if name == "ReregistrationBanImposed":
        return replace(acc, bans={**acc.bans, d["measure_id"]: {
            "severity": d["severity"], "until": d["until"], "keys": d["keys"]}})
    if name == "ReregistrationBanLifted":
        return replace(acc, bans={k: v for k, v in acc.bans.items() if k != d["measure_id"]})
    if name == "ProfileChangeSubmitted":
        return replace(acc, pending_changes={**acc.pending_changes,
                                             d["change_id"]: d["proposed"]})
    if name == "ProfileChangeApplied":
        rest = {k: v for k, v in acc.pending_changes.items() if k != d["change_id"]}
        return replace(acc, profile=d["profile"], pending_changes=rest)
    if name == "ProfileChangeRejected":
        return replace(acc, pending_changes={k: v for k, v in acc.pending_changes.items()
                                             if k != d["change_id"]})
    if name == "AccountActivityRecorded":
        return replace(acc, last_active_at=max(acc.last_active_at, time))
    if name == "OwnerChanged":
        return replace(acc, owner=d["new_owner"])
    if name == "AgreementAccepted":
        return replace(acc, agreement_version=d["version"])
    return acc  # AccountRegistrationApproved, ExtraVerificationRequired: no state of their own

