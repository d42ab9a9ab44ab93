"""The one HTTP client every adapter shares: pooled connections, and lower-library errors
mapped into the gateway's error tree at this boundary.

This is also the one place where upstream text becomes an error a client may read: a vendor's
error body, or an error event in its stream, goes through :meth:`Transport.request`. Vendors
do echo credentials ("Incorrect API key provided: sk-…"), so every ``UpstreamError`` leaving
here has the configured secrets, and the credentials this very request carried, redacted."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager

import aiohttp
from yarl import URL

from polyroute.errors import UpstreamConnectError, UpstreamError, UpstreamTimeout
from polyroute.redaction import Redactor

ErrorMapper = Callable[[int, bytes, Mapping[str, str], str], UpstreamError]
"""A protocol's reading of a non-200 answer: (status, body, headers, deployment) → error."""


_CREDENTIAL_HEADER = re.compile(r"authorization|api-?key|token|secret", re.IGNORECASE)
"""Headers whose values are credentials (as config/load.py's rule for secret headers), among
them a SigV4 request's ``X-Amz-Security-Token``."""


OutgoingHeaders = Callable[[], Mapping[str, str] | None]
"""Headers to add to the upstream request being sent now (the attempt's W3C ``traceparent``
when tracing is on), read from the caller's context; None: nothing to add."""


class Transport:
    def __init__(self, *, pool_size: int = 1000, keepalive_s: float = 30.0,
                 secrets: Iterable[str] = (), outgoing: OutgoingHeaders | None = None) -> None:
        self._redactor = Redactor(secrets)
        self._outgoing = outgoing
        self._pool_size = pool_size
        self._keepalive_s = keepalive_s
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[float | None, float], aiohttp.ClientTimeout] = {}
        self.on_headers: Callable[[str, Mapping[str, str]], None] | None = None
        """Told every upstream answer's headers (any status), with the deployment's name:
        the engine reads vendors' rate-limit headers from them."""

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

    def know_secrets(self, secrets: Iterable[str]) -> None:
        """Also redact these (a reloaded config's keys; the old ones stay known)."""
        self._redactor = self._redactor.with_secrets(secrets)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    @asynccontextmanager
    async def request(
        self,
        method: str,
        url: str | URL,
        *,
        body: bytes | None,
        headers: Mapping[str, str],
        connect_s: float,
        deployment: str,
        errors: ErrorMapper,
        total_s: float | None = None,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """A response with status 200; any other is read and raised as ``errors`` maps it.

        Only the connect timeout is enforced here; the engine bounds everything else (time
        to first token, stalls, the request's deadline) around the call. A ``URL`` built with
        ``encoded=True`` is sent byte for byte (a signed path must not be re-quoted)."""
        timeout = self._timeouts.get((total_s, connect_s))
        if timeout is None:
            timeout = aiohttp.ClientTimeout(total=total_s, sock_connect=connect_s)
            self._timeouts[(total_s, connect_s)] = timeout
        if self._outgoing is not None:
            extra = self._outgoing()
            if extra:
                headers = {**headers, **extra}
        try:
            with upstream_errors(deployment):
                async with self._get_session().request(
                    method, url, data=body, headers=headers, timeout=timeout
                ) as response:
                    if self.on_headers is not None:
                        self.on_headers(deployment, response.headers)
                    if response.status != 200:
                        raw = await response.read()
                        raise errors(response.status, raw, response.headers, deployment)
                    yield response  # the adapter reads the stream here: its errors pass too
        except UpstreamError as exc:
            self._redact(exc, headers)
            raise

    def _redact(self, exc: UpstreamError, headers: Mapping[str, str]) -> None:
        """Remove every secret from ``exc``'s message, in place (it keeps its class, status
        and cause). The request's own credential headers count, whatever config they came
        from; "Bearer <key>" counts as the key too."""
        sent = [value.rpartition(" ")[2] if " " in value else value
                for name, value in headers.items() if _CREDENTIAL_HEADER.search(name)]
        redactor = self._redactor.with_secrets(sent)
        if not redactor:
            return
        message = redactor.redact(exc.message)
        if message != exc.message:
            exc.message = message
            exc.args = (message,)
        if exc.param is not None:  # the vendor's own 'param' is its text too
            exc.param = redactor.redact(exc.param)

    async def fetch(
        self,
        method: str,
        url: str | URL,
        *,
        body: bytes | None,
        headers: Mapping[str, str],
        connect_s: float,
        deployment: str,
        errors: ErrorMapper,
        total_s: float | None = None,
    ) -> bytes:
        """The whole body of a 200 response (see :meth:`request`)."""
        async with self.request(method, url, body=body, headers=headers, connect_s=connect_s,
                                deployment=deployment, errors=errors,
                                total_s=total_s) as response:
            return await response.read()


@contextmanager
def upstream_errors(deployment: str) -> Iterator[None]:
    """Map aiohttp's and asyncio's exceptions to ``UpstreamError``s naming the deployment."""
    try:
        yield
    except UpstreamError:
        raise
    except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
        raise UpstreamTimeout("the upstream did not answer in time",
                              deployment=deployment) from exc
    except aiohttp.ClientConnectorError as exc:
        raise UpstreamConnectError(f"cannot connect to the upstream: {exc.strerror or exc}",
                                   deployment=deployment) from exc
    except aiohttp.ClientPayloadError as exc:
        raise UpstreamConnectError("the upstream connection broke during the response",
                                   deployment=deployment) from exc
    except (aiohttp.ClientError, OSError) as exc:
        reason = str(exc) or type(exc).__name__
        raise UpstreamConnectError(f"upstream connection failed: {reason}",
                                   deployment=deployment) from exc
