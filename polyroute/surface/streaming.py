"""Relaying a live stream to a client, the same for every dialect: only the encoder differs."""

from __future__ import annotations

import asyncio
import contextlib
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
    return await _send(web.StreamResponse(headers={**SSE_HEADERS, **headers}), stream,
                       encoder, prepare_for=http)


async def relay_when_open(
    http: web.Request, opening: Awaitable[LiveStream], headers: Callable[[], dict[str, str]],
    encoder: StreamEncoder, keepalive_s: float,
) -> web.StreamResponse:
    """Wait for ``opening`` (the engine's attempt loop, up to the first content). If it takes
    longer than ``keepalive_s``, commit the 200 headers and send an SSE comment every
    ``keepalive_s``, so that load balancers and proxies in front of the client, which close
    connections idle for 30–100 s, keep a stream whose model is thinking. The price: once the
    headers are out, a total failure can only be told as the dialect's error event."""
    keepalive = _KeepAlive(http, headers, keepalive_s)
    try:
        stream = await opening
    except GatewayError as exc:
        out = await keepalive.stop()
        if out is None:
            raise  # nothing sent yet: a plain HTTP error, as without keep-alives
        with contextlib.suppress(ConnectionResetError):
            await out.write_eof(encoder.start() + encoder.fail(exc))
        return out
    except BaseException:
        await keepalive.stop()  # the client left while the engine was still trying
        raise
    out = await keepalive.stop()
    if out is None:
        return await relay(http, stream, headers(), encoder)
    return await _send(out, stream, encoder)


async def _send(
    out: web.StreamResponse, stream: LiveStream, encoder: StreamEncoder,
    prepare_for: web.Request | None = None,
) -> web.StreamResponse:
    """Pump ``stream`` into ``out`` (sending its headers first when ``prepare_for`` is given),
    and close the stream whatever happens."""
    try:
        if prepare_for is not None:
            await out.prepare(prepare_for)
        await _pump(out, stream, encoder, encoder.start())
    except ConnectionResetError:
        pass  # the client left; closing the stream below stops the upstream too
    finally:
        await stream.aclose()
    return out


class _KeepAlive:
    """Armed with a timer, which costs next to nothing when the first token comes in time;
    when it fires, the 200 headers and a comment go out, then a comment every ``every_s``
    until :meth:`stop`, which returns the response they started (or None)."""

    def __init__(self, http: web.Request, headers: Callable[[], dict[str, str]],
                 every_s: float) -> None:
        self._http, self._headers, self._every_s = http, headers, every_s
        self._stopped: asyncio.Event | None = None
        """Made when the timer fires: most streams open in time and never need it."""
        self._task: asyncio.Task[web.StreamResponse] | None = None
        self._timer = asyncio.get_running_loop().call_later(every_s, self._start)

    def _start(self) -> None:
        self._stopped = asyncio.Event()
        self._task = asyncio.ensure_future(self._beat(self._stopped))

    async def _beat(self, stopped: asyncio.Event) -> web.StreamResponse:
        out = web.StreamResponse(headers={**SSE_HEADERS, **self._headers()})
        with contextlib.suppress(ConnectionResetError):  # the client left: the handler ends
            await out.prepare(self._http)
            while not stopped.is_set():
                await out.write(KEEP_ALIVE)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopped.wait(), self._every_s)
        return out

    async def stop(self) -> web.StreamResponse | None:
        self._timer.cancel()
        if self._task is None or self._stopped is None:
            return None
        self._stopped.set()
        return await self._task  # a write in progress finishes first: the stream stays whole


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
