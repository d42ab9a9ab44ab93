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
class Capabilities:
    """What a deployment can do, as far as a client can tell: from the capability catalog
    (``polyroute/capabilities``) for known models, overridden by the config. None: unknown
    (an unknown model, a key the catalog does not state) — never assumed present or absent."""

    tools: bool | None = None
    parallel_tool_calls: bool | None = None
    json_schema: bool | None = None
    """Strict structured output (response_format json_schema, strict: true)."""
    vision: bool | None = None
    audio: bool | None = None
    context_window: int | None = None
    max_output: int | None = None
    streaming_usage: bool | None = None
    prompt_caching: bool | None = None
    source: str = "unknown"
    """Where they came from: 'catalog:<version>', 'config', 'catalog:<version>+config'."""

    def offers(self, feature: str) -> bool | None:
        """Whether it offers a capability a request can use (tools, parallel_tool_calls,
        json_schema, vision, audio: the ledger's ``features``); None: unknown."""
        value: bool | None = getattr(self, feature)
        return value


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
    cloud: str | None = None
    """Whose infrastructure serves it (aws, azure, gcp, or the vendor's own)."""
    region: str | None = None
    capabilities: Capabilities = Capabilities()
    equivalent: bool = True
    """False: declared not interchangeable with the rest of its group (a different model
    family, a weaker tier); moving traffic onto it is a change, not a failover."""

    @property
    def upstream(self) -> str:
        """Identifies the upstream model behind this deployment. Health (circuit breakers) is
        per upstream: two groups listing the same provider and model share it, while two
        deployments that only share a display name do not."""
        return f"{self.vendor}/{self.model}"
