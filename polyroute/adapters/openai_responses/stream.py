"""Responses API stream events → canonical chunks. Only what the engine needs is decoded:
text, tool calls and reasoning (first content, what a resumption must repeat), the finish and
the usage. Events of other kinds (items opened and closed, annotations …) translate to
nothing, yet in a relayed stream they still reach the client: each chunk then carries its
event's bytes in ``native``."""

from __future__ import annotations

from typing import Any

import msgspec

from polyroute.adapters.openai_responses.translate import (
    WireResponse,
    error_from_status,
    finish_reason,
    usage,
)
from polyroute.adapters.sse import Event
from polyroute.errors import UpstreamError, UpstreamProtocolError
from polyroute.model.chat import ChatChunk, ChunkChoice, Delta, FunctionCall, ToolCall
from polyroute.model.usage import Usage


class _AddedItem(msgspec.Struct):
    type: str
    call_id: str | None = None
    name: str | None = None


class _Event(msgspec.Struct):
    type: str
    delta: Any = None
    output_index: int | None = None
    item: _AddedItem | None = None
    response: WireResponse | None = None
    code: str | None = None
    message: str | None = None
    param: str | None = None


_event_decoder = msgspec.json.Decoder(_Event)
TERMINAL = frozenset({"response.completed", "response.incomplete"})


class StreamTranslator:
    """One stream's state: its id and model, and which output item is which tool call. A
    :class:`~polyroute.adapters.stream_driver.ChunkTranslator` of SSE events with their
    bytes, which ride on the chunks when ``relay`` (the client spoke this dialect too)."""

    def __init__(self, deployment: str, relay: bool = False) -> None:
        self._deployment = deployment
        self._relay = relay
        self._id = ""
        self._model = ""
        self._created = 0
        self._calls: dict[int, int] = {}  # output_index → tool-call index
        self.finished = False

    @property
    def stopped(self) -> bool:
        """The terminal event ends the stream: nothing after it is read."""
        return self.finished

    def feed(self, event: Event) -> list[ChatChunk]:
        raw, data = event
        if not data:
            return []  # a comment (keep-alive): neither translated nor relayed
        return self.chunks(data, raw if self._relay else None)

    def close(self) -> list[ChatChunk]:
        return []  # never called: the terminal event both finishes and stops the stream

    def chunks(self, data: bytes, native: bytes | None) -> list[ChatChunk]:
        """The chunks an event's data makes (often none, when not relaying). Raises the
        upstream's error for ``response.failed`` and ``error`` events."""
        try:
            event = _event_decoder.decode(data)
        except (msgspec.DecodeError, RecursionError) as exc:
            raise UpstreamProtocolError(f"malformed stream event: {exc}",
                                        deployment=self._deployment) from exc
        kind = event.type
        delta: Delta | None = None
        reason: str | None = None
        spent: Usage | None = None
        if kind == "response.output_text.delta" and isinstance(event.delta, str):
            delta = Delta(content=event.delta)
        elif kind == "response.function_call_arguments.delta" and isinstance(event.delta, str):
            index = self._calls.get(event.output_index or 0)
            if index is not None:
                delta = Delta(tool_calls=[ToolCall(index=index,
                                                   function=FunctionCall(arguments=event.delta))])
        elif kind == "response.output_item.added" and event.item is not None \
                and event.item.type == "function_call":
            index = self._calls[event.output_index or 0] = len(self._calls)
            delta = Delta(tool_calls=[ToolCall(
                index=index, id=event.item.call_id, type="function",
                function=FunctionCall(name=event.item.name or "", arguments=""))])
        elif kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta") \
                and isinstance(event.delta, str):
            delta = Delta(reasoning_content=event.delta)
        elif kind == "response.refusal.delta" and isinstance(event.delta, str):
            delta = Delta(refusal=event.delta)
        elif kind == "response.created" and event.response is not None:
            response = event.response
            self._id, self._model = response.id, response.model
            self._created = int(response.created_at)
            delta = Delta(role="assistant")
        elif kind in TERMINAL and event.response is not None:
            self.finished = True
            reason = finish_reason(event.response, bool(self._calls))
            spent = usage(event.response.usage) or Usage()
        elif kind in ("response.failed", "error"):
            raise self._error(event)
        chunks: list[ChatChunk] = []
        if delta is not None or reason is not None:
            chunks.append(ChatChunk(id=self._id, model=self._model, created=self._created,
                                    choices=[ChunkChoice(index=0, delta=delta or Delta(),
                                                         finish_reason=reason)]))
        if spent is not None:
            # Usage comes in a chunk of its own, as OpenAI's does (a client that did not ask
            # for it is not sent it).
            chunks.append(ChatChunk(id=self._id, model=self._model, created=self._created,
                                    usage=spent))
        elif native is not None and not chunks:
            chunks.append(ChatChunk(id=self._id, model=self._model, created=self._created))
        if native is not None:
            chunks[-1].native = native  # a relayed event's bytes ride on its last chunk
        return chunks

    def _error(self, event: _Event) -> UpstreamError:
        error: dict[str, Any] = {"message": event.message, "code": event.code,
                                 "param": event.param}
        if event.response is not None and event.response.error:
            error = event.response.error
        status = 429 if error.get("code") == "rate_limit_exceeded" else 500
        return error_from_status(status, {"error": error}, {}, self._deployment)
