"""Registration rules as data and pure decisions (part of the domain; no I/O).

- the category taxonomy, content field x entity type (A7.1, A2);
- account limits per identity and phone, with an extra-verification threshold (A10.1);
- velocity and batch detection over identity, phone, device and network (A10.3);
- re-registration bans graded by severity (A8.3, A19.2) and similar closed names (A8.3);
- the functions each credit level allows (A13.1).

Refusals raise :mod:`libs.domain` errors; a registration the rules refuse is a
:class:`~.domain.Verdict` instead, since the refusal is recorded as an event too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from libs.domain import ConflictError, ForbiddenError, InvalidCommandError

from .domain import Verdict

NATURAL, LEGAL, UNINCORPORATED = "natural_person", "legal_person", "unincorporated_organization"
ENTITY_TYPES = (NATURAL, LEGAL, UNINCORPORATED)
ORGANIZATIONS = frozenset({LEGAL, UNINCORPORATED})
_ALL = frozenset(ENTITY_TYPES)

# A7.1: content fields and who may register in them. News and government affairs are
# for organizations only (news needs a permit, A5; government affairs a public body).
CATEGORIES: dict[str, frozenset[str]] = {
    "news": ORGANIZATIONS,
    "government_affairs": frozenset({LEGAL}),
    "economics": _ALL, "education": _ALL, "health": _ALL, "justice": _ALL,
    "culture": _ALL, "entertainment": _ALL, "technology": _ALL, "sports": _ALL,
    "lifestyle": _ALL, "travel": _ALL, "food": _ALL, "parenting": _ALL, "games": _ALL,
    "automotive": _ALL, "fashion": _ALL, "other": _ALL,
}
# A9.1: fields the verification service does not activate without approved qualifications.
PROFESSIONAL = frozenset({"economics", "education", "health", "justice"})

# A13.1: functions withheld by credit level (A is the best).
CREDIT_WITHHELD: dict[str, frozenset[str]] = {
    "A": frozenset(),
    "B": frozenset(),
    "C": frozenset({"advertise", "follow_recommendation", "live_stream"}),
    "D": frozenset({"advertise", "follow_recommendation", "live_stream", "comment", "message",
                    "tipping", "paid_content", "ecommerce"}),
    "E": frozenset({"advertise", "follow_recommendation", "live_stream", "comment", "message",
                    "tipping", "paid_content", "ecommerce"}),
}
# A9.1, A5: what an account may not do while its field's qualification or its news permit
# has lapsed: provide the content that needs it (the account itself stays, interactive
# functions too, so its operator can still answer followers while renewing).
QUALIFICATION_LAPSED_WITHHELD = ("live_stream", "paid_content", "publish")
# A19.2: capabilities a "stop ads" measure withholds.
STOP_ADS = ("advertise", "ecommerce")

# A8.3 / A19.2: how long a ban lasts by severity (None: permanent).
BAN_DAYS: dict[str, int | None] = {"minor": 180, "serious": 365, "grave": 3 * 365,
                                   "permanent": None}


@dataclass(frozen=True)
class Limit:
    """Accounts per identity: from ``threshold`` on, extra verification; at ``limit``, no more."""

    threshold: int
    limit: int


@dataclass(frozen=True)
class Velocity:
    """Registrations sharing one key within ``window_seconds``: the ``hold_after``-th and
    later are held for review, the ``refuse_after``-th and later refused."""

    window_seconds: int
    hold_after: int
    refuse_after: int


@dataclass(frozen=True)
class Policy:
    # A10.1, per entity type, and per category where a field needs more (the README gives
    # the reason for each default): a public body runs accounts for its departments, a
    # news organization for its editions and columns.
    limits: Mapping[str, Limit] = field(default_factory=lambda: {
        NATURAL: Limit(threshold=1, limit=2), LEGAL: Limit(2, 5), UNINCORPORATED: Limit(2, 5)})
    category_limits: Mapping[str, Limit] = field(default_factory=lambda: {
        "government_affairs": Limit(threshold=10, limit=50), "news": Limit(5, 20)})
    phone_limit: int = 5
    velocity: Mapping[str, Velocity] = field(default_factory=lambda: {
        "identity": Velocity(600, 4, 8), "phone": Velocity(600, 4, 8),
        "device": Velocity(600, 4, 12), "network": Velocity(600, 6, 30)})
    similar_refuse: float = 0.95  # exact and normalised matches of a closed name
    similar_hold: float = 0.85  # pinyin and fuzzy matches: a reviewer decides
    inactivity_months: int = 6
    correction_days: int = 15
    closure_ban_severity: str = "serious"  # A8.3: the ban of a closure that names none


class KeyState(NamedTuple):
    """A look-up key (identity, phone, device, network) as the write side holds it,
    *after* this attempt was counted."""

    key: str
    kind: str
    accounts: int  # accounts registered under the key, this one included if counted
    attempts: int  # attempts in the current velocity window, this one included
    banned_until: float | None = None  # epoch seconds
    ban_permanent: bool = False


class Match(NamedTuple):
    id: str
    name: str
    kind: str
    score: float


def validate_application(*, entity_type: str, category: str, has_organization: bool,
                         has_representative: bool, agreement_version: str,
                         current_agreement: str) -> None:
    """The application's own consistency (A2, A6, A7.1, Art. 15)."""
    if category not in CATEGORIES:
        raise InvalidCommandError(f"{category!r} is not in the category taxonomy",
                                  code="unknown-category", categories=sorted(CATEGORIES))
    if entity_type not in CATEGORIES[category]:
        raise InvalidCommandError(
            f"a {entity_type.replace('_', ' ')} cannot register in {category!r}",
            code="category-not-allowed-for-entity-type")
    if entity_type in ORGANIZATIONS and not (has_organization and has_representative):
        raise InvalidCommandError("organizations must give business name, registered address, "
                                  "primary business, business scope and their legal "
                                  "representative", code="organization-required")
    if entity_type == NATURAL and has_organization:
        raise InvalidCommandError("a natural person registers without organization details",
                                  code="organization-not-allowed")
    require_current_agreement(agreement_version, current_agreement)


