"""LiveStream on hand-made upstreams: endings, stalls and the finished-but-silent upstream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from polyroute.engine.streaming import LiveStream, OpenedStream, open_stream
from polyroute.errors import StreamInterrupted, UpstreamTimeout
from polyroute.model.chat import ChatChunk, ChunkChoice, Delta
from polyroute.model.record import RequestRecord
from polyroute.model.usage import Usage


def chunk(text: str | None = None, finish: str | None = None, role: str | None = None,
          usage: Usage | None = None) -> ChatChunk:
    choices = [] if usage else [ChunkChoice(0, Delta(role=role, content=text), finish)]
    return ChatChunk(id="c", model="m", choices=choices, usage=usage)


async def upstream(*batches: list[ChatChunk], hang: bool = False) -> AsyncIterator[list[ChatChunk]]:
    for batch in batches:
        yield batch
    if hang:
        await asyncio.sleep(3600)


def live(opened: OpenedStream, record: RequestRecord, stall_s: float = 0.3) -> LiveStream:
    loop = asyncio.get_running_loop()
    settled: list[bool] = []
    return LiveStream(opened, record, stall_s=stall_s, deadline=loop.time() + 30,
                      on_failure=lambda exc: None, settle=lambda: settled.append(True))


async def test_first_content_is_held_until_it_arrives() -> None:
    up = upstream([chunk(role="assistant")], [chunk("Hi")], [chunk(finish="stop")])
    opened = await open_stream(up, ttft_s=1, deadline=asyncio.get_running_loop().time() + 5)
    assert [len(b) for b in opened.held] == [1, 1]  # the role chunk, then the content
    await opened.aclose()


async def test_no_first_token_in_time() -> None:
    with pytest.raises(UpstreamTimeout):
        await open_stream(upstream([chunk(role="assistant")], hang=True), ttft_s=0.1,
                          deadline=asyncio.get_running_loop().time() + 5)


async def test_finished_answer_whose_upstream_never_ends_completes() -> None:
    record = RequestRecord("r", 0, "chat", "m")
    up = upstream([chunk("Hi")], [chunk(finish="stop")],
                  [chunk(usage=Usage(prompt_tokens=1, completion_tokens=2))], hang=True)
    opened = await open_stream(up, ttft_s=1, deadline=asyncio.get_running_loop().time() + 5)
    stream = live(opened, record, stall_s=30)
    started = asyncio.get_running_loop().time()
    batches = [b async for b in stream]
    assert asyncio.get_running_loop().time() - started < 2.5  # the 2 s tail, not the 30 s stall
    assert len(batches) == 3 and record.error_class is None
    assert record.usage is not None and record.usage.completion_tokens == 2


async def test_stall_before_the_finish_is_an_interruption() -> None:
    record = RequestRecord("r", 0, "chat", "m")
    opened = await open_stream(upstream([chunk("Hi")], hang=True), ttft_s=1,
                               deadline=asyncio.get_running_loop().time() + 5)
    stream = live(opened, record)
    with pytest.raises(StreamInterrupted):
        async for _ in stream:
            pass
    assert record.error_class == "stream_interrupted"
