"""Counts shared by replicas through Redis: requests in flight per deployment (for
'least_busy'), and the vendor-share caps' windows (prefix ``polyroute:caps:``).

Each replica writes its own counts as one hash, ``{prefix}r:{replica}``, which expires after
a few sync intervals, and keeps its name in the sorted set ``{prefix}replicas`` scored by the
time it last wrote; reading sums the hashes of the others. A replica that dies stops counting
within those intervals. Writes and reads happen in a background sync, never on the request
path; a Redis outage degrades to this replica's own counts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Mapping

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger("polyroute.state.redis")

_LIVES_FOR = 4
"""Sync intervals a replica's counts outlive its last write."""
_CLOSE_S = 1.0


class RedisBusy:
    def __init__(self, client: aioredis.Redis, interval_s: float,
                 prefix: str = "polyroute:busy:") -> None:
        self._redis = client
        self._prefix = prefix
        self._replica = uuid.uuid4().hex[:16]
        self._ttl_ms = max(100, int(interval_s * _LIVES_FOR * 1000))
        self._failing = False

    @property
    def healthy(self) -> bool:
        """False since the last exchange failed (each replica counts alone meanwhile)."""
        return not self._failing

    async def exchange(self, local: Mapping[str, int]) -> dict[str, int]:
        """Publish this replica's counts; the sum of every other live replica's."""
        now = time.time()
        mine = f"{self._prefix}r:{self._replica}"
        replicas = f"{self._prefix}replicas"
        try:
            pipe = self._redis.pipeline(transaction=False)
            pipe.delete(mine)
            if local:
                pipe.hset(mine, items=[x for pair in local.items() for x in pair])
                pipe.pexpire(mine, self._ttl_ms)
            pipe.zadd(replicas, {self._replica: now})
            pipe.zremrangebyscore(replicas, 0, now - self._ttl_ms / 1000)
            pipe.zrange(replicas, 0, -1)
            others = [_text(r) for r in (await pipe.execute())[-1]]
            others = [r for r in others if r != self._replica]
            if not others:
                return {}
            read = self._redis.pipeline(transaction=False)
            for replica in others:
                read.hgetall(f"{self._prefix}r:{replica}")
            counts: dict[str, int] = {}
            for found in await read.execute():
                for name, value in found.items():
                    key = _text(name)
                    counts[key] = counts.get(key, 0) + int(value)
        except RedisError as exc:
            if not self._failing:
                log.warning("redis unavailable for in-flight counts (%s): counting locally", exc)
            self._failing = True
            return {}
        self._failing = False
        return counts

    async def aclose(self) -> None:
        """Bounded: a connection left mid-command by the cancelled sync task can keep a
        redis-py call waiting forever, and shutting down must not (once seen in a test's
        teardown). The counts expire by themselves anyway."""
        with contextlib.suppress(RedisError, TimeoutError):
            async with asyncio.timeout(_CLOSE_S):
                await self._redis.delete(f"{self._prefix}r:{self._replica}")
        with contextlib.suppress(RedisError, TimeoutError):
            async with asyncio.timeout(_CLOSE_S):
                await self._redis.aclose()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
