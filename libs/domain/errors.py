"""Domain errors: one family, one signature, no HTTP.

``kind`` says what sort of refusal it is; the API edge turns kinds into statuses
(``invalid`` 422, ``conflict`` 409, ``not_found`` 404, ``forbidden`` 403,
``rate_limited`` 429), so the domain never chooses a status code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar


class DomainError(Exception):
    """A command the rules refuse: a stable ``code``, a ``detail`` for people, the
    obligations it enforces (``legal_basis``) and any facts worth returning (``extra``)."""

    kind: ClassVar[str] = "invalid"
    code: str = "domain-error"
    title: str | None = None  # a short human summary; by default derived from the code

    def __init__(self, detail: str, *, code: str | None = None,
                 legal_basis: Sequence[str] = (), title: str | None = None,
                 **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code or type(self).code
        self.title = title or type(self).title
        self.legal_basis = list(legal_basis)
        self.extra = extra

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, {self.detail!r})"


class InvalidCommandError(DomainError):
    """The command contradicts the rules whatever the state (a category an entity type
    may not use, an outdated agreement version...)."""

    kind = "invalid"


class ConflictError(DomainError):
    """The command contradicts the current state (already decided, a limit reached...)."""

    kind = "conflict"


class IllegalTransitionError(ConflictError):
    """The aggregate is in a state from which this command is not allowed."""

    code = "illegal-transition"


class NotFoundError(DomainError):
    kind = "not_found"
    code = "not-found"


class ForbiddenError(DomainError):
    """The command is refused for who or what is behind it (a banned identity...)."""

    kind = "forbidden"


class RateLimitedError(DomainError):
    """Too many attempts within a window (A10.3 velocity)."""

    kind = "rate_limited"
