"""Client bytes → canonical requests, with OpenAI-style errors for anything malformed."""

from __future__ import annotations

from typing import TypeVar

import msgspec

from polyroute.errors import InvalidRequest, invalid_request
from polyroute.model.chat import ChatRequest
from polyroute.model.embeddings import EmbeddingRequest
from polyroute.nesting import check_json_depth

T = TypeVar("T", ChatRequest, EmbeddingRequest)
D = TypeVar("D")

_chat_decoder = msgspec.json.Decoder(ChatRequest)
_embedding_decoder = msgspec.json.Decoder(EmbeddingRequest)
_fields_decoder = msgspec.json.Decoder(dict[str, msgspec.Raw])


def chat_request(body: bytes) -> ChatRequest:
    request = _decode(body, _chat_decoder)
    if not request.model:
        if not request.models:
            raise InvalidRequest("Missing required parameter: 'model'.", param="model")
        request.model, request.models = request.models[0], request.models[1:]
    if not request.messages:
        raise InvalidRequest("'messages' must contain at least one message.", param="messages")
    return request


def embedding_request(body: bytes) -> EmbeddingRequest:
    return _decode(body, _embedding_decoder)


def _decode(body: bytes, decoder: msgspec.json.Decoder[T]) -> T:
    fields, request = decode_fields(body, decoder)
    request.passthrough = fields
    if isinstance(request, ChatRequest):
        # Another dialect's body, for its own protocol's upstream: never the client's to set
        # (a Bedrock body would go out signed with the gateway's identity, unchecked).
        request.native = None
    return request


def decode_fields(body: bytes, decoder: msgspec.json.Decoder[D]) -> tuple[
        dict[str, msgspec.Raw], D]:
    """The body's top-level fields as the client sent them, and the body decoded; OpenAI's
    errors for an empty, unparseable, too deeply nested or invalid body."""
    if not body:
        raise InvalidRequest("The request body is empty; send a JSON object.")
    check_json_depth(body)
    try:
        fields = _fields_decoder.decode(body)
    except msgspec.DecodeError:
        raise InvalidRequest(
            "We could not parse the JSON body of your request. The body must be a JSON object "
            "(HINT: check the quotes and commas, and send Content-Type: application/json)."
        ) from None
    try:
        return fields, decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise invalid_request(str(exc)) from None
