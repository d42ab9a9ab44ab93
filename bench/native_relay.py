"""CPU of the Anthropic and Gemini same-dialect stream relays (``passthrough.stream``: events
framed, decoded for the engine, their bytes pinned on chunks), per stream of 40 text events
read in 600-byte pieces; no sockets.

    PYTHONPATH=<tree> python bench/native_relay.py [--streams 1000] [--repeat 7]

Runs against any tree of polyroute; compare two trees in one sitting. Prints µs of CPU per
stream, the least of ``--repeat`` runs."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from polyroute.adapters.anthropic_messages import passthrough as anthropic
from polyroute.adapters.gemini import passthrough as gemini

EVENTS = 40


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


def _text(text: str) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": text}}


ANTHROPIC = b"".join([
    _event("message_start", {"type": "message_start", "message": {
        "id": "m1", "type": "message", "role": "assistant", "model": "c", "content": [],
        "usage": {"input_tokens": 3, "output_tokens": 0}}}),
    _event("content_block_start", {"type": "content_block_start", "index": 0,
                                   "content_block": {"type": "text", "text": ""}}),
    *(_event("content_block_delta", _text("token ")) for _ in range(EVENTS)),
    _event("content_block_stop", {"type": "content_block_stop", "index": 0}),
    _event("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                             "usage": {"output_tokens": EVENTS}}),
    _event("message_stop", {"type": "message_stop"}),
])


def _candidate(last: bool) -> bytes:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": "token "}]},
                                 "index": 0}
    data: dict[str, Any] = {"candidates": [candidate]}
    if last:
        candidate["finishReason"] = "STOP"
        data["usageMetadata"] = {"promptTokenCount": 2, "candidatesTokenCount": EVENTS,
                                 "totalTokenCount": EVENTS + 2}
    return b"data: " + json.dumps(data).encode() + b"\r\n\r\n"


GEMINI = b"".join(_candidate(i == EVENTS - 1) for i in range(EVENTS))


async def _pieces(body: bytes, size: int = 600) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start:start + size]


async def _run(make: Callable[[], AsyncIterator[Any]], streams: int) -> None:
    for _ in range(streams):
        async for _ in make():
            pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    relays: dict[str, Callable[[], AsyncIterator[Any]]] = {
        "anthropic": lambda: anthropic.stream(_pieces(ANTHROPIC), "d", 1),
        "gemini": lambda: gemini.stream(_pieces(GEMINI), "m", "d", 1, lambda k: f"c{k}"),
    }
    for name, make in relays.items():
        best = float("inf")
        for _ in range(args.repeat):
            start = time.process_time()
            asyncio.run(_run(make, args.streams))
            best = min(best, (time.process_time() - start) / args.streams * 1e6)
        print(f"{name} relay: {best:.0f} µs CPU/stream")


if __name__ == "__main__":
    main()
