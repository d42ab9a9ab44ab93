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

import re
from collections.abc import AsyncGenerator, AsyncIterable

import msgspec

from polyroute.adapters.rejections import unsupported
from polyroute.errors import UpstreamRejected
from polyroute.model.chat import ChatChunk, ChatRequest, NativeRequest
from polyroute.model.upstream import Deployment

_encode = msgspec.json.Encoder().encode
_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")


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


async def sse_events(
    chunks: AsyncIterable[bytes],
) -> AsyncGenerator[list[tuple[bytes, bytes]], None]:
    """Like :func:`polyroute.adapters.sse.sse_data`, but each event comes with its exact
    bytes (terminator included), so that they can be relayed unchanged: ``(event, data)``
    for every event a network read completed. Events without data (comments) come with
    ``b""`` as data: they are relayed too."""
    buffer = b""
    async for piece in chunks:
        buffer += piece
        batch = _split(buffer)
        if batch:
            buffer = buffer[sum(len(event) for event, _ in batch):]
            yield batch
    if buffer.strip():
        yield [(buffer, _data(buffer))]


def _split(buffer: bytes) -> list[tuple[bytes, bytes]]:
    """The whole events at the start of ``buffer``. One separator throughout (LF, as
    Anthropic sends, or CRLF, as Google does) is split without a regular expression."""
    sep = None
    if b"\r" not in buffer:
        sep = b"\n\n"
    elif buffer.count(b"\r") == buffer.count(b"\n") == buffer.count(b"\r\n"):
        sep = b"\r\n\r\n"
    if sep is not None:
        *events, _ = buffer.split(sep)
        return [(event + sep, _data(event)) for event in events]
    batch, start = [], 0
    for end in _EVENT_END.finditer(buffer):
        if end.group() == b"\r\r" and end.end() == len(buffer):
            break  # maybe a CR of a CRLF whose LF has not arrived
        batch.append((buffer[start:end.end()], _data(buffer[start:end.start()])))
        start = end.end()
    return batch


def _data(event: bytes) -> bytes:
    """The data of one event (without its terminator); ``b""`` for a comment."""
    if b"\r" in event:
        event = event.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if event.startswith(b"data:"):
        start = 0
    else:
        start = event.find(b"\ndata:") + 1
        if start == 0:
            return b""
    end = event.find(b"\n", start)
    if end == -1 or event.find(b"\ndata:", end) == -1:  # the common single data line
        line = event[start + 5:] if end == -1 else event[start + 5:end]
        return line[1:] if line[:1] == b" " else line
    lines = []
    for line in event.split(b"\n"):
        if line.startswith(b"data:"):
            lines.append(line[6:] if line[5:6] == b" " else line[5:])
    return b"\n".join(lines)


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
