"""Property-based fuzzing (Hypothesis) of every decoder the gateway runs on bytes it does not
control: the four inbound dialects, the SSE reader, the Bedrock event-stream frame reader, and
each upstream protocol's response, stream and error parsing — followed by what the gateway does
next with a decoded value (translate it for every upstream; encode it for every dialect).

The property everywhere: the only exceptions are the gateway's own — a 4xx ``ClientError`` for
a client's bytes, an ``UpstreamError`` for an upstream's — never a ``TypeError`` or
``RecursionError`` that would become a 500, and nothing hangs (pytest-timeout bounds each test).

Inputs are shaped, not only random: JSON objects whose keys come from the very wire types the
decoders use (walked with ``msgspec.inspect``) and whose string values include the protocols'
own tags, so that examples get past the first field check and into the translation code.

Runs derandomized with no example database, so CI sees the same examples every time; set
POLYROUTE_FUZZ_EXAMPLES (default 100) to search longer locally.
"""

from __future__ import annotations

import asyncio
import os
import struct
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import msgspec
import msgspec.inspect as mi
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from polyroute.adapters.anthropic_messages import translate as anthropic_up
from polyroute.adapters.anthropic_messages.errors import (
    error_from_response as anthropic_error,
)
from polyroute.adapters.anthropic_messages.stream import StreamTranslator as AnthropicStream
from polyroute.adapters.anthropic_messages.stream import decode_event as anthropic_event
from polyroute.adapters.anthropic_messages.wire import Event as AnthropicEvent
from polyroute.adapters.anthropic_messages.wire import Message as AnthropicMessage
from polyroute.adapters.bedrock_converse import native as bedrock_native
from polyroute.adapters.bedrock_converse import translate as bedrock_up
from polyroute.adapters.bedrock_converse.errors import error_from_response as bedrock_error
from polyroute.adapters.bedrock_converse.eventstream import EventStreamDecoder
from polyroute.adapters.bedrock_converse.stream import StreamTranslator as BedrockStream
from polyroute.adapters.bedrock_converse.wire import Event as BedrockEvent
from polyroute.adapters.bedrock_converse.wire import Response as BedrockResponse
from polyroute.adapters.gemini import translate as gemini_up
from polyroute.adapters.gemini.errors import error_from_response as gemini_error
from polyroute.adapters.gemini.stream import StreamTranslator as GeminiStream
from polyroute.adapters.gemini.wire import EmbedResponse as GeminiEmbeddings
from polyroute.adapters.gemini.wire import Response as GeminiResponse
from polyroute.adapters.openai_chat import translate as openai_up
from polyroute.adapters.openai_responses import translate as responses_up
from polyroute.adapters.openai_responses.stream import StreamTranslator as ResponsesStream
from polyroute.adapters.sse import sse_data, sse_events
from polyroute.config.compiled import Quirks
from polyroute.errors import ClientError, GatewayError, UpstreamError
from polyroute.model.chat import ChatChunk, ChatRequest, ChatResponse
from polyroute.model.embeddings import EmbeddingRequest, EmbeddingResponse
from polyroute.sim.bedrock.eventstream import frame
from polyroute.surface.anthropic import decode as anthropic_in
from polyroute.surface.anthropic import encode as anthropic_out
from polyroute.surface.anthropic.wire import MessagesRequest
from polyroute.surface.bedrock import decode as converse_in
from polyroute.surface.bedrock import encode as converse_out
from polyroute.surface.bedrock.relay import StreamRelay as ConverseRelay
from polyroute.surface.bedrock.wire import ConverseRequest
from polyroute.surface.gemini import decode as gemini_in
from polyroute.surface.gemini import encode as gemini_out
from polyroute.surface.gemini.wire import GenerateContentRequest
from polyroute.surface.openai import decode as openai_in
from polyroute.surface.openai import encode as openai_out
from polyroute.surface.responses import decode as responses_in
from polyroute.surface.responses import encode as responses_out
from polyroute.surface.responses.relay import StreamRelay as ResponsesRelay
from polyroute.surface.responses.wire import ResponsesRequest
from tests.support.gateway import GatewayProcess

EXAMPLES = int(os.environ.get("POLYROUTE_FUZZ_EXAMPLES", "100"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])
pytestmark = pytest.mark.timeout(120)

# -- shaped JSON ----------------------------------------------------------------------------


