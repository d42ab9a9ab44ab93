"""Token usage, the unit everything downstream (metrics, ledger, budgets) counts in."""

from __future__ import annotations

import msgspec


class PromptTokensDetails(msgspec.Struct, omit_defaults=True):
    cached_tokens: int | None = None
    """Prompt tokens read from the vendor's prompt cache (Anthropic: cache_read_input_tokens)."""
    audio_tokens: int | None = None
    cache_creation_tokens: int | None = None
    """Prompt tokens written to the prompt cache. Anthropic bills these apart (above the plain
    input price) and OpenAI has no such count, so it is polyroute's own field; like
    ``cached_tokens`` they are included in ``prompt_tokens``."""


class CompletionTokensDetails(msgspec.Struct, omit_defaults=True):
    reasoning_tokens: int | None = None
    audio_tokens: int | None = None
    accepted_prediction_tokens: int | None = None
    rejected_prediction_tokens: int | None = None


class Usage(msgspec.Struct, omit_defaults=True):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    prompt_tokens_details: PromptTokensDetails | None = None
    completion_tokens_details: CompletionTokensDetails | None = None

    @property
    def cached_tokens(self) -> int:
        d = self.prompt_tokens_details
        return (d.cached_tokens or 0) if d else 0

    @property
    def cache_creation_tokens(self) -> int:
        d = self.prompt_tokens_details
        return (d.cache_creation_tokens or 0) if d else 0

    @property
    def reasoning_tokens(self) -> int:
        d = self.completion_tokens_details
        return (d.reasoning_tokens or 0) if d else 0
