"""The SSE parser works on bytes, so any split of the input — even inside a multi-byte UTF-8
character or a CRLF — yields the same events."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

from polyroute.adapters.sse import sse_data

STREAM = (
    'data: {"t":"สวัสดี"}\n\n'
    ": keep-alive comment\n\n"
    'data: {"t":"你好 🌍"}\r\n\r\n'
    "event: message\ndata: {\"t\":\n"
    'data: "שלום"}\n\n'
    "data: [DONE]\n\n"
).encode()
EXPECTED = [
    '{"t":"สวัสดี"}'.encode(),
    '{"t":"你好 🌍"}'.encode(),
    '{"t":\n"שלום"}'.encode(),
    b"[DONE]",
]


async def pieces(data: bytes, cuts: list[int]) -> AsyncIterator[bytes]:
    start = 0
    for cut in [*sorted(cuts), len(data)]:
        yield data[start:cut]
        start = cut


async def collect(data: bytes, cuts: list[int]) -> list[bytes]:
    return [event async for batch in sse_data(pieces(data, cuts)) for event in batch]


async def test_whole_stream() -> None:
    assert await collect(STREAM, []) == EXPECTED


async def test_every_single_split_point() -> None:
    for cut in range(1, len(STREAM)):
        assert await collect(STREAM, [cut]) == EXPECTED, cut


async def test_random_many_splits() -> None:
    rng = random.Random(7)
    for _ in range(200):
        cuts = rng.sample(range(1, len(STREAM)), rng.randint(2, 30))
        assert await collect(STREAM, cuts) == EXPECTED


async def test_one_batch_per_read() -> None:
    batches = [b async for b in sse_data(pieces(b"data: 1\n\ndata: 2\n\ndata: 3", [9]))]
    assert batches == [[b"1"], [b"2"], [b"3"]]
    batches = [b async for b in sse_data(pieces(b"data: 1\n\ndata: 2\n\n", []))]
    assert batches == [[b"1", b"2"]]


async def test_last_event_without_blank_line() -> None:
    assert await collect(b'data: {"a":1}\n\ndata: {"b":2}', []) == [b'{"a":1}', b'{"b":2}']
