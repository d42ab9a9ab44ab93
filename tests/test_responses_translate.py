"""Pure parts of the Responses upstream protocol and of the Responses/Converse relays: the
body splice, canonical → Responses requests, Responses objects and events → canonical, and a
relayed stream finished by another attempt."""

from __future__ import annotations

import json

import msgspec
import pytest

from polyroute.adapters.openai_responses import translate
from polyroute.adapters.openai_responses.splice import replace_values
from polyroute.adapters.openai_responses.stream import StreamTranslator
from polyroute.errors import InvalidRequest, UpstreamRateLimited, UpstreamRejected
from polyroute.model.chat import (
    ChatChunk,
    ChatRequest,
    ChunkChoice,
    Delta,
    FunctionCall,
    Message,
    ToolCall,
)
from polyroute.model.tools import (
    FunctionDefinition,
    FunctionName,
    JSONSchemaFormat,
    ResponseFormat,
    Tool,
    ToolChoice,
)
from polyroute.model.upstream import Quirks
from polyroute.model.usage import Usage
from polyroute.surface.bedrock.decode import converse_request
from polyroute.surface.responses.decode import responses_request
from polyroute.surface.responses.relay import StreamRelay

FIELDS = msgspec.json.Decoder(dict[str, msgspec.Raw])


def splice(body: bytes, changes: dict[str, bytes]) -> bytes | None:
    return replace_values(body, FIELDS.decode(body), changes)


def test_splice_keeps_every_other_byte() -> None:
    body = b'{ "model" : "a",\n  "input": "model \\"a\\"", "x": {"model": "a"} }'
    assert splice(body, {"model": b'"b"'}) == (
        b'{ "model" : "b",\n  "input": "model \\"a\\"", "x": {"model": "a"} }')
    assert splice(body, {"model": b'"b"', "stream": b"true"}) == (
        b'{ "model" : "b",\n  "input": "model \\"a\\"", "x": {"model": "a"},"stream":true }')


def test_splice_of_unique_keys_does_not_walk_the_body() -> None:
    body = b'{"input": [{"content": "hi"}],  "model":"a" , "z": 1 }\n'
    assert splice(body, {"model": b'"b"', "stream": b"true"}) == (
        b'{"input": [{"content": "hi"}],  "model":"b" , "z": 1 ,"stream":true}\n')


def test_a_duplicated_key_cannot_dodge_the_replacement() -> None:
    """JSON parsers keep the last of two copies: both paths refuse to guess which to
    replace, and the caller re-encodes the decoded fields (which hold the last)."""
    body = b'{"model":"a","input":"x","max_output_tokens":5,"max_output_tokens":9000}'
    assert splice(body, {"max_output_tokens": b"100"}) is None
    request = responses_request(body)
    request.max_completion_tokens = 100  # the policy's cap
    sent = json.loads(translate.request_body(request, "m", Quirks(), "d"))
    assert sent["max_output_tokens"] == 100 and sent["model"] == "m"


def test_splice_gives_up_on_what_it_cannot_follow() -> None:
    assert splice(b'{"model":"a","model":"c"}', {"model": b'"b"'}) is None  # duplicate key
    assert splice(b'{"mod\\u0065l":"a"}', {"model": b'"b"'}) is None  # escaped name


def test_forwarded_body_changes_only_the_model_and_a_lowered_cap() -> None:
    body = b'{"model": "mine",  "input": "hi", "max_output_tokens": 900, "zz": [1, 2]}'
    request = responses_request(body)
    quirks = Quirks()
    assert translate.request_body(request, "gpt-x", quirks, "d") == body.replace(
        b'"mine"', b'"gpt-x"')
    request.max_completion_tokens = 100  # the policy's cap
    assert translate.request_body(request, "gpt-x", quirks, "d") == body.replace(
        b'"mine"', b'"gpt-x"').replace(b"900", b"100")
    request.continue_final = True  # a resumed stream is translated
    assert json.loads(translate.request_body(request, "gpt-x", quirks, "d"))["store"] is False


