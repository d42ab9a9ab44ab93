"""Anthropic to Anthropic: the client's Messages body forwarded with only ``model`` changed,
the upstream's body or events relayed as they came (:mod:`polyroute.adapters.passthrough`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import msgspec

from polyroute.adapters.anthropic_messages.stream import StreamTranslator
from polyroute.adapters.anthropic_messages.translate import canonical_usage, finish_reason
from polyroute.adapters.anthropic_messages.wire import Usage
from polyroute.adapters.passthrough import NativeRelay, append_to_array, body_with
from polyroute.adapters.sse import Event, sse_events
from polyroute.adapters.stream_driver import Driven, drive
from polyroute.errors import UpstreamProtocolError
from polyroute.model.chat import (
    ChatRequest,
    ChatResponse,
    Choice,
    Message,
    NativeRequest,
)

_encode = msgspec.json.Encoder().encode
_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'


class _Summary(msgspec.Struct):
    """All the engine reads of a whole message: the rest is relayed undecoded."""

    id: str = ""
    model: str = ""
    stop_reason: str | None = None
    usage: Usage | None = None


_SUMMARY_DECODER = msgspec.json.Decoder(_Summary)


def body(request: ChatRequest, native: NativeRequest, model: str,
         drop: frozenset[str] = frozenset()) -> bytes:
    changes: dict[str, object] = {"model": model}
    if not request.continue_final and not drop.intersection(native.fields) and native.body \
            and native.fields.get("model") == _encode(model):
        return native.body  # the client named the upstream's own model: its bytes, exactly
    if request.continue_final:  # a resumed stream: the partial answer, as a prefill
        final = request.messages[-1]
        changes["messages"] = append_to_array(native.fields["messages"],
                                              {"role": "assistant", "content": final.content})
    return body_with(native.fields, changes, drop)


def headers(base: Mapping[str, str], native: NativeRequest) -> Mapping[str, str]:
    """The endpoint's headers, plus the betas the client asked for (added to the provider's
    own ``anthropic-beta``, if it sets one)."""
    betas = native.headers.get("anthropic-beta")
    if not betas:
        return base
    merged = dict(base)
    own = next((k for k in merged if k.lower() == "anthropic-beta"), None)
    if own is None:
        merged["anthropic-beta"] = betas
    else:
        merged[own] = f"{merged[own]},{betas}"
    return merged


def parse_response(raw: bytes, deployment: str, created: int) -> ChatResponse:
    try:
        wire = _SUMMARY_DECODER.decode(raw)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise UpstreamProtocolError(f"unreadable response from the upstream: {exc}",
                                    deployment=deployment) from exc
    return ChatResponse(
        id=wire.id, model=wire.model, created=created,
        choices=[Choice(0, Message("assistant"), finish_reason(wire.stop_reason))],
        usage=canonical_usage(wire.usage) if wire.usage is not None else None, native=raw)


def stream(pieces: AsyncIterator[bytes], deployment: str,
           created: int) -> Driven[Event]:
    """The upstream's events as canonical batches that carry their bytes. Same contract as the
    adapter's translating stream (errors raised, a batch before an error still yielded). A
    stop reason without ``message_stop`` is a whole answer: the client gets the stop event
    its SDK waits for."""
    relay = NativeRelay(StreamTranslator(deployment, created), tail=_STOP)
    return drive(sse_events(pieces), relay, deployment)
