"""Where a request goes: a deployment (a model on a provider) and its endpoint (protocol, URL,
the headers that authenticate us, quirks). Compiled from the config file by
:mod:`polyroute.config.load`; read by the engine and the adapters, which need nothing else of
the config."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from polyroute.model.price import Price


@dataclass(frozen=True, slots=True)
class Quirks:
    max_tokens_field: str | None = None
    stream_usage: bool = True
    drop_params: frozenset[str] = frozenset()
    default_max_tokens: int | None = None
    continuation: str = "none"
    """How this provider continues a final assistant message (resuming a broken stream):
    'assistant_prefill' (Anthropic, Bedrock, llama.cpp's server: the final assistant message
    is the prefix), 'continue_final_message' (vLLM's flag), 'prefix' (Mistral's and
    DeepSeek's ``prefix: true``) or 'none' (regenerate and splice instead)."""
    allowed_s3_prefixes: tuple[str, ...] = ()
    """Bedrock: s3:// prefixes clients may name (each ends in '/'); empty: none."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """How to reach one provider: protocol, URL and the headers that authenticate us."""

    vendor: str
    protocol: str
    base_url: str
    headers: Mapping[str, str]
    quirks: Quirks = Quirks()
    secrets: tuple[str, ...] = ()
    """Values that must never be logged (the resolved keys), for the log redactor."""
    options: Any = None
    """The protocol's own settings: an instance of its spec's ``options`` struct (Bedrock's
    region, Azure's api-version), validated when the config was loaded; None: it has none."""
    _request_headers: Mapping[str, str] = field(default_factory=dict, repr=False,
                                                compare=False)

    @property
    def request_headers(self) -> Mapping[str, str]:
        """The headers of every JSON request to this endpoint, built once."""
        return self._request_headers

    def __post_init__(self) -> None:
        headers = MappingProxyType({"Content-Type": "application/json", **self.headers})
        object.__setattr__(self, "_request_headers", headers)

    def __repr__(self) -> str:  # headers hold keys: never print them
        return f"Endpoint({self.vendor!r}, {self.protocol!r}, {self.base_url!r})"


@dataclass(frozen=True, slots=True)
class Deployment:
    name: str
    vendor: str
    model: str
    endpoint: Endpoint
    weight: float = 1.0
    priority: int = 0
    tags: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    price: Price | None = None
    context_window: int | None = None
    profile: str | None = None
    rpm: int | None = None
    tpm: int | None = None
    """The vendor's quota for this deployment (requests, tokens per minute): enforced by the
    gateway, and read by the 'quota' strategy."""

    @property
    def upstream(self) -> str:
        """Identifies the upstream model behind this deployment. Health (circuit breakers) is
        per upstream: two groups listing the same provider and model share it, while two
        deployments that only share a display name do not."""
        return f"{self.vendor}/{self.model}"
