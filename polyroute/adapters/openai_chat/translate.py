"""Pure functions between the canonical model and OpenAI's wire format. No I/O here.

Translation must be idempotent: the engine may build the body again for another attempt.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeVar

import msgspec

from polyroute.errors import (
    ContentFiltered,
    ContextWindowExceeded,
    UpstreamAuthError,
    UpstreamError,
    UpstreamModelNotFound,
    UpstreamProtocolError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamUnavailable,
)
from polyroute.model.chat import ChatChunk, ChatRequest, ChatResponse
from polyroute.model.embeddings import EmbeddingRequest, EmbeddingResponse
from polyroute.model.upstream import Quirks

T = TypeVar("T")

_encode = msgspec.json.Encoder().encode
_response_decoder = msgspec.json.Decoder(ChatResponse, strict=False)
_chunk_decoder = msgspec.json.Decoder(ChatChunk, strict=False)
_embedding_decoder = msgspec.json.Decoder(EmbeddingResponse, strict=False)
_any_decoder = msgspec.json.Decoder()
_INCLUDE_USAGE = msgspec.Raw(b'{"include_usage":true}')
_TRUE = msgspec.Raw(b"true")

# Fields of a request that only mean something to polyroute and must not reach the upstream.
GATEWAY_ONLY_FIELDS = frozenset({"models"})


def chat_body(request: ChatRequest, model: str, quirks: Quirks) -> bytes:
    """The upstream request body. The client's own fields pass through verbatim when it spoke
    OpenAI's dialect; otherwise the canonical request is encoded."""
    fields: dict[str, Any]
    if request.passthrough is not None:
        fields = dict(request.passthrough)
    else:
        fields = _openai_fields(request)
    for name in GATEWAY_ONLY_FIELDS.intersection(fields):
        del fields[name]
    if request.continue_final:
        _continue_final(fields, request, quirks.continuation)
    fields["model"] = model
    if request.stream:
        fields["stream"] = _TRUE
        # Usage is asked for even when the client did not: the request log and budgets need
        # it. The surface drops the extra usage chunk for a client that did not ask.
        if quirks.stream_usage and not request.wants_usage:
            fields["stream_options"] = _INCLUDE_USAGE
    _apply_quirks(fields, quirks)
    return _encode(fields)


def _continue_final(fields: dict[str, Any], request: ChatRequest, style: str) -> None:
    """Ask the server to continue the final (assistant) message instead of answering anew.
    The client's own messages stay verbatim: the final one is appended to their raw bytes."""
    final = msgspec.to_builtins(request.messages[-1])
    if style == "prefix":  # Mistral, DeepSeek
        final["prefix"] = True
    raw = fields.get("messages")
    if isinstance(raw, msgspec.Raw):
        head = bytes(raw).rstrip()[:-1].rstrip()  # the array without its closing bracket
        fields["messages"] = msgspec.Raw(
            head + (b"" if head.endswith(b"[") else b",") + _encode(final) + b"]")
    else:
        fields["messages"][-1] = final
    if style == "continue_final_message":  # vLLM: render the prompt without closing the turn
        fields["continue_final_message"] = True
        fields["add_generation_prompt"] = False


# Canonical fields other dialects bring (Anthropic's thinking, cache_control …) that OpenAI's
# schema does not have: strict OpenAI-compatible servers answer 400 to them. top_k stays:
# vLLM and llama.cpp honour it; for OpenAI itself, list it in quirks.drop_params.
_NOT_OPENAI_TOP = ("thinking",)
_NOT_OPENAI_MESSAGE = ("thinking_blocks", "reasoning_content")
_NOT_OPENAI_PART = ("cache_control",)


def _openai_fields(request: ChatRequest) -> dict[str, Any]:
    fields: dict[str, Any] = msgspec.to_builtins(
        msgspec.structs.replace(request, passthrough=None, native=None))
    for name in _NOT_OPENAI_TOP:
        fields.pop(name, None)
    fields.pop("$polyroute.continue_final", None)
    for message in fields.get("messages", ()):
        for name in _NOT_OPENAI_MESSAGE:
            message.pop(name, None)
        content = message.get("content")
        if isinstance(content, list):
            for part in content:
                for name in _NOT_OPENAI_PART:
                    part.pop(name, None)
    return fields


def embeddings_body(request: EmbeddingRequest, model: str, quirks: Quirks) -> bytes:
    fields: dict[str, Any]
    if request.passthrough is not None:
        fields = dict(request.passthrough)
    else:
        fields = msgspec.to_builtins(msgspec.structs.replace(request, passthrough=None))
    fields["model"] = model
    for name in quirks.drop_params.intersection(fields):
        del fields[name]
    return _encode(fields)


