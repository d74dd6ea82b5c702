"""The verification of one account: identity (A8.1), profile (A8.2), qualifications and
news permits (A9.1, A5), badge (A9.2) and re-inspections (A9.3); and the two registry
streams (protected names, prohibited words). Pure: no I/O.

The aggregate is folded from the account's ``verification-<id>`` stream (``evolve``); its
commands decide the next events as contracts of ``libs.events.contracts.verification``
and never mutate. Refusals are ``libs.domain`` errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from libs.domain import ConflictError, InvalidCommandError, NotFoundError
from libs.events import Envelope, EventPayload
from libs.events.contracts.registration import AccountRegistrationSubmitted, Profile
from libs.events.contracts.transfer import TransferAnnounced, TransferRequested
from libs.events.contracts.verification import (
    AccountVerified,
    BadgeGranted,
    BadgeSuspended,
    IdentityCheckDeferred,
    IdentityReviewRequired,
    IdentityVerificationFailed,
    IdentityVerified,
    OwnerChangeDisclosed,
    ProfileCheckPassed,
    ProfileMismatchFound,
    ProhibitedWordsChanged,
    ProtectedLogo,
    ProtectedNameAdded,
    ProtectedNameRemoved,
    PublicStandingChanged,
    QualificationApproved,
    QualificationExpired,
    QualificationRejected,
    QualificationRequired,
    QualificationSubmitted,
    ReinspectionPassed,
    ReinspectionScheduled,
    TransfereeCheckOpened,
    TransfereeVerificationFailed,
    TransfereeVerified,
    VerificationOpened,
)

P = "verification."
Events = list[EventPayload]
NATURAL = "natural_person"
KIND_LABEL = {"professional": "专业资质", "news_permit": "互联网新闻信息服务许可",
              "licence": "许可证"}


def stream_of(account_id: str) -> str:
    return f"verification-{account_id}"


def _basis(kind: str) -> list[str]:
    """A news permit is A5's; every other qualification A9.1's."""
    return ["A5"] if kind == "news_permit" else ["A9.1"]


# -- what the multi-factor rule (rules.decide_identity) made of the providers' answers ---
@dataclass(frozen=True)
class IdentityDecision:
    """Verified at a level by the agreeing factors, or not, for the reasons given (A8.1)."""

    verified: bool
    level: str | None
    factors: tuple[str, ...]
    reasons: tuple[str, ...]
    # no verdict: a provider could not tell or did not answer; ask again (ADR 0026)
    retryable: bool = False


@dataclass(frozen=True)
class Material:
    """Qualification material as submitted (A9.1, A5): what a reviewer checks."""

    kind: str
    qualification_type: str
    number: str
    issuer: str
    valid_from: datetime
    valid_until: datetime
    document_sha256: str
    document_content_type: str
    document_bytes: int


def badge_for(entity_type: str, category: str) -> str:
    """The badge kind shown on a verified account (A9.2)."""
    if entity_type == NATURAL:
        return "personal"
    if category == "government_affairs":
        return "government"
    if category == "news":
        return "media"
    return "enterprise" if entity_type == "legal_person" else "organization"


def profile_checked(account_id: str, profile: Profile | dict, findings: list[dict], *,
                    source: str, evidence: list[str], change_id: str | None = None
                    ) -> EventPayload:
    """The outcome of the A8.2 checks: a mismatch with its findings, or the profile passed."""
    if findings:
        return ProfileMismatchFound(account_id=account_id, change_id=change_id, source=source,
                                    findings=findings, legal_basis=["A8.2"],
                                    evidence_event_ids=evidence)
    return ProfileCheckPassed(account_id=account_id, change_id=change_id, source=source,
                              profile=profile, legal_basis=["A8.2"], evidence_event_ids=evidence)


# -- the aggregate -----------------------------------------------------------------------
@dataclass(frozen=True)
class Verification:
    account_id: str
    entity_type: str
    category: str
    province: str
    identity: dict[str, Any]
    profile: dict[str, Any]
    organization: dict[str, Any] | None
    contact_sealed: str
    contact_masked: str
    extra: bool
    opened_at: datetime
    contact_public: bool = False  # A9.2: the organization declared its contact public
    identity_status: str = "pending"  # pending | manual_review | verified | failed
    identity_level: str | None = None
    identity_factors: tuple[str, ...] = ()
    identity_reasons: tuple[str, ...] = ()
    profile_status: str = "pending"  # pending | passed | mismatch
    findings: tuple[dict, ...] = ()
    needs: tuple[str, ...] = ()
    cases: dict[str, dict[str, Any]] = field(default_factory=dict)
    verified: bool = False
    verified_at: datetime | None = None
    badge: str | None = None
    badge_active: bool = False
    last_inspected_at: datetime | None = None
    reinspections: dict[str, str] = field(default_factory=dict)
    evidence: dict[str, str] = field(default_factory=dict)  # what -> event id
    owner_changes: tuple[dict, ...] = ()  # public notices of completed transfers (A11.2)
    standing: str = "in_service"  # as registration decided (A9.2): PublicStandingChanged
    suspensions: tuple[str, ...] = ()
    version: int = 0
    # whom the contact is sealed for (ADR 0033): the registrant, who gave it; a transfer
    # changes ``identity`` but not the contact given at registration
    contact_subject: str | None = None

    # -- queries ----------------------------------------------------------------------
    def approved(self, kind: str) -> list[dict[str, Any]]:
        return [c for c in self.cases.values() if c["kind"] == kind and c["status"] == "approved"]

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(k for k in self.needs if not self.approved(k))

    @property
    def has_news_permit(self) -> bool:
        return bool(self.approved("news_permit"))

    @property
    def labels(self) -> list[str]:
        return sorted({c["label"] for c in self.cases.values() if c["status"] == "approved"})

    # -- decisions --------------------------------------------------------------------
    @staticmethod
    def open(registration: AccountRegistrationSubmitted, *, identity: IdentityDecision | None,
             provider: str, findings: list[dict], needs: tuple[str, ...], evidence: list[str],
             now: datetime) -> Events:
        """The first events of an account's verification: opened and, when the identity is
        already decided (its numbers are malformed), that decision. Otherwise the identity
        stays pending: the providers are asked outside this transaction (ADR 0026)."""
        r = registration
        of = {"account_id": r.account_id, "evidence_event_ids": evidence}
        decided: Events = [VerificationOpened(
            **of, entity_type=r.entity_type, identity=r.identity, profile=r.profile,
            category=r.category, province=r.province, contact_sealed=r.contact_sealed,
            contact_masked=r.contact_masked, contact_public=r.contact_public,
            organization=r.organization,
            extra_verification_required=r.extra_verification_required,
            legal_basis=["A8.1", "A8.2"])]
        if identity is None:
            return decided
        return decided + fold_payloads(None, decided, now).decide_identity(
            identity, provider=provider, findings=findings, needs=needs, evidence=evidence,
            now=now)

    def decide_identity(self, identity: IdentityDecision, *, provider: str,
                        findings: list[dict], needs: tuple[str, ...], evidence: list[str],
                        now: datetime) -> Events:
        """The providers' verdict on a pending identity: failed, or verified and (then) the
        profile checked, the field's needs, the completion."""
        if self.identity_status not in ("pending", "manual_review"):
            raise ConflictError(f"the identity of {self.account_id} is already "
                                f"{self.identity_status}", code="identity-already-decided")
        assert not identity.retryable, "no verdict: defer_identity"
        of = {"account_id": self.account_id, "evidence_event_ids": evidence}
        basis = ["A8.1"] + (["A10.1"] if self.extra else [])
        if not identity.verified:
            return [IdentityVerificationFailed(
                **of, reasons=list(identity.reasons), legal_basis=basis,
                detail="the identity could not be verified: " + ", ".join(identity.reasons))]
        decided: Events = [
            IdentityVerified(**of, level=identity.level, factors=list(identity.factors),
                             provider=provider, legal_basis=basis,
                             extra_verification=self.extra),
            profile_checked(self.account_id, self.profile, findings, source="registration",
                            evidence=evidence)]
        if needs:
            decided.append(QualificationRequired(
                **of, kinds=list(needs), category=self.category, reason="category",
                legal_basis=["A5"] if "news_permit" in needs else ["A9.1"]))
        return decided + self.evolve_all(decided, now).complete(evidence)

    def defer_identity(self, identity: IdentityDecision, *, attempt: int, retry_at: datetime,
                       review_at: datetime, evidence: list[str]) -> Events:
        """No verdict yet (a provider unavailable or without a record): ask again later."""
        return [IdentityCheckDeferred(
            account_id=self.account_id, evidence_event_ids=evidence, legal_basis=["A8.1"],
            reasons=list(identity.reasons), attempt=attempt, retry_at=retry_at,
            review_at=review_at)]

    def require_identity_review(self, identity: IdentityDecision, *, case_id: str,
                                attempts: int, evidence: list[str]) -> Events:
        """No verdict by the deadline: a person reviews the identity."""
        return [IdentityReviewRequired(
            account_id=self.account_id, evidence_event_ids=evidence, legal_basis=["A8.1"],
            case_id=case_id, reasons=list(identity.reasons), attempts=attempts)]

    def check_change(self, *, change_id: str, profile: Profile, findings: list[dict],
                     evidence: list[str], now: datetime) -> Events:
        """A proposed profile checked like at registration: passed (and the account complete,
        if only the profile was missing) or a mismatch that leaves the current one standing."""
        decided = [profile_checked(self.account_id, profile, findings, source="profile_change",
                                   evidence=evidence, change_id=change_id)]
        return decided + self.evolve_all(decided, now).complete(evidence)

    def complete(self, evidence: list[str]) -> Events:
        """AccountVerified and the badge, once everything the account needs holds."""
        if (self.verified or self.identity_status != "verified"
                or self.profile_status != "passed" or self.missing):
            return []
        badge = badge_for(self.entity_type, self.category)
        basis = ["A8.1", "A8.2"] + (["A9.1"] if "professional" in self.needs else []) \
            + (["A5"] if "news_permit" in self.needs else [])
        ids = sorted({*self.evidence.values(), *evidence})
        return [
            AccountVerified(account_id=self.account_id, identity_level=self.identity_level,
                            badge=badge, qualifications=self.labels, legal_basis=basis,
                            evidence_event_ids=ids),
            BadgeGranted(account_id=self.account_id, badge=badge, legal_basis=["A9.2"],
                         evidence_event_ids=ids),
        ]

    def suspend_badge(self, reason: str, legal_basis: list[str], evidence: list[str]) -> Events:
        if not self.badge_active:
            return []
        return [BadgeSuspended(account_id=self.account_id, badge=self.badge, reason=reason,
                               legal_basis=legal_basis, evidence_event_ids=evidence)]

    def submit_qualification(self, *, case_id: str, material: Material,
                             submitted_by: str) -> Events:
        """A review case for the material (A9.1, A5); none for a false identity (A8.1)."""
        if self.identity_status == "failed":
            raise ConflictError("the account's identity failed verification: no service (A8.1)",
                                code="identity-verification-failed")
        m = material
        return [QualificationSubmitted(
            account_id=self.account_id, case_id=case_id, kind=m.kind, submitted_by=submitted_by,
            legal_basis=_basis(m.kind), qualification_type=m.qualification_type,
            number=m.number, issuer=m.issuer, valid_from=m.valid_from, valid_until=m.valid_until,
            document_sha256=m.document_sha256, document_content_type=m.document_content_type,
            document_bytes=m.document_bytes)]

    def decide_case(self, *, case_id: str, approve: bool, reviewer: str, note: str,
                    now: datetime) -> Events:
        """A reviewer's decision on a pending case; an approval may complete the account."""
        case = self.cases.get(case_id)
        if case is None:
            raise NotFoundError(f"no review case {case_id}", code="review-case-not-found",
                                title="No such review case")
        if case["status"] != "pending":
            raise ConflictError(f"review case {case_id} is already {case['status']}",
                                code="review-case-decided")
        ev = [case["event_id"]]
        common = {"account_id": self.account_id, "case_id": case_id, "kind": case["kind"],
                  "reviewer": reviewer, "note": note, "legal_basis": _basis(case["kind"]),
                  "evidence_event_ids": ev}
        if not approve:
            return [QualificationRejected(**common)]
        if datetime.fromisoformat(case["valid_until"]) <= now:
            raise InvalidCommandError("the material's validity has already ended",
                                      code="qualification-expired")
        label = f"{KIND_LABEL[case['kind']]}：{case['qualification_type']}"
        decided: Events = [QualificationApproved(**common, label=label, number=case["number"],
                                                 valid_until=case["valid_until"])]
        return decided + self.evolve_all(decided, now).complete(ev)

    def expire(self, now: datetime) -> Events:
        """QualificationExpired for each approved case past its validity, the badge
        suspended and the qualification requested again (A9.1)."""
        decided: Events = [
            QualificationExpired(account_id=self.account_id, case_id=case_id, kind=c["kind"],
                                 expired_at=c["valid_until"], legal_basis=_basis(c["kind"]),
                                 evidence_event_ids=[c["approved_event_id"]])
            for case_id, c in sorted(self.cases.items())
            if c["status"] == "approved" and datetime.fromisoformat(c["valid_until"]) <= now]
        if not decided:
            return []
        after = self.evolve_all(decided, now)
        if after.missing:
            basis = sorted({b for p in decided for b in p.legal_basis})
            decided.append(QualificationRequired(
                account_id=self.account_id, kinds=list(after.missing), category=self.category,
                reason="expired", legal_basis=basis, evidence_event_ids=[]))
            decided += self.suspend_badge("qualification_expired", basis, [])
        return decided

    def schedule_reinspection(self, reinspection_id: str, reason: str) -> Events:
        """A re-inspection (A9.3) of a verified account."""
        if not self.verified:
            raise not_verified(self.account_id)
        return [ReinspectionScheduled(account_id=self.account_id,
                                      reinspection_id=reinspection_id, reason=reason,
                                      legal_basis=["A9.3"])]

    def conclude_reinspection(self, reinspection_id: str, findings: list[dict],
                              evidence: list[str]) -> Events:
        """Passed, or failed like A8.2: a mismatch, and the badge suspended meanwhile."""
        if not findings:
            return [ReinspectionPassed(account_id=self.account_id,
                                       reinspection_id=reinspection_id, legal_basis=["A9.3"],
                                       evidence_event_ids=evidence)]
        basis = ["A9.3", "A8.2"]
        return [ProfileMismatchFound(account_id=self.account_id, source="reinspection",
                                     reinspection_id=reinspection_id, findings=findings,
                                     legal_basis=basis, evidence_event_ids=evidence),
                *self.suspend_badge("reinspection_failed", basis, evidence)]

    def disclose_owner_change(self, notice: TransferAnnounced, evidence: list[str]) -> Events:
        """A completed transfer's public notice (A11.2); once per transfer."""
        if any(c["transfer_id"] == notice.transfer_id for c in self.owner_changes):
            return []
        n = notice
        badge = badge_for(n.new_entity_type, self.category)
        rebadged: Events = [BadgeGranted(account_id=self.account_id, badge=badge,
                                         legal_basis=["A9.2", "A11.2"],
                                         evidence_event_ids=evidence)
                            ] if self.badge_active and badge != self.badge else []
        return [OwnerChangeDisclosed(
            account_id=self.account_id, transfer_id=n.transfer_id, changed_at=n.changed_at,
            previous_entity_type=n.previous_entity_type or self.entity_type,
            previous_name=n.previous_name, new_entity_type=n.new_entity_type,
            new_name=n.new_name, new_owner=n.new_owner, new_organization=n.new_organization,
            ad_revenue_paused_until=n.ad_revenue_paused_until, legal_basis=["A11.2"],
            evidence_event_ids=evidence), *rebadged]

    def follow_standing(self, *, suspended: str | None = None, reinstated: str | None = None,
                        ended: str | None = None, evidence: list[str]) -> Events:
        """The account's standing on the platform, for its public page (A9.2): suspended
        while any suspension holds, closed or deregistered for good."""
        if self.standing in ("closed", "deregistered"):
            return []
        held = set(self.suspensions)
        if suspended:
            held.add(suspended)
        if reinstated:
            held.discard(reinstated)
        standing = ended or ("suspended" if held else "in_service")
        if standing == self.standing and tuple(sorted(held)) == self.suspensions:
            return []
        return [PublicStandingChanged(account_id=self.account_id, standing=standing,
                                      suspensions=sorted(held), legal_basis=["A9.2"],
                                      evidence_event_ids=evidence)]

    def evolve_all(self, decided: Events, now: datetime) -> Verification:
        return fold_payloads(self, decided, now)


