"""Canonical embeddings request and response."""

from __future__ import annotations

from typing import Any

import msgspec

from polyroute.model.names import ModelName


class EmbeddingRequest(msgspec.Struct, omit_defaults=True):
    model: ModelName
    input: str | list[str | int | list[int]]  # text, texts, or token arrays
    encoding_format: str | None = None
    dimensions: int | None = None
    user: str | None = None
    passthrough: dict[str, msgspec.Raw] | None = msgspec.field(
        default=None, name="$polyroute.passthrough")  # a key no client sends


class EmbeddingUsage(msgspec.Struct, omit_defaults=True):
    prompt_tokens: int = 0
    total_tokens: int = 0


class Embedding(msgspec.Struct, omit_defaults=True):
    index: int
    embedding: list[float] | str
    object: str = "embedding"


class EmbeddingResponse(msgspec.Struct, omit_defaults=True):
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage | None = None
    object: str = "list"
    raw: bytes | None = None
    extra: dict[str, Any] | None = None
