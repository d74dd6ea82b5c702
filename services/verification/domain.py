"""The verification of one account: identity (A8.1), profile (A8.2), qualifications and
news permits (A9.1, A5), badge (A9.2) and re-inspections (A9.3). Pure: no I/O.

The aggregate is folded from the account's ``verification-<id>`` stream; its methods
decide the next events as ``(type, data)`` pairs and never mutate.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from .providers import CarrierAnswer, Outcome

P = "verification."
Decided = list[tuple[str, dict[str, Any]]]

NATURAL = "natural_person"
# A9.1: fields that need an approved professional qualification; A5: news needs a permit.
PROFESSIONAL = frozenset({"economics", "education", "health", "justice"})
NEWS = frozenset({"news"})
KIND_LABEL = {"professional": "专业资质", "news_permit": "互联网新闻信息服务许可",
              "licence": "许可证"}
LEVELS = {2: "two_factor", 3: "three_factor", 4: "four_factor"}


class DomainError(Exception):
    """A command the verification state refuses; ``code`` and ``status`` are stable."""

    def __init__(self, code: str, detail: str, status: int = 409) -> None:
        super().__init__(detail)
        self.code, self.detail, self.status = code, detail, status


# -- identity (A8.1) --------------------------------------------------------------------
@dataclass(frozen=True)
class IdentityAnswers:
    """What the providers said; ``None`` where a check does not apply to the entity."""

    public_security: Outcome | None = None
    carrier: CarrierAnswer | None = None
    business: Outcome | None = None
    representative: Outcome | None = None


@dataclass(frozen=True)
class IdentityDecision:
    verified: bool
    level: str | None
    factors: tuple[str, ...]
    reasons: tuple[str, ...]


_MISMATCH_REASON = {"id_name": "id-name-mismatch", "phone_owner": "phone-not-owned",
                    "business_registration": "business-registration-mismatch",
                    "representative_id_name": "representative-mismatch"}


def decide_identity(entity_type: str, answers: IdentityAnswers, *, extra: bool,
                    min_tenure_months: int = 6) -> IdentityDecision:
    """Multi-factor: at least two independent factors agree and none disagrees; with extra
    verification (A10.1) at least three, the third being the phone's tenure.

    A disagreeing factor is a false or borrowed identity whatever the others say;
    ``unknown`` answers count neither way. Level = the number of agreeing factors.
    """
    outcomes: dict[str, Outcome | None] = {
        "id_name": answers.public_security if entity_type == NATURAL else None,
        "business_registration": answers.business if entity_type != NATURAL else None,
        "representative_id_name": answers.representative if entity_type != NATURAL else None,
        "phone_owner": answers.carrier.outcome if answers.carrier else None,
    }
    mismatches = [_MISMATCH_REASON[f] for f, o in outcomes.items() if o == "mismatch"]
    if mismatches:
        return IdentityDecision(False, None, (), tuple(mismatches))
    agreed = [f for f, o in outcomes.items() if o == "match"]
    carrier = answers.carrier
    if carrier and carrier.outcome == "match" and (carrier.tenure_months or 0) >= min_tenure_months:
        agreed.append("phone_tenure")
    if entity_type != NATURAL and "business_registration" not in agreed:
        return IdentityDecision(False, None, tuple(agreed), ("business-registration-unconfirmed",))
    needed = 3 if extra else 2
    if len(agreed) < needed:
        reason = "extra-verification-insufficient" if extra and len(agreed) >= 2 \
            else "insufficient-factors"
        return IdentityDecision(False, None, tuple(agreed), (reason,))
    return IdentityDecision(True, LEVELS[min(len(agreed), 4)], tuple(agreed), ())


def qualification_needs(category: str) -> tuple[str, ...]:
    """What a field needs before the account is verified (A9.1, A5)."""
    if category in PROFESSIONAL:
        return ("professional",)
    if category in NEWS:
        return ("news_permit",)
    return ()


def badge_for(entity_type: str, category: str) -> str:
    """The badge kind shown on a verified account (A9.2)."""
    if entity_type == NATURAL:
        return "personal"
    if category == "government_affairs":
        return "government"
    if category == "news":
        return "media"
    return "enterprise" if entity_type == "legal_person" else "organization"


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
    identity_status: str = "pending"  # pending | verified | failed
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
    version: int = 0

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
    def complete(self, evidence: list[str]) -> Decided:
        """AccountVerified and the badge, once everything the account needs holds."""
        if (self.verified or self.identity_status != "verified"
                or self.profile_status != "passed" or self.missing):
            return []
        badge = badge_for(self.entity_type, self.category)
        basis = ["A8.1", "A8.2"] + (["A9.1"] if "professional" in self.needs else []) \
            + (["A5"] if "news_permit" in self.needs else [])
        ids = sorted({*self.evidence.values(), *evidence})
        return [
            (P + "AccountVerified", {
                "account_id": self.account_id, "identity_level": self.identity_level,
                "badge": badge, "qualifications": self.labels, "legal_basis": basis,
                "evidence_event_ids": ids}),
            (P + "BadgeGranted", {"account_id": self.account_id, "badge": badge,
                                  "legal_basis": ["A9.2"], "evidence_event_ids": ids}),
        ]

    def suspend_badge(self, reason: str, legal_basis: list[str], evidence: list[str]
                      ) -> Decided:
        if not self.badge_active:
            return []
        return [(P + "BadgeSuspended", {"account_id": self.account_id, "badge": self.badge,
                                        "reason": reason, "legal_basis": legal_basis,
                                        "evidence_event_ids": evidence})]

    def submit_qualification(self, *, case_id: str, kind: str, submitted_by: str,
                             **material: Any) -> Decided:
        if self.identity_status == "failed":
            raise DomainError("identity-verification-failed",
                              "the account's identity failed verification: no service (A8.1)")
        return [(P + "QualificationSubmitted", {
            "account_id": self.account_id, "case_id": case_id, "kind": kind,
            "submitted_by": submitted_by, "legal_basis": ["A5"] if kind == "news_permit"
            else ["A9.1"], **material})]

    def decide_case(self, *, case_id: str, approve: bool, reviewer: str, note: str,
                    now: datetime) -> Decided:
        case = self.cases.get(case_id)
        if case is None:
            raise DomainError("review-case-not-found", f"no review case {case_id}", 404)
        if case["status"] != "pending":
            raise DomainError("review-case-decided",
                              f"review case {case_id} is already {case['status']}")
        basis = ["A5"] if case["kind"] == "news_permit" else ["A9.1"]
        ev = [case["event_id"]]
        common = {"account_id": self.account_id, "case_id": case_id, "kind": case["kind"],
                  "reviewer": reviewer, "note": note, "legal_basis": basis,
                  "evidence_event_ids": ev}
        if not approve:
            return [(P + "QualificationRejected", common)]
        if datetime.fromisoformat(case["valid_until"]) <= now:
            raise DomainError("qualification-expired",
                              "the material's validity has already ended", 422)
        label = f"{KIND_LABEL[case['kind']]}：{case['qualification_type']}"
        decided: Decided = [(P + "QualificationApproved", {
            **common, "label": label, "number": case["number"],
            "valid_until": case["valid_until"]})]
        after = self.evolve_all(decided, now)
        return decided + after.complete(ev)

    def expire(self, now: datetime) -> Decided:
        """QualificationExpired for each approved case past its validity, the badge
        suspended and the qualification requested again (A9.1)."""
        decided: Decided = []
        for case_id, c in sorted(self.cases.items()):
            if c["status"] == "approved" and datetime.fromisoformat(c["valid_until"]) <= now:
                basis = ["A5"] if c["kind"] == "news_permit" else ["A9.1"]
                decided.append((P + "QualificationExpired", {
                    "account_id": self.account_id, "case_id": case_id, "kind": c["kind"],
                    "expired_at": c["valid_until"], "legal_basis": basis,
                    "evidence_event_ids": [c["approved_event_id"]]}))
        if not decided:
            return []
        after = self.evolve_all(decided, now)
        if after.missing:
            basis = sorted({b for _, d in decided for b in d["legal_basis"]})
            decided.append((P + "QualificationRequired", {
                "account_id": self.account_id, "kinds": list(after.missing),
                "category": self.category, "reason": "expired", "legal_basis": basis,
                "evidence_event_ids": []}))
            decided += self.suspend_badge("qualification_expired", basis, [])
        return decided

    def evolve_all(self, decided: Decided, now: datetime) -> Verification:
        state = self
        for t, d in decided:
            state = evolve(state, t, d, now, "")
        return state


# -- folding -----------------------------------------------------------------------------
def evolve(state: Verification | None, event_type: str, d: dict[str, Any], time: datetime,
           event_id: str) -> Verification:
    name = event_type.removeprefix(P)
    if name == "VerificationOpened":
        return Verification(
            account_id=d["account_id"], entity_type=d["entity_type"], category=d["category"],
            province=d["province"], identity=d["identity"], profile=d["profile"],
            organization=d.get("organization"), contact_sealed=d["contact_sealed"],
            contact_masked=d["contact_masked"], extra=d.get("extra_verification_required", False),
            opened_at=time, evidence={"opened": event_id})
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
    if name == "ReinspectionScheduled":
        return replace(s, reinspections={**s.reinspections, d["reinspection_id"]: "scheduled"})
    if name == "ReinspectionPassed":
        return replace(s, reinspections={**s.reinspections, d["reinspection_id"]: "passed"},
                       last_inspected_at=time)
    return s


def _iso(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def fold(events: list[Any]) -> Verification | None:
    """The state after the stream's envelopes (``None`` for an empty stream)."""
    state = None
    for e in events:
        state = replace(evolve(state, e.type, e.data, e.time, e.id), version=e.stream_version)
    return state
