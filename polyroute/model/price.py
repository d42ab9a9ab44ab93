"""A price per million tokens: what a deployment's config or the catalog says it costs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Price:
    input_per_1m: float
    output_per_1m: float
    cached_input_per_1m: float | None = None
    cache_write_per_1m: float | None = None
    """Prompt tokens written to the vendor's cache (Anthropic); None: the input price."""
    reasoning_per_1m: float | None = None
    """Reasoning tokens, where a vendor prices them apart; None: the output price."""
    source: str = "config"
    """Where the price came from: 'config' or 'catalog:<version>' (recorded in the ledger)."""