def vocabulary(*types: Any) -> list[str]:
    """Every field name (as encoded) and literal string reachable from ``types``."""
    words: set[str] = set()
    seen: set[type] = set()

    def walk(t: mi.Type) -> None:
        if isinstance(t, mi.StructType):
            if t.cls in seen:
                return
            seen.add(t.cls)
            if isinstance(t.tag, str):
                words.add(t.tag)
            for f in t.fields:
                words.add(f.encode_name)
                walk(f.type)
        elif isinstance(t, mi.LiteralType):
            words.update(v for v in t.values if isinstance(v, str))
        elif isinstance(t, mi.ListType | mi.SetType | mi.FrozenSetType | mi.VarTupleType):
            walk(t.item_type)
        elif isinstance(t, mi.DictType):
            walk(t.value_type)
        elif isinstance(t, mi.UnionType):
            for member in t.types:
                walk(member)
        elif isinstance(t, mi.TupleType):
            for member in t.item_types:
                walk(member)

    for t in types:
        walk(mi.type_info(t))
    return sorted(words)


# Tags the wire types hold as plain strings, which the translation code compares against.
OPENAI_TAGS = ["system", "developer", "user", "assistant", "tool", "function", "text",
               "image_url", "file", "input_audio", "refusal", "json_schema", "json_object",
               "auto", "none", "required", "stop", "length", "tool_calls", "content_filter",
               "data:image/png;base64,iVBORw0KGgo=", "s3://b/k.png", "https://x/y.png",
               "data:application/pdf;base64,JVBERi0=", "high", "low", "thinking", "enabled",
               "redacted_thinking", "input_text", "output_text", "function_call",
               "function_call_output", "message", "input_image", "input_file", "ephemeral"]
ANTHROPIC_TAGS = ["message_start", "content_block_start", "content_block_delta",
                  "content_block_stop", "message_delta", "message_stop", "error", "ping",
                  "text", "tool_use", "thinking", "redacted_thinking", "text_delta",
                  "input_json_delta", "thinking_delta", "signature_delta", "end_turn",
                  "max_tokens", "stop_sequence", "refusal", "overloaded_error",
                  "invalid_request_error", "rate_limit_error", "image", "base64", "url",
                  "document", "tool_result", "any", "auto", "none", "enabled"]
GEMINI_TAGS = ["STOP", "MAX_TOKENS", "SAFETY", "RECITATION", "OTHER", "BLOCKLIST",
               "PROHIBITED_CONTENT", "model", "user", "INVALID_ARGUMENT", "RESOURCE_EXHAUSTED",
               "UNAVAILABLE", "PERMISSION_DENIED", "NOT_FOUND", "MALFORMED_FUNCTION_CALL"]
BEDROCK_TAGS = ["messageStart", "contentBlockStart", "contentBlockDelta", "contentBlockStop",
                "messageStop", "metadata", "end_turn", "tool_use", "max_tokens",
                "stop_sequence", "guardrail_intervened", "content_filtered", "assistant",
                "ThrottlingException", "ValidationException", "ModelStreamErrorException"]


def json_values(words: list[str]) -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12),
        st.sampled_from(words))
    keys = st.one_of(st.sampled_from(words), st.text(max_size=6))
    return st.recursive(
        scalars,
        lambda inner: st.one_of(st.lists(inner, max_size=4),
                                st.dictionaries(keys, inner, max_size=6)),
        max_leaves=40)


def json_objects(words: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(words), json_values(words), max_size=10)


def bodies(words: list[str], base: dict[str, Any] | None = None) -> st.SearchStrategy[bytes]:
    """Mostly JSON objects shaped like the wire type (merged over ``base``, a valid body, so
    that many get past the required fields); some arbitrary JSON, some arbitrary bytes."""
    shaped = json_objects(words).map(lambda extra: msgspec.json.encode({**(base or {}), **extra}))
    return st.one_of(
        shaped, shaped, shaped,
        json_values(words).map(msgspec.json.encode),
        st.binary(max_size=300))


def expect(allowed: type[GatewayError], fn: Callable[[], Any]) -> Any:
    """``fn()``, or None if it raised an ``allowed`` error (4xx only, for ClientError)."""
    try:
        return fn()
    except allowed as exc:
        if allowed is ClientError:
            assert 400 <= exc.status < 500, exc
        return None


# -- inbound: the three dialects, then every upstream's translation ----------------------------

