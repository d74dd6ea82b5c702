"""``Idempotency-Key`` on every POST: a retried request gets the first answer, not a second effect.

The answer is stored in the same transaction as the command's events, so either both
are kept or neither: a crash between them cannot leave an effect without its answer.
The key is claimed (a row inserted) before the work runs, so two concurrent requests
with one key serialize on its primary key rather than racing into a stream conflict;
the second then finds the first one's answer. A key reused with a different
body is refused (``idempotency-key-reused``) rather than silently answered with another
request's result. Errors are not remembered: a corrected retry may reuse its key.

What is remembered is the handler's *result* (a pydantic model or any type a
``TypeAdapter`` serializes), not an HTTP answer: the API presents the first result and its
replay the same way. Plain :class:`Answer` values are kept as they are, for operations
that have no result type of their own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Any, NamedTuple, TypeVar

import orjson
from fastapi import Header
from pydantic import TypeAdapter
from sqlalchemy import text

from libs.events import ConcurrencyError, Database
from libs.events.db import Tx

from .problems import ProblemError

IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", max_length=200,
           description="Any unique string; a retry with the same key and body gets the "
                       "first answer and changes nothing"),
]

_RECALL = text("SELECT fingerprint, status, body FROM idempotency_keys "
               "WHERE scope = :scope AND key = :key")
# Every write of a key is an INSERT of its whole row; they differ in the row's status and
# body and in what a conflict on (scope, key) does.
_INSERT = "INSERT INTO idempotency_keys (scope, key, fingerprint, status, body, created_at) "
_ANSWERED = "VALUES (:scope, :key, :fingerprint, :status, :body, :created_at) "
# The answer of a key claimed in this transaction: an upsert rather than an UPDATE, as the
# arbiter index finds the claimed row whatever the table's size. An UPDATE's plan is a
# choice, and the generic plan PostgreSQL caches for a connection's prepared statement
# after five executions is chosen on the table's size then: made on a near-empty table it
# scans the whole table, and keeps doing so as the table grows, until an ANALYZE.
_KEEP_ANSWER = ("ON CONFLICT (scope, key) DO UPDATE "
                "SET status = excluded.status, body = excluded.body")
# A key written only if it is not there yet (a claim, or a sweep's answer kept once).
_IF_ABSENT = "ON CONFLICT (scope, key) DO NOTHING RETURNING "
# A concurrent twin's INSERT waits on the first one's uncommitted row; once that commits,
# DO NOTHING returns no row and the twin reads the committed answer instead.
_CLAIM = text(_INSERT + "VALUES (:scope, :key, :fingerprint, 0, '', :created_at) "
              + _IF_ABSENT + "1")
_KEEP = text(_INSERT + _ANSWERED + _IF_ABSENT + "1")
_REMEMBER = text(_INSERT + _ANSWERED + _KEEP_ANSWER)
# The same for many keys of one scope at once (a group commit; PostgreSQL).
_CLAIM_MANY = text(
    _INSERT + "SELECT CAST(:scope AS text), u.k, u.f, 0, '', CAST(:created_at AS timestamptz) "
    "FROM unnest(CAST(:keys AS text[]), CAST(:fingerprints AS text[])) AS u(k, f) "
    "ORDER BY u.k " + _IF_ABSENT + "key")
_REMEMBER_MANY = text(
    _INSERT + "SELECT CAST(:scope AS text), u.k, u.f, u.s, u.b, CAST(:created_at AS timestamptz) "
    "FROM unnest(CAST(:keys AS text[]), CAST(:fingerprints AS text[]), "
    "CAST(:statuses AS integer[]), CAST(:bodies AS text[])) AS u(k, f, s, b) " + _KEEP_ANSWER)


class Answer(NamedTuple):
    status: int
    body: Any


R = TypeVar("R")
# The status column of a kept handler result (an Answer keeps its own status).
_RESULT = 0


@lru_cache(maxsize=256)
def _adapter(result: Any) -> TypeAdapter:
    # Building an adapter costs hundreds of microseconds (a union's, more): once per type.
    return TypeAdapter(result)


class _Codec:
    """How a kept answer is written and read back: an :class:`Answer` as is, any other
    result through its ``TypeAdapter``."""

    def __init__(self, result: Any = None) -> None:
        self.adapter = _adapter(result) if result is not None else None

    def encode(self, value: Any) -> tuple[int, str]:
        if self.adapter is None:
            return value.status, orjson.dumps(value.body).decode()
        return _RESULT, self.adapter.dump_json(value).decode()

    def decode(self, status: int, body: str) -> Any:
        if self.adapter is None:
            return Answer(status, orjson.loads(body))
        return self.adapter.validate_json(body)


def fingerprint(*parts: Any) -> str:
    """A stable digest of what identifies a request (path, principal, body...)."""
    return hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).hexdigest()


async def recall(tx: Tx, *, scope: str, key: str, digest: str, codec: _Codec | None = None
                 ) -> Any:
    """The answer kept for ``key`` (None if there is none), in a transaction: the look-up is
    planned for its key (ADR 0047), as a retry storm on a grown table must not scan it."""
    await tx.plan_per_execution()
    row = await tx.fetchrow(_RECALL, {"scope": scope, "key": key})
    if row is None:
        return None
    if row[0] != digest:
        raise ProblemError(
            "this Idempotency-Key was already used for a different request",
            status=422, code="idempotency-key-reused", title="Idempotency key reused")
    return (codec or _Codec()).decode(row[1], row[2])


async def claim(tx: Tx, *, scope: str, key: str, digest: str) -> bool:
    """Take the key before doing the work; False when a committed request already has it
    (a concurrent one with the same key is waited for first)."""
    row = await tx.fetchval(_CLAIM, {"scope": scope, "key": key, "fingerprint": digest,
                                     "created_at": datetime.now(UTC)})
    return row is not None


async def remember(tx: Tx, *, scope: str, key: str, digest: str, answer: Any,
                   codec: _Codec | None = None) -> None:
    """Keep ``answer`` for ``key``, claimed in this transaction with ``digest``."""
    status, body = (codec or _Codec()).encode(answer)
    await tx.execute(_REMEMBER, {"scope": scope, "key": key, "fingerprint": digest,
                                 "status": status, "body": body,
                                 "created_at": datetime.now(UTC)})


async def claim_many(tx: Tx, *, scope: str, keys: list[tuple[str, str]]) -> set[str]:
    """:func:`claim` for many distinct ``(key, digest)`` of one scope in one statement
    (PostgreSQL): the keys taken. A key held by a concurrent request is waited for, then
    not taken; its request must recall the answer (:func:`run_idempotent` does)."""
    rows = await tx.fetch(_CLAIM_MANY, {
        "scope": scope, "keys": [k for k, _ in keys], "fingerprints": [d for _, d in keys],
        "created_at": datetime.now(UTC)})
    return {r[0] for r in rows}


async def remember_many(tx: Tx, *, scope: str, answers: list[tuple[str, str, Any]],
                        result: Any = None) -> None:
    """:func:`remember` for many ``(key, digest, answer)`` claimed in this transaction, in
    one statement (PostgreSQL); ``result`` as for :func:`run_idempotent`."""
    codec = _Codec(result)
    encoded = [codec.encode(answer) for _, _, answer in answers]
    await tx.execute(_REMEMBER_MANY, {
        "scope": scope, "keys": [k for k, _, _ in answers],
        "fingerprints": [d for _, d, _ in answers],
        "statuses": [status for status, _ in encoded], "bodies": [body for _, body in encoded],
        "created_at": datetime.now(UTC)})


async def run_idempotent(
    db: Database,
    key: str | None,
    *,
    scope: str,
    digest: str,
    work: Callable[[Tx], Awaitable[R]],
    result: Any = None,
    attempts: int = 3,
) -> R:
    """Run ``work`` in one transaction, once per ``key``; without a key, just run it.

    ``result`` is the type of what ``work`` returns (kept and read back through a pydantic
    ``TypeAdapter``); without it ``work`` returns an :class:`Answer`. When a stream moved
    on between ``work``'s read and its append (:class:`ConcurrencyError`), the whole unit
    (the key's claim included) runs again in a new transaction, up to ``attempts`` times.
    """
    codec = _Codec(result)
    conflicts = 0
    for _ in range(3 + attempts):
        try:
            async with db.transaction() as tx:
                if key is not None and not await claim(tx, scope=scope, key=key, digest=digest):
                    stored = await recall(tx, scope=scope, key=key, digest=digest, codec=codec)
                    if stored is not None:
                        return stored
                    continue  # the holder rolled back between our two statements: claim again
                answer = await work(tx)
                if key is not None:
                    await remember(tx, scope=scope, key=key, digest=digest, answer=answer,
                                   codec=codec)
                return answer
        except ConcurrencyError:
            conflicts += 1
            if conflicts >= attempts:
                raise
    raise ProblemError("the Idempotency-Key is being used by requests that keep failing",
                       status=409, code="idempotency-key-busy", title="Idempotency key busy")


async def run_once(
    db: Database,
    key: str | None,
    *,
    scope: str,
    digest: str,
    run: Callable[[], Awaitable[R]],
    result: Any = None,
) -> R:
    """For an operation of many transactions (a sweep): a retry with the key gets the first
    answer instead of running again.

    The answer is kept after the operation, not with its effects, so the operation itself
    must be safe to run twice (a crash in between, or two concurrent twins, may run it
    twice; the sweeps re-decide each account on its own stream, so a second run changes
    nothing). The first answer kept wins.
    """
    if key is None:
        return await run()
    codec = _Codec(result)
    async with db.transaction() as tx:
        stored = await recall(tx, scope=scope, key=key, digest=digest, codec=codec)
    if stored is not None:
        return stored
    answer = await run()
    status, body = codec.encode(answer)
    async with db.transaction() as tx:
        kept = await tx.fetchval(_KEEP, {
            "scope": scope, "key": key, "fingerprint": digest, "status": status,
            "body": body, "created_at": datetime.now(UTC)})
        if kept is None:
            return await recall(tx, scope=scope, key=key, digest=digest, codec=codec) or answer
    return answer
