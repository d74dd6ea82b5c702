"""The outside world behind small interfaces: the accounts enforcement knows of (province
from registration, credit level from credit), a look-up table in SQL kept by the consumer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text

from libs.events.db import Tx

_UPSERT_REGISTERED = text(
    "INSERT INTO enforcement_accounts (account_id, province, category, entity_type, "
    "registered_at, updated_at) VALUES (:a, :p, :c, :t, :at, :at) "
    "ON CONFLICT (account_id) DO UPDATE SET province = excluded.province, "
    "category = excluded.category, entity_type = excluded.entity_type, "
    "registered_at = excluded.registered_at, updated_at = excluded.updated_at")
_UPSERT_CREDIT = text(
    "INSERT INTO enforcement_accounts (account_id, credit_level, updated_at) "
    "VALUES (:a, :l, :at) ON CONFLICT (account_id) DO UPDATE SET "
    "credit_level = excluded.credit_level, updated_at = excluded.updated_at")
_GET = text("SELECT account_id, province, credit_level, category, entity_type, registered_at "
            "FROM enforcement_accounts WHERE account_id = :a")
_BY_PROVINCE = text("SELECT account_id, province, category, entity_type, registered_at "
                    "FROM enforcement_accounts WHERE province IS NOT NULL "
                    "AND (:p = '' OR province = :p) ORDER BY province, account_id")


@dataclass(frozen=True)
class KnownAccount:
    account_id: str
    province: str | None
    credit_level: str | None


class AccountDirectory:
    """Province and credit level per account, as the other services announced them."""

    async def registered(self, tx: Tx, *, account_id: str, province: str, category: str,
                         entity_type: str, at: datetime) -> None:
        await tx.execute(_UPSERT_REGISTERED, {"a": account_id, "p": province, "c": category,
                                              "t": entity_type, "at": at})

    async def credit(self, tx: Tx, *, account_id: str, level: str, at: datetime) -> None:
        await tx.execute(_UPSERT_CREDIT, {"a": account_id, "l": level, "at": at})

    async def get(self, tx: Tx, account_id: str) -> KnownAccount | None:
        row = await tx.fetchrow(_GET, {"a": account_id})
        return KnownAccount(row[0], row[1], row[2]) if row else None

    async def filed(self, tx: Tx, province: str | None) -> list[dict[str, Any]]:
        """Registered accounts (of one province, or all) for the filing export (A7.1)."""
        rows = await tx.fetch(_BY_PROVINCE, {"p": province or ""})
        return [{"account_id": r[0], "province": r[1], "category": r[2], "entity_type": r[3],
                 "registered_at": r[4].isoformat() if isinstance(r[4], datetime) else r[4]}
                for r in rows]
