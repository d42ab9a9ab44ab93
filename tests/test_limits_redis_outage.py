"""Redis stopped under load (a private redis-server this test pauses and kills): each team
gets its configured behaviour — fail-open teams are served with per-replica limits,
fail-closed teams get 503 — decided within 100 ms, and no request hangs. A budgeted key is
never served without the shared counters (money does not fail open)."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Iterator

import aiohttp
import pytest

from tests.conftest import SIM_KEY
from tests.support.gateway import GatewayProcess
from tests.support.policy import (
    MASTER_KEY,
    RedisServer,
    admin,
    chat_body,
    new_key,
    ok,
    post_chat,
)
from tests.support.sim import SimServer
from tests.test_limits_budget import keyed_config


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    server = RedisServer()
    yield server
    server.close()


async def _phase(session: aiohttp.ClientSession, url: str, keys: dict[str, str],
                 seconds: float) -> dict[str, list[tuple[int, float]]]:
    """Requests from 3 clients per key for ``seconds``: (status, latency) per key name."""
    out: dict[str, list[tuple[int, float]]] = {name: [] for name in keys}
    deadline = time.monotonic() + seconds

    async def client(name: str) -> None:
        while time.monotonic() < deadline:
            status, took, _ = await post_chat(session, url, keys[name], chat_body(),
                                              timeout_s=5)
            out[name].append((status, took))
            await asyncio.sleep(0.01)

    await asyncio.gather(*(client(n) for n in keys for _ in range(3)))
    return out


@pytest.mark.timeout(90)
async def test_each_team_fails_as_configured_within_100ms(private_redis: RedisServer) -> None:
    env = {"SIM_KEY": SIM_KEY, "PR_MASTER": MASTER_KEY}
    with SimServer(api_key=SIM_KEY) as sim:
        config = keyed_config(sim, state={"redis_url": private_redis.url})
        with GatewayProcess(config, env) as gw:
            ok(admin(gw, "POST", "/admin/teams",
                     {"id": "open-team", "rpm": 100_000, "on_state_outage": "open"}))
            ok(admin(gw, "POST", "/admin/teams",
                     {"id": "closed-team", "rpm": 100_000, "on_state_outage": "closed"}))
            keys = {"open": new_key(gw, team="open-team"),
                    "closed": new_key(gw, team="closed-team"),
                    "budgeted": new_key(gw, team="open-team", daily_budget_usd=100.0)}
            async with aiohttp.ClientSession() as session:
                healthy = await _phase(session, gw.base_url, keys, 0.5)
                assert all(s == 200 for v in healthy.values() for s, _ in v)

                for outage in ("pause", "kill"):
                    private_redis.pause() if outage == "pause" else private_redis.stop()
                    down = await _phase(session, gw.base_url, keys, 1.5)
                    opened = [s for s, _ in down["open"]]
                    closed = [(s, t) for s, t in down["closed"]]
                    assert set(opened) == {200}, (outage, opened)
                    assert {s for s, _ in closed[3:]} == {503}, (outage, closed)
                    assert {s for s, _ in down["budgeted"][3:]} == {503}
                    latencies = [t for v in down.values() for _, t in v]
                    assert max(latencies) < 0.3, (outage, max(latencies))  # nothing hangs
                    refusals = [t for s, t in closed if s == 503]
                    assert max(refusals) < 0.15 and statistics.median(refusals) < 0.05, (
                        outage, sorted(refusals)[-5:])
                    private_redis.resume() if outage == "pause" else private_redis.start()
                    await asyncio.sleep(0.6)  # the watchdog notices within tens of ms
                    back = await _phase(session, gw.base_url, keys, 0.5)
                    assert all(s == 200 for v in back.values() for s, _ in v), (outage, {
                        k: sorted({s for s, _ in v}) for k, v in back.items()})
            assert "redis is back" in gw.log()
