"""The real transport: one pooled aiohttp client session, aiohttp's and asyncio's exceptions
mapped into the gateway's error tree at this boundary (see :mod:`.transport`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

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

    @asynccontextmanager
    async def send(self, request: UpstreamRequest) -> AsyncIterator[UpstreamResponse]:
        key = (request.total_s, request.connect_s)
        timeout = self._timeouts.get(key)
        if timeout is None:
            timeout = self._timeouts[key] = aiohttp.ClientTimeout(
                total=request.total_s, sock_connect=request.connect_s)
        with upstream_errors(request.deployment):
            async with self._get_session().request(
                request.method, request.url, data=request.body, headers=request.headers,
                timeout=timeout,
            ) as response:
                # The caller reads the body inside this block, so its errors are mapped too.
                yield UpstreamResponse(response.status, response.headers,
                                       response.content.iter_any(), response.read)


@contextmanager
def upstream_errors(deployment: str) -> Iterator[None]:
    """Map aiohttp's and asyncio's exceptions to ``UpstreamError``s naming the deployment."""
    try:
        yield
    except UpstreamError:
        raise
    except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
        raise timed_out(deployment) from exc
    except aiohttp.ClientConnectorError as exc:
        raise connect_failed(deployment, str(exc.strerror or exc)) from exc
    except aiohttp.ClientPayloadError as exc:
        raise broke_off(deployment) from exc
    except (aiohttp.ClientError, OSError) as exc:
        reason = str(exc) or type(exc).__name__
        raise UpstreamConnectError(f"upstream connection failed: {reason}",
                                   deployment=deployment) from exc
