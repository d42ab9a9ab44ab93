"""OpenAI-dialect handlers: decode, call the engine, encode. Nothing else belongs here."""

from __future__ import annotations

from aiohttp import web

from polyroute.engine.catalog import ModelCatalog
from polyroute.engine.tool_loop import ToolLoop, wants_mcp
from polyroute.errors import GatewayError
from polyroute.model.chat import ChatRequest
from polyroute.model.features import request_features
from polyroute.model.record import RequestRecord
from polyroute.policy.types import Principal
from polyroute.surface.cached import replay
from polyroute.surface.exchange import ChatExchange
from polyroute.surface.http import RECORD_KEY, ErrorEncoder, timeout_overrides, trace_headers
from polyroute.surface.openai import decode, encode


def encode_error(exc: GatewayError) -> bytes:
    return encode.error_body(exc)


class OpenAIHandlers:
    error_encoder: ErrorEncoder = staticmethod(encode_error)

    def __init__(self, exchange: ChatExchange, catalog: ModelCatalog,
                 tools: ToolLoop | None = None) -> None:
        self._x = exchange
        self._catalog = catalog
        self._tools = tools

    async def chat_completions(self, http: web.Request) -> web.StreamResponse:
        principal = await self._x.principal(http)
        request = decode.chat_request(await self._x.body(http))
        if self._tools is not None and wants_mcp(request):
            return await self._with_mcp_tools(http, request, principal, self._tools)
        return await self._x.answer(http, request, principal, "chat", encode.response_body,
                                    lambda: encode.ChunkEncoder(request.wants_usage))

    async def _with_mcp_tools(self, http: web.Request, request: ChatRequest,
                              principal: Principal, tools: ToolLoop) -> web.StreamResponse:
        """The gateway runs the MCP tools the model calls (engine/tool_loop.py); a stream
        is the final answer told as one (the rounds before it are not streamed)."""
        stream, usage = request.stream, request.wants_usage

        def opened() -> RequestRecord:
            record = self._x.record(http, "chat", request.model)
            record.features = request_features(request)
            return record

        response = await tools.chat(request, opened(), principal, opened,
                                    timeout_overrides(http))
        record = http[RECORD_KEY]
        return await replay(http, response, stream, trace_headers(record),
                            encode.response_body, encode.ChunkEncoder(usage))

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
