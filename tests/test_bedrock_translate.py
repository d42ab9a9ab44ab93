"""Bedrock Converse's translation as pure functions: usage, stop reasons, errors by
``x-amzn-ErrorType`` and exception frame, and request shapes that have no equivalent."""

from __future__ import annotations

import msgspec
import pytest

from polyroute.adapters.bedrock_converse import translate
from polyroute.adapters.bedrock_converse.errors import (
    error_from_exception_frame,
    error_from_response,
)
from polyroute.adapters.bedrock_converse.wire import Usage
from polyroute.config.compiled import Quirks
from polyroute.errors import (
    ContextWindowExceeded,
    UpstreamAuthError,
    UpstreamModelNotFound,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamUnavailable,
)
from polyroute.model.chat import ChatRequest, FunctionCall, Message, ToolCall
from polyroute.model.tools import FunctionDefinition, Tool


def test_usage_adds_cache_reads_and_writes_to_the_prompt() -> None:
    usage = translate.canonical_usage(Usage(input_tokens=10, output_tokens=5,
                                            cache_read_input_tokens=100,
                                            cache_write_input_tokens=40))
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (150, 5, 155)
    assert usage.cached_tokens == 100 and usage.cache_creation_tokens == 40


@pytest.mark.parametrize(("reason", "expected"), [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"),
    ("tool_use", "tool_calls"), ("guardrail_intervened", "content_filter"),
    ("content_filtered", "content_filter"), ("model_context_window_exceeded", "length"),
    ("malformed_tool_use", "malformed_tool_use"),
])
def test_stop_reasons(reason: str, expected: str) -> None:
    assert translate.finish_reason(reason) == expected


def _http(status: int, kind: str, message: str) -> object:
    headers = {"x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"}
    return error_from_response(status, msgspec.json.encode({"message": message}), headers, "d")


def test_errors_by_kind() -> None:
    assert isinstance(_http(429, "ThrottlingException", "slow"), UpstreamRateLimited)
    assert isinstance(_http(503, "ServiceUnavailableException", "x"), UpstreamUnavailable)
    assert isinstance(_http(424, "ModelErrorException", "x"), UpstreamUnavailable)
    assert isinstance(_http(403, "AccessDeniedException", "no"), UpstreamAuthError)
    assert isinstance(_http(403, "InvalidSignatureException", "no"), UpstreamAuthError)
    assert isinstance(_http(404, "ResourceNotFoundException", "no"), UpstreamModelNotFound)
    too_long = _http(400, "ValidationException", "Input is too long for requested model.")
    assert isinstance(too_long, ContextWindowExceeded)
    assert too_long.message == "Input is too long for requested model."
    other = _http(400, "ValidationException", "bad field")
    assert type(other) is UpstreamRejected and other.code == "validation_error"
    frame = error_from_exception_frame("throttlingException", b'{"message": "slow down"}', "d")
    assert isinstance(frame, UpstreamRateLimited) and frame.message == "slow down"
    stream = error_from_exception_frame("modelStreamErrorException", b"{}", "d")
    assert isinstance(stream, UpstreamUnavailable)


def test_tool_choice_none_and_unsupported_parameters() -> None:
    tools = [Tool("function", FunctionDefinition("f", parameters={"type": "object"}))]
    plain = ChatRequest(messages=[Message(role="user", content="hi")], tools=tools,
                        tool_choice="none")
    assert "toolConfig" not in msgspec.json.decode(translate.chat_body(plain, Quirks(), "d"))
    history = ChatRequest(tools=tools, tool_choice="none", messages=[
        Message(role="user", content="hi"),
        Message(role="assistant", tool_calls=[ToolCall(id="t1", type="function",
                                                       function=FunctionCall("f", "{}"))]),
        Message(role="tool", tool_call_id="t1", content="")])
    with pytest.raises(UpstreamRejected) as info:
        translate.chat_body(history, Quirks(), "d")
    assert info.value.param == "tool_choice"
    seeded = ChatRequest(messages=[Message(role="user", content="hi")], seed=1)
    with pytest.raises(UpstreamRejected) as seed:
        translate.chat_body(seeded, Quirks(), "d")
    assert seed.value.param == "seed" and "Bedrock" in seed.value.message

