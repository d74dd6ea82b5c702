"""Transfer's look-up tables in SQL, kept in the transaction of the event or command that
changes them: the accounts (owner as registration announced it and as completed
transfers changed it), enforcement's measures, the applications' index (status, the
transferee's blind indexes, the deadline, the end of the followers' opt-out period), the
completed moves (A11.1) and the verified persons by phone (A11.2: whose is a changed
contact)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import text

from libs.domain import as_datetime
from libs.events.db import Tx

from .rules import AccountFacts, Move

_UPSERT_OWNER = text(
    "INSERT INTO transfer_accounts (account_id, entity_type, owner_name, owner_id_blind, "
    "owner_phone_blind, owner_masked, last_transferred_at, province, updated_at) "
    "VALUES (:a, :t, :n, :ib, :pb, :m, :last, :p, :at) ON CONFLICT (account_id) DO UPDATE SET "
    "entity_type = excluded.entity_type, owner_name = excluded.owner_name, "
    "owner_id_blind = excluded.owner_id_blind, owner_phone_blind = excluded.owner_phone_blind, "
    "owner_masked = excluded.owner_masked, "
    "last_transferred_at = coalesce(excluded.last_transferred_at, "
    "transfer_accounts.last_transferred_at), "
    "province = coalesce(excluded.province, transfer_accounts.province), "
    "updated_at = excluded.updated_at")
_GET = text("SELECT account_id, entity_type, owner_name, owner_id_blind, owner_phone_blind, "
            "owner_masked, last_transferred_at, province FROM transfer_accounts "
            "WHERE account_id = :a")
_UPSERT_MEASURE = text(
    "INSERT INTO transfer_measures (measure_id, account_id, measure, active, updated_at) "
    "VALUES (:id, :a, :m, :active, :at) ON CONFLICT (measure_id) DO UPDATE SET "
    "active = excluded.active, measure = coalesce(transfer_measures.measure, excluded.measure), "
    "updated_at = excluded.updated_at")
_ACTIVE = text("SELECT measure FROM transfer_measures WHERE account_id = :a AND active "
               "ORDER BY measure_id")
_UPSERT_APP = text(
    "INSERT INTO transfer_applications (transfer_id, account_id, kind, status, "
    "transferee_id_blind, transferee_phone_blind, transferee_masked, entity_type, "
    "accepted_by, deadline, opt_out_until, updated_at) VALUES (:id, :a, :k, :s, :ib, :pb, :m, "
    ":t, :acc, :d, :oo, :at) ON CONFLICT (transfer_id) DO UPDATE SET status = excluded.status, "
    "accepted_by = excluded.accepted_by, opt_out_until = excluded.opt_out_until, "
    "updated_at = excluded.updated_at")
_APPS = text("SELECT transfer_id, kind, status, transferee_id_blind, transferee_phone_blind, "
             "transferee_masked, entity_type, accepted_by, deadline FROM transfer_applications "
             "WHERE account_id = :a ORDER BY transfer_id")
_DUE = text("SELECT transfer_id FROM transfer_applications WHERE status IN "
            "('verifying', 'awaiting_confirmation') AND deadline <= :now ORDER BY transfer_id")
_OPT_OUTS_OVER = text(
    "SELECT transfer_id FROM transfer_applications WHERE status = 'opt_out_period' "
    "AND opt_out_until <= :now ORDER BY transfer_id")
_PERSON = text(
    "INSERT INTO transfer_persons (phone_blind, id_blind, source, updated_at) "
    "VALUES (:pb, :ib, :src, :at) ON CONFLICT (phone_blind) DO UPDATE SET "
    "id_blind = excluded.id_blind, source = excluded.source, updated_at = excluded.updated_at")
_PERSON_OF = text("SELECT id_blind FROM transfer_persons WHERE phone_blind = :pb")
_VERIFIED = text("INSERT INTO transfer_verified_accounts (account_id, verified_at) "
                 "VALUES (:a, :at) ON CONFLICT (account_id) DO NOTHING")
_IS_VERIFIED = text("SELECT 1 FROM transfer_verified_accounts WHERE account_id = :a")
_MOVE = text("INSERT INTO transfer_moves (transfer_id, account_id, from_blind, to_blind, "
             "completed_at) VALUES (:id, :a, :f, :t, :at) ON CONFLICT (transfer_id) DO NOTHING")
_MOVES = text("SELECT transfer_id, account_id, from_blind, to_blind, completed_at "
              "FROM transfer_moves WHERE completed_at >= :since")



@dataclass(frozen=True)
class Owner:
    account_id: str
    entity_type: str | None
    name: str | None  # as the public may see it
    id_blind: str | None
    phone_blind: str | None
    masked: dict[str, Any]
    last_transferred_at: datetime | None
    province: str | None = None


@dataclass(frozen=True)
class IndexedApplication:
    transfer_id: str
    kind: str
    status: str
    id_blind: str
    phone_blind: str
    masked: dict[str, Any]
    entity_type: str
    accepted_by: dict[str, str]
    deadline: datetime


class Directory:
    """What transfer knows of accounts, measures, applications and moves."""

    async def owner_is(self, tx: Tx, *, account_id: str, entity_type: str, name: str | None,
                       identity: dict[str, Any], at: datetime,
                       transferred: bool = False, province: str | None = None) -> None:
        masked = {k: identity.get(k) for k in ("id_kind", "id_number_masked",
                                               "holder_name_masked", "phone_masked")}
        await tx.execute(_UPSERT_OWNER, {
            "a": account_id, "t": entity_type, "n": name, "ib": identity["id_number_blind"],
            "pb": identity["phone_blind"], "m": orjson.dumps(masked).decode(),
            "last": at if transferred else None, "p": province, "at": at})

    async def owner(self, tx: Tx, account_id: str) -> Owner | None:
        r = await tx.fetchrow(_GET, {"a": account_id})
        if r is None:
            return None
        return Owner(r[0], r[1], r[2], r[3], r[4], orjson.loads(r[5]) if r[5] else {},
                     as_datetime(r[6]), r[7])

    async def measure(self, tx: Tx, *, measure_id: str, account_id: str, measure: str | None,
                      active: bool, at: datetime) -> None:
        await tx.execute(_UPSERT_MEASURE, {"id": measure_id, "a": account_id, "m": measure,
                                           "active": active, "at": at})

    async def facts(self, tx: Tx, account_id: str) -> AccountFacts:
        rows = await tx.fetch(_ACTIVE, {"a": account_id})
        owner = await self.owner(tx, account_id)
        return AccountFacts(tuple(r[0] or "unknown" for r in rows),
                            owner.last_transferred_at if owner else None)

    async def application(self, tx: Tx, *, transfer_id: str, account_id: str, kind: str,
                          status: str, transferee: dict[str, Any], entity_type: str,
                          accepted_by: dict[str, str], deadline: datetime,
                          opt_out_until: datetime | None, at: datetime) -> None:
        masked = {k: transferee.get(k) for k in ("id_kind", "id_number_masked",
                                                 "holder_name_masked", "phone_masked")}
        await tx.execute(_UPSERT_APP, {
            "id": transfer_id, "a": account_id, "k": kind, "s": status,
            "ib": transferee["id_number_blind"], "pb": transferee["phone_blind"],
            "m": orjson.dumps(masked).decode(), "t": entity_type,
            "acc": orjson.dumps(accepted_by).decode(), "d": deadline, "oo": opt_out_until,
            "at": at})

    async def applications(self, tx: Tx, account_id: str) -> list[IndexedApplication]:
        rows = await tx.fetch(_APPS, {"a": account_id})
        return [IndexedApplication(r[0], r[1], r[2], r[3], r[4], orjson.loads(r[5]), r[6],
                                   orjson.loads(r[7]) if r[7] else {}, as_datetime(r[8]))
                for r in rows]

    async def due(self, tx: Tx, now: datetime) -> list[str]:
        return [r[0] for r in await tx.fetch(_DUE, {"now": now})]

    async def opt_outs_over(self, tx: Tx, now: datetime) -> list[str]:
        """Confirmed transfers whose followers' opt-out period has ended by ``now``."""
        return [r[0] for r in await tx.fetch(_OPT_OUTS_OVER, {"now": now})]

    async def verified_person(self, tx: Tx, *, phone_blind: str, id_blind: str, source: str,
                              at: datetime) -> None:
        """The phone belongs to this verified person (the latest one verified with it)."""
        await tx.execute(_PERSON, {"pb": phone_blind, "ib": id_blind, "src": source,
                                   "at": at})

    async def person_of(self, tx: Tx, phone_blind: str) -> str | None:
        """The identity blind index of the verified person whose phone this is."""
        return await tx.fetchval(_PERSON_OF, {"pb": phone_blind})

    async def account_verified(self, tx: Tx, account_id: str, at: datetime) -> None:
        await tx.execute(_VERIFIED, {"a": account_id, "at": at})

    async def is_verified(self, tx: Tx, account_id: str) -> bool:
        return await tx.fetchval(_IS_VERIFIED, {"a": account_id}) is not None

    async def moved(self, tx: Tx, move: Move) -> None:
        await tx.execute(_MOVE, {"id": move.transfer_id, "a": move.account_id,
                                 "f": move.from_blind, "t": move.to_blind, "at": move.at})

    async def moves(self, tx: Tx, since: datetime) -> list[Move]:
        return [Move(r[0], r[1], r[2], r[3], as_datetime(r[4]))
                for r in await tx.fetch(_MOVES, {"since": since})]
