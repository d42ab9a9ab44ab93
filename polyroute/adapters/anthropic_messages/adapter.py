"""Moves Anthropic-protocol bytes; all meaning lives in :mod:`.translate` and :mod:`.stream`.

The provider's ``base_url`` is the API root (``https://api.anthropic.com``, as in Anthropic's
SDKs and ``ANTHROPIC_BASE_URL``); paths such as ``/v1/messages`` are appended here.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from types import MappingProxyType
from urllib.parse import quote

from polyroute.adapters.anthropic_messages import passthrough, translate
from polyroute.adapters.anthropic_messages.errors import error_from_response
from polyroute.adapters.anthropic_messages.spec import SPEC
from polyroute.adapters.anthropic_messages.stream import StreamTranslator
from polyroute.adapters.anthropic_messages.wire import VERSION
from polyroute.adapters.client import UpstreamClient
from polyroute.adapters.passthrough import native_for
from polyroute.adapters.sse import sse_data
from polyroute.adapters.stream_driver import drive
from polyroute.errors import UpstreamRejected
from polyroute.model.chat import ChatChunk, ChatRequest, ChatResponse
from polyroute.model.embeddings import EmbeddingRequest, EmbeddingResponse
from polyroute.model.upstream import Deployment, Endpoint

MESSAGES_PATH = "/v1/messages"
_MODELS_PATH = "/v1/models?limit=1000"
_LIST_MODELS_TIMEOUT_S = 10.0
_MAX_MODEL_PAGES = 10


class AnthropicMessagesAdapter:
    def __init__(self, transport: UpstreamClient) -> None:
        self._transport = transport
        self._headers: dict[tuple[str, str], Mapping[str, str]] = {}

    async def chat(
        self, request: ChatRequest, deployment: Deployment, *, connect_s: float
    ) -> ChatResponse:
        endpoint, name = deployment.endpoint, deployment.name
        native = native_for(request, SPEC.name)
        if native is not None:  # the client speaks Anthropic too: its body, its answer
            raw = await self._transport.fetch(
                "POST", endpoint.base_url + MESSAGES_PATH,
                body=passthrough.body(request, native, deployment.model,
                                      endpoint.quirks.drop_params),
                headers=passthrough.headers(self._headers_for(endpoint), native),
                connect_s=connect_s, deployment=name, errors=error_from_response)
            return passthrough.parse_response(raw, name, int(time.time()))
        body = translate.chat_body(request, deployment.model, endpoint.quirks, name)
        raw = await self._send(endpoint, "POST", MESSAGES_PATH, body, name, connect_s)
        return translate.parse_response(raw, name, int(time.time()))

    async def stream_chat(
        self, request: ChatRequest, deployment: Deployment, *, connect_s: float
    ) -> AsyncIterator[list[ChatChunk]]:
        endpoint, name = deployment.endpoint, deployment.name
        native = native_for(request, SPEC.name)
        if native is not None:  # the client speaks Anthropic too: its body, its events
            async with self._transport.request(
                "POST", endpoint.base_url + MESSAGES_PATH,
                body=passthrough.body(request, native, deployment.model,
                                      endpoint.quirks.drop_params),
                headers=passthrough.headers(self._headers_for(endpoint), native),
                connect_s=connect_s, deployment=name, errors=error_from_response,
            ) as response, aclosing(passthrough.stream(
                response.body, name, int(time.time()))) as batches:
                async for relayed in batches:
                    yield relayed
            return
        body = translate.chat_body(request, deployment.model, endpoint.quirks, name)
        async with self._transport.request(
            "POST", endpoint.base_url + MESSAGES_PATH, body=body,
            headers=self._headers_for(endpoint), connect_s=connect_s, deployment=name,
            errors=error_from_response,
        ) as response:
            translator = StreamTranslator(name, int(time.time()))
            async for batch in drive(sse_data(response.body), translator, name):
                yield batch

    async def embed(
        self, request: EmbeddingRequest, deployment: Deployment, *, connect_s: float
    ) -> EmbeddingResponse:
        raise UpstreamRejected(
            f"Anthropic has no embeddings API: deployment '{deployment.name}' cannot serve "
            "embeddings. Route embedding models to another provider.",
            status=400, code="unsupported_endpoint", deployment=deployment.name)

    async def list_models(self, endpoint: Endpoint) -> list[str]:
        ids: list[str] = []
        path = _MODELS_PATH
        for _ in range(_MAX_MODEL_PAGES):
            raw = await self._send(endpoint, "GET", path, None, endpoint.vendor,
                                   _LIST_MODELS_TIMEOUT_S, total_s=_LIST_MODELS_TIMEOUT_S)
            page, after = translate.parse_model_list(raw, endpoint.vendor)
            ids += page
            if after is None:
                break
            path = f"{_MODELS_PATH}&after_id={quote(after)}"
        return ids

    async def _send(
        self, endpoint: Endpoint, method: str, path: str, body: bytes | None, name: str,
        connect_s: float, total_s: float | None = None,
    ) -> bytes:
        return await self._transport.fetch(
            method, endpoint.base_url + path, body=body, headers=self._headers_for(endpoint),
            connect_s=connect_s, deployment=name, errors=error_from_response, total_s=total_s)

    def _headers_for(self, endpoint: Endpoint) -> Mapping[str, str]:
        """The endpoint's headers plus ``anthropic-version``, which every request needs; a
        provider may pin another version (or add ``anthropic-beta``) in its ``headers``."""
        key = (endpoint.vendor, endpoint.base_url)
        headers = self._headers.get(key)
        if headers is None:
            merged = dict(endpoint.request_headers)
            if not any(h.lower() == "anthropic-version" for h in merged):
                merged["anthropic-version"] = VERSION
            headers = self._headers[key] = MappingProxyType(merged)
        return headers

