"""SSE keep-alives while a model is silent before its first token: the 200 headers go out after
server.stream_keepalive_s, comments keep the connection busy, the official SDKs read the
stream as usual, and a total failure after that point arrives as the dialect's error event."""

from __future__ import annotations

import time
from collections.abc import Iterator

import anthropic
import httpx
import openai
import pytest

from polyroute.sim.settings import DEFAULT_TEXT
from tests.conftest import SIM_KEY, sim_provider
from tests.support.gateway import GatewayProcess
from tests.support.sim import SimServer

USER = [{"role": "user", "content": "Say hello."}]
KEEP_ALIVE = b": keep-alive\n\n"


@pytest.fixture(scope="module")
def gw(sim: SimServer) -> Iterator[GatewayProcess]:
    ant = {"protocol": "anthropic", "base_url": sim.root_url, "api_key": "${SIM_KEY}"}
    config = {
        "providers": {"sim": sim_provider(sim), "ant": ant},
        "model_groups": {
            "thinking": {"deployments": [
                {"provider": "sim", "model": "slow@slow_first_token:delay_ms=1500"}]},
            "thinking-claude": {"deployments": [
                {"provider": "ant", "model": "slow@slow_first_token:delay_ms=1500"}]},
            "quick": {"deployments": [{"provider": "sim", "model": "quick"}]},
            "dead": {"deployments": [{"provider": "sim", "model": "dead@no_response:hold_s=20"}],
                     "resilience": {"timeouts": {"ttft_s": 1.5, "total_s": 10},
                                    "retry": {"retries_per_deployment": 0}}},
        },
        "server": {"stream_keepalive_s": 0.4},
    }
    with GatewayProcess(config, env={"SIM_KEY": SIM_KEY}) as gateway:
        yield gateway


def post(gw: GatewayProcess, model: str) -> httpx.Response:
    body = {"model": model, "messages": USER, "stream": True}
    return httpx.post(gw.base_url + "/chat/completions", json=body, timeout=30)


def test_comments_keep_a_silent_stream_busy(gw: GatewayProcess) -> None:
    response = post(gw, "thinking")
    assert response.status_code == 200
    body = response.content
    assert body.startswith(KEEP_ALIVE) and body.count(KEEP_ALIVE) >= 2
    assert body.endswith(b"data: [DONE]\n\n")


def test_a_quick_stream_gets_no_comment(gw: GatewayProcess) -> None:
    response = post(gw, "quick")
    assert KEEP_ALIVE not in response.content
    assert response.headers["x-polyroute-deployment"]  # headers after the first token


def test_the_sdks_read_through_the_comments(gw: GatewayProcess) -> None:
    oai = openai.OpenAI(base_url=gw.base_url, api_key="x", max_retries=0)
    stream = oai.chat.completions.create(model="thinking", messages=USER, stream=True)  # type: ignore[arg-type]
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == DEFAULT_TEXT
    ant = anthropic.Anthropic(base_url=gw.root_url, api_key="x", max_retries=0)
    with ant.messages.stream(model="thinking-claude", max_tokens=100,
                             messages=USER) as claude:  # type: ignore[arg-type]
        assert "".join(claude.text_stream) == DEFAULT_TEXT


def test_after_the_headers_a_total_failure_is_an_error_event(gw: GatewayProcess) -> None:
    started = time.monotonic()
    response = post(gw, "dead")
    assert time.monotonic() - started < 8
    assert response.status_code == 200  # committed by the keep-alive
    events = [e for e in response.content.split(b"\n\n") if e]
    assert events[0] == KEEP_ALIVE.strip()
    assert b"data: [DONE]" not in events and b"no first token" in events[-1]
    oai = openai.OpenAI(base_url=gw.base_url, api_key="x", max_retries=0)
    with pytest.raises(openai.APIError):
        for _ in oai.chat.completions.create(model="dead", messages=USER, stream=True):  # type: ignore[arg-type]
            pass
