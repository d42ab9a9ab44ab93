"""Failover users can trust: every fault the simulator injects, through the gateway with a
fallback configured. Each test names its own primary model, so circuit state never leaks
between tests sharing one gateway."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from polyroute.sim.settings import DEFAULT_TEXT
from tests.conftest import SIM_KEY, sim_provider
from tests.support.gateway import GatewayProcess
from tests.support.sim import SimServer

USER = [{"role": "user", "content": "Say hello."}]
TIMEOUTS = {"connect_s": 1, "ttft_s": 1, "stall_s": 1, "response_s": 2, "total_s": 8}


def pair(primary: str, provider: str = "sim", **resilience: Any) -> dict[str, Any]:
    """A group whose primary is the simulator model ``primary`` and whose backup is healthy."""
    return {
        "routing": "priority",
        "deployments": [
            {"provider": provider, "model": primary, "name": "primary"},
            {"provider": provider, "model": "backup-" + primary.split("@")[0], "name": "backup",
             "priority": 1},
        ],
        "resilience": resilience,
    }


FAULTS = [
    "rate_limit", "rate_limit_no_retry_after", "server_error", "unavailable",
    "reset_before_headers", "no_response", "slow_first_token", "stream_cut", "stream_stall",
    "malformed_chunk", "no_done", "split_utf8", "context_length_exceeded",
    "content_policy_violation",
]


MID_ANSWER = ("stream_cut", "stream_stall", "malformed_chunk")


def config(sim: SimServer, paced: SimServer) -> dict[str, Any]:
    groups: dict[str, Any] = {f"f-{f}": pair(f"p-{f}@{f}") for f in FAULTS}
    # Mid-answer faults on an upstream that paces its tokens, so the first content surely
    # reaches the client before the fault (a burst would be failed over invisibly instead).
    for fault in MID_ANSWER:
        groups[f"f-{fault}"] = pair(f"p-{fault}@{fault}:after_chunks=3", provider="paced")
    groups["f-stream_cut-early"] = pair("p-cut-early@stream_cut:after_chunks=0")
    groups["f-stream_stall-early"] = pair("p-stall-early@stream_stall:after_chunks=0")
    groups["persistent"] = pair("p-persistent@server_error")
    groups["ratelimited"] = pair("p-ratelimited@rate_limit:retry_after=1")
    groups["silent"] = pair("p-silent@no_response:hold_s=20")
    groups["flapping"] = pair("p-flap", circuit={"failures": 3, "window_s": 10,
                                                 "cooldown_s": 1})
    groups["alone-429"] = {"deployments": [{"provider": "sim", "model": "p-alone-429"}]}
    groups["alone-5xx"] = {"deployments": [{"provider": "sim", "model": "p-alone@unavailable"}],
                           "resilience": {"retry": {"retries_per_deployment": 2,
                                                    "backoff_base_s": 0.05}}}
    groups["wider"] = {"routing": "priority", "deployments": [
        {"provider": "sim", "model": "p-small@context_length_exceeded", "name": "small",
         "context_window": 8000},
        {"provider": "sim", "model": "p-same", "name": "same", "priority": 1,
         "context_window": 8000},
        {"provider": "sim", "model": "p-large", "name": "large", "priority": 2,
         "context_window": 128000},
    ]}
    groups["hedged"] = pair("p-hedged@slow_first_token:delay_ms=1500",
                            hedge={"enabled": True, "delay_s": 0.2})
    return {
        "providers": {"sim": sim_provider(sim), "paced": sim_provider(paced)},
        "model_groups": groups,
        "resilience": {"timeouts": TIMEOUTS},
        "storage": {"flush_interval_s": 0.05},
    }


@pytest.fixture(scope="module")
def paced() -> Iterator[SimServer]:
    with SimServer(api_key=SIM_KEY, tokens_per_second=100) as server:
        yield server


@pytest.fixture(scope="module")
def gw(sim: SimServer, paced: SimServer) -> Iterator[GatewayProcess]:
    with GatewayProcess(config(sim, paced), env={"SIM_KEY": SIM_KEY}) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def client(gw: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0, timeout=20)


@pytest.fixture(autouse=True)
def healthy_afterwards(gw: GatewayProcess) -> Iterator[None]:
    yield
    assert gw.get("/healthz")[0] == 200


def seen(sim: SimServer, model: str) -> int:
    return int(sim.stats()["requests_by_model"].get(model, 0))


def stream_text(client: openai.OpenAI, model: str, **kw: Any) -> tuple[str, Any]:
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=USER, stream=True, **kw)
    text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    return text, raw.headers


RECOVERED = [f for f in FAULTS if f not in (
    *MID_ANSWER, "no_done", "split_utf8", "context_length_exceeded",
    "content_policy_violation")]


@pytest.mark.parametrize("fault", RECOVERED)
@pytest.mark.parametrize("stream", [False, True])
def test_fault_before_first_token_fails_over_invisibly(
    client: openai.OpenAI, fault: str, stream: bool
) -> None:
    started = time.monotonic()
    if stream:
        text, headers = stream_text(client, f"f-{fault}")
    else:
        raw = client.chat.completions.with_raw_response.create(model=f"f-{fault}", messages=USER)
        text, headers = raw.parse().choices[0].message.content, raw.headers
    assert text == DEFAULT_TEXT
    assert time.monotonic() - started < 4  # bounded by the 1 s first-token/2 s response limits
    chain = headers["x-polyroute-attempts"].split(",")
    assert chain[-1] == "backup:ok"
    assert chain[0].startswith("primary:") or chain == ["backup:ok"]  # circuit already open


@pytest.mark.parametrize("fault", ["stream_cut", "stream_stall"])
def test_cut_before_the_first_token_is_invisible(client: openai.OpenAI, fault: str) -> None:
    text, headers = stream_text(client, f"f-{fault}-early")
    assert text == DEFAULT_TEXT and headers["x-polyroute-deployment"] == "backup"


@pytest.mark.parametrize("fault", MID_ANSWER)
def test_failure_mid_answer_is_finished_by_the_backup(
    client: openai.OpenAI, gw: GatewayProcess, fault: str
) -> None:
    """Mid-stream recovery (tests/test_stream_recovery.py has the cases where it cannot)."""
    started = time.monotonic()
    body = {"model": f"f-{fault}", "messages": USER, "stream": True}
    raw = httpx.post(gw.base_url + "/chat/completions", json=body, timeout=20).content
    assert time.monotonic() - started < 4
    events = [e for e in raw.split(b"\n\n") if e]
    assert events[-1] == b"data: [DONE]" and b'"error"' not in raw
    assert b"not json" not in raw and b"{broken" not in raw  # the malformed chunk never leaks
    assert stream_text(client, f"f-{fault}")[0] == DEFAULT_TEXT


@pytest.mark.parametrize("fault", ["no_done", "split_utf8"])
def test_benign_stream_quirks_complete_on_the_primary(client: openai.OpenAI, fault: str) -> None:
    text, headers = stream_text(client, f"f-{fault}", stream_options={"include_usage": True})
    assert text == DEFAULT_TEXT and headers["x-polyroute-deployment"] == "primary"


@pytest.mark.parametrize(("fault", "code"), [
    ("context_length_exceeded", "context_length_exceeded"),
    ("content_policy_violation", "content_policy_violation"),
])
def test_no_failover_and_exactly_one_attempt(
    client: openai.OpenAI, sim: SimServer, fault: str, code: str
) -> None:
    before = seen(sim, f"p-{fault}")
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=f"f-{fault}", messages=USER)
    assert info.value.code == code
    assert seen(sim, f"p-{fault}") == before + 1
    assert seen(sim, f"backup-p-{fault}") == 0


def test_context_window_moves_only_to_a_larger_window(
    client: openai.OpenAI, sim: SimServer
) -> None:
    raw = client.chat.completions.with_raw_response.create(model="wider", messages=USER)
    assert raw.headers["x-polyroute-attempts"] == "small:context_window_exceeded,large:ok"
    assert seen(sim, "p-same") == 0


def test_429_is_respected_across_requests(client: openai.OpenAI, sim: SimServer) -> None:
    """Retry-After: 1 s. Requests keep coming for 1.5 s; the limited deployment sees at most
    two of them (the first, and one probe after the pause), the backup serves the rest."""
    started = time.monotonic()
    served = 0
    while time.monotonic() - started < 1.5:
        reply = client.chat.completions.create(model="ratelimited", messages=USER)
        served += reply.choices[0].message.content == DEFAULT_TEXT
    assert served >= 5
    assert seen(sim, "p-ratelimited") <= 2


def test_persistent_5xx_is_bounded_by_the_circuit(client: openai.OpenAI, sim: SimServer) -> None:
    for _ in range(20):
        assert client.chat.completions.create(model="persistent", messages=USER).choices
    assert seen(sim, "p-persistent") <= 5  # circuit.failures, then nothing within 30 s


def test_silent_upstream_ends_inside_the_budget(client: openai.OpenAI, sim: SimServer) -> None:
    for stream in (False, True):
        started = time.monotonic()
        if stream:
            text, _ = stream_text(client, "silent")
        else:
            text = client.chat.completions.create(
                model="silent", messages=USER).choices[0].message.content or ""
        assert text == DEFAULT_TEXT
        assert time.monotonic() - started < 3.5  # ttft 1 s / response 2 s, then the backup
    assert seen(sim, "p-silent") <= 2  # one per request, never retried on the same route


def test_flapping_primary_opens_probes_and_recovers(
    client: openai.OpenAI, sim: SimServer, gw: GatewayProcess
) -> None:
    sim.set_rules([{"model": "p-flap", "fault": "unavailable"}])
    try:
        for _ in range(10):
            assert client.chat.completions.create(model="flapping", messages=USER).choices
        assert seen(sim, "p-flap") == 3  # circuit.failures; then open
        time.sleep(1.1)  # cooldown: exactly one probe, which fails again
        for _ in range(5):
            client.chat.completions.create(model="flapping", messages=USER)
        assert seen(sim, "p-flap") == 4
    finally:
        sim.clear_rules()
    time.sleep(1.1)
    raw = client.chat.completions.with_raw_response.create(model="flapping", messages=USER)
    assert raw.headers["x-polyroute-deployment"] == "primary"  # the probe succeeded
    for _ in range(3):
        raw = client.chat.completions.with_raw_response.create(model="flapping", messages=USER)
        assert raw.headers["x-polyroute-attempts"] == "primary:ok"
    assert "circuit of sim/p-flap: open → half_open" in gw.log()


def test_retry_after_is_waited_when_nothing_else_can_serve(
    client: openai.OpenAI, sim: SimServer
) -> None:
    sim.set_rules([{"model": "p-alone-429", "fault": "rate_limit", "params": {"retry_after": 1},
                    "times": 1}])
    started = time.monotonic()
    raw = client.chat.completions.with_raw_response.create(model="alone-429", messages=USER)
    elapsed = time.monotonic() - started
    assert raw.parse().choices[0].message.content == DEFAULT_TEXT
    assert 1.0 <= elapsed < 3
    assert raw.headers["x-polyroute-attempts"] == (
        "sim/p-alone-429:upstream_rate_limited,sim/p-alone-429:ok")


def test_bounded_retries_then_a_clean_error(client: openai.OpenAI, sim: SimServer) -> None:
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="alone-5xx", messages=USER)
    assert info.value.status_code == 503
    assert time.monotonic() - started < 2
    assert seen(sim, "p-alone") == 3  # the first attempt and retries_per_deployment = 2


@pytest.mark.parametrize("stream", [False, True])
def test_hedge_takes_the_first_answer_and_bills_only_it(
    client: openai.OpenAI, gw: GatewayProcess, stream: bool
) -> None:
    started = time.monotonic()
    if stream:
        text, headers = stream_text(client, "hedged", stream_options={"include_usage": True})
    else:
        raw = client.chat.completions.with_raw_response.create(model="hedged", messages=USER)
        text, headers = raw.parse().choices[0].message.content, raw.headers
    assert text == DEFAULT_TEXT
    assert time.monotonic() - started < 1.2  # the primary would have taken 1.5 s
    assert headers["x-polyroute-deployment"] == "backup"
    assert headers["x-polyroute-attempts"] == "primary:cancelled,backup:ok"


def test_per_request_models_list(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="sim/p-own@unavailable", messages=USER, extra_body={"models": ["f-no_done"]})
    assert raw.parse().choices[0].message.content == DEFAULT_TEXT
    assert raw.headers["x-polyroute-attempts"].endswith("primary:ok")
    raw = client.chat.completions.with_raw_response.create(
        model="", messages=USER, extra_body={"models": ["sim/p-x@server_error", "sim/p-y"]})
    assert raw.headers["x-polyroute-deployment"] == "sim/p-y"


def test_timeout_header_overrides_the_group(gw: GatewayProcess) -> None:
    started = time.monotonic()
    reply = httpx.post(gw.base_url + "/chat/completions", timeout=20, json={
        "model": "sim/p-slow@slow_first_token:delay_ms=3000", "messages": USER, "stream": True},
        headers={"x-polyroute-ttft-timeout": "0.3"})
    assert reply.status_code == 504
    assert time.monotonic() - started < 1.5
    bad = httpx.post(gw.base_url + "/chat/completions", json={"model": "x", "messages": USER},
                     headers={"x-polyroute-timeout": "soon"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "x-polyroute-timeout"
