"""Canonical responses and stream batches → Gemini's wire: ``GenerateContentResponse`` JSON,
its ``alt=sse`` stream (one whole ``GenerateContentResponse`` per event) and Google's error
shape. A Gemini upstream's own bytes (``native``) are relayed instead, when they came."""

from __future__ import annotations

from typing import Any

import msgspec

from polyroute.errors import GatewayError
from polyroute.model.chat import ChatChunk, ChatResponse, FunctionCall, Message, ToolCall
from polyroute.model.usage import Usage
from polyroute.surface.anthropic.encode import tool_input

_encode = msgspec.json.Encoder().encode

FINISH_REASONS = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP",
                  "function_call": "STOP", "content_filter": "SAFETY"}
_STATUS = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 402: "FAILED_PRECONDITION",
    403: "PERMISSION_DENIED", 404: "NOT_FOUND", 408: "DEADLINE_EXCEEDED", 409: "ABORTED",
    413: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 500: "INTERNAL",
    501: "UNIMPLEMENTED", 502: "UNAVAILABLE", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED",
}


# -- errors -----------------------------------------------------------------------------------


def status_name(status: int) -> str:
    if status in _STATUS:
        return _STATUS[status]
    return "INVALID_ARGUMENT" if 400 <= status < 500 else "INTERNAL"


def _error(exc: GatewayError) -> dict[str, Any]:
    return {"error": {"code": exc.status, "message": exc.message,
                      "status": status_name(exc.status)}}


def error_body(exc: GatewayError) -> bytes:
    return _encode(_error(exc))


# -- whole answers ----------------------------------------------------------------------------


def finish_reason(reason: str | None) -> str | None:
    if reason is None:
        return None
    return FINISH_REASONS.get(reason, "OTHER")


def usage_metadata(u: Usage) -> dict[str, int]:
    """Gemini counts thoughts apart from the answer, OpenAI's ``completion_tokens`` includes
    them (the reverse of the Gemini adapter's ``canonical_usage``)."""
    details = u.completion_tokens_details
    thoughts = (details.reasoning_tokens or 0) if details is not None else 0
    out = {"promptTokenCount": u.prompt_tokens,
           "candidatesTokenCount": max(0, u.completion_tokens - thoughts),
           "totalTokenCount": u.prompt_tokens + u.completion_tokens}
    if thoughts:
        out["thoughtsTokenCount"] = thoughts
    cached = u.cached_tokens
    if cached:
        out["cachedContentTokenCount"] = cached
    return out


def response_body(response: ChatResponse) -> bytes:
    if response.native is not None:  # a Gemini upstream's own answer, relayed verbatim
        return response.native
    candidates = [_candidate(choice.index, _parts(choice.message), choice.finish_reason)
                  for choice in response.choices]
    return _encode(_response(candidates, response.usage, response.model, response.id))


def _response(candidates: list[dict[str, Any]], usage: Usage | None, model: str,
              response_id: str) -> dict[str, Any]:
    out: dict[str, Any] = {"candidates": candidates}
    if usage is not None:
        out["usageMetadata"] = usage_metadata(usage)
    if model:
        out["modelVersion"] = model
    if response_id:
        out["responseId"] = response_id
    return out


def _candidate(index: int, parts: list[dict[str, Any]], reason: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": index}
    finish = finish_reason(reason)
    if finish is not None:
        out["finishReason"] = finish
    return out


def _parts(message: Message) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    if message.reasoning_content:
        parts.append({"text": message.reasoning_content, "thought": True})
    text = message.content
    if isinstance(text, list):
        text = "".join(p.text or "" for p in text if p.type == "text")
    text = text or message.refusal
    if text:
        parts.append({"text": text})
    parts += [function_call(call) for call in message.tool_calls or ()]
    return parts


def function_call(call: ToolCall) -> dict[str, Any]:
    """A whole call. The id goes along: a Gemini client returns it with the function's
    response, which is how another vendor's answer is paired with its call."""
    function = call.function
    part: dict[str, Any] = {"functionCall": {
        "name": function.name if function else "",
        "args": tool_input(function.arguments if function else None)}}
    if call.id:
        part["functionCall"]["id"] = call.id
    google = (call.extra_content or {}).get("google")
    signature = google.get("thought_signature") if isinstance(google, dict) else None
    if isinstance(signature, str) and signature:
        part["thoughtSignature"] = signature
    return part


# -- streams ----------------------------------------------------------------------------------


def _event(data: dict[str, Any]) -> bytes:
    return b"data: " + _encode(data) + b"\r\n\r\n"


class _Call:
    __slots__ = ("arguments", "extra", "id", "name")

    def __init__(self) -> None:
        self.id: str | None = None
        self.name = ""
        self.arguments = ""
        self.extra: dict[str, Any] | None = None


class StreamEncoder:
    """Canonical chunks → Gemini events. Gemini sends each function call whole, OpenAI-shaped
    streams send its arguments in fragments: calls are gathered and sent with the finish
    reason. The finishing event waits for the usage chunk, so the last event carries both, as
    Gemini's does. Chunks with the upstream's own bytes (``native``) are relayed as they are."""

    def __init__(self, requested_model: str) -> None:
        self._model = requested_model
        self._id = ""
        self._calls: dict[int, _Call] = {}
        self._finish: str | None = None
        self._sent_finish = False
        self._translating = False
        """A chunk without the upstream's bytes came: the stream's end is ours to send."""

    def start(self) -> bytes:
        return b""

    def feed(self, batch: list[ChatChunk]) -> bytes:
        out: list[bytes] = []
        for chunk in batch:
            if chunk.native is not None:
                out.append(chunk.native)
                continue
            self._translating = True
            self._id = self._id or chunk.id
            self._model = chunk.model or self._model
            parts: list[dict[str, Any]] = []
            for choice in chunk.choices:
                if choice.index != 0:
                    continue  # one candidate per stream here
                delta = choice.delta
                if delta.reasoning_content:
                    parts.append({"text": delta.reasoning_content, "thought": True})
                text = delta.content or delta.refusal
                if text:
                    parts.append({"text": text})
                for call in delta.tool_calls or ():
                    self._gather(call)
                if choice.finish_reason:
                    self._finish = choice.finish_reason
            if parts:
                out.append(_event(_response([_candidate(0, parts, None)], None, self._model,
                                            self._id)))
            if chunk.usage is not None and not chunk.choices:
                out.append(self._final(chunk.usage))
        return b"".join(out)

    def finish(self) -> bytes:
        if self._sent_finish or (self._finish is None and not self._translating):
            return b""  # sent, or the upstream's own events ended the stream
        return self._final(None)

    def fail(self, exc: GatewayError) -> bytes:
        """Google's error object as an event: the google-genai SDK raises on it, so a cut
        answer never passes for a whole one."""
        return _event(_error(exc))

    def _gather(self, call: ToolCall) -> None:
        gathered = self._calls.setdefault(call.index or 0, _Call())
        gathered.id = gathered.id or call.id
        if call.function is not None:
            gathered.name += call.function.name or ""
            gathered.arguments += call.function.arguments or ""
        gathered.extra = gathered.extra or call.extra_content

    def _final(self, usage: Usage | None) -> bytes:
        self._sent_finish = True
        parts = [function_call(ToolCall(id=c.id, extra_content=c.extra,
                                        function=FunctionCall(c.name, c.arguments)))
                 for _, c in sorted(self._calls.items())]
        candidate = _candidate(0, parts, self._finish or "stop")
        return _event(_response([candidate], usage, self._model, self._id))

