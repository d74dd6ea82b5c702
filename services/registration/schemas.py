"""Request bodies of the registration API, and their translation into what the handlers
take: identity numbers checked (libs.identity), personal data sealed (libs.runtime.pii)."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from libs import identity as ids
from libs.domain import Base64, Line, Name, Text
from libs.events.contracts.registration import Organization, Profile
from libs.runtime.pii import Sealer, mask_name, mask_phone, seal_identity
from libs.runtime.problems import ProblemError

from .domain import Application, ProfileChange


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IdentityIn(Body):
    id_number: Line = Field(max_length=40, description="resident id, or USCC for organizations")
    name: Name = Field(min_length=1, max_length=100)
    phone: Line = Field(max_length=30)
    representative_name: Name | None = Field(None, max_length=100)
    representative_id_number: Line | None = Field(None, max_length=40)


class AvatarIn(Body):
    data_base64: Base64 | None = Field(None, max_length=7_000_000)
    url: Line | None = Field(None, max_length=2000, pattern=r"^https?://")
    sha256: Line | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$")


class ProfileIn(Body):
    name: Name = Field(min_length=1, max_length=30)
    description: Text = Field(max_length=500)
    avatar: AvatarIn


class OrganizationIn(Body):
    business_name: Name = Field(min_length=1, max_length=200)
    registered_address: Text = Field(min_length=1, max_length=300)
    primary_business: Text = Field(min_length=1, max_length=300)
    business_scope: Text = Field(min_length=1, max_length=2000)


class RegisterAccount(Body):
    entity_type: Literal["natural_person", "legal_person", "unincorporated_organization"]
    identity: IdentityIn
    profile: ProfileIn
    category: Line = Field(max_length=40)
    province: Line
    operations_province: Line
    contact: Line = Field(min_length=1, max_length=200)
    contact_public: bool = Field(False, description="an organization's contact may be shown "
                                                    "on its public page (A9.2); never a "
                                                    "natural person's")
    organization: OrganizationIn | None = None
    agreement_version: Line = Field(max_length=40)
    device_fingerprint: Line | None = Field(None, max_length=200)
    network: Line | None = Field(None, max_length=100, description="client IP or network id")


class ChangeProfile(Body):
    name: Name | None = Field(None, min_length=1, max_length=30)
    description: Text | None = Field(None, max_length=500)
    avatar: AvatarIn | None = None


class AcceptAgreement(Body):
    version: Line = Field(max_length=40)


class RecordActivity(Body):
    kind: Literal["login", "publish", "interaction", "api_use"] = "login"


class Note(Body):
    note: Text = Field("", max_length=500)


class Review(Body):
    approve: bool
    note: Text = Field("", max_length=500)


class SearchAccounts(Body):
    """A look-up by identity: the number travels in the body, never in a URL (logs, spans)."""

    owner: Line | None = Field(None, max_length=64,
                               description="ID number, USCC or its blind index")
    status: Line | None = Field(None, max_length=40)
    province: Line | None = Field(None, max_length=6)
    cursor: Line = Field("", max_length=200)
    limit: int = Field(50, ge=1, le=500)


class Sweep(Body):
    now: datetime | None = Field(None, description="the clock of this run (default: now)")
    account_ids: list[Line] | None = Field(None, max_length=1000,
                                          description="only these accounts (default: all due)")


def _identity_problem(exc: ids.IdentityNumberError, field: str) -> ProblemError:
    return ProblemError(exc.detail, status=422, code=exc.code, title="Invalid identity data",
                        field=field)


def avatar_fields(avatar: AvatarIn) -> dict[str, Any]:
    from libs.screening import InvalidImageError, avatar_fingerprint

    if avatar.data_base64 is not None:
        try:
            fp = avatar_fingerprint(base64.b64decode(avatar.data_base64, validate=True))
        # ValueError: a str with non-ASCII characters (binascii.Error: bad base64)
        except (binascii.Error, ValueError, InvalidImageError) as exc:
            raise ProblemError(f"the avatar is not an acceptable image: {exc}",
                               status=422, code="invalid-avatar", title="Invalid avatar") from None
        return {"avatar_sha256": fp.sha256, "avatar_phash": fp.phash}
    if avatar.url and avatar.sha256:
        return {"avatar_sha256": avatar.sha256.lower(), "avatar_url": avatar.url}
    raise ProblemError("give the avatar as data_base64, or as url with its sha256",
                       status=422, code="invalid-avatar", title="Invalid avatar")


def profile_change(body: ChangeProfile) -> ProfileChange:
    """The change as the handler takes it; a body that changes nothing is malformed (422)."""
    if body.name is None and body.description is None and body.avatar is None:
        raise ProblemError("change at least one of name, description, avatar",
                           status=422, code="empty-profile-change", title="Nothing to change")
    return ProfileChange(name=body.name, description=body.description,
                         avatar=avatar_fields(body.avatar) if body.avatar else None)


def owner_key(owner: str, sealer: Sealer) -> str:
    """The blind index accounts are listed by: given as is, or from an ID number or USCC."""
    if re.fullmatch(r"[0-9a-f]{32}", owner):
        return owner
    return sealer.blind("id_number", owner.replace(" ", ""))


def application(body: RegisterAccount, sealer: Sealer) -> Application:
    """The registration as the handler takes it: numbers checked, personal data sealed and
    blind-indexed (ADR 0008), the contract's parts built once; a problem (422) names the
    field that failed."""
    i, org = body.identity, body.entity_type != "natural_person"
    try:
        number = ids.social_credit_code(i.id_number) if org else ids.resident_id(i.id_number)
    except ids.IdentityNumberError as exc:
        raise _identity_problem(exc, "identity.id_number") from None
    try:
        phone = ids.mobile_number(i.phone)
    except ids.IdentityNumberError as exc:
        raise _identity_problem(exc, "identity.phone") from None
    rep_id = None
    if i.representative_id_number:
        try:
            rep_id = ids.resident_id(i.representative_id_number)
        except ids.IdentityNumberError as exc:
            raise _identity_problem(exc, "identity.representative_id_number") from None
    for field, code in (("province", body.province),
                        ("operations_province", body.operations_province)):
        try:
            ids.province(code)
        except ids.IdentityNumberError as exc:
            raise _identity_problem(exc, field) from None
    sealed = seal_identity(
        sealer, organization=org, number=number, name=i.name, phone=phone,
        representative_name=i.representative_name, representative_id=rep_id)
    p = body.profile
    return Application(
        entity_type=body.entity_type, category=body.category, identity=sealed,
        profile=Profile(name=p.name, description=p.description, **avatar_fields(p.avatar)),
        province=body.province, operations_province=body.operations_province,
        contact_sealed=sealer.seal(body.contact, subject=sealed.id_number_blind),
        contact_masked=_mask_contact(body.contact),
        contact_public=body.contact_public and body.entity_type != "natural_person",
        agreement_version=body.agreement_version,
        organization=(Organization(**body.organization.model_dump())
                      if body.organization else None),
        has_representative=bool(i.representative_name and rep_id),
        device_blind=(sealer.blind("device", body.device_fingerprint)
                      if body.device_fingerprint else None),
        network_blind=sealer.blind("network", body.network) if body.network else None)


def _mask_contact(contact: str) -> str:
    return mask_phone(contact) if re.fullmatch(r"[+\d\s-]{7,}", contact) else mask_name(contact)
