"""The aggregates of enforcement, pure: a violation (``violation-<id>``), an account's
enforcement record with its measures (``enforcement-account-<id>``), and a case, appeal
or complaint (``case-<id>``). Commands return contracts of
``libs.events.contracts.enforcement``; refusals are ``libs.domain`` errors."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from libs.domain import (
    ConflictError,
    IllegalTransitionError,
    InvalidCommandError,
    NotFoundError,
    as_datetime,
)
from libs.events import Envelope, EventPayload
from libs.events.contracts.enforcement import (
    AppealFiled,
    CaseResponded,
    CaseStepTaken,
    ComplaintFiled,
    Evidence,
    MeasureApplied,
    MeasureDecided,
    MeasureLifted,
    MeasurePolicyActivated,
    ViolationConfirmed,
    ViolationDismissed,
    ViolationReported,
)

P = "enforcement."
Events = list[EventPayload]
STEPS = ("received", "accepted", "screened", "handled", "responded")


def violation_stream(violation_id: str) -> str:
    return f"violation-{violation_id}"


def account_stream(account_id: str) -> str:
    return f"enforcement-account-{account_id}"


def case_stream(case_id: str) -> str:
    return f"case-{case_id}"


def appeal_case_id(measure_id: str) -> str:
    """One appeal per measure: its case id follows from the measure's."""
    return f"appeal-{measure_id}"



# -- a violation (A18, A14, A19.1) ------------------------------------------------------------
@dataclass(frozen=True)
class Violation:
    violation_id: str
    account_id: str
    category: int | str
    province: str
    source: str
    reported_at: datetime
    report_event_id: str
    status: str = "reported"  # reported | confirmed | dismissed
    version: int = 0

    @staticmethod
    def report(*, violation_id: str, account_id: str, category: int | str, evidence: Evidence,
               source: str, province: str, reported_by: str, now: datetime,
               legal_basis: list[str]) -> Events:
        return [ViolationReported(account_id=account_id, violation_id=violation_id,
                                  category=category, evidence=evidence, source=source,
                                  province=province, reported_by=reported_by, reported_at=now,
                                  legal_basis=legal_basis)]

    def decide(self, *, confirm: bool, by: str, note: str, now: datetime,
               legal_basis: list[str]) -> Events:
        """Confirmed or dismissed, with the time from intake to this decision (A19.1)."""
        if self.status != "reported":
            raise ConflictError(f"violation {self.violation_id} is already {self.status}",
                                code="violation-decided", title="Violation already decided")
        kind = ViolationConfirmed if confirm else ViolationDismissed
        return [kind(account_id=self.account_id, violation_id=self.violation_id,
                     category=self.category, decided_by=by, note=note,
                     reported_at=self.reported_at, decided_at=now,
                     intake_to_decision_seconds=max(0.0, (now - self.reported_at)
                                                    .total_seconds()),
                     legal_basis=[*legal_basis, "A19.1"],
                     evidence_event_ids=[self.report_event_id])]


def evolve_violation(state: Violation | None, e: Envelope) -> Violation:
    d, name = e.data, e.type.removeprefix(P)
    if name == "ViolationReported":
        return Violation(violation_id=d["violation_id"], account_id=d["account_id"],
                         category=d["category"], province=d["province"], source=d["source"],
                         reported_at=as_datetime(d["reported_at"]), report_event_id=e.id,
                         version=e.stream_version)
    assert state is not None, f"{e.type} before ViolationReported"
    status = {"ViolationConfirmed": "confirmed", "ViolationDismissed": "dismissed"}[name]
    return replace(state, status=status, version=e.stream_version)


# -- an account's enforcement record (A19.2) --------------------------------------------------
@dataclass(frozen=True)
class MeasureState:
    measure_id: str
    measure: str
    violation_id: str
    category: int | str
    starts_at: datetime
    ends_at: datetime | None
    reversible: bool
    province: str
    decided_at: datetime
    active: bool = True
    lifted_reason: str | None = None


