"""Moves Responses-API bytes; all meaning lives in :mod:`.translate` and :mod:`.stream`."""

from __future__ import annotations

from collections.abc import AsyncIterator

from polyroute.adapters.openai_chat.adapter import OpenAIChatAdapter
from polyroute.adapters.openai_responses import translate
from polyroute.adapters.openai_responses.stream import StreamTranslator
from polyroute.adapters.sse import sse_events
from polyroute.adapters.stream_driver import drive
from polyroute.model.chat import ChatChunk, ChatRequest, ChatResponse
from polyroute.model.upstream import Deployment


class OpenAIResponsesAdapter(OpenAIChatAdapter):
    """Chat goes to ``/responses``; embeddings and the model list are OpenAI's own (the same
    servers serve them), inherited."""

    async def chat(
        self, request: ChatRequest, deployment: Deployment, *, connect_s: float
    ) -> ChatResponse:
        endpoint = deployment.endpoint
        body = translate.request_body(request, deployment.model, endpoint.quirks,
                                      deployment.name)
        raw = await self._fetch(endpoint, self.url(endpoint, deployment.model, "/responses"),
                                body, deployment.name, connect_s)
        return translate.parse_response(raw, deployment.name,
                                        translate.native_fields(request) is not None)

    async def stream_chat(
        self, request: ChatRequest, deployment: Deployment, *, connect_s: float
    ) -> AsyncIterator[list[ChatChunk]]:
        endpoint = deployment.endpoint
        name = deployment.name
        body = translate.request_body(request, deployment.model, endpoint.quirks, name)
        translator = StreamTranslator(name, relay=translate.native_fields(request) is not None)
        async with self._transport.request(
            "POST", self.url(endpoint, deployment.model, "/responses"), body=body,
            headers=endpoint.request_headers, connect_s=connect_s, deployment=name,
            errors=translate.error_from_response,
        ) as response:
            async for batch in drive(sse_events(response.body), translator, name):
                yield batch
