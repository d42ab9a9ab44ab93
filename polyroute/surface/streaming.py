"""Relaying a live stream to a client, the same for every dialect: only the encoder differs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

from aiohttp import web

from polyroute.engine.streaming import LiveStream
from polyroute.errors import GatewayError
from polyroute.model.chat import ChatChunk

SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # tell nginx-like proxies in front not to buffer the stream
}
KEEP_ALIVE = b": keep-alive\n\n"  # an SSE comment: every SSE parser skips it


class StreamEncoder(Protocol):
    """A dialect's stream: bytes to send first, per batch, at a normal end, and when the
    answer was cut (which must never read as a normal end)."""

    def start(self) -> bytes: ...

    def feed(self, batch: list[ChatChunk]) -> bytes: ...

    def finish(self) -> bytes: ...

    def fail(self, exc: GatewayError) -> bytes: ...


async def relay(
    http: web.Request, stream: LiveStream, headers: dict[str, str], encoder: StreamEncoder
) -> web.StreamResponse:
    """Send ``stream`` as server-sent events, one write per batch. Whatever happens, the
    stream is closed, which stops the upstream when the client has gone."""
    out = web.StreamResponse(headers={**SSE_HEADERS, **headers})
    try:
        await out.prepare(http)
        await _pump(out, stream, encoder, encoder.start())
    except ConnectionResetError:
        pass  # the client left; closing the stream below stops the upstream too
    finally:
        await stream.aclose()
    return out


async def relay_when_open(
    http: web.Request, opening: Awaitable[LiveStream], headers: Callable[[], dict[str, str]],
    encoder: StreamEncoder, keepalive_s: float,
) -> web.StreamResponse:
    """Wait for ``opening`` (the engine's attempt loop, up to the first content). If it takes
    longer than ``keepalive_s``, commit the 200 headers and send an SSE comment every
    ``keepalive_s``, so that load balancers and proxies in front of the client, which close
    connections idle for 30–100 s, keep a stream whose model is thinking. The price: once the
    headers are out, a total failure can only be told as the dialect's error event."""
    task = asyncio.ensure_future(opening)
    out: web.StreamResponse | None = None
    stream: LiveStream | None = None
    try:
        done, _ = await asyncio.wait({task}, timeout=keepalive_s)
        if not done:
            out = web.StreamResponse(headers={**SSE_HEADERS, **headers()})
            await out.prepare(http)
            await out.write(KEEP_ALIVE)
            while not (await asyncio.wait({task}, timeout=keepalive_s))[0]:
                await out.write(KEEP_ALIVE)
        try:
            stream = task.result()
        except GatewayError as exc:
            if out is None:
                raise  # nothing sent yet: a plain HTTP error, as without keep-alives
            await out.write_eof(encoder.start() + encoder.fail(exc))
            return out
        if out is None:
            return await relay(http, stream, headers(), encoder)
        await _pump(out, stream, encoder, encoder.start())
        return out
    except ConnectionResetError:  # only writes raise it, so the headers are out
        return out or web.StreamResponse()  # the client left; the stream is closed below
    finally:
        if not task.done():
            task.cancel()  # the client left while the engine was still trying
        elif stream is None and not task.cancelled() and task.exception() is None:
            stream = task.result()  # opened in the very instant the client left
        if stream is not None:
            await stream.aclose()


async def _pump(out: web.StreamResponse, stream: LiveStream, encoder: StreamEncoder,
                pending: bytes) -> None:
    try:
        async for batch in stream:
            pending += encoder.feed(batch)
            if pending:
                await out.write(pending)
                pending = b""
    except GatewayError as exc:
        await out.write(pending + encoder.fail(exc))
        return
    await out.write_eof(pending + encoder.finish())
