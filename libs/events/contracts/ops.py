"""Events the operations tool (``acctctl``) records in a service's own store.

Stream: ``ops-<service>``; the subject is what the action was about (a dead letter's
account, a projection's name). Nothing consumes them: they are the audit trail of what
an operator did to a running service (docs/decisions/0016-operations-tool.md).
"""

from __future__ import annotations

from typing import ClassVar

from ..registry import EventPayload, EventRegistry

registry = EventRegistry()


class OperatorAction(EventPayload):
    operator: str  # who ran the command (token subject, or the OS user)
    reason: str = ""


@registry.contract
class DeadLetterRetried(OperatorAction):
    """A dead letter was handed back to its consumer's handler (kernel ``redrive``)."""

    event_type: ClassVar[str] = "ops.DeadLetterRetried"
    consumer: str
    dead_letter_id: int
    event_id: str | None = None
    event_type_retried: str | None = None
    succeeded: bool
    error: str | None = None


@registry.contract
class DeadLetterSkipped(OperatorAction):
    """A dead letter was set aside without handling it; ``reason`` says why."""

    event_type: ClassVar[str] = "ops.DeadLetterSkipped"
    consumer: str
    dead_letter_id: int
    event_id: str | None = None


@registry.contract
class ProjectionSwapped(OperatorAction):
    """A projection rebuilt in a shadow replaced the live one (kept as ``old_name``)."""

    event_type: ClassVar[str] = "ops.ProjectionSwapped"
    projection: str
    old_name: str
    checkpoint: str
    documents: int
    content_hash: str


@registry.contract
class PersonalDataRevealed(OperatorAction):
    """An operator displayed sealed personal data of an account (``acctctl --reveal``)."""

    event_type: ClassVar[str] = "ops.PersonalDataRevealed"
    account_id: str
    fields: list[str]
