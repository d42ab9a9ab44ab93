"""ConverseStream: eventstream frames in Bedrock's order, with the mid-stream faults.

    messageStart, [reasoning block: reasoningContent text deltas, signature delta, stop],
    text block (text deltas, no start event) and/or toolUse block (start, input deltas),
    each closed by contentBlockStop, messageStop (stopReason), metadata (usage, metrics)

Faults: ``stream_error`` sends a ``throttlingException`` exception frame and ends the stream;
``malformed_chunk`` sends a frame whose message CRC is wrong; ``stream_cut`` / ``stream_stall``
cut or stall the connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from polyroute.sim.bedrock.eventstream import event, exception
from polyroute.sim.bedrock.faults import THROTTLED
from polyroute.sim.bedrock.reply import Answer, PromptUsage
from polyroute.sim.bedrock.response import usage
from polyroute.sim.bedrock.state import BedrockState
from polyroute.sim.body_writer import write_body
from polyroute.sim.connection import close_connection, peer_gone
from polyroute.sim.faults import Fault, FaultName
from polyroute.sim.stats import SimStats

CONTENT_TYPE = "application/vnd.amazon.eventstream"
_MID_STREAM_FAULTS = frozenset({FaultName.STREAM_CUT, FaultName.STREAM_STALL,
                                FaultName.MALFORMED_CHUNK, FaultName.STREAM_ERROR})


@dataclass(frozen=True)
class _Event:
    kind: str
    payload: dict[str, Any]
    content: bool = False
    final: bool = False


class _Cut(Exception):
    """The simulator ended the stream on purpose; nothing more may be written."""


def _events(answer: Answer, prompt: PromptUsage, latency_ms: int) -> Iterator[_Event]:
    yield _Event("messageStart", {"role": "assistant"})
    index = 0
    if answer.reasoning_pieces:
        for piece in answer.reasoning_pieces:
            yield _Event("contentBlockDelta", {"contentBlockIndex": index, "delta": {
                "reasoningContent": {"text": piece}}})
        yield _Event("contentBlockDelta", {"contentBlockIndex": index, "delta": {
            "reasoningContent": {"signature": answer.signature}}})
        yield _Event("contentBlockStop", {"contentBlockIndex": index})
        index += 1
    if answer.text_pieces or answer.tool_use is None:
        for piece in answer.text_pieces:
            yield _Event("contentBlockDelta", {"contentBlockIndex": index,
                                               "delta": {"text": piece}}, content=True)
        yield _Event("contentBlockStop", {"contentBlockIndex": index})
        index += 1
    if answer.tool_use is not None:
        call = answer.tool_use
        yield _Event("contentBlockStart", {"contentBlockIndex": index, "start": {
            "toolUse": {"toolUseId": call.id, "name": call.name}}})
        for piece in call.fragments:
            yield _Event("contentBlockDelta", {"contentBlockIndex": index, "delta": {
                "toolUse": {"input": piece}}}, content=True)
        yield _Event("contentBlockStop", {"contentBlockIndex": index})
    yield _Event("messageStop", {"stopReason": answer.stop_reason}, final=True)
    yield _Event("metadata", {"usage": usage(prompt, answer.output_tokens),
                              "metrics": {"latencyMs": latency_ms}})


class _Emitter:
    def __init__(self, request: web.Request, response: web.StreamResponse, fault: Fault | None,
                 seconds_per_chunk: float, state: BedrockState, stats: SimStats) -> None:
        self._stats = stats
        self._request = request
        self._response = response
        self._fault = fault
        self._seconds_per_chunk = seconds_per_chunk
        self._state = state
        self._pending = fault is not None and fault.name in _MID_STREAM_FAULTS
        self._after = fault.int_param("after_chunks") if self._pending and fault else 0
        self._sent = 0

    async def run(self, events: Iterator[_Event]) -> None:
        if self._fault is not None and self._fault.name is FaultName.SLOW_FIRST_TOKEN:
            await asyncio.sleep(self._fault.param("delay_ms") / 1000)
        for item in events:
            if item.content and self._seconds_per_chunk:
                await asyncio.sleep(self._seconds_per_chunk)
            if self._pending and (item.final or (item.content and self._sent >= self._after)):
                self._pending = False
                if await self._inject(item):
                    return
            payload = {**item.payload, "p": self._state.padding()}
            frame = event(item.kind, payload)
            self._stats.last_response = (self._stats.last_response or b"") + frame
            await write_body(self._response, frame, self._fault)
            if item.content:
                self._sent += 1

    async def _inject(self, item: _Event) -> bool:
        """Apply the mid-stream fault; True when the stream ends here without a cut."""
        assert self._fault is not None
        name = self._fault.name
        if name is FaultName.STREAM_ERROR:
            await self._response.write(exception("throttlingException", THROTTLED))
            return True
        if name is FaultName.MALFORMED_CHUNK:
            # The next frame, whole and readable, but with a wrong message checksum.
            await self._response.write(event(item.kind, item.payload, corrupt=True))
            return False
        if name is FaultName.STREAM_STALL:
            await asyncio.sleep(self._fault.param("hold_s"))
        close_connection(self._request)
        raise _Cut


async def stream_converse(
    request: web.Request, *, answer: Answer, prompt: PromptUsage, fault: Fault | None,
    seconds_per_chunk: float, stats: SimStats, state: BedrockState, headers: Mapping[str, str],
) -> web.StreamResponse:
    response = web.StreamResponse(status=200, headers=headers)
    response.content_type = CONTENT_TYPE
    emitter = _Emitter(request, response, fault, seconds_per_chunk, state, stats)
    stats.streams_started += 1
    stats.last_response = b""
    try:
        await response.prepare(request)
        await emitter.run(_events(answer, prompt, latency_ms=1))
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
