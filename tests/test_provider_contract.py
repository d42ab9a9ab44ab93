"""The provider contract: what every upstream protocol's adapter must do, one set of tests run
over all five (OpenAI, Azure, Anthropic, Gemini, Bedrock) through the in-memory transport. The
wire formats are data (tests/support/wire.py); the expectations are the same for each.

An adapter answers with canonical responses and chunks; a stream is split into reads anywhere
(mid-frame, mid-UTF-8 character) and still reads the same; a stream that ends before its
finish, breaks off, or reports an error inside is never passed off as an answer, and what came
before still counts; a refused connection, a timeout, a rate limit and a rejected key keep
their meaning (and so their failover trigger); a key the vendor echoes never reaches a client;
closing a stream early releases the response.

The same contract over real sockets and the vendors' own SDKs is in the per-vendor
tests/test_*_gateway.py files, which keep what is vendor-specific."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import msgspec
import pytest

from polyroute.adapters.base import Adapter
from polyroute.adapters.client import UpstreamClient
from polyroute.adapters.memory_transport import MemoryTransport, Scripted, in_order
from polyroute.adapters.registry import PROTOCOLS, AdapterRegistry
from polyroute.errors import (
    UpstreamAuthError,
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
)
from polyroute.model.chat import ChatChunk, ChatRequest, ContentPart, Message
from polyroute.model.tools import ImageURL
from polyroute.model.upstream import Quirks
from tests.support.wire import COMPLETION_TOKENS, KEY, PROMPT_TOKENS, WIRES, Wire, pieces

REQUEST = ChatRequest(messages=[Message(role="user", content="Say hello.")], model="model-x",
                      max_tokens=64)
TEXTS = ("Héllo", " wörld ✓", " — done.")


@pytest.fixture(params=sorted(WIRES))
def wire(request: pytest.FixtureRequest) -> Wire:
    return WIRES[request.param]


def test_every_registered_protocol_has_a_wire() -> None:
    assert set(WIRES) == set(PROTOCOLS)


def adapter_over(wire: Wire, *answers: Scripted) -> tuple[Adapter, MemoryTransport]:
    transport = MemoryTransport(in_order(*answers))
    return AdapterRegistry(UpstreamClient(transport, secrets=[KEY])).get(wire.protocol), transport


async def collect(stream: AsyncIterator[list[ChatChunk]],
                  into: list[ChatChunk] | None = None) -> list[ChatChunk]:
    chunks = [] if into is None else into
    async for batch in stream:
        assert batch, "an adapter yielded an empty batch"
        chunks += batch
    return chunks


def text_of(chunks: list[ChatChunk]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


async def test_chat_answer_with_usage_and_the_request_it_sent(wire: Wire) -> None:
    adapter, transport = adapter_over(wire, Scripted.body(wire.answer("".join(TEXTS))))
    response = await adapter.chat(REQUEST, wire.deployment(), connect_s=1.0)
    choice = response.choices[0]
    assert choice.message.content == "".join(TEXTS) and choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert response.usage is not None
    assert (response.usage.prompt_tokens, response.usage.completion_tokens,
            response.usage.total_tokens) == (PROMPT_TOKENS, COMPLETION_TOKENS,
                                             PROMPT_TOKENS + COMPLETION_TOKENS)
    [sent] = transport.sent
    assert sent.method == "POST" and str(sent.url) == wire.base_url + wire.chat_path
    assert any(KEY in value for value in sent.headers.values()), "the key was not sent"
    assert sent.body is not None and isinstance(msgspec.json.decode(sent.body), dict)
    assert sent.deployment == "dep" and sent.connect_s == 1.0


@pytest.mark.parametrize("read_size", [1, 7, 64, 1 << 20])
async def test_stream_reads_the_same_however_the_bytes_are_split(
    wire: Wire, read_size: int
) -> None:
    body = pieces(wire.stream(*TEXTS), read_size)
    adapter, transport = adapter_over(wire, Scripted(chunks=body))
    chunks = await collect(adapter.stream_chat(REQUEST, wire.deployment(), connect_s=1.0))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert text_of(chunks) == "".join(TEXTS)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and not any(finishes[:-1])
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (
        PROMPT_TOKENS, COMPLETION_TOKENS)
    assert sum(c.usage is not None for c in chunks) == 1, "one usage chunk, at the end"
    assert str(transport.sent[0].url) == wire.base_url + wire.stream_path
    assert transport.open == 0, "the response was not released"


async def test_stream_that_ends_before_its_finish_is_not_an_answer(wire: Wire) -> None:
    body = wire.stream_start() + wire.stream_text("partial")
    adapter, _ = adapter_over(wire, Scripted(chunks=(body,)))
    chunks: list[ChatChunk] = []
    with pytest.raises(UpstreamProtocolError, match="ended before the answer finished"):
        await collect(adapter.stream_chat(REQUEST, wire.deployment(), connect_s=1.0), chunks)
    assert text_of(chunks) == "partial", "what arrived before the end was lost"


async def test_connection_breaking_off_mid_stream(wire: Wire) -> None:
    first = wire.stream_start() + wire.stream_text("before")
    adapter, transport = adapter_over(
        wire, Scripted(chunks=(first, wire.stream_text("after") + wire.stream_end()),
                       break_after=1))
    chunks: list[ChatChunk] = []
    with pytest.raises(UpstreamConnectError, match="broke during the response") as caught:
        await collect(adapter.stream_chat(REQUEST, wire.deployment("dep-b"), connect_s=1.0),
                      chunks)
    assert caught.value.deployment == "dep-b"
    assert text_of(chunks) == "before"
    assert transport.open == 0


async def test_error_inside_a_stream_after_content(wire: Wire) -> None:
    body = wire.stream_start() + wire.stream_text("so far") + wire.stream_error("it broke")
    adapter, _ = adapter_over(wire, Scripted(chunks=(body,)))
    chunks: list[ChatChunk] = []
    with pytest.raises(UpstreamError, match="it broke") as caught:
        await collect(adapter.stream_chat(REQUEST, wire.deployment(), connect_s=1.0), chunks)
    assert not isinstance(caught.value, UpstreamProtocolError)
    assert text_of(chunks) == "so far", "what arrived before the error was lost"


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("fail", "error"), [("connect", UpstreamConnectError),
                                              ("timeout", UpstreamTimeout)])
async def test_refused_and_timed_out_connections(
    wire: Wire, stream: bool, fail: str, error: type[UpstreamError]
) -> None:
    adapter, _ = adapter_over(wire, Scripted(fail=fail))
    with pytest.raises(error) as caught:
        if stream:
            await collect(adapter.stream_chat(REQUEST, wire.deployment(), connect_s=1.0))
        else:
            await adapter.chat(REQUEST, wire.deployment(), connect_s=1.0)
    assert caught.value.deployment == "dep" and caught.value.trigger == fail


@pytest.mark.parametrize("stream", [False, True])
async def test_rate_limit_keeps_its_meaning(wire: Wire, stream: bool) -> None:
    adapter, _ = adapter_over(wire, wire.rate_limited("slow down please"))
    with pytest.raises(UpstreamRateLimited, match="slow down please") as caught:
        if stream:
            await collect(adapter.stream_chat(REQUEST, wire.deployment(), connect_s=1.0))
        else:
            await adapter.chat(REQUEST, wire.deployment(), connect_s=1.0)
    assert caught.value.trigger == "rate_limited" and caught.value.deployment == "dep"


async def test_rejected_key_is_an_auth_error_with_the_key_redacted(wire: Wire) -> None:
    adapter, _ = adapter_over(wire, wire.auth_failed(f"Incorrect API key provided: {KEY}."))
    with pytest.raises(UpstreamAuthError) as caught:
        await adapter.chat(REQUEST, wire.deployment(), connect_s=1.0)
    assert KEY not in str(caught.value) and KEY[:12] not in caught.value.message
    assert "Incorrect API key provided" in caught.value.message


async def test_closing_a_stream_early_releases_the_response(wire: Wire) -> None:
    body = pieces(wire.stream(*TEXTS * 20), 16)
    adapter, transport = adapter_over(wire, Scripted(chunks=body, chunk_delay_s=0.001))
    stream = adapter.stream_chat(REQUEST, wire.deployment(), connect_s=1.0)
    assert isinstance(stream, AsyncIterator)
    first = await anext(stream)
    assert first and transport.open == 1
    await stream.aclose()  # type: ignore[attr-defined]
    assert transport.open == 0


async def test_slow_upstream_is_bounded_by_the_caller(wire: Wire) -> None:
    """Adapters enforce only the connect timeout; the engine's deadlines wrap the call."""
    adapter, transport = adapter_over(wire, Scripted(chunks=(wire.answer("late"),), delay_s=5))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(adapter.chat(REQUEST, wire.deployment(), connect_s=1.0), 0.02)
    assert transport.open == 0


