"""Circuit-breaker state shared through Redis, so replicas agree on which upstream is down.

Keys: ``{prefix}open:{upstream}`` exists while that upstream's circuit is open, holding the
Unix time its cool-down ends (followed by `` paused`` when a 429 opened it for its
Retry-After, which no replica's panic mode may override); it is deleted only when a probe
succeeds, so "cool-down over"
and "closed" never look alike. ``{prefix}probe:{upstream}`` is the probe claim (SET NX), so
after a cool-down exactly one replica probes. Writes are fire-and-forget tasks and reads happen
in a background sync: the request path never waits on Redis, except to claim a probe, which is
rare. A Redis outage degrades to per-replica circuits rather than failing requests.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from polyroute.config.compiled import StateSettings

log = logging.getLogger("polyroute.state.redis")

_PAUSED = " paused"
_FORGET_AFTER_S = 3600  # an open circuit nobody probed for an hour is stale: let it go


def redis_client(settings: StateSettings) -> aioredis.Redis:
    assert settings.redis_url is not None
    return aioredis.from_url(
        settings.redis_url, socket_timeout=settings.timeout_s,
        socket_connect_timeout=settings.timeout_s)


class RedisCircuits:
    def __init__(self, client: aioredis.Redis, prefix: str = "polyroute:circuit:") -> None:
        self._redis = client
        self._prefix = prefix
        self._tasks: set[asyncio.Task[None]] = set()

    async def claim_probe(self, upstream: str, ttl_s: float) -> bool:
        try:
            claimed = await self._redis.set(f"{self._prefix}probe:{upstream}", b"1",
                                            nx=True, px=max(1, int(ttl_s * 1000)))
        except RedisError as exc:
            log.warning("redis unavailable for the probe claim of %s (%s): probing locally",
                        upstream, exc)
            return True
        return bool(claimed)

    def publish_open(self, upstream: str, seconds: float, paused: bool = False) -> None:
        value = repr(time.time() + seconds) + (_PAUSED if paused else "")

        async def write() -> None:
            await self._redis.set(f"{self._prefix}open:{upstream}", value.encode(),
                                  ex=_FORGET_AFTER_S)
            await self._redis.delete(f"{self._prefix}probe:{upstream}")

        self._spawn(write())

    def publish_closed(self, upstream: str) -> None:
        async def write() -> None:
            await self._redis.delete(f"{self._prefix}open:{upstream}",
                                     f"{self._prefix}probe:{upstream}")

        self._spawn(write())

    async def open_circuits(self, upstreams: Iterable[str]) -> Mapping[str, tuple[float, bool]]:
        names = list(upstreams)
        if not names:
            return {}
        try:
            values = await self._redis.mget([f"{self._prefix}open:{n}" for n in names])
        except RedisError as exc:
            log.warning("redis unavailable for circuit sync: %s", exc)
            return {}
        now = time.time()
        found = {}
        for name, value in zip(names, values, strict=True):
            if value is not None:
                text = value.decode() if isinstance(value, bytes) else str(value)
                until, _, flag = text.partition(" ")
                found[name] = (float(until) - now, flag == _PAUSED.strip())
        return found

    def _spawn(self, write: object) -> None:
        async def guarded() -> None:
            try:
                await write  # type: ignore[misc]
            except RedisError as exc:
                log.warning("redis unavailable for a circuit update: %s", exc)

        task = asyncio.ensure_future(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._redis.aclose()
