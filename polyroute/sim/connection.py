"""Ways of ending a connection that an HTTP server normally never chooses."""

from __future__ import annotations

import contextlib
import socket
import struct

from aiohttp import web


def reset_connection(request: web.BaseRequest) -> None:
    """Close with a TCP RST: SO_LINGER with a zero timeout makes close() discard and reset."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def close_connection(request: web.BaseRequest) -> None:
    """Close with a FIN after flushing what was written, but without ending the HTTP body.

    The client sees bytes it already got, then EOF in the middle of a chunked or
    Content-Length body, which is what a provider crashing mid-response looks like.
    """
    transport = request.transport
    if transport is not None:
        transport.close()


def peer_gone(request: web.BaseRequest) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()
