"""The ledger is the one record per request (issue 12): it holds what the request log had
(stream, time to first token, the auto-router's route), spool lines and databases written by
an older version still load, and an old config's ``storage.request_log`` key still starts."""

from __future__ import annotations

import logging
import sqlite3
import uuid
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import msgspec
import pytest

from polyroute.config import load_config
from polyroute.storage import postgres, sqlite
from polyroute.storage.database import Database
from polyroute.storage.ledger import LedgerEntry
from polyroute.storage.sql import INSERT_LEDGER, LEDGER_BY_REQUEST, LEDGER_COLUMNS

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"

# The ledger table as the version before this one made it: no stream, ttft_ms, route.
OLD_LEDGER = """CREATE TABLE ledger (
    entry_id TEXT PRIMARY KEY, request_id TEXT NOT NULL, ts DOUBLE PRECISION NOT NULL,
    day TEXT NOT NULL, key_id TEXT, team TEXT, org TEXT, endpoint TEXT NOT NULL,
    requested_model TEXT NOT NULL, model_group TEXT, vendor TEXT, deployment TEXT,
    upstream_model TEXT, status INTEGER NOT NULL, error_class TEXT,
    prompt_tokens BIGINT NOT NULL, completion_tokens BIGINT NOT NULL,
    cached_tokens BIGINT NOT NULL, cache_write_tokens BIGINT NOT NULL,
    reasoning_tokens BIGINT NOT NULL, cost_usd DOUBLE PRECISION, priced INTEGER NOT NULL,
    price_source TEXT, latency_ms DOUBLE PRECISION NOT NULL, attempts TEXT NOT NULL,
    usage_estimated INTEGER NOT NULL DEFAULT 0, client_request_id TEXT)"""
OLD_ROW = ("old", "r-old", 1.0, "1970-01-01", None, None, None, "chat", "m", "m", "v", "d",
           "u", 200, None, 1, 2, 0, 0, 0, 0.5, 1, "config", 3.0, "[]", 0, None)


def _entry(entry_id: str) -> LedgerEntry:
    return LedgerEntry(entry_id, "r-new", 2.0, "1970-01-01", None, None, None, "chat", "auto",
                       "auto", "v", "strong", "u", 200, None, 4, 5, 0, 0, 0, 0.25, 1, "config",
                       40.0, "[]", stream=1, ttft_ms=12.5, route="strong;cheap:0.1")


def test_spool_lines_of_older_versions_still_decode() -> None:
    decode = msgspec.json.Decoder(LedgerEntry).decode
    # Written before client_request_id and usage_estimated (25 fields), and just before
    # this change (27 fields): the new fields take their defaults.
    for line in (msgspec.json.encode(list(OLD_ROW[:25])), msgspec.json.encode(list(OLD_ROW))):
        entry = decode(line)
        assert entry.request_id == "r-old" and entry.cost_usd == 0.5
        assert (entry.stream, entry.ttft_ms, entry.route) == (0, None, None)
    new = _entry("n")
    assert decode(msgspec.json.encode(new)) == new
    assert len(msgspec.structs.astuple(new)) == len(LEDGER_COLUMNS)


async def _round_trip(db: Database) -> None:
    await db.executemany(INSERT_LEDGER, [msgspec.structs.astuple(_entry("new"))])
    (old,) = await db.fetch(LEDGER_BY_REQUEST, "r-old", "r-old")
    (new,) = await db.fetch(LEDGER_BY_REQUEST, "r-new", "r-new")
    columns = {name: i for i, name in enumerate(LEDGER_COLUMNS)}
    assert old[columns["cost_usd"]] == 0.5
    assert (old[columns["stream"]], old[columns["ttft_ms"]], old[columns["route"]]) == (
        0, None, None)
    assert (new[columns["stream"]], new[columns["ttft_ms"]], new[columns["route"]]) == (
        1, 12.5, "strong;cheap:0.1")


async def test_an_older_sqlite_ledger_gains_the_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute(OLD_LEDGER)
        conn.execute(f"INSERT INTO ledger VALUES ({', '.join('?' for _ in OLD_ROW)})", OLD_ROW)
    db = await sqlite.open_database(str(path))
    try:
        await _round_trip(db)
    finally:
        await db.close()


async def test_an_older_postgres_ledger_gains_the_columns() -> None:
    name = f"polyroute_t_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(ADMIN_URL)
    await admin.execute(f"CREATE DATABASE {name}")
    try:
        url = f"postgresql://postgres@127.0.0.1:5432/{name}"
        conn = await asyncpg.connect(url)
        await conn.execute(OLD_LEDGER)
        await conn.execute(f"INSERT INTO ledger VALUES "
                           f"({', '.join(f'${i + 1}' for i in range(len(OLD_ROW)))})", *OLD_ROW)
        await conn.close()
        db = await postgres.open_database(url)
        try:
            await _round_trip(db)
        finally:
            await db.close()
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


def test_the_old_request_log_key_is_accepted_with_a_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("storage:\n  request_log: true\n  sqlite_path: x.db\n")
    with caplog.at_level(logging.WARNING, logger="polyroute.config"):
        config = load_config(str(path), {})
    assert config.storage.ledger, "the ledger, the one record per request, stays on"
    assert any("storage.request_log is deprecated" in r.getMessage() for r in caplog.records)

    path.write_text("storage:\n  sqlite_path: x.db\n")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="polyroute.config"):
        load_config(str(path), {})
    assert not any("request_log" in r.getMessage() for r in caplog.records)