def not_verified(account_id: str) -> ConflictError:
    return ConflictError(f"account {account_id} is not verified", code="not-verified")


# -- folding -----------------------------------------------------------------------------
def evolve(state: Verification | None, e: Envelope) -> Verification:
    """The state after one stored event; ``version`` follows the stream."""
    return replace(_apply(state, e.type, e.data, e.time, e.id), version=e.stream_version)


def fold_payloads(state: Verification | None, decided: Events, now: datetime) -> Verification:
    """The state after events decided but not stored yet (their ids are not known: "")."""
    for p in decided:
        state = _apply(state, p.event_type, p.to_data(), now, "")
    assert state is not None
    return state


def _apply(state: Verification | None, event_type: str, d: dict[str, Any], time: datetime,
           event_id: str) -> Verification:
    name = event_type.removeprefix(P)
    if name == "VerificationOpened":
        return Verification(
            account_id=d["account_id"], entity_type=d["entity_type"], category=d["category"],
            province=d["province"], identity=d["identity"], profile=d["profile"],
            organization=d.get("organization"), contact_sealed=d["contact_sealed"],
            contact_subject=d["identity"]["id_number_blind"], contact_masked=d["contact_masked"],
            extra=d.get("extra_verification_required", False),
            contact_public=d.get("contact_public", False), opened_at=time,
            evidence={"opened": event_id})
    if state is None:
        raise ValueError(f"{event_type} before VerificationOpened")
    s = state
    ev = {**s.evidence}
    if name == "IdentityVerified":
        ev["identity"] = event_id
        return replace(s, identity_status="verified", identity_level=d["level"],
                       identity_factors=tuple(d["factors"]), evidence=ev)
    if name == "IdentityVerificationFailed":
        return replace(s, identity_status="failed", identity_reasons=tuple(d["reasons"]))
    if name == "IdentityCheckDeferred":
        return replace(s, identity_reasons=tuple(d["reasons"]))
    if name == "IdentityReviewRequired":
        return replace(s, identity_status="manual_review", identity_reasons=tuple(d["reasons"]))
    if name == "ProfileCheckPassed":
        if d.get("profile"):
            s = replace(s, profile=d["profile"])
        ev["profile"] = event_id
        return replace(s, profile_status="passed", findings=(), evidence=ev)
    if name == "ProfileMismatchFound":
        if d.get("change_id"):  # the proposed change failed; the current profile stands
            return s
        if d.get("reinspection_id"):
            s = replace(s, reinspections={**s.reinspections, d["reinspection_id"]: "failed"},
                        last_inspected_at=time)
        return replace(s, profile_status="mismatch", findings=tuple(d["findings"]),
                       verified=False)
    if name == "QualificationRequired":
        return replace(s, needs=tuple(sorted({*s.needs, *d["kinds"]})), verified=(
            s.verified and d.get("reason") != "expired"))
    if name == "QualificationSubmitted":
        case = {k: d[k] for k in ("kind", "qualification_type", "number", "issuer",
                                  "document_sha256", "document_content_type")}
        case |= {"valid_from": _iso(d["valid_from"]), "valid_until": _iso(d["valid_until"]),
                 "status": "pending", "submitted_at": time.isoformat(), "event_id": event_id,
                 "label": None}
        return replace(s, cases={**s.cases, d["case_id"]: case})
    if name in ("QualificationApproved", "QualificationRejected", "QualificationExpired"):
        case = dict(s.cases[d["case_id"]])
        if name == "QualificationApproved":
            case |= {"status": "approved", "label": d["label"], "reviewer": d["reviewer"],
                     "approved_event_id": event_id}
            ev[f"case:{d['case_id']}"] = event_id
        elif name == "QualificationRejected":
            case |= {"status": "rejected", "reviewer": d["reviewer"], "note": d.get("note", "")}
        else:
            case |= {"status": "expired"}
            ev.pop(f"case:{d['case_id']}", None)
        return replace(s, cases={**s.cases, d["case_id"]: case}, evidence=ev)
    if name == "AccountVerified":
        return replace(s, verified=True, verified_at=time,
                       last_inspected_at=s.last_inspected_at or time)
    if name == "BadgeGranted":
        return replace(s, badge=d["badge"], badge_active=True)
    if name == "BadgeSuspended":
        return replace(s, badge_active=False)
    if name == "PublicStandingChanged":
        return replace(s, standing=d["standing"], suspensions=tuple(d["suspensions"]))
    if name == "ReinspectionScheduled":
        return replace(s, reinspections={**s.reinspections, d["reinspection_id"]: "scheduled"})
    if name == "ReinspectionPassed":
        return replace(s, reinspections={**s.reinspections, d["reinspection_id"]: "passed"},
                       last_inspected_at=time)
    if name == "OwnerChangeDisclosed":  # the new owner runs the account from now on
        notice = {k: _iso(d[k]) if k.endswith(("_at", "_until")) and d[k] else d[k]
                  for k in ("transfer_id", "changed_at", "previous_entity_type",
                            "previous_name", "new_entity_type", "new_name",
                            "ad_revenue_paused_until")}
        return replace(s, identity=d["new_owner"], entity_type=d["new_entity_type"],
                       organization=d.get("new_organization") or (
                           None if d["new_entity_type"] == NATURAL else s.organization),
                       owner_changes=(*s.owner_changes, notice))
    return s


