"""The seam between the engine and upstream protocols."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from polyroute.adapters.media_stream import MediaStream
from polyroute.model.chat import ChatChunk, ChatRequest, ChatResponse
from polyroute.model.embeddings import EmbeddingRequest, EmbeddingResponse
from polyroute.model.media import MediaRequest, MediaResponse
from polyroute.model.upstream import Deployment, Endpoint


class Adapter(Protocol):
    """Speaks one upstream wire protocol. Every failure is raised as an ``UpstreamError``.

    Adapters enforce only the connect timeout; the engine bounds every call with its own
    deadlines (first token, stalls, the request's total), so those live in one place.

    ``stream_chat`` is an async generator of batches — the chunks that arrived together, so
    they can be relayed with one write — never empty. Errors before the first batch surface on
    the first ``__anext__`` (so the engine can still fail over); the caller must ``aclose()``
    it, which releases the upstream connection — that is how a client disconnect cancels the
    upstream.
    """

    async def chat(
        self, request: ChatRequest, deployment: Deployment, *, connect_s: float
    ) -> ChatResponse: ...

    def stream_chat(
        self, request: ChatRequest, deployment: Deployment, *, connect_s: float
    ) -> AsyncIterator[list[ChatChunk]]: ...

    async def embed(
        self, request: EmbeddingRequest, deployment: Deployment, *, connect_s: float
    ) -> EmbeddingResponse: ...

    async def list_models(self, endpoint: Endpoint) -> list[str]:
        """The model ids the upstream says it serves."""
        ...


class MediaAdapter(Adapter, Protocol):
    """A protocol whose spec lists media endpoints (``ProtocolSpec.endpoints``) serves them;
    routing never hands it one it does not list."""

    async def media(
        self, request: MediaRequest, deployment: Deployment, *, connect_s: float
    ) -> MediaResponse: ...

    async def open_media(
        self, request: MediaRequest, deployment: Deployment, *, connect_s: float
    ) -> MediaStream:
        """The answer opened (status and headers read); the caller iterates and closes it."""
        ...
