"""Two replicas on one Redis agree on circuits: one replica's failures move the other's traffic
away, and after the cool-down exactly one probe goes out, from either replica."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest
import redis

from tests.conftest import SIM_KEY, sim_provider
from tests.support.gateway import GatewayProcess
from tests.support.sim import SimServer

REDIS_URL = "redis://127.0.0.1:6379/14"
USER = [{"role": "user", "content": "hi"}]


def config(sim: SimServer) -> dict[str, Any]:
    return {
        "providers": {"sim": sim_provider(sim)},
        "state": {"redis_url": REDIS_URL, "sync_interval_s": 0.1},
        "model_groups": {"g": {"routing": "priority", "deployments": [
            {"provider": "sim", "model": "shared-primary", "name": "primary"},
            {"provider": "sim", "model": "shared-backup", "name": "backup", "priority": 1},
        ], "resilience": {"circuit": {"failures": 2, "window_s": 30, "cooldown_s": 1.5}}},
            "lone": {"deployments": [{"provider": "sim", "model": "shared-lone"}],
                     "resilience": {"retry": {"max_retry_after_s": 1}}}},
    }


@pytest.fixture
def replicas(sim: SimServer) -> Iterator[tuple[GatewayProcess, GatewayProcess]]:
    redis.Redis.from_url(REDIS_URL).flushdb()
    with GatewayProcess(config(sim), env={"SIM_KEY": SIM_KEY}) as a, GatewayProcess(
            config(sim), env={"SIM_KEY": SIM_KEY}) as b:
        yield a, b


def primary_hits(sim: SimServer) -> int:
    return int(sim.stats()["requests_by_model"].get("shared-primary", 0))


def test_replicas_share_open_circuits_and_a_single_probe(
    sim: SimServer, replicas: tuple[GatewayProcess, GatewayProcess]
) -> None:
    a, b = (openai.OpenAI(base_url=g.base_url, api_key="x", max_retries=0) for g in replicas)
    sim.reset()
    sim.set_rules([{"model": "shared-primary", "fault": "unavailable"}])
    try:
        for _ in range(3):
            a.chat.completions.create(model="g", messages=USER)
        assert primary_hits(sim) == 2  # replica A opened the circuit after 2 failures
        time.sleep(0.4)  # a few sync intervals
        for _ in range(5):
            reply = b.chat.completions.with_raw_response.create(model="g", messages=USER)
            assert reply.headers["x-polyroute-attempts"] == "backup:ok"
        assert primary_hits(sim) == 2  # replica B never touched the failing upstream
    finally:
        sim.clear_rules()
    # The primary has recovered but answers slowly, so the probe is still in flight while a
    # burst arrives on both replicas.
    sim.set_rules([{"model": "shared-primary", "fault": "slow_first_token",
                    "params": {"delay_ms": 800}, "times": 1}])
    time.sleep(1.7)  # the cool-down passes
    with ThreadPoolExecutor(8) as pool:
        chains = list(pool.map(
            lambda c: c.chat.completions.with_raw_response.create(
                model="g", messages=USER).headers["x-polyroute-attempts"], [a, b] * 4))
    assert primary_hits(sim) == 3  # exactly one probe, from whichever replica won the claim
    assert sorted(chains) == ["backup:ok"] * 7 + ["primary:ok"]
    time.sleep(0.4)
    for client in (a, b):
        reply = client.chat.completions.with_raw_response.create(model="g", messages=USER)
        assert reply.headers["x-polyroute-deployment"] == "primary"


def test_redis_down_degrades_to_local_circuits(sim: SimServer) -> None:
    cfg = config(sim)
    cfg["state"]["redis_url"] = "redis://127.0.0.1:1/0"  # nothing listens there
    with GatewayProcess(cfg, env={"SIM_KEY": SIM_KEY}) as gw:
        client = openai.OpenAI(base_url=gw.base_url, api_key="x", max_retries=0)
        started = time.monotonic()
        for _ in range(5):
            assert client.chat.completions.create(model="g", messages=USER).choices
        assert time.monotonic() - started < 3
        assert gw.get("/healthz")[0] == 200


def test_a_tenant_with_1ms_deadlines_cannot_open_the_shared_circuit(
    sim: SimServer, replicas: tuple[GatewayProcess, GatewayProcess]
) -> None:
    """Issue 10 item 5, as the attack: a client sends requests with x-polyroute-timeout:
    0.001 to replica A. They time out (504), but a deadline the client chose is no evidence:
    nothing is published to Redis, and every tenant on every replica is still served by the
    primary."""
    attacker = openai.OpenAI(base_url=replicas[0].base_url, api_key="x", max_retries=0,
                             default_headers={"x-polyroute-timeout": "0.001"})
    sim.reset()
    sim.set_rules([{"model": "shared-primary", "fault": "slow_first_token",
                    "params": {"delay_ms": 50}}])
    try:
        for _ in range(5):
            with pytest.raises(openai.APIStatusError) as info:
                attacker.chat.completions.create(model="g", messages=USER)
            assert info.value.status_code == 504
    finally:
        sim.clear_rules()
    assert not redis.Redis.from_url(REDIS_URL).keys("polyroute:circuit:open:*")
    time.sleep(0.4)  # a few sync intervals, had anything been published
    for gateway in replicas:
        victim = openai.OpenAI(base_url=gateway.base_url, api_key="x", max_retries=0)
        reply = victim.chat.completions.with_raw_response.create(model="g", messages=USER)
        assert reply.headers["x-polyroute-attempts"] == "primary:ok"


def test_a_429_pause_holds_on_every_replica(
    sim: SimServer, replicas: tuple[GatewayProcess, GatewayProcess]
) -> None:
    """A 429 on replica A pauses the upstream for its Retry-After on replica B too: B's panic
    mode (its only candidate is open) must not override a pause the vendor asked for."""
    a, b = (openai.OpenAI(base_url=g.base_url, api_key="x", max_retries=0) for g in replicas)
    sim.reset()
    sim.set_rules([{"model": "shared-lone", "fault": "rate_limit", "params": {"retry_after": 3},
                    "times": 1}])
    with pytest.raises(openai.RateLimitError):
        a.chat.completions.create(model="lone", messages=USER)  # 3 s > max_retry_after_s
    time.sleep(0.4)  # a few sync intervals
    with pytest.raises(openai.APIStatusError) as info:
        b.chat.completions.create(model="lone", messages=USER)
    assert info.value.code == "no_deployment_available"
    assert 1 <= float(info.value.response.headers["retry-after"]) <= 3
    assert int(sim.stats()["requests_by_model"].get("shared-lone", 0)) == 1
