"""The versioned list-price catalog shipped in ``prices.json``.

Lookup is by upstream model id: exact, then without a ``vendor/`` prefix (OpenRouter-style
ids), then without a dated snapshot suffix (``gpt-4o-2024-08-06`` → ``gpt-4o``,
``claude-sonnet-4-5-20250929`` → ``claude-sonnet-4-5``). Proprietary models match whichever
provider serves them (the same list price on Azure, Bedrock, OpenRouter); open-weight models
only for the vendor the catalog names, since a self-hosted copy costs what its owner says.
"""

from __future__ import annotations

import re
from importlib import resources

import msgspec

from polyroute.model.price import Price

_SNAPSHOT = re.compile(r"(-\d{4}-\d{2}-\d{2}|-\d{8}|-latest|@\d+|-v\d+(:\d+)?)$")


class CatalogEntry(msgspec.Struct, forbid_unknown_fields=True):
    vendor: str
    model: str
    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None
    reasoning: float | None = None
    per_unit: dict[str, float] | None = None
    """Media units in USD each (``image:1024x1024:hd``, ``second``, ``character``,
    ``search``): see ``model/media.py``."""
    any_vendor: bool = True


class CatalogFile(msgspec.Struct):
    version: str
    models: list[CatalogEntry]
    currency: str = "USD"
    unit: str = "per 1M tokens"
    notes: str = ""
    batch: dict[str, float] = msgspec.field(default_factory=dict)
    """Vendor → the fraction of the list price a batch pays ('*': every other vendor)."""


class PriceCatalog:
    def __init__(self, data: CatalogFile) -> None:
        self.version = data.version
        self._batch = data.batch
        self._by_model: dict[str, list[tuple[CatalogEntry, Price]]] = {}
        source = f"catalog:{data.version}"
        for e in data.models:
            price = Price(e.input, e.output, e.cached_input, e.cache_write, e.reasoning,
                          tuple(sorted((e.per_unit or {}).items())), source=source)
            self._by_model.setdefault(e.model, []).append((e, price))

    @classmethod
    def load(cls, text: bytes | None = None) -> PriceCatalog:
        if text is None:
            text = resources.files("polyroute.pricing").joinpath("prices.json").read_bytes()
        return cls(msgspec.json.decode(text, type=CatalogFile))

    def price(self, vendor: str, model: str) -> Price | None:
        """The list price of ``model`` served by ``vendor``, or None (unpriced)."""
        for candidate in model_spellings(model):
            for entry, price in self._by_model.get(candidate, ()):
                if entry.any_vendor or entry.vendor == vendor:
                    return price
        return None

    def batch_factor(self, vendor: str) -> float:
        """What a batch pays of ``vendor``'s list price (OpenAI, Azure, Anthropic, Bedrock
        all charge half); 1.0 when the catalog says nothing."""
        return self._batch.get(vendor, self._batch.get("*", 1.0))

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_model.values())


def model_spellings(model: str) -> list[str]:
    """The ids a model may be listed under: as given, without a vendor/ prefix, without a
    dated snapshot suffix (the capability catalog looks up the same way)."""
    names = [model]
    if "/" in model:
        names.append(model.rsplit("/", 1)[1])
    for name in list(names):
        stripped = _SNAPSHOT.sub("", name)
        if stripped != name:
            names.append(stripped)
    return names
