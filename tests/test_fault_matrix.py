"""Every fault the simulator has, through the openai SDK, in a one-deployment and a
two-deployment group, with a config file and in zero-config mode (the gateway built from
environment discovery, the second deployment being the request's own ``models`` entry).

Anthropic's own faults (overloaded, stream_error) run against the Anthropic-protocol
simulator; the others against the OpenAI one. Mid-answer faults on a stream are only held to
what is promised today: a complete answer, or an error the SDK raises, never a truncated
answer passed off as complete."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from polyroute.sim.faults import FaultName
from polyroute.sim.settings import DEFAULT_TEXT
from tests.conftest import SIM_KEY, sim_provider
from tests.support.gateway import GatewayProcess
from tests.support.sim import SimServer

USER = [{"role": "user", "content": "Say hello."}]
# Deadlines the client chooses, so that zero-config (30 s defaults) stays quick too.
HEADERS = {"x-polyroute-ttft-timeout": "1", "x-polyroute-stall-timeout": "1"}

SUFFIX = {
    FaultName.RATE_LIMIT: "rate_limit:retry_after=0.2",
    FaultName.NO_RESPONSE: "no_response:hold_s=0.5",
    FaultName.SLOW_FIRST_TOKEN: "slow_first_token:delay_ms=1500",
    FaultName.STREAM_STALL: "stream_stall:hold_s=3",
}
ANTHROPIC_ONLY = {FaultName.OVERLOADED, FaultName.STREAM_ERROR}
MID_ANSWER = {FaultName.STREAM_CUT, FaultName.STREAM_STALL, FaultName.MALFORMED_CHUNK,
              FaultName.STREAM_ERROR}
ALONE = {  # a one-deployment group, after its retries
    FaultName.RATE_LIMIT: 429, FaultName.RATE_LIMIT_NO_RETRY_AFTER: 429,
    FaultName.SERVER_ERROR: 500, FaultName.UNAVAILABLE: 503,
    FaultName.RESET_BEFORE_HEADERS: 502, FaultName.NO_RESPONSE: 502,
    FaultName.SLOW_FIRST_TOKEN: 504, FaultName.STREAM_CUT: 502, FaultName.STREAM_STALL: 502,
    FaultName.MALFORMED_CHUNK: 502, FaultName.OVERLOADED: 529, FaultName.STREAM_ERROR: 529,
}


def vendor(fault: FaultName) -> str:
    return "anthropic" if fault in ANTHROPIC_ONLY else "openai"


def faulty_model(fault: FaultName, shape: str) -> str:
    return f"m-{shape}-{fault.value}@{SUFFIX.get(fault, fault.value)}"


def expected(fault: FaultName, shape: str, mode: str, stream: bool) -> int | str:
    """'ok'; 'mid' (complete, or raised by the SDK); or the HTTP status the client gets."""
    if fault in (FaultName.NO_DONE, FaultName.SPLIT_UTF8):
        return "ok"
    if fault is FaultName.CONTENT_POLICY_VIOLATION:
        return 400
    if fault is FaultName.CONTEXT_LENGTH_EXCEEDED:
        # A window of unknown size is tried only when the client listed it (zero-config's
        # second deployment is the request's own 'models' entry).
        return "ok" if shape == "two" and mode == "zero" else 400
    if fault is FaultName.SLOW_FIRST_TOKEN and not stream:
        return "ok"  # 1.5 s is within the non-streaming limits
    if fault in MID_ANSWER and stream:
        return "mid"
    if shape == "two":
        return "ok"
    if fault is FaultName.STREAM_STALL and mode == "config":
        return 504  # the half-sent body outlasts response_s (2 s) before the sim closes it
    return ALONE[fault]


def config(sim: SimServer) -> dict[str, Any]:
    groups: dict[str, Any] = {}
    for fault in FaultName:
        provider = "ant" if fault in ANTHROPIC_ONLY else "sim"
        groups[f"one-{fault.value}"] = {"deployments": [
            {"provider": provider, "model": faulty_model(fault, "one")}]}
        groups[f"two-{fault.value}"] = {"routing": "priority", "deployments": [
            {"provider": provider, "model": faulty_model(fault, "two"), "name": "primary"},
            {"provider": provider, "model": f"b-{fault.value}", "name": "backup",
             "priority": 1}]}
    return {
        "providers": {"sim": sim_provider(sim),
                      "ant": sim_provider(sim, protocol="anthropic", base_url=sim.root_url)},
        "model_groups": groups,
        "resilience": {"timeouts": {"connect_s": 1, "ttft_s": 1, "stall_s": 1,
                                    "response_s": 2, "total_s": 10}},
        "storage": {"flush_interval_s": 0.05},
    }


@pytest.fixture(scope="module")
def configured(sim: SimServer) -> Iterator[openai.OpenAI]:
    with GatewayProcess(config(sim), env={"SIM_KEY": SIM_KEY}) as gw:
        yield openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0, timeout=30,
                            default_headers=HEADERS)


@pytest.fixture(scope="module")
def zero_config(sim: SimServer) -> Iterator[openai.OpenAI]:
    env = {"OPENAI_API_KEY": SIM_KEY, "OPENAI_BASE_URL": sim.base_url,
           "ANTHROPIC_API_KEY": SIM_KEY, "ANTHROPIC_BASE_URL": sim.root_url}
    with GatewayProcess(None, env=env) as gw:
        yield openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0, timeout=30,
                            default_headers=HEADERS)


def ask(client: openai.OpenAI, model: str, stream: bool, **kw: Any) -> str:
    if not stream:
        reply = client.chat.completions.create(model=model, messages=USER, **kw)
        return reply.choices[0].message.content or ""
    chunks = client.chat.completions.create(model=model, messages=USER, stream=True, **kw)
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("shape", ["one", "two"])
@pytest.mark.parametrize("mode", ["config", "zero"])
@pytest.mark.parametrize("fault", list(FaultName), ids=[f.value for f in FaultName])
def test_fault(
    request: pytest.FixtureRequest, fault: FaultName, mode: str, shape: str, stream: bool
) -> None:
    client: openai.OpenAI = request.getfixturevalue(
        "configured" if mode == "config" else "zero_config")
    kw: dict[str, Any] = {}
    if mode == "config":
        model = f"{shape}-{fault.value}"
    else:
        model = f"{vendor(fault)}/{faulty_model(fault, shape)}"
        if shape == "two":
            kw["extra_body"] = {"models": [f"{vendor(fault)}/b-{fault.value}"]}
    want = expected(fault, shape, mode, stream)
    if want == "ok":
        assert ask(client, model, stream, **kw) == DEFAULT_TEXT
    elif want == "mid":
        try:
            text = ask(client, model, stream, **kw)
        except openai.APIError:
            return  # the stream ended with an error event: never a silent truncation
        assert text == DEFAULT_TEXT
    else:
        with pytest.raises(openai.APIStatusError) as info:
            ask(client, model, stream, **kw)
        assert info.value.status_code == want
