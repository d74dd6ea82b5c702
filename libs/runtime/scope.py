"""Who sees what (A3): the one scoping dependency of every read route of every service.

A principal with the ``regulator`` role (whatever other roles it holds) reads only the
records of the province its token names; the national office (province ``000000``) and
the staff roles read every province. Routes take a :class:`ReadScope` from
:func:`read_scope` instead of a bare principal and ask it:

- :meth:`ReadScope.province_filter` for a list: the province to filter by (a regulator's
  own), 403 ``province-out-of-scope`` when a regulator asks for another one;
- :meth:`ReadScope.check` for a get or a history: 404 when the record lies in another
  province, as for a record that does not exist (its existence is not disclosed);
- :meth:`ReadScope.admits` to filter what a handler gathered.

docs/decisions/0031-regulator-scope.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from libs.domain import ForbiddenError, NotFoundError

from .auth import NATIONAL, Admit, Principal


@dataclass(frozen=True, slots=True)
class ReadScope:
    """The principal of a read and the province it is limited to (``None``: every one)."""

    principal: Principal

    @property
    def subject(self) -> str:
        return self.principal.subject

    @property
    def regulator(self) -> bool:
        return self.principal.has("regulator")

    @property
    def province(self) -> str | None:
        """The only province this reader may see; ``None`` for staff and the national office."""
        if not self.regulator or self.principal.province == NATIONAL:
            return None
        return self.principal.province

    def has(self, *roles: str) -> bool:
        return self.principal.has(*roles)

    def admits(self, province: str | None) -> bool:
        """Whether a record of ``province`` (``None``: not known) is visible to this reader."""
        return self.province is None or province == self.province

    def province_filter(self, requested: str | None) -> str | None:
        """The province a list is limited to: the one asked for, or the regulator's own."""
        return province_filter(self.province, requested)

    def check(self, province: str | None, what: str, *, code: str = "not-found") -> None:
        """404 (``code``) for a record (``what``, e.g. ``account a-1``) outside this reader's
        province: answered as for a record that does not exist."""
        if not self.admits(province):
            raise NotFoundError(f"no {what}", code=code)


def province_filter(own: str | None, requested: str | None) -> str | None:
    """The province a list is limited to, for a reader limited to ``own`` (``None``: staff
    and the national office, who see every province): the one asked for, or ``own``; a
    regulator asking for another province is refused (403 ``province-out-of-scope``, A3)."""
    if own is None:
        return requested
    if requested and requested != own:
        raise ForbiddenError(f"a regulator of {own} cannot see {requested}",
                             code="province-out-of-scope", legal_basis=["A3"],
                             title="Province out of scope")
    return own


class AdmitReader(Admit):
    """:class:`libs.runtime.auth.Admit` giving a read's :class:`ReadScope`; ``scoped`` tells
    the role matrix that the route's reads are limited to a regulator's province."""

    scoped = True

    async def __call__(self, request: Request) -> ReadScope:  # type: ignore[override]
        return ReadScope(self.admitted(request))


def read_scope(*roles: str) -> AdmitReader:
    """A dependency admitting ``roles`` (as :func:`libs.runtime.auth.require`) and giving the
    read's :class:`ReadScope`."""
    return AdmitReader(frozenset(roles))
