"""Anthropic's stream events → canonical chunks shaped exactly like OpenAI's stream.

    message_start                    → a chunk with ``role: assistant`` (and empty content)
    content_block_start  text        → its text, if any
                         tool_use    → a tool call: index, id, name, empty arguments
                         thinking    → nothing yet
    content_block_delta  text_delta  → content
                   input_json_delta  → that tool call's argument fragment (same index)
                     thinking_delta  → reasoning_content
                    signature_delta  → a thinking block carrying the signature
    message_delta                    → a chunk with finish_reason
    message_stop                     → the usage chunk (``choices: []``)
    ping, content_block_stop         → nothing
    error                            → raised as an UpstreamError

Pure and stateful: one :class:`StreamTranslator` per stream, fed events (or their JSON).
"""

from __future__ import annotations

import msgspec

from polyroute.adapters.anthropic_messages.errors import error_from_event
from polyroute.adapters.anthropic_messages.translate import (
    canonical_usage,
    finish_reason,
    tool_arguments,
)
from polyroute.adapters.anthropic_messages.wire import EVENT_DECODER, Event
from polyroute.adapters.anthropic_messages.wire import Usage as WireUsage
from polyroute.errors import UpstreamProtocolError
from polyroute.model.chat import (
    ChatChunk,
    ChunkChoice,
    Delta,
    FunctionCall,
    ThinkingBlock,
    ToolCall,
)


class StreamTranslator:
    def __init__(self, deployment: str, created: int) -> None:
        self._deployment = deployment
        self._created = created
        self._id = ""
        self._model = ""
        self._usage = WireUsage()
        self._tool_index: dict[int, int] = {}
        """Anthropic block index → OpenAI tool-call index (0, 1, … in order of appearance)."""
        self.finished = False
        """A stop reason has arrived: the answer is whole even if the stream ends early."""
        self.stopped = False
        """``message_stop`` has arrived."""

    def feed(self, event: Event | bytes) -> list[ChatChunk]:
        """The chunks ``event`` stands for (often none). Raises for an ``error`` event, and
        for one that is not JSON of an event."""
        if isinstance(event, bytes):
            event = decode_event(event, self._deployment)
        kind = event.type
        if kind == "content_block_delta" and event.delta is not None:
            delta = event.delta
            if delta.type == "text_delta" and delta.text:
                return [self._chunk(Delta(content=delta.text))]
            if delta.type == "input_json_delta" and delta.partial_json:
                index = self._tool_index.get(event.index or 0, 0)
                call = ToolCall(index=index, function=FunctionCall(arguments=delta.partial_json))
                return [self._chunk(Delta(tool_calls=[call]))]
            if delta.type == "thinking_delta" and delta.thinking:
                return [self._chunk(Delta(reasoning_content=delta.thinking))]
            if delta.type == "signature_delta" and delta.signature:
                block = ThinkingBlock(type="thinking", signature=delta.signature)
                return [self._chunk(Delta(thinking_blocks=[block]))]
            return []
        if kind == "content_block_start" and event.content_block is not None:
            return self._block_start(event.index or 0, event)
        if kind == "message_start" and event.message is not None:
            message = event.message
            self._id, self._model = message.id, message.model
            if message.usage is not None:
                self._usage = message.usage
            return [self._chunk(Delta(role="assistant", content=""))]
        if kind == "message_delta":
            self._merge_usage(event.usage)
            reason = finish_reason(event.delta.stop_reason if event.delta else None)
            if reason is None:
                return []
            self.finished = True
            return [ChatChunk(id=self._id, model=self._model, created=self._created,
                              choices=[ChunkChoice(0, Delta(), finish_reason=reason)])]
        if kind == "message_stop":
            self.stopped = True
            return [self.usage_chunk()]
        if kind == "error":
            raise error_from_event(event.error, self._deployment)
        return []  # ping, content_block_stop, and event types added later

    def close(self) -> list[ChatChunk]:
        """A stop reason arrived but not ``message_stop``: the answer is whole; close it."""
        return [self.usage_chunk()]

    def usage_chunk(self) -> ChatChunk:
        return ChatChunk(id=self._id, model=self._model, created=self._created, choices=[],
                         usage=canonical_usage(self._usage))

    def _block_start(self, index: int, event: Event) -> list[ChatChunk]:
        block = event.content_block
        assert block is not None
        if block.type == "text" and block.text:
            return [self._chunk(Delta(content=block.text))]
        if block.type == "tool_use":
            position = self._tool_index[index] = len(self._tool_index)
            # Streams start tool input as {} and send it in input_json_delta events; anything
            # else would be a complete input given up front.
            arguments = tool_arguments(block)
            arguments = "" if arguments.replace(" ", "") == "{}" else arguments
            call = ToolCall(id=block.id, index=position, type="function",
                            function=FunctionCall(name=block.name, arguments=arguments))
            return [self._chunk(Delta(tool_calls=[call]))]
        if block.type == "thinking" and block.thinking:
            return [self._chunk(Delta(reasoning_content=block.thinking))]
        if block.type == "redacted_thinking":
            redacted = ThinkingBlock(type="redacted_thinking", data=block.data)
            return [self._chunk(Delta(thinking_blocks=[redacted]))]
        return []

    def _merge_usage(self, usage: WireUsage | None) -> None:
        """``message_delta`` usage counts are cumulative: a count it carries replaces the one
        from ``message_start``; one it leaves out keeps it."""
        if usage is None:
            return
        current = self._usage
        for name in ("input_tokens", "output_tokens", "cache_creation_input_tokens",
                     "cache_read_input_tokens", "output_tokens_details"):
            value = getattr(usage, name)
            if value is not None:
                setattr(current, name, value)

    def _chunk(self, delta: Delta) -> ChatChunk:
        return ChatChunk(id=self._id, model=self._model, created=self._created,
                         choices=[ChunkChoice(0, delta)])


def decode_event(data: bytes, deployment: str) -> Event:
    try:
        return EVENT_DECODER.decode(data)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise UpstreamProtocolError(f"malformed stream event from the upstream: {exc}",
                                    deployment=deployment) from exc