QUIRKS = Quirks()
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
ANTHROPIC_CHAT = {**CHAT, "max_tokens": 5}
CHAT_WORDS = vocabulary(ChatRequest) + OPENAI_TAGS
ANTHROPIC_WORDS = vocabulary(MessagesRequest) + ANTHROPIC_TAGS
RESPONSES_WORDS = vocabulary(ResponsesRequest) + OPENAI_TAGS
GEMINI_WORDS = [*vocabulary(GenerateContentRequest), "contents", "systemInstruction",
                "generationConfig", "toolConfig", "functionDeclarations", "parts", "text",
                "role", "user", "model", "functionCall", "functionResponse", "inlineData",
                "thought", "thoughtSignature", "maxOutputTokens", "topK", "googleSearch",
                "generateContentRequest", "tools", "parameters", "OBJECT"]
GEMINI_CHAT = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
EMBEDDING_WORDS = [*vocabulary(EmbeddingRequest), "float", "base64"]
CONVERSE_WORDS = vocabulary(ConverseRequest) + BEDROCK_TAGS + [
    "user", "assistant", "png", "jpeg", "any", "auto", "tool", "aGk=", "s3Location"]


def translate_for_every_upstream(request: ChatRequest) -> None:
    """What an attempt does with a decoded request, for each protocol: refusals are
    ``UpstreamRejected`` (a 4xx), anything else is a bug."""
    for build in (lambda: openai_up.chat_body(request, "m", QUIRKS),
                  lambda: anthropic_up.chat_body(request, "m", QUIRKS, "d"),
                  lambda: gemini_up.chat_body(request, QUIRKS, "d"),
                  lambda: bedrock_up.chat_body(request, QUIRKS, "d"),
                  lambda: responses_up.request_body(request, "m", QUIRKS, "d"),
                  lambda: bedrock_native.forwarded_body(request) or b"{}"):
        body = expect(UpstreamError, build)
        if body is not None:
            msgspec.json.decode(body)  # what is sent is JSON


@FUZZ
@given(bodies(CHAT_WORDS, CHAT))
def test_openai_chat_decoder(body: bytes) -> None:
    request = expect(ClientError, lambda: openai_in.chat_request(body))
    if request is not None:
        translate_for_every_upstream(request)


@FUZZ
@given(bodies(EMBEDDING_WORDS, {"model": "m", "input": "hi"}))
def test_openai_embeddings_decoder(body: bytes) -> None:
    request = expect(ClientError, lambda: openai_in.embedding_request(body))
    if request is not None:
        expect(UpstreamError, lambda: openai_up.embeddings_body(request, "m", QUIRKS))
        expect(UpstreamError, lambda: gemini_up.embeddings_body(request, "m", QUIRKS, "d"))


@FUZZ
@given(bodies(ANTHROPIC_WORDS, ANTHROPIC_CHAT), st.booleans())
def test_anthropic_messages_decoder(body: bytes, count_only: bool) -> None:
    request = expect(ClientError,
                     lambda: anthropic_in.messages_request(body, count_only=count_only))
    if request is not None:
        translate_for_every_upstream(request)


@FUZZ
@given(bodies(GEMINI_WORDS, GEMINI_CHAT), st.booleans())
def test_gemini_generate_content_decoder(body: bytes, count_only: bool) -> None:
    decode = (gemini_in.count_request if count_only
              else lambda b, m: gemini_in.generate_request(b, m, stream=False))
    request = expect(ClientError, lambda: decode(body, "m"))
    if request is not None:
        translate_for_every_upstream(request)


@FUZZ
@given(bodies(RESPONSES_WORDS, {"model": "m", "input": "hi"}))
def test_responses_decoder(body: bytes) -> None:
    request = expect(ClientError, lambda: responses_in.responses_request(body))
    if request is not None:
        translate_for_every_upstream(request)


@FUZZ
@given(bodies(CONVERSE_WORDS, {"messages": [{"role": "user", "content": [{"text": "hi"}]}]}),
       st.booleans())
def test_converse_decoder(body: bytes, stream: bool) -> None:
    request = expect(ClientError, lambda: converse_in.converse_request(body, "m", stream))
    if request is not None:
        translate_for_every_upstream(request)


@FUZZ
@given(st.integers(min_value=90, max_value=3000), st.sampled_from("[{"),
       st.sampled_from(["openai", "anthropic", "responses", "gemini"]))