def test_canonical_to_responses() -> None:
    request = ChatRequest(
        model="m", max_tokens=50, temperature=0.2, stream=True,
        tools=[Tool("function", FunctionDefinition("f", parameters={}))],
        tool_choice=ToolChoice("function", FunctionName("f")),
        response_format=ResponseFormat("json_schema", JSONSchemaFormat(name="s", schema={})),
        messages=[
            Message("system", "Be brief."),
            Message("user", "hi"),
            Message("assistant", None, tool_calls=[ToolCall(
                id="c1", type="function", function=FunctionCall("f", '{"a":1}'))]),
            Message("tool", "42", tool_call_id="c1")])
    body = json.loads(translate.request_body(request, "gpt", Quirks(), "d"))
    assert body["input"] == [
        {"type": "message", "role": "system", "content": "Be brief."},
        {"type": "message", "role": "user", "content": "hi"},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": '{"a":1}'},
        {"type": "function_call_output", "call_id": "c1", "output": "42"}]
    assert body["tools"] == [{"type": "function", "name": "f", "parameters": {}}]
    assert body["tool_choice"] == {"type": "function", "name": "f"}
    assert body["text"] == {"format": {"type": "json_schema", "name": "s", "schema": {}}}
    assert (body["model"], body["stream"], body["max_output_tokens"]) == ("gpt", True, 50)
    with pytest.raises(UpstreamRejected, match="'stop'"):
        translate.request_body(ChatRequest([Message("user", "x")], stop="."), "g", Quirks(), "d")


def test_response_object_to_canonical() -> None:
    body = json.dumps({
        "id": "resp_1", "model": "gpt", "created_at": 7, "status": "incomplete",
        "incomplete_details": {"reason": "max_output_tokens"},
        "output": [{"type": "reasoning", "summary": [{"text": "hmm"}]},
                   {"type": "message", "content": [{"type": "output_text", "text": "Hi"}]}],
        "usage": {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5,
                  "input_tokens_details": {"cached_tokens": 1}}}).encode()
    response = translate.parse_response(body, "d", native=True)
    choice = response.choices[0]
    assert (choice.message.content, choice.message.reasoning_content) == ("Hi", "hmm")
    assert choice.finish_reason == "length" and response.native == body
    assert response.usage is not None and response.usage.cached_tokens == 1


def event(kind: str, **fields: object) -> bytes:
    return json.dumps({"type": kind, **fields}).encode()


def test_stream_events_to_chunks() -> None:
    events = StreamTranslator("d")
    created = events.chunks(event("response.created", response={
        "id": "r", "model": "gpt", "created_at": 1}), None)
    assert created[0].choices[0].delta.role == "assistant"
    assert events.chunks(event("response.in_progress", response={}), None) == []
    call = events.chunks(event("response.output_item.added", output_index=1, item={
        "type": "function_call", "call_id": "c", "name": "f"}), None)[0].choices[0].delta
    assert call.tool_calls is not None and call.tool_calls[0].id == "c"
    args = events.chunks(event("response.function_call_arguments.delta", output_index=1,
                               delta='{"a"'), None)[0].choices[0].delta
    assert args.tool_calls is not None and args.tool_calls[0].function is not None
    assert args.tool_calls[0].function.arguments == '{"a"'
    end = events.chunks(event("response.completed", response={
        "status": "completed", "usage": {"input_tokens": 4, "output_tokens": 6}}), b"raw")
    assert end[0].choices[0].finish_reason == "tool_calls"
    assert end[1].usage == Usage(4, 6, 10) and end[1].native == b"raw"
    assert events.finished
    with pytest.raises(UpstreamRateLimited):
        StreamTranslator("d").chunks(event("error", code="rate_limit_exceeded",
                                           message="slow down"), None)


