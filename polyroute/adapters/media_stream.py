"""An answer relayed as it arrives (speech): bytes, not events, so nothing is parsed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager

from polyroute.adapters.transport import UpstreamResponse


class MediaStream:
    """:meth:`open` waits for the status and headers (the upstream's error is raised there,
    before any byte, so the engine may still fail over); then ``pieces`` yields the body as
    it comes; :meth:`aclose` releases the connection and must always be called."""

    def __init__(self, exchange: AbstractAsyncContextManager[UpstreamResponse]) -> None:
        self._exchange = exchange
        self._closed = False
        self.content_type = "application/octet-stream"
        self.pieces: AsyncIterator[bytes] = _nothing()

    async def open(self) -> None:
        response = await self._exchange.__aenter__()
        self.content_type = response.headers.get("Content-Type", self.content_type)
        self.pieces = self._relay(response.body)

    async def _relay(self, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        try:
            async for piece in body:
                if piece:
                    yield piece
        except Exception as exc:
            # The exchange maps a lower library's error (a connection cut) into the gateway's.
            self._closed = True
            await self._exchange.__aexit__(type(exc), exc, exc.__traceback__)
            raise

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._exchange.__aexit__(None, None, None)


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield b""  # an async generator that yields nothing
