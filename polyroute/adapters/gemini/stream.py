"""Gemini's streamed ``GenerateContentResponse``s → canonical chunks shaped like OpenAI's stream.

    a candidate's first parts         → a chunk with ``role: assistant`` and that content
    text parts                        → content
    thought parts                     → reasoning_content
    functionCall parts                → a whole tool call (Gemini does not split arguments):
                                        index, id, name and arguments in one delta
    finishReason                      → a chunk with finish_reason
    usageMetadata (cumulative)        → kept; one usage chunk (``choices: []``) at the end
    promptFeedback.blockReason        → raised as ContentFiltered
    {"error": …}                      → raised as an UpstreamError

Pure and stateful: one :class:`StreamTranslator` per stream, fed each event's data.
"""

from __future__ import annotations

from collections.abc import Callable

from polyroute.adapters.gemini.errors import error_from_stream
from polyroute.adapters.gemini.translate import (
    canonical_usage,
    check_blocked,
    decode_response,
    finish_reason,
    tool_call,
)
from polyroute.adapters.gemini.wire import Candidate, UsageMetadata
from polyroute.model.chat import ChatChunk, ChunkChoice, Delta, ToolCall
from polyroute.model.usage import Usage


class StreamTranslator:
    def __init__(
        self, model: str, deployment: str, created: int, call_id: Callable[[int], str]
    ) -> None:
        self._deployment = deployment
        self._created = created
        self._call_id = call_id
        self._id = ""
        self._model = model
        self._usage: UsageMetadata | None = None
        self._started: set[int] = set()
        self._calls_by_candidate: dict[int, int] = {}
        self._calls = 0
        self.finished = False
        """A finish reason has arrived: the answer is whole."""

    def feed(self, data: bytes) -> list[ChatChunk]:
        """The chunks one event stands for (often one, sometimes none). Raises for an error
        event or a blocked prompt."""
        error = error_from_stream(data, self._deployment)
        if error is not None:
            raise error
        wire = decode_response(data, self._deployment)
        check_blocked(wire, self._deployment)
        self._id = self._id or wire.response_id or ""
        self._model = wire.model_version or self._model
        if wire.usage_metadata is not None:
            self._usage = wire.usage_metadata  # counts are cumulative: the last one holds
        chunks: list[ChatChunk] = []
        for candidate in wire.candidates:
            chunks += self._candidate(candidate)
        return chunks

    def _candidate(self, candidate: Candidate) -> list[ChatChunk]:
        index = candidate.index
        texts: list[str] = []
        thoughts: list[str] = []
        calls: list[ToolCall] = []
        for part in candidate.content.parts if candidate.content else ():
            if part.function_call is not None:
                position = self._calls_by_candidate.get(index, 0)
                self._calls_by_candidate[index] = position + 1
                calls.append(tool_call(part, self._call_id(self._calls), index=position))
                self._calls += 1
            elif part.text:
                (thoughts if part.thought else texts).append(part.text)
        chunks = []
        if texts or thoughts or calls:
            delta = Delta(content="".join(texts) if texts else None,
                          reasoning_content="".join(thoughts) or None, tool_calls=calls or None)
            if index not in self._started:
                self._started.add(index)
                delta.role = "assistant"
            chunks.append(self._chunk(ChunkChoice(index, delta)))
        reason = finish_reason(candidate.finish_reason, index in self._calls_by_candidate)
        if reason is not None:
            self.finished = True
            delta = Delta(role="assistant") if index not in self._started else Delta()
            self._started.add(index)
            chunks.append(self._chunk(ChunkChoice(index, delta, finish_reason=reason)))
        return chunks

    stopped = False
    """Gemini ends a stream by closing it: no event of its own says so."""

    def close(self) -> list[ChatChunk]:
        """Its usage came with the last event: one usage chunk ends the stream."""
        return [self.usage_chunk()]

    def usage_chunk(self) -> ChatChunk:
        usage = canonical_usage(self._usage) if self._usage is not None else Usage()
        return ChatChunk(id=self._id, model=self._model, created=self._created, choices=[],
                         usage=usage)

    def _chunk(self, choice: ChunkChoice) -> ChatChunk:
        return ChatChunk(id=self._id, model=self._model, created=self._created,
                         choices=[choice])
