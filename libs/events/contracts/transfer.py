"""Events published by the transfer service (topic ``transfer.events``).

Defined ahead of the transfer service's own issue so that registration can react to
them (A11.2); that issue produces them.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from ..registry import EventRegistry
from ._common import AccountDecision, EntityType, SealedIdentity
from .registration import Organization

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


# -- the application workflow (A11.2, A17.3) ------------------------------------------------
# Stream ``transfer-<transfer id>`` (subject: the transfer id). ``kind`` says whether the
# account changes hands (``transfer``) or gains an operator (``co_operator``,
# ``third_party``: a privilege grant, A17.3); the same path serves both.
TransferKind = Literal["transfer", "co_operator", "third_party"]
Party = Literal["transferor", "transferee"]


@registry.contract
class TransferRequested(AccountDecision):
    """The current operator applied to hand the account (or a use privilege) to a
    transferee, who is verified like a registrant (A11.2): sealed as at registration."""

    event_type: ClassVar[str] = "transfer.TransferRequested"
    transfer_id: str
    kind: TransferKind = "transfer"
    transferee: SealedIdentity
    transferee_entity_type: EntityType
    transferee_organization: Organization | None = None
    transferee_contact_sealed: str
    transferee_contact_masked: str
    requested_by: str
    reason: str = ""
    deadline: datetime


@registry.contract
class TransferRejected(AccountDecision):
    """The application is refused, with its reasons (A11.1 rules, A11.2 verification)."""

    event_type: ClassVar[str] = "transfer.TransferRejected"
    transfer_id: str
    kind: TransferKind = "transfer"
    reasons: list[str]
    detail: str


@registry.contract
class TransfereeApproved(AccountDecision):
    """Verification verified the transferee: the application waits for both parties."""

    event_type: ClassVar[str] = "transfer.TransfereeApproved"
    transfer_id: str
    level: str | None = None


@registry.contract
class TransferConfirmed(AccountDecision):
    """One party accepted the transfer or grant (A11.2, A17.3: both parties review)."""

    event_type: ClassVar[str] = "transfer.TransferConfirmed"
    transfer_id: str
    party: Party
    by: str
    at: datetime


@registry.contract
class FollowersNotified(AccountDecision):
    """The account's followers are told of the pending change and may opt out until
    ``opt_out_until`` (the platform delivers the notice)."""

    event_type: ClassVar[str] = "transfer.FollowersNotified"
    transfer_id: str
    opt_out_until: datetime


@registry.contract
class FollowerOptedOut(AccountDecision):
    """A follower chose not to follow the account once it changes hands."""

    event_type: ClassVar[str] = "transfer.FollowerOptedOut"
    transfer_id: str
    follower_id: str


@registry.contract
class FollowerOptOutsApplied(AccountDecision):
    """The followers' opt-out period closed and the transfer completed: these followers
    opted out, and the platform unfollows them as the account changes hands (A11.2).
    Published with ``TransferCompleted`` (whose contract registration consumes, unchanged)."""

    event_type: ClassVar[str] = "transfer.FollowerOptOutsApplied"
    transfer_id: str
    follower_ids: list[str]
    opted_out: int
    opt_out_until: datetime


@registry.contract
class TransferWithdrawn(AccountDecision):
    event_type: ClassVar[str] = "transfer.TransferWithdrawn"
    transfer_id: str
    by: str
    reason: str = ""


@registry.contract
class TransferExpired(AccountDecision):
    """Not confirmed by both parties (or not verified) before its deadline."""

    event_type: ClassVar[str] = "transfer.TransferExpired"
    transfer_id: str
    deadline: datetime
    missing: list[str]


@registry.contract
class TransferAnnounced(AccountDecision):
    """The public change notice of a completed transfer (A11.2): date, previous and new
    entity kind and name as disclosure allows (an organization's name in full, a person's
    masked). Violations, measures and credit stay with the account (keyed by its id);
    ad revenue pauses until ``ad_revenue_paused_until``. Verification shows it."""

    event_type: ClassVar[str] = "transfer.TransferAnnounced"
    transfer_id: str
    changed_at: datetime
    previous_entity_type: str | None = None
    previous_name: str | None = None
    new_entity_type: EntityType
    new_name: str
    new_owner: SealedIdentity
    new_organization: Organization | None = None
    ad_revenue_paused_until: datetime
    history_retained: list[str] = ["violations", "measures", "credit"]


@registry.contract
class SuspectedAccountTrading(AccountDecision):
    """Repeated transfers among a group of identities: possible account trading (A11.1),
    for enforcement to examine under Art. 18(8)."""

    event_type: ClassVar[str] = "transfer.SuspectedAccountTrading"
    transfer_id: str
    article: str = "Art. 18(8)"
    identity_blinds: list[str]
    account_ids: list[str]
    transfers_in_window: int
    window_days: int
    round_trip: bool = False


@registry.contract
class OperatorGranted(AccountDecision):
    """A co-operator or third-party operator was granted use of the account after both
    parties accepted (A11.2, A17.3)."""

    event_type: ClassVar[str] = "transfer.OperatorGranted"
    transfer_id: str
    kind: TransferKind
    grantee: SealedIdentity
    grantee_entity_type: EntityType
    accepted_by: dict[str, str]


@registry.contract
class OperatorGrantRevoked(AccountDecision):
    event_type: ClassVar[str] = "transfer.OperatorGrantRevoked"
    transfer_id: str
    by: str
    reason: str = ""


@registry.contract
class OwnershipSignalCleared(AccountDecision):
    """An ownership signal (login identity, changed contact) is covered by the owner, an
    operator or an approved application: nothing to do (kept for the record)."""

    event_type: ClassVar[str] = "transfer.OwnershipSignalCleared"
    signal: str
    covered_by: str


@registry.contract
class OwnershipSignalUnmatched(AccountDecision):
    """A changed contact that belongs to no verified person transfer knows: not a sign of a
    new operator (nobody verified is behind it), kept for the record; no suspension."""

    event_type: ClassVar[str] = "transfer.OwnershipSignalUnmatched"
    signal: str
    contact_masked: str
    reason: str = "contact-not-a-verified-person"
