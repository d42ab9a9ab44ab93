"""Pure translation functions of the OpenAI protocol: error mapping and wait hints."""

from __future__ import annotations

import json

import msgspec
import pytest

from polyroute.adapters.openai_chat import translate
from polyroute.config.compiled import Quirks
from polyroute.errors import (
    ContentFiltered,
    ContextWindowExceeded,
    InvalidRequest,
    UpstreamAuthError,
    UpstreamModelNotFound,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamUnavailable,
)
from polyroute.model.chat import ChatRequest, ContentPart, Message
from polyroute.model.tools import ImageURL, ToolChoice
from polyroute.surface.openai.decode import chat_request


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


_USER = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(("fields", "param"), [
    ({"tools": [{"type": "function", "function": "get_weather"}]}, "tools[0].function"),
    ({"tools": [{"function": {"name": "f"}}]}, "tools[0].type"),
    ({"tools": [{"type": "function", "function": {"parameters": {}}}]},
     "tools[0].function.name"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": "{}"}}]},
     "tools[0].function.parameters"),
    ({"tool_choice": 3}, "tool_choice"),
    ({"tool_choice": {"type": "function", "function": {}}}, "tool_choice.function.name"),
    ({"response_format": {"json_schema": {"schema": {}}}}, "response_format.type"),
    ({"response_format": {"type": "json_schema", "json_schema": {"schema": []}}},
     "response_format.json_schema.schema"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
     "messages[0].content[0]"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
     "messages[0].content[0].image_url.url"),
])
def test_malformed_tools_formats_and_images_are_refused_where_they_are_decoded(
    fields: dict[str, object], param: str
) -> None:
    """Typed once at the surface: a malformed one is OpenAI's 400 naming it, before any
    adapter (which used to find it, or not, in its own way) sees the request."""
    body = json.dumps({"model": "m", "messages": _USER, **fields}).encode()
    with pytest.raises(InvalidRequest) as caught:
        chat_request(body)
    assert caught.value.status == 400 and caught.value.param == param


def test_typed_tools_keep_what_every_vendor_reads_and_reencode_for_openai() -> None:
    body = json.dumps({"model": "m", "messages": _USER, "tools": [{
        "type": "function", "cache_control": {"type": "ephemeral"},
        "function": {"name": "f", "description": "d", "parameters": {"type": "object"},
                     "strict": True}}],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "response_format": {"type": "json_schema", "json_schema": {
            "name": "s", "schema": {"type": "object"}, "strict": True}}}).encode()
    request = chat_request(body)
    tool = (request.tools or [])[0]
    assert tool.function is not None and tool.function.parameters == {"type": "object"}
    assert tool.cache_point == {"type": "ephemeral"}
    assert isinstance(request.tool_choice, ToolChoice) and request.tool_choice.forced == "f"
    assert request.response_format is not None
    assert request.response_format.schema == {"type": "object"}
    # Re-encoded for an OpenAI upstream (a client of another dialect): the same JSON.
    request.passthrough = None
    sent = json.loads(translate.chat_body(request, "gpt-4o", Quirks()))
    original = json.loads(body)
    for name in ("tools", "tool_choice", "response_format"):
        assert sent[name] == original[name]


@pytest.mark.parametrize(("url", "split"), [
    ("data:image/PNG;base64,iVBORw0KGgo=", ("image/png", "iVBORw0KGgo=")),
    ("data:image/png,not-base64", None),
    ("https://example.test/cat.png", None),
])
def test_an_image_url_splits_its_data_url_once(url: str, split: tuple[str, str] | None) -> None:
    image = ImageURL(url)
    assert image.data == split
    assert image.data is image.data  # kept, not split again
    assert msgspec.json.encode(image) == json.dumps({"url": url}, separators=(",", ":")).encode()