SUPPORT_DECLARED = [name for name in sorted(WIRES) if PROTOCOLS[name].support is not None]


def passthrough(**fields: bytes) -> ChatRequest:
    """A request as the OpenAI surface decodes it: its top-level fields kept raw."""
    raw = {"messages": msgspec.Raw(b'[{"role":"user","content":"Say hello."}]'),
           "model": msgspec.Raw(b'"model-x"'), "max_tokens": msgspec.Raw(b"64")}
    raw.update({name: msgspec.Raw(value) for name, value in fields.items()})
    return ChatRequest(messages=REQUEST.messages, model="model-x", max_tokens=64,
                       passthrough=raw)


@pytest.mark.parametrize("protocol", SUPPORT_DECLARED)
async def test_a_field_the_protocol_cannot_carry_is_a_400_naming_it(protocol: str) -> None:
    wire = WIRES[protocol]
    support = PROTOCOLS[protocol].support
    assert support is not None
    adapter, transport = adapter_over(wire, Scripted.body(wire.answer("ok")))
    with pytest.raises(UpstreamRejected) as caught:
        await adapter.chat(passthrough(logprobs=b"true"), wire.deployment(), connect_s=1.0)
    assert caught.value.status == 400 and caught.value.param == "logprobs"
    assert support.vendor in caught.value.message and "drop_params" in caught.value.message
    assert transport.sent == [], "a refused request was sent"
    # Values that ask for nothing need no equivalent; a dropped field is not sent.
    neutral = passthrough(logprobs=b"false", n=b"1", service_tier=b'"auto"', logit_bias=b"{}")
    assert (await adapter.chat(neutral, wire.deployment(), connect_s=1.0)).choices
    dropping = wire.deployment(quirks=Quirks(drop_params=frozenset({"logprobs"})))
    assert (await adapter.chat(passthrough(logprobs=b"true"), dropping, connect_s=1.0)).choices
    assert b"logprobs" not in (transport.sent[-1].body or b"")


