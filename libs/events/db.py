"""Database access shared by every service: transactions opened by handlers.

PostgreSQL is the production database, SQLite the embedded default. Statements are
SQLAlchemy Core constructs (mostly ``text()`` with named parameters), written once.
How they run differs by database (docs/decisions/0007-statement-execution.md):

- **PostgreSQL**: SQLAlchemy compiles each statement once for its asyncpg dialect
  (``$1`` placeholders), and the compiled SQL runs on an asyncpg connection from
  :class:`ConnectionPool` inside an asyncpg transaction. Going through SQLAlchemy's
  async ``Connection`` costs about 0.3-0.6 ms per transaction on this kind of machine
  (greenlet hops, result wrapping), more than the whole commit; ``bench/`` holds that to
  account (docs/decisions/0007-statement-execution.md).
- **SQLite**: statements run through a SQLAlchemy ``AsyncConnection`` on aiosqlite.

Either way the handler gets a :class:`Tx`, and nothing else opens or commits a
transaction: :meth:`Database.transaction` is the only boundary.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import event, text
from sqlalchemy.dialects.postgresql.asyncpg import dialect as _AsyncpgDialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql.elements import ClauseElement

from .migrate import _ensure_sqlite_dir

Params = Mapping[str, Any]


class Tx(Protocol):
    """One database transaction (or a read-only connection) as the kernel and handlers use it.

    Rows support index access (``row[0]``) and unpacking on both databases.
    """

    dialect: str

    async def execute(self, stmt: ClauseElement, params: Params | None = None) -> None: ...
    async def executemany(self, stmt: ClauseElement, params: Sequence[Params]) -> None: ...
    async def fetch(self, stmt: ClauseElement, params: Params | None = None) -> list[Any]: ...
    async def fetchrow(self, stmt: ClauseElement, params: Params | None = None) -> Any: ...
    async def fetchval(self, stmt: ClauseElement, params: Params | None = None) -> Any: ...
    async def plan_per_execution(self) -> None: ...


_PG_DIALECT = _AsyncpgDialect()
_compiled: dict[int, tuple[ClauseElement, str, tuple[str, ...]]] = {}


def _pg(stmt: ClauseElement) -> tuple[str, tuple[str, ...]]:
    """The statement's SQL for asyncpg and the order of its named parameters (cached)."""
    hit = _compiled.get(id(stmt))
    if hit is not None and hit[0] is stmt:
        return hit[1], hit[2]
    compiled = stmt.compile(dialect=_PG_DIALECT)
    names = tuple(compiled.positiontup or ())
    # Keep the statement itself alive in the cache so that its id is never reused.
    _compiled[id(stmt)] = (stmt, compiled.string, names)
    return compiled.string, names


# Batch statements (inbox look-ups, projection loads) take arrays whose size and the
# tables' sizes vary a lot. A prepared statement's generic plan is chosen from the
# statistics of its first executions, often on empty tables, where a sequential scan
# wins; kept on a pooled connection it then scans a grown table on every batch. Batch
# transactions ask for a custom plan per execution: planning is cheap next to a batch.
# As an expression, for a statement that asks in the same round trip (hold_checkpoint).
CUSTOM_PLANS_SETTING = "set_config('plan_cache_mode', 'force_custom_plan', true)"
CUSTOM_PLANS = text("SELECT " + CUSTOM_PLANS_SETTING)


class PgTx:
    """A :class:`Tx` over one asyncpg connection."""

    dialect = "postgresql"

    def __init__(self, conn) -> None:
        self.conn = conn

    async def execute(self, stmt, params=None) -> None:
        sql, names = _pg(stmt)
        await self.conn.execute(sql, *[params[n] for n in names]) if names else \
            await self.conn.execute(sql)

    async def executemany(self, stmt, params) -> None:
        if not params:
            return
        sql, names = _pg(stmt)
        await self.conn.executemany(sql, [[p[n] for n in names] for p in params])

    async def fetch(self, stmt, params=None) -> list[Any]:
        sql, names = _pg(stmt)
        return await self.conn.fetch(sql, *[params[n] for n in names])

    async def fetchrow(self, stmt, params=None) -> Any:
        sql, names = _pg(stmt)
        return await self.conn.fetchrow(sql, *[params[n] for n in names])

    async def fetchval(self, stmt, params=None) -> Any:
        sql, names = _pg(stmt)
        return await self.conn.fetchval(sql, *[params[n] for n in names])

    async def plan_per_execution(self) -> None:
        """For the rest of this transaction, plan every statement for its parameters."""
        await self.execute(CUSTOM_PLANS)

    async def copy_rows(self, table, columns, rows) -> None:
        """Bulk-load ``rows`` into ``table`` with PostgreSQL's binary COPY (no conflict
        handling, no RETURNING: the event store's batch append)."""
        if rows:
            await self.conn.copy_records_to_table(table, records=rows, columns=list(columns))


class SqlTx:
    """A :class:`Tx` over a SQLAlchemy ``AsyncConnection`` (SQLite)."""

    dialect = "sqlite"

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def execute(self, stmt, params=None) -> None:
        await self.conn.execute(stmt, dict(params or {}))

    async def executemany(self, stmt, params) -> None:
        if params:
            await self.conn.execute(stmt, [dict(p) for p in params])

    async def fetch(self, stmt, params=None) -> list[Any]:
        return list((await self.conn.execute(stmt, dict(params or {}))).all())

    async def fetchrow(self, stmt, params=None) -> Any:
        return (await self.conn.execute(stmt, dict(params or {}))).first()

    async def fetchval(self, stmt, params=None) -> Any:
        row = (await self.conn.execute(stmt, dict(params or {}))).first()
        return row[0] if row is not None else None

    async def plan_per_execution(self) -> None:
        """SQLite plans every statement anyway."""


