"""Canonical responses and stream batches → Anthropic's wire: ``Message`` JSON, the SSE event
grammar (message_start, content_block_start/delta/stop, message_delta, message_stop) and
Anthropic's error shape."""

from __future__ import annotations

from typing import Any

import msgspec

from polyroute.errors import GatewayError
from polyroute.model.chat import ChatChunk, ChatResponse, Message, ToolCall
from polyroute.model.usage import Usage
from polyroute.nesting import too_deep

_encode = msgspec.json.Encoder().encode
_decode_any = msgspec.json.Decoder().decode

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
_ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
    403: "permission_error", 404: "not_found_error", 408: "invalid_request_error",
    413: "invalid_request_error", 429: "rate_limit_error", 503: "overloaded_error",
    504: "timeout_error", 529: "overloaded_error",
}


# -- errors -----------------------------------------------------------------------------------


class _ErrorDetail(msgspec.Struct):
    type: str
    message: str


class _Error(msgspec.Struct):
    type: str
    error: _ErrorDetail


def error_type(exc: GatewayError) -> str:
    """Anthropic's error type for ``exc``; a stream cut by an overloaded upstream says so."""
    cause = exc.__cause__
    status = cause.status if isinstance(cause, GatewayError) else exc.status
    if status in _ERROR_TYPES:
        return _ERROR_TYPES[status]
    return "invalid_request_error" if 400 <= status < 500 else "api_error"


def error_body(exc: GatewayError) -> bytes:
    return _encode(_Error("error", _ErrorDetail(error_type(exc), exc.message)))


def error_event(exc: GatewayError) -> bytes:
    return _event("error", _Error("error", _ErrorDetail(error_type(exc), exc.message)))


# -- whole messages ---------------------------------------------------------------------------


def stop_reason(finish_reason: str | None) -> str:
    return STOP_REASONS.get(finish_reason or "stop", "end_turn")


