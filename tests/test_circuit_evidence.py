"""Circuits that never make an outage bigger than it is (issue 9 items 1, 3, 4; issue 10
item 5), through a real gateway, the openai SDK and simulators. Each test uses its own
simulator model names, so circuit state never leaks between tests sharing one gateway."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest

from polyroute.sim.settings import DEFAULT_TEXT
from tests.conftest import SIM_KEY, sim_provider
from tests.support.gateway import GatewayProcess
from tests.support.sim import SimServer

USER = [{"role": "user", "content": "Say hello."}]


def dep(model: str, name: str, provider: str = "sim", **extra: Any) -> dict[str, Any]:
    return {"provider": provider, "model": model, "name": name, **extra}


def config(sim: SimServer, other: SimServer) -> dict[str, Any]:
    one = {"retry": {"backoff_base_s": 0.01}}
    groups: dict[str, Any] = {
        "attacked": {"routing": "priority", "deployments": [
            dep("ev-attacked", "attacked"), dep("ev-attacked-backup", "backup", priority=1)],
            "resilience": {"circuit": {"failures": 2}}},
        "stalled": {"routing": "priority", "deployments": [
            dep("ev-stalled", "stalled"), dep("ev-stalled-backup", "backup", priority=1)],
            "resilience": {"circuit": {"failures": 2}}},
        "left": {"deployments": [dep("ev-left", "left")],
                 "resilience": {"circuit": {"failures": 2}}},
        "refusing": {"deployments": [dep("ev-refusing", "refusing")], "resilience": one},
        "lone": {"deployments": [dep("ev-lone", "lone")],
                 "resilience": {**one, "circuit": {"failures": 3, "cooldown_s": 60}}},
        "both-down": {"routing": "priority", "deployments": [
            dep("ev-first", "first"), dep("ev-second", "second", priority=1)],
            "resilience": {**one, "circuit": {"failures": 2, "cooldown_s": 60}}},
        "vendors": {"routing": "weighted", "deployments": [
            dep("ev-vendor", "dead-vendor"), dep("ev-vendor", "live-vendor", provider="other")],
            "resilience": {"circuit": {"failures": 5, "cooldown_s": 0.5}}},
        "asked": {"routing": "priority", "deployments": [dep("ev-asked", "asked")],
                  "fallbacks": ["other-model"], "resilience": one},
        "same": {"routing": "priority", "deployments": [
            dep("ev-same-a", "same-a"), dep("ev-same-b", "same-b", priority=1)],
            "fallbacks": ["other-model"], "resilience": one},
        "impatient": {"routing": "priority", "deployments": [dep("ev-impatient", "impatient")],
                      "fallbacks": ["other-model"],
                      "resilience": {**one, "retry": {"before_other_model": 0}}},
        "other-model": {"deployments": [dep("ev-other", "other")]},
        "small": {"deployments": [dep("ev-small@context_length_exceeded", "small",
                                      context_window=8000)],
                  "fallbacks": ["unknown-window"]},
        "unknown-window": {"deployments": [dep("ev-unknown", "unknown")]},
    }
    return {
        "providers": {"sim": sim_provider(sim), "other": sim_provider(other)},
        "model_groups": groups,
        "resilience": {"timeouts": {"connect_s": 1, "ttft_s": 1, "stall_s": 1,
                                    "response_s": 2, "total_s": 8}},
        "storage": {"flush_interval_s": 0.05},
    }


@pytest.fixture(scope="module")
def other() -> Iterator[SimServer]:
    with SimServer(api_key=SIM_KEY) as server:
        yield server


@pytest.fixture(scope="module")
def gw(sim: SimServer, other: SimServer) -> Iterator[GatewayProcess]:
    with GatewayProcess(config(sim, other), env={"SIM_KEY": SIM_KEY}) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def client(gw: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0, timeout=20)


@pytest.fixture(autouse=True)
def no_rules(sim: SimServer, other: SimServer) -> Iterator[None]:
    yield
    sim.clear_rules()
    other.clear_rules()


def seen(sim: SimServer, model: str) -> int:
    return int(sim.stats()["requests_by_model"].get(model, 0))


def chain(client: openai.OpenAI, model: str, **kw: Any) -> tuple[str, str]:
    raw = client.chat.completions.with_raw_response.create(model=model, messages=USER, **kw)
    text = raw.parse().choices[0].message.content or ""
    return text, raw.headers["x-polyroute-attempts"]


def test_a_client_with_a_1ms_deadline_cannot_open_the_circuit(
    client: openai.OpenAI, sim: SimServer, gw: GatewayProcess
) -> None:
    """Issue 10 item 5, as the attack: requests with x-polyroute-timeout: 0.001 (and a 1 ms
    first-token deadline on streams) time out; the deployment's circuit stays closed, so
    every other client is still served by it (an open circuit would send them to the backup)."""
    sim.set_rules([{"model": "ev-attacked", "fault": "slow_first_token",
                    "params": {"delay_ms": 100}}])
    for _ in range(5):
        with pytest.raises(openai.APIStatusError) as info:
            client.chat.completions.create(model="attacked", messages=USER,
                                           extra_headers={"x-polyroute-timeout": "0.001"})
        assert info.value.status_code == 504
        with pytest.raises(openai.APIStatusError) as info:
            client.chat.completions.create(
                model="attacked", messages=USER, stream=True,
                extra_headers={"x-polyroute-ttft-timeout": "0.001"})
        assert info.value.status_code == 504
    sim.clear_rules()
    for _ in range(3):
        assert chain(client, "attacked") == (DEFAULT_TEXT, "attacked:ok")
    assert "circuit of sim/ev-attacked" not in gw.log()  # no transition at all


def test_a_stall_deadline_the_client_chose_is_no_evidence(
    gw: GatewayProcess, sim: SimServer
) -> None:
    """Mid-answer, a stall past the client's own x-polyroute-stall-timeout (tighter than the
    group's 1 s) ends the stream but says nothing about the deployment."""
    sim.set_rules([{"model": "ev-stalled", "fault": "stream_stall",
                    "params": {"after_chunks": 1, "hold_s": 0.6}}])
    client = openai.OpenAI(base_url=gw.base_url, api_key="x", max_retries=0,
                           default_headers={"x-polyroute-stall-timeout": "0.1"})
    for _ in range(3):
        try:
            text = ask_stream(client, "stalled")
        except openai.APIError:
            continue  # the stream ended with an error event
        assert text == DEFAULT_TEXT  # or it was finished elsewhere, whole
    sim.clear_rules()
    assert chain(client, "stalled") == (DEFAULT_TEXT, "stalled:ok")
    assert "circuit of sim/ev-stalled" not in gw.log()


