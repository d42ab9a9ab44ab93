"""Responses-API handlers: decode, call the engine, encode; for a stateful request (``store:
true``, or a ``previous_response_id`` polyroute stored) also the stored conversation, added
before and kept after (:mod:`polyroute.engine.conversations`)."""

from __future__ import annotations

from collections.abc import Callable

import msgspec
from aiohttp import web

from polyroute.cache.answer import Assembler
from polyroute.engine.conversations import STORED_PREFIX, Conversations, new_response_id
from polyroute.engine.owned import owner_of
from polyroute.errors import GatewayError, InvalidRequest, NotFound
from polyroute.model.chat import ChatChunk, ChatRequest, ChatResponse, Message
from polyroute.policy.types import Principal
from polyroute.storage.objects import ResponseStore
from polyroute.surface.exchange import ChatExchange
from polyroute.surface.http import ErrorEncoder
from polyroute.surface.responses import decode, encode
from polyroute.surface.responses.relay import StreamRelay

_encode = msgspec.json.Encoder().encode


def encode_error(exc: GatewayError) -> bytes:
    return encode.error_body(exc)


class ResponsesHandlers:
    error_encoder: ErrorEncoder = staticmethod(encode_error)

    def __init__(self, exchange: ChatExchange, store: ResponseStore,
                 retention_s: float) -> None:
        self._x = exchange
        self._conversations = Conversations(store, retention_s)

    async def create(self, http: web.Request) -> web.StreamResponse:
        principal = await self._x.principal(http)
        request = decode.responses_request(await self._x.body(http))
        state = decode.conversation(request)
        native = request.native
        if state.stateful and native is not None and native.untranslatable is not None:
            if state.previous is not None:
                raise InvalidRequest(native.why, param=native.untranslatable)
            state = decode.Conversation()  # as it came: the upstream may store it itself
        if not state.stateful:
            return await self._x.answer(http, request, principal, "responses",
                                        encode.response_body,
                                        lambda: StreamRelay(request.model))
        return await self._stateful(http, request, principal, state)

    async def _stateful(self, http: web.Request, request: ChatRequest, principal: Principal,
                        state: decode.Conversation) -> web.StreamResponse:
        owner = owner_of(principal)
        turn = request.messages[1:] if state.instructions else request.messages
        history: list[Message] = []
        if state.previous is not None:
            history = await self._conversations.history(state.previous, owner)
        instructions = request.messages[:1] if state.instructions else []
        request.messages = instructions + history + turn
        request.native = None  # translated for every vendor, with store: false upstream
        keep = state.store is not False  # continuing a stored conversation stores by default
        rid = new_response_id()
        conversation = history + turn

        def kept(answer: ChatResponse, obj: dict[str, object]) -> None:
            if not keep:
                return
            if state.previous is not None:
                obj["previous_response_id"] = state.previous
            obj["store"] = True
            message = answer.choices[0].message if answer.choices else Message("assistant")
            self._conversations.keep(rid, owner, [*conversation, message], _encode(obj))

        def whole(response: ChatResponse) -> bytes:
            body = encode.response_body(response, rid)
            obj = msgspec.json.decode(body)
            kept(response, obj)
            return body if not keep else _encode(obj)

        return await self._x.answer(http, request, principal, "responses", whole,
                                    lambda: _Keeping(request.model, rid, kept))

    async def retrieve(self, http: web.Request) -> web.StreamResponse:
        principal = await self._x.principal(http)
        rid = _stored_id(http)
        body = await self._conversations.body(rid, owner_of(principal))
        return web.Response(body=body, content_type="application/json")

    async def delete(self, http: web.Request) -> web.StreamResponse:
        principal = await self._x.principal(http)
        rid = _stored_id(http)
        await self._conversations.delete(rid, owner_of(principal))
        return web.Response(body=_encode({"id": rid, "object": "response", "deleted": True}),
                            content_type="application/json")


def _stored_id(http: web.Request) -> str:
    rid = http.match_info["response_id"]
    if not rid.startswith(STORED_PREFIX):
        raise NotFound(f"No response with id '{rid}' (polyroute serves the responses it "
                       "stored, whose ids begin 'resp_pr').", param="response_id")
    return rid


class _Keeping:
    """The Responses stream encoder under polyroute's id, which also rebuilds the answer and
    hands it to ``keep`` before the last event is written (a stream that failed is never
    stored)."""

    def __init__(self, model: str, rid: str,
                 keep: Callable[[ChatResponse, dict[str, object]], None]) -> None:
        self._encoder = encode.StreamEncoder(model, response_id=rid)
        self._answer = Assembler()
        self._keep = keep

    def start(self) -> bytes:
        return self._encoder.start()

    def feed(self, batch: list[ChatChunk]) -> bytes:
        self._answer.feed(batch)
        return self._encoder.feed(batch)

    def finish(self) -> bytes:
        out = self._encoder.finish()
        if self._encoder.final is not None:
            self._keep(self._answer.response(), dict(self._encoder.final))
        return out

    def fail(self, exc: GatewayError) -> bytes:
        return self._encoder.fail(exc)
