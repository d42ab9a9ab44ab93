"""The vendors' prompt caches, simulated: a prompt whose beginning this model saw recently is
partly read from cache, and usage says how much (OpenAI: ``prompt_tokens_details.
cached_tokens``; Anthropic: ``cache_read_input_tokens``).

Like OpenAI's automatic caching, only prefixes of at least ``min_tokens`` count, and a prefix
is matched at message boundaries (tools first, then each message), the longest one seen
wins. The cache is per model name — each simulated deployment has its own, as each vendor
deployment (region, account) has — and bounded (least recently used prefixes go first).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterable

MIN_TOKENS = 1024
"""OpenAI caches prompts of 1024 tokens or more."""
CAPACITY = 100_000


class PromptCache:
    def __init__(self, min_tokens: int = MIN_TOKENS, capacity: int = CAPACITY) -> None:
        self._min = min_tokens
        self._capacity = capacity
        self._seen: OrderedDict[bytes, None] = OrderedDict()

    def read(self, model: str, pieces: Iterable[tuple[bytes, int]]) -> int:
        """Tokens of ``pieces`` (each: its bytes and its token count, in prompt order) read
        from the cache; every long enough prefix is remembered for the next request."""
        running = hashlib.blake2b(model.encode(), digest_size=16)
        total = cached = 0
        prefixes: list[bytes] = []
        for data, tokens in pieces:
            running.update(len(data).to_bytes(8, "little"))
            running.update(data)
            total += tokens
            if total < self._min:
                continue
            key = running.copy().digest()
            prefixes.append(key)
            if key in self._seen:
                cached = total
        for key in prefixes:
            self._seen[key] = None
            self._seen.move_to_end(key)
        while len(self._seen) > self._capacity:
            self._seen.popitem(last=False)
        return cached
