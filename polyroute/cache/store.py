"""What the engine asks of a cache backend. Backends are named only by the composition root."""

from __future__ import annotations

from typing import Protocol


class CacheUnavailable(Exception):
    """The backend could not answer (Redis down or slow): the request goes upstream."""


class CacheStore(Protocol):
    async def get(self, key: str) -> bytes | None:
        """The value stored under ``key``, None if absent or expired; raises CacheUnavailable."""
        ...

    async def put(self, key: str, value: bytes, ttl_s: float) -> None:
        """Keep ``value`` for ``ttl_s`` seconds (or until evicted); raises CacheUnavailable."""
        ...

    def stored_bytes(self) -> int:
        """Bytes of values held (0 where the backend cannot tell cheaply: Redis)."""
        ...

    async def aclose(self) -> None: ...
