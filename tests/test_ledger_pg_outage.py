"""PostgreSQL stopped for ~30 s under load (a private cluster this test starts on its own
port): keys the gateway knows keep being served from its cache, an unknown key gets 503 (not
401), and once PostgreSQL is back the ledger is complete, with nothing twice."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator

import aiohttp
import pytest

from tests.conftest import SIM_KEY
from tests.support.gateway import GatewayProcess
from tests.support.policy import (
    MASTER_KEY,
    PgCluster,
    admin,
    chat_body,
    new_key,
    ok,
    post_chat,
)
from tests.support.sim import SimServer
from tests.test_limits_budget import keyed_config

OUTAGE_S = float(os.environ.get("POLYROUTE_TEST_PG_OUTAGE_S", "30"))


@pytest.fixture
def pg() -> Iterator[PgCluster]:
    cluster = PgCluster()
    yield cluster
    cluster.close()


@pytest.mark.timeout(120)
async def test_postgres_outage_under_load(pg: PgCluster) -> None:
    env = {"SIM_KEY": SIM_KEY, "PR_MASTER": MASTER_KEY}
    with SimServer(api_key=SIM_KEY, latency_ms=20) as sim:
        config = keyed_config(sim)
        config["storage"].update({"postgres_url": pg.url, "flush_interval_s": 0.2})
        config["auth"]["refresh_s"] = 0.5
        with GatewayProcess(config, env) as gw:
            ok(admin(gw, "POST", "/admin/teams", {"id": "t", "rpm": 100_000}))
            key = new_key(gw, team="t", monthly_budget_usd=1000.0)
            answered: dict[str, int] = {}
            stop = asyncio.Event()

            async def client(n: int, session: aiohttp.ClientSession) -> None:
                i = 0
                while not stop.is_set():
                    rid = f"p{n}-{i}"
                    i += 1
                    status, _, body = await post_chat(session, gw.base_url, key, chat_body(),
                                                      rid, timeout_s=5)
                    answered[rid] = status
                    assert status == 200, body
                    await asyncio.sleep(0.05)  # ~80 requests a second in all

            async with aiohttp.ClientSession() as session:
                clients = [asyncio.create_task(client(n, session)) for n in range(4)]
                await asyncio.sleep(1.0)
                pg.stop()
                down_at = time.monotonic()
                await asyncio.sleep(1.0)
                # a well-formed key the gateway has never seen: it cannot tell, so 503
                unknown = "sk-pr-0123456789abcdef-" + "x" * 43
                status, _, body = await post_chat(session, gw.base_url, unknown, chat_body())
                assert status == 503, body
                while time.monotonic() - down_at < OUTAGE_S:
                    await asyncio.sleep(0.5)
                    assert all(not c.done() for c in clients), [
                        c.exception() for c in clients if c.done()]
                backlog = ok(admin(gw, "GET", "/admin/status"))["ledger"]
                assert backlog["failing"] and backlog["backlog_bytes"] > 0
                pg.start()
                await asyncio.sleep(1.0)
                stop.set()
                await asyncio.gather(*clients)
            assert set(answered.values()) == {200} and len(answered) > OUTAGE_S * 30

            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if ok(admin(gw, "GET", "/admin/status"))["ledger"]["backlog_bytes"] == 0:
                    break
                await asyncio.sleep(0.2)
            rows = pg.query("SELECT client_request_id, COUNT(*) FROM ledger "
                            "GROUP BY client_request_id")
        counts = dict(line.split("|") for line in rows.splitlines())
        assert {rid for rid in answered if counts.get(rid) == "1"} == set(answered)
        assert len(counts) == len(answered) and set(counts.values()) == {"1"}
