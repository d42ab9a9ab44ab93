"""Each upstream protocol's wire format, written by hand for the in-memory transport: a chat
answer, a stream, an error inside a stream and error answers, per protocol. The provider
contract suite (tests/test_provider_contract.py) runs one set of expectations over all of
them; what differs between protocols lives here, as data."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from polyroute.adapters.azure_openai.spec import AzureOptions
from polyroute.adapters.bedrock_converse.spec import BedrockOptions
from polyroute.adapters.memory_transport import Scripted
from polyroute.model.upstream import Deployment, Endpoint, Quirks
from polyroute.sim.bedrock import eventstream

KEY = "sk-contract-secret-7f3a9c"
PROMPT_TOKENS, COMPLETION_TOKENS = 11, 7


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


def _sse(*events: Any, names: tuple[str, ...] = ()) -> bytes:
    out = b""
    for i, event in enumerate(events):
        if names:
            out += b"event: " + names[i].encode() + b"\n"
        out += b"data: " + (event if isinstance(event, bytes) else _json(event)) + b"\n\n"
    return out


@dataclass(frozen=True)
class Wire:
    protocol: str
    base_url: str
    headers: dict[str, str]
    chat_path: str
    stream_path: str
    answer: Callable[[str], bytes]
    """A whole (non-streamed) answer with this text."""
    stream_start: Callable[[], bytes]
    stream_text: Callable[[str], bytes]
    stream_end: Callable[[], bytes]
    """The finish and the usage, and the stream's own end."""
    stream_error: Callable[[str], bytes]
    """An error reported inside a stream, with this message."""
    rate_limited: Callable[[str], Scripted]
    auth_failed: Callable[[str], Scripted]
    """A 401/403 whose message echoes the key it was sent."""
    options: Any = None
    model: str = "model-x"
    extra: dict[str, Any] = field(default_factory=dict)

    def deployment(self, name: str = "dep", model: str | None = None,
                   priority: int = 0, quirks: Quirks | None = None) -> Deployment:
        endpoint = Endpoint(self.protocol, self.protocol, self.base_url, self.headers,
                            quirks=quirks or Quirks(), secrets=(KEY,), options=self.options)
        return Deployment(name=name, vendor=self.protocol, model=model or self.model,
                          endpoint=endpoint, priority=priority)

    def stream(self, *pieces: str) -> bytes:
        return (self.stream_start() + b"".join(self.stream_text(p) for p in pieces)
                + self.stream_end())


def _openai_usage() -> dict[str, int]:
    return {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS,
            "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS}


def _openai_chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
            "model": "model-x", "choices": [{"index": 0, "delta": delta,
                                             "finish_reason": finish}]}


def _openai(protocol: str, base_url: str, headers: dict[str, str], chat_path: str,
            options: Any = None) -> Wire:
    def answer(text: str) -> bytes:
        return _json({"id": "chatcmpl-1", "object": "chat.completion", "created": 1,
                      "model": "model-x", "choices": [{"index": 0, "message": {
                          "role": "assistant", "content": text}, "finish_reason": "stop"}],
                      "usage": _openai_usage()})

    def end() -> bytes:
        usage = {**_openai_chunk({}), "choices": [], "usage": _openai_usage()}
        return _sse(_openai_chunk({}, "stop"), usage, b"[DONE]")

    def error(status: int, code: str, message: str) -> Scripted:
        return Scripted.body(_json({"error": {"message": message, "type": code, "code": code}}),
                             status, **({"retry-after": "1"} if status == 429 else {}))

    return Wire(
        protocol, base_url, headers, chat_path, chat_path, answer,
        stream_start=lambda: _sse(_openai_chunk({"role": "assistant", "content": ""})),
        stream_text=lambda text: _sse(_openai_chunk({"content": text})),
        stream_end=end,
        stream_error=lambda message: _sse({"error": {"message": message,
                                                     "type": "server_error"}}),
        rate_limited=lambda message: error(429, "rate_limit_exceeded", message),
        auth_failed=lambda message: error(401, "invalid_api_key", message),
        options=options)