def test_deep_nesting_is_a_client_error_in_every_dialect(depth: int, opener: str,
                                                         dialect: str) -> None:
    closer = "]" if opener == "[" else "}"
    inner = (opener + ('"k":' if opener == "{" else "")) * depth + "1" + closer * depth
    body = f'{{"model": "m", "max_tokens": 5, "input": {inner}, "messages": {inner}}}'.encode()
    decode = {"openai": openai_in.chat_request, "anthropic": anthropic_in.messages_request,
              "responses": responses_in.responses_request,
              "gemini": lambda b: gemini_in.generate_request(b, "m", stream=False)}[dialect]
    expect(ClientError, lambda: decode(body))


# -- the SSE reader -------------------------------------------------------------------------

SSE_PIECES = st.lists(st.sampled_from([
    b"data: ", b"data:", b"event: x", b"\n", b"\r\n", b"\r", b"\n\n", b": ping", b"{}",
    b"[DONE]", b"\xff", "é".encode(), b"id: 1", b"retry: 5"]) | st.binary(max_size=8),
    max_size=40).map(b"".join)


async def _chunks(pieces: list[bytes]) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


def read_sse(pieces: list[bytes]) -> list[bytes]:
    async def collect() -> list[bytes]:
        return [data async for batch in sse_data(_chunks(pieces)) for data in batch]
    return asyncio.run(collect())


def splits(data: bytes) -> st.SearchStrategy[list[bytes]]:
    cuts = st.lists(st.integers(min_value=0, max_value=len(data)), max_size=6)
    return cuts.map(lambda at: [data[a:b] for a, b in zip([0, *sorted(at)],
                                                          [*sorted(at), len(data)],
                                                          strict=True)])


@FUZZ
@given(st.data())
def test_sse_reader_never_fails_and_ignores_how_reads_split(data: st.DataObject) -> None:
    stream = data.draw(SSE_PIECES)
    pieces = data.draw(splits(stream))
    whole = read_sse([stream])
    assert read_sse(pieces) == whole, "events must not depend on how the bytes arrived"


def read_events(pieces: list[bytes]) -> list[tuple[bytes, bytes]]:
    async def collect() -> list[tuple[bytes, bytes]]:
        return [e async for batch in sse_events(_chunks(pieces)) for e in batch]
    return asyncio.run(collect())


@FUZZ
@given(st.data())
def test_passthrough_events_are_the_bytes_that_came(data: st.DataObject) -> None:
    """The passthrough reader relays events verbatim: joined, they are the stream itself
    (less a blank tail), however the reads split it."""
    stream = data.draw(SSE_PIECES)
    whole = read_events([stream])
    assert read_events(data.draw(splits(stream))) == whole
    joined = b"".join(event for event, _ in whole)
    assert stream.startswith(joined) and not stream[len(joined):].strip()


# -- upstream answers: each protocol's parsing, then every dialect's encoding ------------------

def encode_for_every_dialect(response: ChatResponse) -> None:
    openai_out.response_body(response)
    anthropic_out.message_body(response)
    responses_out.response_body(response)
    gemini_out.response_body(response)
    converse_out.response_body(response, 1)


def relay_for_every_dialect(chunks: list[ChatChunk]) -> None:
    """The chunks a stream produced, through each dialect's stream encoder."""
    encoders: list[Any] = [openai_out.ChunkEncoder(True), anthropic_out.StreamEncoder("m"),
                           responses_out.StreamEncoder("m"), gemini_out.StreamEncoder("m"),
                           ResponsesRelay("m"), converse_out.StreamEncoder(), ConverseRelay()]
    for encoder in encoders:
        encoder.start()
        for chunk in chunks:
            encoder.feed([chunk])
        encoder.finish()


def call_id(n: int) -> str:
    return f"call_{n}"


OPENAI_RESPONSE = vocabulary(ChatResponse, ChatChunk, EmbeddingResponse) + OPENAI_TAGS
ANTHROPIC_RESPONSE = vocabulary(AnthropicMessage, AnthropicEvent) + ANTHROPIC_TAGS
GEMINI_RESPONSE = vocabulary(GeminiResponse, GeminiEmbeddings) + GEMINI_TAGS
BEDROCK_RESPONSE = vocabulary(BedrockResponse, BedrockEvent) + BEDROCK_TAGS
STATUSES = st.sampled_from([400, 401, 403, 404, 408, 413, 422, 429, 500, 502, 503, 529])
HEADERS = st.dictionaries(
    st.sampled_from(["retry-after", "retry-after-ms", "x-amzn-ErrorType",
                     "x-ratelimit-reset-requests", "content-type"]),
    st.text(max_size=20), max_size=3)


