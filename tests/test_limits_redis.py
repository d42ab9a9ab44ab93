"""The shared limiter on a real Redis: several limiter instances (as several replicas) never
admit more than a limit allows, reservations hold across them, and a dead replica's leases
expire."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from polyroute.state.limits import Denial, Grant, Scope
from polyroute.state.redis_limits import RedisLimiter

REDIS_URL = "redis://127.0.0.1:6379/12"


async def _no_spend() -> dict[str, int]:
    return {}


@pytest.fixture
async def replicas() -> AsyncIterator[list[RedisLimiter]]:
    clients = [aioredis.from_url(REDIS_URL) for _ in range(3)]
    await clients[0].flushdb()
    limiters = [RedisLimiter(c, lease_ttl_s=1.5, timeout_s=0.5, load_spend=_no_spend,
                             prefix="t:{lim}:") for c in clients]
    await limiters[0].ensure_seeded()
    yield limiters
    for limiter, client in zip(limiters, clients, strict=True):
        await limiter.aclose()
        await client.aclose()


async def test_rpm_and_concurrency_are_exact_across_replicas(
    replicas: list[RedisLimiter],
) -> None:
    scope = Scope("t:team", rpm=25, max_concurrent=5)
    now = 0.0  # the scripts use Redis's clock; ``now`` only names the budget periods

    async def one(i: int) -> Grant | Denial:
        return await replicas[i % 3].acquire(f"l{i}", [scope], 10, 0, now)

    results = await asyncio.gather(*(one(i) for i in range(60)))
    granted = [r for r in results if isinstance(r, Grant)]
    assert len(granted) == 5  # concurrency, not RPM, bound this burst
    assert {r.kind for r in results if isinstance(r, Denial)} == {"concurrency"}
    for i, g in enumerate(granted):
        replicas[i % 3].release(g, 0, 10)
    await asyncio.sleep(0.2)  # settlements are applied in the background
    results = await asyncio.gather(*(one(100 + i) for i in range(60)))
    granted2 = [r for r in results if isinstance(r, Grant)]
    assert len(granted2) == 5
    for i, g in enumerate(granted2):
        replicas[i % 3].release(g, 0, 10)
    await asyncio.sleep(0.2)
    total = 10
    while total < 25:
        batch = await asyncio.gather(*(one(1000 + total + i) for i in range(5)))
        got = [r for r in batch if isinstance(r, Grant)]
        total += len(got)
        for i, g in enumerate(got):
            replicas[i % 3].release(g, 0, 10)
        await asyncio.sleep(0.1)
    denied = await one(5000)
    assert isinstance(denied, Denial) and denied.kind == "rpm"
    assert denied.retry_after is not None and 50 < denied.retry_after <= 61


async def test_budget_reservations_are_shared_and_leases_expire(
    replicas: list[RedisLimiter],
) -> None:
    scope = Scope("k:b", budgets=(("d", 1000), ("t", 5000)))
    results = await asyncio.gather(*(
        replicas[i % 3].acquire(f"r{i}", [scope], 1, 300, 0.0) for i in range(10)))
    granted = [r for r in results if isinstance(r, Grant)]
    assert len(granted) == 3  # 3 × 300 reserved fits in 1000, a fourth does not
    replicas[0].release(granted[0], 250, 1)  # settles below its reservation
    await asyncio.sleep(0.2)
    # spent 250 + reserved 600: 150 more fits exactly, 151 does not
    assert isinstance(await replicas[1].acquire("r19", [scope], 1, 151, 0.0), Denial)
    assert isinstance(await replicas[1].acquire("r20", [scope], 1, 150, 0.0), Grant)
    # the replica holding the other leases "dies": no release, no renewal
    await asyncio.sleep(1.8)
    assert isinstance(await replicas[2].acquire("r21", [scope], 1, 300, 0.0), Grant)
    day, _, total, reserved, _ = await replicas[0].read("k:b", granted[0].periods)
    assert (day, total, reserved) == (250, 250, 300)


async def test_unreachable_redis_fails_fast() -> None:
    client = aioredis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.1,
                               socket_timeout=0.1)
    limiter = RedisLimiter(client, lease_ttl_s=30, timeout_s=0.08, load_spend=_no_spend)
    loop = asyncio.get_running_loop()
    from polyroute.state.limits import StateUnavailable

    for _ in range(3):
        started = loop.time()
        with pytest.raises(StateUnavailable):
            await limiter.acquire("x", [Scope("k:x", rpm=1)], 1, 0, 0.0)
        assert loop.time() - started < 0.1
    assert not limiter.healthy
    await limiter.aclose()
    await client.aclose()
