"""Server-sent events of a streamed message, in Anthropic's order, with the mid-stream faults.

    message_start, ping,
    [thinking block: content_block_start, thinking_delta…, signature_delta, content_block_stop]
    text block (text_delta…) or tool_use block (input_json_delta…), each start … stop,
    message_delta (stop_reason, cumulative usage), message_stop
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from polyroute.sim.anthropic.reply import Answer, PromptUsage
from polyroute.sim.anthropic.response import (
    BlockEvent,
    Message,
    MessageDelta,
    MessageDeltaEvent,
    StartEvent,
    delta_usage,
    event,
    usage,
)
from polyroute.sim.body_writer import write_body
from polyroute.sim.connection import close_connection, peer_gone
from polyroute.sim.faults import Fault, FaultName
from polyroute.sim.stats import SimStats

_MID_STREAM_FAULTS = frozenset({FaultName.STREAM_CUT, FaultName.STREAM_STALL,
                                FaultName.MALFORMED_CHUNK, FaultName.STREAM_ERROR})
_OVERLOADED_EVENT = event("error", {"type": "error", "error": {
    "type": "overloaded_error", "message": "Overloaded"}})


@dataclass(frozen=True)
class _Event:
    data: bytes
    content: bool = False
    """A text or tool-input delta: what after_chunks counts and pacing spaces out."""
    final: bool = False
    """message_delta: a pending fault fires before it at the latest."""
    stop: bool = False


class _Cut(Exception):
    """The simulator ended the stream on purpose; nothing more may be written."""


def _events(message_id: str, model: str, answer: Answer, prompt: PromptUsage) -> Iterator[_Event]:
    start = Message(id=message_id, model=model, content=[], stop_reason=None,
                    stop_sequence=None, usage=usage(prompt, 1))
    yield _Event(event("message_start", StartEvent(message=start)))
    yield _Event(event("ping", {"type": "ping"}))
    index = 0
    if answer.thinking_pieces:
        yield _Event(_block("content_block_start", index,
                            {"type": "thinking", "thinking": "", "signature": ""}))
        for piece in answer.thinking_pieces:
            yield _Event(_delta(index, {"type": "thinking_delta", "thinking": piece}))
        yield _Event(_delta(index, {"type": "signature_delta", "signature": answer.signature}))
        yield _Event(_block("content_block_stop", index))
        index += 1
    if answer.text_pieces or answer.tool_use is None:
        yield _Event(_block("content_block_start", index, {"type": "text", "text": ""}))
        for piece in answer.text_pieces:
            yield _Event(_delta(index, {"type": "text_delta", "text": piece}), content=True)
        yield _Event(_block("content_block_stop", index))
        index += 1
    if answer.tool_use is not None:
        call = answer.tool_use
        yield _Event(_block("content_block_start", index, {
            "type": "tool_use", "id": call.id, "name": call.name, "input": {}}))
        yield _Event(_delta(index, {"type": "input_json_delta", "partial_json": ""}))
        for piece in call.fragments:
            yield _Event(_delta(index, {"type": "input_json_delta", "partial_json": piece}),
                         content=True)
        yield _Event(_block("content_block_stop", index))
    final = MessageDeltaEvent(delta=MessageDelta(answer.stop_reason, answer.stop_sequence),
                              usage=delta_usage(prompt, answer.output_tokens))
    yield _Event(event("message_delta", final), final=True)
    yield _Event(event("message_stop", {"type": "message_stop"}), stop=True)


def _block(kind: str, index: int, content_block: dict[str, Any] | None = None) -> bytes:
    if content_block is None:
        return event(kind, BlockEvent(type=kind, index=index))
    return event(kind, BlockEvent(type=kind, index=index, content_block=content_block))


def _delta(index: int, delta: dict[str, Any]) -> bytes:
    return event("content_block_delta",
                 BlockEvent(type="content_block_delta", index=index, delta=delta))


class _Emitter:
    def __init__(self, request: web.Request, response: web.StreamResponse, fault: Fault | None,
                 seconds_per_chunk: float) -> None:
        self._request = request
        self._response = response
        self._fault = fault
        self._seconds_per_chunk = seconds_per_chunk
        self._pending = fault is not None and fault.name in _MID_STREAM_FAULTS
        self._after = fault.int_param("after_chunks") if self._pending and fault else 0
        self._sent = 0

    def _is(self, name: FaultName) -> bool:
        return self._fault is not None and self._fault.name is name

    async def run(self, events: Iterator[_Event]) -> None:
        if self._fault is not None and self._is(FaultName.SLOW_FIRST_TOKEN):
            await asyncio.sleep(self._fault.param("delay_ms") / 1000)
        for item in events:
            if item.content and self._seconds_per_chunk:
                await asyncio.sleep(self._seconds_per_chunk)
            if self._pending and (item.final or (item.content and self._sent >= self._after)):
                self._pending = False
                if await self._inject():
                    return
            if item.stop and self._is(FaultName.NO_DONE):
                continue
            await write_body(self._response, item.data, self._fault)
            if item.content:
                self._sent += 1

    async def _inject(self) -> bool:
        """Apply the mid-stream fault; True when the stream ends here normally."""
        assert self._fault is not None
        name = self._fault.name
        if name is FaultName.STREAM_ERROR:
            await self._response.write(_OVERLOADED_EVENT)
            return True
        if name is FaultName.MALFORMED_CHUNK:
            await self._response.write(
                b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
                b'"delta":{"type":"text_delta","text":\n\n')
            return False
        if name is FaultName.STREAM_STALL:
            await asyncio.sleep(self._fault.param("hold_s"))
        close_connection(self._request)
        raise _Cut


async def stream_message(
    request: web.Request,
    *,
    message_id: str,
    model: str,
    answer: Answer,
    prompt: PromptUsage,
    fault: Fault | None,
    seconds_per_chunk: float,
    stats: SimStats,
    headers: Mapping[str, str],
) -> web.StreamResponse:
    response = web.StreamResponse(status=200, headers=headers)
    response.headers["Content-Type"] = "text/event-stream; charset=utf-8"
    response.headers["Cache-Control"] = "no-cache"
    emitter = _Emitter(request, response, fault, seconds_per_chunk)
    stats.streams_started += 1
    try:
        await response.prepare(request)
        await emitter.run(_events(message_id, model, answer, prompt))
    except _Cut:
        stats.responses_cut_by_sim += 1
        return response
    except (asyncio.CancelledError, ConnectionResetError):
        if peer_gone(request):
            stats.streams_aborted_by_peer += 1
        raise
    stats.streams_completed += 1
    await response.write_eof()
    return response