def test_relay_finished_in_the_item_the_upstream_left_open() -> None:
    relay = StreamRelay("gpt")
    first = b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta",' \
            b'"sequence_number":4,"item_id":"msg_up","output_index":0,"content_index":0,' \
            b'"delta":"Hel"}\n\n'
    relay.feed([ChatChunk(choices=[ChunkChoice(0, Delta(content="Hel"))], native=first)])
    out = relay.feed([ChatChunk(choices=[ChunkChoice(0, Delta(content="lo"),
                                                     finish_reason="stop")])])
    out += relay.finish()
    events = [json.loads(block.partition(b"data: ")[2]) for block in out.split(b"\n\n")
              if block]
    assert [e["type"] for e in events] == [
        "response.output_text.delta", "response.output_text.done",
        "response.content_part.done", "response.output_item.done", "response.completed"]
    assert [e["sequence_number"] for e in events] == list(range(5, 10))
    assert events[0]["item_id"] == "msg_up" and events[1]["text"] == "Hello"
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == "Hello"


def test_relay_finished_by_another_attempt() -> None:
    relay = StreamRelay("gpt")
    assert relay.start() == b""
    first = b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta",' \
            b'"sequence_number":4,"output_index":0,"delta":"Hel"}\n\n'
    relayed = ChatChunk(choices=[ChunkChoice(0, Delta(content="Hel"))], native=first)
    assert relay.feed([relayed]) == first
    resumed = ChatChunk(choices=[ChunkChoice(0, Delta(content="lo"), finish_reason="stop")])
    out = relay.feed([resumed]) + relay.finish()
    events = [json.loads(block.partition(b"data: ")[2]) for block in out.split(b"\n\n")
              if block]
    assert [e["sequence_number"] for e in events] == list(range(5, 5 + len(events)))
    assert events[0]["type"] == "response.output_item.added"
    assert events[0]["output_index"] == 1
    assert events[-1]["type"] == "response.completed"


def test_converse_decode_notes_what_it_cannot_translate() -> None:
    request = converse_request(json.dumps({"messages": [{"role": "user", "content": [
        {"text": "read this"},
        {"document": {"format": "txt", "name": "d", "source": {"bytes": "aGk="}}}]}],
        "guardrailConfig": {"guardrailIdentifier": "g", "guardrailVersion": "1"}}).encode(),
        "m", False)
    assert request.native is not None
    assert request.native.untranslatable == "guardrailConfig"
    assert request.messages[0].content == "read this"


def test_converse_decode_refuses_what_it_cannot_translate() -> None:
    request = converse_request(json.dumps({
        "messages": [{"role": "user", "content": [{"text": "a"}, {"text": "b"}]}],
        "system": [{"text": "s"}], "inferenceConfig": {"maxTokens": 9}}).encode(), "m", False)
    assert [(m.role, m.content) for m in request.messages] == [("system", "s"), ("user", "ab")]
    assert request.max_tokens == 9 and request.native is not None
    with pytest.raises(InvalidRequest, match="s3Location"):
        converse_request(json.dumps({"messages": [{"role": "user", "content": [
            {"toolResult": {"toolUseId": "t", "content": [{"document": {
                "source": {"s3Location": {"uri": "s3://b/k"}}}}]}}]}]}).encode(), "m", False)


def test_an_openai_client_cannot_smuggle_a_native_body() -> None:
    from polyroute.surface.openai.decode import chat_request

    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                       "$polyroute.native": {"protocol": "bedrock", "fields": {},
                                             "body": "eyJ4IjoxfQ=="}}).encode()
    assert chat_request(body).native is None


def test_converse_relay_completes_a_stream_that_lost_its_metadata() -> None:
    from polyroute.adapters.bedrock_converse.eventstream import EventStreamDecoder
    from polyroute.surface.bedrock import frames
    from polyroute.surface.bedrock.relay import StreamRelay as ConverseRelay

    relay = ConverseRelay()
    stop = frames.event("messageStop", b'{"stopReason":"end_turn"}')
    out = relay.feed([ChatChunk(choices=[ChunkChoice(0, Delta(), finish_reason="stop")],
                                native=stop)])
    out += relay.feed([ChatChunk(usage=Usage(3, 4, 7))])  # the adapter's stand-in
    out += relay.finish()
    kinds = [m.header(":event-type") for m in EventStreamDecoder("t").feed(out)]
    assert kinds == ["messageStop", "metadata"]


