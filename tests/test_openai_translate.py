"""Pure translation functions of the OpenAI protocol: error mapping and wait hints."""

from __future__ import annotations

import pytest

from polyroute.adapters.openai_chat import translate
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
from polyroute.model.chat import ChatRequest, ContentPart, Message


@pytest.mark.parametrize(("headers", "seconds"), [
    ({"retry-after-ms": "1500"}, 1.5),
    ({"retry-after": "3"}, 3.0),
    ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
    ({"x-ratelimit-reset-requests": "6m0s", "x-ratelimit-reset-tokens": "20ms"}, 360.0),
    ({"x-ratelimit-reset-tokens": "1h2m3.5s"}, 3723.5),
    ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, None),
    ({}, None),
])
def test_retry_after(headers: dict[str, str], seconds: float | None) -> None:
    assert translate.retry_after(headers) == seconds


@pytest.mark.parametrize(("status", "body", "kind"), [
    (429, b'{"error": {"message": "slow down", "code": "rate_limit_exceeded"}}',
     UpstreamRateLimited),
    (400, b'{"error": {"message": "too long", "code": "context_length_exceeded"}}',
     ContextWindowExceeded),
    (400, b'{"error": {"message": "This model\'s maximum context length is 8192 tokens"}}',
     ContextWindowExceeded),
    (400, b'{"error": {"message": "no", "code": "content_policy_violation"}}', ContentFiltered),
    (401, b'{"error": {"message": "Incorrect API key"}}', UpstreamAuthError),
    (404, b'{"error": {"message": "no such model"}}', UpstreamModelNotFound),
    (503, b"<html>Service Unavailable</html>", UpstreamUnavailable),
    (422, b'{"error": "unprocessable"}', UpstreamRejected),
])
def test_error_mapping_keeps_the_vendor_message(status: int, body: bytes, kind: type) -> None:
    error = translate.error_from_response(status, body, {"retry-after": "2"}, "dep")
    assert type(error) is kind
    assert error.deployment == "dep"
    text = body.decode()
    assert any(word in error.message for word in ("slow", "too long", "maximum", "no",
                                                  "Incorrect", "Unavailable", "unprocessable"))
    if kind is UpstreamRateLimited:
        assert error.retry_after == 2.0
    if kind is UpstreamRejected:
        assert error.status == 422 and "unprocessable" in text


def test_canonical_body_drops_other_dialects_fields() -> None:
    request = ChatRequest(
        model="x", messages=[Message(role="user", content=[
            ContentPart(type="text", text="hi", cache_control={"type": "ephemeral"})])],
        top_k=5, thinking={"type": "enabled", "budget_tokens": 100}, max_completion_tokens=9)
    body = translate.chat_body(request, "gpt-4o", Quirks(max_tokens_field="max_tokens"))
    assert b"cache_control" not in body and b"thinking" not in body
    assert b'"top_k":5' in body  # vLLM and llama.cpp honour it
    assert b'"max_tokens":9' in body and b"max_completion_tokens" not in body
    assert b'"model":"gpt-4o"' in body
