"""The outside world behind small interfaces: the accounts enforcement knows of (province
from registration, credit level from credit), a look-up table in SQL kept by the consumer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text

from libs.events import Database
from libs.events.db import Tx

_UPSERT_REGISTERED = text(
    "INSERT INTO enforcement_accounts (account_id, province, category, entity_type, "
    "registered_at, updated_at, business_name, registered_address, uscc) "
    "VALUES (:a, :p, :c, :t, :at, :at, :bn, :ra, :uscc) "
    "ON CONFLICT (account_id) DO UPDATE SET province = excluded.province, "
    "category = excluded.category, entity_type = excluded.entity_type, "
    "registered_at = excluded.registered_at, updated_at = excluded.updated_at, "
    "business_name = excluded.business_name, "
    "registered_address = excluded.registered_address, uscc = excluded.uscc")
_UPSERT_VERIFICATION = text(
    "INSERT INTO enforcement_accounts (account_id, verification, updated_at) "
    "VALUES (:a, :v, :at) ON CONFLICT (account_id) DO UPDATE SET "
    "verification = excluded.verification, updated_at = excluded.updated_at")
_UPSERT_CREDIT = text(
    "INSERT INTO enforcement_accounts (account_id, credit_level, updated_at) "
    "VALUES (:a, :l, :at) ON CONFLICT (account_id) DO UPDATE SET "
    "credit_level = excluded.credit_level, updated_at = excluded.updated_at")
_GET = text("SELECT account_id, province, credit_level, category, entity_type, registered_at "
            "FROM enforcement_accounts WHERE account_id = :a")
# Keyset pages in (province, account) order: an export of a million accounts holds one page
# in memory at a time, and each page is an index range scan.
_FILED_PAGE = text(
    "SELECT account_id, province, category, entity_type, business_name, registered_address, "
    "uscc, verification, registered_at FROM enforcement_accounts "
    "WHERE province IS NOT NULL AND (:p = '' OR province = :p) "
    # a row comparison, so that each page is a range scan of the (province, account_id)
    # index from the last row on; the equivalent OR form rescans from the start each page
    "AND (province, account_id) > (:after_p, :after_a) "
    "ORDER BY province, account_id LIMIT :limit")
# The columns of a filing row, in the order of the export's columns (views.FILING_COLUMNS).
FILING_FIELDS = ("account_id", "province", "category", "entity_type", "business_name",
                 "registered_address", "uscc", "verification", "registered_at")


@dataclass(frozen=True)
class KnownAccount:
    account_id: str
    province: str | None
    credit_level: str | None


class AccountDirectory:
    """Province and credit level per account, as the other services announced them."""

    async def registered(self, tx: Tx, *, account_id: str, province: str, category: str,
                         entity_type: str, at: datetime, business_name: str | None = None,
                         registered_address: str | None = None, uscc: str | None = None
                         ) -> None:
        await tx.execute(_UPSERT_REGISTERED, {"a": account_id, "p": province, "c": category,
                                              "t": entity_type, "at": at, "bn": business_name,
                                              "ra": registered_address, "uscc": uscc})

    async def verification(self, tx: Tx, *, account_id: str, state: str, at: datetime
                           ) -> None:
        await tx.execute(_UPSERT_VERIFICATION, {"a": account_id, "v": state, "at": at})

    async def credit(self, tx: Tx, *, account_id: str, level: str, at: datetime) -> None:
        await tx.execute(_UPSERT_CREDIT, {"a": account_id, "l": level, "at": at})

    async def get(self, tx: Tx, account_id: str) -> KnownAccount | None:
        row = await tx.fetchrow(_GET, {"a": account_id})
        return KnownAccount(row[0], row[1], row[2]) if row else None

    async def filed_pages(self, db: Database, province: str | None, *, page: int = 10_000
                          ) -> AsyncIterator[list[tuple]]:
        """Registered accounts (of one province, or all) for the filing export (A7.1), a
        page at a time in (province, account) order, as rows of :data:`FILING_FIELDS` with
        the registration time in ISO 8601; each page on a short connection, so that an
        export of a million accounts holds one page in memory and no connection long."""
        after = ("", "")
        while True:
            async with db.connect() as conn:
                rows = await conn.fetch(_FILED_PAGE, {
                    "p": province or "", "after_p": after[0], "after_a": after[1],
                    "limit": page})
            if not rows:
                return
            # SQLite hands the time back as ISO text already; PostgreSQL as a datetime.
            yield [(*r[:8], r[8].isoformat() if isinstance(r[8], datetime) else r[8])
                   for r in rows]
            after = (rows[-1][1], rows[-1][0])
            if len(rows) < page:
                return

    async def filed(self, db: Database, province: str | None) -> list[dict[str, Any]]:
        """Every registered account of the filing at once (the JSON answer)."""
        return [dict(zip(FILING_FIELDS, r, strict=True))
                async for page in self.filed_pages(db, province) for r in page]
