"""A transfer or privilege-grant application (A11.2, A17.3) on ``transfer-<id>``, and the
account's ownership signals on ``ownership-<account id>``. Pure: commands return contracts
of ``libs.events.contracts.transfer``; refusals are ``libs.domain`` errors.

Lifecycle: ``verifying`` (the transferee is checked by verification) ->
``awaiting_confirmation`` (verified; both parties confirm before the deadline) ->
``opt_out_period`` (a transfer, verified and confirmed, while its followers may still opt
out: the sweep completes it once ``opt_out_until`` has passed) -> ``completed``; or
``rejected`` (rules, verification), ``withdrawn``, ``expired``; a completed grant may be
``revoked``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from libs.domain import ConflictError, IllegalTransitionError, InvalidCommandError, as_datetime
from libs.events import Envelope, EventPayload
from libs.events.contracts._common import SealedIdentity
from libs.events.contracts.registration import Organization
from libs.events.contracts.transfer import (
    FollowerOptedOut,
    FollowerOptOutsApplied,
    FollowersNotified,
    OperatorGranted,
    OperatorGrantRevoked,
    OwnershipSignalCleared,
    OwnershipSignalUnmatched,
    SuspectedAccountTrading,
    TransferAnnounced,
    TransferCompleted,
    TransferConfirmed,
    TransfereeApproved,
    TransferExpired,
    TransferRejected,
    TransferRequested,
    TransferWithdrawn,
    UnappliedTransferDetected,
)

P = "transfer."
Events = list[EventPayload]
PARTIES = ("transferor", "transferee")
GRANTS = ("co_operator", "third_party")
OPEN = ("verifying", "awaiting_confirmation", "opt_out_period")
APPROVED = ("awaiting_confirmation", "opt_out_period")  # the transferee verified


def stream_of(transfer_id: str) -> str:
    return f"transfer-{transfer_id}"


def ownership_stream(account_id: str) -> str:
    return f"ownership-{account_id}"



@dataclass(frozen=True)
class Application:
    """What the applicant asked, as the handler takes it (sealed by schemas)."""

    account_id: str
    kind: str
    transferee: SealedIdentity
    entity_type: str
    organization: Organization | None
    contact_sealed: str
    contact_masked: str
    reason: str = ""


@dataclass(frozen=True)
class Closing:
    """What a completion needs besides the application: the time, the previous owner as
    the public may see it, the ad-revenue pause and a trading suspicion (facts gathered
    by the handler)."""

    now: datetime
    previous_entity_type: str | None = None
    previous_name: str | None = None
    new_name: str = ""
    ad_revenue_paused_until: datetime | None = None
    suspicion: Any = None  # rules.Suspicion | None
    window_days: int = 365


@dataclass(frozen=True)
class Transfer:
    transfer_id: str
    account_id: str
    kind: str
    transferee: dict[str, Any]
    entity_type: str
    organization: dict[str, Any] | None
    requested_by: str
    requested_at: datetime
    deadline: datetime
    status: str = "verifying"
    verified: bool = False
    confirmations: dict[str, str] = field(default_factory=dict)  # party -> by
    opt_outs: tuple[str, ...] = ()
    opt_out_until: datetime | None = None  # followers told (a transfer): they may opt out
    reasons: tuple[str, ...] = ()
    completed_at: datetime | None = None
    trading_suspected: bool = False
    request_event_id: str = ""
    version: int = 0

    @property
    def open(self) -> bool:
        return self.status in OPEN

    @property
    def missing(self) -> list[str]:
        return ((["transferee_verification"] if not self.verified else [])
                + [f"{p}_confirmation" for p in PARTIES if p not in self.confirmations])

    # -- decisions --------------------------------------------------------------------
    @staticmethod
    def apply(transfer_id: str, app: Application, *, by: str, now: datetime,
              deadline: datetime, opt_out_until: datetime, refusals: list[str]) -> Events:
        """The application, then its refusal by the rules (A11.1) or the followers told
        (a transfer), who may opt out until ``opt_out_until``."""
        basis = ["A11.2"] + (["A17.3"] if app.kind == "third_party" else [])
        decided: Events = [TransferRequested(
            account_id=app.account_id, transfer_id=transfer_id, kind=app.kind,
            transferee=app.transferee, transferee_entity_type=app.entity_type,
            transferee_organization=app.organization,
            transferee_contact_sealed=app.contact_sealed,
            transferee_contact_masked=app.contact_masked, requested_by=by, reason=app.reason,
            deadline=deadline, legal_basis=basis)]
        if refusals:
            return decided + [TransferRejected(
                account_id=app.account_id, transfer_id=transfer_id, kind=app.kind,
                reasons=refusals, legal_basis=["A11.1", "A11.2"],
                detail="refused by the no-trading rules: " + ", ".join(refusals))]
        if app.kind == "transfer":
            decided.append(FollowersNotified(account_id=app.account_id,
                                             transfer_id=transfer_id,
                                             opt_out_until=opt_out_until,
                                             legal_basis=["A11.2"]))
        return decided

    def _require_open(self, action: str) -> None:
        if not self.open:
            raise IllegalTransitionError(
                f"transfer {self.transfer_id} is {self.status}: cannot {action}",
                code="transfer-not-open", legal_basis=["A11.2"], status=self.status)

    def _of(self, evidence: list[str] | None = None) -> dict[str, Any]:
        return {"account_id": self.account_id, "transfer_id": self.transfer_id,
                "evidence_event_ids": evidence or [self.request_event_id]}

    def transferee_checked(self, *, verified: bool, reasons: list[str], detail: str,
                           level: str | None, evidence: list[str], closing: Closing) -> Events:
        """Verification's answer on the transferee: approved (maybe completing), or refused."""
        if self.status != "verifying":
            raise ConflictError(f"transfer {self.transfer_id} is {self.status}",
                                code="transfer-not-verifying")
        if not verified:
            return [TransferRejected(**self._of(evidence), kind=self.kind, reasons=reasons,
                                     detail=detail, legal_basis=["A11.2", "A8.1"])]
        decided: Events = [TransfereeApproved(**self._of(evidence), level=level,
                                              legal_basis=["A11.2"])]
        return decided + self._after(decided, closing)

    def confirm(self, party: str, *, by: str, closing: Closing) -> Events:
        """One party's acceptance within the deadline (A11.2; A17.3: both parties)."""
        if party not in PARTIES:
            raise InvalidCommandError(f"party must be one of {PARTIES}", code="invalid-party",
                                      legal_basis=["A11.2"])
        self._require_open("confirm")
        if closing.now >= self.deadline:
            raise ConflictError(f"the deadline {self.deadline.isoformat()} has passed",
                                code="transfer-deadline-passed", legal_basis=["A11.2"])
        if party in self.confirmations:
            raise ConflictError(f"the {party} has confirmed already", code="already-confirmed")
        decided: Events = [TransferConfirmed(**self._of(), party=party, by=by, at=closing.now,
                                             legal_basis=["A11.2", "A17.3"])]
        return decided + self._after(decided, closing)

    def _after(self, decided: Events, closing: Closing) -> Events:
        """The last missing fact completes, unless followers may still opt out: then the
        sweep completes it when the period is over (``complete_when_due``)."""
        after = fold_payloads(self, decided, closing.now)
        if not after.verified or after.missing or after.waits_for_opt_outs(closing.now):
            return []
        return after.complete(closing)

    def waits_for_opt_outs(self, now: datetime) -> bool:
        return (self.kind == "transfer" and self.opt_out_until is not None
                and now < self.opt_out_until)

    def complete_when_due(self, closing: Closing) -> Events:
        """A verified, confirmed transfer whose followers' opt-out period is over (A11.2)."""
        if self.status != "opt_out_period" or self.waits_for_opt_outs(closing.now):
            return []
        return self.complete(closing)

    def complete(self, c: Closing) -> Events:
        """Verified and confirmed by both: the new owner (and its public notice), or the
        grant."""
        of = self._of()
        new_owner = SealedIdentity(**self.transferee)
        org = Organization(**self.organization) if self.organization else None
        if self.kind in GRANTS:
            return [OperatorGranted(**of, kind=self.kind, grantee=new_owner,
                                    grantee_entity_type=self.entity_type,
                                    accepted_by=dict(self.confirmations),
                                    legal_basis=["A11.2", "A17.3"])]
        decided: Events = [
            TransferCompleted(account_id=self.account_id, transfer_id=self.transfer_id,
                              new_owner=new_owner, legal_basis=["A11.2"],
                              evidence_event_ids=of["evidence_event_ids"]),
            TransferAnnounced(**of, changed_at=c.now, previous_entity_type=c.previous_entity_type,
                              previous_name=c.previous_name, new_entity_type=self.entity_type,
                              new_name=c.new_name, new_owner=new_owner, new_organization=org,
                              ad_revenue_paused_until=c.ad_revenue_paused_until or c.now,
                              legal_basis=["A11.2"]),
            FollowerOptOutsApplied(**of, follower_ids=list(self.opt_outs),
                                   opted_out=len(self.opt_outs),
                                   opt_out_until=self.opt_out_until or c.now,
                                   legal_basis=["A11.2"])]
        s = c.suspicion
        if s is not None:
            decided.append(SuspectedAccountTrading(
                **of, identity_blinds=list(s.identity_blinds), account_ids=list(s.account_ids),
                transfers_in_window=s.transfers_in_window, window_days=c.window_days,
                round_trip=s.round_trip, legal_basis=["A11.1", "A18"]))
        return decided

    def opt_out(self, follower_id: str) -> Events:
        if self.kind != "transfer":
            raise InvalidCommandError("followers opt out of transfers, not of grants",
                                      code="not-a-transfer")
        self._require_open("take opt-outs")
        if follower_id in self.opt_outs:
            return []
        return [FollowerOptedOut(**self._of(), follower_id=follower_id, legal_basis=["A11.2"])]

    def withdraw(self, *, by: str, reason: str) -> Events:
        self._require_open("withdraw")
        return [TransferWithdrawn(**self._of(), by=by, reason=reason, legal_basis=["A11.2"])]

    def expire(self, now: datetime) -> Events:
        """Open past its deadline with a step missing (a confirmed transfer in its opt-out
        period does not expire: it completes)."""
        if not self.open or not self.missing or now < self.deadline:
            return []
        return [TransferExpired(**self._of(), deadline=self.deadline, missing=self.missing,
                                legal_basis=["A11.2"])]

    def revoke(self, *, by: str, reason: str) -> Events:
        if self.kind not in GRANTS or self.status != "completed":
            raise IllegalTransitionError(
                f"transfer {self.transfer_id} is not a granted privilege ({self.kind}, "
                f"{self.status})", code="grant-not-active", legal_basis=["A17.3"])
        return [OperatorGrantRevoked(**self._of(), by=by, reason=reason,
                                     legal_basis=["A11.2", "A17.3"])]


