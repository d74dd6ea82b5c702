"""The public account: its state folded from its events, and the commands that decide new
events from it; pure (no I/O), importing nothing else of the service.

The registration rules (A2, A6, A7.1, A8.3, A10.1, A10.3: :mod:`..rules`) judge an
:class:`Application`; :meth:`Account.register` turns their :class:`Verdict` into the
account's first events, and every other command decides from the account's state. Commands
return contract instances (:mod:`libs.events.contracts.registration`); an illegal transition
raises :class:`libs.domain.IllegalTransitionError` (inbound events that no longer apply are
logged and skipped).

One room in three files, each under ~300 lines: ``account`` (state and commands),
``application`` (what a registration brings and its first events), ``fold`` (``evolve``).
"""

from .account import (
    ACCOUNT_SCHEMA,
    CLOSED,
    DEREGISTERED,
    HELD,
    LIVE,
    PENDING,
    QUALIFICATION_LAPSED,
    REFUSED,
    STATUSES,
    TERMINAL,
    Account,
    AccountNotFoundError,
    Payloads,
    add_months,
    stream_of,
)
from .application import REGISTRATION_BASIS, Application, ProfileChange, Verdict, first_events
from .fold import P, evolve

__all__ = [
    "ACCOUNT_SCHEMA", "CLOSED", "DEREGISTERED", "HELD", "LIVE", "PENDING", "P",
    "QUALIFICATION_LAPSED", "REFUSED", "REGISTRATION_BASIS",
    "STATUSES", "TERMINAL", "Account", "AccountNotFoundError", "Application", "Payloads",
    "ProfileChange", "Verdict", "add_months", "evolve", "first_events", "stream_of",
]
