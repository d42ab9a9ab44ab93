"""Issue 10, item 9: one NUL byte in a model name jammed the PostgreSQL ledger for good (the
batch was retried forever, and the spool was adopted again after every restart).

A row the database refuses is quarantined (the spool directory's quarantine.jsonl, a metric,
a log line) and every other row is still written — in the running writer, and after a restart
that adopts a spool holding such rows. Real PostgreSQL (a fresh database on the shared
server) and real SQLite."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg  # type: ignore[import-untyped]
import msgspec
import pytest

from polyroute.storage import postgres, sqlite
from polyroute.storage.database import Database
from polyroute.storage.ledger import LedgerEntry, LedgerWriter
from polyroute.storage.spool import Spool
from tests.conftest import SIM_KEY
from tests.support.gateway import GatewayProcess
from tests.support.policy import MASTER_KEY, admin, chat_body, new_key, ok, post_chat
from tests.support.sim import SimServer
from tests.test_limits_budget import keyed_config

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    name = f"polyroute_avail_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(PG_ADMIN)
    await conn.execute(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await conn.close()


def _entry(i: int, model: str = "m", prompt_tokens: int = 10) -> LedgerEntry:
    return LedgerEntry(f"e{i}-{uuid.uuid4().hex[:6]}", f"r{i}", time.time(), "2026-12-03",
                       None, None, None, "chat", model, "m", "sim", "dep", "model", 200, None,
                       prompt_tokens, 5, 0, 0, 0, 0.001, 1, "config", 12.5, "[]")


async def _count(db: Database) -> int:
    return int((await db.fetch("SELECT COUNT(*) FROM ledger"))[0][0])


async def _wait_for_rows(db: Database, n: int, timeout_s: float = 20) -> int:
    deadline = time.monotonic() + timeout_s
    count = await _count(db)
    while count < n and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        count = await _count(db)
    return count


@pytest.mark.parametrize("backend", ["postgres", "sqlite"])
async def test_refused_rows_are_quarantined_and_every_other_row_written(
    backend: str, pg_url: str, tmp_path: Path,
) -> None:
    db: Database
    if backend == "postgres":
        db = await postgres.open_database(pg_url)
        bad = {7: _entry(7, model="gpt\x00-4o"), 33: _entry(33, model="\x00"),
               50: _entry(50, prompt_tokens=10**30)}
    else:  # SQLite stores NUL bytes; an integer beyond 64 bits it cannot bind
        db = await sqlite.open_database(str(tmp_path / "ledger.db"))
        bad = {50: _entry(50, prompt_tokens=10**30), 51: _entry(51, prompt_tokens=-(2**70))}
    spool = Spool(str(tmp_path / "spool"))
    writer = LedgerWriter(spool, db, batch=100)
    writer.open()
    for i in range(60):
        writer.append(bad.get(i) or _entry(i))
    async with asyncio.timeout(30):
        await writer.flush()  # returns: nothing is retried forever
    assert await _count(db) == 60 - len(bad)
    assert writer.quarantined == len(bad)
    assert spool.backlog_bytes() == 0  # the spool moves on
    lines = [json.loads(x) for x in writer.quarantine_path.read_text().splitlines()]
    assert sorted(q["record"][0] for q in lines) == sorted(e.entry_id for e in bad.values())
    assert all(q["reason"] for q in lines)
    writer.append(_entry(100))  # and later rows still go in
    await writer.flush()
    assert await _count(db) == 61 - len(bad)
    await writer.aclose()
    await db.close()


@pytest.mark.timeout(120)
async def test_a_restart_adopting_a_spool_with_refused_rows_writes_the_rest(
    pg_url: str, tmp_path: Path,
) -> None:
    spool_dir = tmp_path / "spool"
    # The spool of a process that died (or of an older version) with two poisoned records.
    dead = Spool(str(spool_dir))
    dead.open()
    entries = [_entry(i, model="sim/a\x00b" if i in (3, 11) else "m") for i in range(20)]
    for entry in entries:
        dead.append(msgspec.json.encode(entry) + b"\n")
    dead.sync()
    dead.close()

    db = await postgres.open_database(pg_url)
    env = {"SIM_KEY": SIM_KEY, "PR_MASTER": MASTER_KEY}
    with SimServer(api_key=SIM_KEY) as sim:
        config = keyed_config(sim, storage={"postgres_url": pg_url, "spool_dir": str(spool_dir),
                                            "flush_interval_s": 0.1})
        with GatewayProcess(config, env) as gw:
            assert await _wait_for_rows(db, 18) == 18
            key = new_key(gw)
            async with aiohttp.ClientSession() as session:
                for i in range(5):
                    status, _, _ = await post_chat(session, gw.base_url, key, chat_body(),
                                                   request_id=f"live-{i}")
                    assert status == 200
            assert await _wait_for_rows(db, 23) == 23  # live requests are ledgered behind them
            ledger = ok(admin(gw, "GET", "/admin/status"))["ledger"]
            assert ledger["quarantined"] == 2 and ledger["failing"] is False
            status, metrics = gw.get("/metrics")
            assert b"polyroute_ledger_quarantined_records 2.0" in metrics
            assert "ledger: quarantined 1 record(s) (postgres: " in gw.log()
    await db.close()
    quarantined = (spool_dir / "quarantine.jsonl").read_text().splitlines()
    assert len(quarantined) == 2