# -- folding -----------------------------------------------------------------------------
def evolve(state: Transfer | None, e: Envelope) -> Transfer:
    s = _apply(state, e.type, e.data, e.time, e.id)
    return replace(s, version=e.stream_version)


def fold_payloads(state: Transfer | None, decided: Events, now: datetime) -> Transfer:
    for p in decided:
        state = _apply(state, p.event_type, p.to_data(), now, "")
    assert state is not None
    return state


def _apply(state: Transfer | None, event_type: str, d: dict[str, Any], time: datetime,
           event_id: str) -> Transfer:
    name = event_type.removeprefix(P)
    if name == "TransferRequested":
        return Transfer(transfer_id=d["transfer_id"], account_id=d["account_id"],
                        kind=d["kind"], transferee=dict(d["transferee"]),
                        entity_type=d["transferee_entity_type"],
                        organization=d.get("transferee_organization"),
                        requested_by=d["requested_by"], requested_at=time,
                        deadline=as_datetime(d["deadline"]), request_event_id=event_id)
    if state is None:
        raise ValueError(f"{event_type} before TransferRequested")
    s = state
    if name == "TransferRejected":
        return replace(s, status="rejected", reasons=tuple(d["reasons"]))
    if name == "FollowersNotified":
        return replace(s, opt_out_until=as_datetime(d["opt_out_until"]))
    if name == "TransfereeApproved":
        return _settled(replace(s, status="awaiting_confirmation", verified=True))
    if name == "TransferConfirmed":
        return _settled(replace(s, confirmations={**s.confirmations, d["party"]: d["by"]}))
    if name == "FollowerOptedOut":
        return replace(s, opt_outs=(*s.opt_outs, d["follower_id"]))
    if name in ("TransferCompleted", "OperatorGranted"):
        return replace(s, status="completed", completed_at=time)
    if name == "SuspectedAccountTrading":
        return replace(s, trading_suspected=True)
    if name == "TransferWithdrawn":
        return replace(s, status="withdrawn")
    if name == "TransferExpired":
        return replace(s, status="expired")
    if name == "OperatorGrantRevoked":
        return replace(s, status="revoked")
    return s


