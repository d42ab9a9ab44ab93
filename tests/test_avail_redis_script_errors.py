"""Issue 10, item 6: one request must not make a replica drop its shared Redis limits.

The attack: ``max_tokens: -10**30`` (and absurd positive values) from the official SDK. A Lua
script error is a bug report for that request, never an outage; a settlement Redis refuses is
not retried. Real Redis throughout (a private server for the gateway, the shared one with a
unique key prefix for the limiter-level tests)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import openai
import pytest
import redis.asyncio as aioredis

from polyroute.errors import InvalidRequest
from polyroute.state.limits import Grant, Scope
from polyroute.state.redis_limits import LimitsScriptError, RedisLimiter
from tests.conftest import SIM_KEY
from tests.support.gateway import GatewayProcess
from tests.support.policy import MASTER_KEY, RedisServer, admin, new_key, ok
from tests.support.sim import SimServer
from tests.test_limits_budget import keyed_config

SHARED_REDIS = "redis://127.0.0.1:6379/0"


async def _no_spend() -> dict[str, int]:
    return {}


@pytest.fixture
async def limiter() -> AsyncIterator[tuple[RedisLimiter, aioredis.Redis, str]]:
    client = aioredis.from_url(SHARED_REDIS)
    prefix = f"avail-{uuid.uuid4().hex[:8]}:{{lim}}:"
    lim = RedisLimiter(client, lease_ttl_s=5, timeout_s=0.5, load_spend=_no_spend,
                       prefix=prefix)
    await lim.ensure_seeded()
    yield lim, client, prefix
    await lim.aclose()
    keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    server = RedisServer()
    yield server
    server.close()


@pytest.mark.timeout(90)
def test_absurd_max_tokens_leaves_shared_limits_up(private_redis: RedisServer) -> None:
    env = {"SIM_KEY": SIM_KEY, "PR_MASTER": MASTER_KEY}
    with SimServer(api_key=SIM_KEY) as sim, GatewayProcess(
            keyed_config(sim, state={"redis_url": private_redis.url}), env) as gw:
        ok(admin(gw, "POST", "/admin/teams", {"id": "t", "tpm": 1_000_000, "rpm": 10_000,
                                               "on_state_outage": "closed"}))
        attacker = openai.OpenAI(base_url=gw.base_url, api_key=new_key(gw, team="t"),
                                 max_retries=0)
        victim = openai.OpenAI(base_url=gw.base_url, api_key=new_key(gw, team="t"),
                               max_retries=0)
        messages = [{"role": "user", "content": "hi"}]
        for absurd in (-10**30, 10**30, 2**63, -2**70):
            with pytest.raises(openai.BadRequestError):
                attacker.chat.completions.create(model="chat", messages=messages,  # type: ignore[arg-type]
                                                 max_tokens=absurd)
        # Every other request of this (fail-closed) team is still admitted through Redis.
        for _ in range(5):
            reply = victim.chat.completions.create(model="chat", messages=messages,  # type: ignore[arg-type]
                                                   max_tokens=10)
            assert reply.choices[0].message.content
        # The last settlement waits up to 5 ms for an admission to share its write.
        deadline = time.monotonic() + 5
        while (status := ok(admin(gw, "GET", "/admin/status")))["state"][
                "queued_settlements"] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert status["state"]["healthy"] is True
        assert status["state"]["queued_settlements"] == 0
        assert "redis unavailable" not in gw.log()


async def test_out_of_range_numbers_never_reach_lua(
    limiter: tuple[RedisLimiter, aioredis.Redis, str],
) -> None:
    lim, _, _ = limiter
    scope = Scope("k:a", rpm=100, tpm=10**6, max_concurrent=5)
    for tokens, cost in ((-10**30, 0), (10**30, 0), (-1, 0), (10, -5), (10, 2**63)):
        with pytest.raises(InvalidRequest):
            await lim.acquire(uuid.uuid4().hex, [scope], tokens, cost, 0.0)
    assert lim.healthy
    grant = await lim.acquire("ok", [scope], 10, 0, 0.0)
    assert isinstance(grant, Grant)
    # Absurd settlement figures (an upstream that reports 10**30 tokens) are clamped, applied
    # once, and leave Redis healthy.
    lim.release(grant, 10**40, 10**30)
    await asyncio.sleep(0.3)
    assert lim.healthy and lim.queued == 0 and lim.rejected_settlements == 0


async def test_a_script_error_fails_one_request_not_the_replica(
    limiter: tuple[RedisLimiter, aioredis.Redis, str],
) -> None:
    lim, client, prefix = limiter
    # A corrupt key (wrong type) makes the admission script raise inside Redis.
    await client.set(f"{prefix}r:k:broken", "not a hash")
    broken, fine = Scope("k:broken", rpm=100), Scope("k:fine", rpm=100, tpm=10**6)
    with pytest.raises(LimitsScriptError) as refused:
        await lim.acquire("l1", [broken], 10, 0, 0.0)
    assert refused.value.status == 500
    assert lim.healthy  # not an outage: no fail-open, no fail-closed for anyone else
    grants = [await lim.acquire(f"f{i}", [fine], 10, 0, 0.0) for i in range(3)]
    assert all(isinstance(g, Grant) for g in grants)

    # A settlement that fails inside Redis is dropped and counted, once; the others in the
    # same batch are applied, and nothing is retried.
    await client.set(f"{prefix}t:k:fine", "corrupt")  # its token bucket is now unusable
    good = Scope("k:good", max_concurrent=2)
    held = [await lim.acquire(f"g{i}", [good], 1, 0, 0.0) for i in range(2)]
    assert all(isinstance(g, Grant) for g in held)
    assert not isinstance(await lim.acquire("g3", [good], 1, 0, 0.0), Grant)  # both slots held
    for g in [*grants, *held]:
        assert isinstance(g, Grant)
        lim.release(g, 0, 50)  # the token delta of 'fine' hits the corrupt key
    await asyncio.sleep(0.5)
    assert lim.healthy and lim.queued == 0
    assert lim.rejected_settlements == 3
    assert isinstance(await lim.acquire("g4", [good], 1, 0, 0.0), Grant)  # slots came back
