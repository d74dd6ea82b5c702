"""Events published by the enforcement service (topic ``enforcement.events``).

Defined ahead of the enforcement service's own issue so that registration can apply
measures (A19.2); that issue produces them.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from ..registry import EventRegistry
from ._common import AccountDecision, Capability

registry = EventRegistry()

Measure = Literal[
    "warning", "function_limit", "suspend_updates", "stop_ads", "closure", "blacklist",
    "reregistration_ban",
]
BanSeverity = Literal["minor", "serious", "grave", "permanent"]


@registry.contract
class MeasureApplied(AccountDecision):
    """A graded measure against an account (A19.2), with its legal basis and evidence."""

    event_type: ClassVar[str] = "enforcement.MeasureApplied"
    measure_id: str
    measure: Measure
    capabilities: list[Capability] = []  # the functions limited, for function_limit
    starts_at: datetime
    ends_at: datetime | None = None  # None: until lifted (or permanent)
    ban_severity: BanSeverity | None = None  # closure, blacklist, reregistration_ban
    ban_until: datetime | None = None  # None with a severity of "permanent"
    violation_id: str | None = None
    category: int | None = None  # Art. 18 category 1-10
    policy_version: str


@registry.contract
class MeasureLifted(AccountDecision):
    """A measure ends early: an upheld appeal (A20.2) or an operator's decision."""

    event_type: ClassVar[str] = "enforcement.MeasureLifted"
    measure_id: str
    reason: str
