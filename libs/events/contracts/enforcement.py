"""Events published by the enforcement service (topic ``enforcement.events``).

Defined ahead of the enforcement service's own issue so that registration can apply
measures (A19.2); that issue produces them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from ..registry import EventPayload, EventRegistry
from ._common import AccountDecision, Capability, Part

registry = EventRegistry()

Measure = Literal[
    "warning", "function_limit", "suspend_updates", "stop_ads", "closure", "blacklist",
    "reregistration_ban",
]
BanSeverity = Literal["minor", "serious", "grave", "permanent"]


@registry.contract
class MeasureApplied(AccountDecision):
    """A graded measure against an account (A19.2), with its legal basis and evidence."""

    event_type: ClassVar[str] = "enforcement.MeasureApplied"
    measure_id: str
    measure: Measure
    capabilities: list[Capability] = []  # the functions limited, for function_limit
    starts_at: datetime
    ends_at: datetime | None = None  # None: until lifted (or permanent)
    ban_severity: BanSeverity | None = None  # closure, blacklist, reregistration_ban
    ban_until: datetime | None = None  # None with a severity of "permanent"
    violation_id: str | None = None
    category: int | None = None  # Art. 18 category 1-10
    policy_version: str


@registry.contract
class MeasureLifted(AccountDecision):
    """A measure ends early: an upheld appeal (A20.2) or an operator's decision."""

    event_type: ClassVar[str] = "enforcement.MeasureLifted"
    measure_id: str
    reason: str


# -- violations (A18, A14, A19.1) ------------------------------------------------------------
CommercialCategory = Literal["false_advertising", "exaggerated_publicity", "commercial_fraud",
                             "copyright"]
# An Art. 18 category (1-10) or an Art. 14 commercial one.
ViolationCategory = Annotated[int, Field(ge=1, le=10)] | CommercialCategory
ViolationSource = Literal["moderation", "complaint", "regulator", "credit", "verification",
                          "transfer"]


class Evidence(Part):
    """What a violation rests on: content ids, their hashes, addresses, who reported it."""

    content_ids: list[str] = []
    hashes: list[str] = []
    urls: list[str] = []
    reporter: str | None = None


@registry.contract
class ViolationReported(AccountDecision):
    """A suspected violation reached intake (A18 category 1-10, or A14), with evidence."""

    event_type: ClassVar[str] = "enforcement.ViolationReported"
    violation_id: str
    category: ViolationCategory
    evidence: Evidence
    source: ViolationSource
    province: str
    reported_by: str
    reported_at: datetime


class _ViolationDecision(AccountDecision):
    violation_id: str
    category: ViolationCategory
    decided_by: str
    note: str = ""
    reported_at: datetime
    decided_at: datetime
    intake_to_decision_seconds: float  # A19.1: intake to decision, measured


@registry.contract
class ViolationConfirmed(_ViolationDecision):
    """An operator confirmed the violation; a measure follows (A19.2)."""

    event_type: ClassVar[str] = "enforcement.ViolationConfirmed"


@registry.contract
class ViolationDismissed(_ViolationDecision):
    """An operator dismissed the report: no violation, no measure."""

    event_type: ClassVar[str] = "enforcement.ViolationDismissed"


# -- the measure policy's decision (A19.2, A7.3) ---------------------------------------------
@registry.contract
class MeasureDecided(AccountDecision):
    """Why a measure was chosen: the policy, its version, the rule and the step of its ladder,
    the history and credit level it saw. Precedes the ``MeasureApplied`` it explains."""

    event_type: ClassVar[str] = "enforcement.MeasureDecided"
    measure_id: str
    violation_id: str
    category: ViolationCategory
    province: str
    policy_id: str
    policy_version: str
    rule: str
    step: int
    prior_violations: int
    credit_level: str | None = None
    measure: Measure
    capabilities: list[Capability] = []
    duration_days: int | None = None
    reversible: bool
    ban_severity: BanSeverity | None = None


# -- appeals and complaints (A20.2) ----------------------------------------------------------
CaseStep = Literal["received", "accepted", "screened", "handled", "responded"]


class _CaseOpened(AccountDecision):
    case_id: str
    province: str | None = None
    reason: str
    received_at: datetime
    deadline: datetime  # in Chinese working days after receipt
    working_days: int


@registry.contract
class AppealFiled(_CaseOpened):
    """The account's operator appeals a measure (A20.2): one appeal per measure."""

    event_type: ClassVar[str] = "enforcement.AppealFiled"
    measure_id: str
    filed_by: str


@registry.contract
class ComplaintFiled(_CaseOpened):
    """A complaint or report from the public portal (A20.2); contact sealed and masked."""

    event_type: ClassVar[str] = "enforcement.ComplaintFiled"
    category: ViolationCategory | None = None
    urls: list[str] = []
    contact_sealed: str | None = None
    contact_masked: str | None = None


@registry.contract
class CaseStepTaken(AccountDecision):
    """A case moved on: accepted, screened or handled, by whom, assigned to whom."""

    event_type: ClassVar[str] = "enforcement.CaseStepTaken"
    case_id: str
    step: CaseStep
    by: str
    assignee: str | None = None
    note: str = ""
    at: datetime


@registry.contract
class CaseResponded(AccountDecision):
    """The case's response (its last step): upheld or rejected, with the answer given."""

    event_type: ClassVar[str] = "enforcement.CaseResponded"
    case_id: str
    outcome: Literal["upheld", "rejected"]
    response: str
    by: str
    at: datetime
    measure_id: str | None = None  # an appeal's measure


# -- inspections (A21.2) -----------------------------------------------------------------------
@registry.contract
class RegulatorAccessed(EventPayload):
    """A regulator read something (A21.2): who, scoped to which province, what and when."""

    event_type: ClassVar[str] = "enforcement.RegulatorAccessed"
    access_id: str
    regulator: str
    province: str | None  # None: the national office
    resource: str
    query: dict[str, str] = {}
    at: datetime
    manifest_sha256: str | None = None
    outcome: Literal["granted", "refused"] = "granted"
    legal_basis: list[str] = ["A21.2", "A3"]


# -- the measure policy's versions (A7.3) -------------------------------------------------------
@registry.contract
class MeasurePolicyActivated(EventPayload):
    """A version of the measure policy is in force from now on (A7.3, A19.2): the document
    as filed with its digest, who activated it, and what replaying history through it
    found first (how many confirmed violations it would have decided differently)."""

    event_type: ClassVar[str] = "enforcement.MeasurePolicyActivated"
    policy_id: str
    version: str
    sha256: str
    document: dict[str, Any]
    activated_by: str
    replayed_violations: int
    would_differ: int
    legal_basis: list[str] = ["A7.3", "A19.2"]
