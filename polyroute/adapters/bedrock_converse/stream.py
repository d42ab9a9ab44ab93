"""ConverseStream's events → canonical chunks shaped exactly like OpenAI's stream.

    messageStart                     → a chunk with ``role: assistant`` (and empty content)
    contentBlockStart  toolUse       → a tool call: index, id, name, empty arguments
    contentBlockDelta  text          → content
                       toolUse       → that tool call's argument fragment (same index)
                reasoningContent     → reasoning_content, or a thinking block carrying the
                                       signature / redacted content
    messageStop                      → a chunk with finish_reason
    metadata                         → the usage chunk (``choices: []``)
    contentBlockStop                 → nothing
    exception frames                 → raised as an UpstreamError

Pure and stateful: one :class:`StreamTranslator` per stream, fed decoded eventstream messages.
"""

from __future__ import annotations

import msgspec

from polyroute.adapters.bedrock_converse.errors import error_from_exception_frame
from polyroute.adapters.bedrock_converse.eventstream import EventMessage
from polyroute.adapters.bedrock_converse.translate import canonical_usage, finish_reason
from polyroute.adapters.bedrock_converse.wire import EVENT_DECODER, Event
from polyroute.errors import UpstreamProtocolError, UpstreamUnavailable
from polyroute.model.chat import (
    ChatChunk,
    ChunkChoice,
    Delta,
    FunctionCall,
    ThinkingBlock,
    ToolCall,
)
from polyroute.model.usage import Usage


class StreamTranslator:
    def __init__(self, model: str, response_id: str, deployment: str, created: int) -> None:
        self._model = model
        self._id = response_id
        self._deployment = deployment
        self._created = created
        self._tool_index: dict[int, int] = {}
        """Converse block index → OpenAI tool-call index (0, 1, … in order of appearance)."""
        self._usage: Usage | None = None
        self.finished = False
        """``messageStop`` has arrived: the answer is whole even if the stream ends early."""
        self.stopped = False
        """``metadata`` (the last event) has arrived."""

    def feed(self, message: EventMessage) -> list[ChatChunk]:
        """The chunks one eventstream message stands for (often none). Raises for an
        exception or error frame."""
        kind = message.header(":message-type")
        if kind == "exception":
            raise error_from_exception_frame(message.header(":exception-type") or "",
                                             message.payload, self._deployment)
        if kind == "error":
            code = message.header(":error-code") or "error"
            text = message.header(":error-message") or "the upstream stream failed"
            raise UpstreamUnavailable(f"{code}: {text}", deployment=self._deployment)
        name = message.header(":event-type")
        if name is None:
            return []
        event = self._decode(message.payload)
        if name == "contentBlockDelta" and event.delta is not None:
            return self._delta(event)
        if name == "contentBlockStart" and event.start is not None:
            use = event.start.tool_use
            if use is None:
                return []
            position = self._tool_index[event.content_block_index] = len(self._tool_index)
            call = ToolCall(id=use.tool_use_id, type="function", index=position,
                            function=FunctionCall(name=use.name, arguments=""))
            return [self._chunk(Delta(tool_calls=[call]))]
        if name == "messageStart":
            return [self._chunk(Delta(role="assistant", content=""))]
        if name == "messageStop":
            self.finished = True
            reason = finish_reason(event.stop_reason) or "stop"
            return [ChatChunk(id=self._id, model=self._model, created=self._created,
                              choices=[ChunkChoice(0, Delta(), finish_reason=reason)])]
        if name == "metadata":
            self.stopped = True
            if event.usage is not None:
                self._usage = canonical_usage(event.usage)
            return [self.usage_chunk()]
        return []  # contentBlockStop, and event kinds added later

    def _delta(self, event: Event) -> list[ChatChunk]:
        delta = event.delta
        assert delta is not None
        if delta.text:
            return [self._chunk(Delta(content=delta.text))]
        if delta.tool_use is not None and delta.tool_use.input:
            index = self._tool_index.get(event.content_block_index, 0)
            call = ToolCall(index=index, function=FunctionCall(arguments=delta.tool_use.input))
            return [self._chunk(Delta(tool_calls=[call]))]
        reasoning = delta.reasoning_content
        if reasoning is not None:
            if reasoning.text:
                return [self._chunk(Delta(reasoning_content=reasoning.text))]
            if reasoning.signature:
                block = ThinkingBlock(type="thinking", signature=reasoning.signature)
                return [self._chunk(Delta(thinking_blocks=[block]))]
            if reasoning.redacted_content:
                block = ThinkingBlock(type="redacted_thinking", data=reasoning.redacted_content)
                return [self._chunk(Delta(thinking_blocks=[block]))]
        return []

    def close(self) -> list[ChatChunk]:
        """``messageStop`` arrived but not the metadata event: the answer is whole."""
        return [self.usage_chunk()]

    def usage_chunk(self) -> ChatChunk:
        return ChatChunk(id=self._id, model=self._model, created=self._created, choices=[],
                         usage=self._usage or Usage())

    def _decode(self, payload: bytes) -> Event:
        try:
            return EVENT_DECODER.decode(payload) if payload else Event()
        except (msgspec.DecodeError, RecursionError) as exc:
            raise UpstreamProtocolError(f"malformed stream event from the upstream: {exc}",
                                        deployment=self._deployment) from exc

    def _chunk(self, delta: Delta) -> ChatChunk:
        return ChatChunk(id=self._id, model=self._model, created=self._created,
                         choices=[ChunkChoice(0, delta)])
