"""Configuration of one simulator instance."""

from __future__ import annotations

import msgspec

DEFAULT_TEXT = (
    "Hello! I am the polyroute simulator. This reply is deterministic, "
    "so tests can compare it byte for byte."
)
DEFAULT_MODELS = ("gpt-4o-mini", "gpt-4o", "echo", "text-embedding-3-small")


class FaultRule(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A server-side rule that injects `fault` into requests whose model matches `model`.

    `times=None` means the rule never runs out; `probability` is rolled with the
    simulator's seeded random generator so a run is reproducible.
    """

    fault: str
    model: str = "*"
    params: dict[str, float] = msgspec.field(default_factory=dict)
    times: int | None = None
    probability: float = 1.0


class SimSettings(msgspec.Struct, kw_only=True):
    host: str = "127.0.0.1"
    port: int = 8001
    text: str = DEFAULT_TEXT
    # 0 means "as fast as the socket takes it".
    tokens_per_second: float = 0.0
    chunk_tokens: int = 1
    # Delay before the response headers of every /v1 request.
    latency_ms: float = 0.0
    # Requests per minute to /v1/chat/completions (0: no quota); answers carry OpenAI's
    # x-ratelimit-*-requests headers, and a request beyond it gets 429.
    rate_limit_rpm: int = 0
    api_key: str | None = None
    models: list[str] = msgspec.field(default_factory=lambda: list(DEFAULT_MODELS))
    rules: list[FaultRule] = msgspec.field(default_factory=list)
    seed: int = 0
    embedding_dimensions: int = 1536
    # How long a batch (/v1/batches) stays in_progress before it completes.
    batch_delay_ms: float = 100.0
