"""Request bodies of the verification API and the small conversions they need."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from libs import identity as ids
from libs.runtime.problems import ProblemError


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProtectedNameIn(Body):
    name: str = Field(min_length=2, max_length=100)
    kind: Literal["organ", "enterprise", "person", "media"]
    holder_id_number: str | None = Field(None, max_length=40,
                                         description="resident id or USCC of the holder; only "
                                                     "its blind index is kept")
    aliases: list[str] = Field([], max_length=50)
    logo: str | None = Field(None, max_length=7_000_000, description="base64 image")


class WordsIn(Body):
    add: list[str] = Field([], max_length=500)
    remove: list[str] = Field([], max_length=500)


class QualificationIn(Body):
    kind: Literal["professional", "news_permit", "licence"] = "professional"
    type: str = Field(min_length=1, max_length=100, description="e.g. 执业医师资格证")
    number: str = Field(min_length=1, max_length=100)
    issuer: str = Field(min_length=1, max_length=200)
    valid_from: datetime
    valid_until: datetime
    document_base64: str = Field(max_length=7_000_000)
    document_content_type: Literal["application/pdf", "image/png", "image/jpeg"]


class DecisionIn(Body):
    decision: Literal["approve", "reject"]
    note: str = Field("", max_length=1000)


class SweepIn(Body):
    now: datetime | None = None
    fraction: float | None = Field(None, ge=0, le=1)
    seed: int | None = None
    account_ids: list[str] | None = Field(None, max_length=1000)


class SampleIn(Body):
    fraction: float = Field(ge=0, le=1)
    seed: int | None = None
    now: datetime | None = None


def b64(value: str, field: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ProblemError(f"{field} is not base64", status=422, code="invalid-base64",
                           title="Invalid base64", field=field) from None


def aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def holder_number(raw: str, kind: str) -> str:
    """The compact resident id (persons) or USCC (others), whichever the number is."""
    number = raw.replace(" ", "").upper()
    checks = ((ids.resident_id, ids.social_credit_code) if kind == "person"
              else (ids.social_credit_code, ids.resident_id))
    first: ids.IdentityNumberError | None = None
    for check in checks:
        try:
            return check(number)
        except ids.IdentityNumberError as exc:
            first = first or exc
    assert first is not None
    raise ProblemError(first.detail, status=422, code=first.code, title="Invalid identity data",
                       field="holder_id_number")