@pytest.mark.parametrize("protocol", SUPPORT_DECLARED)
async def test_typed_fields_from_another_dialect_are_checked_too(protocol: str) -> None:
    """A request built by the Anthropic or Responses surface has no passthrough."""
    wire = WIRES[protocol]
    support = PROTOCOLS[protocol].support
    assert support is not None
    adapter, _ = adapter_over(wire, Scripted.body(wire.answer("ok")))
    for name in support.typed:
        value: object = "high" if name == "reasoning_effort" else 3
        request = msgspec.structs.replace(REQUEST, **{name: value})
        with pytest.raises(UpstreamRejected) as caught:
            await adapter.chat(request, wire.deployment(), connect_s=1.0)
        assert caught.value.param == name
        neutral = msgspec.structs.replace(REQUEST, **{name: 1 if name == "n" else None})
        assert (await adapter.chat(neutral, wire.deployment(), connect_s=1.0)).choices
    serial = msgspec.structs.replace(REQUEST, parallel_tool_calls=False)
    if support.serial_tool_calls:
        assert (await adapter.chat(serial, wire.deployment(), connect_s=1.0)).choices
    else:
        with pytest.raises(UpstreamRejected, match="one call at a time"):
            await adapter.chat(serial, wire.deployment(), connect_s=1.0)


@pytest.mark.parametrize("protocol", ["anthropic", "bedrock", "gemini"])
@pytest.mark.parametrize(("url", "problem"), [
    ("data:image/png;base64,!!!!not-base64", "the data: URL is not valid base64"),
    ("data:image/png,not-marked-base64", "base64 data: URL"),
])
async def test_an_image_data_url_that_cannot_be_read_is_a_400(
    protocol: str, url: str, problem: str
) -> None:
    """The protocols that carry images inline read data URLs with one shared parser."""
    wire = WIRES[protocol]
    adapter, transport = adapter_over(wire, Scripted.body(wire.answer("ok")))
    image = ContentPart(type="image_url", image_url=ImageURL(url))
    request = msgspec.structs.replace(REQUEST, messages=[
        Message(role="user", content=[ContentPart(type="text", text="What is it?"), image])])
    with pytest.raises(UpstreamRejected, match=problem) as caught:
        await adapter.chat(request, wire.deployment(), connect_s=1.0)
    assert caught.value.status == 400
    assert caught.value.param == "messages[0].content[1].image_url.url"
    assert transport.sent == []
    png = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    fine = ContentPart(type="image_url", image_url=ImageURL(png))
    request = msgspec.structs.replace(REQUEST, messages=[Message(role="user", content=[fine])])
    assert (await adapter.chat(request, wire.deployment(), connect_s=1.0)).choices
    assert b"iVBORw0KGgo" in (transport.sent[-1].body or b"")
