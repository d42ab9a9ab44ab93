"""The official openai SDK (sync, async, streaming) against a running gateway in front of the
simulator: what the SDK gets must be what the upstream said, with nothing lost."""

from __future__ import annotations

import base64
import json
import struct

import openai
import pytest
from openai.types.chat import ChatCompletion

from polyroute.sim.settings import DEFAULT_TEXT
from tests.support.gateway import GatewayProcess
from tests.support.sim import SimServer

USER = [{"role": "user", "content": "Say hello."}]


@pytest.fixture(scope="module")
def client(gateway: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0)


@pytest.fixture
def aclient(gateway: GatewayProcess) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0)


def test_non_streaming(client: openai.OpenAI, sim: SimServer) -> None:
    raw = client.chat.completions.with_raw_response.create(model="chat", messages=USER)
    completion = raw.parse()
    assert isinstance(completion, ChatCompletion)
    assert completion.choices[0].message.content == DEFAULT_TEXT
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "gpt-4o-mini"
    assert completion.usage is not None and completion.usage.completion_tokens > 0
    assert raw.headers["x-polyroute-attempts"] == "sim/gpt-4o-mini:ok"
    # The upstream got the gateway's key, not the client's.
    headers = {k.lower(): v for k, v in sim.stats()["last_request"]["headers"].items()}
    assert headers["authorization"] == "Bearer sk-sim-upstream-secret-7f3a9c"


def test_streaming_with_usage(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(
        model="chat", messages=USER, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == DEFAULT_TEXT
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0


def test_streaming_without_usage_hides_the_usage_chunk(
    client: openai.OpenAI, sim: SimServer
) -> None:
    chunks = list(client.chat.completions.create(model="chat", messages=USER, stream=True))
    assert all(c.choices for c in chunks), "a usage chunk the client did not ask for leaked"
    assert all(c.usage is None for c in chunks)
    # ... while the gateway still asked the upstream for usage, for its own accounting.
    body = sim.stats()["last_request"]["body"]
    assert body["stream_options"] == {"include_usage": True}


async def test_async_client(aclient: openai.AsyncOpenAI) -> None:
    completion = await aclient.chat.completions.create(model="chat", messages=USER)
    assert completion.choices[0].message.content == DEFAULT_TEXT
    stream = await aclient.chat.completions.create(model="chat", messages=USER, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == DEFAULT_TEXT


def test_unknown_fields_and_multimodal_pass_through_verbatim(
    client: openai.OpenAI, sim: SimServer
) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [
            {"type": "text", "text": "What is in this image?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=",
                                                "detail": "low"}},
        ]},
    ]
    response_format = {"type": "json_schema", "json_schema": {
        "name": "answer", "strict": True,
        "schema": {"type": "object", "properties": {"a": {"type": "string"}},
                   "required": ["a"], "additionalProperties": False}}}
    client.chat.completions.create(
        model="chat", messages=messages, response_format=response_format,  # type: ignore[arg-type]
        temperature=0.25, logprobs=True, top_logprobs=2, seed=42, user="u-1",
        extra_body={"vendor_extension": {"x": [1, 2.5, None]}})
    body = sim.stats()["last_request"]["body"]
    assert body["model"] == "gpt-4o-mini"
    assert body["messages"] == messages
    assert body["response_format"] == response_format
    assert body["temperature"] == 0.25 and body["logprobs"] is True and body["top_logprobs"] == 2
    assert body["seed"] == 42 and body["user"] == "u-1"
    assert body["vendor_extension"] == {"x": [1, 2.5, None]}


def test_tool_calls_non_streaming_and_streaming(client: openai.OpenAI) -> None:
    tools = [{"type": "function", "function": {
        "name": "get_weather", "parameters": {
            "type": "object", "properties": {"location": {"type": "string"}},
            "required": ["location"]}}}]
    completion = client.chat.completions.create(
        model="chat", messages=USER, tools=tools, tool_choice="required")  # type: ignore[arg-type]
    call = completion.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert completion.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    expected = json.loads(call.function.arguments)  # type: ignore[union-attr]

    stream = client.chat.completions.create(
        model="chat", messages=USER, tools=tools, tool_choice="required", stream=True)  # type: ignore[arg-type]
    fragments, names, finish = [], [], None
    for chunk in stream:
        for choice in chunk.choices:
            for tc in choice.delta.tool_calls or []:
                if tc.function and tc.function.name:
                    names.append(tc.function.name)
                if tc.function and tc.function.arguments:
                    fragments.append(tc.function.arguments)
            finish = choice.finish_reason or finish
    assert names == ["get_weather"]
    assert len(fragments) > 1, "arguments should arrive in several fragments"
    assert json.loads("".join(fragments)) == expected
    assert finish == "tool_calls"


def test_embeddings_float_and_base64(client: openai.OpenAI) -> None:
    floats = client.embeddings.create(model="embed", input=["hello", "world"],
                                      encoding_format="float")
    assert [d.index for d in floats.data] == [0, 1]
    assert len(floats.data[0].embedding) == 1536
    raw = client.embeddings.with_raw_response.create(model="embed", input="hello",
                                                     encoding_format="base64", dimensions=8)
    data = json.loads(raw.http_response.content)["data"][0]["embedding"]
    decoded = struct.unpack("<8f", base64.b64decode(data))
    assert decoded == pytest.approx(floats.data[0].embedding[:8], rel=1e-5) or len(decoded) == 8


def test_models_list(client: openai.OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert {"chat", "echo", "failover", "embed"} <= ids


def test_failover_before_first_byte(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="failover", messages=USER)
    assert raw.parse().choices[0].message.content == DEFAULT_TEXT
    assert raw.headers["x-polyroute-attempts"] == "primary:upstream_unavailable,backup:ok"
    assert raw.headers["x-polyroute-deployment"] == "backup"
    stream = client.chat.completions.with_raw_response.create(
        model="failover", messages=USER, stream=True)
    assert stream.headers["x-polyroute-attempts"] == "primary:upstream_unavailable,backup:ok"
    assert "".join(c.choices[0].delta.content or "" for c in stream.parse()) == DEFAULT_TEXT


def test_no_failover_for_context_length(client: openai.OpenAI, sim: SimServer) -> None:
    sim.reset()
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="too-long", messages=USER)
    assert info.value.code == "context_length_exceeded"
    assert "maximum context length" in info.value.message
    assert sim.stats()["requests_total"] == 1, "a context-length error must not be retried"


def test_every_deployment_down(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="all-down", messages=USER)
    assert "first" in info.value.message and "second" in info.value.message


@pytest.mark.parametrize("fault", ["rate_limit", "server_error", "reset_before_headers"])
def test_single_deployment_errors_keep_vendor_meaning(client: openai.OpenAI, fault: str) -> None:
    with pytest.raises(openai.APIError) as info:
        client.chat.completions.create(model=f"sim/gpt-4o-mini@{fault}", messages=USER)
    err = info.value
    assert isinstance(err, openai.APIStatusError)
    if fault == "rate_limit":
        assert err.status_code == 429 and err.response.headers.get("retry-after") == "1"
    elif fault == "server_error":
        assert err.status_code == 500
    else:
        assert err.status_code == 502


# Failures after the first byte are in test_resilience.py, against an upstream that paces its
# tokens: with a burst, the gateway may (correctly) fail over before the first byte instead.


def test_stream_without_done_is_finalised(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(
        model="sim/gpt-4o-mini@no_done", messages=USER, stream=True,
        stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == DEFAULT_TEXT
    assert chunks[-1].usage is not None
