"""``Idempotency-Key`` on every POST: a retried request gets the first answer, not a second effect.

The answer is stored in the same transaction as the command's events, so either both
are kept or neither: a crash between them cannot leave an effect without its answer.
The key is claimed (a row inserted) before the work runs, so two concurrent requests
with one key serialize on its primary key rather than racing into a stream conflict;
the second then finds the first one's answer. A key reused with a different
body is refused (``idempotency-key-reused``) rather than silently answered with another
request's result. Errors are not remembered: a corrected retry may reuse its key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, NamedTuple

import orjson
from fastapi import Header
from sqlalchemy import text

from libs.events import Database
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
# A concurrent twin's INSERT waits on the first one's uncommitted row; once that commits,
# DO NOTHING returns no row and the twin reads the committed answer instead.
_CLAIM = text("INSERT INTO idempotency_keys (scope, key, fingerprint, status, body, created_at) "
              "VALUES (:scope, :key, :fingerprint, 0, '', :created_at) "
              "ON CONFLICT (scope, key) DO NOTHING RETURNING 1")
_KEEP = text("INSERT INTO idempotency_keys (scope, key, fingerprint, status, body, created_at) "
             "VALUES (:scope, :key, :fingerprint, :status, :body, :created_at) "
             "ON CONFLICT (scope, key) DO NOTHING RETURNING 1")
_REMEMBER = text("UPDATE idempotency_keys SET status = :status, body = :body "
                 "WHERE scope = :scope AND key = :key")


class Answer(NamedTuple):
    status: int
    body: Any


def fingerprint(*parts: Any) -> str:
    """A stable digest of what identifies a request (path, principal, body...)."""
    return hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).hexdigest()


async def recall(tx: Tx, *, scope: str, key: str, digest: str) -> Answer | None:
    row = await tx.fetchrow(_RECALL, {"scope": scope, "key": key})
    if row is None:
        return None
    if row[0] != digest:
        raise ProblemError(
            "this Idempotency-Key was already used for a different request",
            status=422, code="idempotency-key-reused", title="Idempotency key reused")
    return Answer(row[1], orjson.loads(row[2]))


async def claim(tx: Tx, *, scope: str, key: str, digest: str) -> bool:
    """Take the key before doing the work; False when a committed request already has it
    (a concurrent one with the same key is waited for first)."""
    row = await tx.fetchval(_CLAIM, {"scope": scope, "key": key, "fingerprint": digest,
                                     "created_at": datetime.now(UTC)})
    return row is not None


async def remember(tx: Tx, *, scope: str, key: str, answer: Answer) -> None:
    await tx.execute(_REMEMBER, {"scope": scope, "key": key, "status": answer.status,
                                 "body": orjson.dumps(answer.body).decode()})


async def run_idempotent(
    db: Database,
    key: str | None,
    *,
    scope: str,
    digest: str,
    work: Callable[[Tx], Awaitable[Answer]],
) -> Answer:
    """Run ``work`` in one transaction, once per ``key``; without a key, just run it."""
    for _ in range(3):
        async with db.transaction() as tx:
            if key is not None and not await claim(tx, scope=scope, key=key, digest=digest):
                stored = await recall(tx, scope=scope, key=key, digest=digest)
                if stored is not None:
                    return stored
                continue  # the holder rolled back between our two statements: claim again
            answer = await work(tx)
            if key is not None:
                await remember(tx, scope=scope, key=key, answer=answer)
            return answer
    raise ProblemError("the Idempotency-Key is being used by requests that keep failing",
                       status=409, code="idempotency-key-busy", title="Idempotency key busy")


async def run_once(
    db: Database,
    key: str | None,
    *,
    scope: str,
    digest: str,
    run: Callable[[], Awaitable[Answer]],
) -> Answer:
    """For an operation of many transactions (a sweep): a retry with the key gets the first
    answer instead of running again.

    The answer is kept after the operation, not with its effects, so the operation itself
    must be safe to run twice (a crash in between, or two concurrent twins, may run it
    twice; the sweeps re-decide each account on its own stream, so a second run changes
    nothing). The first answer kept wins.
    """
    if key is None:
        return await run()
    async with db.connect() as conn:
        stored = await recall(conn, scope=scope, key=key, digest=digest)
    if stored is not None:
        return stored
    answer = await run()
    async with db.transaction() as tx:
        kept = await tx.fetchval(_KEEP, {
            "scope": scope, "key": key, "fingerprint": digest, "status": answer.status,
            "body": orjson.dumps(answer.body).decode(), "created_at": datetime.now(UTC)})
        if kept is None:
            return await recall(tx, scope=scope, key=key, digest=digest) or answer
    return answer
