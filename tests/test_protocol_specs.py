"""A wire protocol is one registry entry: each adapter package's spec names the protocol, the
auth its vendors expect and its own options struct, and the config validates a provider's
``options`` against it (the older top-level ``region`` / ``api_version`` still work). The
price catalog and the auto-router are read once per gateway and handed to whoever needs them.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestServer

import polyroute.adapters
from polyroute.adapters.azure_openai.spec import AzureOptions
from polyroute.adapters.bedrock_converse.spec import BedrockOptions
from polyroute.adapters.registry import PROTOCOLS
from polyroute.app import build_app
from polyroute.autorouter import AutoRouter
from polyroute.config import ConfigError, load_config
from polyroute.config.compiled import GatewayConfig
from polyroute.config.discovery import KNOWN_VENDORS
from polyroute.config.schema import json_schema
from polyroute.pricing.catalog import PriceCatalog
from polyroute.wiring import PolicyStack

BEDROCK_URL = "https://bedrock-runtime.eu-west-3.amazonaws.com"
AZURE_URL = "https://r.openai.azure.com"


def load(tmp_path: Path, providers: dict[str, Any], env: dict[str, str] | None = None,
         **rest: Any) -> GatewayConfig:
    path = tmp_path / "polyroute.yaml"
    path.write_text(yaml.safe_dump({"providers": providers, **rest}))
    return load_config(str(path), env or {})


def refused(tmp_path: Path, providers: dict[str, Any], env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, providers, env)
    message = str(info.value)
    assert message.startswith(str(tmp_path / "polyroute.yaml")) and "fix:" in message
    assert "\n" not in message
    return message


def endpoint_options(config: GatewayConfig, name: str) -> Any:
    return config.open_vendors[name].options


def bedrock(**keys: Any) -> dict[str, Any]:
    return {"protocol": "bedrock", "base_url": "http://127.0.0.1:9", "auth": "none",
            "any_model": True, **keys}


# -- the registry ----------------------------------------------------------------------------

def test_every_adapter_package_with_a_spec_is_registered_under_its_name() -> None:
    packages = [m.name for m in pkgutil.iter_modules(polyroute.adapters.__path__) if m.ispkg]
    with_spec = {p for p in packages
                 if (Path(polyroute.adapters.__path__[0]) / p / "spec.py").exists()}
    assert with_spec == {"openai_chat", "anthropic_messages", "gemini", "bedrock_converse",
                         "azure_openai", "openai_responses"}
    specs = {importlib.import_module(f"polyroute.adapters.{p}.spec").SPEC for p in with_spec}
    assert set(PROTOCOLS.values()) == specs
    for name, spec in PROTOCOLS.items():
        assert spec.name == name
        module, _, cls = spec.adapter.partition(":")
        assert callable(getattr(importlib.import_module(module), cls))


def test_every_discovered_vendor_speaks_a_registered_protocol() -> None:
    assert {v.protocol for v in KNOWN_VENDORS} <= set(PROTOCOLS)


def test_the_json_schema_offers_the_registered_protocols() -> None:
    protocol = json_schema()["$defs"]["ProviderSection"]["properties"]["protocol"]
    assert protocol["enum"] == list(PROTOCOLS)


def test_an_unknown_protocol_names_the_registered_ones(tmp_path: Path) -> None:
    message = refused(tmp_path, {"x": {"protocol": "grpc", "base_url": "http://127.0.0.1:9"}})
    assert "providers.x.protocol" in message and "unknown protocol 'grpc'" in message
    assert "openai, anthropic, gemini, bedrock, azure" in message


def test_each_protocol_puts_the_key_where_its_vendors_expect_it(tmp_path: Path) -> None:
    env = {"K": "secret-value-123"}
    config = load(tmp_path, {
        name: {"protocol": name, "base_url": BEDROCK_URL if name == "bedrock" else AZURE_URL,
               "api_key": "${K}", "any_model": True}
        for name in PROTOCOLS}, env)
    headers = {name: dict(e.headers) for name, e in config.open_vendors.items()}
    assert headers == {
        "openai": {"Authorization": "Bearer secret-value-123"},
        "anthropic": {"x-api-key": "secret-value-123"},
        "gemini": {"x-goog-api-key": "secret-value-123"},
        "bedrock": {"Authorization": "Bearer secret-value-123"},  # a Bedrock API key
        "azure": {"api-key": "secret-value-123"},
        "openai_responses": {"Authorization": "Bearer secret-value-123"},
    }
    continuation = {n: e.quirks.continuation for n, e in config.open_vendors.items()}
    assert continuation == {"openai": "none", "anthropic": "assistant_prefill",
                            "gemini": "none", "bedrock": "assistant_prefill", "azure": "none",
                            "openai_responses": "none"}


# -- options -----------------------------------------------------------------------------------

def test_bedrock_region_from_options_from_the_old_key_or_from_the_host(tmp_path: Path) -> None:
    config = load(tmp_path, {
        "new": bedrock(options={"region": "ap-south-1"}),
        "old": bedrock(region="us-west-2"),
        "host": {**bedrock(), "base_url": BEDROCK_URL},
        "env": bedrock(options={"region": "${AWS_REGION}"}),
    }, {"AWS_REGION": "sa-east-1"})
    assert endpoint_options(config, "new") == BedrockOptions(region="ap-south-1")
    assert endpoint_options(config, "old") == BedrockOptions(region="us-west-2")
    assert endpoint_options(config, "host") == BedrockOptions(region="eu-west-3")
    assert endpoint_options(config, "env") == BedrockOptions(region="sa-east-1")


def test_azure_api_version_defaults_by_url_form(tmp_path: Path) -> None:
    azure = {"protocol": "azure", "auth": "none", "any_model": True}
    config = load(tmp_path, {
        "deployments": {**azure, "base_url": AZURE_URL},
        "v1": {**azure, "base_url": f"{AZURE_URL}/openai/v1"},
        "pinned": {**azure, "base_url": AZURE_URL, "options": {"api_version": "2025-01-01"}},
        "old": {**azure, "base_url": AZURE_URL, "api_version": "2024-06-01"},
        "never": {**azure, "base_url": AZURE_URL, "options": {"api_version": ""}},
    })
    assert endpoint_options(config, "deployments") == AzureOptions(api_version="2024-10-21")
    assert endpoint_options(config, "v1") == AzureOptions(api_version=None)
    assert endpoint_options(config, "pinned") == AzureOptions(api_version="2025-01-01")
    assert endpoint_options(config, "old") == AzureOptions(api_version="2024-06-01")
    assert endpoint_options(config, "never") == AzureOptions(api_version=None)


def test_protocols_without_options_have_none(tmp_path: Path) -> None:
    config = load(tmp_path, {"o": {"base_url": "http://127.0.0.1:9/v1", "any_model": True}})
    assert endpoint_options(config, "o") is None


@pytest.mark.parametrize(("providers", "key", "words"), [
    ({"b": bedrock(options={"regoin": "us-east-1"})}, "providers.b.options.regoin",
     ["no option 'regoin'", "takes region"]),
    ({"o": {"base_url": "http://127.0.0.1:9/v1", "region": "us-east-1"}}, "providers.o.region",
     ["openai protocol has no option 'region'", "set protocol: bedrock"]),
    ({"o": {"base_url": "http://127.0.0.1:9/v1", "options": {"api_version": "1"}}},
     "providers.o.options.api_version", ["set protocol: azure"]),
    ({"g": {"protocol": "gemini", "base_url": "http://127.0.0.1:9", "options": {"x": 1}}},
     "providers.g.options.x", ["gemini takes no options"]),
    ({"b": bedrock(options={"region": 5})}, "providers.b.options.region", ["Expected `str"]),
    ({"b": bedrock(region="us-east-1", options={"region": "us-east-2"})}, "providers.b.region",
     ["given twice", "keep options.region"]),
    ({"b": {**bedrock(), "base_url": "http://127.0.0.1:9"}}, "providers.b.options.region",
     ["cannot be read from base_url", "add options: {region: us-east-1}"]),
    ({"b": bedrock(options={"region": "${NOPE}"})}, "providers.b.options.region",
     ["NOPE is not set"]),
])
def test_a_bad_option_is_one_line_naming_the_key_and_the_fix(
        tmp_path: Path, providers: dict[str, Any], key: str, words: list[str]) -> None:
    message = refused(tmp_path, providers)
    assert f": {key}: " in message, message
    for word in words:
        assert word in message, message


# -- read once -------------------------------------------------------------------------------

async def test_prices_and_the_auto_router_are_read_once_per_gateway(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reads: dict[str, int] = {"catalog": 0, "router": 0}
    catalog_load, router_load = PriceCatalog.load.__func__, AutoRouter.load.__func__

    def counting_catalog(cls: type[PriceCatalog], text: bytes | None = None) -> PriceCatalog:
        reads["catalog"] += 1
        return catalog_load(cls, text)

    def counting_router(cls: type[AutoRouter], path: Any = None) -> AutoRouter:
        reads["router"] += 1
        return router_load(cls, path)

    monkeypatch.setattr(PriceCatalog, "load", classmethod(counting_catalog))
    monkeypatch.setattr(AutoRouter, "load", classmethod(counting_router))
    deployments = [
        {"provider": "sim", "model": "gpt-4o", "profile": "frontier"},  # priced by the catalog
        {"provider": "sim", "model": "gpt-4o-mini", "profile": "small"},
    ]
    config = load(tmp_path, {"sim": {"base_url": "http://127.0.0.1:9/v1", "auth": "none"}},
                  model_groups={"a": {"routing": "auto", "deployments": deployments},
                                "b": {"routing": "auto", "deployments": deployments}},
                  storage={"sqlite_path": str(tmp_path / "p.db"), "ledger": False})
    async with TestServer(build_app(config), host="127.0.0.1"):  # built and started
        assert reads == {"catalog": 1, "router": 1}
    assert config.auto_router is not None and config.catalog is not None


async def test_the_policy_prices_with_the_configs_catalog(tmp_path: Path) -> None:
    only_here = PriceCatalog.load(b'{"version": "t1", "models": [{"vendor": "v", '
                                  b'"model": "house-model", "input": 7, "output": 9}]}')
    config = load(tmp_path, {}, storage={"sqlite_path": str(tmp_path / "p.db"),
                                         "ledger": False})
    assert config.catalog is not None and config.catalog.price("v", "house-model") is None
    stack = PolicyStack(replace(config, catalog=only_here))
    price = stack.prices.of("v", "house-model")
    assert price is not None and (price.input_per_1m, price.source) == (7, "catalog:t1")
    await stack.db.close()
