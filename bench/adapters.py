"""CPU per request of the adapters alone: each protocol's chat (body built, answer parsed) and
stream (body built, 40 text events framed and translated), in process, with the network
replaced by a canned aiohttp-like session. What it isolates is the code between the engine
and the socket: the transport and its client, the stream loop, the translation.

    PYTHONPATH=<tree> python bench/adapters.py [--requests 2000] [--repeat 7]

Runs against any tree of polyroute, before or after the transport seam (issue 12, item 5):
it patches the aiohttp session of whichever transport class the tree has, so both measure the
same work. Compare two trees in one sitting; the figures are µs of CPU per request, the
least of ``--repeat`` runs (a shared machine only ever adds time)."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from multidict import CIMultiDict, CIMultiDictProxy

from polyroute.adapters.registry import AdapterRegistry
from polyroute.model.chat import ChatRequest, Message
from polyroute.model.upstream import Deployment, Endpoint
from polyroute.sim.bedrock import eventstream

EVENTS = 40
TEXT = "token "


def _sse(*events: Any) -> bytes:
    return b"".join(b"data: " + (e if isinstance(e, bytes) else json.dumps(e).encode())
                    + b"\n\n" for e in events)


def _openai() -> tuple[bytes, bytes]:
    usage = {"prompt_tokens": 5, "completion_tokens": EVENTS, "total_tokens": 5 + EVENTS}
    answer = json.dumps({"id": "c", "object": "chat.completion", "created": 1, "model": "m",
                         "choices": [{"index": 0, "finish_reason": "stop", "message": {
                             "role": "assistant", "content": TEXT * EVENTS}}],
                         "usage": usage}).encode()

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    stream = _sse(chunk({"role": "assistant", "content": ""}),
                  *(chunk({"content": TEXT}) for _ in range(EVENTS)), chunk({}, "stop"),
                  {**chunk({}), "choices": [], "usage": usage}, b"[DONE]")
    return answer, stream


def _anthropic() -> tuple[bytes, bytes]:
    message = {"id": "msg", "type": "message", "role": "assistant", "model": "m",
               "content": [], "stop_reason": None, "stop_sequence": None,
               "usage": {"input_tokens": 5, "output_tokens": 1}}
    answer = json.dumps({**message, "content": [{"type": "text", "text": TEXT * EVENTS}],
                         "stop_reason": "end_turn"}).encode()
    stream = _sse({"type": "message_start", "message": message},
                  {"type": "content_block_start", "index": 0,
                   "content_block": {"type": "text", "text": ""}},
                  *({"type": "content_block_delta", "index": 0,
                     "delta": {"type": "text_delta", "text": TEXT}} for _ in range(EVENTS)),
                  {"type": "content_block_stop", "index": 0},
                  {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                   "usage": {"output_tokens": EVENTS}},
                  {"type": "message_stop"})
    return answer, stream


def _gemini() -> tuple[bytes, bytes]:
    usage = {"promptTokenCount": 5, "candidatesTokenCount": EVENTS, "totalTokenCount": 45}

    def response(text: str, finish: str | None = None) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": text}]},
                                     "index": 0}
        if finish:
            candidate["finishReason"] = finish
        return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": "m",
                "responseId": "r"}
    answer = json.dumps(response(TEXT * EVENTS, "STOP")).encode()
    stream = _sse(*(response(TEXT) for _ in range(EVENTS)), response("", "STOP"))
    return answer, stream


def _bedrock() -> tuple[bytes, bytes]:
    usage = {"inputTokens": 5, "outputTokens": EVENTS, "totalTokens": 5 + EVENTS}
    answer = json.dumps({"output": {"message": {"role": "assistant", "content": [
        {"text": TEXT * EVENTS}]}}, "stopReason": "end_turn", "usage": usage,
        "metrics": {"latencyMs": 1}}).encode()
    stream = (eventstream.event("messageStart", {"role": "assistant"})
              + b"".join(eventstream.event("contentBlockDelta", {
                  "contentBlockIndex": 0, "delta": {"text": TEXT}}) for _ in range(EVENTS))
              + eventstream.event("contentBlockStop", {"contentBlockIndex": 0})
              + eventstream.event("messageStop", {"stopReason": "end_turn"})
              + eventstream.event("metadata", {"usage": usage, "metrics": {"latencyMs": 1}}))
    return answer, stream


PROTOCOLS: dict[str, tuple[Callable[[], tuple[bytes, bytes]], dict[str, str]]] = {
    "openai": (_openai, {"Authorization": "Bearer k"}),
    "anthropic": (_anthropic, {"x-api-key": "k"}),
    "gemini": (_gemini, {"x-goog-api-key": "k"}),
    "bedrock": (_bedrock, {"Authorization": "Bearer k"}),
}


class _Content:
    def __init__(self, pieces: list[bytes]) -> None:
        self._pieces = pieces

    async def iter_any(self) -> AsyncIterator[bytes]:
        for piece in self._pieces:
            yield piece


class _Response:
    status = 200
    headers = CIMultiDictProxy(CIMultiDict())

    def __init__(self, pieces: list[bytes]) -> None:
        self.content = _Content(pieces)
        self._pieces = pieces

    async def read(self) -> bytes:
        return b"".join(self._pieces)


class _Session:
    """aiohttp's ClientSession as far as a transport uses it; each read is 1 KiB."""

    closed = False

    def __init__(self) -> None:
        self.body = b""

    @asynccontextmanager
    async def request(self, *args: Any, **kwargs: Any) -> AsyncIterator[_Response]:
        yield _Response([self.body[i:i + 1024] for i in range(0, len(self.body), 1024)])