@FUZZ
@given(bodies(OPENAI_RESPONSE), st.lists(bodies(OPENAI_RESPONSE), max_size=6), STATUSES,
       HEADERS)
def test_openai_upstream_parsing(body: bytes, events: list[bytes], status: int,
                                 headers: dict[str, str]) -> None:
    response = expect(UpstreamError, lambda: openai_up.parse_response(body, "d"))
    if response is not None:
        encode_for_every_dialect(response)
    expect(UpstreamError, lambda: openai_up.parse_embeddings(body, "d"))
    chunks = []
    for data in events:
        error = openai_up.stream_error(data, "d")
        assert error is None or isinstance(error, UpstreamError)
        chunk = expect(UpstreamError, lambda data=data: openai_up.parse_chunk(data, "d"))
        if chunk is not None:
            chunks.append(chunk)
    relay_for_every_dialect(chunks)
    assert isinstance(openai_up.error_from_response(status, body, headers, "d"), UpstreamError)


RESPONSES_RESPONSE = vocabulary(responses_up.WireResponse) + OPENAI_TAGS + [
    "response.created", "response.output_text.delta", "response.output_item.added",
    "response.function_call_arguments.delta", "response.completed", "response.incomplete",
    "response.failed", "error", "completed", "incomplete", "max_output_tokens", "reasoning",
    "response.reasoning_summary_text.delta", "response.refusal.delta"]


@FUZZ
@given(bodies(RESPONSES_RESPONSE), st.lists(bodies(RESPONSES_RESPONSE, {"type": "x"}),
                                            max_size=8), st.booleans())
def test_responses_upstream_parsing(body: bytes, events: list[bytes], relay: bool) -> None:
    response = expect(UpstreamError, lambda: responses_up.parse_response(body, "d", relay))
    if response is not None:
        encode_for_every_dialect(response)
    stream = ResponsesStream("d")
    chunks: list[ChatChunk] = []
    for data in events:
        made = expect(UpstreamError, lambda data=data: stream.chunks(
            data, b"data: " + data + b"\n\n" if relay else None))
        chunks += made or []
    relay_for_every_dialect(chunks)


@FUZZ
@given(bodies(ANTHROPIC_RESPONSE), st.lists(bodies(ANTHROPIC_RESPONSE, {"type": "x"}),
                                            max_size=8), STATUSES, HEADERS)
def test_anthropic_upstream_parsing(body: bytes, events: list[bytes], status: int,
                                    headers: dict[str, str]) -> None:
    response = expect(UpstreamError, lambda: anthropic_up.parse_response(body, "d", 0))
    if response is not None:
        encode_for_every_dialect(response)
    translator = AnthropicStream("d", 0)
    chunks: list[ChatChunk] = []
    for data in events:
        event = expect(UpstreamError, lambda data=data: anthropic_event(data, "d"))
        if event is None:
            continue
        fed = expect(UpstreamError, lambda event=event: translator.feed(event))
        if fed is None:
            break  # an error event ends the stream
        chunks += fed
    relay_for_every_dialect(chunks)
    assert isinstance(anthropic_error(status, body, headers, "d"), UpstreamError)


@FUZZ
@given(bodies(GEMINI_RESPONSE), st.lists(bodies(GEMINI_RESPONSE), max_size=6), STATUSES,
       HEADERS)
def test_gemini_upstream_parsing(body: bytes, events: list[bytes], status: int,
                                 headers: dict[str, str]) -> None:
    response = expect(UpstreamError,
                      lambda: gemini_up.parse_response(body, "m", "d", 0, call_id))
    if response is not None:
        encode_for_every_dialect(response)
    embed = EmbeddingRequest(model="m", input=["a", "b"])
    expect(UpstreamError, lambda: gemini_up.parse_embeddings(body, embed, "m", "d"))
    translator = GeminiStream("m", "d", 0, call_id)
    chunks: list[ChatChunk] = []
    for data in events:
        fed = expect(UpstreamError, lambda data=data: translator.feed(data))
        if fed is None:
            break
        chunks += fed
    relay_for_every_dialect(chunks)
    assert isinstance(gemini_error(status, body, headers, "d"), UpstreamError)


