"""Opens PostgreSQL (asyncpg). Everything else about storage is in :mod:`.sql`; the only
dialect work here is numbering the '?' placeholders and serialising the schema migration."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from polyroute.storage.database import Database, Row, RowsRejected, StoreUnavailable
from polyroute.storage.sql import ADDED_COLUMNS, ADDED_INDEXES, SCHEMA, BulkInsert

_MIGRATION_LOCK = 0x706F6C79  # pg_advisory_lock key: replicas starting together migrate once
# asyncpg raises these when the server is gone or refuses; all mean "unavailable, try later".
_UNAVAILABLE = (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)
# ... except these, which refuse the rows themselves (SQLSTATE classes 22 and 23, and asyncpg's
# own check of an argument, e.g. an int beyond BIGINT): retrying them would jam a queue.
_REJECTED = (asyncpg.exceptions.DataError, asyncpg.exceptions.IntegrityConstraintViolationError,
             asyncpg.exceptions._base.DataError)


async def open_database(url: str, *, timeout_s: float = 2.0, pool_size: int = 4
                        ) -> PostgresDatabase:
    db = PostgresDatabase(url, timeout_s=timeout_s, pool_size=pool_size)
    await db.start()
    return db


class PostgresDatabase:
    dialect = "postgres"

    def __init__(self, url: str, *, timeout_s: float, pool_size: int) -> None:
        self._url = url
        self._timeout = timeout_s
        self._size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._sql: dict[str, str] = {}

    async def start(self) -> None:
        """Create the pool (no connection yet) and migrate; safe to call again after a
        StoreUnavailable."""
        try:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    self._url, min_size=0, max_size=self._size, timeout=self._timeout,
                    command_timeout=max(self._timeout, 10.0))
            async with self._pool.acquire(timeout=self._timeout) as conn:
                await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
                try:
                    for statement in SCHEMA:
                        await conn.execute(statement)
                    for table, column, kind in ADDED_COLUMNS:
                        await conn.execute(
                            f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {kind}")
                    for statement in ADDED_INDEXES:
                        await conn.execute(statement)
                finally:
                    await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"postgres: {exc.__class__.__name__}: {exc}") from exc

    def numbered(self, sql: str) -> str:
        """'?' → '$1', '$2' … (the SQL in sql.py has no '?' inside literals)."""
        done = self._sql.get(sql)
        if done is None:
            parts = sql.split("?")
            done = parts[0] + "".join(f"${i}{p}" for i, p in enumerate(parts[1:], 1))
            self._sql[sql] = done
        return done

    def _p(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreUnavailable("postgres: not connected yet")
        return self._pool

    async def execute(self, sql: str, *args: Any) -> None:
        try:
            async with self._p().acquire(timeout=self._timeout) as conn:
                await conn.execute(self.numbered(sql), *args)
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"postgres: {exc.__class__.__name__}: {exc}") from exc

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        try:
            async with self._p().acquire(timeout=self._timeout) as conn:
                await conn.executemany(self.numbered(sql), rows)
        except _REJECTED as exc:
            raise RowsRejected(f"postgres: {exc.__class__.__name__}: {exc}") from exc
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"postgres: {exc.__class__.__name__}: {exc}") from exc

    async def insert_rows(self, insert: BulkInsert, rows: Sequence[Sequence[Any]]) -> None:
        # asyncpg pipelines executemany in one round trip, on the event loop: nothing to gain.
        await self.executemany(insert.statement(1), rows)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        try:
            async with self._p().acquire(timeout=self._timeout) as conn:
                return [tuple(r) for r in await conn.fetch(self.numbered(sql), *args)]
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"postgres: {exc.__class__.__name__}: {exc}") from exc

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Database]:
        try:
            async with self._p().acquire(timeout=self._timeout) as conn, conn.transaction():
                yield _Connection(self, conn)
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"postgres: {exc.__class__.__name__}: {exc}") from exc

    async def close(self) -> None:
        if self._pool is not None:
            try:
                await asyncio.wait_for(self._pool.close(), 5)
            except (TimeoutError, *_UNAVAILABLE):
                self._pool.terminate()
            self._pool = None


class _Connection:
    dialect = "postgres"

    def __init__(self, db: PostgresDatabase, conn: Any) -> None:
        self._db = db
        self._conn = conn

    async def execute(self, sql: str, *args: Any) -> None:
        await self._conn.execute(self._db.numbered(sql), *args)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self._conn.executemany(self._db.numbered(sql), rows)

    async def insert_rows(self, insert: BulkInsert, rows: Sequence[Sequence[Any]]) -> None:
        await self.executemany(insert.statement(1), rows)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        return [tuple(r) for r in await self._conn.fetch(self._db.numbered(sql), *args)]

    def transaction(self) -> Any:
        raise RuntimeError("nested transactions are not supported")

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None