def require_current_agreement(version: str, current: str) -> None:
    """A6: only the platform's current agreement may be accepted."""
    if version != current:
        raise InvalidCommandError(f"accept the current platform agreement {current!r}",
                                  code="agreement-version-outdated", current_version=current)


def check_bans(keys: Sequence[KeyState], now: float) -> None:
    """A8.3: a banned identity, USCC or phone may not register while its ban lasts."""
    for k in keys:
        if k.kind in ("identity", "phone") and (
                k.ban_permanent or (k.banned_until is not None and k.banned_until > now)):
            until = None if k.ban_permanent else datetime.fromtimestamp(
                k.banned_until, tz=UTC).isoformat()
            raise ForbiddenError(
                f"the {k.kind} behind this registration is banned from registering "
                f"{'permanently' if until is None else 'until ' + until}",
                code="registration-banned", legal_basis=["A8.3", "A19.2"], until=until)


def limit_for(policy: Policy, entity_type: str, category: str) -> tuple[Limit, str]:
    """A10.1: the limit a registration in ``category`` meets, and whose it is: the
    category's where it has one, else the entity type's."""
    if category in policy.category_limits:
        return policy.category_limits[category], f"in {category!r}"
    return policy.limits[entity_type], f"for a {entity_type.replace('_', ' ')}"


def decide_registration(*, entity_type: str, keys: Sequence[KeyState],
                        matches: Sequence[Match], policy: Policy, category: str = ""
                        ) -> Verdict:
    """Accept, hold or refuse a registration; bans are checked first (:func:`check_bans`).

    ``accounts`` on the identity's key counts the accounts the person really holds
    (README, "What counts against the limit"), this registration included."""
    by_kind = {k.kind: k for k in keys}
    limit, whose = limit_for(policy, entity_type, category)
    identity = by_kind["identity"]
    phone = by_kind["phone"]
    before = identity.accounts - 1  # the accounts this identity already had
    if before >= limit.limit:
        return Verdict("refuse", "account-limit-reached", "conflict", (
            f"the identity already has {before} account(s); the limit {whose} is "
            f"{limit.limit}",), ("A10.1",))
    if phone.accounts - 1 >= policy.phone_limit:
        return Verdict("refuse", "account-limit-reached", "conflict", (
            f"the phone number already has {phone.accounts - 1} account(s); the limit is "
            f"{policy.phone_limit}",), ("A10.1",))
    holds: list[str] = []
    for k in keys:
        rule = policy.velocity.get(k.kind)
        if rule is None:
            continue
        if k.attempts >= rule.refuse_after:
            return Verdict("refuse", "velocity-limit", "rate_limited", (
                f"{k.attempts} registrations from one {k.kind} within "
                f"{rule.window_seconds // 60} minutes",), ("A10.3",))
        if k.attempts >= rule.hold_after:
            holds.append(f"{k.attempts} registrations from one {k.kind} within "
                         f"{rule.window_seconds // 60} minutes")
    findings: list[dict] = []
    for m in matches:
        if m.score >= policy.similar_refuse and m.kind in ("exact", "normalised"):
            return Verdict("refuse", "similar-to-closed-account", "conflict", (
                f"the name is the same as closed account {m.id}'s",), ("A8.3",),
                findings=(_finding(m),))
        if m.score >= policy.similar_hold:
            findings.append(_finding(m))
    if findings:
        holds.append("the name is similar to a closed account's name")
    extra: tuple[str, ...] = ()
    if before >= limit.threshold:
        extra = (f"the identity already has {before} account(s) (threshold "
                 f"{limit.threshold})",)
    basis = ("A10.3",) if holds and not findings else ("A10.3", "A8.3") if holds else ()
    return Verdict("hold" if holds else "accept", reasons=tuple(holds),
                    legal_basis=basis, extra_verification=extra, identity_accounts=before,
                    threshold=limit.threshold, findings=tuple(findings))


def refuse_same_name(matches: Sequence[Match], policy: Policy) -> None:
    """A8.3: a new name may not be the same (normalised) as a closed account's; a merely
    similar one is for verification's checks, as at registration."""
    for m in matches:
        if m.score >= policy.similar_refuse and m.kind in ("exact", "normalised"):
            raise ConflictError(f"the name is the same as closed account {m.id}'s",
                                code="similar-to-closed-account", legal_basis=["A8.3"],
                                title="Similar to a closed account")


def _finding(m: Match) -> dict:
    return {"field": "profile.name", "code": f"similar-to-closed-account:{m.kind}",
            "detail": f"close to the name of closed account {m.id}", "matched": m.name,
            "score": round(m.score, 3)}


def ban_until(severity: str, start: datetime, given: datetime | None) -> datetime | None:
    """The end of a ban: the measure's own date if it gives one, else by severity."""
    if severity == "permanent":
        return None
    if given is not None:
        return given
    days = BAN_DAYS.get(severity, BAN_DAYS["serious"])
    return None if days is None else start + timedelta(days=days)


# A19.2: what a function limit withholds when the measure names no capabilities.
CAPABILITIES_LIMITED_BY_DEFAULT = ("comment", "message", "live_stream", "follow_recommendation")
