"""The wire protocols, one line each: the module of each adapter package's ``SPEC``. Specs are
read when this module is imported (they import no adapter code); an adapter is imported only
when a provider uses its protocol, so protocols nobody configured cost nothing more."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from polyroute.adapters.spec import ProtocolSpec

if TYPE_CHECKING:
    from polyroute.adapters.base import Adapter, MediaAdapter
    from polyroute.adapters.client import UpstreamClient

_SPECS = (
    "polyroute.adapters.openai_chat.spec",
    "polyroute.adapters.anthropic_messages.spec",
    "polyroute.adapters.gemini.spec",
    "polyroute.adapters.bedrock_converse.spec",
    "polyroute.adapters.azure_openai.spec",
    "polyroute.adapters.openai_responses.spec",
)


def _spec(module: str) -> ProtocolSpec:
    spec = getattr(importlib.import_module(module), "SPEC", None)
    if not isinstance(spec, ProtocolSpec):
        raise TypeError(f"{module} defines no SPEC = ProtocolSpec(...)")
    return spec


PROTOCOLS: Mapping[str, ProtocolSpec] = MappingProxyType({s.name: s for s in map(_spec, _SPECS)})
"""Protocol name (a provider's ``protocol:``) → its spec."""


class AdapterRegistry:
    def __init__(self, client: UpstreamClient) -> None:
        self._client = client
        self._adapters: dict[str, Adapter] = {}

    def get(self, protocol: str) -> Adapter:
        adapter = self._adapters.get(protocol)
        if adapter is None:
            module_name, _, class_name = PROTOCOLS[protocol].adapter.partition(":")
            cls: Any = getattr(importlib.import_module(module_name), class_name)
            adapter = self._adapters[protocol] = cls(self._client)
        return adapter

    def media(self, protocol: str) -> MediaAdapter:
        """The adapter of a protocol whose spec lists media endpoints."""
        if not PROTOCOLS[protocol].endpoints:
            raise LookupError(f"the {protocol} protocol serves no media endpoint")
        adapter: Any = self.get(protocol)
        return adapter  # type: ignore[no-any-return]
