"""What the Gemini endpoints keep between requests: ids, thought signatures and the implicit
prompt cache."""

from __future__ import annotations

import base64
import hashlib
import itertools
from collections import OrderedDict

from aiohttp import web

_CACHE_ENTRIES = 4096


class GeminiState:
    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._counter = itertools.count(1)
        self._cache: OrderedDict[str, None] = OrderedDict()

    def _digest(self, kind: str, size: int) -> bytes:
        return hashlib.blake2b(f"{self._seed}:{kind}:{next(self._counter)}".encode(),
                               digest_size=size).digest()

    def response_id(self) -> str:
        # Gemini's ids are 22 URL-safe base64 characters, e.g. "mNLjaPeqN9-CkdUPrYWyoQk".
        return base64.urlsafe_b64encode(self._digest("resp", 16)).decode().rstrip("=")[:22]

    def thought_signature(self) -> str:
        return base64.b64encode(b"\x12\x34sim-thought" + self._digest("sig", 48)).decode()

    def cached(self, prefix: str) -> bool:
        """Whether a prompt with this prefix digest was seen before (then it is cached)."""
        if prefix in self._cache:
            self._cache.move_to_end(prefix)
            return True
        self._cache[prefix] = None
        if len(self._cache) > _CACHE_ENTRIES:
            self._cache.popitem(last=False)
        return False


GEMINI_STATE = web.AppKey("polyroute_sim_gemini", GeminiState)


def get_gemini_state(request: web.Request) -> GeminiState:
    return request.app[GEMINI_STATE]
