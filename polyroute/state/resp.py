"""One pipelined Redis connection for the limiter's hot calls (EVALSHA of its scripts),
without redis-py's per-call machinery.

Why: admission is one Redis call per request, and redis-py's asyncio client spends most of
Redis mode's CPU on it — a pool checkout under a lock, a command object, connection health
checks, a parser in Python. Here a call is one ``hiredis.pack_command`` (C), one buffered write
and one future resolved from hiredis's C reply reader. Concurrent requests share the one
connection: their calls are pipelined (Redis answers in order, so a FIFO of futures matches
replies to calls), and the calls of one event-loop turn leave in one ``send``.

Errors are redis-py's own exception classes (its parser's mapping of ``ERR``, ``NOSCRIPT``,
``READONLY`` …), so callers classify them exactly as they do redis-py's. A lost connection
fails every call waiting on it with :class:`redis.exceptions.ConnectionError`; the next call
connects again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Sequence
from typing import Any, cast

import hiredis
import redis.asyncio as aioredis
from redis._parsers import BaseParser  # its error mapping, so exceptions match redis-py's
from redis.asyncio.connection import Connection, UnixDomainSocketConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, NoScriptError


class _Replies(asyncio.Protocol):
    def __init__(self) -> None:
        self._reader = hiredis.Reader(protocolError=InvalidResponse,
                                      replyError=BaseParser.parse_error)
        self._waiting: deque[asyncio.Future[Any]] = deque()
        self._out: list[bytes] = []
        self._transport: asyncio.Transport | None = None
        self.closed = False
        self.answered_at = 0.0
        """``time.monotonic()`` when Redis last sent a reply (read by the limiter's watchdog
        thread: a float attribute, so a torn read is impossible)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self._transport = cast(asyncio.Transport, transport)

    def send(self, packed: bytes, reply: asyncio.Future[Any]) -> None:
        if not self._out:  # the first call of this loop turn: send them all at its end
            asyncio.get_running_loop().call_soon(self._write)
        self._out.append(packed)
        self._waiting.append(reply)

    def _write(self) -> None:
        out, self._out = self._out, []
        if self._transport is not None and not self.closed:
            self._transport.write(b"".join(out))

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        try:
            while (reply := reader.gets()) is not False:
                if not isinstance(reply, Exception):  # BUSY, LOADING …: not a sign of health
                    self.answered_at = time.monotonic()
                waiter = self._waiting.popleft()
                if not waiter.done():  # a caller that timed out is no longer waiting
                    waiter.set_result(reply)
        except (InvalidResponse, IndexError) as exc:  # garbage, or a reply nobody asked for
            self.close(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.close(exc)

    def close(self, exc: BaseException | None = None) -> None:
        if self.closed:
            return
        self.closed = True
        if self._transport is not None:
            self._transport.close()
        error = RedisConnectionError(f"redis connection lost: {exc or 'closed'}")
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_exception(error)


class ScriptPipe:
    """EVALSHA over one pipelined connection to the Redis a redis-py client points at."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 6379, path: str | None = None,
                 db: int = 0, username: str | None = None, password: str | None = None,
                 connect_timeout_s: float = 1.0) -> None:
        self._host, self._port, self._path = host, port, path
        self._db, self._username, self._password = db, username, password
        self._connect_timeout = connect_timeout_s
        self._replies: _Replies | None = None
        self._connecting: asyncio.Task[_Replies] | None = None

    @classmethod
    def of(cls, client: aioredis.Redis) -> ScriptPipe | None:
        """The pipe to ``client``'s server, or None where this pipe does not speak its
        connection's dialect (TLS, a credential provider, RESP3, Sentinel …): then the caller
        keeps using redis-py."""
        pool = client.connection_pool
        kw = pool.connection_kwargs
        if kw.get("credential_provider") is not None or kw.get("protocol") not in (None, 2, "2"):
            return None
        common: dict[str, Any] = {"db": int(kw.get("db") or 0), "username": kw.get("username"),
                  "password": kw.get("password"),
                  "connect_timeout_s": float(kw.get("socket_connect_timeout") or 1.0)}
        if pool.connection_class is Connection:
            return cls(host=kw.get("host", "127.0.0.1"), port=int(kw.get("port", 6379)),
                       **common)
        if pool.connection_class is UnixDomainSocketConnection:
            return cls(path=kw["path"], **common)
        return None

    async def evalsha(self, sha: str, script: str | bytes | memoryview,
                      args: Sequence[Any]) -> Any:
        """Run a script by its digest (no keys, ``args`` as ARGV); a server that does not
        know it yet (restarted, flushed) gets the script itself, which it then caches."""
        reply = await self.call("EVALSHA", sha, 0, *args)
        if isinstance(reply, NoScriptError):
            body = bytes(script) if isinstance(script, memoryview) else script
            reply = await self.call("EVAL", body, 0, *args)
        if isinstance(reply, Exception):
            raise reply
        return reply

    def submit(self, *command: Any) -> asyncio.Future[Any] | None:
        """Send a command now, without a coroutine: its reply's future (an error reply is
        its result, as with :meth:`call`), or None when there is no open connection (then
        :meth:`call` connects)."""
        replies = self._replies
        if replies is None or replies.closed:
            return None
        reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        replies.send(hiredis.pack_command(command), reply)
        return reply

    async def call(self, *command: Any) -> Any:
        """One command's reply; an error reply is returned, not raised (as an exception)."""
        replies = self._replies
        if replies is None or replies.closed:
            replies = await self._connected()
        reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        replies.send(hiredis.pack_command(command), reply)
        return await reply

    async def _connected(self) -> _Replies:
        # One connect for every caller arriving while it is under way.
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.ensure_future(self._connect())
        return await asyncio.shield(self._connecting)

    async def _connect(self) -> _Replies:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout):
                if self._path is not None:
                    _, replies = await loop.create_unix_connection(_Replies, self._path)
                else:
                    _, replies = await loop.create_connection(_Replies, self._host, self._port)
        except (OSError, TimeoutError) as exc:
            raise RedisConnectionError(f"redis: cannot connect: {exc!r}") from exc
        setup: list[tuple[Any, ...]] = []
        if self._password is not None:
            setup.append(("AUTH", self._username, self._password) if self._username
                         else ("AUTH", self._password))
        if self._db:
            setup.append(("SELECT", self._db))
        self._replies = replies
        for command in setup:
            got: asyncio.Future[Any] = loop.create_future()
            replies.send(hiredis.pack_command(command), got)
            answer = await got
            if isinstance(answer, Exception):
                replies.close(answer)
                raise answer
        return replies

    @property
    def answered_at(self) -> float:
        """When Redis last answered on this pipe (``time.monotonic()``; 0: never)."""
        replies = self._replies
        return replies.answered_at if replies is not None and not replies.closed else 0.0

    def reset(self) -> None:
        """Drop the connection (calls waiting on it fail): after an outage, connections
        opened before it are dead or stale."""
        if self._replies is not None:
            self._replies.close()
            self._replies = None

    async def aclose(self) -> None:
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
            with contextlib.suppress(BaseException):
                await self._connecting
        self.reset()
