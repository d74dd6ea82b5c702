"""Events published by the transfer service (topic ``transfer.events``).

Defined ahead of the transfer service's own issue so that registration can react to
them (A11.2); that issue produces them.
"""

from __future__ import annotations

from typing import ClassVar

from ..registry import EventRegistry
from ._common import AccountDecision, SealedIdentity

registry = EventRegistry()


@registry.contract
class TransferCompleted(AccountDecision):
    """An applied-for transfer was approved: the account has a new, verified owner (A11.2)."""

    event_type: ClassVar[str] = "transfer.TransferCompleted"
    transfer_id: str
    new_owner: SealedIdentity


@registry.contract
class UnappliedTransferDetected(AccountDecision):
    """Signs that the account changed hands without an application: suspend it (A11.2)."""

    event_type: ClassVar[str] = "transfer.UnappliedTransferDetected"
    evidence: list[str]
