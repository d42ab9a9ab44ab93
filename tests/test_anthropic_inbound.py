"""The official ``anthropic`` SDK as a client: → polyroute's ``/v1/messages`` → an
OpenAI-protocol upstream and an Anthropic-protocol upstream. Whatever the upstream, the client
gets Anthropic's wire exactly (validated strictly with the SDK's own types) and the same
answer."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest
from anthropic.types import MessageTokensCount

from polyroute.sim.settings import DEFAULT_TEXT
from tests.support.gateway import GatewayProcess
from tests.support.sim import SimServer
from tests.test_anthropic_sim import (
    WEATHER,
    check_stream_order,
    sse_events,
    strict_error,
    strict_event,
    strict_message,
)

OPENAI_KEY = "sk-openai-upstream-5e1f"
ANTHROPIC_KEY = "sk-ant-upstream-0b7d"
USER = [{"role": "user", "content": "Say hello."}]
PNG_DATA = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
UPSTREAMS = ["gpt", "claude"]


@pytest.fixture(scope="module")
def sims() -> Iterator[tuple[SimServer, SimServer]]:
    with SimServer(api_key=OPENAI_KEY) as oai, SimServer(api_key=ANTHROPIC_KEY) as ant:
        yield oai, ant


@pytest.fixture(scope="module")
def gateway(sims: tuple[SimServer, SimServer]) -> Iterator[GatewayProcess]:
    oai, ant = sims
    config = {
        "providers": {
            "oai": {"base_url": oai.base_url, "api_key": "${OAI_KEY}", "any_model": True},
            "ant": {"protocol": "anthropic", "base_url": ant.root_url,
                    "api_key": "${ANT_KEY}", "auth": "x-api-key", "any_model": True},
        },
        "model_groups": {
            "gpt": {"deployments": [{"provider": "oai", "model": "gpt-4o-mini"}]},
            "claude": {"deployments": [{"provider": "ant", "model": "claude-sim"}]},
            "gpt-echo": {"deployments": [{"provider": "oai", "model": "echo"}]},
            "claude-echo": {"deployments": [{"provider": "ant", "model": "echo"}]},
        },
        "storage": {"flush_interval_s": 0.05},
    }
    with GatewayProcess(config, env={"OAI_KEY": OPENAI_KEY, "ANT_KEY": ANTHROPIC_KEY}) as gw:
        yield gw


@pytest.fixture(scope="module")
def client(gateway: GatewayProcess) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.root_url, api_key="client-key", max_retries=0,
                               timeout=15)


def last_body(sims: tuple[SimServer, SimServer], group: str) -> dict[str, Any]:
    sim = sims[0] if group.startswith("gpt") else sims[1]
    return dict(sim.stats()["last_request"]["body"])


def stream_events(gateway: GatewayProcess, body: dict[str, Any]) -> list[tuple[str, Any]]:
    with httpx.stream("POST", f"{gateway.root_url}/v1/messages", timeout=15,
                      json={**body, "stream": True},
                      headers={"anthropic-version": "2023-06-01"}) as response:
        assert response.status_code == 200, response.read()
        events = sse_events(response.iter_lines())
    for name, data in events:
        strict_event(name, data)
    return events


@pytest.mark.parametrize("group", UPSTREAMS)
def test_text_message(client: anthropic.Anthropic, sims: Any, group: str) -> None:
    raw = client.messages.with_raw_response.create(
        model=group, max_tokens=300, system="Be brief.", messages=USER)
    assert raw.headers["request-id"]
    message = strict_message(json.loads(raw.http_response.content))
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == DEFAULT_TEXT  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn" and message.role == "assistant"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    sent = last_body(sims, group)
    if group == "gpt":
        assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
        assert sent["max_completion_tokens"] == 300
    else:
        assert sent["system"] == "Be brief." and sent["max_tokens"] == 300


@pytest.mark.parametrize("group", UPSTREAMS)
def test_streamed_text(client: anthropic.Anthropic, gateway: GatewayProcess,
                       group: str) -> None:
    events = stream_events(gateway, {"model": group, "max_tokens": 300, "messages": USER})
    check_stream_order(events)
    text = "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta")
    assert text == DEFAULT_TEXT
    final = events[-2][1]
    assert final["delta"]["stop_reason"] == "end_turn"
    assert final["usage"]["input_tokens"] > 0 and final["usage"]["output_tokens"] > 0
    with client.messages.stream(model=group, max_tokens=300, messages=USER) as stream:
        assert "".join(stream.text_stream) == DEFAULT_TEXT
        message = stream.get_final_message()
    strict_message(message.model_dump(mode="json", exclude_none=True))
    assert message.usage.input_tokens > 0 and message.stop_reason == "end_turn"


@pytest.mark.parametrize("group", UPSTREAMS)
def test_tool_use_streamed_and_not(client: anthropic.Anthropic, gateway: GatewayProcess,
                                   group: str) -> None:
    body: dict[str, Any] = {"model": group, "max_tokens": 300, "messages": USER,
                            "tools": [WEATHER], "tool_choice": {"type": "any"}}
    raw = client.messages.with_raw_response.create(**body)
    message = strict_message(json.loads(raw.http_response.content))
    assert message.stop_reason == "tool_use"
    block = message.content[-1]
    assert block.type == "tool_use" and block.name == "get_weather"
    assert block.input == {"location": "Paris"} and block.id

    events = stream_events(gateway, body)
    check_stream_order(events)
    starts = [d["content_block"] for n, d in events if n == "content_block_start"]
    assert starts[-1]["type"] == "tool_use" and starts[-1]["name"] == "get_weather"
    fragments = [d["delta"]["partial_json"] for n, d in events
                 if n == "content_block_delta" and d["delta"]["type"] == "input_json_delta"]
    assert len(fragments) > 1 and json.loads("".join(fragments)) == {"location": "Paris"}
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"
    with client.messages.stream(**body) as stream:
        final = stream.get_final_message()
    assert final.content[-1].input == {"location": "Paris"}  # type: ignore[union-attr]


@pytest.mark.parametrize("group", UPSTREAMS)
def test_tool_result_round_trip(client: anthropic.Anthropic, sims: Any, group: str) -> None:
    history: list[Any] = [
        *USER,
        {"role": "assistant", "content": [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "toolu_01X", "name": "get_weather",
             "input": {"location": "Paris"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_01X", "content": "18°C"}]},
    ]
    message = client.messages.create(model=f"{group}-echo", max_tokens=300,
                                     messages=history, tools=[WEATHER])  # type: ignore[list-item]
    assert message.content[0].text == "Say hello."  # type: ignore[union-attr]
    sent = last_body(sims, f"{group}-echo")["messages"]
    if group == "gpt":
        assert sent[1] == {"role": "assistant", "content": "Let me check.", "tool_calls": [
            {"id": "toolu_01X", "type": "function", "function": {"name": "get_weather",
                                             "arguments": '{"location":"Paris"}'}}]}
        assert sent[2] == {"role": "tool", "content": "18°C", "tool_call_id": "toolu_01X"}
    else:
        assert sent[1:] == history[1:]


@pytest.mark.parametrize("group", UPSTREAMS)
def test_image_block(client: anthropic.Anthropic, sims: Any, group: str) -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": PNG_DATA}}
    client.messages.create(model=group, max_tokens=50, messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is this?"}, image]}])  # type: ignore[list-item]
    part = last_body(sims, group)["messages"][-1]["content"][1]
    if group == "gpt":
        assert part == {"type": "image_url",
                        "image_url": {"url": f"data:image/png;base64,{PNG_DATA}"}}
    else:
        assert part == image


def test_cache_control_and_thinking_survive_anthropic_to_anthropic(
    client: anthropic.Anthropic,
) -> None:
    system = [{"type": "text", "text": "You are a meticulous assistant. " * 30,
               "cache_control": {"type": "ephemeral"}}]
    first = client.messages.create(model="claude", max_tokens=50, system=system,  # type: ignore[arg-type]
                                   messages=USER)
    second = client.messages.create(model="claude", max_tokens=50, system=system,  # type: ignore[arg-type]
                                    messages=USER)
    assert first.usage.cache_creation_input_tokens and not first.usage.cache_read_input_tokens
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    assert second.usage.input_tokens == first.usage.input_tokens

    thought = client.messages.create(model="claude", max_tokens=2048, messages=USER,
                                     thinking={"type": "enabled", "budget_tokens": 1024})
    assert [b.type for b in thought.content] == ["thinking", "text"]
    thinking = thought.content[0]
    assert thinking.signature and thinking.thinking  # type: ignore[union-attr]
    with client.messages.stream(model="claude", max_tokens=2048, messages=USER,
                                thinking={"type": "enabled", "budget_tokens": 1024}) as stream:
        streamed = stream.get_final_message()
    assert streamed.content[0].type == "thinking"
    assert streamed.content[0].signature  # type: ignore[union-attr]
    assert streamed.content[0].thinking == thinking.thinking  # type: ignore[union-attr]


def test_errors_in_anthropic_shape(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.messages.create(model="no-such-model", max_tokens=9, messages=USER)
    assert strict_error(missing.value.body).error.type == "not_found_error"  # type: ignore[arg-type]
    with pytest.raises(anthropic.BadRequestError) as bad:
        client.post("/v1/messages", cast_to=httpx.Response,
                    body={"model": "claude", "messages": USER})
    assert "max_tokens: Field required" in bad.value.message
    strict_error(bad.value.body)  # type: ignore[arg-type]
    for group in ("oai/gpt-4o-mini@rate_limit", "ant/claude-sim@rate_limit"):
        with pytest.raises(anthropic.RateLimitError) as limited:
            client.messages.create(model=group, max_tokens=9, messages=USER)
        assert strict_error(limited.value.body).error.type == "rate_limit_error"  # type: ignore[arg-type]
        assert limited.value.response.headers["retry-after"] == "1"
    with pytest.raises(anthropic.InternalServerError) as overloaded:
        client.messages.create(model="ant/claude-sim@overloaded", max_tokens=9, messages=USER)
    assert overloaded.value.status_code == 529
    assert strict_error(overloaded.value.body).error.type == "overloaded_error"  # type: ignore[arg-type]
    with pytest.raises(anthropic.BadRequestError) as too_long:
        client.messages.create(model="ant/claude-sim@context_length_exceeded", max_tokens=9,
                               messages=USER)
    assert "prompt is too long" in too_long.value.message


@pytest.mark.parametrize("model", ["oai/gpt-4o-mini@stream_cut:after_chunks=3",
                                   "ant/claude-sim@stream_error:after_chunks=3"])
def test_mid_stream_failure_is_an_error_event(
    client: anthropic.Anthropic, gateway: GatewayProcess, model: str
) -> None:
    with httpx.stream("POST", f"{gateway.root_url}/v1/messages", timeout=15, json={
            "model": model, "max_tokens": 99, "messages": USER, "stream": True}) as response:
        events = sse_events(response.iter_lines())
    for name, data in events:
        strict_event(name, data)
    names = [n for n, _ in events]
    assert names[0] == "message_start" and "content_block_delta" in names
    assert names[-1] == "error" and "message_stop" not in names
    assert "after the answer had started" in events[-1][1]["error"]["message"]
    with pytest.raises(anthropic.APIStatusError),  client.messages.stream(
            model=model, max_tokens=99, messages=USER) as stream:
        for _ in stream:
            pass


def test_count_tokens_is_an_estimate(client: anthropic.Anthropic) -> None:
    raw = client.messages.with_raw_response.count_tokens(model="gpt", messages=USER,
                                                          system="Be brief.")
    count = MessageTokensCount.model_validate(json.loads(raw.http_response.content),
                                              strict=True)
    assert 3 <= count.input_tokens <= 50


def test_unmappable_requests_are_refused_clearly(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as server_tool:
        client.messages.create(model="gpt", max_tokens=9, messages=USER, tools=[
            {"type": "web_search_20250305", "name": "web_search"}])  # type: ignore[list-item]
    assert "runs only on Anthropic's own servers" in server_tool.value.message
    with pytest.raises(anthropic.BadRequestError) as unknown:
        client.post("/v1/messages", cast_to=httpx.Response, body={
            "model": "gpt", "max_tokens": 9, "messages": USER, "frequency_penalty": 1})
    assert "frequency_penalty: Extra inputs are not permitted" in unknown.value.message