def _anthropic() -> Wire:
    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": "model-x",
               "content": [], "stop_reason": None, "stop_sequence": None,
               "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": 1}}

    def answer(text: str) -> bytes:
        return _json({**message, "content": [{"type": "text", "text": text}],
                      "stop_reason": "end_turn",
                      "usage": {"input_tokens": PROMPT_TOKENS,
                                "output_tokens": COMPLETION_TOKENS}})

    def error(status: int, kind: str, text: str) -> Scripted:
        return Scripted.body(_json({"type": "error", "error": {"type": kind, "message": text}}),
                             status)

    return Wire(
        "anthropic", "http://anthropic.test", {"x-api-key": KEY}, "/v1/messages",
        "/v1/messages", answer,
        stream_start=lambda: _sse(
            {"type": "message_start", "message": message},
            {"type": "content_block_start", "index": 0,
             "content_block": {"type": "text", "text": ""}},
            {"type": "ping"},
            names=("message_start", "content_block_start", "ping")),
        stream_text=lambda text: _sse(
            {"type": "content_block_delta", "index": 0,
             "delta": {"type": "text_delta", "text": text}}, names=("content_block_delta",)),
        stream_end=lambda: _sse(
            {"type": "content_block_stop", "index": 0},
            {"type": "message_delta", "delta": {"stop_reason": "end_turn",
                                                "stop_sequence": None},
             "usage": {"output_tokens": COMPLETION_TOKENS}},
            {"type": "message_stop"},
            names=("content_block_stop", "message_delta", "message_stop")),
        stream_error=lambda text: _sse(
            {"type": "error", "error": {"type": "api_error", "message": text}},
            names=("error",)),
        rate_limited=lambda text: error(429, "rate_limit_error", text),
        auth_failed=lambda text: error(401, "authentication_error", text))


def _gemini() -> Wire:
    usage = {"promptTokenCount": PROMPT_TOKENS, "candidatesTokenCount": COMPLETION_TOKENS,
             "totalTokenCount": PROMPT_TOKENS + COMPLETION_TOKENS}

    def response(parts: list[dict[str, Any]], finish: str | None = None) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
        if finish:
            candidate["finishReason"] = finish
        return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": "model-x",
                "responseId": "resp-1"}

    def error(status: int, kind: str, text: str) -> Scripted:
        return Scripted.body(_json({"error": {"code": status, "message": text,
                                              "status": kind}}), status)

    return Wire(
        "gemini", "http://gemini.test", {"x-goog-api-key": KEY},
        "/v1beta/models/model-x:generateContent",
        "/v1beta/models/model-x:streamGenerateContent?alt=sse",
        lambda text: _json(response([{"text": text}], "STOP")),
        stream_start=lambda: b"",
        stream_text=lambda text: _sse(response([{"text": text}])),
        stream_end=lambda: _sse(response([{"text": ""}], "STOP")),
        stream_error=lambda text: _sse({"error": {"code": 503, "message": text,
                                                  "status": "UNAVAILABLE"}}),
        rate_limited=lambda text: error(429, "RESOURCE_EXHAUSTED", text),
        auth_failed=lambda text: error(403, "PERMISSION_DENIED", text))


