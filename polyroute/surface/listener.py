"""The listening socket, hardened against slowloris (issue 10, item 10).

aiohttp's server has no setting for a cap on connections, and none named "header timeout";
what it has, measured (aiohttp 3.14):

- ``keepalive_timeout`` is armed when a connection opens and again when a response ends, and
  when it fires closes the connection if no complete request head has arrived (a handler still
  waiting for its next message). Bytes trickling in do not re-arm it. So it *is* a header-read
  timeout, and the idle time a kept-alive connection is kept: ``server.header_timeout_s``.
  A body that trickles is bounded separately (``server.body_timeout_s``, 408).
- Caps are enforced here, in a subclass of aiohttp's ``RequestHandler`` (the protocol of one
  connection) that asks a :class:`ConnectionGate` in ``connection_made`` — once per
  connection, nothing per request. A refused connection gets a 503 and is closed at once, so
  it holds a file descriptor for microseconds; it never reaches aiohttp's request machinery.

The total cap never exceeds the process's file-descriptor limit minus a reserve (upstream
connections, the database, the spool), so the gateway keeps the descriptors it needs to
answer the connections it accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import socket
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from polyroute.config.compiled import ServerSettings

log = logging.getLogger("polyroute.http")

FD_RESERVE = 512
"""Descriptors kept back from client connections for upstreams, databases and files."""
_BUSY_BODY = (b'{"error":{"message":"Too many connections; retry shortly.",'
              b'"type":"api_error","param":null,"code":"too_many_connections"}}')
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
         b"Content-Length: %d\r\nRetry-After: 1\r\nConnection: close\r\n\r\n%s"
         % (len(_BUSY_BODY), _BUSY_BODY))
_WARN_EVERY_S = 10.0


def connection_cap(configured: int) -> int:
    """The total cap: the configured one (0: none), never above the descriptor limit."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    by_fds = max(soft - FD_RESERVE, 64) if soft != resource.RLIM_INFINITY else None
    caps = [c for c in (configured or None, by_fds) if c is not None]
    return min(caps) if caps else 0


class ConnectionGate:
    """Counts open connections, in total and per client address, and refuses beyond caps."""

    def __init__(self, max_total: int, max_per_address: int) -> None:
        self.max_total = max_total
        self.max_per_address = max_per_address
        self.open = 0
        self.refused = 0
        """Connections closed at once because a cap was reached, since start."""
        self._by_address: dict[str, int] = {}
        self._warned = 0.0

    @property
    def max_connections_per_address_text(self) -> str:
        return (f"{self.max_per_address} per client address" if self.max_per_address
                else "no cap per client address")

    def admit(self, transport: asyncio.BaseTransport) -> str | None:
        """The client's address if the connection may stay; else answer 503, close, None."""
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        count = self._by_address.get(address, 0)
        if (self.max_total and self.open >= self.max_total) or (
                address and self.max_per_address and count >= self.max_per_address):
            self.refused += 1
            self._warn(address, count)
            if isinstance(transport, asyncio.WriteTransport):
                transport.write(_BUSY)
            transport.close()
            return None
        self.open += 1
        self._by_address[address] = count + 1
        return address

    def release(self, address: str) -> None:
        self.open -= 1
        left = self._by_address.get(address, 1) - 1
        if left > 0:
            self._by_address[address] = left
        else:
            self._by_address.pop(address, None)

    def _warn(self, address: str, count: int) -> None:
        now = time.monotonic()
        if now - self._warned < _WARN_EVERY_S:
            return
        self._warned = now
        log.warning("connection refused: %d open (cap %s), %d from %s (cap %s); %d refused "
                    "so far", self.open, self.max_total or "none", count, address or "?",
                    self.max_per_address or "none", self.refused)


class _GatedHandler(RequestHandler):
    """aiohttp's per-connection protocol, admitted by the gate first."""

    __slots__ = ("_address", "_gate")

    def __init__(self, manager: web.Server, gate: ConnectionGate, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._gate = gate
        self._address: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        address = self._gate.admit(transport)
        if address is None:
            return  # refused and closed: aiohttp never sees it
        self._address = address
        super().connection_made(transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        address, self._address = self._address, None
        if address is None:
            return
        self._gate.release(address)
        super().connection_lost(exc)


class _GatedSite(web.BaseSite):
    def __init__(self, runner: web.AppRunner, host: str, port: int, gate: ConnectionGate,
                 handler_args: dict[str, Any], backlog: int, *,
                 sock: socket.socket | None = None, reuse_port: bool = False) -> None:
        super().__init__(runner, backlog=backlog)
        self._host, self._port = host, port
        self._gate = gate
        self._handler_args = handler_args
        self._sock = sock
        self._reuse_port = reuse_port

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        manager = self._runner.server
        assert manager is not None
        gate, args = self._gate, self._handler_args

        def protocol() -> _GatedHandler:
            return _GatedHandler(manager, gate, loop=loop, **args)

        if self._sock is not None:  # listening already (a worker of a pre-fork parent)
            self._server = await loop.create_server(protocol, sock=self._sock,
                                                    backlog=self._backlog)
        else:
            self._server = await loop.create_server(
                protocol, self._host, self._port, backlog=self._backlog, reuse_address=True,
                reuse_port=self._reuse_port or None)


class CannotListen(Exception):
    """The address is taken, or not ours to bind: a one-line message for the operator."""


def serve(app: web.Application, settings: ServerSettings, loop: asyncio.AbstractEventLoop,
          gate: ConnectionGate, *, on_listening: Callable[[], None] | None = None,
          sock: socket.socket | None = None, reuse_port: bool = False) -> None:
    """Run ``app`` until SIGINT or SIGTERM, as ``web.run_app`` would, behind ``gate``; then
    give requests in flight ``settings.shutdown_grace_s`` to finish. ``on_listening`` runs once
    the socket is bound, so "listening" is only ever said when true; a bind that fails raises
    :class:`CannotListen`. ``sock``: a listening socket to accept on instead of binding;
    ``reuse_port``: bind with SO_REUSEPORT (workers)."""
    handler_args: dict[str, Any] = {"access_log": None,
                                    "keepalive_timeout": settings.header_timeout_s}

    async def main() -> None:
        runner = web.AppRunner(app, handle_signals=True, handler_cancellation=True,
                               shutdown_timeout=settings.shutdown_grace_s, **handler_args)
        await runner.setup()
        try:
            site = _GatedSite(runner, settings.host, settings.port, gate, handler_args,
                              backlog=1024, sock=sock, reuse_port=reuse_port)
            try:
                await site.start()
            except OSError as exc:
                reason = os.strerror(exc.errno) if exc.errno else str(exc)
                raise CannotListen(f"cannot listen on {settings.host}:{settings.port}: "
                                   f"{reason.lower()}") from exc
            if on_listening is not None:
                on_listening()
            await asyncio.Event().wait()  # until a signal raises GracefulExit
        finally:
            await runner.cleanup()

    asyncio.set_event_loop(loop)
    task = loop.create_task(main())
    try:
        loop.run_until_complete(task)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, web.GracefulExit):
                loop.run_until_complete(task)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
