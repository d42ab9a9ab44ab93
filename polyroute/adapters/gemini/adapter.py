"""Moves Gemini-protocol bytes; all meaning lives in :mod:`.translate` and :mod:`.stream`.

The provider's ``base_url`` is the API root (``https://generativelanguage.googleapis.com``, as
in Google's SDKs and ``GOOGLE_GEMINI_BASE_URL``); ``/v1beta/models/{model}:…`` is appended.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from urllib.parse import quote

from yarl import URL

from polyroute.adapters.client import UpstreamClient
from polyroute.adapters.gemini import media, passthrough, speech, transcripts, translate
from polyroute.adapters.gemini.errors import error_from_response
from polyroute.adapters.gemini.spec import SPEC
from polyroute.adapters.gemini.stream import StreamTranslator
from polyroute.adapters.media_stream import MediaStream
from polyroute.adapters.passthrough import native_for
from polyroute.adapters.sse import sse_data
from polyroute.adapters.stream_driver import drive
from polyroute.errors import UpstreamRejected
from polyroute.model.chat import ChatChunk, ChatRequest, ChatResponse
from polyroute.model.embeddings import EmbeddingRequest, EmbeddingResponse
from polyroute.model.media import MediaRequest, MediaResponse, Units
from polyroute.model.upstream import Deployment, Endpoint

_LIST_MODELS_TIMEOUT_S = 10.0
_MAX_MODEL_PAGES = 10


def _new_call_id(_: int) -> str:
    """Gemini rarely names its function calls, and OpenAI clients pair results by id."""
    return f"call_{secrets.token_hex(12)}"


class GeminiAdapter:
    def __init__(self, transport: UpstreamClient) -> None:
        self._transport = transport

    async def chat(
        self, request: ChatRequest, deployment: Deployment, *, connect_s: float
    ) -> ChatResponse:
        endpoint, name = deployment.endpoint, deployment.name
        url = translate.model_path(endpoint.base_url, deployment.model, name) + ":generateContent"
        native = native_for(request, SPEC.name)
        if native is not None:  # the client speaks Gemini too: its body, its answer
            raw = await self._send(endpoint, "POST", url, passthrough.body(
                request, native, endpoint.quirks.drop_params), name, connect_s)
            return passthrough.parse_response(raw, deployment.model, name, int(time.time()))
        body = translate.chat_body(request, endpoint.quirks, name)
        raw = await self._send(endpoint, "POST", url, body, name, connect_s)
        return translate.parse_response(raw, deployment.model, name, int(time.time()),
                                        _new_call_id)

    async def stream_chat(
        self, request: ChatRequest, deployment: Deployment, *, connect_s: float
    ) -> AsyncIterator[list[ChatChunk]]:
        endpoint, name = deployment.endpoint, deployment.name
        url = (translate.model_path(endpoint.base_url, deployment.model, name)
               + ":streamGenerateContent?alt=sse")
        native = native_for(request, SPEC.name)
        if native is not None:  # the client speaks Gemini too: its body, its events
            async with self._transport.request(
                "POST", URL(url, encoded=True),
                body=passthrough.body(request, native, endpoint.quirks.drop_params),
                headers=endpoint.request_headers, connect_s=connect_s, deployment=name,
                errors=error_from_response,
            ) as response, aclosing(passthrough.stream(
                response.body, deployment.model, name, int(time.time()),
                _new_call_id)) as batches:
                async for relayed in batches:
                    yield relayed
            return
        body = translate.chat_body(request, endpoint.quirks, name)
        async with self._transport.request(
            "POST", URL(url, encoded=True), body=body, headers=endpoint.request_headers,
            connect_s=connect_s, deployment=name, errors=error_from_response,
        ) as response:
            translator = StreamTranslator(deployment.model, name, int(time.time()), _new_call_id)
            async for batch in drive(sse_data(response.body), translator, name):
                yield batch

    async def embed(
        self, request: EmbeddingRequest, deployment: Deployment, *, connect_s: float
    ) -> EmbeddingResponse:
        endpoint, name = deployment.endpoint, deployment.name
        body = translate.embeddings_body(request, deployment.model, endpoint.quirks, name)
        url = translate.model_path(endpoint.base_url, deployment.model,
                                   name) + ":batchEmbedContents"
        raw = await self._send(endpoint, "POST", url, body, name, connect_s)
        return translate.parse_embeddings(raw, request, deployment.model, name)

    async def media(
        self, request: MediaRequest, deployment: Deployment, *, connect_s: float
    ) -> MediaResponse:
        """Image generation and edits by a Gemini image model (:mod:`.media`), transcription
        and translation by a model that hears audio (:mod:`.transcripts`)."""
        name = deployment.name
        if request.endpoint in ("images.generations", "images.edits"):
            body = media.image_body(request) if request.endpoint == "images.generations" \
                else await asyncio.to_thread(media.edit_body, request)
            raw = await self._generate(deployment, body, connect_s)
            answer, count, usage = media.images_answer(raw, name, int(time.time()))
            unit = request.estimate.unit if request.estimate is not None else "image"
            return MediaResponse(answer, "application/json", usage, Units(unit, count))
        if request.endpoint in ("audio.transcriptions", "audio.translations"):
            # the upload is read from disk and encoded off the event loop
            body, wanted = await asyncio.to_thread(transcripts.transcript_body, request, name)
            raw = await self._generate(deployment, body, connect_s)
            text, content_type, usage = transcripts.transcript_answer(raw, wanted, name)
            return MediaResponse(text, content_type, usage)
        raise _not_served(request, name)

    async def open_media(
        self, request: MediaRequest, deployment: Deployment, *, connect_s: float
    ) -> MediaStream:
        """Speech by a TTS model, answered whole by Gemini and relayed as one piece; a
        streamed transcription from ``streamGenerateContent``, its events translated as they
        arrive (:class:`.transcripts.TranscriptEvents`)."""
        endpoint, name = deployment.endpoint, deployment.name
        if request.endpoint == "audio.transcriptions":
            body, _ = await asyncio.to_thread(transcripts.transcript_body, request, name)
            url = (translate.model_path(endpoint.base_url, deployment.model, name)
                   + ":streamGenerateContent?alt=sse")
            stream = MediaStream(self._transport.request(
                "POST", URL(url, encoded=True), body=body, headers=endpoint.request_headers,
                connect_s=connect_s, deployment=name, errors=error_from_response),
                transcripts.TranscriptEvents(name))
            await stream.open()
            return stream
        if request.endpoint != "audio.speech":
            raise _not_served(request, name)
        body, wanted = speech.speech_body(request, name)
        raw = await self._generate(deployment, body, connect_s)
        sound, content_type, usage = speech.speech_answer(raw, wanted, name)
        return MediaStream.whole(sound, content_type, usage)

    async def _generate(self, deployment: Deployment, body: bytes, connect_s: float) -> bytes:
        endpoint, name = deployment.endpoint, deployment.name
        url = translate.model_path(endpoint.base_url, deployment.model, name) + ":generateContent"
        return await self._send(endpoint, "POST", url, body, name, connect_s)

    async def list_models(self, endpoint: Endpoint) -> list[str]:
        ids: list[str] = []
        url = f"{translate.versioned(endpoint.base_url)}/models?pageSize=1000"
        page_url = url
        for _ in range(_MAX_MODEL_PAGES):
            raw = await self._send(endpoint, "GET", page_url, None, endpoint.vendor,
                                   _LIST_MODELS_TIMEOUT_S, total_s=_LIST_MODELS_TIMEOUT_S)
            page, token = translate.parse_model_list(raw, endpoint.vendor)
            ids += page
            if token is None:
                break
            page_url = f"{url}&pageToken={quote(token)}"
        return ids

    async def _send(
        self, endpoint: Endpoint, method: str, url: str, body: bytes | None, name: str,
        connect_s: float, total_s: float | None = None,
    ) -> bytes:
        return await self._transport.fetch(
            method, URL(url, encoded=True), body=body, headers=endpoint.request_headers,
            connect_s=connect_s, deployment=name, errors=error_from_response, total_s=total_s)


def _not_served(request: MediaRequest, name: str) -> UpstreamRejected:
    # Routing sends only the endpoints the spec lists: reaching this is a bug, said plainly.
    return UpstreamRejected(f"the Gemini adapter does not serve {request.endpoint}",
                            deployment=name, code="unsupported_endpoint")
