"""The account aggregate: its state, what it shows, and the commands that decide its events."""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from libs.domain import IllegalTransitionError, NotFoundError
from libs.events import EventPayload
from libs.events.contracts import registration as ev
from libs.events.contracts._common import CAPABILITIES, Finding, SealedIdentity

from .application import Application, ProfileChange, Verdict, first_events

Payloads = list[EventPayload]


class AccountNotFoundError(NotFoundError):
    """No account with that id (or none this reader may see)."""

    code = "account-not-found"
    title = "No such account"

# Phases; the status shown combines the phase with suspensions and restrictions.
HELD, PENDING, LIVE, CLOSED, DEREGISTERED, REFUSED = (
    "held_for_review", "pending_verification", "live", "closed", "deregistered", "refused")
TERMINAL = frozenset({CLOSED, DEREGISTERED, REFUSED})
# A9.1, A5: the restriction while a field's qualification or news permit has lapsed; it
# ends when verification verifies the account again (a new qualification approved).
QUALIFICATION_LAPSED = "qualification_lapsed"
STATUSES = frozenset({HELD, PENDING, "active", "restricted", "suspended", CLOSED, DEREGISTERED,
                      REFUSED})


def stream_of(account_id: str) -> str:
    return f"account-{account_id}"


def add_months(t: datetime, months: int) -> datetime:
    """``t`` plus calendar months, clamped to the month's last day (31 Aug + 6 = 28 Feb)."""
    month = t.month - 1 + months
    year, month = t.year + month // 12, month % 12 + 1
    day = min(t.day, calendar.monthrange(year, month)[1])
    return t.replace(year=year, month=month, day=day)


