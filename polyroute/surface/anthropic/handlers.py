"""Anthropic-dialect handlers: decode, call the engine, encode. Nothing else belongs here."""

from __future__ import annotations

from aiohttp import web

from polyroute.engine.estimate import estimate_input_tokens
from polyroute.errors import GatewayError
from polyroute.model.record import RequestRecord
from polyroute.surface.anthropic import decode, encode
from polyroute.surface.exchange import ChatExchange
from polyroute.surface.http import ErrorEncoder, trace_headers


def encode_error(exc: GatewayError) -> bytes:
    return encode.error_body(exc)


def _headers(record: RequestRecord) -> dict[str, str]:
    # Anthropic's SDKs expose `request-id` as the response's request id.
    return {**trace_headers(record), "request-id": record.request_id}


class AnthropicHandlers:
    error_encoder: ErrorEncoder = staticmethod(encode_error)

    def __init__(self, exchange: ChatExchange) -> None:
        self._x = exchange

    async def messages(self, http: web.Request) -> web.StreamResponse:
        principal = await self._x.principal(http)
        request = decode.messages_request(await self._x.body(http), headers={
            name: value for name in decode.FORWARDED_HEADERS
            if (value := http.headers.get(name))})
        return await self._x.answer(http, request, principal, "chat", encode.message_body,
                                    lambda: encode.StreamEncoder(request.model), _headers)

    async def count_tokens(self, http: web.Request) -> web.Response:
        """An estimate (about four characters a token, ~1k per image, the engine's admission
        estimate): polyroute runs no vendor's tokenizer, and the routed model may not even be
        Anthropic's."""
        await self._x.principal(http)
        request = decode.messages_request(await self._x.body(http), count_only=True)
        return web.json_response({"input_tokens": estimate_input_tokens(request)})
