"""What the Anthropic endpoints keep between requests: ids and the simulated prompt cache."""

from __future__ import annotations

import hashlib
import itertools
import string
from collections import OrderedDict

from aiohttp import web

_ALPHABET = string.digits + string.ascii_uppercase + string.ascii_lowercase
_CACHE_ENTRIES = 4096


class AnthropicState:
    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._counter = itertools.count(1)
        self._cache: OrderedDict[str, None] = OrderedDict()

    def _token(self, kind: str, length: int = 24) -> str:
        # Base62, like Anthropic's ids ("msg_01XFDUDYJgAACzvnptvVoYEL"), derived from the seed.
        digest = hashlib.blake2b(f"{self._seed}:{kind}:{next(self._counter)}".encode()).digest()
        number = int.from_bytes(digest, "big")
        chars = []
        for _ in range(length):
            number, rest = divmod(number, 62)
            chars.append(_ALPHABET[rest])
        return "01" + "".join(chars)[: length - 2]

    def message_id(self) -> str:
        return f"msg_{self._token('msg')}"

    def tool_use_id(self) -> str:
        return f"toolu_{self._token('toolu')}"

    def request_id(self) -> str:
        return f"req_{self._token('req')}"

    def signature(self) -> str:
        return f"EqQBCkgIARABGAIiQ{self._token('sig', 40)}"

    def cached(self, prefix: str) -> bool:
        """Whether the prompt prefix with this digest was written to the cache before."""
        if prefix in self._cache:
            self._cache.move_to_end(prefix)
            return True
        return False

    def write(self, prefix: str) -> None:
        self._cache[prefix] = None
        if len(self._cache) > _CACHE_ENTRIES:
            self._cache.popitem(last=False)


ANTHROPIC_STATE = web.AppKey("polyroute_sim_anthropic", AnthropicState)


def get_anthropic_state(request: web.Request) -> AnthropicState:
    return request.app[ANTHROPIC_STATE]