def ask_stream(client: openai.OpenAI, model: str) -> str:
    chunks = client.chat.completions.create(model=model, messages=USER, stream=True)
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_a_client_that_hangs_up_is_no_evidence(
    gw: GatewayProcess, sim: SimServer
) -> None:
    impatient = openai.OpenAI(base_url=gw.base_url, api_key="x", max_retries=0, timeout=0.2)
    sim.set_rules([{"model": "ev-left", "fault": "slow_first_token",
                    "params": {"delay_ms": 800}}])
    for _ in range(4):
        with pytest.raises(openai.APITimeoutError):
            impatient.chat.completions.create(model="left", messages=USER)
    sim.clear_rules()
    time.sleep(0.9)  # the slow answers the gateway abandoned are over
    patient = openai.OpenAI(base_url=gw.base_url, api_key="x", max_retries=0)
    assert chain(patient, "left") == (DEFAULT_TEXT, "left:ok")


def test_refusals_are_answers_not_outages(client: openai.OpenAI, sim: SimServer) -> None:
    sim.set_rules([{"model": "ev-refusing", "fault": "content_policy_violation", "times": 6},
                   {"model": "ev-refusing", "fault": "context_length_exceeded", "times": 6}])
    codes = []
    for _ in range(12):
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(model="refusing", messages=USER)
        codes.append(info.value.code)
    assert sorted(set(codes)) == ["content_policy_violation", "context_length_exceeded"]
    assert seen(sim, "ev-refusing") == 12  # one attempt each, never retried
    assert chain(client, "refusing") == (DEFAULT_TEXT, "refusing:ok")


def test_an_open_lone_deployment_still_answers_what_it_can(
    client: openai.OpenAI, sim: SimServer
) -> None:
    """Panic mode: the group's only deployment failed enough to open its circuit, yet a
    request that it would answer (here: a content-filter refusal, then a real answer) gets
    that answer rather than 503 no_deployment_available for the whole cool-down."""
    sim.set_rules([{"model": "ev-lone", "fault": "unavailable"}])
    for _ in range(3):
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="lone", messages=USER)
    before = seen(sim, "ev-lone")
    # Closed: the first attempt and 3 retries each; the third request's first failure opens
    # the circuit (3 failed requests of 3) and, the deployment being dead, ends its retries.
    assert before == 4 + 4 + 1
    for _ in range(3):  # open and dead: one attempt per request, no retries
        with pytest.raises(openai.InternalServerError) as info:
            client.chat.completions.create(model="lone", messages=USER)
        assert info.value.status_code == 503 and info.value.code != "no_deployment_available"
    assert seen(sim, "ev-lone") == before + 3
    sim.set_rules([{"model": "ev-lone", "fault": "content_policy_violation", "times": 1}])
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="lone", messages=USER)
    assert refused.value.code == "content_policy_violation"
    assert chain(client, "lone") == (DEFAULT_TEXT, "lone:ok")


