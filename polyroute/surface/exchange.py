"""What every dialect's chat handler does around its own decoding and encoding: authenticate,
read the body, open the request record, call the engine, answer whole or as a stream."""

from __future__ import annotations

import time
from collections.abc import Callable

from aiohttp import web

from polyroute.config.compiled import ServerSettings
from polyroute.engine.gateway import Gateway
from polyroute.engine.response_cache import NOT_CACHED
from polyroute.model.chat import ChatRequest, ChatResponse
from polyroute.model.features import request_features
from polyroute.model.record import RequestRecord
from polyroute.policy.types import Policy, Principal
from polyroute.surface.cached import Recording, cache_control, replay
from polyroute.surface.http import (
    RECORD_KEY,
    client_request_id,
    credentials,
    read_body,
    request_id,
    timeout_overrides,
    trace_headers,
)
from polyroute.surface.streaming import StreamEncoder, relay, relay_when_open

Headers = Callable[[RequestRecord], dict[str, str]]


class ChatExchange:
    def __init__(self, gateway: Gateway, policy: Policy, server: ServerSettings) -> None:
        self.gateway = gateway
        self._policy = policy
        self._max_body = server.max_body_bytes
        self._body_timeout = server.body_timeout_s
        self._keepalive_s = server.stream_keepalive_s

    async def principal(self, http: web.Request) -> Principal:
        return await self._policy.authenticate(credentials(http))

    async def authenticate(self, key: str | None) -> Principal:
        """For a dialect whose clients send the key their own way (Bedrock's SigV4)."""
        return await self._policy.authenticate(key)

    async def body(self, http: web.Request) -> bytes:
        return await read_body(http, self._max_body, self._body_timeout)

    def record(self, http: web.Request, endpoint: str, model: str,
               stream: bool = False) -> RequestRecord:
        record = RequestRecord(request_id(http), time.time(), endpoint, model, stream=stream,
                               client_request_id=client_request_id(http),
                               traceparent=http.headers.get("traceparent"))
        http[RECORD_KEY] = record  # so an error response still carries the attempt chain
        return record

    async def answer(
        self,
        http: web.Request,
        request: ChatRequest,
        principal: Principal,
        endpoint: str,
        encode_response: Callable[[ChatResponse], bytes],
        encoder: Callable[[], StreamEncoder],
        headers: Headers = trace_headers,
        keepalive: bool = True,
    ) -> web.StreamResponse:
        record = self.record(http, endpoint, request.model, request.stream)
        record.features = request_features(request)
        overrides = timeout_overrides(http)
        lookup = NOT_CACHED
        if self.gateway.cache is not None:  # the default has none: nothing parsed, no await
            lookup = await self.gateway.cached(request, record, principal, cache_control(http))
        if lookup.hit is not None:
            return await replay(http, lookup.hit.response, request.stream, headers(record),
                                encode_response, encoder())
        cache = self.gateway.cache if lookup.stores else None
        if request.stream and self.gateway.cascades(request.model):
            # A cascade judges whole answers: the client's stream is the final one, sent at
            # once when it is chosen (docs/routing.md#cascade).
            response = await self.gateway.chat(request, record, overrides, principal)
            if cache is not None:
                cache.keep(lookup, response, record)
            return await replay(http, response, True, headers(record), encode_response,
                                encoder())
        if not request.stream:
            response = await self.gateway.chat(request, record, overrides, principal)
            if cache is not None:
                cache.keep(lookup, response, record)
            return web.Response(body=encode_response(response), content_type="application/json",
                                headers=headers(record))
        opening = self.gateway.stream_chat(request, record, overrides, principal)
        make = encoder
        if cache is not None:
            def make() -> StreamEncoder:
                return Recording(encoder(), lambda answer: cache.keep(lookup, answer, record))
        if self._keepalive_s <= 0 or not keepalive:
            return await relay(http, await opening, headers(record), make())
        return await relay_when_open(http, opening, lambda: headers(record), make(),
                                     self._keepalive_s)
