"""Gemini's translation as pure functions: usage arithmetic, finish reasons, errors, URLs and
the request fields that have no equivalent."""

from __future__ import annotations

import msgspec
import pytest

from polyroute.adapters.gemini import translate
from polyroute.adapters.gemini.errors import error_from_response, error_from_stream
from polyroute.adapters.gemini.wire import UsageMetadata
from polyroute.config.compiled import Quirks
from polyroute.errors import (
    ContentFiltered,
    ContextWindowExceeded,
    UpstreamAuthError,
    UpstreamModelNotFound,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamUnavailable,
)
from polyroute.model.chat import ChatRequest, Message


def _error(status: int, body: object) -> object:
    return error_from_response(status, msgspec.json.encode(body), {}, "d")


def test_usage_counts_thoughts_as_completion_and_cached_as_prompt() -> None:
    usage = translate.canonical_usage(UsageMetadata(
        prompt_token_count=100, candidates_token_count=20, thoughts_token_count=30,
        cached_content_token_count=64, tool_use_prompt_token_count=5, total_token_count=155))
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (105, 50, 155)
    assert usage.cached_tokens == 64 and usage.reasoning_tokens == 30


@pytest.mark.parametrize(("reason", "calls", "expected"), [
    ("STOP", False, "stop"), ("STOP", True, "tool_calls"), ("MAX_TOKENS", False, "length"),
    ("SAFETY", False, "content_filter"), ("RECITATION", False, "content_filter"),
    ("BLOCKLIST", False, "content_filter"), ("PROHIBITED_CONTENT", False, "content_filter"),
    ("MALFORMED_FUNCTION_CALL", False, "malformed_function_call"), (None, False, None),
])
def test_finish_reasons(reason: str | None, calls: bool, expected: str | None) -> None:
    assert translate.finish_reason(reason, calls) == expected


def test_errors_keep_their_meaning() -> None:
    limited = _error(429, {"error": {"code": 429, "message": "quota", "status":
                                     "RESOURCE_EXHAUSTED", "details": [
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}]}})
    assert isinstance(limited, UpstreamRateLimited) and limited.retry_after == 37.0
    key = _error(400, {"error": {"code": 400, "message": "API key not valid.", "status":
                                 "INVALID_ARGUMENT", "details": [{"@type": "x",
                                                                  "reason": "API_KEY_INVALID"}]}})
    assert isinstance(key, UpstreamAuthError)
    assert isinstance(_error(403, {"error": {"status": "PERMISSION_DENIED"}}), UpstreamAuthError)
    assert isinstance(_error(404, {"error": {"status": "NOT_FOUND"}}), UpstreamModelNotFound)
    too_long = _error(400, {"error": {"message": "The input token count (2000000) exceeds the "
                                      "maximum number of tokens allowed (1048576).",
                                      "status": "INVALID_ARGUMENT"}})
    assert isinstance(too_long, ContextWindowExceeded)
    rejected = _error(400, {"error": {"message": "bad", "status": "INVALID_ARGUMENT"}})
    assert type(rejected) is UpstreamRejected and rejected.code == "invalid_argument"
    assert isinstance(_error(503, {"error": {"status": "UNAVAILABLE"}}), UpstreamUnavailable)
    assert isinstance(error_from_response(502, b"<html>bad gateway</html>", {}, "d"),
                      UpstreamUnavailable)
    in_stream = error_from_stream(b'{"error": {"code": 503, "status": "UNAVAILABLE"}}', "d")
    assert isinstance(in_stream, UpstreamUnavailable)
    assert error_from_stream(b'{"candidates": []}', "d") is None


def test_blocked_prompt_is_content_filtered() -> None:
    body = b'{"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}}'
    with pytest.raises(ContentFiltered, match="PROHIBITED_CONTENT"):
        translate.parse_response(body, "m", "d", 0, lambda n: f"c{n}")


def test_urls() -> None:
    base = "https://generativelanguage.googleapis.com"
    assert translate.model_path(base, "gemini-2.5") == f"{base}/v1beta/models/gemini-2.5"
    assert translate.model_path(f"{base}/v1", "m") == f"{base}/v1/models/m"
    assert translate.model_path(base, "tunedModels/x") == f"{base}/v1beta/tunedModels/x"


def test_unsupported_parameters_name_themselves() -> None:
    request = ChatRequest(messages=[Message(role="user", content="hi")],
                          parallel_tool_calls=False)
    with pytest.raises(UpstreamRejected) as info:
        translate.chat_body(request, Quirks(), "d")
    assert info.value.param == "parallel_tool_calls" and "Gemini" in info.value.message
    dropped = translate.chat_body(request, Quirks(drop_params=frozenset({"parallel_tool_calls"})),
                                  "d")
    assert msgspec.json.decode(dropped) == {"contents": [{"role": "user",
                                                         "parts": [{"text": "hi"}]}]}
    orphan = ChatRequest(messages=[Message(role="user", content="hi"),
                                   Message(role="tool", tool_call_id="nope", content="x")])
    with pytest.raises(UpstreamRejected, match="name of the function"):
        translate.chat_body(orphan, Quirks(), "d")
