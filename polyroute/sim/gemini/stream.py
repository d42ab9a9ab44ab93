"""``streamGenerateContent?alt=sse``: one ``GenerateContentResponse`` per event, separated by
CRLF as Google's servers do, with the simulator's mid-stream faults.

    [thought summary pieces], text pieces (or one whole functionCall part),
    the last one carrying finishReason and the full usageMetadata
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from aiohttp import web

from polyroute.sim.body_writer import write_body
from polyroute.sim.connection import close_connection, peer_gone
from polyroute.sim.faults import Fault, FaultName
from polyroute.sim.gemini.reply import Answer, PromptUsage
from polyroute.sim.gemini.response import (
    call_part,
    candidate,
    response_body,
    usage_metadata,
)
from polyroute.sim.stats import SimStats

_MID_STREAM_FAULTS = frozenset({FaultName.STREAM_CUT, FaultName.STREAM_STALL,
                                FaultName.MALFORMED_CHUNK, FaultName.STREAM_ERROR})
_ERROR_EVENT = (b'data: {"error": {"code": 503, "message": "The model is overloaded. Please try '
                b'again later.", "status": "UNAVAILABLE"}}\r\n\r\n')
_MALFORMED_EVENT = b'data: {"candidates": [{"content": {"parts": [{"text": \r\n\r\n'


@dataclass(frozen=True)
class _Event:
    data: bytes
    content: bool = True
    final: bool = False


class _Cut(Exception):
    """The simulator ended the stream on purpose; nothing more may be written."""


def sse(payload: bytes) -> bytes:
    return b"data: " + payload + b"\r\n\r\n"


def _events(answer: Answer, prompt: PromptUsage, model: str, response_id: str,
            candidates: int) -> Iterator[_Event]:
    pieces: list[list[dict[str, object]]] = [
        [{"text": piece, "thought": True}] for piece in answer.thought_pieces]
    if answer.call is not None:
        pieces.append([call_part(answer)])
    else:
        pieces += [[{"text": piece}] for piece in answer.text_pieces] or [[{"text": ""}]]
    early = usage_metadata(prompt, None)
    for n, parts in enumerate(pieces):
        last = n == len(pieces) - 1
        finish = answer.finish_reason if last else None
        body = response_body([candidate(i, parts, finish) for i in range(candidates)],
                             usage_metadata(prompt, answer) if last else early, model,
                             response_id)
        yield _Event(sse(body), final=last)


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

    async def run(self, events: Iterator[_Event]) -> None:
        if self._fault is not None and self._fault.name is FaultName.SLOW_FIRST_TOKEN:
            await asyncio.sleep(self._fault.param("delay_ms") / 1000)
        for item in events:
            if self._seconds_per_chunk and self._sent:
                await asyncio.sleep(self._seconds_per_chunk)
            if self._pending and (item.final or self._sent >= self._after):
                self._pending = False
                if await self._inject():
                    return
            await write_body(self._response, item.data, self._fault)
            self._sent += 1

    async def _inject(self) -> bool:
        """Apply the mid-stream fault; True when the stream ends here without a cut."""
        assert self._fault is not None
        name = self._fault.name
        if name is FaultName.STREAM_ERROR:
            await self._response.write(_ERROR_EVENT)
            return True
        if name is FaultName.MALFORMED_CHUNK:
            await self._response.write(_MALFORMED_EVENT)
            return False
        if name is FaultName.STREAM_STALL:
            await asyncio.sleep(self._fault.param("hold_s"))
        close_connection(self._request)
        raise _Cut


async def stream_response(
    request: web.Request, *, first: bytes | None, answer: Answer | None, prompt: PromptUsage,
    model: str, response_id: str, candidates: int, fault: Fault | None,
    seconds_per_chunk: float, stats: SimStats, headers: Mapping[str, str],
) -> web.StreamResponse:
    """Stream ``answer``; or, for a blocked prompt, the single event ``first``."""
    response = web.StreamResponse(status=200, headers=headers)
    response.content_type = "text/event-stream"
    emitter = _Emitter(request, response, fault, seconds_per_chunk)
    stats.streams_started += 1
    try:
        await response.prepare(request)
        if first is not None:
            await response.write(sse(first))
        if answer is not None:
            await emitter.run(_events(answer, prompt, model, response_id, candidates))
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