def test_converse_body_forwarded_as_it_came_unless_the_cap_was_lowered() -> None:
    from polyroute.adapters.bedrock_converse.native import forwarded_body

    body = b'{"messages": [{"role": "user", "content": [{"text": "hi"}]}], ' \
           b'"inferenceConfig": {"maxTokens": 900}, "requestMetadata": {"k": "v"}}'
    request = converse_request(body, "m", True)
    assert forwarded_body(request) == body
    request.max_completion_tokens = 900  # a cap equal to the client's: nothing to change
    assert forwarded_body(request) == body
    request.max_completion_tokens = 100  # the policy's lower cap
    sent = json.loads(forwarded_body(request) or b"")
    assert sent["inferenceConfig"] == {"maxTokens": 100}
    assert sent["requestMetadata"] == {"k": "v"}
    request.continue_final = True  # a resumed stream is translated
    assert forwarded_body(request) is None


def test_converse_reasoning_keeps_its_signature_both_ways() -> None:
    from polyroute.adapters.bedrock_converse.eventstream import EventStreamDecoder
    from polyroute.model.chat import ChatResponse, Choice, ThinkingBlock
    from polyroute.surface.bedrock.encode import StreamEncoder as ConverseEncoder
    from polyroute.surface.bedrock.encode import response_body

    request = converse_request(json.dumps({"messages": [
        {"role": "user", "content": [{"text": "weather?"}]},
        {"role": "assistant", "content": [
            {"reasoningContent": {"reasoningText": {"text": "look it up", "signature": "S1"}}},
            {"reasoningContent": {"redactedContent": "UkVE"}},
            {"toolUse": {"toolUseId": "t1", "name": "w", "input": {"q": 1}}}]},
        {"role": "user", "content": [{"toolResult": {"toolUseId": "t1",
                                                     "content": [{"text": "sunny"}]}}]},
    ]}).encode(), "m", False)
    assert request.native is not None and request.native.untranslatable is None
    assistant = request.messages[1]
    assert assistant.thinking_blocks == [
        ThinkingBlock("thinking", thinking="look it up", signature="S1"),
        ThinkingBlock("redacted_thinking", data="UkVE")]
    assert [m.role for m in request.messages] == ["user", "assistant", "tool"]  # no empty turn
    answer = ChatResponse(choices=[Choice(0, Message(
        "assistant", "Sunny.", thinking_blocks=[ThinkingBlock(thinking="t", signature="S2")]),
        "stop")])
    content = json.loads(response_body(answer, 1))["output"]["message"]["content"]
    assert content[0] == {"reasoningContent": {"reasoningText": {"text": "t",
                                                                 "signature": "S2"}}}
    encoder = ConverseEncoder()
    out = encoder.start() + encoder.feed([
        ChatChunk(choices=[ChunkChoice(0, Delta(reasoning_content="t"))]),
        ChatChunk(choices=[ChunkChoice(0, Delta(thinking_blocks=[
            ThinkingBlock(signature="S2")]))]),
        ChatChunk(choices=[ChunkChoice(0, Delta(content="Sunny."), finish_reason="stop")]),
    ]) + encoder.finish()
    payloads = [json.loads(m.payload) for m in EventStreamDecoder("t").feed(out)
                if m.header(":event-type") == "contentBlockDelta"]
    assert [p["delta"] for p in payloads] == [
        {"reasoningContent": {"text": "t"}}, {"reasoningContent": {"signature": "S2"}},
        {"text": "Sunny."}]
    assert [p["contentBlockIndex"] for p in payloads] == [0, 0, 1]
