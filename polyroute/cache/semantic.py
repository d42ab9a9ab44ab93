"""The semantic cache's index: a request whose question is close enough (cosine similarity of
sentence embeddings at least a threshold) to one answered before, with everything else equal,
is answered with that answer.

Requests are grouped into partitions: the exact key of the request with its last message's
text left out (so tenant, group, earlier messages, tools and every sampling parameter must be
equal); within one, the last question's vector is compared with those stored, brute force (a
matrix product over at most ``per_partition`` rows, newest kept). Partitions are bounded too,
least recently used out first. The index lives in the process; the answers it points at are
in the response cache's store (memory or Redis).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Protocol

import msgspec

from polyroute.cache.key import cache_key
from polyroute.model.chat import ChatRequest, ContentPart, Message

Vector = Any  # a float32 unit vector (numpy)


def question(request: ChatRequest) -> str | None:
    """The text of the last message when it is the user's and text only; None: not a
    question the semantic cache can compare."""
    if not request.messages or request.messages[-1].role != "user":
        return None
    content = request.messages[-1].content
    if isinstance(content, str):
        return content or None
    if content and all(p.type == "text" for p in content):
        return "".join(p.text or "" for p in content) or None
    return None


def partition(request: ChatRequest, group: str, tenant: str) -> str:
    """Everything of the request but the question's text."""
    last = request.messages[-1]
    blank = Message(last.role, [ContentPart("text", "")]) if isinstance(last.content, list) \
        else Message(last.role, "")
    rest = msgspec.structs.replace(request, messages=[*request.messages[:-1], blank])
    return cache_key(rest, group, tenant)


class SemanticIndex:
    def __init__(self, per_partition: int = 1000, partitions: int = 10_000) -> None:
        self._per = per_partition
        self._max = partitions
        self._parts: OrderedDict[str, tuple[list[Vector], list[str]]] = OrderedDict()

    def nearest(self, part: str, vector: Vector, threshold: float) -> tuple[str, float] | None:
        """The exact key of the closest stored question at least ``threshold`` similar."""
        found = self._parts.get(part)
        if found is None:
            return None
        self._parts.move_to_end(part)
        import numpy as np  # only groups with semantic: true get here

        vectors, keys = found
        scores = np.stack(vectors) @ vector
        best = int(np.argmax(scores))
        score = float(scores[best])
        return (keys[best], score) if score >= threshold else None

    def add(self, part: str, vector: Vector, key: str) -> None:
        found = self._parts.get(part)
        if found is None:
            found = self._parts[part] = ([], [])
            while len(self._parts) > self._max:
                self._parts.popitem(last=False)
        vectors, keys = found
        vectors.append(vector)
        keys.append(key)
        if len(keys) > self._per:
            del vectors[0], keys[0]


class Embedder(Protocol):
    def embed(self, texts: list[str]) -> Any:
        """Unit vectors (float32), one row per text."""
        ...


class SemanticCache:
    """What the response cache needs for semantic lookups: the embedder, the index, the
    threshold, and which groups opted in."""

    def __init__(self, embedder: Embedder, threshold: float, groups: frozenset[str],
                 index: SemanticIndex | None = None) -> None:
        self.embedder = embedder
        self.threshold = threshold
        self.groups = groups
        self.index = index or SemanticIndex()
