"""Bearer JWT authentication with the platform's roles.

Roles: ``platform`` (a content platform's backend), ``operator`` (trust and safety),
``reviewer`` (qualification and complaint review), ``regulator`` (with a ``province``
claim; Art. 3: a provincial office sees only its province). A token with the regulator
role must name a GB/T 2260 province-level code, or ``000000`` for the national office;
without one it is refused at decoding (docs/decisions/0031-regulator-scope.md). Tokens
are HS256, signed with ``AUTH_SECRET``; in development
``python -m libs.runtime.auth --role platform`` prints one.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import jwt
from fastapi import Request
from fastapi.security import HTTPBearer

from libs.identity import PROVINCES

from .problems import ProblemError

ROLES = frozenset({"platform", "operator", "reviewer", "regulator"})
ISSUER = "public-accounts"
ALGORITHM = "HS256"
# The ``province`` claim of the national office's regulators (Art. 3): every province.
NATIONAL = "000000"


def regulator_province_valid(code: object) -> bool:
    """A regulator's ``province`` claim: a GB/T 2260 province-level code or :data:`NATIONAL`."""
    return isinstance(code, str) and (code == NATIONAL or code in PROVINCES)


class Principal(NamedTuple):
    subject: str
    roles: frozenset[str]
    province: str | None = None

    def has(self, *roles: str) -> bool:
        return bool(self.roles & set(roles))


class AuthError(ProblemError):
    status = 401
    code = "unauthenticated"
    title = "Authentication required"


class ForbiddenError(ProblemError):
    status = 403
    code = "forbidden"
    title = "Not allowed"


def issue_token(secret: str, *, subject: str, roles: list[str], province: str | None = None,
                ttl: timedelta = timedelta(hours=12)) -> str:
    """A signed token for ``subject`` with ``roles`` (and a regulator's ``province``)."""
    unknown = set(roles) - ROLES
    if unknown:
        raise ValueError(f"unknown role(s): {sorted(unknown)}")
    if "regulator" in roles and not regulator_province_valid(province):
        raise ValueError(f"a regulator's token needs a province-level code or {NATIONAL}, "
                         f"not {province!r}")
    now = datetime.now(UTC)
    claims = {"sub": subject, "roles": roles, "iss": ISSUER, "iat": now, "exp": now + ttl}
    if province:
        claims["province"] = province
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def decode_token(secret: str, token: str) -> Principal:
    """The token's principal; a token seen recently is not verified again before its expiry."""
    now = time.time()
    hit = _recent.get((secret, token))
    if hit is not None and hit[1] > now:
        return hit[0]
    principal, expires = _decode(secret, token)
    if len(_recent) >= _RECENT_MAX:
        _recent.clear()  # crude but bounded; a platform backend reuses a handful of tokens
    _recent[(secret, token)] = (principal, expires)
    return principal


# Verifying an HS256 token costs more than the rest of a small request's auth; the backend
# that calls us sends the same token for hours, so its verified claims are kept until exp.
_RECENT_MAX = 1024
_recent: dict[tuple[str, str], tuple[Principal, float]] = {}


def _decode(secret: str, token: str) -> tuple[Principal, float]:
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], issuer=ISSUER,
                            options={"require": ["sub", "exp", "iss"]})
    except jwt.PyJWTError as exc:
        raise AuthError(f"the bearer token is not valid: {exc}") from None
    roles = frozenset(r for r in claims.get("roles", []) if r in ROLES)
    province = claims.get("province")
    # Scoping is decided by the regulator role alone (with any other role too), so a
    # regulator that names no province could otherwise only be read as "every province".
    if "regulator" in roles and not regulator_province_valid(province):
        raise AuthError(f"a regulator's token must carry a GB/T 2260 province-level code "
                        f"(e.g. 440000) or {NATIONAL} for the national office in its "
                        f"'province' claim, not {province!r}", code="regulator-province-invalid")
    return Principal(claims["sub"], roles, province), float(claims["exp"])


BEARER_DESCRIPTION = ("A token from `python -m libs.runtime.auth --role ROLE` (development), "
                      "HS256-signed with AUTH_SECRET.")


def bearer_token(authorization: str) -> str:
    """The token of an ``Authorization: Bearer <token>`` header's value (401 without one)."""
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthError("send 'Authorization: Bearer <token>'")
    return token


def principal_of(request: Request) -> Principal:
    """The principal of the request's ``Authorization: Bearer`` token (401 without one)."""
    token = bearer_token(request.headers.get("authorization") or "")  # 401 first
    return decode_token(request.app.state.runtime.settings.auth_secret, token)


class Admit(HTTPBearer):
    """The dependency of a route behind the bearer scheme: the principal of the request's
    token, if it holds one of ``roles`` (401 without a valid token, 403 without a role).

    It is the scheme itself (an ``HTTPBearer``), so the OpenAPI puts the lock on the route
    and Swagger UI's Authorize button fills the header, and it is one dependency where a
    check over a principal over the scheme would be three for FastAPI to solve on every
    request. ``auto_error=False``: a missing or malformed header is answered by
    :class:`AuthError`, a 401 problem document, never by FastAPI's own ``{"detail": ...}``.
    ``roles`` is read by :class:`libs.runtime.limits.RequestGuard` (401/403 before the
    body) and by the role matrix (:mod:`libs.runtime.rolematrix`)."""

    def __init__(self, roles: frozenset[str]) -> None:
        unknown = roles - ROLES
        if unknown:
            raise ValueError(f"unknown role(s): {sorted(unknown)}")
        super().__init__(scheme_name="bearer", bearerFormat="JWT", auto_error=False,
                         description=BEARER_DESCRIPTION)
        self.roles = roles

    def admitted(self, request: Request) -> Principal:
        principal = principal_of(request)
        if not principal.has(*self.roles):
            raise ForbiddenError(f"this needs one of the roles {sorted(self.roles)}")
        return principal

    async def __call__(self, request: Request) -> Principal:  # type: ignore[override]
        return self.admitted(request)


def require(*roles: str) -> Admit:
    """A dependency admitting a principal with any of ``roles`` (:class:`Admit`)."""
    return Admit(frozenset(roles))


def main(argv: list[str] | None = None) -> None:
    from .settings import DEV_AUTH_SECRET

    p = argparse.ArgumentParser(prog="python -m libs.runtime.auth",
                                description="Print a bearer token (development secret "
                                            "unless AUTH_SECRET is set).")
    p.add_argument("--role", action="append", required=True, choices=sorted(ROLES))
    p.add_argument("--sub", default="dev")
    p.add_argument("--province", default=None, help="regulator's province code, e.g. 440000")
    args = p.parse_args(argv)
    import os

    print(issue_token(os.environ.get("AUTH_SECRET", DEV_AUTH_SECRET), subject=args.sub,
                      roles=args.role, province=args.province))


if __name__ == "__main__":
    main()
