"""The pure translation functions, on cases the simulator does not produce: parallel tool
calls, thinking in streams, every error type, and the reverse (canonical → Anthropic) stream
encoding of interleaved OpenAI deltas."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from polyroute.adapters.anthropic_messages import translate
from polyroute.adapters.anthropic_messages.errors import error_from_event, error_from_response
from polyroute.adapters.anthropic_messages.stream import StreamTranslator
from polyroute.adapters.anthropic_messages.wire import EVENT_DECODER, ErrorDetail
from polyroute.config.compiled import Quirks
from polyroute.errors import (
    ContextWindowExceeded,
    StreamInterrupted,
    UpstreamAuthError,
    UpstreamModelNotFound,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamUnavailable,
)
from polyroute.model.chat import ChatChunk, ChatRequest, ChunkChoice, Delta, FunctionCall, ToolCall
from polyroute.model.usage import PromptTokensDetails, Usage
from polyroute.surface.anthropic import decode, encode
from polyroute.surface.openai.decode import chat_request
from tests.test_anthropic_sim import check_stream_order, sse_events, strict_event


def feed(events: list[dict[str, Any]]) -> list[ChatChunk]:
    translator = StreamTranslator("dep", 123)
    out: list[ChatChunk] = []
    for event in events:
        out += translator.feed(EVENT_DECODER.decode(json.dumps(event)))
    return out


def start(index: int, block: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_start", "index": index, "content_block": block}


def delta(index: int, body: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": body}


MESSAGE_START = {"type": "message_start", "message": {
    "id": "msg_1", "type": "message", "role": "assistant", "model": "claude", "content": [],
    "stop_reason": None, "stop_sequence": None, "usage": {
        "input_tokens": 10, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 5,
        "output_tokens": 1}}}


def test_stream_with_thinking_text_and_parallel_tool_calls() -> None:
    chunks = feed([
        MESSAGE_START, {"type": "ping"},
        start(0, {"type": "thinking", "thinking": "", "signature": ""}),
        delta(0, {"type": "thinking_delta", "thinking": "Hmm."}),
        delta(0, {"type": "signature_delta", "signature": "sig"}),
        {"type": "content_block_stop", "index": 0},
        start(1, {"type": "text", "text": ""}), delta(1, {"type": "text_delta", "text": "Ok."}),
        {"type": "content_block_stop", "index": 1},
        start(2, {"type": "tool_use", "id": "toolu_a", "name": "f", "input": {}}),
        delta(2, {"type": "input_json_delta", "partial_json": ""}),
        delta(2, {"type": "input_json_delta", "partial_json": '{"x": 1}'}),
        {"type": "content_block_stop", "index": 2},
        start(3, {"type": "tool_use", "id": "toolu_b", "name": "g", "input": {}}),
        delta(3, {"type": "input_json_delta", "partial_json": '{"y"'}),
        delta(3, {"type": "input_json_delta", "partial_json": ': 2}'}),
        {"type": "content_block_stop", "index": 3},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
         "usage": {"output_tokens": 42}},
        {"type": "message_stop"},
    ])
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert deltas[0].role == "assistant" and deltas[0].content == ""
    assert deltas[1].reasoning_content == "Hmm."
    assert deltas[2].thinking_blocks[0].signature == "sig"  # type: ignore[index]
    assert deltas[3].content == "Ok."
    calls = [tc for d in deltas for tc in d.tool_calls or ()]
    assert [(c.index, c.id, c.function.name) for c in calls if c.id] == [  # type: ignore[union-attr]
        (0, "toolu_a", "f"), (1, "toolu_b", "g")]
    assert calls[0].type == "function"
    by_index: dict[int, str] = {}
    for call in calls:
        by_index[call.index] = by_index.get(call.index, "") + (  # type: ignore[index]
            call.function.arguments or "")  # type: ignore[union-attr]
    assert by_index == {0: '{"x": 1}', 1: '{"y": 2}'}
    assert chunks[-2].choices[0].finish_reason == "tool_calls"
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens,
            usage.cache_creation_tokens) == (115, 42, 100, 5)
    assert all(c.id == "msg_1" and c.model == "claude" and c.created == 123 for c in chunks)


@pytest.mark.parametrize(("status", "kind", "message", "expected"), [
    (529, "overloaded_error", "Overloaded", UpstreamUnavailable),
    (429, "rate_limit_error", "slow down", UpstreamRateLimited),
    (401, "authentication_error", "invalid x-api-key", UpstreamAuthError),
    (403, "permission_error", "no", UpstreamAuthError),
    (402, "billing_error", "pay", UpstreamAuthError),
    (404, "not_found_error", "model: claude-x", UpstreamModelNotFound),
    (400, "invalid_request_error", "prompt is too long: 215000 tokens > 200000 maximum",
     ContextWindowExceeded),
    (400, "invalid_request_error", "messages.0.role: Input should be 'user'", UpstreamRejected),
    (413, "request_too_large", "Request exceeds the maximum size", UpstreamRejected),
    (500, "api_error", "Internal server error", UpstreamUnavailable),
    (504, "timeout_error", "Request timeout", UpstreamUnavailable),
])
def test_http_errors(status: int, kind: str, message: str, expected: type) -> None:
    body = json.dumps({"type": "error", "error": {"type": kind, "message": message}}).encode()
    error = error_from_response(status, body, {"retry-after": "7"}, "dep")
    assert type(error) is expected and message in error.message
    assert error.deployment == "dep"
    if expected in (UpstreamRateLimited,) or status == 529:
        assert error.retry_after == 7.0
    if status == 529:
        assert error.status == 529 and error.trigger == "unavailable"


def test_in_stream_errors_and_non_json_bodies() -> None:
    assert isinstance(error_from_event(ErrorDetail("overloaded_error", "Overloaded"), "d"),
                      UpstreamUnavailable)
    assert isinstance(error_from_event(ErrorDetail("rate_limit_error", "x"), "d"),
                      UpstreamRateLimited)
    with pytest.raises(UpstreamUnavailable):
        feed([MESSAGE_START, {"type": "error", "error": {
            "type": "overloaded_error", "message": "Overloaded"}}])
    gateway = error_from_response(502, b"<html>Bad Gateway</html>", {}, "d")
    assert isinstance(gateway, UpstreamUnavailable) and "Bad Gateway" in gateway.message


def body_of(fields: dict[str, Any], quirks: Quirks | None = None) -> dict[str, Any]:
    request = chat_request(json.dumps({"model": "m", "messages": [
        {"role": "user", "content": "hi"}], **fields}).encode())
    return dict(json.loads(translate.chat_body(request, "claude", quirks or Quirks(), "d")))


def test_request_mapping_details() -> None:
    assert body_of({})["max_tokens"] == translate.DEFAULT_MAX_TOKENS
    assert body_of({}, Quirks(default_max_tokens=99))["max_tokens"] == 99
    assert body_of({"tool_choice": "none", "tools": [{"type": "function", "function": {
        "name": "f"}}]})["tool_choice"] == {"type": "none"}
    named = body_of({"tools": [{"type": "function", "function": {"name": "f"}}],
                     "tool_choice": {"type": "function", "function": {"name": "f"}},
                     "parallel_tool_calls": False})
    assert named["tool_choice"] == {"type": "tool", "name": "f",
                                    "disable_parallel_tool_use": True}
    assert named["tools"] == [{"name": "f", "input_schema": {"type": "object",
                                                             "properties": {}}}]
    assert body_of({"reasoning_effort": "minimal", "top_k": 5}) | {} == {
        **body_of({}), "output_config": {"effort": "low"}, "top_k": 5}
    assert "temperature" not in body_of({"temperature": 1},
                                        Quirks(drop_params=frozenset({"temperature"})))
    harmless = body_of({"n": 1, "logprobs": False, "presence_penalty": 0, "store": False,
                        "stream_options": {"include_usage": True}})
    assert harmless == body_of({})


@pytest.mark.parametrize(("fields", "param"), [
    ({"logit_bias": {"1": 5}}, "logit_bias"),
    ({"prediction": {"type": "content", "content": "x"}}, "prediction"),
    ({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {
        "data": "AAAA", "format": "wav"}}]}]}, "messages[0].content[0].type"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {
        "url": "data:image/bmp;base64,AAAA"}}]}]}, "messages[0].content[0].image_url.url"),
    ({"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "function",
                    "function": {"name": "f", "arguments": "[1]"}}]}]},
     "messages[0].tool_calls[0].function.arguments"),
])
def test_unmappable_requests_are_400s_naming_the_parameter(
    fields: dict[str, Any], param: str
) -> None:
    with pytest.raises(UpstreamRejected) as info:
        body_of(fields)
    assert info.value.status == 400 and info.value.param == param


def test_request_from_another_dialect_checks_typed_fields() -> None:
    request = ChatRequest(messages=[], n=3)
    with pytest.raises(UpstreamRejected) as info:
        translate.chat_body(request, "claude", Quirks(), "d")
    assert info.value.param == "n"


def test_anthropic_request_decoding_orders_tool_results_first() -> None:
    body = {"model": "m", "max_tokens": 5, "messages": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "t", "signature": "s"},
            {"type": "tool_use", "id": "a", "name": "f", "input": {"x": 1}},
            {"type": "tool_use", "id": "b", "name": "f", "input": {}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "a", "content": [
                {"type": "text", "text": "one"}]},
            {"type": "tool_result", "tool_use_id": "b", "content": "two", "is_error": True},
            {"type": "text", "text": "and?"}]}],
        "stop_sequences": ["X"], "metadata": {"user_id": "u"},
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True}}
    request = decode.messages_request(json.dumps(body).encode())
    roles = [m.role for m in request.messages]
    assert roles == ["user", "assistant", "tool", "tool", "user"]
    assistant = request.messages[1]
    assert assistant.thinking_blocks[0].signature == "s"  # type: ignore[index]
    assert [c.function.arguments for c in assistant.tool_calls or ()] == [  # type: ignore[union-attr]
        '{"x":1}', "{}"]
    assert request.messages[2].content == "one" and request.messages[3].tool_call_id == "b"
    assert (request.stop, request.user, request.tool_choice, request.parallel_tool_calls) == (
        ["X"], "u", "required", False)
    # And back: the Anthropic adapter rebuilds the same conversation.
    rebuilt = json.loads(translate.chat_body(request, "m", Quirks(), "d"))
    assert rebuilt["messages"][1]["content"] == body["messages"][1]["content"]  # type: ignore[index]
    assert [b["type"] for b in rebuilt["messages"][2]["content"]] == [
        "tool_result", "tool_result", "text"]


def chunk(**fields: Any) -> ChatChunk:
    finish = fields.pop("finish_reason", None)
    return ChatChunk(id="c1", model="gpt", choices=[ChunkChoice(0, Delta(**fields), finish)])


def test_stream_encoder_turns_openai_deltas_into_anthropic_events() -> None:
    encoder = encode.StreamEncoder("requested")
    calls = [
        [ToolCall(index=0, id="call_a", type="function", function=FunctionCall("f", ""))],
        [ToolCall(index=0, function=FunctionCall(arguments='{"x":'))],
        [ToolCall(index=1, id="call_b", type="function", function=FunctionCall("g", "{}"))],
        [ToolCall(index=0, function=FunctionCall(arguments="1}"))],  # interleaved, late
    ]
    data = encoder.feed([chunk(role="assistant", content=""), chunk(reasoning_content="r"),
                         chunk(content="Hi")])
    for tool_calls in calls:
        data += encoder.feed([chunk(tool_calls=tool_calls)])
    data += encoder.feed([chunk(finish_reason="tool_calls")])
    usage = Usage(prompt_tokens=120, completion_tokens=9, total_tokens=129,
                  prompt_tokens_details=PromptTokensDetails(cached_tokens=100))
    data += encoder.feed([ChatChunk(id="c1", model="gpt", usage=usage)])
    data += encoder.finish()
    events = sse_events(iter(data.decode().split("\n")))
    for name, body in events:
        strict_event(name, body)
    starts = [b["content_block"]["type"] for n, b in events if n == "content_block_start"]
    assert starts == ["thinking", "text", "tool_use", "tool_use"]
    json_by_index: dict[int, str] = {}
    for name, body in events:
        if name == "content_block_delta" and body["delta"]["type"] == "input_json_delta":
            json_by_index[body["index"]] = json_by_index.get(body["index"], "") + body[
                "delta"]["partial_json"]
    assert json_by_index == {2: '{"x":1}', 3: "{}"}
    final = events[-2][1]
    assert final["delta"]["stop_reason"] == "tool_use"
    assert final["usage"] == {"input_tokens": 20, "cache_creation_input_tokens": 0,
                              "cache_read_input_tokens": 100, "output_tokens": 9}
    check_stream_order([e for e in events if e[1].get("index") != 2 or
                        e[0] != "content_block_delta" or e[1]["delta"]["partial_json"] != "1}"])


def test_error_types_in_anthropic_shape() -> None:
    cut = StreamInterrupted("the upstream failed after the answer had started: Overloaded")
    cut.__cause__ = UpstreamUnavailable("Overloaded", status=529)
    name, data = sse_events(iter(encode.error_event(cut).decode().split("\n")))[0]
    assert name == "error" and data["error"]["type"] == "overloaded_error"
    assert msgspec.json.decode(encode.error_body(UpstreamRateLimited("x")))["error"][
        "type"] == "rate_limit_error"
    assert encode.tool_input('{"a": 1}') == {"a": 1}
    assert encode.tool_input('{"a": ') == {"arguments": '{"a": '}


def test_zero_config_discovery_of_anthropic() -> None:
    from polyroute.config import load_config

    config = load_config(None, {"ANTHROPIC_API_KEY": "sk-ant-123456789"})
    endpoint = config.open_vendors["anthropic"]
    assert (endpoint.protocol, endpoint.base_url) == ("anthropic", "https://api.anthropic.com")
    assert endpoint.headers == {"x-api-key": "sk-ant-123456789",
                                "anthropic-version": "2023-06-01"}
    moved = load_config(None, {"ANTHROPIC_API_KEY": "sk-ant-123456789",
                               "ANTHROPIC_BASE_URL": "http://127.0.0.1:9/"})
    assert moved.open_vendors["anthropic"].base_url == "http://127.0.0.1:9"