@dataclass(frozen=True)
class Record:
    account_id: str
    measures: dict[str, MeasureState] = field(default_factory=dict)
    version: int = 0

    def history(self) -> list[tuple[int | str, datetime]]:
        """Confirmed violations on the record (an upheld appeal takes one off)."""
        return [(m.category, m.decided_at) for m in self.measures.values()
                if m.lifted_reason != "appeal_upheld"]

    def measure(self, measure_id: str) -> MeasureState:
        m = self.measures.get(measure_id)
        if m is None:
            raise NotFoundError(f"no measure {measure_id} on account {self.account_id}",
                                code="measure-not-found", title="No such measure")
        return m

    def lift(self, measure_id: str, *, reason: str, legal_basis: list[str],
             evidence: list[str]) -> Events:
        m = self.measure(measure_id)
        if not m.active:
            raise ConflictError(f"measure {measure_id} is already lifted ({m.lifted_reason})",
                                code="measure-lifted", title="Measure already lifted")
        return [MeasureLifted(account_id=self.account_id, measure_id=measure_id, reason=reason,
                              legal_basis=legal_basis, evidence_event_ids=evidence)]

    def expired(self, now: datetime) -> list[str]:
        return sorted(m.measure_id for m in self.measures.values()
                      if m.active and m.ends_at is not None and m.ends_at <= now)


def apply_measure(decided: MeasureDecided, *, starts_at: datetime, ends_at: datetime | None,
                  evidence: list[str]) -> Events:
    """The decision and the measure it applies (the contract registration acts on); a ban's
    severity always set explicitly, null when there is none."""
    category = decided.category if isinstance(decided.category, int) else None
    return [decided, MeasureApplied(
        account_id=decided.account_id, measure_id=decided.measure_id, measure=decided.measure,
        capabilities=decided.capabilities, starts_at=starts_at, ends_at=ends_at,
        ban_severity=decided.ban_severity, ban_until=None, violation_id=decided.violation_id,
        category=category, policy_version=f"{decided.policy_id}@{decided.policy_version}",
        legal_basis=decided.legal_basis, evidence_event_ids=evidence)]


def evolve_record(state: Record | None, e: Envelope) -> Record:
    d, name = e.data, e.type.removeprefix(P)
    s = state or Record(account_id=d["account_id"])
    if name == "MeasureDecided":
        m = MeasureState(measure_id=d["measure_id"], measure=d["measure"],
                         violation_id=d["violation_id"], category=d["category"],
                         starts_at=e.time, ends_at=None, reversible=d["reversible"],
                         province=d["province"], decided_at=e.time)
        return replace(s, measures={**s.measures, m.measure_id: m}, version=e.stream_version)
    if name == "MeasureApplied":
        m = replace(s.measures[d["measure_id"]], starts_at=as_datetime(d["starts_at"]),
                    ends_at=as_datetime(d.get("ends_at")))
        return replace(s, measures={**s.measures, m.measure_id: m}, version=e.stream_version)
    if name == "MeasureLifted":
        m = replace(s.measures[d["measure_id"]], active=False, lifted_reason=d["reason"])
        return replace(s, measures={**s.measures, m.measure_id: m}, version=e.stream_version)
    return replace(s, version=e.stream_version)


# -- a case: an appeal or a complaint (A20.2) -------------------------------------------------
@dataclass(frozen=True)
class Case:
    case_id: str
    kind: str  # appeal | complaint
    account_id: str
    step: str
    deadline: datetime
    measure_id: str | None = None
    outcome: str | None = None
    opened_event_id: str = ""
    version: int = 0

    def take_step(self, step: str, *, by: str, assignee: str | None, note: str,
                  now: datetime) -> Events:
        """The next step in order: received -> accepted -> screened -> handled."""
        if step not in STEPS[1:-1]:
            raise InvalidCommandError(f"unknown step {step!r}; one of {STEPS[1:-1]}",
                                      code="invalid-case-step", legal_basis=["A20.2"])
        expected = STEPS[STEPS.index(self.step) + 1] if self.step != "responded" else None
        if step != expected:
            raise IllegalTransitionError(
                f"case {self.case_id} is {self.step}: the next step is {expected}",
                code="case-step-out-of-order", legal_basis=["A20.2"], current_step=self.step)
        return [CaseStepTaken(account_id=self.account_id, case_id=self.case_id, step=step,
                              by=by, assignee=assignee, note=note, at=now,
                              legal_basis=["A20.2"], evidence_event_ids=[self.opened_event_id])]

    def respond(self, *, outcome: str, response: str, by: str, now: datetime) -> Events:
        """The response, once handled; an upheld appeal names the measure to lift."""
        if self.step != "handled":
            raise IllegalTransitionError(
                f"case {self.case_id} is {self.step}: respond once it is handled",
                code="case-step-out-of-order", legal_basis=["A20.2"], current_step=self.step)
        return [CaseResponded(account_id=self.account_id, case_id=self.case_id,
                              outcome=outcome, response=response, by=by, at=now,
                              measure_id=self.measure_id, legal_basis=["A20.2"],
                              evidence_event_ids=[self.opened_event_id])]


