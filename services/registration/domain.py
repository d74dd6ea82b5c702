"""The public account and the rules of its registration and lifecycle; pure (no I/O).

Registration rules (A2, A6, A7.1, A8.3, A10.1, A10.3) are in :mod:`.rules`; this module
holds the account aggregate: its state folded from its events, and the commands that
decide new events from that state. An illegal transition raises
:class:`IllegalTransitionError` (409 ``illegal-transition`` over HTTP; inbound events that
no longer apply are logged and skipped).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from libs.events.contracts._common import CAPABILITIES

from .rules import CREDIT_WITHHELD, add_months

P = "registration."
Decided = list[tuple[str, dict[str, Any]]]  # (event type, payload) not yet enveloped

# Phases; the status shown combines the phase with suspensions and restrictions.
HELD, PENDING, LIVE, CLOSED, DEREGISTERED, REFUSED = (
    "held_for_review", "pending_verification", "live", "closed", "deregistered", "refused")
TERMINAL = frozenset({CLOSED, DEREGISTERED, REFUSED})
STATUSES = frozenset({HELD, PENDING, "active", "restricted", "suspended", CLOSED, DEREGISTERED,
                      REFUSED})


class DomainError(Exception):
    """A command the rules refuse; ``code`` is stable (docs/problems.md)."""

    code = "domain-error"
    status = 422

    def __init__(self, detail: str, *, code: str | None = None, status: int | None = None,
                 **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code or self.code
        self.status = status or self.status
        self.extra = extra


class IllegalTransitionError(DomainError):
    code = "illegal-transition"
    status = 409


@dataclass(frozen=True)
class Account:
    """An account's state, folded from its stream by :func:`evolve`."""

    account_id: str
    phase: str
    registered_at: datetime
    last_active_at: datetime
    entity_type: str = ""
    category: str = ""
    province: str = ""
    operations_province: str = ""
    owner: dict[str, Any] = field(default_factory=dict)  # the SealedIdentity, as stored
    profile: dict[str, Any] = field(default_factory=dict)
    organization: dict[str, Any] | None = None
    contact_masked: str = ""
    agreement_version: str = ""
    application: dict[str, Any] = field(default_factory=dict)  # a held application
    pending_changes: dict[str, dict[str, Any]] = field(default_factory=dict)
    suspensions: dict[str, str] = field(default_factory=dict)  # suspension id -> reason
    restrictions: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # restriction or suspension id -> when it ends by itself (ISO time), for the sweep
    expiries: dict[str, str] = field(default_factory=dict)
    credit_level: str | None = None
    credit_withheld: tuple[str, ...] = ()
    correction_deadline: datetime | None = None
    extra_verification: bool = False
    closed_reason: str | None = None
    bans: dict[str, dict[str, Any]] = field(default_factory=dict)  # measure id -> ban
    warnings: int = 0
    version: int = 0

    # -- what is shown -----------------------------------------------------------------
    @property
    def status(self) -> str:
        if self.phase in TERMINAL or self.phase == HELD:
            return self.phase
        if self.suspensions:
            return "suspended"
        if self.phase == PENDING:
            return PENDING
        if self.restrictions or self.credit_withheld:
            return "restricted"
        return "active"

    @property
    def capabilities(self) -> dict[str, bool]:
        """Each function and whether the account may use it now (A17.2, A13.1, A19.2)."""
        if self.status not in ("active", "restricted"):
            return dict.fromkeys(CAPABILITIES, False)
        withheld = set(self.credit_withheld)
        for caps in self.restrictions.values():
            withheld.update(caps)
        return {c: c not in withheld for c in CAPABILITIES}

    # -- guards ------------------------------------------------------------------------
    def _require(self, *phases: str, action: str) -> None:
        if self.phase not in phases:
            raise IllegalTransitionError(
                f"cannot {action} an account that is {self.status}",
                current_status=self.status)

    # -- commands: each returns the events it decides ------------------------------------
    def activate(self, *, evidence: list[str]) -> Decided:
        self._require(PENDING, LIVE, action="activate")
        events: Decided = []
        if self.phase == PENDING:
            events.append((P + "AccountActivated", {
                "account_id": self.account_id, "legal_basis": ["A8.1", "A8.2"],
                "evidence_event_ids": evidence}))
        if "correction_pending" in self.suspensions:
            events.append(self._reinstated("correction_pending", "correction_pending",
                                           ["A8.2"], evidence))
        return events

    def request_correction(self, *, deadline: datetime, findings: list[dict],
                           evidence: list[str], legal_basis: list[str]) -> Decided:
        self._require(PENDING, LIVE, action="request a correction of")
        events: Decided = []
        if "correction_pending" not in self.suspensions:
            events.append(self._suspended("correction_pending", "correction_pending", None,
                                          legal_basis, evidence))
        events.append((P + "AccountCorrectionRequested", {
            "account_id": self.account_id, "deadline": deadline.isoformat(),
            "findings": findings, "legal_basis": legal_basis, "evidence_event_ids": evidence}))
        return events

    def suspend(self, *, suspension_id: str, reason: str, until: datetime | None = None,
                legal_basis: list[str], evidence: list[str] | None = None) -> Decided:
        self._require(LIVE, action="suspend")
        if suspension_id in self.suspensions:
            raise IllegalTransitionError(f"the account is already suspended ({reason})",
                                         current_status=self.status)
        return [self._suspended(suspension_id, reason, until, legal_basis, evidence or [])]

    def reinstate(self, *, suspension_id: str, legal_basis: list[str],
                  evidence: list[str] | None = None) -> Decided:
        self._require(PENDING, LIVE, action="reinstate")
        if suspension_id not in self.suspensions:
            raise IllegalTransitionError("the account is not suspended for that",
                                         current_status=self.status)
        reason = self.suspensions[suspension_id]
        return [self._reinstated(suspension_id, reason, legal_basis, evidence or [])]

    def restrict(self, *, restriction_id: str, capabilities: list[str],
                 until: datetime | None, legal_basis: list[str], evidence: list[str]
                 ) -> Decided:
        self._require(PENDING, LIVE, action="restrict")
        if restriction_id in self.restrictions:
            return []
        return [(P + "AccountRestricted", {
            "account_id": self.account_id, "restriction_id": restriction_id,
            "capabilities": sorted(set(capabilities)),
            "until": until.isoformat() if until else None, "legal_basis": legal_basis,
            "evidence_event_ids": evidence})]

    def lift(self, *, measure_id: str, legal_basis: list[str], evidence: list[str]) -> Decided:
        """Undo whatever a lifted measure did: restriction, suspension or ban."""
        events: Decided = []
        if measure_id in self.restrictions and self.phase not in TERMINAL:
            events.append((P + "AccountRestrictionLifted", {
                "account_id": self.account_id, "restriction_id": measure_id,
                "legal_basis": legal_basis, "evidence_event_ids": evidence}))
        if measure_id in self.suspensions and self.phase not in TERMINAL:
            events.append(self._reinstated(measure_id, self.suspensions[measure_id],
                                           legal_basis, evidence))
        if measure_id in self.bans:
            events.append((P + "ReregistrationBanLifted", {
                "account_id": self.account_id, "measure_id": measure_id,
                "keys": self.bans[measure_id]["keys"], "legal_basis": legal_basis,
                "evidence_event_ids": evidence}))
        return events

    def warn(self, *, measure_id: str, legal_basis: list[str], evidence: list[str]) -> Decided:
        return [(P + "AccountWarned", {"account_id": self.account_id, "measure_id": measure_id,
                                       "legal_basis": legal_basis, "evidence_event_ids": evidence})]

    def apply_credit_level(self, *, level: str, evidence: list[str]) -> Decided:
        self._require(PENDING, LIVE, action="grade")
        withheld = sorted(CREDIT_WITHHELD[level])
        if level == self.credit_level and tuple(withheld) == self.credit_withheld:
            return []
        return [(P + "CreditLevelApplied", {
            "account_id": self.account_id, "level": level, "withheld": withheld,
            "legal_basis": ["A13.1", "A17.2"], "evidence_event_ids": evidence})]

    def close(self, *, reason: str, legal_basis: list[str], measure_id: str | None = None,
              evidence: list[str] | None = None) -> Decided:
        if self.phase in TERMINAL:
            raise IllegalTransitionError(f"the account is already {self.phase}",
                                         current_status=self.status)
        return [(P + "AccountClosed", {
            "account_id": self.account_id, "reason": reason, "measure_id": measure_id,
            "legal_basis": legal_basis, "evidence_event_ids": evidence or []})]

    def ban(self, *, measure_id: str, severity: str, until: datetime | None, keys: list[str],
            legal_basis: list[str], evidence: list[str]) -> Decided:
        if measure_id in self.bans:
            return []
        return [(P + "ReregistrationBanImposed", {
            "account_id": self.account_id, "measure_id": measure_id, "severity": severity,
            "until": until.isoformat() if until else None, "keys": keys,
            "legal_basis": legal_basis, "evidence_event_ids": evidence})]

    def deregister(self, *, requested_by: str) -> Decided:
        self._require(PENDING, LIVE, action="deregister")
        return [(P + "AccountDeregistered", {"account_id": self.account_id,
                                             "requested_by": requested_by,
                                             "legal_basis": ["A11.3"]})]

    def record_activity(self, *, kind: str) -> Decided:
        self._require(PENDING, LIVE, action="record activity on")
        events: Decided = [(P + "AccountActivityRecorded", {
            "account_id": self.account_id, "kind": kind, "legal_basis": ["A10.2"]})]
        if "inactivity" in self.suspensions:  # the agreement: use reinstates
            events.append(self._reinstated("inactivity", "inactivity", ["A10.2"], []))
        return events

    def submit_profile_change(self, *, change_id: str, proposed: dict[str, Any]) -> Decided:
        self._require(PENDING, LIVE, action="change the profile of")
        return [(P + "ProfileChangeSubmitted", {
            "account_id": self.account_id, "change_id": change_id,
            "entity_type": self.entity_type, "category": self.category,
            "identity": self.owner, "proposed": proposed, "legal_basis": ["A8.2"]})]

    def apply_profile_change(self, *, change_id: str, evidence: list[str]) -> Decided:
        self._require(PENDING, LIVE, action="apply a profile change to")
        if change_id not in self.pending_changes:
            raise IllegalTransitionError(f"no pending profile change {change_id}",
                                         current_status=self.status)
        events: Decided = [(P + "ProfileChangeApplied", {
            "account_id": self.account_id, "change_id": change_id,
            "profile": self.pending_changes[change_id], "legal_basis": ["A8.2"],
            "evidence_event_ids": evidence})]
        if "correction_pending" in self.suspensions:  # the correction was made
            events.append(self._reinstated("correction_pending", "correction_pending",
                                           ["A8.2"], evidence))
        return events

    def reject_profile_change(self, *, change_id: str, findings: list[dict],
                              evidence: list[str]) -> Decided:
        if change_id not in self.pending_changes:
            raise IllegalTransitionError(f"no pending profile change {change_id}",
                                         current_status=self.status)
        return [(P + "ProfileChangeRejected", {
            "account_id": self.account_id, "change_id": change_id, "findings": findings,
            "legal_basis": ["A8.2"], "evidence_event_ids": evidence})]

    def change_owner(self, *, transfer_id: str, new_owner: dict[str, Any],
                     evidence: list[str]) -> Decided:
        self._require(PENDING, LIVE, action="transfer")
        events: Decided = [(P + "OwnerChanged", {
            "account_id": self.account_id, "transfer_id": transfer_id, "new_owner": new_owner,
            "legal_basis": ["A11.2"], "evidence_event_ids": evidence})]
        if "unapplied_transfer" in self.suspensions:  # the transfer is now applied for
            events.append(self._reinstated("unapplied_transfer", "unapplied_transfer",
                                           ["A11.2"], evidence))
        return events

    def accept_agreement(self, *, version: str) -> Decided:
        self._require(PENDING, LIVE, action="accept an agreement for")
        return [(P + "AgreementAccepted", {"account_id": self.account_id, "version": version,
                                           "legal_basis": ["A6"]})]

    def review(self, *, approve: bool, reviewer: str, note: str, evidence: list[str]
               ) -> Decided:
        self._require(HELD, action="review")
        if not approve:
            app = self.application
            return [(P + "AccountRegistrationRefused", {
                "account_id": self.account_id, "entity_type": self.entity_type,
                "code": "refused-on-review", "reasons": [note or "refused by a reviewer"],
                "id_number_blind": app["identity"]["id_number_blind"],
                "phone_blind": app["identity"]["phone_blind"],
                "legal_basis": ["A10.3", "A8.3"], "evidence_event_ids": evidence})]
        submitted = {k: v for k, v in self.application.items() if k not in ("reasons",
                                                                              "findings")}
        return [
            (P + "AccountRegistrationApproved", {
                "account_id": self.account_id, "reviewer": reviewer, "note": note,
                "legal_basis": ["A10.3", "A8.3"], "evidence_event_ids": evidence}),
            (P + "AccountRegistrationSubmitted", submitted),
        ]

    def sweep(self, *, now: datetime, inactivity_months: int) -> Decided:
        """What the clock decides: correction expiry (A8.2), the end of timed restrictions
        and suspensions (A19.2), inactivity suspension (A10.2)."""
        if self.phase not in (LIVE, PENDING):
            return []
        if ("correction_pending" in self.suspensions and self.correction_deadline is not None
                and self.correction_deadline <= now):
            return self.close(reason="correction_deadline_passed", legal_basis=["A8.2"])
        events: Decided = []
        for key, until in sorted(self.expiries.items()):
            if datetime.fromisoformat(until) > now:
                continue
            if key in self.restrictions:
                events.append((P + "AccountRestrictionLifted", {
                    "account_id": self.account_id, "restriction_id": key,
                    "legal_basis": ["A19.2"], "evidence_event_ids": []}))
            if key in self.suspensions:
                events.append(self._reinstated(key, self.suspensions[key], ["A19.2"], []))
        if (self.phase == LIVE and "inactivity" not in self.suspensions
                and add_months(self.last_active_at, inactivity_months) <= now):
            events.append(self._suspended("inactivity", "inactivity", None, ["A10.2"], []))
        return events

    # -- event builders -----------------------------------------------------------------
    def _suspended(self, sid: str, reason: str, until: datetime | None,
                   legal_basis: list[str], evidence: list[str]) -> tuple[str, dict]:
        return (P + "AccountSuspended", {
            "account_id": self.account_id, "suspension_id": sid, "reason": reason,
            "until": until.isoformat() if until else None, "legal_basis": legal_basis,
            "evidence_event_ids": evidence})

    def _reinstated(self, sid: str, reason: str, legal_basis: list[str],
                    evidence: list[str]) -> tuple[str, dict]:
        return (P + "AccountReinstated", {
            "account_id": self.account_id, "suspension_id": sid, "reason": reason,
            "legal_basis": legal_basis, "evidence_event_ids": evidence})


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


def evolve(acc: Account | None, etype: str, d: dict[str, Any], time: datetime) -> Account:
    """The account after one of its events (pure; unknown types leave it unchanged)."""
    name = etype.removeprefix(P)
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
        raise ValueError(f"{etype} before the account was registered")
    if name == "AccountActivated":
        return replace(acc, phase=LIVE)
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


def fold(events: list[Any]) -> Account | None:
    """The account from its stream's envelopes (``type``, ``data``, ``time``)."""
    acc: Account | None = None
    for e in events:
        acc = replace(evolve(acc, e.type, e.data, e.time), version=e.stream_version)
    return acc
