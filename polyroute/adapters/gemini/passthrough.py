"""Gemini to Gemini: the client's ``generateContent`` body forwarded as it came (the model is
in the URL, so only the URL changes), the upstream's body or events relayed as they came
(:mod:`polyroute.adapters.passthrough`). Thought signatures, server tools, safety settings and
cached contents all survive, because nothing is re-encoded."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec

from polyroute.adapters.gemini.stream import StreamTranslator
from polyroute.adapters.gemini.translate import canonical_usage, finish_reason
from polyroute.adapters.gemini.wire import UsageMetadata
from polyroute.adapters.passthrough import NativeRelay, append_to_array, body_with
from polyroute.adapters.sse import Event, sse_events
from polyroute.adapters.stream_driver import Driven, drive
from polyroute.errors import ContentFiltered, UpstreamProtocolError
from polyroute.model.chat import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    Choice,
    ChunkChoice,
    Delta,
    Message,
    NativeRequest,
)

_any = msgspec.json.Decoder(dict[str, Any])


class _Candidate(msgspec.Struct, rename="camel"):
    finish_reason: str | None = None
    index: int = 0


class _Summary(msgspec.Struct, rename="camel"):
    """All the engine reads of a whole answer: the rest is relayed undecoded."""

    candidates: list[_Candidate] = msgspec.field(default_factory=list)
    usage_metadata: UsageMetadata | None = None
    model_version: str | None = None
    response_id: str | None = None


_SUMMARY_DECODER = msgspec.json.Decoder(_Summary)


def body(request: ChatRequest, native: NativeRequest, drop: frozenset[str] = frozenset()
         ) -> bytes:
    """The client's body; the engine's changes only where it made some: a partial answer to
    continue (a resumed stream) and an output cap the client did not set (a key's policy)."""
    changes: dict[str, object] = {}
    if request.continue_final:
        final = request.messages[-1]
        changes["contents"] = append_to_array(
            native.fields["contents"], {"role": "model", "parts": [{"text": final.content}]})
    cap = request.max_completion_tokens
    if cap is not None:
        raw = native.fields.get("generationConfig")
        config = _any.decode(raw) if raw is not None else {}
        if "maxOutputTokens" not in config:
            changes["generationConfig"] = {**config, "maxOutputTokens": cap}
    if not changes and not drop:
        return _client_bytes(native)
    return body_with(native.fields, changes, drop)


def _client_bytes(native: NativeRequest) -> bytes:
    return native.body or body_with(native.fields, {})


def parse_response(raw: bytes, model: str, deployment: str, created: int) -> ChatResponse:
    try:
        wire = _SUMMARY_DECODER.decode(raw)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise UpstreamProtocolError(f"unreadable response from the upstream: {exc}",
                                    deployment=deployment) from exc
    return ChatResponse(
        id=wire.response_id or "", model=wire.model_version or model, created=created,
        choices=[Choice(c.index, Message("assistant"), finish_reason(c.finish_reason, False))
                 for c in wire.candidates],
        usage=canonical_usage(wire.usage_metadata) if wire.usage_metadata else None,
        native=raw)


def stream(
    pieces: AsyncIterator[bytes], model: str, deployment: str, created: int,
    call_id: Callable[[int], str],
) -> Driven[Event]:
    """The upstream's events as canonical batches that carry their bytes. Gemini ends a
    stream by closing it; its usage came with the last event."""
    relay = _Relay(StreamTranslator(model, deployment, created, call_id), model, created)
    return drive(sse_events(pieces), relay, deployment)


class _Relay(NativeRelay):
    """A blocked prompt is not an error to fail over on here: Gemini's own answer to it goes
    to the Gemini client as it came, as a whole answer's does, and ends the stream."""

    __slots__ = ("_blocked", "_created", "_model")

    def __init__(self, translator: StreamTranslator, model: str, created: int) -> None:
        super().__init__(translator)
        self._model, self._created = model, created
        self._blocked = False

    @property
    def stopped(self) -> bool:
        return self._blocked

    def feed(self, event: Event) -> list[ChatChunk]:
        try:
            return super().feed(event)
        except ContentFiltered:
            self._blocked = True
            return [ChatChunk(
                model=self._model, created=self._created,
                choices=[ChunkChoice(0, Delta(role="assistant"), "content_filter")],
                native=self.take() + event[0])]
