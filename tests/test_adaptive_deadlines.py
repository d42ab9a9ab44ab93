"""Deadlines learnt per upstream: a stream that stalls on a deployment known to be fast fails
over in seconds, although the configured stall deadline is 30 s."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from polyroute.config.compiled import Timeouts
from polyroute.engine.deadlines import Pace, asks_for_reasoning, prompt_units
from polyroute.engine.gateway import TimeoutOverrides
from polyroute.model.chat import ChatRequest, Message
from polyroute.sim.settings import DEFAULT_TEXT
from tests.conftest import SIM_KEY, sim_provider
from tests.support.gateway import GatewayProcess
from tests.support.sim import SimServer

USER = [{"role": "user", "content": "Say hello."}]
CONFIGURED = Timeouts(stall_s=30, ttft_s=30, stall_floor_s=1, ttft_floor_s=2)


def test_deadlines_stay_configured_until_enough_is_seen() -> None:
    pace = Pace()
    for _ in range(49):
        pace.gap("v/m", 0.01)
    assert pace.stall_s("v/m", CONFIGURED) == 30
    pace.gap("v/m", 0.01)
    assert pace.stall_s("v/m", CONFIGURED) == 1  # 4 × 10 ms, raised to the floor
    for _ in range(200):
        pace.gap("v/m", 2.0)  # a slower upstream now: the deadline follows, up to the ceiling
    assert pace.stall_s("v/m", CONFIGURED) == 8
    assert pace.stall_s("other/m", CONFIGURED) == 30


def test_first_token_deadline_scales_with_the_prompt() -> None:
    pace = Pace()
    for _ in range(20):
        pace.first_token("v/m", 1.0, prompt_units(0))
    assert pace.ttft_s("v/m", CONFIGURED, prompt_units(0)) == 4
    assert pace.ttft_s("v/m", CONFIGURED, prompt_units(4096 * 3)) == 16
    assert pace.ttft_s("v/m", CONFIGURED, prompt_units(4096 * 100)) == 30


def test_requests_that_choose_their_thinking_are_not_paced() -> None:
    def req(**kw: object) -> ChatRequest:
        return ChatRequest(messages=[Message("user", "Hi")], **kw)  # type: ignore[arg-type]

    assert not asks_for_reasoning(req())
    assert not asks_for_reasoning(req(reasoning_effort="minimal"))
    assert asks_for_reasoning(req(reasoning_effort="high"))
    assert asks_for_reasoning(req(thinking={"type": "enabled", "budget_tokens": 2048}))
    assert not asks_for_reasoning(req(thinking={"type": "disabled"}))


def test_a_deadline_the_client_chose_is_not_adapted() -> None:
    pace = Pace()
    for _ in range(100):
        pace.gap("v/m", 0.01)
    chosen = TimeoutOverrides(stall_s=12).apply(CONFIGURED)
    assert pace.stall_s("v/m", chosen) == 12
    assert pace.stall_s("v/m", Timeouts(stall_s=30, adaptive=False)) == 30


@pytest.fixture(scope="module")
def paced() -> Iterator[SimServer]:
    with SimServer(api_key=SIM_KEY, tokens_per_second=100) as server:
        yield server


@pytest.fixture(scope="module")
def gw(paced: SimServer) -> Iterator[GatewayProcess]:
    config = {
        "providers": {"paced": sim_provider(paced)},
        "model_groups": {"fast": {"deployments": [{"provider": "paced", "model": "fast"}]}},
        "resilience": {"timeouts": {"stall_s": 30, "stall_floor_s": 1, "total_s": 60}},
    }
    with GatewayProcess(config, env={"SIM_KEY": SIM_KEY}, log_level="DEBUG") as gateway:
        yield gateway


def stream(gw: GatewayProcess) -> bytes:
    body = {"model": "fast", "messages": USER, "stream": True}
    return httpx.post(gw.base_url + "/chat/completions", json=body, timeout=60).content


def test_a_stall_on_a_fast_upstream_fails_over_in_seconds(
    gw: GatewayProcess, paced: SimServer
) -> None:
    for _ in range(4):  # ~20 gaps of 10 ms each
        assert stream(gw).endswith(b"data: [DONE]\n\n")
    paced.set_rules([{"fault": "stream_stall", "model": "fast", "times": 1,
                      "params": {"after_chunks": 3, "hold_s": 30}}])
    try:
        started = time.monotonic()
        raw = stream(gw)
        took = time.monotonic() - started
    finally:
        paced.clear_rules()
    assert raw.endswith(b"data: [DONE]\n\n") and b'"error"' not in raw
    text = "".join(json.loads(e[6:])["choices"][0]["delta"].get("content") or ""
                   for e in raw.split(b"\n\n") if e.startswith(b"data: {")
                   and b'"choices":[]' not in e)
    assert text == DEFAULT_TEXT
    assert took < 15  # the learnt 1 s deadline, not the configured 30 s
    assert "the stream stalled for 1 s" in gw.log()
