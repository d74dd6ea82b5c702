"""Queries over transfer's look-up tables for the API: the list of applications (A11.2,
A17.3), filtered and paged by a keyset cursor (the last transfer id of a page)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import orjson
from pydantic import BaseModel
from sqlalchemy import text
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from libs.domain import as_datetime
from libs.events.db import Tx

Status = Literal["verifying", "awaiting_confirmation", "opt_out_period", "completed",
                 "rejected", "withdrawn", "expired", "revoked"]
Kind = Literal["transfer", "co_operator", "third_party"]

_PAGE = text("""
    SELECT a.transfer_id, a.account_id, a.kind, a.status, a.transferee_masked, a.entity_type,
           a.accepted_by, a.deadline, a.opt_out_until, a.updated_at, c.province
    FROM transfer_applications a
    LEFT JOIN transfer_accounts c ON c.account_id = a.account_id
    WHERE (CAST(:account AS text) IS NULL OR a.account_id = CAST(:account AS text))
      AND (CAST(:status AS text) IS NULL OR a.status = CAST(:status AS text))
      AND (CAST(:kind AS text) IS NULL OR a.kind = CAST(:kind AS text))
      AND (CAST(:province AS text) IS NULL OR c.province = CAST(:province AS text))
      AND a.transfer_id > CAST(:after AS text)
    ORDER BY a.transfer_id
    LIMIT :limit
""")


# A typed dict, not a model: handlers and their callers index it as the dict it was.
class MaskedIdentity(TypedDict):
    """A transferee or an owner as answers show them: masked, never sealed nor
    blind-indexed."""

    id_kind: str | None  # resident_id or uscc
    id_number_masked: str | None
    holder_name_masked: str | None
    phone_masked: str | None


class TransferSummary(BaseModel):
    """One application as the list shows it: the transferee masked, never sealed."""

    transfer_id: str
    account_id: str
    province: str | None
    kind: Kind
    status: Status
    transferee: MaskedIdentity
    transferee_entity_type: str
    accepted_by: dict[str, str]
    deadline: datetime
    opt_out_until: datetime | None = None
    updated_at: datetime


class TransferPage(BaseModel):
    items: list[TransferSummary]
    next_cursor: str | None  # pass as ``cursor`` for the next page; None at the end


async def page(tx: Tx, *, account_id: str | None, status: str | None, kind: str | None,
               province: str | None, after: str, limit: int) -> TransferPage:
    """A page of applications in transfer-id order and the cursor of the next page."""
    rows = await tx.fetch(_PAGE, {"account": account_id, "status": status, "kind": kind,
                                  "province": province, "after": after, "limit": limit + 1})
    items = [TransferSummary(
        transfer_id=r[0], account_id=r[1], kind=r[2], status=r[3],
        transferee=orjson.loads(r[4]), transferee_entity_type=r[5],
        accepted_by=orjson.loads(r[6]) if r[6] else {}, deadline=as_datetime(r[7]),
        opt_out_until=as_datetime(r[8]), updated_at=as_datetime(r[9]), province=r[10])
        for r in rows[:limit]]
    return TransferPage(items=items,
                        next_cursor=items[-1].transfer_id if len(rows) > limit else None)
