"""Zero-config: find vendors from the environment variables their own SDKs read.

A vendor on a protocol polyroute already speaks is one row of this table, not code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from polyroute.config.schema import Quirks

# Self-hosted servers that ignore OpenAI's newer max_completion_tokens (they would generate
# to the end of the context) but honour max_tokens.
_LOCAL = Quirks(max_tokens_field="max_tokens")


@dataclass(frozen=True, slots=True)
class KnownVendor:
    name: str
    protocol: Literal["openai", "anthropic"]
    key_env: str | None
    """Environment variable holding the API key; None for keyless local servers."""
    base_url: str | None
    """Public default; None when the vendor is only reachable through base_url_envs."""
    base_url_envs: tuple[str, ...]
    url_suffix: str = ""
    """Appended to a base URL taken from the environment (Ollama's variable has no /v1)."""
    quirks: Quirks = field(default_factory=Quirks)
    auth: Literal["bearer", "api-key", "x-api-key"] = "bearer"
    """How the key is sent, as in a provider's ``auth``."""
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """Fixed headers every request to the vendor carries (never secrets)."""


KNOWN_VENDORS: tuple[KnownVendor, ...] = (
    KnownVendor("openai", "openai", "OPENAI_API_KEY", "https://api.openai.com/v1",
                ("OPENAI_BASE_URL",)),
    KnownVendor("xai", "openai", "XAI_API_KEY", "https://api.x.ai/v1", ("XAI_BASE_URL",)),
    KnownVendor("groq", "openai", "GROQ_API_KEY", "https://api.groq.com/openai/v1",
                ("GROQ_BASE_URL",)),
    # Mistral rejects stream_options and max_completion_tokens with a 422.
    KnownVendor("mistral", "openai", "MISTRAL_API_KEY", "https://api.mistral.ai/v1",
                ("MISTRAL_BASE_URL",),
                quirks=Quirks(stream_usage=False, max_tokens_field="max_tokens")),
    KnownVendor("deepseek", "openai", "DEEPSEEK_API_KEY", "https://api.deepseek.com/v1",
                ("DEEPSEEK_BASE_URL",)),
    KnownVendor("together", "openai", "TOGETHER_API_KEY", "https://api.together.xyz/v1",
                ("TOGETHER_BASE_URL",)),
    KnownVendor("fireworks", "openai", "FIREWORKS_API_KEY",
                "https://api.fireworks.ai/inference/v1", ("FIREWORKS_BASE_URL",)),
    KnownVendor("cerebras", "openai", "CEREBRAS_API_KEY", "https://api.cerebras.ai/v1",
                ("CEREBRAS_BASE_URL",)),
    KnownVendor("openrouter", "openai", "OPENROUTER_API_KEY", "https://openrouter.ai/api/v1",
                ("OPENROUTER_BASE_URL",)),
    KnownVendor("anthropic", "anthropic", "ANTHROPIC_API_KEY", "https://api.anthropic.com",
                ("ANTHROPIC_BASE_URL",), auth="x-api-key",
                headers=MappingProxyType({"anthropic-version": "2023-06-01"})),
    KnownVendor("ollama", "openai", None, None, ("OLLAMA_BASE_URL", "OLLAMA_HOST"),
                url_suffix="/v1", quirks=_LOCAL),
    KnownVendor("vllm", "openai", "VLLM_API_KEY", None, ("VLLM_BASE_URL",)),
    KnownVendor("llamacpp", "openai", None, None, ("LLAMACPP_BASE_URL",), quirks=_LOCAL),
)


@dataclass(frozen=True, slots=True)
class Discovered:
    vendor: KnownVendor
    base_url: str
    base_url_source: str
    """The variable the URL came from, or 'default'."""


def discover(environ: Mapping[str, str]) -> list[Discovered]:
    """The vendors the environment enables. A keyless vendor needs its URL variable set."""
    found = []
    for vendor in KNOWN_VENDORS:
        url_env = next((e for e in vendor.base_url_envs if environ.get(e)), None)
        has_key = vendor.key_env is not None and bool(environ.get(vendor.key_env))
        if vendor.base_url is not None and not has_key:
            continue  # a public cloud vendor is enabled by its key
        if vendor.base_url is None and url_env is None:
            continue  # a self-hosted server is enabled by its URL
        if url_env is not None:
            base = environ[url_env].rstrip("/")
            if not base.startswith(("http://", "https://")):
                base = "http://" + base  # OLLAMA_HOST is often host:port
            # A server's listen-on-all address is not an address to connect to.
            base = base.replace("//0.0.0.0", "//127.0.0.1", 1)
            if vendor.url_suffix and not base.endswith(vendor.url_suffix):
                base += vendor.url_suffix
            found.append(Discovered(vendor, base, url_env))
        else:
            assert vendor.base_url is not None
            found.append(Discovered(vendor, vendor.base_url, "default"))
    return found
