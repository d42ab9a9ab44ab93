"""The versioned capability catalog shipped in ``capabilities.json``, looked up like the price
catalog (:mod:`polyroute.pricing.catalog`): exact model id, then without a ``vendor/`` prefix,
then without a dated snapshot suffix. A model the catalog does not know gets
``Capabilities()``: every capability unknown, which the independence measures report as such
rather than guess."""

from __future__ import annotations

import dataclasses
from importlib import resources
from typing import Any

import msgspec

from polyroute.model.upstream import Capabilities
from polyroute.pricing.catalog import model_spellings


class CapabilityEntry(msgspec.Struct, forbid_unknown_fields=True):
    model: str
    tools: bool | None = None
    parallel_tool_calls: bool | None = None
    json_schema: bool | None = None
    vision: bool | None = None
    audio: bool | None = None
    context_window: int | None = None
    max_output: int | None = None
    streaming_usage: bool | None = None
    prompt_caching: bool | None = None


class CapabilityFile(msgspec.Struct):
    version: str
    models: list[CapabilityEntry]
    notes: str = ""


CAPABILITY_KEYS = tuple(f.name for f in dataclasses.fields(Capabilities) if f.name != "source")


class CapabilityCatalog:
    def __init__(self, data: CapabilityFile) -> None:
        self.version = data.version
        source = f"catalog:{data.version}"
        self._by_model = {
            e.model: Capabilities(**{k: getattr(e, k) for k in CAPABILITY_KEYS}, source=source)
            for e in data.models}

    @classmethod
    def load(cls, text: bytes | None = None) -> CapabilityCatalog:
        if text is None:
            text = resources.files("polyroute.capabilities").joinpath(
                "capabilities.json").read_bytes()
        return cls(msgspec.json.decode(text, type=CapabilityFile))

    def lookup(self, model: str) -> Capabilities:
        for name in model_spellings(model):
            found = self._by_model.get(name)
            if found is not None:
                return found
        return Capabilities()

    def resolve(self, model: str, overrides: dict[str, Any]) -> Capabilities:
        """The catalog's profile of ``model`` with the config's keys (not None) laid over."""
        base = self.lookup(model)
        given = {k: v for k, v in overrides.items() if v is not None}
        if not given:
            return base
        source = "config" if base.source == "unknown" else f"{base.source}+config"
        return dataclasses.replace(base, **given, source=source)

    def __len__(self) -> int:
        return len(self._by_model)