def _client(session: _Session) -> Any:
    try:  # after the seam: the aiohttp transport behind an UpstreamClient
        from polyroute.adapters.client import UpstreamClient
        from polyroute.adapters.http_transport import AiohttpTransport
        transport = AiohttpTransport()
        transport._get_session = lambda: session  # type: ignore[assignment, method-assign, return-value]
        return UpstreamClient(transport, secrets=["k"])
    except ImportError:  # before: one Transport class
        from polyroute.adapters.transport import Transport  # type: ignore[attr-defined]
        old = Transport(secrets=["k"])
        old._get_session = lambda: session
        return old


async def measure(requests: int, repeat: int) -> dict[str, tuple[float, float]]:
    session = _Session()
    adapters = AdapterRegistry(_client(session))
    request = ChatRequest(messages=[Message(role="user", content="Say hello.")], model="m",
                          max_tokens=64)
    results = {}
    for protocol, (wire, headers) in PROTOCOLS.items():
        answer, stream = wire()
        endpoint = Endpoint(protocol, protocol, f"http://{protocol}.test", headers)
        deployment = Deployment(name="d", vendor=protocol, model="m", endpoint=endpoint)
        adapter = adapters.get(protocol)
        figures = []
        for body, streaming in ((answer, False), (stream, True)):
            session.body = body
            for _ in range(requests // 10):  # warm up
                await _one(adapter, request, deployment, streaming)
            best = float("inf")
            for _ in range(repeat):  # the least disturbed of several runs
                started = time.process_time()
                for _ in range(requests):
                    await _one(adapter, request, deployment, streaming)
                best = min(best, time.process_time() - started)
            figures.append(best / requests * 1e6)
        results[protocol] = (figures[0], figures[1])
    return results


async def _one(adapter: Any, request: ChatRequest, deployment: Deployment,
               streaming: bool) -> None:
    if not streaming:
        await adapter.chat(request, deployment, connect_s=1.0)
        return
    chunks = 0
    async for batch in adapter.stream_chat(request, deployment, connect_s=1.0):
        chunks += len(batch)
    assert chunks >= EVENTS, chunks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    results = asyncio.run(measure(args.requests, args.repeat))
    print(f"| protocol | chat µs CPU/request | stream ({EVENTS} events) µs CPU/request |")
    print("|---|---|---|")
    for protocol, (chat, stream) in results.items():
        print(f"| {protocol} | {chat:.1f} | {stream:.1f} |")


if __name__ == "__main__":
    main()