def file_appeal(*, record: Record | None, case: Case | None, account_id: str, measure_id: str,
                reason: str, filed_by: str, now: datetime, window_days: int,
                deadline: datetime, working_days: int) -> Events:
    """An appeal of an active measure of the account, within the window, once."""
    if record is None:
        raise NotFoundError(f"no measure {measure_id} on account {account_id}",
                            code="measure-not-found", title="No such measure")
    m = record.measure(measure_id)
    if case is not None:
        raise ConflictError(f"measure {measure_id} has been appealed already ({case.case_id})",
                            code="appeal-exists", legal_basis=["A20.2"], case_id=case.case_id)
    if not m.active:
        raise ConflictError(f"measure {measure_id} is already lifted", code="measure-lifted",
                            legal_basis=["A20.2"])
    if (now - m.starts_at).days >= window_days:
        raise ConflictError(f"the appeal window of {window_days} days after the measure "
                            "started has closed", code="appeal-window-closed",
                            legal_basis=["A20.2"])
    return [AppealFiled(account_id=account_id, case_id=appeal_case_id(measure_id),
                        province=m.province, reason=reason, received_at=now, deadline=deadline,
                        working_days=working_days, measure_id=measure_id, filed_by=filed_by,
                        legal_basis=["A20.2"])]


def file_complaint(*, case_id: str, account_id: str, province: str | None, reason: str,
                   category: int | str | None, urls: list[str], contact_sealed: str | None,
                   contact_masked: str | None, now: datetime, deadline: datetime,
                   working_days: int) -> Events:
    return [ComplaintFiled(account_id=account_id, case_id=case_id, province=province,
                           reason=reason, received_at=now, deadline=deadline,
                           working_days=working_days, category=category, urls=urls,
                           contact_sealed=contact_sealed, contact_masked=contact_masked,
                           legal_basis=["A20.2"])]


def evolve_case(state: Case | None, e: Envelope) -> Case:
    d, name = e.data, e.type.removeprefix(P)
    if name in ("AppealFiled", "ComplaintFiled"):
        return Case(case_id=d["case_id"], kind="appeal" if name == "AppealFiled" else "complaint",
                    account_id=d["account_id"], step="received",
                    deadline=as_datetime(d["deadline"]),
                    measure_id=d.get("measure_id"), opened_event_id=e.id,
                    version=e.stream_version)
    assert state is not None, f"{e.type} before the case was filed"
    if name == "CaseStepTaken":
        return replace(state, step=d["step"], version=e.stream_version)
    if name == "CaseResponded":
        return replace(state, step="responded", outcome=d["outcome"], version=e.stream_version)
    return replace(state, version=e.stream_version)


# -- the measure policy's versions (A7.3): stream ``measure-policy`` ---------------------------
POLICY_STREAM = "measure-policy"


@dataclass(frozen=True)
class PolicyVersions:
    """The versions activated so far, in order, and the document in force (the last)."""

    versions: tuple[dict[str, Any], ...] = ()
    document: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""
    version: int = 0

    def activate(self, *, policy_id: str, version: str, sha256: str, document: dict[str, Any],
                 by: str, replayed: int, differ: int, in_force: tuple[str, str, str]
                 ) -> Events:
        """A new version in force (A7.3). ``in_force`` is the (policy id, version, digest)
        of the policy in force now (the service's file before any activation); a version
        number is never reused, so that a decision's recorded version names one document."""
        used = {(v["policy_id"], v["version"]) for v in self.versions} | {in_force[:2]}
        if sha256 == in_force[2]:
            raise ConflictError("this document is already in force", code="policy-unchanged")
        if (policy_id, version) in used:
            raise ConflictError(f"version {version} of {policy_id} was already in force; "
                                "give the new document a new version", code="policy-version-exists")
        return [MeasurePolicyActivated(
            policy_id=policy_id, version=version, sha256=sha256, document=document,
            activated_by=by, replayed_violations=replayed, would_differ=differ)]


def evolve_policy_versions(state: PolicyVersions | None, e: Envelope) -> PolicyVersions:
    s = state or PolicyVersions()
    if e.type != MeasurePolicyActivated.event_type:
        return replace(s, version=e.stream_version)
    d = e.data
    entry = {"policy_id": d["policy_id"], "version": d["version"], "sha256": d["sha256"],
             "activated_by": d["activated_by"], "activated_at": e.time.isoformat(),
             "replayed_violations": d["replayed_violations"], "would_differ": d["would_differ"],
             "event_id": e.id}
    return PolicyVersions(versions=(*s.versions, entry), document=d["document"],
                          sha256=d["sha256"], version=e.stream_version)
