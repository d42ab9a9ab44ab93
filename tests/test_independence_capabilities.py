"""Issue 14, item 1: capability profiles from the versioned catalog, overridden by config;
cloud, region and equivalence per deployment."""

from __future__ import annotations

import json
from pathlib import Path

from polyroute.capabilities.catalog import CapabilityCatalog
from polyroute.config import load_config
from polyroute.config.schema import json_schema
from tests.support.independence import write_config


def test_catalog_is_versioned_and_matches_snapshots_and_prefixes() -> None:
    catalog = CapabilityCatalog.load()
    assert catalog.version == "2025-10-01" and len(catalog) > 30
    dated = catalog.lookup("claude-sonnet-4-5-20250929")
    assert dated.tools and dated.prompt_caching and dated.json_schema is False
    assert dated.source == "catalog:2025-10-01"
    assert catalog.lookup("openrouter/gpt-4o").json_schema is True
    unknown = catalog.lookup("my-finetune")
    assert unknown.tools is None and unknown.source == "unknown"


def test_config_overrides_catalog_and_sets_cloud_region_equivalence(tmp_path: Path) -> None:
    config = load_config(str(write_config(tmp_path)), {})
    chat = {d.vendor: d for d in config.groups["chat"].deployments}
    assert (chat["openai"].cloud, chat["openai"].region) == ("azure", "eastus")
    assert chat["google"].capabilities.audio is True
    assert chat["openai"].capabilities.context_window == 128000
    solo = {d.vendor: d for d in config.groups["solo"].deployments}
    haiku = solo["anthropic"]
    assert haiku.equivalent is False and solo["openai"].equivalent is True
    assert haiku.capabilities.vision is False
    assert haiku.capabilities.source == "catalog:2025-10-01+config"
    assert haiku.cloud == "anthropic"  # no cloud given: the provider's own
    assert haiku.region is None


def test_unknown_capability_key_is_one_line_error(tmp_path: Path) -> None:
    path = write_config(tmp_path, """  bad:
    deployments:
      - {provider: openai, model: x, capabilities: {telepathy: true}}
""")
    try:
        load_config(str(path), {})
    except Exception as exc:
        message = str(exc)
    else:
        raise AssertionError("an unknown capability was accepted")
    assert "\n" not in message and "telepathy" in message and str(path) in message


def test_schema_documents_the_new_keys() -> None:
    deployment = json_schema()["$defs"]["DeploymentSection"]["properties"]
    assert {"cloud", "region", "capabilities", "equivalent"} <= set(deployment)
    shipped = json.loads((Path(__file__).parents[1] / "docs/config.schema.json").read_text())
    assert shipped == json_schema()


def test_request_features_recorded_per_request() -> None:
    import msgspec

    from polyroute.model.chat import ChatRequest
    from polyroute.model.features import request_features

    body = {"model": "chat", "parallel_tool_calls": True,
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "x"}},
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}},
                {"type": "input_audio", "input_audio": {"data": "AA", "format": "wav"}}]}]}
    request = msgspec.json.decode(msgspec.json.encode(body), type=ChatRequest)
    assert request_features(request) == "tools,parallel_tool_calls,json_schema,vision,audio"
    plain = msgspec.json.decode(b'{"model": "m", "messages": [{"role": "user", "content": "hi"}],'
                                b' "response_format": {"type": "json_object"}}', type=ChatRequest)
    assert request_features(plain) is None
