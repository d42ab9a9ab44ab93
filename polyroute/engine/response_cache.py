"""The exact response cache, as the engine uses it: decide per request whether to look up,
serve or store (group mode, determinism, the client's Cache-Control), and store whole answers
off the request path. The backend is a :class:`~polyroute.cache.store.CacheStore`; which one
is the composition root's choice. A backend that fails is a miss, never an error."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from polyroute.cache.answer import CachedAnswer, kept, pack, storable, unpack
from polyroute.cache.control import CacheControl
from polyroute.cache.key import cache_key, deterministic, tenant_of
from polyroute.cache.semantic import SemanticCache, partition, question
from polyroute.cache.store import CacheStore, CacheUnavailable
from polyroute.config.compiled import CacheSettings
from polyroute.model.chat import ChatRequest, ChatResponse
from polyroute.model.record import RequestRecord
from polyroute.policy.types import Principal

log = logging.getLogger("polyroute.cache")


@dataclass(frozen=True, slots=True)
class Lookup:
    outcome: str | None
    """'hit', 'semantic' (a hit for a close enough question), 'miss', 'bypass'; None: the
    group does not cache."""
    key: str | None = None
    hit: CachedAnswer | None = None
    age_s: int = 0
    similarity: float | None = None
    """A semantic hit: the cosine similarity of the two questions."""
    part: str | None = None
    """The semantic partition of a miss (stored with its vector when its answer is)."""
    vector: Any = None

    @property
    def stores(self) -> bool:
        """Whether a whole answer to this request is to be stored."""
        return self.outcome == "miss" and self.key is not None


NOT_CACHED = Lookup(None)
BYPASS = Lookup("bypass")


class ResponseCache:
    def __init__(self, store: CacheStore, settings: CacheSettings,
                 modes: Mapping[str, str | None], clock: Callable[[], float] = time.time,
                 semantic: SemanticCache | None = None) -> None:
        self._store = store
        self._semantic = semantic
        self._settings = settings
        self._modes = modes
        self._clock = clock
        self._tasks: set[asyncio.Task[None]] = set()
        self.errors = 0
        """Backend calls that failed (each served as a miss, or not stored)."""
        self.stored = 0

    def mode(self, group: str) -> str:
        return self._modes.get(group) or self._settings.mode

    async def lookup(self, request: ChatRequest, group: str, principal: Principal,
                     control: CacheControl) -> Lookup:
        mode = self.mode(group)
        if mode == "off":
            return NOT_CACHED
        if control.no_store or not (mode == "all" or control.opt_in or deterministic(request)):
            return BYPASS
        tenant = tenant_of(self._settings.scope, principal.key_id, principal.team,
                           principal.org)
        key = cache_key(request, group, tenant)
        miss = Lookup("miss", key)
        if control.no_cache:
            return miss
        try:
            data = await self._store.get(key)
        except CacheUnavailable as exc:
            self._failed(exc)
            return miss
        answer = unpack(data) if data is not None else None
        if answer is None:
            if self._semantic is not None and group in self._semantic.groups:
                return await self._near(request, group, tenant, key, control)
            return miss
        if not self._fresh(answer, control):
            return miss
        return Lookup("hit", key, answer, self._age(answer))

    async def _near(self, request: ChatRequest, group: str, tenant: str, key: str,
                    control: CacheControl) -> Lookup:
        """An exact miss: is a stored answer's question close enough to this one?"""
        semantic = self._semantic
        text = question(request)
        if semantic is None or text is None:
            return Lookup("miss", key)
        part = partition(request, group, tenant)
        # Embedding is CPU work (milliseconds): off the event loop.
        vector = (await asyncio.to_thread(semantic.embedder.embed, [text]))[0]
        miss = Lookup("miss", key, part=part, vector=vector)
        near = semantic.index.nearest(part, vector, semantic.threshold)
        if near is None:
            return miss
        try:
            data = await self._store.get(near[0])
        except CacheUnavailable as exc:
            self._failed(exc)
            return miss
        answer = unpack(data) if data is not None else None
        if answer is None or not self._fresh(answer, control):
            return miss
        return Lookup("semantic", key, answer, self._age(answer), near[1])

    def _age(self, answer: CachedAnswer) -> int:
        return int(max(0.0, self._clock() - answer.stored_at))

    def _fresh(self, answer: CachedAnswer, control: CacheControl) -> bool:
        return control.max_age_s is None or self._age(answer) <= control.max_age_s

    def keep(self, lookup: Lookup, response: ChatResponse, record: RequestRecord) -> None:
        """Store ``response`` (a miss's answer) if it is whole; in the background."""
        if not lookup.stores or lookup.key is None or record.error_class is not None:
            return
        if record.charges:  # finished by several attempts: its usage is not one answer's
            return
        if not storable(response):
            return
        data = pack(CachedAnswer(self._clock(), kept(response), record.vendor,
                                 record.upstream_model, record.deployment))
        if len(data) > self._settings.max_entry_bytes:
            return
        if self._semantic is not None and lookup.part is not None:
            self._semantic.index.add(lookup.part, lookup.vector, lookup.key)
        task = asyncio.create_task(self._put(lookup.key, data))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _put(self, key: str, data: bytes) -> None:
        try:
            await self._store.put(key, data, self._settings.ttl_s)
            self.stored += 1
        except CacheUnavailable as exc:
            self._failed(exc)

    def _failed(self, exc: CacheUnavailable) -> None:
        if not self.errors:
            log.warning("response cache: the backend failed (%s); requests go upstream", exc)
        self.errors += 1

    def stored_bytes(self) -> int:
        return self._store.stored_bytes()

    async def drain(self) -> None:
        """Wait for the stores under way (tests; shutdown)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def aclose(self) -> None:
        await self.drain()
        await self._store.aclose()