def _iso(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


# -- the registry streams (A8.2): protected names and the prohibited words ------------------
@dataclass(frozen=True)
class ProtectedName:
    """One protected name's stream (``protected-name-<id>``): whether it still holds."""

    protected_id: str
    removed: bool = False
    version: int = 0


def evolve_protected_name(state: ProtectedName | None, e: Envelope) -> ProtectedName:
    return ProtectedName(e.data["protected_id"], e.type == ProtectedNameRemoved.event_type,
                         e.stream_version)


def protect_name(protected_id: str, *, name: str, kind: str, aliases: list[str],
                 holder_blind: str | None, logo: ProtectedLogo | None, added_by: str) -> Events:
    """A name (aliases, logo) only its holder may use (A8.2)."""
    return [ProtectedNameAdded(protected_id=protected_id, name=name, kind=kind, aliases=aliases,
                               holder_blind=holder_blind, logo=logo, added_by=added_by,
                               legal_basis=["A8.2"])]


def unprotect_name(state: ProtectedName | None, protected_id: str, *, by: str) -> Events:
    if state is None or state.removed:
        raise NotFoundError(f"no protected name {protected_id}", code="protected-name-not-found",
                            title="No such protected name")
    return [ProtectedNameRemoved(protected_id=protected_id, removed_by=by, legal_basis=["A8.2"])]


WORDS_STREAM = "prohibited-words"


@dataclass(frozen=True)
class WordList:
    """The one ``prohibited-words`` stream: only its version matters to a change."""

    version: int = 0


def evolve_word_list(state: WordList | None, e: Envelope) -> WordList:
    return WordList(e.stream_version)


def change_words(*, added: list[str], removed: list[str], by: str) -> Events:
    return [ProhibitedWordsChanged(added=added, removed=removed, changed_by=by,
                                   legal_basis=["A8.2"])]


# -- a transferee's check (A11.2): stream ``transferee-<transfer id>`` ------------------------
def transferee_stream(transfer_id: str) -> str:
    return f"transferee-{transfer_id}"


@dataclass(frozen=True)
class TransfereeCheck:
    """One application's transferee, verified like a registrant (A11.2, A8.1)."""

    transfer_id: str
    account_id: str
    status: str  # pending | verified | failed
    version: int = 0
    entity_type: str = ""
    identity: dict = field(default_factory=dict)  # sealed, as the application carried it
    opened_event_id: str = ""

    def decide(self, identity: IdentityDecision, *, provider: str) -> Events:
        """The providers' answers (or no answer by the deadline): verified, or failed."""
        if self.status != "pending":
            raise ConflictError(f"transferee of {self.transfer_id} is already {self.status}",
                                code="identity-already-decided")
        of = {"account_id": self.account_id, "transfer_id": self.transfer_id,
              "evidence_event_ids": [self.opened_event_id]}
        if not identity.verified:
            return [TransfereeVerificationFailed(
                **of, reasons=list(identity.reasons), legal_basis=["A11.2", "A8.1"],
                detail="the transferee's identity could not be verified: "
                       + ", ".join(identity.reasons))]
        return [TransfereeVerified(**of, level=identity.level,
                                   factors=list(identity.factors), provider=provider,
                                   legal_basis=["A11.2", "A8.1"])]


def open_transferee_check(request: TransferRequested, evidence: list[str]) -> Events:
    """A new application's transferee, queued for the providers (A11.2, ADR 0026)."""
    return [TransfereeCheckOpened(
        account_id=request.account_id, transfer_id=request.transfer_id,
        entity_type=request.transferee_entity_type, identity=request.transferee,
        legal_basis=["A11.2", "A8.1"], evidence_event_ids=evidence)]


def evolve_transferee(state: TransfereeCheck | None, e: Envelope) -> TransfereeCheck:
    d = e.data
    if e.type == TransfereeCheckOpened.event_type:
        return TransfereeCheck(d["transfer_id"], d["account_id"], "pending", e.stream_version,
                               entity_type=d["entity_type"], identity=d["identity"],
                               opened_event_id=e.id)
    status = "verified" if e.type == TransfereeVerified.event_type else "failed"
    base = state or TransfereeCheck(d["transfer_id"], d["account_id"], status)
    return replace(base, status=status, version=e.stream_version)
