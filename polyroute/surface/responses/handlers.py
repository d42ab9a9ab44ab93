"""Responses-API handlers: decode, call the engine, encode. Nothing else belongs here."""

from __future__ import annotations

from aiohttp import web

from polyroute.errors import GatewayError
from polyroute.surface.exchange import ChatExchange
from polyroute.surface.http import ErrorEncoder
from polyroute.surface.responses import decode, encode
from polyroute.surface.responses.relay import StreamRelay


def encode_error(exc: GatewayError) -> bytes:
    return encode.error_body(exc)


class ResponsesHandlers:
    error_encoder: ErrorEncoder = staticmethod(encode_error)

    def __init__(self, exchange: ChatExchange) -> None:
        self._x = exchange

    async def create(self, http: web.Request) -> web.StreamResponse:
        principal = await self._x.principal(http)
        request = decode.responses_request(await self._x.body(http))
        return await self._x.answer(http, request, principal, "responses",
                                    encode.response_body,
                                    lambda: StreamRelay(request.model))
