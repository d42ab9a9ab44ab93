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
# llama.cpp's server (llama-server) continues a final assistant message by default (its
# "assistant prefill"; --no-prefill-assistant turns it off).
_LLAMACPP = Quirks(max_tokens_field="max_tokens", continuation="assistant_prefill")


@dataclass(frozen=True, slots=True)
class KnownVendor:
    name: str
    protocol: str
    """A protocol of adapters/registry.py (tests/test_protocol_specs.py checks each row)."""
    key_env: str | None
    """Environment variable holding the API key; None for keyless local servers."""
    base_url: str | None
    """Public default; None when the vendor is only reachable through base_url_envs. May hold
    ``{region}``, filled from region_envs."""
    base_url_envs: tuple[str, ...]
    url_suffix: str = ""
    """Appended to a base URL taken from the environment (Ollama's variable has no /v1)."""
    quirks: Quirks = field(default_factory=Quirks)
    auth: Literal["bearer", "api-key", "x-api-key", "x-goog-api-key"] = "bearer"
    """How the key is sent, as in a provider's ``auth``."""
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """Fixed headers every request to the vendor carries (never secrets)."""
    more_key_envs: tuple[str, ...] = ()
    """Other variables for the key, read after key_env (the vendor SDK's own order)."""
    enabled_by: tuple[str, ...] = ()
    """Variables other than the key that enable a cloud vendor (AWS credentials: the
    adapter finds them itself, the same way the AWS SDKs do)."""
    needs_key: bool = False
    """A vendor reached through base_url_envs that is still enabled only with its key."""
    region_envs: tuple[str, ...] = ()
    """Where the region comes from; a vendor with these is enabled only once one is set."""
    api_version_env: str | None = None
    """Azure: the variable holding the api-version (the openai SDK's own)."""


KNOWN_VENDORS: tuple[KnownVendor, ...] = (
    KnownVendor("openai", "openai", "OPENAI_API_KEY", "https://api.openai.com/v1",
                ("OPENAI_BASE_URL",)),
    KnownVendor("xai", "openai", "XAI_API_KEY", "https://api.x.ai/v1", ("XAI_BASE_URL",)),
    KnownVendor("groq", "openai", "GROQ_API_KEY", "https://api.groq.com/openai/v1",
                ("GROQ_BASE_URL",)),
    # Mistral rejects stream_options and max_completion_tokens with a 422.
    KnownVendor("mistral", "openai", "MISTRAL_API_KEY", "https://api.mistral.ai/v1",
                ("MISTRAL_BASE_URL",),
                quirks=Quirks(stream_usage=False, max_tokens_field="max_tokens",
                              continuation="prefix")),
    # DeepSeek continues a prefix (prefix: true) only at its /beta URL: set
    # quirks.continuation: prefix on a provider whose base_url is https://api.deepseek.com/beta.
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
    # google-genai reads GOOGLE_API_KEY before GEMINI_API_KEY; gemini-cli sets the base URL.
    KnownVendor("gemini", "gemini", "GOOGLE_API_KEY", "https://generativelanguage.googleapis.com",
                ("GOOGLE_GEMINI_BASE_URL",), auth="x-goog-api-key",
                more_key_envs=("GEMINI_API_KEY",)),
    # Requests are signed with whatever credentials the AWS SDKs would find; a Bedrock API key
    # (AWS_BEARER_TOKEN_BEDROCK) is sent as a bearer token instead.
    KnownVendor("bedrock", "bedrock", "AWS_BEARER_TOKEN_BEDROCK",
                "https://bedrock-runtime.{region}.amazonaws.com",
                ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "AWS_ENDPOINT_URL"),
                enabled_by=("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE",
                            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                            "AWS_CONTAINER_CREDENTIALS_FULL_URI"),
                region_envs=("AWS_REGION", "AWS_DEFAULT_REGION")),
    KnownVendor("azure", "azure", "AZURE_OPENAI_API_KEY", None, ("AZURE_OPENAI_ENDPOINT",),
                auth="api-key", needs_key=True, api_version_env="OPENAI_API_VERSION"),
    KnownVendor("ollama", "openai", None, None, ("OLLAMA_BASE_URL", "OLLAMA_HOST"),
                url_suffix="/v1", quirks=_LOCAL),
    KnownVendor("vllm", "openai", "VLLM_API_KEY", None, ("VLLM_BASE_URL",),
                quirks=Quirks(continuation="continue_final_message")),
    KnownVendor("llamacpp", "openai", None, None, ("LLAMACPP_BASE_URL",), quirks=_LLAMACPP),
)


@dataclass(frozen=True, slots=True)
class Discovered:
    vendor: KnownVendor
    base_url: str
    base_url_source: str
    """The variable the URL came from, or 'default'."""
    key_env: str | None = None
    """The variable the key was found in, if any."""
    region: str | None = None
    api_version: str | None = None

    @property
    def options(self) -> dict[str, str]:
        """Its protocol's options, as a provider's ``options:`` would give them."""
        given = {"region": self.region, "api_version": self.api_version}
        return {key: value for key, value in given.items() if value is not None}


def discover(environ: Mapping[str, str]) -> list[Discovered]:
    """The vendors the environment enables. A keyless vendor needs its URL variable set."""
    found = []
    for vendor in KNOWN_VENDORS:
        url_env = next((e for e in vendor.base_url_envs if environ.get(e)), None)
        key_names = (vendor.key_env, *vendor.more_key_envs) if vendor.key_env else ()
        key_env = next((e for e in key_names if environ.get(e)), None)
        enabled = key_env is not None or any(environ.get(e) for e in vendor.enabled_by)
        if vendor.base_url is not None and not enabled:
            continue  # a public cloud vendor is enabled by its key (or credentials)
        if vendor.base_url is None and url_env is None:
            continue  # a self-hosted server is enabled by its URL
        if vendor.needs_key and key_env is None:
            continue
        region = next((environ[e] for e in vendor.region_envs if environ.get(e)), None)
        if vendor.region_envs and region is None:
            continue  # requests are signed for a region: without one nothing can be sent
        api_version = environ.get(vendor.api_version_env or "") or None
        if url_env is not None:
            base = environ[url_env].rstrip("/")
            if not base.startswith(("http://", "https://")):
                base = "http://" + base  # OLLAMA_HOST is often host:port
            # A server's listen-on-all address is not an address to connect to.
            base = base.replace("//0.0.0.0", "//127.0.0.1", 1)
            if vendor.url_suffix and not base.endswith(vendor.url_suffix):
                base += vendor.url_suffix
            found.append(Discovered(vendor, base, url_env, key_env, region, api_version))
        else:
            assert vendor.base_url is not None
            found.append(Discovered(vendor, vendor.base_url.format(region=region), "default",
                                    key_env, region, api_version))
    return found
