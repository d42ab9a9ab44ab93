"""Per-deployment limits (issue 18, item 2): a deployment's own rpm/tpm (the vendor's quota)
enforced in the limiter the keys use — exact across replicas through Redis — with requests
queued for a bounded time when room returns within it, else moved on or refused with 429."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from random import Random

import openai
import pytest
import redis.asyncio as aioredis

from polyroute.config import Deployment, Endpoint
from polyroute.config.compiled import Resilience
from polyroute.engine.attempts import AttemptLoop
from polyroute.engine.circuit import Breakers
from polyroute.engine.quota_gate import QuotaCheck
from polyroute.errors import RateLimited
from polyroute.model.record import RequestRecord
from polyroute.policy.deployment_limits import DeploymentLimits
from polyroute.state.memory_limits import MemoryLimiter
from polyroute.state.redis_limits import RedisLimiter
from tests.support.gateway import GatewayProcess
from tests.support.sim import SimServer

ENDPOINT = Endpoint("v", "openai", "http://127.0.0.1:1/v1", {})
REDIS_URL = "redis://127.0.0.1:6379/12"
USER = [{"role": "user", "content": "hi"}]


def _dep(name: str, rpm: int | None = None, tpm: int | None = None) -> Deployment:
    return Deployment(name=name, vendor="v", model=name, endpoint=ENDPOINT, rpm=rpm, tpm=tpm)


def _loop(candidates: list[Deployment], quota: QuotaCheck) -> AttemptLoop[str]:
    return AttemptLoop(
        group="g", candidates=candidates, resilience=Resilience(),
        record=RequestRecord("r", 0.0, "chat", "g"), breakers=Breakers(time.monotonic),
        deadline=asyncio.get_running_loop().time() + 10, clock=time.perf_counter,
        rng=Random(0), quota=quota)


async def _answer(dep: Deployment) -> str:
    return dep.name


async def test_a_request_queues_until_the_deployment_has_room_again() -> None:
    # The limiter counts in one-minute windows: its clock is moved to the window's last
    # 0.2 s, so the quota frees up while the request waits.
    offset = [0.0]
    start = time.monotonic()
    limits = DeploymentLimits(MemoryLimiter(),
                              clock=lambda: 1000.0 + offset[0] + time.monotonic() - start)
    capped = _dep("capped", rpm=1)
    assert await limits.take(capped, 10) is None
    offset[0] = 60.8
    t0 = time.monotonic()
    result, dep = await _loop([capped], QuotaCheck(limits, 10, queue_s=1.0)).run(_answer)
    waited = time.monotonic() - t0
    assert (result, dep.name) == ("capped", "capped")
    assert 0.1 <= waited <= 0.6, waited


async def test_beyond_the_queue_time_the_request_is_refused_with_retry_after() -> None:
    limits = DeploymentLimits(MemoryLimiter())
    capped = _dep("capped", rpm=1)
    assert await limits.take(capped, 10) is None
    with pytest.raises(RateLimited) as caught:
        await _loop([capped], QuotaCheck(limits, 10, queue_s=0.5)).run(_answer)
    assert caught.value.code == "deployment_quota_exceeded"
    assert caught.value.retry_after is not None and 55 <= caught.value.retry_after <= 61
    assert "capped" in caught.value.message


async def test_a_request_larger_than_the_tpm_moves_on_at_once() -> None:
    limits = DeploymentLimits(MemoryLimiter())
    small, other = _dep("small", tpm=100), _dep("other")
    result, _ = await _loop([small, other], QuotaCheck(limits, 500, queue_s=5.0)).run(_answer)
    assert result == "other"


@pytest.fixture
async def redis_limiters() -> AsyncIterator[list[RedisLimiter]]:
    async def no_spend() -> dict[str, int]:
        return {}

    clients = [aioredis.from_url(REDIS_URL) for _ in range(2)]
    prefix = f"t18:{uuid.uuid4().hex[:8]}:{{lim}}:"
    limiters = [RedisLimiter(c, lease_ttl_s=5, timeout_s=0.5, load_spend=no_spend,
                             prefix=prefix) for c in clients]
    await limiters[0].ensure_seeded()
    yield limiters
    for limiter, client in zip(limiters, clients, strict=True):
        await limiter.aclose()
        await client.aclose()


async def test_the_quota_is_exact_across_replicas(redis_limiters: list[RedisLimiter]) -> None:
    replicas = [DeploymentLimits(limiter) for limiter in redis_limiters]
    dep = _dep(f"shared-{uuid.uuid4().hex[:6]}", rpm=7)
    answers = await asyncio.gather(*(replicas[i % 2].take(dep, 10) for i in range(30)))
    assert sum(a is None for a in answers) == 7
    assert all(a is not None and 0 < a <= 61 for a in answers if a is not None)


# -- through a gateway ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with SimServer() as server:
        yield server


@pytest.fixture(scope="module")
def gateway(sim: SimServer) -> Iterator[GatewayProcess]:
    config = {
        "providers": {"sim": {"base_url": sim.base_url}},
        "model_groups": {
            "capped": {"deployments": [
                {"provider": "sim", "model": "capped-model", "name": "capped", "rpm": 3}]},
            "spill": {"routing": "priority", "deployments": [
                {"provider": "sim", "model": "small-model", "name": "small", "rpm": 2},
                {"provider": "sim", "model": "big-model", "name": "big", "priority": 1}]},
        },
    }
    with GatewayProcess(config) as gw:
        yield gw


def test_the_gateway_never_sends_a_deployment_more_than_its_rpm(
        gateway: GatewayProcess, sim: SimServer) -> None:
    client = openai.OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0)
    before = sim.stats()["requests_total"]
    for _ in range(3):
        client.chat.completions.create(model="capped", messages=USER)  # type: ignore[arg-type]
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="capped", messages=USER)  # type: ignore[arg-type]
    assert caught.value.code == "deployment_quota_exceeded"
    assert 50 <= int(caught.value.response.headers["retry-after"]) <= 61
    assert sim.stats()["requests_total"] - before == 3  # the fourth never left the gateway


def test_a_deployment_at_its_quota_spills_to_the_next(gateway: GatewayProcess) -> None:
    client = openai.OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0)
    served = Counter(
        client.chat.completions.with_raw_response.create(
            model="spill", messages=USER).headers["x-polyroute-deployment"]  # type: ignore[arg-type]
        for _ in range(6))
    assert served == {"small": 2, "big": 4}
