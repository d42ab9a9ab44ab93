"""Strategies that read the room (issue 18): least latency, least busy, quota headroom, cost and
tags, each moving traffic between simulator deployments of differing latency, load, quota and
price, through a real gateway, with the openai SDK as the client."""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest

from tests.support.gateway import GatewayProcess
from tests.support.sim import SimServer

USER = [{"role": "user", "content": "hi"}]
SLOW_MS = 150.0


def _rule(model: str, delay_ms: float) -> dict[str, Any]:
    return {"fault": "slow_first_token", "model": model, "params": {"delay_ms": delay_ms}}


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with SimServer(rules=[_rule("slowpoke", SLOW_MS)]) as server:
        yield server


@pytest.fixture(scope="module")
def limited() -> Iterator[SimServer]:
    """An upstream whose quota is 8 requests a minute, announced in its headers."""
    with SimServer(rate_limit_rpm=8) as server:
        yield server


def _dep(provider: str, model: str, name: str, **extra: Any) -> dict[str, Any]:
    return {"provider": provider, "model": model, "name": name, **extra}


@pytest.fixture(scope="module")
def blind_limited() -> Iterator[SimServer]:
    """The same quota, behind a group that routes by weight alone (the control)."""
    with SimServer(rate_limit_rpm=8) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(sim: SimServer, limited: SimServer,
            blind_limited: SimServer) -> Iterator[GatewayProcess]:
    config = {
        "providers": {"sim": {"base_url": sim.base_url},
                      "limited": {"base_url": limited.base_url},
                      "blind": {"base_url": blind_limited.base_url}},
        "model_groups": {
            "fastest": {"routing": "least_latency", "deployments": [
                _dep("sim", "quick", "quick"), _dep("sim", "slowpoke", "slowpoke")]},
            "busy": {"routing": "least_busy", "deployments": [
                _dep("sim", "quick", "quick"), _dep("sim", "slowpoke", "slowpoke")]},
            "even": {"routing": "weighted", "deployments": [
                _dep("sim", "quick", "quick"), _dep("sim", "slowpoke", "slowpoke")]},
            "quota": {"routing": "quota", "routing_options": {"quota_reserve": 0.25},
                      "deployments": [
                          _dep("limited", "gpt-4o-mini", "limited"),
                          _dep("sim", "gpt-4o-mini", "roomy", rpm=1000)]},
            "blind": {"routing": "weighted", "deployments": [
                _dep("blind", "gpt-4o-mini", "blind-limited"),
                _dep("sim", "gpt-4o-mini", "roomy")]},
            "cost": {"routing": "cost", "deployments": [
                _dep("sim", "dear", "dear", price={"input_per_1m": 5, "output_per_1m": 15}),
                _dep("sim", "cheap", "cheap", context_window=60,
                     price={"input_per_1m": 0.1, "output_per_1m": 0.4})]},
            "regions": {"routing": "weighted", "deployments": [
                _dep("sim", "gpt-4o-mini", "eu-1", tags={"region": "eu", "tier": "batch"}),
                _dep("sim", "gpt-4o-mini", "eu-2", tags={"region": "eu"}),
                _dep("sim", "gpt-4o-mini", "us-1", tags={"region": "us", "tier": "batch"})]},
        },
        "storage": {"flush_interval_s": 0.05},
    }
    with GatewayProcess(config) as gw:
        yield gw


@pytest.fixture(scope="module")
def client(gateway: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0)


def _call(client: openai.OpenAI, model: str, stream: bool = False,
          headers: dict[str, str] | None = None, **extra: Any) -> tuple[str, str]:
    """(the deployment that answered, the x-polyroute-route header)."""
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=USER, stream=stream, extra_headers=headers or {}, **extra)
    parsed = raw.parse()
    if stream:
        assert "".join(c.choices[0].delta.content or "" for c in parsed if c.choices)
    else:
        assert parsed.choices[0].message.content
    return raw.headers["x-polyroute-deployment"], raw.headers.get("x-polyroute-route", "")


def test_least_latency_sends_most_traffic_to_the_faster_deployment(
        client: openai.OpenAI) -> None:
    served = Counter(_call(client, "fastest")[0] for _ in range(40))
    # Expected ≈ 97 %: one probe of each while unmeasured, then 5 % exploration.
    assert served["quick"] >= 34, served
    assert served["slowpoke"] >= 1, served  # measured, and explored
    _, reason = _call(client, "fastest")
    assert reason.startswith("least_latency ") and "quick=" in reason and "slowpoke=" in reason


