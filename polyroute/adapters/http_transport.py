"""The real transport: one pooled aiohttp client session, aiohttp's and asyncio's exceptions
mapped into the gateway's error tree at this boundary (see :mod:`.transport`)."""

from __future__ import annotations

from types import TracebackType

import aiohttp

from polyroute.adapters.transport import (
    UpstreamRequest,
    UpstreamResponse,
    broke_off,
    connect_failed,
    timed_out,
)
from polyroute.errors import UpstreamConnectError, UpstreamError


class AiohttpTransport:
    def __init__(self, *, pool_size: int = 1000, keepalive_s: float = 30.0) -> None:
        self._pool_size = pool_size
        self._keepalive_s = keepalive_s
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[float | None, float], aiohttp.ClientTimeout] = {}

    def _get_session(self) -> aiohttp.ClientSession:
        # Created lazily: an aiohttp session must be born inside the running event loop.
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._pool_size, ttl_dns_cache=300, keepalive_timeout=self._keepalive_s
            )
            # No cookie jar: one session serves every client, so a cookie one upstream set
            # must never ride along on another client's request (and filtering costs time).
            self._session = aiohttp.ClientSession(
                connector=connector, auto_decompress=True, skip_auto_headers=("User-Agent",),
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    def send(self, request: UpstreamRequest) -> _Exchange:
        key = (request.total_s, request.connect_s)
        timeout = self._timeouts.get(key)
        if timeout is None:
            timeout = self._timeouts[key] = aiohttp.ClientTimeout(
                total=request.total_s, sock_connect=request.connect_s)
        return _Exchange(self._get_session(), request, timeout)


class _Exchange:
    """One request's response, open while the context is. A class, not a generator-based
    context manager: it runs once per upstream request, and a generator costs more."""

    __slots__ = ("_deployment", "_opening")

    def __init__(self, session: aiohttp.ClientSession, request: UpstreamRequest,
                 timeout: aiohttp.ClientTimeout) -> None:
        self._deployment = request.deployment
        self._opening = session.request(request.method, request.url, data=request.body,
                                        headers=request.headers, timeout=timeout)

    async def __aenter__(self) -> UpstreamResponse:
        try:
            response = await self._opening.__aenter__()
        except Exception as exc:
            error = mapped(exc, self._deployment)
            if error is None:
                raise
            raise error from exc
        return UpstreamResponse(response.status, response.headers, response.content.iter_any(),
                                response.read)

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        try:
            await self._opening.__aexit__(kind, exc, tb)  # releases the connection
        except Exception as failed:
            error = mapped(failed, self._deployment)
            if error is None:
                raise
            raise error from failed
        # The caller reads the body inside the context: its errors are mapped here too.
        if exc is not None:
            error = mapped(exc, self._deployment)
            if error is not None:
                raise error from exc


def mapped(exc: BaseException, deployment: str) -> UpstreamError | None:
    """The gateway's error for a lower library's exception; None for any other."""
    if isinstance(exc, UpstreamError):
        return None
    if isinstance(exc, (TimeoutError, aiohttp.ServerTimeoutError)):
        return timed_out(deployment)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return connect_failed(deployment, str(exc.strerror or exc))
    if isinstance(exc, aiohttp.ClientPayloadError):
        return broke_off(deployment)
    if isinstance(exc, (aiohttp.ClientError, OSError)):
        reason = str(exc) or type(exc).__name__
        return UpstreamConnectError(f"upstream connection failed: {reason}",
                                    deployment=deployment)
    return None
