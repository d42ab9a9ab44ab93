"""Opens the embedded SQLite database. Everything else about storage is in :mod:`.sql`."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from polyroute.storage.database import Database, Row, RowsRejected, StoreUnavailable
from polyroute.storage.sql import ADDED_COLUMNS, ADDED_INDEXES, SCHEMA, BulkInsert

T = TypeVar("T")


def connect(path: str) -> sqlite3.Connection:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    # First: with several processes (serve --workers) even switching to WAL may wait a lock.
    conn.execute("PRAGMA busy_timeout=5000")
    conn.execute("PRAGMA journal_mode=WAL")
    # WAL + NORMAL survives a process crash; only an OS crash can lose the last commits.
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


async def open_database(path: str) -> SqliteDatabase:
    db = SqliteDatabase(path)
    await db.start()
    return db


class SqliteDatabase:
    """sqlite3 on one worker thread, so the event loop never waits on the disk. One
    connection, so operations are serialised by a lock (a transaction holds it throughout)."""

    dialect = "sqlite"

    def __init__(self, path: str) -> None:
        self._path = path
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="polyroute-sqlite")
        self._conn: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        def open_and_migrate() -> sqlite3.Connection:
            conn = connect(self._path)
            for statement in SCHEMA:
                conn.execute(statement)
            for table, column, kind in ADDED_COLUMNS:
                have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
                if column not in have:
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
            for statement in ADDED_INDEXES:
                conn.execute(statement)
            return conn

        self._conn = await self._run(open_and_migrate)

    async def _run(self, fn: Callable[[], T]) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"sqlite: {exc}") from exc

    def _c(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreUnavailable("sqlite: not open yet")
        return self._conn

    async def execute(self, sql: str, *args: Any) -> None:
        async with self._lock:
            await self._run(lambda: self._c().execute(sql, args))

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self._write(lambda: _many(self._c(), sql, rows))

    async def insert_rows(self, insert: BulkInsert, rows: Sequence[Sequence[Any]]) -> None:
        await self._write(lambda: _bulk(self._c(), insert, rows))

    async def _write(self, fn: Callable[[], None]) -> None:
        async with self._lock:
            try:
                await self._run(fn)
            except StoreUnavailable as exc:
                if isinstance(exc.__cause__, (sqlite3.IntegrityError, sqlite3.DataError)):
                    raise RowsRejected(str(exc)) from exc.__cause__
                raise
            except OverflowError as exc:  # an int beyond SQLite's 64 bits, refused at binding
                raise RowsRejected(f"sqlite: {exc}") from exc

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        async with self._lock:
            return await self._run(lambda: self._c().execute(sql, args).fetchall())

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Database]:
        async with self._lock:
            await self._run(lambda: self._c().execute("BEGIN IMMEDIATE"))
            inner = _InTransaction(self)
            try:
                yield inner
            except BaseException:
                await self._run(lambda: self._c().execute("ROLLBACK"))
                raise
            await self._run(lambda: self._c().execute("COMMIT"))

    async def close(self) -> None:
        if self._conn is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._conn.close)
            self._conn = None
        self._executor.shutdown(wait=True)


def _many(conn: sqlite3.Connection, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    conn.execute("BEGIN")
    try:
        conn.executemany(sql, rows)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


ROWS_PER_STATEMENT = 100
"""Rows per INSERT in a bulk write: one GIL hand-back per statement instead of per row (see
``sql.BulkInsert``); 100 ledger rows bind 3,000 parameters, far below SQLite's 32,766."""


def statement_sizes(rows: int) -> list[int]:
    """How many rows each INSERT of a bulk write of ``rows`` carries: full statements, then
    the rest in powers of two (99 = 64 + 32 + 2 + 1).

    Only these eight sizes are ever prepared. sqlite3 keeps each distinct SQL text prepared in
    its statement cache (128 entries) for the connection's life, and a 100-row ledger INSERT
    prepared is hundreds of KB of the database thread's C heap: one statement per remainder
    size (1..99) grew a soaking gateway's private memory by ~15 MB before it levelled off
    (issue 12 item 6, docs/notes.md)."""
    sizes = [ROWS_PER_STATEMENT] * (rows // ROWS_PER_STATEMENT)
    rest, size = rows % ROWS_PER_STATEMENT, 1 << (ROWS_PER_STATEMENT.bit_length() - 1)
    while rest:
        if rest >= size:
            sizes.append(size)
            rest -= size
        size >>= 1
    return sizes


def _bulk(conn: sqlite3.Connection, insert: BulkInsert, rows: Sequence[Sequence[Any]]) -> None:
    conn.execute("BEGIN")
    try:
        start = 0
        for size in statement_sizes(len(rows)):
            part = rows[start:start + size]
            start += size
            conn.execute(insert.statement(size), [value for row in part for value in row])
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class _InTransaction:
    """The same connection, already holding the lock and inside BEGIN."""

    dialect = "sqlite"

    def __init__(self, outer: SqliteDatabase) -> None:
        self._outer = outer

    async def execute(self, sql: str, *args: Any) -> None:
        o = self._outer
        await o._run(lambda: o._c().execute(sql, args))

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        o = self._outer
        await o._run(lambda: o._c().executemany(sql, rows))

    async def insert_rows(self, insert: BulkInsert, rows: Sequence[Sequence[Any]]) -> None:
        await self.executemany(insert.statement(1), rows)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        o = self._outer
        return await o._run(lambda: o._c().execute(sql, args).fetchall())

    def transaction(self) -> Any:
        raise RuntimeError("nested transactions are not supported")

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None
