"""The seam between adapters and the network: a two-method transport, as httpx's
``AsyncBaseTransport`` is.

A transport sends one :class:`UpstreamRequest` and hands back an :class:`UpstreamResponse`:
status, headers and the body as an async iterator of bytes, read inside the ``async with``.
It knows nothing of protocols, status codes or secrets (that is :mod:`.client`'s work), and it
raises nothing but the gateway's own connection errors (:func:`connect_failed`,
:func:`broke_off`, :func:`timed_out`), from ``send`` or from reading the body. Two implement it:
:class:`~polyroute.adapters.http_transport.AiohttpTransport` (real sockets) and
:class:`~polyroute.adapters.memory_transport.MemoryTransport` (scripted answers, for tests that
need no sockets).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from yarl import URL

from polyroute.errors import UpstreamConnectError, UpstreamTimeout


@dataclass(slots=True)
class UpstreamRequest:
    """Not frozen: one is built per upstream request, and a frozen one costs more to build."""

    method: str
    url: str | URL
    """A ``URL`` built with ``encoded=True`` is sent byte for byte (a signed path must not be
    re-quoted)."""
    body: bytes | AsyncIterable[bytes] | None
    """An iterable is sent as it yields (a multipart upload read from disk): one request's,
    never reused, with its ``Content-Length`` in ``headers``."""
    headers: Mapping[str, str]
    connect_s: float
    """The only timeout a transport enforces by itself: the engine bounds everything else
    (first token, stalls, the request's deadline) around the call."""
    deployment: str
    """Named in every error raised for this request."""
    total_s: float | None = None


class UpstreamResponse:
    __slots__ = ("_read", "body", "headers", "status")

    def __init__(self, status: int, headers: Mapping[str, str], body: AsyncIterator[bytes],
                 read: Callable[[], Awaitable[bytes]] | None = None) -> None:
        self.status = status
        self.headers = headers
        """Case-insensitive, as HTTP's are."""
        self.body = body
        """The body's bytes as they arrive (a read's worth at a time, split anywhere)."""
        self._read = read

    async def read(self) -> bytes:
        """The whole body."""
        if self._read is not None:
            return await self._read()
        return b"".join([piece async for piece in self.body])


class Transport(Protocol):
    def send(self, request: UpstreamRequest) -> AbstractAsyncContextManager[UpstreamResponse]:
        """The response to ``request``, open while the context is: leaving it releases the
        connection (that is how a client's disconnect cancels the upstream request)."""
        ...

    async def aclose(self) -> None: ...


def connect_failed(deployment: str, reason: str) -> UpstreamConnectError:
    return UpstreamConnectError(f"cannot connect to the upstream: {reason}",
                                deployment=deployment)


def broke_off(deployment: str) -> UpstreamConnectError:
    return UpstreamConnectError("the upstream connection broke during the response",
                                deployment=deployment)


def timed_out(deployment: str) -> UpstreamTimeout:
    return UpstreamTimeout("the upstream did not answer in time", deployment=deployment)
