"""Moves Azure OpenAI bytes: OpenAI's translation (:mod:`..openai_chat.translate`) to Azure's
URLs (:mod:`.urls`). The key goes in ``api-key`` (``auth: api-key``) or, for a Microsoft Entra
token, ``Authorization: Bearer`` (``auth: bearer``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from polyroute.adapters.azure_openai import urls
from polyroute.adapters.openai_chat import translate
from polyroute.adapters.sse import sse_data
from polyroute.adapters.transport import Transport, upstream_errors
from polyroute.config import Deployment, Endpoint
from polyroute.errors import UpstreamProtocolError
from polyroute.model.chat import ChatChunk, ChatRequest, ChatResponse
from polyroute.model.embeddings import EmbeddingRequest, EmbeddingResponse

_DONE = b"[DONE]"


class AzureOpenAIAdapter:
    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    async def chat(
        self, request: ChatRequest, deployment: Deployment, *, connect_s: float
    ) -> ChatResponse:
        endpoint = deployment.endpoint
        body = translate.chat_body(request, deployment.model, endpoint.quirks)
        raw = await self._send(endpoint, urls.url(endpoint, deployment.model, "/chat/completions"),
                               body, deployment.name, connect_s)
        return translate.parse_response(raw, deployment.name)

    async def embed(
        self, request: EmbeddingRequest, deployment: Deployment, *, connect_s: float
    ) -> EmbeddingResponse:
        endpoint = deployment.endpoint
        body = translate.embeddings_body(request, deployment.model, endpoint.quirks)
        raw = await self._send(endpoint, urls.url(endpoint, deployment.model, "/embeddings"),
                               body, deployment.name, connect_s)
        return translate.parse_embeddings(raw, deployment.name)

    async def list_models(self, endpoint: Endpoint) -> list[str]:
        # Azure's data plane lists base models, not the deployments requests are routed by;
        # 'azure/<deployment>' works for any deployment name without a listing.
        return []

    async def stream_chat(
        self, request: ChatRequest, deployment: Deployment, *, connect_s: float
    ) -> AsyncIterator[list[ChatChunk]]:
        endpoint, name = deployment.endpoint, deployment.name
        body = translate.chat_body(request, deployment.model, endpoint.quirks)
        async with self._transport.request(
            "POST", urls.url(endpoint, deployment.model, "/chat/completions"), body=body,
            headers=endpoint.request_headers, connect_s=connect_s, deployment=name,
        ) as response:
            if response.status != 200:
                raw = await response.read()
                raise translate.error_from_response(response.status, raw, response.headers, name)
            finished = False
            with upstream_errors(name):
                async for events in sse_data(response.content.iter_any()):
                    batch: list[ChatChunk] = []
                    for data in events:
                        if data == _DONE:
                            if batch:
                                yield batch
                            return
                        error = translate.stream_error(data, name)
                        if error is not None:
                            if batch:
                                yield batch  # what arrived before the error still counts
                            raise error
                        chunk = translate.parse_chunk(data, name)
                        finished = finished or chunk.finished
                        batch.append(chunk)
                    if batch:
                        yield batch
            if not finished:
                raise UpstreamProtocolError(
                    "the upstream stream ended before the answer finished", deployment=name)

    async def _send(
        self, endpoint: Endpoint, url: str, body: bytes, name: str, connect_s: float
    ) -> bytes:
        async with self._transport.request(
            "POST", url, body=body, headers=endpoint.request_headers, connect_s=connect_s,
            deployment=name,
        ) as response:
            raw = await response.read()
            if response.status != 200:
                raise translate.error_from_response(response.status, raw, response.headers, name)
            return raw
