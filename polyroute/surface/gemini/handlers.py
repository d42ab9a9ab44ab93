"""Gemini-dialect handlers: decode, call the engine, encode. Nothing else belongs here.

Google's URLs put the model and the method in one path segment
(``/v1beta/models/{model}:generateContent``), so one route takes every ``POST`` under
``/v1beta/models/`` and dispatches on what follows the last colon."""

from __future__ import annotations

from aiohttp import web

from polyroute.engine.catalog import ModelCatalog
from polyroute.engine.estimate import estimate_input_tokens
from polyroute.errors import GatewayError, NotFound
from polyroute.surface.exchange import ChatExchange
from polyroute.surface.gemini import decode, encode
from polyroute.surface.http import ErrorEncoder

_METHODS = ("generateContent", "streamGenerateContent", "countTokens")


def encode_error(exc: GatewayError) -> bytes:
    return encode.error_body(exc)


class GeminiHandlers:
    error_encoder: ErrorEncoder = staticmethod(encode_error)

    def __init__(self, exchange: ChatExchange, catalog: ModelCatalog) -> None:
        self._x = exchange
        self._catalog = catalog

    async def call(self, http: web.Request) -> web.StreamResponse:
        target = http.match_info["target"]
        model, colon, method = target.rpartition(":")
        if not colon or method not in _METHODS or not model:
            raise NotFound(f"Method not found: POST /v1beta/models/{target} (this gateway "
                           f"serves {', '.join(_METHODS)}).")
        principal = await self._x.principal(http)
        body = await self._x.body(http)
        name = decode.model_name(model)
        if method == "countTokens":
            counted = decode.count_request(body, name)
            return web.json_response({"totalTokens": estimate_input_tokens(counted)})
        request = decode.generate_request(body, name, stream=method == "streamGenerateContent")
        return await self._x.answer(http, request, principal, "chat", encode.response_body,
                                    lambda: encode.StreamEncoder(request.model))

    async def models(self, http: web.Request) -> web.Response:
        principal = await self._x.principal(http)
        models = [_model(entry.id) for entry in await self._catalog.entries()
                  if principal.may_use(entry.id)]
        return web.json_response({"models": models})

    async def model(self, http: web.Request) -> web.Response:
        principal = await self._x.principal(http)
        name = decode.model_name(http.match_info["name"])
        for entry in await self._catalog.entries():
            if entry.id == name and principal.may_use(name):
                return web.json_response(_model(name))
        raise NotFound(f"models/{name} is not found for API version v1beta, or is not "
                       "served by this gateway.")


def _model(model_id: str) -> dict[str, object]:
    return {"name": f"models/{model_id}", "displayName": model_id,
            "supportedGenerationMethods": list(_METHODS)}
