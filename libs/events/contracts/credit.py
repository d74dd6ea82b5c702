"""Events published by the credit service (topic ``credit.events``).

Defined ahead of the credit service's own issue so that registration can react to them;
that issue produces them (and may add fields only through a new schema version).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from ..registry import EventRegistry
from ._common import AccountDecision

registry = EventRegistry()

# A is the best level; interactive capabilities are allowed by level (A13.1).
CreditLevel = Literal["A", "B", "C", "D", "E"]


@registry.contract
class CreditLevelChanged(AccountDecision):
    """An account's credit level moved (A13.1, A7.2)."""

    event_type: ClassVar[str] = "credit.CreditLevelChanged"
    level: CreditLevel
    previous_level: CreditLevel | None = None
    score: int
    reasons: list[str]
