"""The official openai SDK → a real polyroute process → the Anthropic-protocol simulator, over
real sockets: what Anthropic answers reaches an OpenAI client with nothing lost, and what the
client asks reaches Anthropic in Anthropic's own terms."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletion

from polyroute.sim.settings import DEFAULT_TEXT
from tests.support.gateway import GatewayProcess
from tests.support.sim import SimServer

KEY = "sk-ant-upstream-secret-91c2"  # must never appear in the gateway's log
USER = [{"role": "user", "content": "Say hello."}]
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather at a place.", "parameters": {
        "type": "object", "properties": {"location": {"type": "string"}},
        "required": ["location"]}}}]
PNG = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"


def claude(sim: SimServer, **extra: Any) -> dict[str, Any]:
    return {"protocol": "anthropic", "base_url": sim.root_url, "api_key": "${ANT_KEY}",
            "auth": "x-api-key", "any_model": True, **extra}


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with SimServer(api_key=KEY) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(sim: SimServer) -> Iterator[GatewayProcess]:
    config = {
        "providers": {
            "claude": claude(sim),
            "claude-lenient": claude(sim, quirks={"drop_params": ["logprobs", "seed"],
                                                  "default_max_tokens": 777}),
        },
        "model_groups": {
            "sonnet": {"deployments": [{"provider": "claude", "model": "claude-sim"}]},
            "echo": {"deployments": [{"provider": "claude", "model": "echo"}]},
            "failover": {"routing": "priority", "deployments": [
                {"provider": "claude", "model": "claude-a@overloaded", "name": "primary"},
                {"provider": "claude", "model": "claude-b", "name": "backup", "priority": 1},
            ]},
            "too-long": {"routing": "priority", "deployments": [
                {"provider": "claude", "model": "claude-c@context_length_exceeded",
                 "name": "small"},
                {"provider": "claude", "model": "claude-d", "name": "other", "priority": 1},
            ]},
        },
        "storage": {"flush_interval_s": 0.05},
    }
    with GatewayProcess(config, env={"ANT_KEY": KEY}, log_level="DEBUG") as gw:
        yield gw
        assert KEY not in gw.log(), "the upstream key leaked into the gateway's log"


@pytest.fixture(scope="module")
def client(gateway: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0)


def upstream(sim: SimServer) -> dict[str, Any]:
    last = sim.stats()["last_request"]
    assert last["path"] == "/v1/messages"
    return dict(last)


def test_text_with_system_prompt_and_usage(client: openai.OpenAI, sim: SimServer) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="sonnet", messages=[{"role": "system", "content": "Be brief."}, *USER],
        temperature=0.3, stop=["never-said"], user="user-7")
    completion = raw.parse()
    assert isinstance(completion, ChatCompletion)
    assert completion.choices[0].message.content == DEFAULT_TEXT
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "claude-sim" and completion.id.startswith("msg_")
    usage = completion.usage
    assert usage is not None and usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    sent = upstream(sim)
    assert sent["headers"]["x-api-key"] == KEY and "authorization" not in sent["headers"]
    assert sent["headers"]["anthropic-version"] == "2023-06-01"
    assert sent["body"] == {
        "model": "claude-sim", "max_tokens": 4096, "system": "Be brief.",
        "messages": [{"role": "user", "content": "Say hello."}], "temperature": 0.3,
        "stop_sequences": ["never-said"], "metadata": {"user_id": "user-7"}}



def test_tool_call_round_trip(client: openai.OpenAI, sim: SimServer) -> None:
    first = client.chat.completions.create(model="sonnet", messages=USER, tools=TOOLS,  # type: ignore[arg-type]
                                           tool_choice="required")
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    call = choice.message.tool_calls[0]  # type: ignore[index]
    assert call.id.startswith("toolu_") and call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"location": "Paris"}  # type: ignore[union-attr]
    sent = upstream(sim)["body"]
    assert sent["tools"] == [{"name": "get_weather", "description": "Weather at a place.",
                              "input_schema": TOOLS[0]["function"]["parameters"]}]  # type: ignore[index]
    assert sent["tool_choice"] == {"type": "any"}

    history: list[Any] = [
        *USER, choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "18°C and sunny"}]
    second = client.chat.completions.create(model="echo", messages=history, tools=TOOLS)  # type: ignore[arg-type]
    assert second.choices[0].message.content == "Say hello."
    assert second.choices[0].finish_reason == "stop"
    turns = upstream(sim)["body"]["messages"]
    assert turns[1] == {"role": "assistant", "content": [
        {"type": "tool_use", "id": call.id, "name": "get_weather",
         "input": {"location": "Paris"}}]}
    assert turns[2] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": call.id, "content": "18°C and sunny"}]}



def test_image_parts(client: openai.OpenAI, sim: SimServer) -> None:
    client.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is in these?"},
        {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
    ]}])
    assert upstream(sim)["body"]["messages"][0]["content"] == [
        {"type": "text", "text": "What is in these?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                     "data": PNG.split(",", 1)[1]}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]


def test_prompt_cache_usage_is_reported_as_cached_tokens(client: openai.OpenAI) -> None:
    system = {"role": "system", "content": [
        {"type": "text", "text": "You are a meticulous assistant. " * 30,
         "cache_control": {"type": "ephemeral"}}]}
    usages = [client.chat.completions.create(model="sonnet", messages=[system, *USER]).usage
              for _ in range(2)]  # type: ignore[list-item]
    first, second = usages
    assert first is not None and second is not None
    written = first.prompt_tokens_details.model_extra["cache_creation_tokens"]  # type: ignore[union-attr]
    assert written > 0 and first.prompt_tokens_details.cached_tokens == 0  # type: ignore[union-attr]
    assert second.prompt_tokens_details.cached_tokens == written  # type: ignore[union-attr]
    assert first.prompt_tokens == second.prompt_tokens, "cached tokens are prompt tokens too"


def test_529_fails_over_to_the_backup(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="failover", messages=USER)
    assert raw.parse().choices[0].message.content == DEFAULT_TEXT
    assert raw.headers["x-polyroute-attempts"] == "primary:upstream_unavailable,backup:ok"
    stream = client.chat.completions.with_raw_response.create(
        model="failover", messages=USER, stream=True)
    assert stream.headers["x-polyroute-deployment"] == "backup"
    assert "".join(c.choices[0].delta.content or "" for c in stream.parse()) == DEFAULT_TEXT


def test_single_deployment_errors_keep_their_meaning(client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(model="claude/c@rate_limit:retry_after=2",
                                       messages=USER)
    assert limited.value.response.headers["retry-after"] == "2"
    with pytest.raises(openai.InternalServerError) as overloaded:
        client.chat.completions.create(model="claude/c@overloaded", messages=USER)
    assert overloaded.value.status_code == 529 and "Overloaded" in overloaded.value.message


def test_prompt_too_long_is_context_length_exceeded_without_failover(
    client: openai.OpenAI, sim: SimServer
) -> None:
    sim.reset()
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="too-long", messages=USER)
    assert info.value.code == "context_length_exceeded"
    assert "prompt is too long" in info.value.message
    assert sim.stats()["requests_total"] == 1



def test_unsupported_parameters_are_a_400_naming_them(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="sonnet", messages=USER, logprobs=True)
    assert info.value.param == "logprobs" and "Anthropic" in info.value.message
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="sonnet", messages=USER, n=2)
    assert info.value.param == "n"


def test_drop_params_and_default_max_tokens(client: openai.OpenAI, sim: SimServer) -> None:
    client.chat.completions.create(model="claude-lenient/claude-sim", messages=USER,
                                   logprobs=True, seed=7, n=1)
    body = upstream(sim)["body"]
    assert body["max_tokens"] == 777 and "logprobs" not in body and "seed" not in body
    client.chat.completions.create(model="sonnet", messages=USER, max_completion_tokens=55)
    assert upstream(sim)["body"]["max_tokens"] == 55


def test_json_schema_response_format(client: openai.OpenAI, sim: SimServer) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"],
              "additionalProperties": False}
    client.chat.completions.create(model="sonnet", messages=USER, response_format={
        "type": "json_schema", "json_schema": {"name": "x", "schema": schema}})
    assert upstream(sim)["body"]["output_config"] == {
        "format": {"type": "json_schema", "schema": schema}}


def test_no_embeddings_and_models_listed(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model="claude/any", input="hi")
    assert "Anthropic has no embeddings API" in info.value.message
    ids = {m.id for m in client.models.list()}
    assert {"sonnet", "claude/gpt-4o-mini", "claude/echo"} <= ids


def test_zero_config_discovery(sim: SimServer) -> None:
    env = {"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": sim.root_url}
    with GatewayProcess(None, env=env) as gw:
        client = openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)
        reply = client.chat.completions.create(model="anthropic/claude-sim", messages=USER)
        assert reply.choices[0].message.content == DEFAULT_TEXT
        assert upstream(sim)["headers"]["x-api-key"] == KEY
