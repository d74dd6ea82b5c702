"""``Idempotency-Key`` on every POST: a retried request gets the first answer, not a second effect.

The answer is stored in the same transaction as the command's events, so either both
are kept or neither: a crash between them cannot leave an effect without its answer.
The key is claimed (a row inserted) before the work runs, so two concurrent requests
with one key serialize on its primary key rather than racing into a stream conflict;
the loser retries once and then finds the winner's answer. A key reused with a different
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
_CLAIM = text("INSERT INTO idempotency_keys (scope, key, fingerprint, status, body, created_at) "
              "VALUES (:scope, :key, :fingerprint, 0, '', :created_at)")
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


async def claim(tx: Tx, *, scope: str, key: str, digest: str) -> None:
    """Take the key before doing the work: a concurrent request with the same key blocks
    on this row until the first commits, then fails on the primary key and retries."""
    await tx.execute(_CLAIM, {"scope": scope, "key": key, "fingerprint": digest,
                              "created_at": datetime.now(UTC)})


async def remember(tx: Tx, *, scope: str, key: str, answer: Answer) -> None:
    await tx.execute(_REMEMBER, {"scope": scope, "key": key, "status": answer.status,
                                 "body": orjson.dumps(answer.body).decode()})


def _is_unique_violation(exc: BaseException) -> bool:
    # asyncpg raises UniqueViolationError; SQLAlchemy wraps SQLite's as IntegrityError.
    names = {type(exc).__name__, type(getattr(exc, "orig", None)).__name__}
    return bool(names & {"UniqueViolationError", "IntegrityError"})


async def run_idempotent(
    db: Database,
    key: str | None,
    *,
    scope: str,
    digest: str,
    work: Callable[[Tx], Awaitable[Answer]],
) -> Answer:
    """Run ``work`` in one transaction, once per ``key``; without a key, just run it."""
    for attempt in (1, 2):
        try:
            async with db.transaction() as tx:
                if key is not None:
                    stored = await recall(tx, scope=scope, key=key, digest=digest)
                    if stored is not None:
                        return stored
                    await claim(tx, scope=scope, key=key, digest=digest)
                answer = await work(tx)
                if key is not None:
                    await remember(tx, scope=scope, key=key, answer=answer)
                return answer
        except Exception as exc:
            if key is None or attempt == 2 or not _is_unique_violation(exc):
                raise
    raise AssertionError("unreachable")