def usage(u: Usage | None) -> dict[str, int]:
    """Anthropic's ``input_tokens`` excludes cache reads and writes, OpenAI's
    ``prompt_tokens`` includes them."""
    if u is None:
        return {"input_tokens": 0, "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0, "output_tokens": 0}
    read, written = u.cached_tokens, u.cache_creation_tokens
    return {"input_tokens": max(0, u.prompt_tokens - read - written),
            "cache_creation_input_tokens": written, "cache_read_input_tokens": read,
            "output_tokens": u.completion_tokens}


def message_body(response: ChatResponse) -> bytes:
    if response.native is not None:  # an Anthropic upstream's own answer, relayed verbatim
        return response.native
    choice = response.choices[0] if response.choices else None
    content = _content(choice.message) if choice is not None else []
    return _encode({
        "id": response.id, "type": "message", "role": "assistant", "model": response.model,
        "content": content,
        "stop_reason": stop_reason(choice.finish_reason if choice else None),
        "stop_sequence": None, "usage": usage(response.usage)})


def _content(message: Message) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if message.thinking_blocks:
        for block in message.thinking_blocks:
            if block.type == "redacted_thinking":
                blocks.append({"type": "redacted_thinking", "data": block.data or ""})
            else:
                blocks.append({"type": "thinking", "thinking": block.thinking or "",
                               "signature": block.signature or ""})
    elif message.reasoning_content:
        # Reasoning from a vendor that signs nothing (DeepSeek, vLLM): an unsigned block.
        blocks.append({"type": "thinking", "thinking": message.reasoning_content,
                       "signature": ""})
    text = message.content
    if isinstance(text, list):
        text = "".join(p.text or "" for p in text if p.type == "text")
    text = text or message.refusal
    if text:
        blocks.append({"type": "text", "text": text})
    blocks += [_tool_use(call) for call in message.tool_calls or ()]
    return blocks


def _tool_use(call: ToolCall) -> dict[str, Any]:
    function = call.function
    return {"type": "tool_use", "id": call.id or "", "name": function.name if function else "",
            "input": tool_input(function.arguments if function else None)}


def tool_input(arguments: str | None) -> dict[str, Any]:
    """Anthropic's ``input`` is an object; a model that produced something else (truncated or
    invalid JSON) has it kept as a string under ``arguments`` rather than lost."""
    if not arguments or not arguments.strip():
        return {}
    if too_deep(arguments) is not None:
        return {"arguments": arguments}  # kept as text: too deep to decode and encode again
    try:
        value = _decode_any(arguments)
    except (msgspec.DecodeError, RecursionError):
        return {"arguments": arguments}
    return value if isinstance(value, dict) else {"arguments": arguments}


# -- streams ----------------------------------------------------------------------------------


def _event(name: str, data: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + _encode(data) + b"\n\n"


class StreamEncoder:
    """Turns the canonical (OpenAI-shaped) chunks of one stream into Anthropic's events.

    Anthropic streams one content block at a time: thinking, text, then each tool use. A
    change of kind closes the open block and starts the next. Input tokens are known only at
    the end for most upstreams, so they travel in ``message_delta``'s cumulative usage (which
    Anthropic's SDKs read) rather than in ``message_start``.

    Chunks of a stream passed through from an Anthropic upstream carry the upstream's own
    event bytes (``native``): those are sent instead of the translation. They are kept, and
    their block bookkeeping done only when a translated chunk follows (a recovery's, which
    carries none) or the stream fails, so that the translated rest continues the same blocks
    and an error event closes the right one; a stream that needs neither costs nothing more.
    """

    def __init__(self, requested_model: str) -> None:
        self._model = requested_model
        self._started = False
        self._open: tuple[str, int] | None = None  # (kind, key) of the open block
        self._index = -1
        self._tool_blocks: dict[int, int] = {}  # OpenAI tool-call index → block index
        self._finish: str | None = None
        self._usage: Usage | None = None
        self._stopped = False
        """The upstream's own message_stop was relayed: nothing is left to close."""
        self._quiet = False
        """Keeping the books for a passed-through chunk: its events are not encoded."""
        self._relayed: list[ChatChunk] = []
        """Passed-through chunks whose bookkeeping is not done yet."""

    def feed(self, batch: list[ChatChunk]) -> bytes:
        out: list[bytes] = []
        for chunk in batch:
            if chunk.native is not None:
                self._relayed.append(chunk)
                out.append(chunk.native)
                if chunk.usage is not None and not chunk.choices:
                    self._stopped = True  # Anthropic's usage chunk is its message_stop
            else:
                self._catch_up()
                out += self._translate(chunk)
        return b"".join(out)

    def _catch_up(self) -> None:
        """The bookkeeping of the passed-through chunks, without encoding their events."""
        if self._relayed:
            self._quiet = True
            for chunk in self._relayed:
                self._translate(chunk)
            self._quiet = False
            self._relayed.clear()

    def _translate(self, chunk: ChatChunk) -> list[bytes]:
        out: list[bytes] = []
        if not self._started:
            out.append(self._message_start(chunk))
        if chunk.usage is not None:
            self._usage = chunk.usage
        for choice in chunk.choices:
            if choice.index != 0:
                continue  # Anthropic has one answer per request
            delta = choice.delta
            if delta.reasoning_content:
                out += self._to("thinking", 0, {"type": "thinking", "thinking": "",
                                                "signature": ""})
                out.append(self._delta({"type": "thinking_delta",
                                        "thinking": delta.reasoning_content}))
            for block in delta.thinking_blocks or ():
                if block.type == "redacted_thinking":
                    out += self._to("redacted", self._index + 1, {
                        "type": "redacted_thinking", "data": block.data or ""})
                elif block.signature:
                    out += self._to("thinking", 0, {"type": "thinking", "thinking": "",
                                                    "signature": ""})
                    out.append(self._delta({"type": "signature_delta",
                                            "signature": block.signature}))
            text = delta.content or delta.refusal
            if text:
                out += self._to("text", 0, {"type": "text", "text": ""})
                out.append(self._delta({"type": "text_delta", "text": text}))
            for call in delta.tool_calls or ():
                out += self._tool_call(call)
            if choice.finish_reason:
                self._finish = choice.finish_reason
        return out

    def finish(self) -> bytes:
        if self._stopped:
            return b""
        self._catch_up()
        out = [] if self._started else [self._message_start(ChatChunk())]
        out += self._close()
        counts = usage(self._usage)
        output_tokens = counts.pop("output_tokens")
        out.append(_event("message_delta", {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason(self._finish), "stop_sequence": None},
            "usage": {**counts, "output_tokens": output_tokens}}))
        out.append(_event("message_stop", {"type": "message_stop"}))
        return b"".join(out)

    def start(self) -> bytes:
        return b""  # message_start waits for the first chunk: it carries the id and model

    def fail(self, exc: GatewayError) -> bytes:
        """No message_stop: Anthropic's SDKs raise on the error event, so a cut answer never
        passes for a complete one."""
        return self.finish_blocks() + error_event(exc)

    def finish_blocks(self) -> bytes:
        """Close what is open before an error event, so the events before it stay well formed."""
        self._catch_up()
        return b"".join(self._close())

    def _emit(self, name: str, data: Any) -> bytes:
        return b"" if self._quiet else _event(name, data)

    def _message_start(self, chunk: ChatChunk) -> bytes:
        self._started = True
        return self._emit("message_start", {"type": "message_start", "message": {
            "id": chunk.id, "type": "message", "role": "assistant",
            "model": chunk.model or self._model, "content": [], "stop_reason": None,
            "stop_sequence": None, "usage": {"input_tokens": 0, "output_tokens": 0}}})

    def _tool_call(self, call: ToolCall) -> list[bytes]:
        out: list[bytes] = []
        key = call.index if call.index is not None else 0
        function = call.function
        if key not in self._tool_blocks:
            out += self._to("tool", key, {"type": "tool_use", "id": call.id or "",
                                          "name": function.name if function else "",
                                          "input": {}})
            self._tool_blocks[key] = self._index
        arguments = function.arguments if function else None
        if arguments:
            index = self._tool_blocks[key]
            out.append(self._emit("content_block_delta", {
                "type": "content_block_delta", "index": index,
                "delta": {"type": "input_json_delta", "partial_json": arguments}}))
        return out

    def _to(self, kind: str, key: int, start: dict[str, Any]) -> list[bytes]:
        """Make (kind, key) the open block, closing the previous one."""
        if self._open == (kind, key):
            return []
        out = self._close()
        self._index += 1
        self._open = (kind, key)
        out.append(self._emit("content_block_start", {"type": "content_block_start",
                                                  "index": self._index,
                                                  "content_block": start}))
        return out

    def _close(self) -> list[bytes]:
        if self._open is None:
            return []
        self._open = None
        return [self._emit("content_block_stop", {"type": "content_block_stop",
                                              "index": self._index})]

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return self._emit("content_block_delta", {"type": "content_block_delta",
                                              "index": self._index, "delta": delta})
