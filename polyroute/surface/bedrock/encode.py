"""Canonical answers → Converse responses, stream events and errors (Bedrock's shape:
``{"message": …}`` with the error's name in ``x-amzn-ErrorType``)."""

from __future__ import annotations

import time
from typing import Any

import msgspec

from polyroute.errors import GatewayError
from polyroute.model.chat import ChatChunk, ChatResponse, ThinkingBlock, ToolCall
from polyroute.model.usage import Usage
from polyroute.nesting import too_deep
from polyroute.surface.bedrock import frames

_encode = msgspec.json.Encoder().encode
_any = msgspec.json.Decoder()
CONTENT_TYPE = "application/vnd.amazon.eventstream"

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                "content_filter": "content_filtered"}
_ERROR_TYPES = {400: "ValidationException", 401: "AccessDeniedException",
                403: "AccessDeniedException", 404: "ResourceNotFoundException",
                408: "ModelTimeoutException", 413: "ValidationException",
                429: "ThrottlingException", 503: "ServiceUnavailableException",
                504: "ModelTimeoutException"}


def error_type(status: int) -> str:
    """The name AWS gives an error of this status (boto3 raises the client's exception of
    that name: ``client.exceptions.ThrottlingException`` …)."""
    return _ERROR_TYPES.get(status, "InternalServerException" if status >= 500
                            else "ValidationException")


def error_body(exc: GatewayError) -> bytes:
    return _encode({"message": exc.message})


def _usage(usage: Usage | None) -> dict[str, int]:
    usage = usage or Usage()
    out = {"inputTokens": usage.prompt_tokens, "outputTokens": usage.completion_tokens,
           "totalTokens": usage.total_tokens or usage.prompt_tokens + usage.completion_tokens}
    if usage.cached_tokens:
        out["cacheReadInputTokens"] = usage.cached_tokens
    if usage.cache_creation_tokens:
        out["cacheWriteInputTokens"] = usage.cache_creation_tokens
    return out


def _tool_use(call: ToolCall) -> dict[str, Any]:
    function = call.function
    arguments = function.arguments if function is not None else None
    try:
        # An object nested past the limit could not be encoded again (a RecursionError).
        given = _any.decode(arguments) if arguments and too_deep(arguments) is None else (
            {"arguments": arguments} if arguments else {})
    except msgspec.DecodeError:
        given = {"arguments": arguments}  # not JSON: kept, under a name, rather than lost
    if not isinstance(given, dict):
        given = {"arguments": arguments}  # Converse's input is an object
    return {"toolUseId": call.id or "", "name": function.name or "" if function else "",
            "input": given}


def _reasoning(block: ThinkingBlock) -> dict[str, Any]:
    """A thinking block with what the client must send back: its signature, or the
    redacted content."""
    if block.type == "redacted_thinking":
        return {"reasoningContent": {"redactedContent": block.data or ""}}
    text: dict[str, Any] = {"text": block.thinking or ""}
    if block.signature:
        text["signature"] = block.signature
    return {"reasoningContent": {"reasoningText": text}}


def response_body(response: ChatResponse, latency_ms: int) -> bytes:
    if response.native is not None:
        return response.native  # a Bedrock upstream's own answer, relayed
    content: list[dict[str, Any]] = []
    reason = "stop"
    if response.choices:
        choice = response.choices[0]
        reason = choice.finish_reason or "stop"
        message = choice.message
        if message.thinking_blocks:
            content += [_reasoning(block) for block in message.thinking_blocks]
        elif message.reasoning_content:
            content.append({"reasoningContent": {"reasoningText": {
                "text": message.reasoning_content}}})
        text = message.content if isinstance(message.content, str) else "".join(
            p.text or "" for p in message.content or [] if p.type == "text")
        if text:
            content.append({"text": text})
        content += [{"toolUse": _tool_use(call)} for call in message.tool_calls or ()]
    return _encode({"output": {"message": {"role": "assistant", "content": content}},
                    "stopReason": STOP_REASONS.get(reason, reason),
                    "usage": _usage(response.usage), "metrics": {"latencyMs": latency_ms}})


