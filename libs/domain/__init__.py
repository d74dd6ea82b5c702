"""libs.domain — what every service's pure domain shares: the family of domain errors.

A domain refuses a command by raising one of these. It names a stable ``code``
(docs/problems.md), says why in ``detail`` and cites the obligation it enforces
(``legal_basis``, ids from OBLIGATIONS.md); it knows nothing of HTTP. The API edge
(:mod:`libs.runtime.problems`) maps each kind to a problem document and its status;
event policies log and skip the refusals that say an event no longer applies.
"""

from .errors import (
    ConflictError,
    DomainError,
    ForbiddenError,
    IllegalTransitionError,
    InvalidCommandError,
    NotFoundError,
    RateLimitedError,
)
from .values import CHARACTER_ERRORS, Base64, Line, Name, Text, as_datetime

__all__ = [
    "ConflictError",
    "DomainError",
    "ForbiddenError",
    "IllegalTransitionError",
    "InvalidCommandError",
    "NotFoundError",
    "RateLimitedError",
    "as_datetime",
    "Base64",
    "CHARACTER_ERRORS",
    "Line",
    "Name",
    "Text",
]
