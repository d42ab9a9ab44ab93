"""Moves Converse bytes; all meaning lives in :mod:`.translate` and :mod:`.stream` (and, for
image generation, image edits and rerank, :mod:`.media`).

The provider's ``base_url`` is the runtime endpoint (``https://bedrock-runtime.<region>.
amazonaws.com``, as in ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME``); ``/model/{modelId}/converse``
is appended with the model id percent-encoded (ARNs hold ``:`` and ``/``), and the request is
signed exactly as it is sent. A provider with an ``api_key`` sends it as a Bedrock API key
(``Authorization: Bearer``) instead of signing.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Mapping
from urllib.parse import quote

from yarl import URL

from polyroute.adapters.bedrock_converse import eventstream, media, native, translate
from polyroute.adapters.bedrock_converse.errors import error_from_response
from polyroute.adapters.bedrock_converse.signing import Signer
from polyroute.adapters.bedrock_converse.spec import options
from polyroute.adapters.bedrock_converse.stream import StreamTranslator
from polyroute.adapters.client import UpstreamClient
from polyroute.adapters.media_stream import MediaStream
from polyroute.adapters.stream_driver import drive
from polyroute.errors import UpstreamRejected
from polyroute.model.chat import ChatChunk, ChatRequest, ChatResponse
from polyroute.model.embeddings import EmbeddingRequest, EmbeddingResponse
from polyroute.model.media import MediaRequest, MediaResponse, Units
from polyroute.model.upstream import Deployment, Endpoint

_EVENTSTREAM = "application/vnd.amazon.eventstream"


class BedrockConverseAdapter:
    def __init__(self, transport: UpstreamClient) -> None:
        self._transport = transport
        self._signer = Signer()

    async def chat(
        self, request: ChatRequest, deployment: Deployment, *, connect_s: float
    ) -> ChatResponse:
        endpoint, name = deployment.endpoint, deployment.name
        forwarded = native.forwarded_body(request)
        body = forwarded or translate.chat_body(request, endpoint.quirks, name)
        url = _url(endpoint, deployment.model, "converse", name)
        headers = await self._headers(endpoint, url, body, "application/json", name)
        async with self._transport.request(
            "POST", URL(url, encoded=True), body=body, headers=headers, connect_s=connect_s,
            deployment=name, errors=error_from_response,
        ) as response:
            raw = await response.read()
            answer = translate.parse_response(raw, deployment.model,
                                              _request_id(response.headers), name,
                                              int(time.time()))
            answer.native = raw if forwarded is not None else None
            return answer

    async def stream_chat(
        self, request: ChatRequest, deployment: Deployment, *, connect_s: float
    ) -> AsyncIterator[list[ChatChunk]]:
        endpoint, name = deployment.endpoint, deployment.name
        forwarded = native.forwarded_body(request)
        body = forwarded or translate.chat_body(request, endpoint.quirks, name)
        url = _url(endpoint, deployment.model, "converse-stream", name)
        headers = await self._headers(endpoint, url, body, _EVENTSTREAM, name)
        async with self._transport.request(
            "POST", URL(url, encoded=True), body=body, headers=headers, connect_s=connect_s,
            deployment=name, errors=error_from_response,
        ) as response:
            translator = StreamTranslator(deployment.model, _request_id(response.headers), name,
                                          int(time.time()))
            frames = eventstream.messages(response.body, name)
            relaying = translator if forwarded is None else native.Relaying(translator)
            async for batch in drive(frames, relaying, name):
                yield batch

    async def embed(
        self, request: EmbeddingRequest, deployment: Deployment, *, connect_s: float
    ) -> EmbeddingResponse:
        raise UpstreamRejected(
            f"Bedrock's Converse API has no embeddings: deployment '{deployment.name}' cannot "
            "serve them. Route embedding models to another provider.",
            status=400, code="unsupported_endpoint", deployment=deployment.name)

    async def media(
        self, request: MediaRequest, deployment: Deployment, *, connect_s: float
    ) -> MediaResponse:
        """Image generation and edits by Amazon's image models (``InvokeModel``,
        :mod:`.media`), and rerank."""
        endpoint, name = deployment.endpoint, deployment.name
        if request.endpoint == "rerank":
            return await self._rerank(request, deployment, connect_s)
        if request.endpoint == "images.generations":
            body = media.image_body(request)
        elif request.endpoint == "images.edits":  # the uploads read and encoded off the loop
            body = await asyncio.to_thread(media.edit_body, request)
        else:
            raise _not_served(request, name)
        url = _url(endpoint, deployment.model, "invoke", name)
        headers = await self._headers(endpoint, url, body, "application/json", name)
        raw = await self._transport.fetch(
            "POST", URL(url, encoded=True), body=body, headers=headers, connect_s=connect_s,
            deployment=name, errors=error_from_response)
        answer, count = media.images_answer(raw, name, int(time.time()))
        unit = request.estimate.unit if request.estimate is not None else "image"
        return MediaResponse(answer, "application/json", None, Units(unit, count))

    async def open_media(
        self, request: MediaRequest, deployment: Deployment, *, connect_s: float
    ) -> MediaStream:
        raise _not_served(request, deployment.name)

    async def _rerank(self, request: MediaRequest, deployment: Deployment,
                      connect_s: float) -> MediaResponse:
        """bedrock-agent-runtime's ``Rerank`` (``POST /rerank`` on its own host, signed for
        the same ``bedrock`` service), answered in Cohere's shape."""
        endpoint, name = deployment.endpoint, deployment.name
        region = options(endpoint).region or ""
        body, searches = media.rerank_body(request, media.model_arn(deployment.model, region))
        url = media.rerank_url(endpoint.base_url)
        headers = await self._headers(endpoint, url, body, "application/json", name)
        raw = await self._transport.fetch(
            "POST", URL(url, encoded=True), body=body, headers=headers, connect_s=connect_s,
            deployment=name, errors=error_from_response)
        answer = media.rerank_answer(raw, request, searches, name)
        return MediaResponse(answer, "application/json", None, Units("search", searches))

    async def list_models(self, endpoint: Endpoint) -> list[str]:
        # Bedrock lists models on its control-plane host, not the runtime endpoint this
        # provider names; '<vendor>/<model id>' still works for any model id.
        return []

    async def _headers(
        self, endpoint: Endpoint, url: str, body: bytes, accept: str, name: str
    ) -> Mapping[str, str]:
        headers = {**endpoint.request_headers, "Accept": accept}
        if any(h.lower() == "authorization" for h in headers):
            return headers  # a Bedrock API key
        return await self._signer.sign("POST", url, body, headers, options(endpoint).region or "",
                                       name)


def _url(endpoint: Endpoint, model: str, action: str, deployment: str) -> str:
    """The model id is one encoded path segment (it may come from the client, and the
    request is signed with the gateway's identity): never a dot segment."""
    if model in (".", ".."):
        raise UpstreamRejected(f"'{model}' is not a Bedrock model id", param="model",
                               code="invalid_model", deployment=deployment)
    return f"{endpoint.base_url}/model/{quote(model, safe='')}/{action}"


def _request_id(headers: Mapping[str, str]) -> str:
    """Converse answers carry no id; AWS's request id names the answer as well as anything."""
    return headers.get("x-amzn-RequestId") or f"bedrock-{secrets.token_hex(12)}"


def _not_served(request: MediaRequest, name: str) -> UpstreamRejected:
    # Routing sends only the endpoints the spec lists: reaching this is a bug, said plainly.
    return UpstreamRejected(f"the Bedrock adapter does not serve {request.endpoint}",
                            deployment=name, code="unsupported_endpoint")
