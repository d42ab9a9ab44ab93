"""Relaying a live stream to a client, the same for every dialect: only the encoder differs."""

from __future__ import annotations

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
        pending = encoder.start()
        try:
            async for batch in stream:
                pending += encoder.feed(batch)
                if pending:
                    await out.write(pending)
                    pending = b""
        except GatewayError as exc:
            await out.write(pending + encoder.fail(exc))
            return out
        await out.write_eof(pending + encoder.finish())
    except ConnectionResetError:
        pass  # the client left; closing the stream below stops the upstream too
    finally:
        await stream.aclose()
    return out
