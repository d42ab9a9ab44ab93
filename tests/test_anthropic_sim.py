"""The simulator speaks Anthropic's Messages API faithfully: what it sends validates strictly
against the official ``anthropic`` SDK's own types (no unknown fields, every required one, the
right literals), streams follow Anthropic's event order, and the faults look like Anthropic's.

Also home of the strict validators the other Anthropic test modules use.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pydantic
import pytest
from anthropic.types import Message, MessageTokensCount, RawMessageStreamEvent
from anthropic.types.shared import ErrorResponse

from polyroute.sim.settings import DEFAULT_TEXT
from tests.support.sim import SimServer

KEY = "sk-ant-sim-key-4d1e"
USER = [{"role": "user", "content": "Say hello."}]
WEATHER = {"name": "get_weather", "description": "Weather at a place.", "input_schema": {
    "type": "object", "properties": {"location": {"type": "string"}},
    "required": ["location"]}}
_EVENT = pydantic.TypeAdapter(RawMessageStreamEvent)


# -- strict validation ------------------------------------------------------------------------


def _no_unknown_fields(value: Any, path: str = "$") -> None:
    """The SDK's models accept unknown keys silently; a faithful wire has none."""
    if isinstance(value, pydantic.BaseModel):
        assert not value.model_extra, f"{path}: fields the SDK does not know: {value.model_extra}"
        for name in type(value).model_fields:
            _no_unknown_fields(getattr(value, name), f"{path}.{name}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _no_unknown_fields(item, f"{path}[{i}]")


def strict_message(raw: dict[str, Any]) -> Message:
    message = Message.model_validate(raw, strict=True)
    _no_unknown_fields(message)
    return message


def strict_error(raw: dict[str, Any]) -> ErrorResponse:
    error = ErrorResponse.model_validate(raw, strict=True)
    _no_unknown_fields(error)
    return error


def strict_event(name: str, data: dict[str, Any]) -> Any:
    """One SSE event: its ``event:`` name must equal its data's ``type``."""
    assert data["type"] == name, f"event {name!r} carries data of type {data['type']!r}"
    if name == "ping":
        assert data == {"type": "ping"}
        return data
    if name == "error":
        return strict_error(data)
    event = _EVENT.validate_python(data, strict=True)
    _no_unknown_fields(event)
    return event


def sse_events(lines: Iterator[str]) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) of each event of a text/event-stream body."""
    events, name, data = [], None, []
    for line in lines:
        if line == "":
            if data:
                assert name is not None, "Anthropic names every event"
                events.append((name, json.loads("\n".join(data))))
            name, data = None, []
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
    return events


def check_stream_order(events: list[tuple[str, dict[str, Any]]]) -> None:
    """Anthropic's grammar: message_start, then blocks (start, deltas, stop, indexes counting
    up from 0), message_delta, message_stop; pings anywhere."""
    names = [n for n, _ in events if n != "ping"]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    open_index, next_index = None, 0
    for name, data in events[1:-2]:
        if name == "content_block_start":
            assert open_index is None and data["index"] == next_index
            open_index, next_index = data["index"], next_index + 1
        elif name == "content_block_delta":
            assert data["index"] == open_index
        elif name == "content_block_stop":
            assert data["index"] == open_index
            open_index = None
        else:
            assert name == "ping", f"unexpected {name} inside the message"
    assert open_index is None


def raw_stream(base: str, body: dict[str, Any], **headers: str) -> list[tuple[str, Any]]:
    with httpx.stream("POST", f"{base}/v1/messages", json=body, timeout=10,
                      headers={"x-api-key": KEY, "anthropic-version": "2023-06-01",
                               **headers}) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return sse_events(response.iter_lines())


# -- the simulator ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with SimServer(api_key=KEY) as server:
        yield server


@pytest.fixture(scope="module")
def client(sim: SimServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=sim.root_url, api_key=KEY, max_retries=0, timeout=10)


def test_message_validates_strictly(client: anthropic.Anthropic) -> None:
    raw = client.messages.with_raw_response.create(
        model="claude-sim-1", max_tokens=256, messages=USER, system="Be brief.")
    assert raw.headers["request-id"].startswith("req_")
    message = strict_message(json.loads(raw.http_response.content))
    assert message.id.startswith("msg_") and message.model == "claude-sim-1"
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == DEFAULT_TEXT  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    assert message.usage.cache_read_input_tokens == 0


def test_stream_events_validate_strictly_and_in_order(sim: SimServer) -> None:
    events = raw_stream(sim.root_url, {"model": "claude-x", "max_tokens": 256,
                                       "messages": USER, "stream": True})
    for name, data in events:
        strict_event(name, data)
    check_stream_order(events)
    text = "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta")
    assert text == DEFAULT_TEXT
    final = events[-2][1]
    assert final["delta"]["stop_reason"] == "end_turn" and final["usage"]["output_tokens"] > 0


def test_sdk_stream_helper_accumulates_the_same_message(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model="claude-x", max_tokens=256, messages=USER) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == DEFAULT_TEXT
    strict_message(final.model_dump(mode="json", exclude_none=True))
    assert final.usage.output_tokens > 0 and final.stop_reason == "end_turn"


def test_tool_use_streamed_and_not(sim: SimServer, client: anthropic.Anthropic) -> None:
    body: dict[str, Any] = {"model": "claude-x", "max_tokens": 256, "messages": USER,
                            "tools": [WEATHER], "tool_choice": {"type": "any"}}
    message = strict_message(client.messages.with_raw_response.create(**body).parse()
                             .model_dump(mode="json", exclude_none=True))
    block = message.content[0]
    assert block.type == "tool_use" and block.name == "get_weather"
    assert block.id.startswith("toolu_") and block.input == {"location": "Paris"}
    assert message.stop_reason == "tool_use"

    events = raw_stream(sim.root_url, {**body, "stream": True})
    for name, data in events:
        strict_event(name, data)
    check_stream_order(events)
    start = next(d for n, d in events if n == "content_block_start")
    assert start["content_block"]["type"] == "tool_use" and start["content_block"]["input"] == {}
    fragments = [d["delta"]["partial_json"] for n, d in events if n == "content_block_delta"]
    assert fragments[0] == "" and len(fragments) > 2
    assert json.loads("".join(fragments)) == {"location": "Paris"}


def test_tool_result_round_trip_and_pairing_rules(client: anthropic.Anthropic) -> None:
    call = {"type": "tool_use", "id": "toolu_01A", "name": "get_weather",
            "input": {"location": "Paris"}}
    result = {"type": "tool_result", "tool_use_id": "toolu_01A", "content": "18°C, sunny"}
    messages: list[Any] = [*USER, {"role": "assistant", "content": [call]},
                           {"role": "user", "content": [result]}]
    message = client.messages.create(model="echo", max_tokens=64, messages=messages,
                                     tools=[WEATHER])  # type: ignore[list-item]
    assert message.content[0].text == "Say hello."  # type: ignore[union-attr]
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(model="x", max_tokens=64, messages=[
            *USER, {"role": "assistant", "content": [call]}, {"role": "user", "content": "hm"}])
    assert "`tool_use` ids were found without `tool_result` blocks" in info.value.message
    strict_error(info.value.body)  # type: ignore[arg-type]


def test_anthropic_validation_catches_what_a_careless_translation_sends(
    client: anthropic.Anthropic,
) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"messages": USER}, "max_tokens: Field required"),
        ({"max_tokens": 9, "messages": [{"role": "system", "content": "x"}]},
         "messages.0.role: Input should be 'user' or 'assistant'"),
        ({"max_tokens": 9, "messages": USER, "n": 2}, "n: Extra inputs are not permitted"),
        ({"max_tokens": 9, "messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/bmp",
                                         "data": "AAAA"}}]}]}, "media_type"),
    ]
    for body, expected in cases:
        with pytest.raises(anthropic.BadRequestError) as info:
            client.post("/v1/messages", cast_to=httpx.Response,
                        body={"model": "claude-x", **body})
        assert expected in info.value.message
        assert info.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]


def test_the_key_is_required_as_x_api_key_or_bearer(sim: SimServer) -> None:
    bad = anthropic.Anthropic(base_url=sim.root_url, api_key="wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as info:
        bad.messages.create(model="claude-x", max_tokens=9, messages=USER)
    assert strict_error(info.value.body).error.type == "authentication_error"  # type: ignore[arg-type]
    body = {"model": "claude-x", "max_tokens": 9, "messages": USER}
    for headers in ({"x-api-key": KEY}, {"Authorization": f"Bearer {KEY}"}, {}):
        status = httpx.post(f"{sim.root_url}/v1/messages", json=body, headers={
            "anthropic-version": "2023-06-01", **headers}).status_code
        assert status == (200 if headers else 401)


def test_prompt_cache_writes_then_reads(client: anthropic.Anthropic) -> None:
    system = [{"type": "text", "text": "You are a meticulous assistant. " * 40,
               "cache_control": {"type": "ephemeral"}}]
    first = client.messages.create(model="claude-cache", max_tokens=32, system=system,  # type: ignore[arg-type]
                                   messages=USER)
    second = client.messages.create(model="claude-cache", max_tokens=32, system=system,  # type: ignore[arg-type]
                                    messages=USER)
    assert first.usage.cache_creation_input_tokens and not first.usage.cache_read_input_tokens
    assert first.usage.cache_creation is not None
    assert first.usage.cache_creation.ephemeral_5m_input_tokens == (
        first.usage.cache_creation_input_tokens)
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    assert not second.usage.cache_creation_input_tokens
    assert second.usage.input_tokens == first.usage.input_tokens


def test_stop_sequences_max_tokens_and_thinking(client: anthropic.Anthropic) -> None:
    stopped = client.messages.create(model="claude-x", max_tokens=256, messages=USER,
                                     stop_sequences=["simulator"])
    assert stopped.stop_reason == "stop_sequence" and stopped.stop_sequence == "simulator"
    assert stopped.content[0].text == DEFAULT_TEXT.split("simulator")[0]  # type: ignore[union-attr]
    short = client.messages.create(model="claude-x", max_tokens=3, messages=USER)
    assert short.stop_reason == "max_tokens" and short.usage.output_tokens == 3
    thought = client.messages.create(
        model="claude-x", max_tokens=2048, messages=USER,
        thinking={"type": "enabled", "budget_tokens": 1024})
    kinds = [b.type for b in thought.content]
    assert kinds == ["thinking", "text"]
    assert thought.content[0].signature  # type: ignore[union-attr]


def test_count_tokens(client: anthropic.Anthropic) -> None:
    raw = client.messages.with_raw_response.count_tokens(model="claude-x", messages=USER)
    count = MessageTokensCount.model_validate(json.loads(raw.http_response.content),
                                              strict=True)
    assert count.input_tokens == client.messages.create(
        model="claude-x", max_tokens=9, messages=USER).usage.input_tokens


def test_model_list_in_anthropic_shape(client: anthropic.Anthropic) -> None:
    ids = [m.id for m in client.models.list(limit=2)]
    assert ids == ["gpt-4o-mini", "gpt-4o", "echo", "text-embedding-3-small"]


# -- faults -----------------------------------------------------------------------------------


def test_overloaded_is_529(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.InternalServerError) as info:
        client.messages.create(model="claude-x@overloaded", max_tokens=9, messages=USER)
    assert info.value.status_code == 529
    assert strict_error(info.value.body).error.type == "overloaded_error"  # type: ignore[arg-type]


def test_rate_limit_has_retry_after(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.RateLimitError) as info:
        client.messages.create(model="claude-x", max_tokens=9, messages=USER,
                               extra_headers={"x-sim-fault": "rate_limit;retry_after=3"})
    assert info.value.response.headers["retry-after"] == "3"
    assert strict_error(info.value.body).error.type == "rate_limit_error"  # type: ignore[arg-type]


def test_context_length_exceeded(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(model="claude-x@context_length_exceeded:limit=100",
                               max_tokens=9, messages=USER)
    assert info.value.message.endswith("prompt is too long: 101 tokens > 100 maximum") or (
        "prompt is too long: 101 tokens > 100 maximum" in info.value.message)


def test_stream_error_event_after_some_deltas(sim: SimServer, client: anthropic.Anthropic) -> None:
    events = raw_stream(sim.root_url, {"model": "claude-x@stream_error:after_chunks=3",
                                       "max_tokens": 256, "messages": USER, "stream": True})
    for name, data in events:
        strict_event(name, data)
    names = [n for n, _ in events]
    assert names[-1] == "error" and "message_stop" not in names
    assert sum(n == "content_block_delta" for n in names) == 3
    assert events[-1][1]["error"]["type"] == "overloaded_error"
    with pytest.raises(anthropic.APIStatusError) as info,  client.messages.stream(
            model="claude-x@stream_error", max_tokens=256, messages=USER) as stream:
        for _ in stream:
            pass
    assert "Overloaded" in str(info.value)


def test_stream_cut_ends_without_message_stop(sim: SimServer) -> None:
    with httpx.stream("POST", f"{sim.root_url}/v1/messages", timeout=10, headers={
            "x-api-key": KEY, "anthropic-version": "2023-06-01"}, json={
            "model": "claude-x@stream_cut:after_chunks=2", "max_tokens": 99,
            "messages": USER, "stream": True}) as response:
        lines = []
        with pytest.raises(httpx.RemoteProtocolError):
            lines.extend(response.iter_lines())
    names = [n for n, _ in sse_events(iter([*lines, ""]))]
    assert "message_start" in names and "message_stop" not in names


def test_refusal_and_no_message_stop(sim: SimServer, client: anthropic.Anthropic) -> None:
    refused = client.messages.create(model="claude-x@content_policy_violation", max_tokens=9,
                                     messages=USER)
    assert refused.stop_reason == "refusal" and refused.content == []
    events = raw_stream(sim.root_url, {"model": "claude-x@no_done", "max_tokens": 99,
                                       "messages": USER, "stream": True})
    assert [n for n, _ in events][-1] == "message_delta"