# The shape of :class:`Account` and of its fold (``evolve``, and the upcasters it reads
# through): snapshots written under another number are ignored and rebuilt. Bump it with
# any change to either (docs/decisions/0021-aggregate-snapshots.md).
# 2: events are read through the upcaster of v1: sealed values (ADR 0033), so the owner
# folded from them holds v2: values; snapshots of v1: owners are rebuilt.
ACCOUNT_SCHEMA = 2


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

    @property
    def ban_keys(self) -> list[str]:
        """A8.3: a ban is on the identity (resident ID or USCC) and the phone, not the name."""
        return [k for k in (self.owner.get("id_number_blind"), self.owner.get("phone_blind"))
                if k]

    def _require(self, *phases: str, action: str) -> None:
        if self.phase not in phases:
            raise IllegalTransitionError(f"cannot {action} an account that is {self.status}",
                                         current_status=self.status)

    @staticmethod
    def register(account_id: str, app: Application, verdict: Verdict) -> Payloads:
        """The account's first events, from the application and the rules' verdict."""
        return first_events(account_id, app, verdict)

    # -- commands: each returns the events it decides ------------------------------------
    def activate(self, *, evidence: list[str]) -> Payloads:
        self._require(PENDING, LIVE, action="activate")
        events: Payloads = []
        if self.phase == PENDING:
            events.append(ev.AccountActivated(account_id=self.account_id,
                                              legal_basis=["A8.1", "A8.2"],
                                              evidence_event_ids=evidence))
        if "correction_pending" in self.suspensions:
            events.append(self._reinstated("correction_pending", ["A8.2"], evidence))
        if QUALIFICATION_LAPSED in self.restrictions:
            events.append(ev.AccountRestrictionLifted(
                account_id=self.account_id, restriction_id=QUALIFICATION_LAPSED,
                legal_basis=["A5", "A9.1"], evidence_event_ids=evidence))
        return events

    def request_correction(self, *, deadline: datetime, findings: Sequence[Finding | dict],
                           evidence: list[str], legal_basis: list[str]) -> Payloads:
        self._require(PENDING, LIVE, action="request a correction of")
        events: Payloads = []
        if "correction_pending" not in self.suspensions:
            events.append(self._suspended("correction_pending", "correction_pending", None,
                                          legal_basis, evidence))
        events.append(ev.AccountCorrectionRequested(
            account_id=self.account_id, deadline=deadline, findings=list(findings),
            legal_basis=legal_basis, evidence_event_ids=evidence))
        return events

    def suspend(self, *, suspension_id: str, reason: str, until: datetime | None = None,
                legal_basis: list[str], evidence: list[str] | None = None) -> Payloads:
        self._require(LIVE, action="suspend")
        if suspension_id in self.suspensions:
            raise IllegalTransitionError(f"the account is already suspended ({reason})",
                                         current_status=self.status)
        return [self._suspended(suspension_id, reason, until, legal_basis, evidence or [])]

    def reinstate(self, *, suspension_id: str, legal_basis: list[str],
                  evidence: list[str] | None = None) -> Payloads:
        self._require(PENDING, LIVE, action="reinstate")
        if suspension_id not in self.suspensions:
            raise IllegalTransitionError("the account is not suspended for that",
                                         current_status=self.status)
        return [self._reinstated(suspension_id, legal_basis, evidence or [])]

    def restrict(self, *, restriction_id: str, capabilities: Iterable[str],
                 until: datetime | None, legal_basis: list[str], evidence: list[str]
                 ) -> Payloads:
        self._require(PENDING, LIVE, action="restrict")
        if restriction_id in self.restrictions:
            return []
        return [ev.AccountRestricted(
            account_id=self.account_id, restriction_id=restriction_id,
            capabilities=sorted(set(capabilities)), until=until, legal_basis=legal_basis,
            evidence_event_ids=evidence)]

    def lift(self, *, measure_id: str, legal_basis: list[str], evidence: list[str]) -> Payloads:
        """Undo whatever a lifted measure did: restriction, suspension or ban."""
        events: Payloads = []
        if measure_id in self.restrictions and self.phase not in TERMINAL:
            events.append(ev.AccountRestrictionLifted(
                account_id=self.account_id, restriction_id=measure_id,
                legal_basis=legal_basis, evidence_event_ids=evidence))
        if measure_id in self.suspensions and self.phase not in TERMINAL:
            events.append(self._reinstated(measure_id, legal_basis, evidence))
        if measure_id in self.bans:
            events.append(ev.ReregistrationBanLifted(
                account_id=self.account_id, measure_id=measure_id,
                keys=self.bans[measure_id]["keys"], legal_basis=legal_basis,
                evidence_event_ids=evidence))
        return events

    def warn(self, *, measure_id: str, legal_basis: list[str], evidence: list[str]) -> Payloads:
        return [ev.AccountWarned(account_id=self.account_id, measure_id=measure_id,
                                 legal_basis=legal_basis, evidence_event_ids=evidence)]

    def apply_credit_level(self, *, level: str, withheld: Iterable[str], evidence: list[str]
                           ) -> Payloads:
        """The functions ``level`` withholds (A13.1: ``rules.CREDIT_WITHHELD``) are applied."""
        self._require(PENDING, LIVE, action="grade")
        withheld = sorted(withheld)
        if level == self.credit_level and tuple(withheld) == self.credit_withheld:
            return []
        return [ev.CreditLevelApplied(account_id=self.account_id, level=level,
                                      withheld=withheld, legal_basis=["A13.1", "A17.2"],
                                      evidence_event_ids=evidence)]

    def close(self, *, reason: str, legal_basis: list[str], measure_id: str | None = None,
              evidence: list[str] | None = None) -> Payloads:
        if self.phase in TERMINAL:
            raise IllegalTransitionError(f"the account is already {self.phase}",
                                         current_status=self.status)
        return [ev.AccountClosed(account_id=self.account_id, reason=reason,
                                 measure_id=measure_id, legal_basis=legal_basis,
                                 evidence_event_ids=evidence or [])]

    def ban(self, *, measure_id: str, severity: str, until: datetime | None, keys: list[str],
            legal_basis: list[str], evidence: list[str]) -> Payloads:
        if measure_id in self.bans:
            return []
        return [ev.ReregistrationBanImposed(
            account_id=self.account_id, measure_id=measure_id, severity=severity, until=until,
            keys=keys, legal_basis=legal_basis, evidence_event_ids=evidence)]

    def deregister(self, *, requested_by: str) -> Payloads:
        self._require(PENDING, LIVE, action="deregister")
        return [ev.AccountDeregistered(account_id=self.account_id, requested_by=requested_by,
                                       legal_basis=["A11.3"])]

    def record_activity(self, *, kind: str) -> Payloads:
        self._require(PENDING, LIVE, action="record activity on")
        events: Payloads = [ev.AccountActivityRecorded(account_id=self.account_id, kind=kind,
                                                      legal_basis=["A10.2"])]
        if "inactivity" in self.suspensions:  # the agreement: use reinstates
            events.append(self._reinstated("inactivity", ["A10.2"], []))
        return events

    def submit_profile_change(self, *, change_id: str, change: ProfileChange) -> Payloads:
        """The current profile with the change merged in, submitted for the checks of A8.2."""
        self._require(PENDING, LIVE, action="change the profile of")
        proposed = dict(self.profile)
        if change.name is not None:
            proposed["name"] = change.name
        if change.description is not None:
            proposed["description"] = change.description
        if change.avatar is not None:  # a new avatar replaces the old one's every field
            proposed = {k: v for k, v in proposed.items()
                        if k not in ("avatar_phash", "avatar_url")} | change.avatar
        return [ev.ProfileChangeSubmitted(
            account_id=self.account_id, change_id=change_id, entity_type=self.entity_type,
            category=self.category, identity=self.owner, proposed=proposed,
            legal_basis=["A8.2"])]

    def apply_profile_change(self, *, change_id: str, evidence: list[str]) -> Payloads:
        self._require(PENDING, LIVE, action="apply a profile change to")
        self._pending(change_id)
        events: Payloads = [ev.ProfileChangeApplied(
            account_id=self.account_id, change_id=change_id,
            profile=self.pending_changes[change_id], legal_basis=["A8.2"],
            evidence_event_ids=evidence)]
        if "correction_pending" in self.suspensions:  # the correction was made
            events.append(self._reinstated("correction_pending", ["A8.2"], evidence))
        return events

    def reject_profile_change(self, *, change_id: str, findings: Sequence[Finding | dict],
                              evidence: list[str]) -> Payloads:
        self._pending(change_id)
        return [ev.ProfileChangeRejected(account_id=self.account_id, change_id=change_id,
                                         findings=list(findings), legal_basis=["A8.2"],
                                         evidence_event_ids=evidence)]

    def _pending(self, change_id: str) -> None:
        if change_id not in self.pending_changes:
            raise IllegalTransitionError(f"no pending profile change {change_id}",
                                         current_status=self.status)

    def change_owner(self, *, transfer_id: str, new_owner: SealedIdentity | dict,
                     evidence: list[str]) -> Payloads:
        self._require(PENDING, LIVE, action="transfer")
        events: Payloads = [ev.OwnerChanged(
            account_id=self.account_id, transfer_id=transfer_id, new_owner=new_owner,
            legal_basis=["A11.2"], evidence_event_ids=evidence)]
        if "unapplied_transfer" in self.suspensions:  # the transfer is now applied for
            events.append(self._reinstated("unapplied_transfer", ["A11.2"], evidence))
        return events

    def accept_agreement(self, *, version: str) -> Payloads:
        self._require(PENDING, LIVE, action="accept an agreement for")
        return [ev.AgreementAccepted(account_id=self.account_id, version=version,
                                     legal_basis=["A6"])]

    def review(self, *, approve: bool, reviewer: str, note: str, evidence: list[str]
               ) -> Payloads:
        self._require(HELD, action="review")
        app = self.application
        if not approve:
            return [ev.AccountRegistrationRefused(
                account_id=self.account_id, entity_type=self.entity_type,
                code="refused-on-review", reasons=[note or "refused by a reviewer"],
                id_number_blind=app["identity"]["id_number_blind"],
                phone_blind=app["identity"]["phone_blind"], legal_basis=["A10.3", "A8.3"],
                evidence_event_ids=evidence)]
        # the held application goes on unchanged, as verification expects it
        submitted = {k: v for k, v in app.items() if k not in ("reasons", "findings")}
        return [ev.AccountRegistrationApproved(account_id=self.account_id, reviewer=reviewer,
                                               note=note, legal_basis=["A10.3", "A8.3"],
                                               evidence_event_ids=evidence),
                ev.AccountRegistrationSubmitted(**submitted)]

    def sweep(self, *, now: datetime, inactivity_months: int) -> Payloads:
        """What the clock decides: correction expiry (A8.2), the end of timed restrictions
        and suspensions (A19.2), inactivity suspension (A10.2)."""
        if self.phase not in (LIVE, PENDING):
            return []
        if ("correction_pending" in self.suspensions and self.correction_deadline is not None
                and self.correction_deadline <= now):
            return self.close(reason="correction_deadline_passed", legal_basis=["A8.2"])
        events: Payloads = []
        for key, until in sorted(self.expiries.items()):
            if datetime.fromisoformat(until) > now:
                continue
            if key in self.restrictions:
                events.append(ev.AccountRestrictionLifted(
                    account_id=self.account_id, restriction_id=key, legal_basis=["A19.2"]))
            if key in self.suspensions:
                events.append(self._reinstated(key, ["A19.2"], []))
        if (self.phase == LIVE and "inactivity" not in self.suspensions
                and add_months(self.last_active_at, inactivity_months) <= now):
            events.append(self._suspended("inactivity", "inactivity", None, ["A10.2"], []))
        return events

    # -- event builders -----------------------------------------------------------------
    def _suspended(self, sid: str, reason: str, until: datetime | None,
                   legal_basis: list[str], evidence: list[str]) -> ev.AccountSuspended:
        return ev.AccountSuspended(account_id=self.account_id, suspension_id=sid,
                                   reason=reason, until=until, legal_basis=legal_basis,
                                   evidence_event_ids=evidence)

    def _reinstated(self, sid: str, legal_basis: list[str], evidence: list[str]
                    ) -> ev.AccountReinstated:
        return ev.AccountReinstated(account_id=self.account_id, suspension_id=sid,
                                    reason=self.suspensions.get(sid, sid),
                                    legal_basis=legal_basis, evidence_event_ids=evidence)
