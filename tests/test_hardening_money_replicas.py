"""Issue 10's money items on two replicas sharing PostgreSQL and Redis: ``n`` and absurd
integers never reach the shared limiter's scripts, a hung-up stream is charged across
replicas, the overspend bound holds for ``n`` > 1 split over both, and a team deleted on one
replica stops its keys on the other; and a stream from llama.cpp, which never reports stream
usage, is charged an estimate."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest
import redis

from tests.conftest import SIM_KEY
from tests.support.gateway import GatewayProcess
from tests.support.llama_server import LlamaServer
from tests.support.policy import MASTER_KEY, admin, new_key, ok
from tests.support.postgres import scratch_database
from tests.support.sim import SimServer

REDIS_URL = "redis://127.0.0.1:6379/14"  # a database of its own: other suites flush theirs
PRICE = {"input_per_1m": 100.0, "output_per_1m": 100.0}
LONG_TEXT = " ".join(f"word{i}" for i in range(120))
HELLO = [{"role": "user", "content": "Say hello."}]


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    with scratch_database("polyroute_money") as url:
        yield url


@pytest.fixture(scope="module")
def replicas(database: str) -> Iterator[list[GatewayProcess]]:
    redis.Redis.from_url(REDIS_URL).flushdb()
    with SimServer(api_key=SIM_KEY, text=LONG_TEXT, tokens_per_second=100) as sim:
        config: dict[str, Any] = {
            "providers": {"sim": {"base_url": sim.base_url, "api_key": "${SIM_KEY}"}},
            "model_groups": {"chat": {"deployments": [
                {"provider": "sim", "model": "gpt-4o-mini", "price": PRICE}]}},
            "auth": {"master_key": "${PR_MASTER}", "refresh_s": 0.2},
            "storage": {"postgres_url": database, "flush_interval_s": 0.1},
            "state": {"redis_url": REDIS_URL},
        }
        env = {"SIM_KEY": SIM_KEY, "PR_MASTER": MASTER_KEY}
        with GatewayProcess(config, env) as a, GatewayProcess(config, env) as b:
            yield [a, b]


def client(gw: GatewayProcess, key: str) -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url=gw.base_url, max_retries=0, timeout=30)


def usage_row(gw: GatewayProcess, key: str, requests: int) -> dict[str, Any]:
    key_id = key.split("-")[2]
    deadline = time.monotonic() + 15
    while True:
        rows = ok(admin(gw, "GET", f"/admin/usage?by=key&key={key_id}&since=1h"))["data"]
        if (rows and rows[0]["requests"] >= requests) or time.monotonic() > deadline:
            assert rows and rows[0]["requests"] == requests, rows
            return dict(rows[0])
        time.sleep(0.1)


def test_absurd_integers_never_reach_the_shared_limiter(
        replicas: list[GatewayProcess]) -> None:
    a, b = replicas
    key = new_key(a, daily_budget_usd=0.06, tpm=100_000)
    time.sleep(0.5)  # b picks the key up
    for value in (-10, -10**30, 10**30):
        with pytest.raises(openai.BadRequestError):
            client(b, key).chat.completions.create(model="chat", max_tokens=value,
                                                   messages=HELLO)
    # The shared limits are still in force on both replicas (no script error, no outage).
    for gw in replicas:
        client(gw, key).chat.completions.create(model="chat", max_tokens=5, messages=HELLO)
    assert "script" not in (a.log() + b.log()).lower()
    with pytest.raises(openai.RateLimitError) as refused:  # the n: 128 attack
        client(a, key).chat.completions.create(model="chat", n=128, max_tokens=30,
                                               messages=HELLO)
    assert refused.value.code == "budget_exceeded"


async def test_n_over_two_replicas_never_overspends(replicas: list[GatewayProcess]) -> None:
    budget = 0.05  # a request (n: 3, max_tokens: 30) reserves ~$0.01
    key = new_key(replicas[0], daily_budget_usd=budget)
    await asyncio.sleep(0.5)

    async def one(i: int) -> Any:
        async with openai.AsyncOpenAI(api_key=key, base_url=replicas[i % 2].base_url,
                                      max_retries=0, timeout=60) as c:
            return await c.chat.completions.create(model="chat", n=3, max_tokens=30,
                                                   messages=HELLO)

    outcomes = await asyncio.gather(*(one(i) for i in range(30)), return_exceptions=True)
    served = [o for o in outcomes if not isinstance(o, BaseException)]
    assert served and all(isinstance(o, openai.RateLimitError) for o in outcomes
                          if isinstance(o, BaseException))
    assert usage_row(replicas[1], key, 30)["cost_usd"] <= budget + 1e-12


def test_a_hung_up_stream_is_charged_on_every_replica(replicas: list[GatewayProcess]) -> None:
    a, b = replicas
    key = new_key(a, daily_budget_usd=1.0)
    time.sleep(0.5)
    stream = client(b, key).chat.completions.create(
        model="chat", max_tokens=200, stream=True, stream_options={"include_usage": True},
        messages=HELLO)
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            break
    stream.close()
    row = usage_row(a, key, 1)
    assert row["cost_usd"] > 0
    status = ok(admin(a, "GET", f"/admin/keys/{key.split('-')[2]}/budget"))
    assert status["spent_today_usd"] == pytest.approx(row["cost_usd"])
    assert status["reserved_usd"] == 0


def test_a_team_deleted_on_one_replica_stops_its_keys_on_the_other(
        replicas: list[GatewayProcess]) -> None:
    a, b = replicas
    ok(admin(a, "POST", "/admin/teams", {"id": "money-team", "models": ["chat"], "rpm": 50}))
    key = new_key(a, team="money-team")
    time.sleep(0.5)
    client(b, key).chat.completions.create(model="chat", max_tokens=5, messages=HELLO)
    assert ok(admin(a, "DELETE", "/admin/teams/money-team"))["revoked_keys"] == [
        key.split("-")[2]]
    deadline = time.monotonic() + 5
    while True:
        try:
            client(b, key).chat.completions.create(model="chat", max_tokens=5,
                                                   messages=HELLO)
        except openai.AuthenticationError:
            break
        assert time.monotonic() < deadline, "replica b still serves the deleted team's key"
        time.sleep(0.1)


def test_a_stream_from_llama_cpp_which_ignores_include_usage_is_charged(
        llama_server: LlamaServer) -> None:
    config = {
        "providers": {"llamacpp": {"base_url": llama_server.base_url, "auth": "none"}},
        "model_groups": {"tiny": {"deployments": [
            {"provider": "llamacpp", "model": llama_server.model, "price": PRICE}]}},
        "auth": {"master_key": "${PR_MASTER}"},
        "storage": {"flush_interval_s": 0.1},
    }
    with GatewayProcess(config, {"PR_MASTER": MASTER_KEY}) as gw:
        key = new_key(gw, daily_budget_usd=1.0)
        stream = client(gw, key).chat.completions.create(
            model="tiny", messages=HELLO, max_tokens=8, temperature=0, seed=1, stream=True,
            stream_options={"include_usage": True},
            extra_headers={"x-request-id": "money-llama"})
        chunks = list(stream)
        assert all(c.usage is None for c in chunks)  # llama.cpp sent none
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text
        row = usage_row(gw, key, 1)
        assert 0 < row["completion_tokens"] <= 8 and row["cost_usd"] > 0  # within max_tokens
        entry = ok(admin(gw, "GET", "/admin/ledger/money-llama"))["data"][0]
        assert entry["usage_estimated"] == 1 and entry["priced"] == 1
