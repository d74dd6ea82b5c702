"""Registration's events -> verification (choreography, no calls): pure decisions on the
typed payload and the facts the handler gathered (handlers.when_event).

A policy refuses an event that no longer applies (a registration seen again under another
event id, a change for an account never verified here) with a ``libs.domain`` error; the
handler logs and skips it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from libs.domain import ConflictError, NotFoundError
from libs.events import Envelope, EventPayload
from libs.events.contracts.registration import (
    AccountClosed,
    AccountDeregistered,
    AccountRegistrationSubmitted,
    AccountReinstated,
    AccountSuspended,
    ProfileChangeSubmitted,
)
from libs.events.contracts.transfer import TransferAnnounced, TransferRequested

from .domain import IdentityDecision, TransfereeCheck, Verification, open_transferee_check


@dataclass(frozen=True)
class Facts:
    """What the handler gathered for a policy: the time, the providers' decision and the
    provider's name, the profile findings (A8.2) and what the field needs (A9.1, A5)."""

    now: datetime
    identity: IdentityDecision | None = None
    provider: str = ""
    findings: tuple[dict, ...] = ()
    needs: tuple[str, ...] = ()


def when_registration_submitted_verify(state: Verification | None,
                                       payload: AccountRegistrationSubmitted, event: Envelope,
                                       ctx: Facts) -> list[EventPayload]:
    """Open the account's verification; the identity is decided here only when its numbers
    are malformed, else by the identity check outside this transaction (ADR 0026)."""
    if state is not None:
        raise ConflictError(f"{payload.account_id} is already being verified")
    return Verification.open(payload, identity=ctx.identity, provider=ctx.provider,
                             findings=list(ctx.findings), needs=ctx.needs, evidence=[event.id],
                             now=ctx.now)


def when_profile_change_submitted_check(state: Verification | None,
                                        payload: ProfileChangeSubmitted, event: Envelope,
                                        ctx: Facts) -> list[EventPayload]:
    """The same checks for a proposed profile: passed (with the change) or a mismatch."""
    if state is None or state.identity_status == "failed":
        raise NotFoundError(f"no verifiable account {payload.account_id}")
    return state.check_change(change_id=payload.change_id, profile=payload.proposed,
                              findings=list(ctx.findings), evidence=[event.id], now=ctx.now)


def when_transfer_requested_verify_transferee(state: TransfereeCheck | None,
                                              payload: TransferRequested, event: Envelope,
                                              ctx: Facts) -> list[EventPayload]:
    """The transferee of an application goes through the registrant's checks (A11.2): queued
    for the identity checker, which asks the providers outside this transaction."""
    if state is not None:
        raise ConflictError(f"transferee of {payload.transfer_id} already checked")
    return open_transferee_check(payload, evidence=[event.id])


def when_transfer_announced_disclose(state: Verification | None, payload: TransferAnnounced,
                                     event: Envelope, ctx: Facts) -> list[EventPayload]:
    """The change notice joins the public page; the new owner is the account's operator."""
    if state is None or state.identity_status == "failed":
        raise NotFoundError(f"no verifiable account {payload.account_id}")
    return state.disclose_owner_change(payload, evidence=[event.id])


def when_account_standing_changed_follow(state: Verification | None, payload: Any,
                                         event: Envelope, ctx: Facts) -> list[EventPayload]:
    """The public page follows the account (A9.2): a suspension hides the badge until it
    is lifted, a closure or deregistration for good."""
    if state is None:
        raise NotFoundError(f"no verification for account {payload.account_id}")
    if isinstance(payload, AccountSuspended):
        return state.follow_standing(suspended=payload.suspension_id, evidence=[event.id])
    if isinstance(payload, AccountReinstated):
        return state.follow_standing(reinstated=payload.suspension_id, evidence=[event.id])
    ended = "closed" if isinstance(payload, AccountClosed) else "deregistered"
    return state.follow_standing(ended=ended, evidence=[event.id])


Reaction = Callable[[Any, Any, Envelope, Facts], list[EventPayload]]
POLICIES: dict[str, Reaction] = {
    AccountRegistrationSubmitted.event_type: when_registration_submitted_verify,
    ProfileChangeSubmitted.event_type: when_profile_change_submitted_check,
    TransferRequested.event_type: when_transfer_requested_verify_transferee,
    TransferAnnounced.event_type: when_transfer_announced_disclose,
    **dict.fromkeys((AccountSuspended.event_type, AccountReinstated.event_type,
                     AccountClosed.event_type, AccountDeregistered.event_type),
                    when_account_standing_changed_follow),
}
