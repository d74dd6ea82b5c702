"""The ``accounts`` read model: the account's state as a document, plus the columns the
list and the sweep filter on; a pure fold over the account streams, rebuildable."""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from typing import Any

from sqlalchemy import text

from libs.events import DocumentProjection, Envelope
from libs.events.db import Tx

from .domain import Account, evolve

_TIMES = ("registered_at", "last_active_at", "correction_deadline")
_FIELDS = frozenset(f.name for f in fields(Account))


def to_doc(acc: Account) -> dict[str, Any]:
    # A shallow copy: asdict() deep-copies every nested payload, which cost more than the
    # rest of the fold (the values are JSON data already and never mutated).
    doc = {name: getattr(acc, name) for name in _FIELDS}
    for name in _TIMES:
        doc[name] = doc[name].isoformat() if doc[name] else None
    doc["restrictions"] = {k: list(v) for k, v in acc.restrictions.items()}
    doc["credit_withheld"] = list(acc.credit_withheld)
    doc["status"] = acc.status
    doc["capabilities"] = acc.capabilities
    return doc


def from_doc(doc: dict[str, Any]) -> Account:
    kw = {k: v for k, v in doc.items() if k in _FIELDS}
    for name in _TIMES:
        kw[name] = datetime.fromisoformat(kw[name]) if kw.get(name) else None
    kw["restrictions"] = {k: tuple(v) for k, v in kw["restrictions"].items()}
    kw["credit_withheld"] = tuple(kw["credit_withheld"])
    return Account(**kw)


def evolve_doc(doc: dict | None, e: Envelope) -> dict | None:
    acc = from_doc(doc) if doc else None
    try:
        acc = evolve(acc, e)
    except ValueError:
        return doc  # not an account's event
    return to_doc(acc)


_LIST_UPSERT = text("""
    INSERT INTO registration_account_list
      (account_id, owner, status, province, last_active_at, due_at)
    VALUES (:account_id, :owner, :status, :province, :last_active_at, :due_at)
    ON CONFLICT (account_id) DO UPDATE SET owner = excluded.owner, status = excluded.status,
      province = excluded.province, last_active_at = excluded.last_active_at,
      due_at = excluded.due_at
""")
_LIST_RESET = text("DELETE FROM registration_account_list")


def _row(doc: dict) -> dict[str, Any]:
    # The sweep's next decision on this account: a correction deadline (A8.2) or the end of
    # a timed restriction or suspension (A19.2).
    due = list(doc.get("expiries", {}).values())
    if "correction_pending" in doc["suspensions"] and doc["correction_deadline"]:
        due.append(doc["correction_deadline"])
    return {"account_id": doc["account_id"], "owner": doc["owner"].get("id_number_blind", ""),
            "status": doc["status"], "province": doc["province"],
            "last_active_at": datetime.fromisoformat(doc["last_active_at"]).timestamp(),
            "due_at": min(datetime.fromisoformat(d).timestamp() for d in due) if due else None}


class AccountsProjection(DocumentProjection):
    """Documents per account, and their filter columns in ``registration_account_list``."""

    def __init__(self) -> None:
        super().__init__("accounts", evolve_doc,
                         event_types=None, key=lambda e: e.subject)

    def wants(self, event: Envelope) -> bool:
        return event.type.startswith("registration.")

    async def documents_changed(self, conn: Tx, docs: dict[str, dict]) -> None:
        await conn.executemany(_LIST_UPSERT, [_row(d) for d in docs.values()])

    async def reset(self, conn: Tx) -> None:
        await super().reset(conn)
        await conn.execute(_LIST_RESET)


accounts = AccountsProjection