class StreamEncoder:
    """Canonical chunks → ConverseStream events: messageStart, content block deltas (a
    contentBlockStart for each tool use), contentBlockStop, messageStop, metadata."""

    def __init__(self) -> None:
        self._started = time.monotonic()
        self._block = -1  # the open block's index
        self._open: str | int | None = None  # "text", "reasoning" or a tool call's index
        self._finish: str | None = None
        self._usage: Usage | None = None
        self._next_block = 0

    def take_over(self, next_block: int) -> None:
        """Continue a relayed stream: the next block opened is number ``next_block``."""
        self._next_block = next_block

    def start(self) -> bytes:
        return frames.event("messageStart", b'{"role":"assistant"}')

    def feed(self, batch: list[ChatChunk]) -> bytes:
        out: list[bytes] = []
        for chunk in batch:
            if chunk.usage is not None:
                self._usage = chunk.usage
            for choice in chunk.choices:
                if choice.index != 0:
                    continue
                delta = choice.delta
                if delta.reasoning_content:
                    out.append(self._delta("reasoning", {"reasoningContent": {
                        "text": delta.reasoning_content}}))
                for block in delta.thinking_blocks or ():
                    if block.signature:  # the end of a thinking block
                        out.append(self._delta("reasoning", {"reasoningContent": {
                            "signature": block.signature}}))
                    elif block.type == "redacted_thinking" and block.data:
                        out.append(self._delta("reasoning", {"reasoningContent": {
                            "redactedContent": block.data}}))
                if delta.content:
                    out.append(self._delta("text", {"text": delta.content}))
                for call in delta.tool_calls or ():
                    out.append(self._tool_delta(call))
                if choice.finish_reason:
                    self._finish = choice.finish_reason
        return b"".join(out)

    def finish(self) -> bytes:
        reason = self._finish or "stop"
        return (self._close()
                + frames.event("messageStop", _encode(
                    {"stopReason": STOP_REASONS.get(reason, reason)}))
                + self.metadata(self._usage))

    def metadata(self, usage: Usage | None) -> bytes:
        latency = int((time.monotonic() - self._started) * 1000)
        return frames.event("metadata", _encode({"usage": _usage(usage),
                                                 "metrics": {"latencyMs": latency}}))

    def fail(self, exc: GatewayError) -> bytes:
        """An exception frame: boto3 raises it as an ``EventStreamError`` with its name, so a
        cut answer never passes for a whole one."""
        name = error_type(exc.status)
        kind = name[0].lower() + name[1:]
        if exc.status >= 500 and name == "InternalServerException":
            kind = "modelStreamErrorException"
        return self._close() + frames.exception(kind, error_body(exc))

    def _delta(self, kind: str, delta: dict[str, Any]) -> bytes:
        out = b""
        if self._open != kind:
            out += self._close()
            self._open, self._block = kind, self._next_block
            self._next_block += 1
        return out + frames.event("contentBlockDelta", _encode(
            {"delta": delta, "contentBlockIndex": self._block}))

    def _tool_delta(self, call: ToolCall) -> bytes:
        out = b""
        index = call.index or 0
        function = call.function
        if self._open != index or call.id is not None:
            out += self._close()
            self._open, self._block = index, self._next_block
            self._next_block += 1
            out += frames.event("contentBlockStart", _encode({"start": {"toolUse": {
                "toolUseId": call.id or "", "name": function.name or "" if function else ""}},
                "contentBlockIndex": self._block}))
        if function is not None and function.arguments:
            out += frames.event("contentBlockDelta", _encode(
                {"delta": {"toolUse": {"input": function.arguments}},
                 "contentBlockIndex": self._block}))
        return out

    def _close(self) -> bytes:
        if self._open is None:
            return b""
        self._open = None
        return frames.event("contentBlockStop", _encode({"contentBlockIndex": self._block}))
