"""Responses-API handlers: decode, call the engine, encode. Nothing else belongs here."""

from __future__ import annotations

import time

from aiohttp import web

from polyroute.config.compiled import ServerSettings
from polyroute.engine.gateway import Gateway
from polyroute.errors import GatewayError
from polyroute.model.record import RequestRecord
from polyroute.policy.types import Policy
from polyroute.surface.http import (
    RECORD_KEY,
    ErrorEncoder,
    credentials,
    read_body,
    request_id,
    timeout_overrides,
    trace_headers,
)
from polyroute.surface.responses import decode, encode
from polyroute.surface.streaming import relay


def encode_error(exc: GatewayError) -> bytes:
    return encode.error_body(exc)


class ResponsesHandlers:
    error_encoder: ErrorEncoder = staticmethod(encode_error)

    def __init__(self, gateway: Gateway, server: ServerSettings, policy: Policy) -> None:
        self._gateway = gateway
        self._policy = policy
        self._max_body = server.max_body_bytes
        self._body_timeout = server.body_timeout_s

    async def create(self, http: web.Request) -> web.StreamResponse:
        principal = await self._policy.authenticate(credentials(http))
        body = await read_body(http, self._max_body, self._body_timeout)
        request = decode.responses_request(body)
        record = RequestRecord(request_id(http), time.time(), "responses", request.model,
                               stream=request.stream)
        http[RECORD_KEY] = record
        if not request.stream:
            response = await self._gateway.chat(request, record, timeout_overrides(http),
                                                principal)
            return web.Response(body=encode.response_body(response),
                                content_type="application/json", headers=trace_headers(record))

        stream = await self._gateway.stream_chat(request, record, timeout_overrides(http),
                                                 principal)
        return await relay(http, stream, trace_headers(record),
                           encode.StreamEncoder(request.model))
