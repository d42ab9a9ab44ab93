"""One SQL implementation, two databases: the key store, the ledger (idempotent inserts) and
the usage queries give the same answers on SQLite and on PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import msgspec
import pytest

from polyroute.storage import postgres, sqlite
from polyroute.storage.database import Database
from polyroute.storage.key_store import KeyStore
from polyroute.storage.ledger import LedgerEntry
from polyroute.storage.sql import INSERT_LEDGER
from polyroute.storage.usage import spend_counters, usage

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture(params=["sqlite", "postgres"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        lite = await sqlite.open_database(str(tmp_path / "x.sqlite"))
        yield lite
        await lite.close()
        return
    name = f"polyroute_t_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(ADMIN_URL)
    await admin.execute(f"CREATE DATABASE {name}")
    try:
        pg = await postgres.open_database(f"postgresql://postgres@127.0.0.1:5432/{name}")
        yield pg
        await pg.close()
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


def _entry(i: int, key: str, vendor: str, cost: float | None, ts: float) -> LedgerEntry:
    return LedgerEntry(f"e{i}", f"r{i}", ts, "2026-01-02", key, "team", "org", "chat", "m",
                       "m", vendor, "dep", "model", 200 if i % 5 else 502, None, 10, 5, 2, 0,
                       1, cost, 0 if cost is None else 1, "config", 12.5, "[]")


async def test_same_answers_on_both(db: Database) -> None:
    store = KeyStore(db)
    assert await store.changes_since(0) is None
    await store.put_org("acme", '{"total_budget_usd": 5.0}', 1.0)
    await store.put_team("web", "acme", "{}", 1.0)
    await store.add_key("abc", "00", "11", "ci", "web", '{"rpm": 3}', None, 2.0)
    changes = await store.changes_since(0)
    assert changes is not None and changes.revision == 3
    assert [r[0] for r in changes.keys] == ["abc"] and changes.teams[0][1] == "acme"
    await store.revoke_key("abc")
    later = await store.changes_since(changes.revision)
    assert later is not None and later.keys[0][8] == 1 and not later.teams

    ts = 1_767_312_000.0  # 2026-01-02 00:00 UTC
    rows = [msgspec.structs.astuple(_entry(i, "k1" if i % 2 else "k2",
                                           "openai" if i < 6 else "anthropic",
                                           None if i == 7 else 0.5, ts + i))
            for i in range(10)]
    await db.executemany(INSERT_LEDGER, rows)
    await db.executemany(INSERT_LEDGER, rows[:4])  # replayed after a crash: ignored
    by_vendor = await usage(db, ["vendor"], ts, ts + 100, {})
    assert [(r.group["vendor"], r.requests, r.cost_usd, r.unpriced_requests, r.failed_requests)
            for r in by_vendor] == [("anthropic", 4, 1.5, 1, 0), ("openai", 6, 3.0, 0, 2)]
    by_key_day = await usage(db, ["key", "day"], ts, ts + 100, {"vendor": "openai"})
    assert {(r.group["key"], r.requests) for r in by_key_day} == {("k1", 3), ("k2", 3)}
    counters = await spend_counters(db, ts + 50, "d20260102", "m202601")
    assert counters["k:k1:t"] == 2_000_000_000  # 4 priced × $0.5 (one of its 5 is unpriced)
    assert counters["t:team:d20260102"] == 4_500_000_000
    with pytest.raises(ValueError):
        await usage(db, ["password"], 0, 1, {})
