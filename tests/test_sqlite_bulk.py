"""Bulk INSERTs into SQLite prepare a bounded set of statements (issue 12 item 6): sqlite3
keeps every distinct SQL text prepared for the connection's life, so one INSERT text per batch
size grew a soaking gateway's private memory by ~15 MB."""

from __future__ import annotations

import asyncio
from pathlib import Path

from polyroute.storage.sql import BulkInsert
from polyroute.storage.sqlite import ROWS_PER_STATEMENT, SqliteDatabase, statement_sizes

_INSERT = BulkInsert(head="INSERT INTO t (n, a, b) VALUES ", row="(?, ?, ?)", tail="")


def test_statement_sizes_cover_every_row_with_eight_sizes_at_most() -> None:
    seen: set[int] = set()
    for rows in range(0, 1001):
        sizes = statement_sizes(rows)
        assert sum(sizes) == rows
        assert sizes.count(ROWS_PER_STATEMENT) == rows // ROWS_PER_STATEMENT
        seen.update(sizes)
    assert seen == {1, 2, 4, 8, 16, 32, 64, 100}


def test_bulk_writes_of_every_size_store_every_row_through_few_statements(
        tmp_path: Path) -> None:
    async def run() -> tuple[int, int, set[str]]:
        db = SqliteDatabase(str(tmp_path / "bulk.db"))
        await db.start()
        texts: set[str] = set()
        # The connection is private: a trace callback is the only window on what it prepares.
        conn = db._conn
        assert conn is not None
        conn.set_trace_callback(
            lambda sql: texts.add(str(sql.count("), (") + 1))
            if sql.startswith("INSERT INTO t ") else None)
        await db.execute("CREATE TABLE t (n INTEGER, a INTEGER, b TEXT)")
        written = 0
        for size in range(1, 251):
            await db.insert_rows(_INSERT, [(size, i, f"row {i}") for i in range(size)])
            written += size
        stored = (await db.fetch("SELECT count(*) FROM t"))[0][0]
        await db.close()
        return written, int(stored), texts

    written, stored, texts = asyncio.run(run())
    assert stored == written == sum(range(1, 251))
    # rows per statement, as the SQL texts bound them: eight distinct texts, not 100
    assert texts == {"1", "2", "4", "8", "16", "32", "64", "100"}
