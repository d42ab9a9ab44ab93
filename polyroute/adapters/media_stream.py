"""An answer relayed as it arrives: speech's audio bytes (nothing parsed), or a streamed
transcript's SSE events (read by a :class:`Meter` as they pass, for the usage of the last)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from polyroute.adapters.transport import UpstreamResponse
from polyroute.model.media import Units
from polyroute.model.usage import Usage


class Meter(Protocol):
    """Watches an answer as it is relayed and says, once it has ended, what it is billed by.
    ``relay`` yields the body's pieces unchanged (perhaps regrouped: whole events) and raises
    an ``UpstreamError`` when the answer turns out broken (an error event, an early end)."""

    usage: Usage | None
    units: Units | None

    def relay(self, content_type: str, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]: ...


class MediaStream:
    """:meth:`open` waits for the status and headers (the upstream's error is raised there,
    before any byte, so the engine may still fail over); then ``pieces`` yields the body as
    it comes; :meth:`aclose` releases the connection and must always be called. ``usage`` and
    ``units`` are the meter's, once ``pieces`` is exhausted (None without a meter: the
    request's own measure bills it)."""

    def __init__(self, exchange: AbstractAsyncContextManager[UpstreamResponse] | None,
                 meter: Meter | None = None) -> None:
        self._exchange = exchange
        self._meter = meter
        self._closed = exchange is None
        self.content_type = "application/octet-stream"
        self.pieces: AsyncIterator[bytes] = _nothing()

    @classmethod
    def whole(cls, body: bytes, content_type: str, usage: Usage | None = None,
              units: Units | None = None) -> MediaStream:
        """An answer that came whole (a vendor that does not stream it) relayed the same way."""
        stream = cls(None, _Known(usage, units))
        stream.content_type = content_type
        stream.pieces = _once(body)
        return stream

    @property
    def usage(self) -> Usage | None:
        return self._meter.usage if self._meter is not None else None

    @property
    def units(self) -> Units | None:
        return self._meter.units if self._meter is not None else None

    async def open(self) -> None:
        if self._exchange is None:
            return
        response = await self._exchange.__aenter__()
        self.content_type = response.headers.get("Content-Type", self.content_type)
        body = response.body
        if self._meter is not None:
            body = self._meter.relay(self.content_type, body)
        self.pieces = self._relay(body)

    async def _relay(self, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        assert self._exchange is not None
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
        if not self._closed and self._exchange is not None:
            self._closed = True
            await self._exchange.__aexit__(None, None, None)


class _Known:
    """The measure of an answer read whole before it is relayed."""

    def __init__(self, usage: Usage | None, units: Units | None) -> None:
        self.usage = usage
        self.units = units

    def relay(self, content_type: str, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        return body


async def _once(body: bytes) -> AsyncIterator[bytes]:
    yield body


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield b""  # an async generator that yields nothing
