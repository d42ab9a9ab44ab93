"""What ``/v1/models`` lists: the configured groups, plus what each open vendor says it serves
(as '<vendor>/<model id>'), asked for at most once per ``ttl_s`` and never fatal."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from polyroute.adapters.registry import AdapterRegistry
from polyroute.config import GatewayConfig
from polyroute.errors import UpstreamError

log = logging.getLogger("polyroute.catalog")


@dataclass(frozen=True, slots=True)
class ModelEntry:
    id: str
    owned_by: str


class ModelCatalog:
    def __init__(
        self,
        config: GatewayConfig,
        adapters: AdapterRegistry,
        ttl_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._adapters = adapters
        self._ttl_s = ttl_s
        self._clock = clock
        self._cache: dict[str, tuple[float, list[ModelEntry]]] = {}

    def use(self, config: GatewayConfig) -> None:
        """List a reloaded config's groups and vendors from now on."""
        self._config = config
        self._cache = {}

    async def entries(self) -> list[ModelEntry]:
        entries = [ModelEntry(name, "polyroute") for name in self._config.groups]
        vendors = list(self._config.open_vendors)
        for listed in await asyncio.gather(*(self._vendor(v) for v in vendors)):
            entries.extend(listed)
        return entries

    async def _vendor(self, vendor: str) -> list[ModelEntry]:
        cached = self._cache.get(vendor)
        now = self._clock()
        if cached is not None and now - cached[0] < self._ttl_s:
            return cached[1]
        endpoint = self._config.open_vendors[vendor]
        try:
            ids = await self._adapters.get(endpoint.protocol).list_models(endpoint)
        except UpstreamError as exc:
            log.warning("could not list the models of vendor %s: %s", vendor, exc.message)
            ids = []
        entries = [ModelEntry(f"{vendor}/{model_id}", vendor) for model_id in ids]
        self._cache[vendor] = (now, entries)
        return entries
