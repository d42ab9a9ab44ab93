"""Prompt-cache-aware routing: a request whose prompt begins like an earlier one (a long
system prompt, a document, tool definitions) goes to the deployment that prompt went to, so
the vendor's prompt cache there — which only that deployment has — is read, not written again
(OpenAI bills cached input at half price or less, Anthropic at a tenth).

Only for weighted groups, and only while it stays fair: the preferred deployment must be
healthy (its circuit closed) and within its share of the group's recent traffic (its weight's
share times ``slack``); otherwise the weighted order stands, and the prefix follows wherever
the request went. Prefixes are hashed at message boundaries, tools first, from the shortest
that is long enough (``min_tokens``, estimated at four characters a token: OpenAI caches
prompts of 1024 tokens or more) to the whole prompt but its last message; the longest one
seen before wins. Memory is bounded: ``capacity`` prefixes, least recently used out first.
"""

from __future__ import annotations

import hashlib
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Sequence

import msgspec

from polyroute.config import Deployment
from polyroute.model.chat import ChatRequest

MIN_TOKENS = 1024
_CHARS_PER_TOKEN = 4
_WINDOW = 200
_WARMUP = 20
_encode = msgspec.json.encode


class PrefixAffinity:
    def __init__(self, healthy: Callable[[str], bool], *, min_tokens: int = MIN_TOKENS,
                 capacity: int = 100_000, slack: float = 1.5) -> None:
        self._healthy = healthy
        self._min_bytes = min_tokens * _CHARS_PER_TOKEN
        self._capacity = capacity
        self._slack = slack
        self._seen: OrderedDict[bytes, str] = OrderedDict()
        """Prefix digest → the deployment it went to last."""
        self._recent: dict[str, tuple[deque[str], Counter[str]]] = {}
        self.steered = 0
        """Requests sent to another deployment than the weighted draw's first, for a prefix."""

    def steer(self, group: str, ordered: list[Deployment],
              request: ChatRequest | None) -> list[Deployment]:
        """``ordered`` (the weighted draw) with the deployment that saw this prompt's prefix
        first, when it may take it."""
        prefixes = _prefixes(request, self._min_bytes) if request is not None else []
        if prefixes:
            wanted = None
            for key in reversed(prefixes):
                wanted = self._seen.get(key)
                if wanted is not None:
                    break
            if wanted is not None and ordered[0].name != wanted:
                ordered = self._prefer(group, ordered, wanted)
            chosen = ordered[0].name
            for key in prefixes:
                self._seen[key] = chosen
                self._seen.move_to_end(key)
            while len(self._seen) > self._capacity:
                self._seen.popitem(last=False)
        self._count(group, ordered[0].name)
        return ordered

    def _prefer(self, group: str, ordered: list[Deployment], wanted: str) -> list[Deployment]:
        for i, dep in enumerate(ordered):
            if dep.name == wanted:
                if not self._healthy(dep.upstream) or not self._within_share(group, dep,
                                                                             ordered):
                    return ordered
                self.steered += 1
                return [dep, *ordered[:i], *ordered[i + 1:]]
        return ordered

    def _within_share(self, group: str, dep: Deployment, ordered: Sequence[Deployment]) -> bool:
        recent = self._recent.get(group)
        if recent is None or len(recent[0]) < _WARMUP:
            return True
        window, counts = recent
        share = dep.weight / sum(d.weight for d in ordered)
        return counts[dep.name] / len(window) <= min(1.0, share * self._slack)

    def _count(self, group: str, name: str) -> None:
        recent = self._recent.get(group)
        if recent is None:
            recent = self._recent[group] = (deque(maxlen=_WINDOW), Counter())
        window, counts = recent
        if len(window) == window.maxlen:
            counts[window[0]] -= 1
        window.append(name)
        counts[name] += 1


def _prefixes(request: ChatRequest, min_bytes: int) -> list[bytes]:
    """Digests of the prompt's prefixes at message boundaries (the last message left out: it
    is the new question), shortest first, from the first that is ``min_bytes`` long."""
    messages = request.messages
    if len(messages) < 2 and not request.tools:
        return []
    running = hashlib.blake2b(digest_size=16)
    size = 0
    found: list[bytes] = []
    parts = [_encode(request.tools)] if request.tools else []
    parts += [_encode(m) for m in messages[:-1]]
    for part in parts:
        running.update(len(part).to_bytes(8, "little"))
        running.update(part)
        size += len(part)
        if size >= min_bytes:
            found.append(running.copy().digest())
    return found