def test_least_latency_learns_streams_apart_and_follows_a_change(
        client: openai.OpenAI, sim: SimServer) -> None:
    served = Counter(_call(client, "fastest", stream=True)[0] for _ in range(20))
    assert served["quick"] >= 16, served
    # quick slows down and slowpoke recovers: traffic follows within a few requests.
    sim.set_rules([_rule("quick", 2 * SLOW_MS)])
    try:
        later = [_call(client, "fastest") for _ in range(30)]
        assert Counter(name for name, _ in later[-20:])["slowpoke"] >= 14, later
    finally:
        sim.set_rules([_rule("slowpoke", SLOW_MS)])


def test_least_busy_moves_load_to_the_deployment_that_frees_up(client: openai.OpenAI) -> None:
    def share(group: str) -> Counter[str]:
        with ThreadPoolExecutor(8) as pool:
            return Counter(pool.map(lambda _: _call(client, group)[0], range(48)))

    busy, even = share("busy"), share("even")
    # slowpoke holds each request ~15× longer, so its slots stay taken: least busy sends it
    # only what arrives while it has fewer in flight; weighted splits ~50/50 regardless.
    assert busy["quick"] >= 0.75 * 48, busy
    assert even["quick"] <= 0.7 * 48, even
    _, reason = _call(client, "busy")
    assert reason.startswith("least_busy ") and "in flight" in reason


def test_quota_moves_traffic_before_the_first_429(
        client: openai.OpenAI, limited: SimServer, blind_limited: SimServer) -> None:
    served = Counter(_call(client, "quota")[0] for _ in range(30))
    stats = limited.stats()
    assert stats["status_codes"].get("429", 0) == 0, stats["status_codes"]
    # The control: by weight alone the same quota is hit (then failed over from, and the
    # circuit pauses it for the Retry-After).
    for _ in range(30):
        _call(client, "blind")
    assert blind_limited.stats()["status_codes"].get("429", 0) >= 1
    # 8 a minute, shed at a quarter left: at most 6 reach it, and it is used while it has room
    assert 2 <= served["limited"] <= 6, served
    _, reason = _call(client, "quota")
    assert reason.startswith("quota ") and "limited=0." in reason


def test_cost_picks_the_cheapest_that_fits(client: openai.OpenAI) -> None:
    assert {_call(client, "cost")[0] for _ in range(5)} == {"cheap"}
    long = [{"role": "user", "content": "word " * 200}]  # ~200 tokens: over cheap's window
    raw = client.chat.completions.with_raw_response.create(model="cost", messages=long)
    assert raw.headers["x-polyroute-deployment"] == "dear"
    assert raw.headers["x-polyroute-route"].startswith("cost cheapest dear")


def test_tags_select_the_deployments_carrying_them(client: openai.OpenAI) -> None:
    header = Counter(_call(client, "regions", headers={"x-polyroute-tags": "eu"})[0]
                     for _ in range(12))
    assert set(header) == {"eu-1", "eu-2"}, header
    both = {_call(client, "regions", headers={"x-polyroute-tags": "eu, batch"})[0]
            for _ in range(6)}
    assert both == {"eu-1"}
    pair = {_call(client, "regions", headers={"x-polyroute-tags": "region=us"})[0]
            for _ in range(4)}
    assert pair == {"us-1"}
    meta = {_call(client, "regions", metadata={"polyroute_tags": "us"})[0] for _ in range(4)}
    assert meta == {"us-1"}
    _, reason = _call(client, "regions", headers={"x-polyroute-tags": "eu"})
    assert reason == "tags eu"


def test_a_tag_no_deployment_carries_is_a_clear_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        _call(client, "regions", headers={"x-polyroute-tags": "apac"})
    assert "carries the tags apac" in str(caught.value)
    assert caught.value.body["param"] == "x-polyroute-tags"  # type: ignore[index]


def test_each_decision_reaches_the_ledger_and_a_metric(
        client: openai.OpenAI, gateway: GatewayProcess) -> None:
    _call(client, "fastest")
    deadline = time.monotonic() + 5
    rows: list[tuple[str, str]] = []
    while time.monotonic() < deadline:
        with sqlite3.connect(gateway.db_path) as db:
            rows = db.execute("SELECT model_group, route FROM ledger WHERE model_group IN "
                              "('fastest', 'quota', 'regions')").fetchall()
        if {g for g, _ in rows} == {"fastest", "quota", "regions"}:
            break
        time.sleep(0.1)
    routes = {g: r for g, r in rows}
    assert routes["fastest"].startswith("least_latency ")
    assert routes["quota"].startswith("quota ")
    assert routes["regions"].startswith("tags ")
    status, body = gateway.get("/metrics")
    text = body.decode()
    assert status == 200
    lines = [line for line in text.splitlines()
             if line.startswith("polyroute_route_decisions_total{")]
    assert any('decision="least_latency/fastest"' in line and 'model_group="fastest"' in line
               for line in lines), lines
    assert 'decision="quota/headroom"' in text and 'decision="tags"' in text
