"""The official openai SDK → a real polyroute process → the Gemini-protocol simulator, over real
sockets: what Gemini answers reaches an OpenAI client with nothing lost (text, tool calls with
their thought signatures, usage with reasoning and cached tokens), and what the client asks
reaches Gemini in Gemini's own terms."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from polyroute.config.discovery import discover
from polyroute.sim.settings import DEFAULT_TEXT
from tests.support.gateway import GatewayProcess
from tests.support.sim import SimServer

KEY = "gemini-upstream-secret-3e8d"  # must never appear in the gateway's log
USER = [{"role": "user", "content": "Say hello."}]
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather at a place.", "parameters": {
        "type": "object", "properties": {"location": {"type": "string"}},
        "required": ["location"]}}}]
PNG_DATA = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJ"
            "RU5ErkJggg==")
PNG = f"data:image/png;base64,{PNG_DATA}"


def gemini(sim: SimServer, **extra: Any) -> dict[str, Any]:
    return {"protocol": "gemini", "base_url": sim.root_url, "api_key": "${GEMINI_KEY}",
            "auth": "x-goog-api-key", "any_model": True, **extra}


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with SimServer(api_key=KEY) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(sim: SimServer) -> Iterator[GatewayProcess]:
    config = {
        "providers": {
            "gemini": gemini(sim),
            "gemini-lenient": gemini(sim, quirks={"drop_params": ["logprobs"]}),
        },
        "model_groups": {
            "flash": {"deployments": [{"provider": "gemini", "model": "gemini-sim"}]},
            "echo": {"deployments": [{"provider": "gemini", "model": "echo"}]},
            "failover": {"routing": "priority", "deployments": [
                {"provider": "gemini", "model": "gemini-a@rate_limit:retry_after=30",
                 "name": "primary"},
                {"provider": "gemini", "model": "gemini-b", "name": "backup", "priority": 1},
            ]},
        },
        "storage": {"flush_interval_s": 0.05},
    }
    with GatewayProcess(config, env={"GEMINI_KEY": KEY}, log_level="DEBUG") as gw:
        yield gw
        assert KEY not in gw.log(), "the upstream key leaked into the gateway's log"


@pytest.fixture(scope="module")
def client(gateway: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0)


def upstream(sim: SimServer) -> dict[str, Any]:
    return dict(sim.stats()["last_request"])


def test_text_with_system_prompt_and_usage(client: openai.OpenAI, sim: SimServer) -> None:
    completion = client.chat.completions.create(
        model="flash", messages=[{"role": "system", "content": "Be brief."}, *USER],
        temperature=0.3, top_p=0.9, stop=["never-said"], max_tokens=200, seed=4)
    choice = completion.choices[0]
    assert choice.message.content == DEFAULT_TEXT and choice.finish_reason == "stop"
    assert completion.model == "gemini-sim" and completion.id
    usage = completion.usage
    assert usage is not None and usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    sent = upstream(sim)
    assert sent["path"] == "/v1beta/models/gemini-sim:generateContent"
    assert sent["headers"]["x-goog-api-key"] == KEY and "authorization" not in sent["headers"]
    assert sent["body"] == {
        "contents": [{"role": "user", "parts": [{"text": "Say hello."}]}],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "generationConfig": {"maxOutputTokens": 200, "temperature": 0.3, "topP": 0.9,
                             "seed": 4, "stopSequences": ["never-said"]}}



def test_tool_call_round_trip_keeps_the_thought_signature(
    client: openai.OpenAI, sim: SimServer
) -> None:
    first = client.chat.completions.create(model="flash", messages=USER, tools=TOOLS,  # type: ignore[arg-type]
                                           tool_choice="required")
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    call = choice.message.tool_calls[0]  # type: ignore[index]
    assert call.id.startswith("call_") and call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"location": "Paris"}  # type: ignore[union-attr]
    signature = call.model_extra["extra_content"]["google"]["thought_signature"]  # type: ignore[index]
    assert signature
    sent = upstream(sim)["body"]
    assert sent["tools"] == [{"functionDeclarations": [{
        "name": "get_weather", "description": "Weather at a place.",
        "parametersJsonSchema": TOOLS[0]["function"]["parameters"]}]}]  # type: ignore[index]
    assert sent["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}

    history: list[Any] = [
        *USER, choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "18°C and sunny"}]
    second = client.chat.completions.create(model="echo", messages=history, tools=TOOLS)  # type: ignore[arg-type]
    assert second.choices[0].message.content == "Say hello."
    assert second.choices[0].finish_reason == "stop"
    contents = upstream(sim)["body"]["contents"]
    assert contents[1] == {"role": "model", "parts": [{
        "functionCall": {"name": "get_weather", "args": {"location": "Paris"}},
        "thoughtSignature": signature}]}
    assert contents[2] == {"role": "user", "parts": [{"functionResponse": {
        "name": "get_weather", "response": {"output": "18°C and sunny"}}}]}


def test_history_from_another_vendor_gets_the_documented_stand_in(
    client: openai.OpenAI, sim: SimServer
) -> None:
    history: list[Any] = [*USER, {"role": "assistant", "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "a", "arguments": "{}"}},
        {"id": "call_2", "type": "function", "function": {"name": "b", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"ok": true}'},
        {"role": "tool", "tool_call_id": "call_2", "content": "done"}]
    reply = client.chat.completions.create(model="echo", messages=history)  # type: ignore[arg-type]
    assert reply.choices[0].message.content == "Say hello."
    contents = upstream(sim)["body"]["contents"]
    calls = contents[1]["parts"]
    assert calls[0]["thoughtSignature"] == "skip_thought_signature_validator"
    assert "thoughtSignature" not in calls[1]
    assert contents[2]["parts"] == [  # parallel results share one turn
        {"functionResponse": {"name": "a", "response": {"ok": True}}},
        {"functionResponse": {"name": "b", "response": {"output": "done"}}}]


def test_streamed_tool_call(client: openai.OpenAI) -> None:
    calls = []
    finish = None
    for chunk in client.chat.completions.create(
            model="flash", messages=USER, tools=TOOLS, stream=True,  # type: ignore[arg-type]
            tool_choice={"type": "function", "function": {"name": "get_weather"}}):
        for choice in chunk.choices:
            calls += choice.delta.tool_calls or []
            finish = choice.finish_reason or finish
    assert len(calls) == 1 and calls[0].index == 0 and calls[0].type == "function"
    assert calls[0].function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(calls[0].function.arguments) == {"location": "Paris"}  # type: ignore[union-attr, arg-type]
    assert calls[0].model_extra["extra_content"]["google"]["thought_signature"]  # type: ignore[index]
    assert finish == "tool_calls"


def test_image_parts(client: openai.OpenAI, sim: SimServer) -> None:
    reply = client.chat.completions.create(model="flash", messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is in these?"},
        {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
    ]}])
    assert reply.usage is not None and reply.usage.prompt_tokens > 2 * 258
    assert upstream(sim)["body"]["contents"][0]["parts"] == [
        {"text": "What is in these?"},
        {"inlineData": {"mimeType": "image/png", "data": PNG_DATA}},
        {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/cat.jpg"}},
    ]


def test_json_schema_response_format(client: openai.OpenAI, sim: SimServer) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}},
              "required": ["city"], "additionalProperties": False}
    reply = client.chat.completions.create(model="flash", messages=USER, response_format={
        "type": "json_schema", "json_schema": {"name": "x", "schema": schema}})
    assert json.loads(reply.choices[0].message.content or "") == {"city": "Paris"}
    config = upstream(sim)["body"]["generationConfig"]
    assert config == {"responseMimeType": "application/json", "responseJsonSchema": schema}
    client.chat.completions.create(model="flash", messages=USER,
                                   response_format={"type": "json_object"})
    assert upstream(sim)["body"]["generationConfig"] == {"responseMimeType": "application/json"}


def test_reasoning_and_cached_tokens_in_usage(client: openai.OpenAI, sim: SimServer) -> None:
    reply = client.chat.completions.create(model="flash", messages=USER,
                                           reasoning_effort="medium")
    assert upstream(sim)["body"]["generationConfig"] == {"thinkingConfig": {
        "thinkingBudget": 8192}}
    usage = reply.usage
    assert usage is not None and usage.completion_tokens_details is not None
    reasoning = usage.completion_tokens_details.reasoning_tokens
    assert reasoning and usage.completion_tokens > reasoning  # reasoning is counted in
    system = {"role": "system", "content": "Follow the house rules. " * 300}
    first, second = (client.chat.completions.create(model="flash", messages=[system, *USER])
                     .usage for _ in range(2))
    assert first is not None and second is not None
    assert first.prompt_tokens_details is None or not first.prompt_tokens_details.cached_tokens
    assert second.prompt_tokens_details is not None
    assert second.prompt_tokens_details.cached_tokens and \
        second.prompt_tokens_details.cached_tokens >= 1024
    assert first.prompt_tokens == second.prompt_tokens, "cached tokens are prompt tokens too"


def test_rate_limit_fails_over_and_keeps_its_meaning(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="failover", messages=USER)
    assert raw.parse().choices[0].message.content == DEFAULT_TEXT
    assert raw.headers["x-polyroute-attempts"] == "primary:upstream_rate_limited,backup:ok"
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(model="gemini/x@rate_limit:retry_after=40",
                                       messages=USER)
    assert limited.value.response.headers["retry-after"] == "40"
    assert "You exceeded your current quota" in limited.value.message


def test_safety_block_is_content_filtered(client: openai.OpenAI, sim: SimServer) -> None:
    for stream in (False, True):
        sim.reset()
        with pytest.raises(openai.BadRequestError) as info:
            list(client.chat.completions.create(  # type: ignore[call-overload]
                model="gemini/x@content_policy_violation", messages=USER, stream=stream))
        assert info.value.code == "content_policy_violation"
        assert "blockReason SAFETY" in info.value.message
        assert sim.stats()["requests_total"] == 1, "a refusal is an answer: no retry"


def test_errors_keep_their_meaning(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as too_long:
        client.chat.completions.create(model="gemini/x@context_length_exceeded", messages=USER)
    assert too_long.value.code == "context_length_exceeded"
    assert "exceeds the maximum number of tokens" in too_long.value.message
    with pytest.raises(openai.BadRequestError) as unsupported:
        client.chat.completions.create(model="flash", messages=USER, logprobs=True)
    assert unsupported.value.param == "logprobs" and "Gemini" in unsupported.value.message
    dropped = client.chat.completions.create(model="gemini-lenient/gemini-sim", messages=USER,
                                             logprobs=True)
    assert dropped.choices[0].message.content == DEFAULT_TEXT



def test_embeddings(client: openai.OpenAI, sim: SimServer) -> None:
    result = client.embeddings.create(model="gemini/gemini-embedding-001",
                                      input=["one", "two"], dimensions=12)
    assert [e.index for e in result.data] == [0, 1]
    assert all(len(e.embedding) == 12 for e in result.data)
    sent = upstream(sim)
    assert sent["path"] == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert sent["body"]["requests"][0] == {"model": "models/gemini-embedding-001", "content": {
        "parts": [{"text": "one"}]}, "outputDimensionality": 12}
    floats = client.embeddings.create(model="gemini/gemini-embedding-001", input="one",
                                      dimensions=12, encoding_format="float")
    packed = struct.pack("<12f", *floats.data[0].embedding)
    assert base64.b64encode(packed) == base64.b64encode(
        struct.pack("<12f", *result.data[0].embedding))


def test_models_are_listed(client: openai.OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert {"flash", "gemini/gpt-4o-mini", "gemini/echo"} <= ids


def test_zero_config_discovery(sim: SimServer) -> None:
    env = {"GEMINI_API_KEY": KEY, "GOOGLE_GEMINI_BASE_URL": sim.root_url}
    with GatewayProcess(None, env=env) as gw:
        client = openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)
        reply = client.chat.completions.create(model="gemini/gemini-sim", messages=USER)
        assert reply.choices[0].message.content == DEFAULT_TEXT
        sent = upstream(sim)
        assert sent["headers"]["x-goog-api-key"] == KEY
        assert sent["path"] == "/v1beta/models/gemini-sim:generateContent"


def test_discovery_prefers_google_api_key_like_google_genai() -> None:
    found = {d.vendor.name: d for d in discover({"GEMINI_API_KEY": "a", "GOOGLE_API_KEY": "b"})}
    assert found["gemini"].key_env == "GOOGLE_API_KEY"
    assert found["gemini"].base_url == "https://generativelanguage.googleapis.com"
    only = {d.vendor.name: d for d in discover({"GEMINI_API_KEY": "a"})}
    assert only["gemini"].key_env == "GEMINI_API_KEY"
