"""What every adapter sends its requests through: any :class:`~.transport.Transport`, with a
protocol's reading of a non-200 answer applied and secrets redacted.

This is the one place where upstream text becomes an error a client may read: a vendor's error
body, or an error event in its stream, goes through :meth:`UpstreamClient.request`. Vendors do
echo credentials ("Incorrect API key provided: sk-…"), so every ``UpstreamError`` leaving here
has the configured secrets, and the credentials this very request carried, redacted."""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, Callable, Iterable, Mapping
from types import TracebackType

from yarl import URL

from polyroute.adapters.transport import Transport, UpstreamRequest, UpstreamResponse
from polyroute.errors import UpstreamError
from polyroute.redaction import Redactor

ErrorMapper = Callable[[int, bytes, Mapping[str, str], str], UpstreamError]
"""A protocol's reading of a non-200 answer: (status, body, headers, deployment) → error."""

OutgoingTraceparent = Callable[[], str | None]
"""The W3C ``traceparent`` to send with the upstream request being sent now (the running
attempt's, when tracing is on), read from the caller's context; None: nothing to add. A
string, not a mapping of headers: the one header is added without building a dict to merge."""

HeaderWatcher = Callable[[str, Mapping[str, str]], None]
"""Told every upstream answer's headers (any status) with the deployment's name: the engine
reads vendors' rate-limit headers from them."""


_CREDENTIAL_HEADER = re.compile(r"authorization|api-?key|token|secret", re.IGNORECASE)
"""Headers whose values are credentials (as config/load.py's rule for secret headers), among
them a SigV4 request's ``X-Amz-Security-Token``."""


class UpstreamClient:
    def __init__(self, transport: Transport, *, secrets: Iterable[str] = (),
                 outgoing: OutgoingTraceparent | None = None) -> None:
        self.transport = transport
        self._redactor = Redactor(secrets)
        self._outgoing = outgoing
        self.on_headers: HeaderWatcher | None = None

    def know_secrets(self, secrets: Iterable[str]) -> None:
        """Also redact these (a reloaded config's keys; the old ones stay known)."""
        self._redactor = self._redactor.with_secrets(secrets)

    def _with_outgoing(self, headers: Mapping[str, str]) -> Mapping[str, str]:
        if self._outgoing is not None:
            traceparent = self._outgoing()
            if traceparent:
                return {**headers, "traceparent": traceparent}
        return headers

    async def aclose(self) -> None:
        await self.transport.aclose()

    def request(
        self,
        method: str,
        url: str | URL,
        *,
        body: bytes | AsyncIterable[bytes] | None,
        headers: Mapping[str, str],
        connect_s: float,
        deployment: str,
        errors: ErrorMapper,
        total_s: float | None = None,
    ) -> _Exchange:
        """A response with status 200, open while the context is; any other status is read
        and raised as ``errors`` maps it. Errors raised while the caller reads the response
        are redacted too."""
        headers = self._with_outgoing(headers)
        sent = UpstreamRequest(method, url, body, headers, connect_s, deployment, total_s)
        return _Exchange(self, sent, errors)

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
        headers = self._with_outgoing(headers)
        sent = UpstreamRequest(method, url, body, headers, connect_s, deployment, total_s)
        try:
            async with self.transport.send(sent) as response:
                if self.on_headers is not None:
                    self.on_headers(deployment, response.headers)
                if response.status != 200:
                    raw = await response.read()
                    raise errors(response.status, raw, response.headers, deployment)
                return await response.read()
        except UpstreamError as exc:
            self.redact(exc, headers)
            raise

    def redact(self, exc: UpstreamError, headers: Mapping[str, str]) -> None:
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


class _Exchange:
    """:meth:`UpstreamClient.request`'s context. A class, not a generator-based context
    manager: it runs once per upstream request, and a generator costs more."""

    __slots__ = ("_client", "_errors", "_opening", "_request")

    def __init__(self, client: UpstreamClient, request: UpstreamRequest,
                 errors: ErrorMapper) -> None:
        self._client = client
        self._request = request
        self._errors = errors
        self._opening = client.transport.send(request)

    async def __aenter__(self) -> UpstreamResponse:
        request = self._request
        try:
            response = await self._opening.__aenter__()
            try:
                watcher = self._client.on_headers
                if watcher is not None:
                    watcher(request.deployment, response.headers)
                if response.status != 200:
                    raw = await response.read()
                    raise self._errors(response.status, raw, response.headers,
                                       request.deployment)
            except BaseException as exc:
                await self._opening.__aexit__(type(exc), exc, exc.__traceback__)
                raise
        except UpstreamError as exc:
            self._client.redact(exc, request.headers)
            raise
        return response

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        try:
            await self._opening.__aexit__(kind, exc, tb)
        except UpstreamError as error:  # a lower library's error, mapped by the transport
            self._client.redact(error, self._request.headers)
            raise
        if isinstance(exc, UpstreamError):  # the caller's own, e.g. an error event
            self._client.redact(exc, self._request.headers)
