"""One gateway, limits in process: 200 concurrent requests on a key whose budget covers about
20 never spend past the budget, and every request is in the ledger exactly once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from tests.conftest import SIM_KEY
from tests.support.gateway import GatewayProcess
from tests.support.policy import MASTER_KEY, admin, chat_body, new_key, ok, post_chat
from tests.support.sim import SimServer

PRICE = {"input_per_1m": 100.0, "output_per_1m": 100.0}


def keyed_config(sim: SimServer, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "providers": {"sim": {"base_url": sim.base_url, "api_key": "${SIM_KEY}"}},
        "model_groups": {"chat": {"deployments": [
            {"provider": "sim", "model": "gpt-4o-mini", "price": PRICE}]}},
        "auth": {"master_key": "${PR_MASTER}"},
        "storage": {"flush_interval_s": 0.1},
    }
    config.update(extra)
    return config


@pytest.fixture(scope="module")
def gw() -> Iterator[GatewayProcess]:
    with SimServer(api_key=SIM_KEY, latency_ms=40) as sim, GatewayProcess(
            keyed_config(sim), env={"SIM_KEY": SIM_KEY, "PR_MASTER": MASTER_KEY}) as gateway:
        yield gateway


@pytest.mark.timeout(60)
async def test_200_concurrent_requests_never_overspend(gw: GatewayProcess) -> None:
    budget = 0.05  # ~20 requests of $0.0025; each reserves $0.0039 until it settles
    key = new_key(gw, daily_budget_usd=budget)
    key_id = key.split("-")[2]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        results = await asyncio.gather(*(
            post_chat(session, gw.base_url, key, chat_body(max_tokens=30), f"b{i}")
            for i in range(200)))
        statuses = [r[0] for r in results]
        assert set(statuses) <= {200, 429}
        served = statuses.count(200)
        assert 12 <= served <= 20
        codes = {r[2]["error"]["code"] for r in results if r[0] == 429}
        assert codes == {"budget_exceeded"}
        # Later, sequentially: the budget fills up to what is left, then refuses.
        for _ in range(10):
            status, _, _ = await post_chat(session, gw.base_url, key, chat_body(max_tokens=30))
            served += status == 200
    deadline = time.monotonic() + 10
    while True:
        rows = ok(admin(gw, "GET", f"/admin/usage?by=key&key={key_id}&since=1h"))["data"]
        if (rows and rows[0]["requests"] == 210) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    spent = rows[0]["cost_usd"]
    assert rows[0]["requests"] == 210 and spent <= budget + 1e-12
    assert spent == pytest.approx(served * 0.0025) and served >= 18
    status = ok(admin(gw, "GET", f"/admin/keys/{key_id}/budget"))
    assert status["spent_today_usd"] == pytest.approx(spent) and status["reserved_usd"] == 0
