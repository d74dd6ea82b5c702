"""The role matrix: which roles each route of each service admits, read from the apps'
route tables (the ``roles`` a :func:`libs.runtime.auth.require` or
:func:`libs.runtime.scope.read_scope` dependency exposes), never written by hand.

``python -m ops.rolematrix`` prints it for the five services as the Markdown table in the
README; a test keeps the two equal.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

try:  # FastAPI >= 0.16x keeps included routers as branches, resolved per request
    from fastapi.routing import iter_route_contexts
except ImportError:  # pragma: no cover - older FastAPI: app.routes is already flat
    iter_route_contexts = None

from .auth import ROLES

ROLE_ORDER = ("platform", "operator", "reviewer", "regulator")
assert set(ROLE_ORDER) == ROLES


@dataclass(frozen=True)
class RouteAccess:
    """One route: ``roles`` None when it needs no token (public); ``scoped`` when its reads
    are limited to a regulator's province (:mod:`libs.runtime.scope`)."""

    service: str
    method: str
    path: str
    roles: frozenset[str] | None
    scoped: bool

    @property
    def public(self) -> bool:
        return self.roles is None


def _guards(dependant: Dependant) -> Iterator[object]:
    for sub in dependant.dependencies:
        if hasattr(sub.call, "roles"):
            yield sub.call
        yield from _guards(sub)


def api_routes(app: FastAPI) -> list[tuple[str, APIRoute]]:
    """Every API route of ``app`` with its full path, routers included."""
    if iter_route_contexts is None:
        return [(r.path, r) for r in app.routes if isinstance(r, APIRoute)]
    return [(c.path, c.original_route) for c in iter_route_contexts(app.routes)
            if isinstance(c.original_route, APIRoute)]


def access_of(service: str, path: str, route: APIRoute) -> list[RouteAccess]:
    """The route's access, one entry per method."""
    guards = list(_guards(route.dependant))
    roles: frozenset[str] | None = None
    for g in guards:  # nested guards (a scope around a require) admit the intersection
        roles = g.roles if roles is None else roles & g.roles  # type: ignore[attr-defined]
    scoped = any(getattr(g, "scoped", False) for g in guards)
    return [RouteAccess(service, m, path, roles, scoped)
            for m in sorted(route.methods or ())]


def matrix(apps: Mapping[str, FastAPI]) -> list[RouteAccess]:
    """Every route of every app, by service (in the order given), path and method."""
    rows: list[RouteAccess] = []
    for service, app in apps.items():
        found = [a for path, r in api_routes(app) for a in access_of(service, path, r)]
        rows += sorted(found, key=lambda a: (a.path, a.method))
    return rows


def _cell(a: RouteAccess, role: str) -> str:
    if a.public:
        return "public"
    if role not in a.roles:  # type: ignore[operator]
        return "—"
    return "own province" if role == "regulator" and a.scoped else "yes"


def markdown(rows: list[RouteAccess]) -> str:
    """The matrix as a Markdown table (``—``: 403; ``public``: no token needed)."""
    head = ["service", "method", "path", *ROLE_ORDER]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for a in rows:
        cells = [a.service, a.method, f"`{a.path}`", *(_cell(a, r) for r in ROLE_ORDER)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