def _settled(s: Transfer) -> Transfer:
    """A transfer verified and confirmed by both waits out its followers' opt-out period."""
    if s.status == "awaiting_confirmation" and not s.missing and s.kind == "transfer":
        return replace(s, status="opt_out_period")
    return s


# -- ownership signals (A11.2) -------------------------------------------------------------
@dataclass(frozen=True)
class Signals:
    """An account's ``ownership-<id>`` stream: only its version matters."""

    version: int = 0


def evolve_signals(state: Signals | None, e: Envelope) -> Signals:
    return Signals(e.stream_version)


def judge_signal(*, account_id: str, signal: str, covered_by: str | None,
                 evidence: list[str], unmatched_contact: str | None = None) -> Events:
    """A sign of a new operator: covered (the owner, an operator, an approved application)
    or an unapplied transfer, which registration applies as a suspension (A11.2). A changed
    contact of no verified person (``unmatched_contact``, masked) names nobody: recorded,
    not judged."""
    if unmatched_contact is not None:
        return [OwnershipSignalUnmatched(account_id=account_id, signal=signal,
                                         contact_masked=unmatched_contact,
                                         legal_basis=["A11.2"])]
    if covered_by:
        return [OwnershipSignalCleared(account_id=account_id, signal=signal,
                                       covered_by=covered_by, legal_basis=["A11.2"])]
    return [UnappliedTransferDetected(account_id=account_id, evidence=evidence,
                                      legal_basis=["A11.2"])]
