"""What the Bedrock endpoints keep between requests: ids, the simulated prompt cache and the
signatures seen (for tests, at ``GET /_sim/bedrock``)."""

from __future__ import annotations

import hashlib
import itertools
import string
import uuid
from collections import OrderedDict
from typing import Any

from aiohttp import web

_ALPHABET = string.ascii_letters + string.digits + "-_"
_CACHE_ENTRIES = 4096


class BedrockState:
    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._counter = itertools.count(1)
        self._cache: OrderedDict[str, None] = OrderedDict()
        self.last_auth: dict[str, Any] | None = None
        self.objects: dict[str, bytes] = {}
        """The simulated S3: ``bucket/key`` → bytes (a batch job's input and output)."""
        self.jobs: dict[str, dict[str, Any]] = {}
        """Batch inference jobs by id, as ``GetModelInvocationJob`` answers them."""
        self.min_batch_records = 100
        """Bedrock's default quota "Minimum number of records per batch inference job"."""

    def _digest(self, kind: str) -> bytes:
        return hashlib.blake2b(f"{self._seed}:{kind}:{next(self._counter)}".encode()).digest()

    def request_id(self) -> str:
        return str(uuid.UUID(bytes=self._digest("req")[:16], version=4))

    def tool_use_id(self) -> str:
        # "tooluse_" and 22 URL-safe characters, like Bedrock's.
        digest = self._digest("tooluse")
        return "tooluse_" + "".join(_ALPHABET[b % len(_ALPHABET)] for b in digest[:22])

    def signature(self) -> str:
        return "ErcBCkgIBhABGAIi" + self._digest("sig").hex()

    def padding(self) -> str:
        """Bedrock pads every stream event with a "p" of random length, hiding the sizes."""
        n = next(self._counter) % 20 + 1
        return "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"[:n]

    def cached(self, prefix: str) -> bool:
        if prefix in self._cache:
            self._cache.move_to_end(prefix)
            return True
        return False

    def write(self, prefix: str) -> None:
        self._cache[prefix] = None
        if len(self._cache) > _CACHE_ENTRIES:
            self._cache.popitem(last=False)


BEDROCK_STATE = web.AppKey("polyroute_sim_bedrock", BedrockState)


def get_bedrock_state(request: web.Request) -> BedrockState:
    return request.app[BEDROCK_STATE]
