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
    per_unit: tuple[tuple[str, float], ...] = ()
    """Media units' prices in USD each (``image:1024x1024:hd``, ``second``, ``character``,
    ``search``; ``model/media.py``): a media request whose unit is listed is billed by it,
    otherwise by its tokens."""
    source: str = "config"
    """Where the price came from: 'config' or 'catalog:<version>' (recorded in the ledger)."""

    def unit_price(self, unit: str) -> float | None:
        """The price of one ``unit``: its own, else that of the name without its last
        ``:part`` (``image:1024x1024:hd`` → ``image:1024x1024`` → ``image``); None: unlisted."""
        prices = dict(self.per_unit)
        name = unit
        while True:
            if name in prices:
                return prices[name]
            if ":" not in name:
                return None
            name = name.rpartition(":")[0]
