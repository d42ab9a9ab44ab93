"""The gateway's own CPU for one Anthropic → Anthropic request, translated (the path before
issue 12 item 3) against passed through, in process, without sockets: the client's body
decoded, the upstream body built, the upstream's answer read and the client's answer encoded.
Network and event-loop costs are the same on both paths and left out (bench/run.py measures
the whole request).

    python bench/passthrough.py [--n 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable

from polyroute.adapters.anthropic_messages import passthrough, translate
from polyroute.adapters.anthropic_messages.adapter import _event
from polyroute.adapters.anthropic_messages.stream import StreamTranslator
from polyroute.adapters.sse import sse_data
from polyroute.model.upstream import Quirks
from polyroute.surface.anthropic import decode, encode

WORDS = ("Hello!", "I", "am", "a", "simulator.", "This", "reply", "is", "deterministic,",
         "so", "the", "benchmark", "can", "compare", "it", "byte", "for", "byte.")
BODY = json.dumps({
    "model": "claude", "max_tokens": 300, "system": "Be brief.",
    "messages": [{"role": "user", "content": "Say hello. " * 20}],
    "metadata": {"user_id": "u-1"}, "temperature": 0.2}).encode()
ANSWER = json.dumps({
    "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sim",
    "content": [{"type": "text", "text": " ".join(WORDS)}], "stop_reason": "end_turn",
    "stop_sequence": None, "usage": {"input_tokens": 60, "output_tokens": 22}}).encode()


def _sse(name: str, data: object) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


EVENTS = b"".join([
    _sse("message_start", {"type": "message_start", "message": {
        "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sim",
        "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 60, "output_tokens": 1}}}),
    _sse("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
    *(_sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                   "delta": {"type": "text_delta", "text": w + " "}})
      for w in WORDS),
    _sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
    _sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                           "usage": {"output_tokens": 22}}),
    _sse("message_stop", {"type": "message_stop"}),
])


def whole_translated() -> None:
    request = decode.messages_request(BODY)
    request.native = None
    translate.chat_body(request, "claude-sim", Quirks(), "d")
    encode.message_body(translate.parse_response(ANSWER, "d", 0))


def whole_passed() -> None:
    request = decode.messages_request(BODY)
    assert request.native is not None
    passthrough.body(request, request.native, "claude-sim")
    encode.message_body(passthrough.parse_response(ANSWER, "d", 0))


async def _pieces() -> AsyncIterator[bytes]:
    yield EVENTS


async def _stream_translated() -> None:
    request = decode.messages_request(BODY)
    request.native = None
    translate.chat_body(request, "claude-sim", Quirks(), "d")
    translator, encoder = StreamTranslator("d", 0), encode.StreamEncoder("claude")
    async for events in sse_data(_pieces()):
        for data in events:
            encoder.feed(translator.feed(_event(data, "d")))
    encoder.finish()


async def _stream_passed() -> None:
    request = decode.messages_request(BODY)
    assert request.native is not None
    passthrough.body(request, request.native, "claude-sim")
    encoder = encode.StreamEncoder("claude")
    async for batch in passthrough.stream(_pieces(), "d", 0):
        encoder.feed(batch)
    encoder.finish()


def cpu_us(fn: Callable[[], None], n: int) -> float:
    for _ in range(n // 10):
        fn()
    start = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - start) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20000)
    n = parser.parse_args().n
    loop = asyncio.new_event_loop()
    cases = {
        "whole, translated": whole_translated,
        "whole, passed through": whole_passed,
        "stream, translated": lambda: loop.run_until_complete(_stream_translated()),
        "stream, passed through": lambda: loop.run_until_complete(_stream_passed()),
    }
    for name, fn in cases.items():
        print(f"{name:24} {cpu_us(fn, n):8.1f} µs CPU per request")
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()


if __name__ == "__main__":
    main()
