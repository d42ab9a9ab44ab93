"""The Responses API inbound (`POST /v1/responses`), through the same engine, to an
OpenAI-protocol and an Anthropic-protocol upstream; validated with the openai SDK's types."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from polyroute.sim.settings import DEFAULT_TEXT
from tests.conftest import SIM_KEY, sim_provider
from tests.support.gateway import GatewayProcess
from tests.support.sim import SimServer

EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
WEATHER = {"type": "function", "name": "get_weather", "description": "Weather at a place.",
           "parameters": {"type": "object", "properties": {"location": {"type": "string"}},
                          "required": ["location"]}}


@pytest.fixture(scope="module")
def gw(sim: SimServer) -> Iterator[GatewayProcess]:
    config = {
        "providers": {
            "sim": sim_provider(sim),
            "claude": {"protocol": "anthropic", "base_url": sim.root_url,
                       "api_key": "${SIM_KEY}", "any_model": True},
        },
        "model_groups": {
            "gpt": {"deployments": [{"provider": "sim", "model": "gpt-4o-mini"}]},
            "claude": {"deployments": [{"provider": "claude", "model": "claude-sim"}]},
        },
    }
    with GatewayProcess(config, env={"SIM_KEY": SIM_KEY}) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def client(gw: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)


def stream_events(gw: GatewayProcess, body: dict[str, Any]) -> list[Any]:
    raw = httpx.post(gw.base_url + "/responses", json={**body, "stream": True}, timeout=20)
    assert raw.status_code == 200, raw.text
    events = []
    for block in raw.content.split(b"\n\n"):
        if not block.strip():
            continue
        head, _, data = block.partition(b"\ndata: ")
        payload = json.loads(data)
        assert head == b"event: " + payload["type"].encode()
        events.append(EVENTS.validate_python(payload))  # strict pydantic validation
    assert [e.sequence_number for e in events] == list(range(len(events)))
    return events


@pytest.mark.parametrize("model", ["gpt", "claude"])
def test_text_non_streaming(client: openai.OpenAI, gw: GatewayProcess, model: str) -> None:
    raw = httpx.post(gw.base_url + "/responses", timeout=20, json={
        "model": model, "instructions": "Be brief.", "input": "Say hello.",
        "max_output_tokens": 200})
    response = Response.model_validate(raw.json())
    assert response.status == "completed"
    assert response.output_text.strip()
    assert response.usage is not None and response.usage.output_tokens > 0
    via_sdk = client.responses.create(model=model, input="Say hello.")
    assert via_sdk.output_text == response.output_text


@pytest.mark.parametrize("model", ["gpt", "claude"])
def test_text_streaming(gw: GatewayProcess, model: str) -> None:
    events = stream_events(gw, {"model": model, "input": "Say hello."})
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    done = next(e for e in events if e.type == "response.output_text.done")
    assert text == done.text and text
    final = events[-1].response
    assert final.output_text == text and final.usage.output_tokens > 0
    if model == "gpt":
        assert text == DEFAULT_TEXT


def test_function_call_round_trip(client: openai.OpenAI, gw: GatewayProcess) -> None:
    first = client.responses.create(model="gpt", input="Weather in Paris?", tools=[WEATHER],
                                    tool_choice="required")  # type: ignore[list-item]
    call = next(item for item in first.output if item.type == "function_call")
    assert call.name == "get_weather" and json.loads(call.arguments)
    events = stream_events(gw, {"model": "gpt", "input": "Weather in Paris?",
                                "tools": [WEATHER], "tool_choice": "required"})
    args = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert json.loads(args) == json.loads(call.arguments)
    second = client.responses.create(model="claude", tools=[WEATHER], input=[  # type: ignore[list-item]
        {"role": "user", "content": "Weather in Paris?"},
        {"type": "function_call", "call_id": call.call_id, "name": call.name,
         "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"},
    ])
    assert second.status == "completed" and second.output_text


def test_unsupported_is_a_clear_400(gw: GatewayProcess) -> None:
    for body, param in [
        ({"model": "gpt", "input": "x", "previous_response_id": "resp_1"},
         "previous_response_id"),
        ({"model": "gpt", "input": "x", "tools": [{"type": "web_search"}]}, "tools[0]"),
        ({"model": "gpt"}, "input"),
    ]:
        reply = httpx.post(gw.base_url + "/responses", json=body, timeout=10)
        assert reply.status_code == 400, reply.text
        assert reply.json()["error"]["param"] == param


def test_failure_mid_stream_raises_in_the_sdk(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIError):
        for _ in client.responses.create(model="sim/gpt-4o-mini@stream_cut:after_chunks=3",
                                         input="Say hello.", stream=True):
            pass
