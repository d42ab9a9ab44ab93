"""What the streaming path's savings must not change (docs/notes.md, "Streaming CPU per
request"): the stream loop makes no async generator (each cost a hook, and one left unfinished
a finalizer task), it still stops at ``[DONE]`` and delivers a batch before an error, and the
units a stream without usage is charged, counted once at the end, are what the batches sent."""

from __future__ import annotations

import sys
from types import TracebackType

import pytest

from polyroute.adapters.openai_chat.stream import StreamTranslator
from polyroute.adapters.sse import sse_data, sse_events
from polyroute.adapters.stream_driver import drive
from polyroute.engine.estimate import text_units
from polyroute.engine.resume import Transcript
from polyroute.errors import UpstreamError
from polyroute.model.chat import ChatChunk, ChunkChoice, Delta, FunctionCall, ToolCall


class Pieces:
    """A body's reads, as an iterator class (an async generator would be counted too)."""

    def __init__(self, *pieces: bytes) -> None:
        self.left = list(pieces)

    def __aiter__(self) -> Pieces:
        return self

    async def __anext__(self) -> bytes:
        if not self.left:
            raise StopAsyncIteration
        return self.left.pop(0)


class CountingHooks:
    """Every async generator first stepped while the hooks are installed."""

    def __init__(self) -> None:
        self.started: list[object] = []

    def __enter__(self) -> CountingHooks:
        self._old = sys.get_asyncgen_hooks()
        sys.set_asyncgen_hooks(firstiter=self.started.append, finalizer=self._old.finalizer)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        sys.set_asyncgen_hooks(*self._old)


def _chunk(content: str = "", finish: str | None = None) -> bytes:
    finish_json = f'"{finish}"' if finish else "null"
    return (b'data: {"id":"c","model":"m","created":1,"choices":[{"index":0,"delta":'
            b'{"content":"' + content.encode() + b'"},"finish_reason":' + finish_json.encode()
            + b"}]}\n\n")


async def test_the_stream_loop_makes_no_async_generator_and_stops_at_done() -> None:
    body = Pieces(_chunk("Hel") + _chunk("lo", "stop") + b"data: [DONE]\n\n",
                  b"data: never read\n\n")
    with CountingHooks() as hooks:
        batches = [batch async for batch in drive(sse_data(body), StreamTranslator("d"), "d")]
    assert hooks.started == []
    assert [[c.choices[0].delta.content for c in batch] for batch in batches] == [["Hel", "lo"]]
    assert body.left == [b"data: never read\n\n"]  # nothing read after [DONE]


async def test_sse_events_makes_no_async_generator() -> None:
    with CountingHooks() as hooks:
        events = [e async for batch in sse_events(Pieces(b": ping\n\ndata: x\n", b"\n"))
                  for e in batch]
    assert hooks.started == []
    assert events == [(b": ping\n\n", b""), (b"data: x\n\n", b"x")]


async def test_a_batch_before_an_error_is_delivered_then_the_error() -> None:
    body = Pieces(_chunk("partial") + b'data: {"error":{"message":"overloaded"}}\n\n')
    stream = drive(sse_data(body), StreamTranslator("d"), "d")
    first = await anext(stream)
    assert [c.choices[0].delta.content for c in first] == ["partial"]
    with pytest.raises(UpstreamError, match="overloaded"):
        await anext(stream)
    with pytest.raises(StopAsyncIteration):
        await anext(stream)


async def test_a_body_that_ends_before_the_finish_is_a_protocol_error() -> None:
    stream = drive(sse_data(Pieces(_chunk("cut"))), StreamTranslator("d"), "d")
    assert len(await anext(stream)) == 1
    with pytest.raises(UpstreamError, match="ended before the answer finished"):
        await anext(stream)


def _choice(index: int, **delta: object) -> ChunkChoice:
    return ChunkChoice(index, Delta(**delta))  # type: ignore[arg-type]


def test_units_count_every_choice_once_at_the_end() -> None:
    call = ToolCall(function=FunctionCall(name="lookup", arguments='{"q":'))
    more = ToolCall(function=FunctionCall(arguments='"x"}'))
    other_call = ToolCall(index=0, function=FunctionCall(name="f", arguments="{}"))
    batches = [
        [ChatChunk(choices=[_choice(0, content="Hello, "), _choice(1, content="你好")])],
        [ChatChunk(choices=[_choice(0, reasoning_content="think", tool_calls=[call])]),
         ChatChunk(choices=[_choice(0, tool_calls=[more]), _choice(1, refusal="no")])],
        [ChatChunk(choices=[_choice(1, tool_calls=[other_call], reasoning_content="hm")])],
        [ChatChunk(choices=[_choice(0, refusal="sorry")])],
    ]
    sent = Transcript()
    for batch in batches:
        sent.observe(batch)
    texts = ["Hello, ", "你好", "think", "no", "hm", "sorry"]
    calls = len("lookup") + len('{"q":') + len('"x"}') + len("f") + len("{}")
    assert sent.units() == sum(text_units(t) for t in texts) + calls
    assert text_units("你好") == 2 * 5  # CJK: a token and a quarter a character