class ConnectionPool:
    """A small pool of asyncpg connections: a stack of idle ones and a queue of waiters.

    asyncpg's own ``Pool`` resets every connection on release (``RESET ALL; UNLISTEN *``,
    a round trip that cost as much as a commit here) and its acquire/release machinery
    cost another 0.1-0.2 ms per transaction on this kind of machine (bench/README.md).
    The kernel leaves no session state behind (no SET outside SET LOCAL, no LISTEN,
    advisory locks or open cursors), so a connection goes back as it is, unless it is
    closed or still inside a transaction, in which case it is dropped.
    """

    def __init__(self, dsn: str, size: int) -> None:
        self._dsn = dsn
        self._size = size
        self._idle: list = []
        self._open = 0
        self._waiters: deque[asyncio.Future] = deque()

    async def acquire(self):
        import asyncpg

        while True:
            while self._idle:
                conn = self._idle.pop()
                if not conn.is_closed():
                    return conn
                self._open -= 1
            if self._open < self._size:
                self._open += 1
                try:
                    return await asyncpg.connect(self._dsn)
                except BaseException:
                    self._open -= 1
                    raise
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter

    def release(self, conn) -> None:
        if conn.is_closed() or conn.is_in_transaction():
            conn.terminate()
            self._open -= 1
        else:
            self._idle.append(conn)
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.close()
        self._open -= len(idle)


def asyncpg_dsn(url: str) -> str:
    """``postgresql+asyncpg://...?ssl=require`` (SQLAlchemy form) -> asyncpg's DSN form
    (``postgresql://...?sslmode=require``); other query parameters pass through."""
    parts = urlsplit(url)
    query = "&".join(
        f"sslmode={p[4:]}" if p.startswith("ssl=") else p for p in parts.query.split("&") if p
    )
    return urlunsplit(parts._replace(scheme="postgresql", query=query))


class _PgTransaction:
    """``async with`` support for a PostgreSQL transaction, written out as a class: it runs
    once per command, and a generator-based context manager costs measurably more."""

    __slots__ = ("_db", "_pool", "_conn", "_tr")

    def __init__(self, db: Database) -> None:
        self._db = db

    async def __aenter__(self) -> PgTx:
        self._pool = pool = self._db._pool or await self._db._get_pool()
        self._conn = conn = await pool.acquire()
        try:
            self._tr = conn.transaction()
            await self._tr.start()
        except BaseException:
            pool.release(conn)
            raise
        return PgTx(conn)

    async def __aexit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                await self._tr.commit()
            else:
                await self._tr.rollback()
        finally:
            self._pool.release(self._conn)


class Database:
    """The transaction boundary used by handlers, over PostgreSQL or SQLite."""

    def __init__(self, url: str, *, pool_size: int = 10, echo: bool = False) -> None:
        self.url = url
        self.pool_size = pool_size
        self._pool = None
        self._pool_lock = asyncio.Lock()
        self.engine: AsyncEngine | None = None
        if url.startswith("sqlite"):
            self.dialect = "sqlite"
            _ensure_sqlite_dir(url)
            self.engine = create_async_engine(url, echo=echo)
            _configure_sqlite(self.engine)
        elif url.startswith("postgresql"):
            self.dialect = "postgresql"
        else:
            raise ValueError(f"unsupported database URL {url.split(':', 1)[0]!r}: "
                             "use postgresql+asyncpg://... or sqlite+aiosqlite:///...")

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    async def _get_pool(self):
        if self._pool is None:
            async with self._pool_lock:
                if self._pool is None:
                    self._pool = ConnectionPool(asyncpg_dsn(self.url), self.pool_size)
        return self._pool

    def transaction(self):
        """One transaction: ``async with db.transaction() as tx:`` commits when the block
        ends and rolls back if it raises."""
        if self.is_postgres:
            return _PgTransaction(self)
        return self._sqlite_transaction()

    @asynccontextmanager
    async def _sqlite_transaction(self) -> AsyncIterator[Tx]:
        async with self.engine.begin() as conn:
            yield SqlTx(conn)

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[Tx]:
        """A connection for reads (no transaction is kept open on PostgreSQL)."""
        if self.is_postgres:
            pool = await self._get_pool()
            conn = await pool.acquire()
            try:
                yield PgTx(conn)
            finally:
                pool.release(conn)
        else:
            async with self.engine.connect() as conn:
                # Reads begin deferred (see _configure_sqlite): with WAL they never wait for
                # a writer, so a handler's read on a second connection cannot deadlock.
                await conn.execution_options(sqlite_reader=True)
                yield SqlTx(conn)

    async def dispose(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        if self.engine is not None:
            await self.engine.dispose()


def _configure_sqlite(engine: AsyncEngine) -> None:
    # pysqlite's own transaction handling defers BEGIN and then fails with "database is
    # locked" when two transactions both try to upgrade from read to write. Emitting
    # BEGIN IMMEDIATE ourselves takes the write lock up front, so writers queue on the
    # busy timeout instead of failing; WAL lets readers go on meanwhile.
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # pragma: no cover - driver hook
        dbapi_connection.isolation_level = None
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA synchronous=FULL")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn) -> None:  # pragma: no cover - driver hook
        reader = conn.get_execution_options().get("sqlite_reader", False)
        conn.exec_driver_sql("BEGIN" if reader else "BEGIN IMMEDIATE")