def _apply_quirks(fields: dict[str, Any], quirks: Quirks) -> None:
    for name in quirks.drop_params.intersection(fields):
        del fields[name]
    wanted = quirks.max_tokens_field
    if wanted is not None:
        other = "max_completion_tokens" if wanted == "max_tokens" else "max_tokens"
        if other in fields and wanted not in fields:
            fields[wanted] = fields.pop(other)


def parse_response(body: bytes, deployment: str) -> ChatResponse:
    response = _decoded(_response_decoder, body, deployment, "unreadable response")
    response.raw, response.native = body, None  # an upstream's "native" key means nothing
    return response


def parse_chunk(data: bytes, deployment: str) -> ChatChunk:
    try:  # not through _decoded: this runs once per event of every stream
        chunk = _chunk_decoder.decode(data)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise UpstreamProtocolError(f"malformed stream chunk from the upstream: {exc}",
                                    deployment=deployment) from exc
    chunk.raw, chunk.native = data, None  # an upstream's "native" key means nothing
    return chunk


def parse_embeddings(body: bytes, deployment: str) -> EmbeddingResponse:
    response = _decoded(_embedding_decoder, body, deployment, "unreadable embeddings response")
    response.raw = body
    return response


def _decoded(decoder: msgspec.json.Decoder[T], body: bytes, deployment: str, what: str) -> T:
    try:
        return decoder.decode(body)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise UpstreamProtocolError(f"{what} from the upstream: {exc}",
                                    deployment=deployment) from exc


class _ModelEntry(msgspec.Struct):
    id: str


class _ModelList(msgspec.Struct):
    data: list[_ModelEntry]


_model_list_decoder = msgspec.json.Decoder(_ModelList, strict=False)


def parse_model_list(body: bytes, deployment: str) -> list[str]:
    try:
        return [m.id for m in _model_list_decoder.decode(body).data]
    except (msgspec.DecodeError, RecursionError) as exc:
        raise UpstreamProtocolError(f"unreadable model list: {exc}",
                                    deployment=deployment) from exc


def stream_error(data: bytes, deployment: str) -> UpstreamError | None:
    """Some servers report a failure inside the stream as ``data: {"error": {...}}``."""
    if not data.startswith(b'{"error"'):
        return None
    try:
        payload = _any_decoder.decode(data)
    except (msgspec.DecodeError, RecursionError):
        return None
    return error_from_status(500, payload, {}, deployment)


def error_from_response(
    status: int, body: bytes, headers: Mapping[str, str], deployment: str
) -> UpstreamError:
    try:
        payload = _any_decoder.decode(body) if body else None
    except (msgspec.DecodeError, RecursionError):
        payload = None
    if payload is None:
        payload = {"error": {"message": body[:300].decode("utf-8", "replace").strip()}}
    return error_from_status(status, payload, headers, deployment)


def error_from_status(
    status: int, payload: Any, headers: Mapping[str, str], deployment: str
) -> UpstreamError:
    """Map an OpenAI-style error to the gateway's tree, keeping the vendor's own message."""
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, str):
        error = {"message": error}
    if not isinstance(error, dict):
        error = {}
    message = str(error.get("message") or f"upstream returned HTTP {status}")
    code = error.get("code")
    code = str(code) if code is not None else None
    param = error.get("param") if isinstance(error.get("param"), str) else None
    kwargs: dict[str, Any] = {"deployment": deployment, "param": param}
    if code in ("context_length_exceeded", "string_above_max_length") or (
        status == 400 and "maximum context length" in message
    ):
        return ContextWindowExceeded(message, **kwargs)
    if code in ("content_policy_violation", "content_filter") or error.get("type") == (
        "content_policy_violation"
    ):
        return ContentFiltered(message, **kwargs)
    if status == 429:
        return UpstreamRateLimited(message, retry_after=retry_after(headers), **kwargs)
    if status in (401, 403):
        return UpstreamAuthError(f"the upstream refused the gateway's credentials: {message}",
                                 **kwargs)
    if status == 404:
        return UpstreamModelNotFound(f"the upstream does not know this model: {message}",
                                     **kwargs)
    if status == 408 or status >= 500:
        return UpstreamUnavailable(message, status=status if 500 <= status <= 599 else 503,
                                   **kwargs)
    return UpstreamRejected(message, status=status, code=code, **kwargs)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait: ``retry-after-ms`` (OpenAI), ``Retry-After`` (seconds), or else the
    later of ``x-ratelimit-reset-requests`` / ``-tokens`` (durations such as ``6m0s``)."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                continue  # an HTTP date: rare from LLM vendors, and not worth parsing here
    resets = [parse_duration(headers.get(h, "")) for h in
              ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens")]
    known = [r for r in resets if r is not None]
    return max(known) if known else None


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_duration(text: str) -> float | None:
    """OpenAI's reset durations: '1s', '6m0s', '20ms', '1h2m3.5s'; a bare number is seconds."""
    text = text.strip()
    if not text:
        return None
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _UNIT_S[u] for n, u in parts)
