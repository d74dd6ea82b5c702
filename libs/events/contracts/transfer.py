"""Events published by the transfer service (topic ``transfer.events``).

Defined ahead of the transfer service's own issue so that registration can react to
them (A11.2); that issue produces them.
"""

from __future__ import annotations

from typing import ClassVar

from ..registry import EventPayload, EventRegistry
from ._common import SealedIdentity

registry = EventRegistry()


@registry.contract
class TransferCompleted(EventPayload):
    """An applied-for transfer was approved: the account has a new, verified owner (A11.2)."""

    event_type: ClassVar[str] = "transfer.TransferCompleted"
    transfer_id: str
    account_id: str
    new_owner: SealedIdentity
    legal_basis: list[str]
    evidence_event_ids: list[str] = []


@registry.contract
class UnappliedTransferDetected(EventPayload):
    """Signs that the account changed hands without an application: suspend it (A11.2)."""

    event_type: ClassVar[str] = "transfer.UnappliedTransferDetected"
    account_id: str
    evidence: list[str]
    legal_basis: list[str]
    evidence_event_ids: list[str] = []
