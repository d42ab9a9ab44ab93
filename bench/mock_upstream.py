"""Fallback mock upstream: a raw asyncio protocol on uvloop that returns canned responses.

The harness prefers nginx (see README: it costs about a third of the CPU per request), and uses
this only where nginx is not installed. It speaks just enough HTTP/1.1 for keep-alive clients:
Content-Length bodies, no chunked requests, no pipelining beyond what falls out of the loop.

    python bench/mock_upstream.py --port 8000
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import cast

import uvloop
from payloads import UPSTREAM_CHAT_PATH, UPSTREAM_STREAM_PATH, completion_body, sse_body


def _response(content_type: str, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
    )
    return head.encode() + body


# Responses are built once: per request the server only scans headers and writes bytes.
_ROUTES = {
    UPSTREAM_CHAT_PATH.encode(): _response("application/json", completion_body()),
    UPSTREAM_STREAM_PATH.encode(): _response("text/event-stream", sse_body()),
}
_NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


class _Upstream(asyncio.Protocol):
    def __init__(self) -> None:
        self._buf = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._buf += data
        while True:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self._buf[:end]
            total = end + 4 + _content_length(head)
            if len(self._buf) < total:
                return
            self._buf = self._buf[total:]
            path = head.split(b" ", 2)[1]
            assert self._transport is not None
            self._transport.write(_ROUTES.get(path, _NOT_FOUND))


async def _serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Upstream, "127.0.0.1", port, backlog=4096)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    uvloop.run(_serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
