"""Request bodies of the enforcement API and their translation into what handlers take.
A malformed input is a problem (422) naming what failed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from libs.domain import Line, Text
from libs.events.contracts.enforcement import Evidence
from libs.runtime.problems import ProblemError

from .handlers import NewComplaint, NewViolation
from .rules import Category, MeasurePolicy


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EvidenceIn(Body):
    content_ids: list[Line] = Field([], max_length=200)
    hashes: list[Line] = Field([], max_length=200)
    urls: list[Line] = Field([], max_length=200)
    reporter: Line | None = Field(None, max_length=200)


class ViolationIn(Body):
    account_id: Line = Field(min_length=1, max_length=100)
    category: Category = Field(description="Art. 18 category 1-10, or an Art. 14 commercial "
                                           "category")
    evidence: EvidenceIn
    source: Literal["moderation", "complaint", "regulator", "credit", "verification"]
    province: Line | None = Field(None, min_length=2, max_length=12,
                                 description="the account's province; registration's wins "
                                             "once known")


class DecisionIn(Body):
    decision: Literal["confirm", "dismiss"]
    note: Text = Field("", max_length=2000)


class LiftIn(Body):
    account_id: Line = Field(min_length=1, max_length=100)
    note: Text = Field("", max_length=2000)


class AppealIn(Body):
    account_id: Line = Field(min_length=1, max_length=100)
    measure_id: Line = Field(min_length=1, max_length=100)
    reason: Text = Field(min_length=1, max_length=5000)


class ComplaintIn(Body):
    account_id: Line = Field(min_length=1, max_length=100)
    reason: Text = Field(min_length=1, max_length=5000)
    category: Category | None = None
    urls: list[Line] = Field([], max_length=50)
    contact: Line | None = Field(None, max_length=200, description="kept sealed; shown masked")


class StepIn(Body):
    step: Literal["accepted", "screened", "handled"]
    assignee: Line | None = Field(None, max_length=100)
    note: Text = Field("", max_length=2000)


class ResponseIn(Body):
    outcome: Literal["upheld", "rejected"]
    response: Text = Field(min_length=1, max_length=5000)


class SweepIn(Body):
    now: datetime | None = None
    account_ids: list[Line] | None = Field(None, max_length=1000)


class SimulateIn(Body):
    policy: dict[str, Any] = Field(description="a candidate measure-policy document")


def aware(t: datetime | None) -> datetime | None:
    return t if t is None or t.tzinfo else t.replace(tzinfo=UTC)


def violation(body: ViolationIn) -> NewViolation:
    return NewViolation(account_id=body.account_id, category=body.category,
                        evidence=Evidence(**body.evidence.model_dump()), source=body.source,
                        province=body.province)


def complaint(body: ComplaintIn) -> NewComplaint:
    return NewComplaint(**body.model_dump())


def candidate_policy(body: SimulateIn) -> MeasurePolicy:
    try:
        return MeasurePolicy.model_validate(body.policy)
    except ValidationError as exc:
        raise ProblemError(f"the candidate policy is not valid: {exc}",
                           status=422, code="invalid-policy",
                           title="Invalid measure policy") from None


def period(start: datetime | None, end: datetime | None) -> tuple[datetime | None,
                                                                  datetime | None]:
    start, end = aware(start), aware(end)
    if start and end and end <= start:
        raise ProblemError("'to' must be after 'from'", status=422, code="invalid-period",
                           title="Invalid period")
    return start, end
