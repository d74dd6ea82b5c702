"""The no-trading rules (A11.1) and their parameters; pure."""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class TradingRules:
    refuse_blacklisted: bool = True
    refuse_under_measure: bool = True
    min_days_between_transfers: int = 180
    window_days: int = 365
    threshold: int = 3


@dataclass(frozen=True)
class AccountFacts:
    """What the rules need of an account: its active measures and last transfer."""

    active_measures: tuple[str, ...] = ()
    last_transferred_at: datetime | None = None


def refusals(rules: TradingRules, facts: AccountFacts, *, kind: str, now: datetime
             ) -> list[str]:
    """The codes of the rules an application breaks (empty: none)."""
    codes: list[str] = []
    if rules.refuse_blacklisted and "blacklist" in facts.active_measures:
        codes.append("account-blacklisted")
    if rules.refuse_under_measure and any(m != "blacklist" for m in facts.active_measures):
        codes.append("account-under-measure")
    last = facts.last_transferred_at
    if (kind == "transfer" and last is not None and rules.min_days_between_transfers
            and now - last < timedelta(days=rules.min_days_between_transfers)):
        codes.append("transferred-recently")
    return codes


@dataclass(frozen=True)
class Move:
    """A completed transfer: the account went from one identity to another."""

    transfer_id: str
    account_id: str
    from_blind: str | None
    to_blind: str
    at: datetime


@dataclass(frozen=True)
class Suspicion:
    identity_blinds: tuple[str, ...]
    account_ids: tuple[str, ...]
    transfers_in_window: int
    round_trip: bool


def suspected_trading(rules: TradingRules, moves: Iterable[Move], this: Move
                      ) -> Suspicion | None:
    """Repeated transfers among a group of identities (A11.1, Art. 18(8)): the moves within
    the window touching the identities of ``this`` (transitively), counting ``this``; or the
    account going back to an identity that owned it before."""
    window = [m for m in moves if this.at - m.at <= timedelta(days=rules.window_days)
              and m.transfer_id != this.transfer_id] + [this]
    group = {b for b in (this.from_blind, this.to_blind) if b}
    related: list[Move] = []
    grew = True
    while grew:
        grew = False
        for m in window:
            if m not in related and ({m.from_blind, m.to_blind} & group):
                related.append(m)
                group |= {b for b in (m.from_blind, m.to_blind) if b}
                grew = True
    round_trip = any(m.account_id == this.account_id and m.from_blind == this.to_blind
                     for m in moves if m.transfer_id != this.transfer_id)
    if len(related) < rules.threshold and not round_trip:
        return None
    return Suspicion(tuple(sorted(group)), tuple(sorted({m.account_id for m in related})),
                     len(related), round_trip)


def add_months(t: datetime, months: int) -> datetime:
    """The same day ``months`` later (the month's last day when it is shorter)."""
    y, m = divmod(t.month - 1 + months, 12)
    year, month = t.year + y, m + 1
    return t.replace(year=year, month=month,
                     day=min(t.day, calendar.monthrange(year, month)[1]))


def disclosed_name(entity_type: str, masked_name: str | None,
                   organization: dict | None) -> str | None:
    """A name as the public page may show it: an organization's in full, a person's masked."""
    if entity_type != "natural_person" and organization:
        return organization.get("business_name") or masked_name
    return masked_name
