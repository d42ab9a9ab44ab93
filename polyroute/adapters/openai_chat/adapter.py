"""Moves OpenAI-protocol bytes; all meaning lives in :mod:`.translate`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager

from polyroute.adapters import multipart
from polyroute.adapters.client import UpstreamClient
from polyroute.adapters.media_stream import MediaStream
from polyroute.adapters.openai_chat import media, translate
from polyroute.adapters.openai_chat.stream import StreamTranslator
from polyroute.adapters.sse import sse_data
from polyroute.adapters.stream_driver import drive
from polyroute.adapters.transport import UpstreamResponse
from polyroute.model.chat import ChatChunk, ChatRequest, ChatResponse
from polyroute.model.embeddings import EmbeddingRequest, EmbeddingResponse
from polyroute.model.media import MEDIA_PATHS, MediaRequest, MediaResponse
from polyroute.model.upstream import Deployment, Endpoint

_LIST_MODELS_TIMEOUT_S = 10.0


class OpenAIChatAdapter:
    """Also the base of servers that speak this protocol at other URLs (Azure): they override
    ``url`` and nothing else."""

    def __init__(self, transport: UpstreamClient) -> None:
        self._transport = transport

    def url(self, endpoint: Endpoint, model: str, path: str) -> str:
        """Where the operation ``path`` (``/chat/completions``, ``/embeddings``) goes."""
        return endpoint.base_url + path

    async def chat(
        self, request: ChatRequest, deployment: Deployment, *, connect_s: float
    ) -> ChatResponse:
        endpoint = deployment.endpoint
        body = translate.chat_body(request, deployment.model, endpoint.quirks)
        raw = await self._fetch(endpoint, self.url(endpoint, deployment.model, "/chat/completions"),
                                body, deployment.name, connect_s)
        return translate.parse_response(raw, deployment.name)

    async def embed(
        self, request: EmbeddingRequest, deployment: Deployment, *, connect_s: float
    ) -> EmbeddingResponse:
        endpoint = deployment.endpoint
        body = translate.embeddings_body(request, deployment.model, endpoint.quirks)
        raw = await self._fetch(endpoint, self.url(endpoint, deployment.model, "/embeddings"),
                                body, deployment.name, connect_s)
        return translate.parse_embeddings(raw, deployment.name)

    async def media(
        self, request: MediaRequest, deployment: Deployment, *, connect_s: float
    ) -> MediaResponse:
        async with self._media_exchange(request, deployment, connect_s) as response:
            body = await response.read()
            content_type = response.headers.get("Content-Type", "application/json")
        usage, units = media.measured(request, body, content_type)
        return MediaResponse(body, content_type, usage, units)

    async def open_media(
        self, request: MediaRequest, deployment: Deployment, *, connect_s: float
    ) -> MediaStream:
        meter = media.TranscriptMeter(request, deployment.name) \
            if media.streams_transcript(request) else None
        stream = MediaStream(self._media_exchange(request, deployment, connect_s), meter)
        await stream.open()
        return stream

    def _media_exchange(self, request: MediaRequest, deployment: Deployment,
                        connect_s: float) -> AbstractAsyncContextManager[UpstreamResponse]:
        endpoint = deployment.endpoint
        url = self.url(endpoint, deployment.model, MEDIA_PATHS[request.endpoint])
        headers = endpoint.request_headers
        body: bytes | AsyncIterator[bytes]
        if request.form is not None:  # a multipart upload, read from disk as it is sent
            form = multipart.form_body(request.form, deployment.model)
            body = form.pieces()
            headers = {**headers, "Content-Type": form.content_type,
                       "Content-Length": str(form.length)}
        else:
            body = media.json_body(request, deployment.model)
        return self._transport.request(
            "POST", url, body=body, headers=headers, connect_s=connect_s,
            deployment=deployment.name, errors=translate.error_from_response)

    async def list_models(self, endpoint: Endpoint) -> list[str]:
        raw = await self._transport.fetch(
            "GET", endpoint.base_url + "/models", body=None, headers=endpoint.request_headers,
            connect_s=_LIST_MODELS_TIMEOUT_S, deployment=endpoint.vendor,
            errors=translate.error_from_response, total_s=_LIST_MODELS_TIMEOUT_S)
        return translate.parse_model_list(raw, endpoint.vendor)

    async def _fetch(
        self, endpoint: Endpoint, url: str, body: bytes, name: str, connect_s: float
    ) -> bytes:
        return await self._transport.fetch(
            "POST", url, body=body, headers=endpoint.request_headers, connect_s=connect_s,
            deployment=name, errors=translate.error_from_response)

    async def stream_chat(
        self, request: ChatRequest, deployment: Deployment, *, connect_s: float
    ) -> AsyncIterator[list[ChatChunk]]:
        endpoint = deployment.endpoint
        body = translate.chat_body(request, deployment.model, endpoint.quirks)
        name = deployment.name
        async with self._transport.request(
            "POST", self.url(endpoint, deployment.model, "/chat/completions"), body=body,
            headers=endpoint.request_headers, connect_s=connect_s, deployment=name,
            errors=translate.error_from_response,
        ) as response:
            async for batch in drive(sse_data(response.body), StreamTranslator(name), name):
                yield batch
