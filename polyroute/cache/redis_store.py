"""The replicas' backend: answers in Redis (GET, SET PX), shared by every gateway on it.

A Redis that is down or slow must cost a request nothing but the cache: every call is bounded
by ``timeout_s``, and after a failure Redis is left alone for ``pause_s`` (each request would
otherwise wait out a connect timeout), so misses are served at full speed meanwhile.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from polyroute.cache.store import CacheUnavailable


class RedisStore:
    def __init__(self, url: str, *, timeout_s: float = 0.1, pause_s: float = 1.0,
                 prefix: str = "polyroute:cache:",
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._redis = aioredis.from_url(url, socket_timeout=timeout_s,
                                        socket_connect_timeout=timeout_s)
        self._timeout = timeout_s
        self._pause = pause_s
        self._prefix = prefix
        self._clock = clock
        self._down_until = 0.0

    async def get(self, key: str) -> bytes | None:
        value = await self._call(lambda: self._redis.get(self._prefix + key))
        return value if isinstance(value, bytes) else None

    async def put(self, key: str, value: bytes, ttl_s: float) -> None:
        await self._call(lambda: self._redis.set(self._prefix + key, value,
                                                 px=max(1, int(ttl_s * 1000))))

    async def _call(self, call: Callable[[], Awaitable[Any]]) -> Any:
        if self._clock() < self._down_until:
            raise CacheUnavailable("redis: paused after a failure")
        try:
            async with asyncio.timeout(self._timeout * 2):
                return await call()
        except (RedisError, OSError, TimeoutError) as exc:
            self._down_until = self._clock() + self._pause
            raise CacheUnavailable(f"redis: {exc!r}") from None

    def stored_bytes(self) -> int:
        return 0

    async def aclose(self) -> None:
        await self._redis.aclose()
