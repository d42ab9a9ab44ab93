"""Same-dialect passthrough, shared by the protocols whose dialect polyroute also serves
(Anthropic's Messages, Gemini's generateContent; OpenAI's has its own, older path in
``openai_chat/translate.py``).

When the client's dialect is the upstream's protocol, the client's body goes out with only the
model changed, and the upstream's bytes come back verbatim: the response body whole, a stream
event by event. The adapter still decodes what the engine needs: usage and the finish reason,
and, for streams, each event's deltas, because the first-content hold and mid-stream recovery
read the text the client has been sent. The canonical chunks carry the event bytes they stand
for in ``ChatChunk.native``; a chunk without them (one a recovery produced) is translated by
the surface, so one stream may mix both (docs/architecture.md).
"""

from __future__ import annotations

import msgspec

from polyroute.adapters.rejections import unsupported
from polyroute.adapters.sse import Event
from polyroute.adapters.stream_driver import ChunkTranslator, Wrapping
from polyroute.errors import UpstreamRejected
from polyroute.model.chat import ChatChunk, ChatRequest, NativeRequest
from polyroute.model.upstream import Deployment

_encode = msgspec.json.Encoder().encode


def native_for(request: ChatRequest, protocol: str) -> NativeRequest | None:
    """The client's own request, when it is in ``protocol``'s dialect."""
    native = request.native
    return native if native is not None and native.protocol == protocol else None


def refuse_untranslatable(request: ChatRequest, deployment: Deployment) -> None:
    """Refuse, for an upstream of another protocol, what only the client's own protocol can
    carry. Called by the engine before each attempt: the same request may still go to a
    deployment of the client's protocol (an earlier or later candidate) untouched."""
    native = request.native
    if native is None or native.untranslatable is None:
        return
    if native.protocol == deployment.endpoint.protocol:
        return
    raise _untranslatable(native, deployment)


def _untranslatable(native: NativeRequest, deployment: Deployment) -> UpstreamRejected:
    param = native.untranslatable or ""
    error = unsupported(deployment.vendor, param, deployment.name, native.why)
    error.message = (
        f"'{param}' cannot be translated for deployment '{deployment.name}' (protocol "
        f"'{deployment.endpoint.protocol}'): {native.why}. It is forwarded only to "
        f"'{native.protocol}' upstreams; route this model to one, or remove it.")
    return error


def body_with(fields: dict[str, msgspec.Raw], changes: dict[str, object],
              drop: frozenset[str] = frozenset()) -> bytes:
    """The client's fields re-emitted with ``changes`` (values encoded as JSON) and without
    ``drop`` (the provider's ``quirks.drop_params``): each other field keeps its exact bytes,
    in the client's order."""
    out = {name: raw for name, raw in fields.items() if name not in drop}
    for name, value in changes.items():
        out[name] = msgspec.Raw(_encode(value))
    return _encode(out)


def append_to_array(raw: msgspec.Raw, item: object) -> msgspec.Raw:
    """A JSON array's bytes with ``item`` appended, the existing items untouched (how a
    resumed stream's partial answer joins the client's own messages or contents)."""
    head = bytes(raw).rstrip()[:-1].rstrip()  # the array without its closing bracket
    return msgspec.Raw(head + (b"" if head.endswith(b"[") else b",") + _encode(item) + b"]")


class NativeBytes:
    """Pins each event's bytes on the first chunk it produced; events that produce none
    (pings, block stops) wait for the next chunk that does, so nothing is lost or doubled."""

    def __init__(self) -> None:
        self._pending: list[bytes] = []

    def attach(self, event: bytes, chunks: list[ChatChunk]) -> None:
        pending = self._pending
        if not chunks:
            pending.append(event)
            return
        if pending:
            pending.append(event)
            chunks[0].native = b"".join(pending)
            pending.clear()
        else:
            chunks[0].native = event
        for chunk in chunks[1:]:
            chunk.native = b""

    def take(self) -> bytes:
        """The bytes still waiting (the stream's end came without a chunk to carry them)."""
        out = b"".join(self._pending)
        self._pending.clear()
        return out


class NativeRelay(Wrapping[bytes]):
    """A protocol's own stream translator, fed the SSE events of a stream passed through
    natively, for :func:`polyroute.adapters.stream_driver.drive`: each chunk carries the
    bytes of the events it stands for (:class:`NativeBytes`); an event without data (a
    comment) stands for nothing and rides on the next chunk. A stream whose end event never
    came closes with the translator's last chunk, carrying what is left and ``tail`` (the end
    event the client's SDK waits for, if the protocol has one)."""

    __slots__ = ("_carried", "_tail")

    def __init__(self, translator: ChunkTranslator[bytes], tail: bytes = b"") -> None:
        super().__init__(translator)
        self._tail = tail
        self._carried = NativeBytes()

    def feed(self, event: Event) -> list[ChatChunk]:
        raw, data = event
        chunks = self._inner.feed(data) if data else []
        self._carried.attach(raw, chunks)
        return chunks

    def close(self) -> list[ChatChunk]:
        chunks = self._inner.close()
        chunks[-1].native = self._carried.take() + self._tail
        return chunks

    def take(self) -> bytes:
        """The bytes of events that have not been carried yet."""
        return self._carried.take()
