"""OpenAI-dialect handlers: decode, call the engine, encode. Nothing else belongs here."""

from __future__ import annotations

from aiohttp import web

from polyroute.engine.catalog import ModelCatalog
from polyroute.errors import GatewayError
from polyroute.surface.exchange import ChatExchange
from polyroute.surface.http import ErrorEncoder, timeout_overrides, trace_headers
from polyroute.surface.openai import decode, encode


def encode_error(exc: GatewayError) -> bytes:
    return encode.error_body(exc)


class OpenAIHandlers:
    error_encoder: ErrorEncoder = staticmethod(encode_error)

    def __init__(self, exchange: ChatExchange, catalog: ModelCatalog) -> None:
        self._x = exchange
        self._catalog = catalog

    async def chat_completions(self, http: web.Request) -> web.StreamResponse:
        principal = await self._x.principal(http)
        request = decode.chat_request(await self._x.body(http))
        return await self._x.answer(http, request, principal, "chat", encode.response_body,
                                    lambda: encode.ChunkEncoder(request.wants_usage))

    async def embeddings(self, http: web.Request) -> web.Response:
        principal = await self._x.principal(http)
        request = decode.embedding_request(await self._x.body(http))
        record = self._x.record(http, "embeddings", request.model)
        response = await self._x.gateway.embed(request, record, timeout_overrides(http),
                                               principal)
        return web.Response(body=encode.embeddings_body(response),
                            content_type="application/json", headers=trace_headers(record))

    async def models(self, http: web.Request) -> web.Response:
        principal = await self._x.principal(http)
        data = [
            {"id": entry.id, "object": "model", "created": 0, "owned_by": entry.owned_by}
            for entry in await self._catalog.entries() if principal.may_use(entry.id)
        ]
        return web.json_response({"object": "list", "data": data})