def raw_frame(headers: bytes, payload: bytes) -> bytes:
    """A frame with correct lengths and checksums around arbitrary header bytes."""
    total = 12 + len(headers) + len(payload) + 4
    prelude = struct.pack(">II", total, len(headers))
    body = prelude + struct.pack(">I", zlib.crc32(prelude)) + headers + payload
    return body + struct.pack(">I", zlib.crc32(body))


BEDROCK_FRAMES = st.one_of(
    st.tuples(st.sampled_from(BEDROCK_TAGS), bodies(BEDROCK_RESPONSE)).map(
        lambda e: frame({":event-type": e[0], ":message-type": "event",
                         ":content-type": "application/json"}, e[1])),
    st.tuples(st.sampled_from(BEDROCK_TAGS), st.text(max_size=30)).map(
        lambda e: frame({":exception-type": e[0], ":message-type": "exception"},
                        msgspec.json.encode({"message": e[1]}))),
    st.tuples(st.binary(max_size=40), st.binary(max_size=40)).map(lambda h: raw_frame(*h)),
    st.binary(max_size=40),
)


@FUZZ
@given(bodies(BEDROCK_RESPONSE), st.lists(BEDROCK_FRAMES, max_size=8), st.data(), STATUSES,
       HEADERS)
def test_bedrock_upstream_parsing(body: bytes, frames: list[bytes], data: st.DataObject,
                                  status: int, headers: dict[str, str]) -> None:
    response = expect(UpstreamError,
                      lambda: bedrock_up.parse_response(body, "m", "rid", "d", 0))
    if response is not None:
        encode_for_every_dialect(response)
    stream = b"".join(frames)
    decoder, translator = EventStreamDecoder("d"), BedrockStream("m", "rid", "d", 0)
    chunks: list[ChatChunk] = []

    def consume(piece: bytes) -> Iterator[None]:
        for message in decoder.feed(piece):
            chunks.extend(translator.feed(message))
            yield None

    try:
        for piece in data.draw(splits(stream)):
            for _ in consume(piece):
                pass
    except UpstreamError:
        pass
    relay_for_every_dialect(chunks)
    assert isinstance(bedrock_error(status, body, headers, "d"), UpstreamError)


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(BEDROCK_TAGS), bodies(BEDROCK_RESPONSE)),
                min_size=1, max_size=6), st.data())
def test_bedrock_frames_survive_any_split(events: list[tuple[str, bytes]],
                                          data: st.DataObject) -> None:
    """Valid frames decode to the same messages however the network cut them."""
    stream = b"".join(frame({":event-type": kind, ":message-type": "event"}, payload)
                      for kind, payload in events)
    decoder = EventStreamDecoder("d")
    got = [m.payload for piece in data.draw(splits(stream)) for m in decoder.feed(piece)]
    assert got == [payload for _, payload in events]
    assert not decoder.pending


# -- HTTP: a modest fuzz against a live gateway ------------------------------------------------

HTTP_MODELS = st.sampled_from(["chat", "echo", "embed", "failover", "too-long", "nope",
                               "sim/gpt-4o-mini", "nowhere/x", ""])
HTTP_CASES = {
    "/v1/chat/completions": (CHAT_WORDS, {**CHAT, "model": "chat"}),
    "/v1/embeddings": (EMBEDDING_WORDS, {"model": "embed", "input": "hi"}),
    "/v1/responses": (RESPONSES_WORDS, {"model": "chat", "input": "hi"}),
    "/v1/messages": (ANTHROPIC_WORDS, {**ANTHROPIC_CHAT, "model": "chat"}),
}


def http_bodies(path: str) -> st.SearchStrategy[bytes]:
    words, base = HTTP_CASES[path]
    shaped = st.tuples(json_objects(words), HTTP_MODELS, st.booleans()).map(
        lambda t: msgspec.json.encode({**base, **t[0], "model": t[1], "stream": t[2]}))
    return st.one_of(shaped, shaped, bodies(words, base))


@pytest.fixture(scope="module")
def http(gateway: GatewayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.root_url, timeout=30) as client:
        yield client