def _bedrock() -> Wire:
    usage = {"inputTokens": PROMPT_TOKENS, "outputTokens": COMPLETION_TOKENS,
             "totalTokens": PROMPT_TOKENS + COMPLETION_TOKENS}

    def answer(text: str) -> bytes:
        return _json({"output": {"message": {"role": "assistant", "content": [{"text": text}]}},
                      "stopReason": "end_turn", "usage": usage, "metrics": {"latencyMs": 5}})

    def error(status: int, kind: str, text: str) -> Scripted:
        return Scripted.body(_json({"message": text}), status,
                             **{"x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/"})

    return Wire(
        "bedrock", "http://bedrock.test", {"Authorization": f"Bearer {KEY}"},
        "/model/model-x/converse", "/model/model-x/converse-stream", answer,
        stream_start=lambda: eventstream.event("messageStart", {"role": "assistant"}),
        stream_text=lambda text: eventstream.event(
            "contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": text}}),
        stream_end=lambda: (
            eventstream.event("contentBlockStop", {"contentBlockIndex": 0})
            + eventstream.event("messageStop", {"stopReason": "end_turn"})
            + eventstream.event("metadata", {"usage": usage, "metrics": {"latencyMs": 5}})),
        stream_error=lambda text: eventstream.exception("modelStreamErrorException", text),
        rate_limited=lambda text: error(429, "ThrottlingException", text),
        auth_failed=lambda text: error(403, "AccessDeniedException", text),
        options=BedrockOptions(region="us-east-1"))


def _responses() -> Wire:
    """OpenAI's Responses API (``protocol: openai_responses``), as the simulator speaks it
    (polyroute/sim/responses.py, checked against the openai SDK's own types)."""
    usage = {"input_tokens": PROMPT_TOKENS, "input_tokens_details": {"cached_tokens": 0},
             "output_tokens": COMPLETION_TOKENS,
             "output_tokens_details": {"reasoning_tokens": 0},
             "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS}
    where = {"item_id": "msg_1", "output_index": 0}

    def response(done: bool, text: str = "") -> dict[str, Any]:
        item = {"type": "message", "id": "msg_1", "role": "assistant",
                "status": "completed" if done else "in_progress",
                "content": [{"type": "output_text", "text": text, "annotations": []}]
                if done else []}
        return {"id": "resp_1", "object": "response", "created_at": 1,
                "status": "completed" if done else "in_progress", "error": None,
                "incomplete_details": None, "model": "model-x",
                "output": [item] if done else [], "usage": usage if done else None}

    def event(payload: dict[str, Any]) -> bytes:
        return _sse(payload, names=(str(payload["type"]),))

    def error(status: int, code: str, message: str) -> Scripted:
        return Scripted.body(_json({"error": {"message": message, "type": code, "code": code}}),
                             status, **({"retry-after": "1"} if status == 429 else {}))

    return Wire(
        "openai_responses", "http://responses.test/v1", {"Authorization": f"Bearer {KEY}"},
        "/responses", "/responses", lambda text: _json(response(True, text)),
        stream_start=lambda: event({"type": "response.created", "response": response(False)})
        + event({"type": "response.output_item.added", "output_index": 0,
                 "item": {"type": "message", "id": "msg_1", "role": "assistant",
                          "status": "in_progress", "content": []}}),
        stream_text=lambda text: event({"type": "response.output_text.delta", **where,
                                        "content_index": 0, "delta": text}),
        stream_end=lambda: event({"type": "response.completed", "response": response(True)}),
        stream_error=lambda message: event({"type": "error", "code": "server_error",
                                            "message": message, "param": None}),
        rate_limited=lambda message: error(429, "rate_limit_exceeded", message),
        auth_failed=lambda message: error(401, "invalid_api_key", message))


def _azure() -> Wire:
    return _openai("azure", "http://azure.test", {"api-key": KEY},
                   "/openai/deployments/model-x/chat/completions?api-version=2024-10-21",
                   AzureOptions(api_version="2024-10-21"))


WIRES = {
    "openai": _openai("openai", "http://openai.test/v1", {"Authorization": f"Bearer {KEY}"},
                      "/chat/completions"),
    "azure": _azure(),
    "anthropic": _anthropic(),
    "gemini": _gemini(),
    "bedrock": _bedrock(),
    "openai_responses": _responses(),
}
"""Protocol name → its wire, for every registered protocol."""


def pieces(data: bytes, size: int) -> tuple[bytes, ...]:
    """``data`` as reads of ``size`` bytes: frames and UTF-8 characters split anywhere."""
    return tuple(data[i:i + size] for i in range(0, len(data), size))