def test_panic_tries_the_least_recently_failed_first(
    client: openai.OpenAI, sim: SimServer
) -> None:
    sim.set_rules([{"model": "ev-first", "fault": "unavailable"},
                   {"model": "ev-second", "fault": "server_error"}])
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="both-down", messages=USER)
    # Both circuits are open; 'first' failed before 'second' in each request.
    sim.set_rules([{"model": "ev-second", "fault": "server_error"}])  # 'first' is back
    second = seen(sim, "ev-second")
    assert chain(client, "both-down") == (DEFAULT_TEXT, "first:ok")
    assert seen(sim, "ev-second") == second


def test_one_vendor_wholly_down_serves_everything_and_sees_only_probes(
    client: openai.OpenAI, sim: SimServer, other: SimServer
) -> None:
    """Two vendors serve the same model; one is dead. Every request is served, and after its
    circuit opens the dead vendor sees one probe per 0.5 s cool-down, nothing else."""
    sim.set_rules([{"model": "ev-vendor", "fault": "unavailable"}])
    before = seen(sim, "ev-vendor")
    started = time.monotonic()
    served = 0
    with ThreadPoolExecutor(4) as pool:
        while time.monotonic() - started < 2.0:
            replies = list(pool.map(lambda _: chain(client, "vendors")[0], range(8)))
            served += replies.count(DEFAULT_TEXT)
            assert replies == [DEFAULT_TEXT] * 8
    elapsed = time.monotonic() - started
    dead = seen(sim, "ev-vendor") - before
    # 5 failed requests open the circuit (+3 already in flight), then one probe per cool-down.
    assert dead <= 5 + 3 + int(elapsed / 0.5) + 1
    assert served >= 40 and seen(other, "ev-vendor") >= served - dead


def test_a_transient_error_retries_the_model_asked_for_first(
    client: openai.OpenAI, sim: SimServer
) -> None:
    sim.set_rules([{"model": "ev-asked", "fault": "server_error", "times": 1}])
    assert chain(client, "asked") == (DEFAULT_TEXT, "asked:upstream_unavailable,asked:ok")
    # A 429 with a short Retry-After is waited for, on the model asked for.
    sim.set_rules([{"model": "ev-asked", "fault": "rate_limit", "params": {"retry_after": 0.3},
                    "times": 1}])
    started = time.monotonic()
    assert chain(client, "asked") == (DEFAULT_TEXT, "asked:upstream_rate_limited,asked:ok")
    assert time.monotonic() - started >= 0.3
    # Twice in a row: one retry only, then the other model.
    sim.set_rules([{"model": "ev-asked", "fault": "unavailable", "times": 2}])
    assert chain(client, "asked")[1] == (
        "asked:upstream_unavailable,asked:upstream_unavailable,other:ok")
    # A long Retry-After is not waited for: the other model answers at once.
    sim.set_rules([{"model": "ev-asked", "fault": "rate_limit", "params": {"retry_after": 5},
                    "times": 1}])
    assert chain(client, "asked") == (DEFAULT_TEXT, "asked:upstream_rate_limited,other:ok")


def test_another_deployment_of_the_same_model_is_tried_at_once(
    client: openai.OpenAI, sim: SimServer
) -> None:
    sim.set_rules([{"model": "ev-same-a", "fault": "server_error", "times": 1}])
    assert chain(client, "same") == (DEFAULT_TEXT, "same-a:upstream_unavailable,same-b:ok")
    sim.set_rules([{"model": "ev-impatient", "fault": "server_error", "times": 1}])
    assert chain(client, "impatient") == (
        DEFAULT_TEXT, "impatient:upstream_unavailable,other:ok")  # before_other_model: 0


def test_context_window_moves_to_a_client_listed_model_of_unknown_window(
    client: openai.OpenAI, sim: SimServer
) -> None:
    text, attempts = chain(client, "sim/ev-own@context_length_exceeded",
                           extra_body={"models": ["sim/ev-listed"]})
    assert (text, attempts) == (
        DEFAULT_TEXT,
        "sim/ev-own@context_length_exceeded:context_window_exceeded,sim/ev-listed:ok")
    # A configured fallback of unknown window is not tried: known windows rule configs.
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="small", messages=USER)
    assert info.value.code == "context_length_exceeded"
    assert seen(sim, "ev-unknown") == 0
    # ... unless the client lists it itself.
    assert chain(client, "small", extra_body={"models": ["unknown-window"]}) == (
        DEFAULT_TEXT, "small:context_window_exceeded,unknown:ok")
