"""kill -9 of the gateway under load, then a restart: every request that got a response has
exactly one ledger record, and none is duplicated (the spool survives the crash; the restart
adopts it and the idempotent insert absorbs what was already flushed)."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import tempfile
import time
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import SIM_KEY
from tests.support.gateway import GatewayProcess
from tests.support.policy import MASTER_KEY, admin, chat_body, new_key, ok, post_chat
from tests.support.sim import SimServer
from tests.test_limits_budget import keyed_config


@pytest.mark.timeout(90)
async def test_kill_9_under_load_loses_and_duplicates_nothing() -> None:
    env = {"SIM_KEY": SIM_KEY, "PR_MASTER": MASTER_KEY}
    with tempfile.TemporaryDirectory(prefix="polyroute-crash-") as tmp, SimServer(
            api_key=SIM_KEY, latency_ms=15) as sim:
        workdir = Path(tmp)
        config = keyed_config(sim)
        config["storage"]["flush_interval_s"] = 0.3  # some records flushed, some only spooled
        first = GatewayProcess(config, env, tmp=workdir)
        key = new_key(first, rpm=100_000)
        answered: dict[str, int] = {}
        stop = asyncio.Event()

        async def client(n: int, session: aiohttp.ClientSession) -> None:
            for i in range(100_000):
                if stop.is_set():
                    return
                rid = f"c{n}-{i}"
                status, _, _ = await post_chat(session, first.base_url, key, chat_body(),
                                               rid, timeout_s=5)
                if status == 0:
                    return  # the gateway is gone
                answered[rid] = status

        async with aiohttp.ClientSession() as session:
            clients = [asyncio.create_task(client(n, session)) for n in range(16)]
            await asyncio.sleep(1.5)
            os.kill(first.proc.pid, signal.SIGKILL)
            first.proc.wait(5)
            stop.set()
            await asyncio.wait_for(asyncio.gather(*clients), 10)
        first.close()
        assert len(answered) > 100 and set(answered.values()) == {200}

        with GatewayProcess(config, env, tmp=workdir) as second:  # adopts the spool
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                status = ok(admin(second, "GET", "/admin/status"))
                if status["ledger"]["backlog_bytes"] == 0:
                    break
                await asyncio.sleep(0.1)
            counts = dict(sqlite3.connect(second.db_path).execute(
                "SELECT client_request_id, COUNT(*) FROM ledger "
                "GROUP BY client_request_id").fetchall())
        missing = [rid for rid in answered if counts.get(rid) != 1]
        assert not missing, f"{len(missing)} answered requests without exactly one record"
        assert all(n == 1 for n in counts.values()), "a record was duplicated"
        assert len(counts) - len(answered) <= 16  # at most the requests in flight at the kill
        assert not list((workdir / "spool").glob("*.seg"))[1:], "old segments left behind"
