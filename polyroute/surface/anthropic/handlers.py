"""Anthropic-dialect handlers: decode, call the engine, encode. Nothing else belongs here."""

from __future__ import annotations

import time

from aiohttp import web

from polyroute.config.compiled import ServerSettings
from polyroute.engine.gateway import Gateway, estimate_input_tokens
from polyroute.errors import GatewayError
from polyroute.model.record import RequestRecord
from polyroute.policy.types import Policy
from polyroute.surface.anthropic import decode, encode
from polyroute.surface.http import (
    RECORD_KEY,
    ErrorEncoder,
    credentials,
    read_body,
    request_id,
    timeout_overrides,
    trace_headers,
)
from polyroute.surface.streaming import relay


def encode_error(exc: GatewayError) -> bytes:
    return encode.error_body(exc)


def _headers(record: RequestRecord) -> dict[str, str]:
    # Anthropic's SDKs expose `request-id` as the response's request id.
    return {**trace_headers(record), "request-id": record.request_id}


class AnthropicHandlers:
    error_encoder: ErrorEncoder = staticmethod(encode_error)

    def __init__(self, gateway: Gateway, server: ServerSettings, policy: Policy) -> None:
        self._gateway = gateway
        self._policy = policy
        self._max_body = server.max_body_bytes
        self._body_timeout = server.body_timeout_s

    async def messages(self, http: web.Request) -> web.StreamResponse:
        principal = await self._policy.authenticate(credentials(http))
        request = decode.messages_request(await self._body(http))
        record = RequestRecord(request_id(http), time.time(), "chat", request.model,
                               stream=request.stream)
        http[RECORD_KEY] = record
        if not request.stream:
            response = await self._gateway.chat(request, record, timeout_overrides(http),
                                                principal)
            return web.Response(body=encode.message_body(response),
                                content_type="application/json", headers=_headers(record))

        stream = await self._gateway.stream_chat(request, record, timeout_overrides(http),
                                                 principal)
        return await relay(http, stream, _headers(record), encode.StreamEncoder(request.model))

    async def count_tokens(self, http: web.Request) -> web.Response:
        """An estimate (about four characters a token, ~1k per image, the engine's admission
        estimate): polyroute runs no vendor's tokenizer, and the routed model may not even be
        Anthropic's."""
        await self._policy.authenticate(credentials(http))
        request = decode.messages_request(await self._body(http), count_only=True)
        return web.json_response({"input_tokens": estimate_input_tokens(request)})

    async def _body(self, http: web.Request) -> bytes:
        return await read_body(http, self._max_body, self._body_timeout)
