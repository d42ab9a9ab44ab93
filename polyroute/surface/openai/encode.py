"""Canonical responses → OpenAI's wire bytes. Upstream bytes that are already in this dialect
are relayed verbatim; that is both the fastest and the most faithful path."""

from __future__ import annotations

import msgspec

from polyroute.errors import GatewayError
from polyroute.model.chat import ChatChunk, ChatResponse, Choice, ChunkChoice
from polyroute.model.embeddings import EmbeddingResponse
from polyroute.model.usage import Usage

_encode = msgspec.json.Encoder().encode
DONE = b"data: [DONE]\n\n"


class _ErrorBody(msgspec.Struct):
    message: str
    type: str
    param: str | None
    code: str | None


class _Error(msgspec.Struct):
    error: _ErrorBody


def error_body(exc: GatewayError) -> bytes:
    return _encode(_Error(_ErrorBody(exc.message, exc.type, exc.param, exc.code)))


def response_body(response: ChatResponse) -> bytes:
    if response.raw is not None:
        return response.raw
    return _encode(_ChatCompletion.of(response))


def embeddings_body(response: EmbeddingResponse) -> bytes:
    if response.raw is not None:
        return response.raw
    return _encode(msgspec.structs.replace(response, raw=None, extra=None))


def chunk_events(batch: list[ChatChunk], wants_usage: bool) -> bytes:
    """One write's worth of SSE events. A usage-only chunk is dropped unless the client asked
    for usage: polyroute requests it upstream on its own behalf."""
    parts: list[bytes] = []
    for chunk in batch:
        if not chunk.choices and not wants_usage:
            continue
        raw = chunk.raw if chunk.raw is not None else _encode(_ChatCompletionChunk.of(chunk))
        parts += (b"data: ", raw, b"\n\n")
    return b"".join(parts)


class ChunkEncoder:
    """OpenAI's stream: chunks as ``data:`` events, ``data: [DONE]`` at the end."""

    def __init__(self, wants_usage: bool) -> None:
        self._wants_usage = wants_usage
        self._last: ChatChunk | None = None

    def start(self) -> bytes:
        return b""

    def feed(self, batch: list[ChatChunk]) -> bytes:
        if batch:
            self._last = batch[-1]
        return chunk_events(batch, self._wants_usage)

    def finish(self) -> bytes:
        return DONE

    def fail(self, exc: GatewayError) -> bytes:
        return error_event(exc, self._last)


class _CutChoice(msgspec.Struct):
    index: int
    delta: dict[str, str]
    finish_reason: str = "error"


class _CutChunk(msgspec.Struct):
    id: str
    model: str
    created: int
    choices: list[_CutChoice]
    error: _ErrorBody
    object: str = "chat.completion.chunk"


def error_event(exc: GatewayError, last: ChatChunk | None) -> bytes:
    """The last event of a stream cut after it began: a chunk whose choices end with
    ``finish_reason: "error"`` and which carries an ``error`` object (OpenRouter's shape).
    OpenAI's SDKs raise on a data event with 'error', so a cut answer can never pass for a
    complete one; clients reading chunks by hand see the finish reason."""
    indexes = sorted({c.index for c in last.choices}) if last is not None else [0]
    chunk = _CutChunk(
        id=last.id if last is not None else "", model=last.model if last is not None else "",
        created=last.created if last is not None else 0,
        choices=[_CutChoice(i, {}) for i in indexes or [0]],
        error=_ErrorBody(exc.message, exc.type, exc.param, exc.code))
    return b"data: " + _encode(chunk) + b"\n\n"


# ``object`` has no default on purpose: omit_defaults would drop it, and strict clients
# validate it.
class _ChatCompletion(msgspec.Struct, omit_defaults=True):
    object: str
    id: str
    model: str
    choices: list[Choice]
    created: int
    usage: Usage | None = None
    system_fingerprint: str | None = None

    @classmethod
    def of(cls, r: ChatResponse) -> _ChatCompletion:
        return cls("chat.completion", r.id, r.model, list(r.choices), r.created,
                   usage=r.usage, system_fingerprint=r.system_fingerprint)


class _ChatCompletionChunk(msgspec.Struct, omit_defaults=True):
    object: str
    id: str
    model: str
    choices: list[ChunkChoice]
    created: int
    usage: Usage | None = None
    system_fingerprint: str | None = None

    @classmethod
    def of(cls, c: ChatChunk) -> _ChatCompletionChunk:
        return cls("chat.completion.chunk", c.id, c.model, list(c.choices), c.created,
                   usage=c.usage, system_fingerprint=c.system_fingerprint)
