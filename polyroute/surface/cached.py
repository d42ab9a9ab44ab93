"""The response cache at the HTTP edge: the client's Cache-Control, a hit told in the client's
dialect (whole, or replayed as its stream), and a streamed miss recorded to be stored."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from polyroute.cache.answer import Assembler
from polyroute.cache.answer import replay as replay_chunks
from polyroute.cache.control import CacheControl, parse
from polyroute.errors import GatewayError
from polyroute.model.chat import ChatChunk, ChatResponse
from polyroute.surface.streaming import SSE_HEADERS, StreamEncoder


def cache_control(http: web.Request) -> CacheControl:
    return parse(http.headers.get("Cache-Control"), http.headers.get("x-polyroute-cache"))


async def replay(
    http: web.Request, response: ChatResponse, stream: bool, headers: dict[str, str],
    encode_response: Callable[[ChatResponse], bytes], encoder: StreamEncoder,
) -> web.StreamResponse:
    """A stored answer, as the client asked for it: one body, or the dialect's whole stream
    (usage included) in one write."""
    if not stream:
        return web.Response(body=encode_response(response), content_type="application/json",
                            headers=headers)
    body = encoder.start() + encoder.feed(replay_chunks(response)) + encoder.finish()
    return web.Response(body=body, headers={**SSE_HEADERS, **headers})


class Recording:
    """A dialect's stream encoder that also rebuilds the answer it encodes, and hands it to
    ``keep`` when the stream ends normally (a stream that failed is never stored)."""

    def __init__(self, encoder: StreamEncoder, keep: Callable[[ChatResponse], None]) -> None:
        self._encoder = encoder
        self._keep = keep
        self._answer = Assembler()

    def start(self) -> bytes:
        return self._encoder.start()

    def feed(self, batch: list[ChatChunk]) -> bytes:
        self._answer.feed(batch)
        return self._encoder.feed(batch)

    def finish(self) -> bytes:
        self._keep(self._answer.response())
        return self._encoder.finish()

    def fail(self, exc: GatewayError) -> bytes:
        return self._encoder.fail(exc)
