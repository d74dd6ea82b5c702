"""Request bodies of the verification API and their translation into what the handlers
take: base64 decoded, numbers checked and blind-indexed, logos fingerprinted, documents
measured and digested. A malformed input is a problem (422) naming what failed."""

from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from libs import identity as ids
from libs.domain import Base64, Line, Name, Text
from libs.events.contracts.verification import ProtectedLogo
from libs.runtime.pii import Sealer
from libs.runtime.problems import ProblemError
from libs.runtime.uploads import check_declared_type

from .domain import Material
from .handlers import NewProtectedName, Submission

MAX_DOCUMENT = 5_000_000


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProtectedNameIn(Body):
    name: Name = Field(min_length=2, max_length=100)
    kind: Literal["organ", "enterprise", "person", "media"]
    holder_id_number: Line | None = Field(None, max_length=40,
                                         description="resident id or USCC of the holder; only "
                                                     "its blind index is kept")
    aliases: list[Name] = Field([], max_length=50)
    logo: Base64 | None = Field(None, max_length=7_000_000, description="base64 image")


class WordsIn(Body):
    add: list[Line] = Field([], max_length=500)
    remove: list[Line] = Field([], max_length=500)


class QualificationIn(Body):
    kind: Literal["professional", "news_permit", "licence"] = "professional"
    type: Line = Field(min_length=1, max_length=100, description="e.g. 执业医师资格证")
    number: Line = Field(min_length=1, max_length=100)
    issuer: Line = Field(min_length=1, max_length=200)
    valid_from: datetime
    valid_until: datetime
    document_base64: Base64 = Field(max_length=7_000_000)
    document_content_type: Literal["application/pdf", "image/png", "image/jpeg"]


class DecisionIn(Body):
    decision: Literal["approve", "reject"]
    note: Text = Field("", max_length=1000)


class SweepIn(Body):
    now: datetime | None = None
    fraction: float | None = Field(None, ge=0, le=1)
    seed: int | None = None
    account_ids: list[Line] | None = Field(None, max_length=1000)


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


def logo_fields(logo: str) -> ProtectedLogo:
    """The logo's digest and perceptual hash (only these are kept)."""
    from libs.screening import InvalidImageError, avatar_fingerprint

    try:
        fp = avatar_fingerprint(b64(logo, "logo"))
    except InvalidImageError as exc:
        raise ProblemError(f"the logo is not an acceptable image: {exc}", status=422,
                           code="invalid-logo", title="Invalid logo") from None
    return ProtectedLogo(sha256=fp.sha256, phash=fp.phash)


def protected_name(body: ProtectedNameIn, sealer: Sealer, added_by: str) -> NewProtectedName:
    """The name as the handler takes it: the holder's number only as its blind index."""
    holder_blind = (sealer.blind("id_number", holder_number(body.holder_id_number, body.kind))
                    if body.holder_id_number else None)
    return NewProtectedName(name=body.name, kind=body.kind, aliases=body.aliases,
                            holder_blind=holder_blind,
                            logo=logo_fields(body.logo) if body.logo else None,
                            added_by=added_by)


def submission(body: QualificationIn) -> Submission:
    """The material with its document decoded, measured and digested; validity in order."""
    data = b64(body.document_base64, "document_base64")
    if not data or len(data) > MAX_DOCUMENT:
        raise ProblemError(f"the document must have 1 to {MAX_DOCUMENT:,} bytes", status=422,
                           code="invalid-document", title="Invalid document")
    check_declared_type(data, body.document_content_type, field="document_base64")
    valid_from, valid_until = aware(body.valid_from), aware(body.valid_until)
    if valid_until <= valid_from:
        raise ProblemError("valid_until must be after valid_from", status=422,
                           code="invalid-validity", title="Invalid validity")
    return Submission(material=Material(
        kind=body.kind, qualification_type=body.type, number=body.number, issuer=body.issuer,
        valid_from=valid_from, valid_until=valid_until,
        document_sha256=hashlib.sha256(data).hexdigest(),
        document_content_type=body.document_content_type, document_bytes=len(data)),
        document=data)
