"""Server-sent-event streaming of chat completions, with the mid-stream faults."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from aiohttp import web
from msgspec import UNSET, UnsetType

from polyroute.sim.body_writer import write_body
from polyroute.sim.connection import close_connection, peer_gone
from polyroute.sim.faults import Fault, FaultName
from polyroute.sim.ids import SYSTEM_FINGERPRINT
from polyroute.sim.replies import Reply
from polyroute.sim.response_schema import (
    ENCODER,
    ChatCompletionChunk,
    ChunkChoice,
    Delta,
    FunctionDelta,
    ToolCallDelta,
    Usage,
    make_usage,
)
from polyroute.sim.stats import SimStats

_MID_STREAM_FAULTS = frozenset(
    {FaultName.STREAM_CUT, FaultName.STREAM_STALL, FaultName.MALFORMED_CHUNK}
)


class _Kind(enum.Enum):
    ROLE = "role"
    CONTENT = "content"
    FINAL = "final"
    USAGE = "usage"
    DONE = "done"


@dataclass(frozen=True)
class _Event:
    kind: _Kind
    choice: int
    data: bytes


class _CutBySimulator(Exception):
    """The simulator ended the stream on purpose; nothing more may be written."""


@dataclass(frozen=True)
class StreamHeader:
    completion_id: str
    created: int
    model: str
    include_usage: bool
    prompt_tokens: int
    cached_tokens: int = 0


def _chunk(
    header: StreamHeader, choices: list[ChunkChoice], usage: Usage | UnsetType | None = None
) -> bytes:
    return ENCODER.encode(
        ChatCompletionChunk(
            id=header.completion_id,
            created=header.created,
            model=header.model,
            system_fingerprint=SYSTEM_FINGERPRINT,
            choices=choices,
            usage=usage if header.include_usage else UNSET,
        )
    )


def _role_delta(reply: Reply) -> Delta:
    call = reply.tool_call
    if call is None:
        return Delta(role="assistant", content="", refusal=None)
    return Delta(
        role="assistant",
        content=None,
        refusal=None,
        tool_calls=[
            ToolCallDelta(
                index=0,
                id=call.call_id,
                type="function",
                function=FunctionDelta(name=call.name, arguments=""),
            )
        ],
    )


def _piece_delta(reply: Reply, piece: str) -> Delta:
    if reply.tool_call is None:
        return Delta(content=piece)
    return Delta(tool_calls=[ToolCallDelta(index=0, function=FunctionDelta(arguments=piece))])


def _events(header: StreamHeader, replies: list[Reply]) -> Iterator[_Event]:
    for index, reply in enumerate(replies):
        choice = ChunkChoice(index=index, delta=_role_delta(reply))
        yield _Event(_Kind.ROLE, index, _chunk(header, [choice]))
    steps = max(len(reply.pieces) for reply in replies)
    for step in range(steps):
        for index, reply in enumerate(replies):
            if step < len(reply.pieces):
                delta = _piece_delta(reply, reply.pieces[step])
                choice = ChunkChoice(index=index, delta=delta)
                yield _Event(_Kind.CONTENT, index, _chunk(header, [choice]))
    for index, reply in enumerate(replies):
        choice = ChunkChoice(index=index, delta=Delta(), finish_reason=reply.finish_reason)
        yield _Event(_Kind.FINAL, index, _chunk(header, [choice]))
    if header.include_usage:
        completion_tokens = sum(reply.completion_tokens for reply in replies)
        usage = make_usage(header.prompt_tokens, completion_tokens, header.cached_tokens)
        yield _Event(_Kind.USAGE, 0, _chunk(header, [], usage))
    yield _Event(_Kind.DONE, 0, b"[DONE]")


class _Emitter:
    def __init__(
        self,
        request: web.Request,
        response: web.StreamResponse,
        fault: Fault | None,
        seconds_per_chunk: float,
    ) -> None:
        self._request = request
        self._response = response
        self._fault = fault
        self._seconds_per_chunk = seconds_per_chunk
        self._content_sent = 0
        self._fault_pending = fault is not None and fault.name in _MID_STREAM_FAULTS
        self._after_chunks = (
            fault.int_param("after_chunks") if fault is not None and self._fault_pending else 0
        )

    async def run(self, header: StreamHeader, events: Iterator[_Event]) -> None:
        if self._fault is not None and self._fault.name is FaultName.SLOW_FIRST_TOKEN:
            await asyncio.sleep(self._fault.param("delay_ms") / 1000)
        for event in events:
            if event.kind is _Kind.CONTENT and event.choice == 0 and self._seconds_per_chunk:
                await asyncio.sleep(self._seconds_per_chunk)
            if self._fault_pending and self._due(event):
                self._fault_pending = False
                await self._inject(header)
            if event.kind is _Kind.DONE and self._is(FaultName.NO_DONE):
                continue
            await write_body(self._response, b"data: " + event.data + b"\n\n", self._fault)
            if event.kind is _Kind.CONTENT:
                self._content_sent += 1

    def _is(self, name: FaultName) -> bool:
        return self._fault is not None and self._fault.name is name

    def _due(self, event: _Event) -> bool:
        # A stream shorter than after_chunks still gets its fault, just before the end.
        if event.kind is _Kind.FINAL:
            return True
        return event.kind is _Kind.CONTENT and self._content_sent >= self._after_chunks

    async def _inject(self, header: StreamHeader) -> None:
        assert self._fault is not None
        if self._fault.name is FaultName.MALFORMED_CHUNK:
            # Cut off mid-object, as a proxy that mangles a line would leave it.
            broken = (
                b'data: {"id":"' + header.completion_id.encode() + b'","object":'
                b'"chat.completion.chunk","choices":[{"index":0,"delta":{"content":\n\n'
            )
            await self._response.write(broken)
            return
        if self._fault.name is FaultName.STREAM_STALL:
            await asyncio.sleep(self._fault.param("hold_s"))
        close_connection(self._request)
        raise _CutBySimulator


async def stream_chat(
    request: web.Request,
    *,
    header: StreamHeader,
    replies: list[Reply],
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
        await emitter.run(header, _events(header, replies))
    except _CutBySimulator:
        stats.responses_cut_by_sim += 1
        return response
    except (asyncio.CancelledError, ConnectionResetError):
        # A cancel while the socket is still open comes from server shutdown, not the peer.
        if peer_gone(request):
            stats.streams_aborted_by_peer += 1
        raise
    stats.streams_completed += 1
    return response
