"""A Converse client's request forwarded to a Bedrock upstream: its body as it came (the model
id is in the URL, so nothing in the body changes), and the upstream's answer kept for the
client in ``native``: the response body, or each eventstream frame."""

from __future__ import annotations

from typing import Any

import msgspec

from polyroute.adapters.bedrock_converse.eventstream import EventMessage
from polyroute.adapters.stream_driver import Wrapping
from polyroute.model.chat import ChatChunk, ChatRequest

PROTOCOL = "bedrock"
_decoder = msgspec.json.Decoder()
_encode = msgspec.json.Encoder().encode


def forwarded_body(request: ChatRequest) -> bytes | None:
    """The client's own body, or None when the request must be translated (another dialect,
    or a resumed stream, which is built from the typed fields)."""
    native = request.native
    if native is None or native.protocol != PROTOCOL or request.continue_final:
        return None
    cap = request.max_completion_tokens
    if cap is None:
        return native.body
    # The policy lowered the output limit (the reservation assumed it): only then is the body
    # re-encoded, with inferenceConfig.maxTokens changed.
    body: dict[str, Any] = _decoder.decode(native.body)
    config = body.setdefault("inferenceConfig", {})
    if config.get("maxTokens") == cap:
        return native.body
    config["maxTokens"] = cap
    return _encode(body)


def relayed(chunks: list[ChatChunk], frame: bytes) -> list[ChatChunk]:
    """``chunks`` (what one frame translated to) with the frame's bytes on the last of them,
    or on an empty chunk of its own when it translated to nothing."""
    if not chunks:
        return [ChatChunk(native=frame)]
    chunks[-1].native = frame
    return chunks


class Relaying(Wrapping[EventMessage]):
    """A stream translator whose chunks also carry each frame's own bytes, for a Converse
    client of a forwarded request (:func:`relayed`): the stream driver runs it like any."""

    __slots__ = ()

    def feed(self, event: EventMessage) -> list[ChatChunk]:
        return relayed(self._inner.feed(event), event.frame)