@pytest.mark.parametrize("path", list(HTTP_CASES))
def test_live_gateway_answers_no_5xx(http: httpx.Client, gateway: GatewayProcess,
                                     path: str) -> None:
    statuses: list[int] = []

    @settings(max_examples=max(20, EXAMPLES // 2), deadline=None, database=None,
              derandomize=True, suppress_health_check=list(HealthCheck))
    @given(http_bodies(path))
    def send(body: bytes) -> None:
        response = http.post(path, content=body, headers={"Content-Type": "application/json"})
        statuses.append(response.status_code)
        assert response.status_code < 500, (body[:500], response.text[:500])
        if response.status_code >= 400:
            error = response.json()
            assert ("error" in error) if path != "/v1/messages" else error["type"] == "error"

    send()
    assert any(s == 200 for s in statuses), "the fuzz never got past validation"
    assert gateway.get("/healthz")[0] == 200
    assert "Traceback" not in gateway.log()


# -- nesting no decoder survives: inside strings, and from upstreams ---------------------------

DEEP = st.tuples(st.integers(min_value=150, max_value=3000), st.booleans()).map(
    lambda t: ('{"a":' * t[0] + "1" + "}" * t[0]) if t[1] else ("[" * t[0] + "]" * t[0]))


@FUZZ
@given(DEEP, st.sampled_from(["openai", "anthropic", "responses"]))
def test_deep_json_inside_strings_is_refused_not_a_crash(nest: str, dialect: str) -> None:
    """Tool-call arguments and tool results are JSON inside a JSON string: the body's depth
    check cannot see them, and translation decodes them."""
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": nest}}
    chat = {"model": "m", "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": nest}]}
    if dialect == "openai":
        request = openai_in.chat_request(msgspec.json.encode(chat))
    elif dialect == "anthropic":
        request = anthropic_in.messages_request(msgspec.json.encode({
            "model": "m", "max_tokens": 5, "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "c1", "name": "f", "input": {}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "c1", "content": nest}]}]}))
    else:
        request = responses_in.responses_request(msgspec.json.encode({
            "model": "m", "input": [
                {"type": "function_call", "call_id": "c1", "name": "f", "arguments": nest},
                {"type": "function_call_output", "call_id": "c1", "output": nest}]}))
    translate_for_every_upstream(request)


@FUZZ
@given(DEEP, st.sampled_from(["openai", "anthropic", "gemini", "bedrock"]), STATUSES)
def test_deeply_nested_upstream_answers_are_protocol_errors(nest: str, protocol: str,
                                                            status: int) -> None:
    for body in (nest.encode(), f'{{"a": {nest}}}'.encode(),
                 msgspec.json.encode({"choices": [{"index": 0, "message": {
                     "role": "assistant", "tool_calls": [{"id": "c", "type": "function",
                                                          "function": {"name": "f",
                                                                       "arguments": nest}}]},
                     "finish_reason": "tool_calls"}]})):
        if protocol == "openai":
            response = expect(UpstreamError, lambda b=body: openai_up.parse_response(b, "d"))
            expect(UpstreamError, lambda b=body: openai_up.parse_chunk(b, "d"))
            expect(UpstreamError, lambda b=body: openai_up.stream_error(b, "d"))
            error = openai_up.error_from_response(status, body, {}, "d")
        elif protocol == "anthropic":
            response = expect(UpstreamError,
                              lambda b=body: anthropic_up.parse_response(b, "d", 0))
            expect(UpstreamError, lambda b=body: anthropic_event(b, "d"))
            error = anthropic_error(status, body, {}, "d")
        elif protocol == "gemini":
            response = expect(UpstreamError, lambda b=body: gemini_up.parse_response(
                b, "m", "d", 0, call_id))
            expect(UpstreamError, lambda b=body: GeminiStream("m", "d", 0, call_id).feed(b))
            error = gemini_error(status, body, {}, "d")
        else:
            response = expect(UpstreamError, lambda b=body: bedrock_up.parse_response(
                b, "m", "rid", "d", 0))
            message = next(EventStreamDecoder("d").feed(frame(
                {":event-type": "contentBlockDelta", ":message-type": "event"}, body)))
            expect(UpstreamError,
                   lambda m=message: BedrockStream("m", "rid", "d", 0).feed(m))
            error = bedrock_error(status, body, {}, "d")
        assert isinstance(error, UpstreamError)
        if response is not None:
            encode_for_every_dialect(response)
