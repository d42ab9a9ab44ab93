"""The official openai SDK → a real polyroute process → Azure OpenAI's URLs on the simulator:
deployment URLs with ``api-version`` and the ``api-key`` header, an Entra token as a bearer,
and the ``/openai/v1`` form, all through the OpenAI-protocol translation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from polyroute.config.discovery import discover
from polyroute.sim.settings import DEFAULT_TEXT
from tests.support.gateway import GatewayProcess
from tests.support.sim import SimServer

KEY = "azure-upstream-secret-8f14e2"  # must never appear in the gateway's log
USER = [{"role": "user", "content": "Say hello."}]
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "parameters": {
        "type": "object", "properties": {"location": {"type": "string"}},
        "required": ["location"]}}}]


def azure(base_url: str, **extra: Any) -> dict[str, Any]:
    return {"protocol": "azure", "base_url": base_url, "api_key": "${AZURE_KEY}",
            "auth": "api-key", **extra}


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with SimServer(api_key=KEY) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(sim: SimServer) -> Iterator[GatewayProcess]:
    config = {
        "providers": {
            "azure": azure(sim.root_url, any_model=True),
            "azure-v1": azure(f"{sim.root_url}/openai/v1", any_model=True),
            "azure-entra": azure(sim.root_url, auth="bearer", api_version="2025-04-01-preview",
                                 any_model=True),
        },
        "model_groups": {
            "gpt": {"deployments": [{"provider": "azure", "model": "prod-gpt-4o"}]},
            "failover": {"routing": "priority", "deployments": [
                {"provider": "azure", "model": "east@unavailable", "name": "east"},
                {"provider": "azure-v1", "model": "west", "name": "west", "priority": 1},
            ]},
        },
        "storage": {"flush_interval_s": 0.05},
    }
    with GatewayProcess(config, env={"AZURE_KEY": KEY}, log_level="DEBUG") as gw:
        yield gw
        assert KEY not in gw.log(), "the upstream key leaked into the gateway's log"


@pytest.fixture(scope="module")
def client(gateway: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0)


def upstream(sim: SimServer) -> dict[str, Any]:
    return dict(sim.stats()["last_request"])


def test_deployment_url_api_version_and_api_key(client: openai.OpenAI, sim: SimServer) -> None:
    reply = client.chat.completions.create(model="gpt", messages=USER, temperature=0.5)
    assert reply.choices[0].message.content == DEFAULT_TEXT
    assert reply.usage is not None and reply.usage.total_tokens > 0
    sent = upstream(sim)
    assert sent["path"] == "/openai/deployments/prod-gpt-4o/chat/completions"
    assert sent["query"] == "api-version=2024-10-21"
    assert sent["headers"]["api-key"] == KEY and "authorization" not in sent["headers"]
    assert sent["body"] == {"messages": USER, "temperature": 0.5, "model": "prod-gpt-4o"}


def test_tool_call(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="gpt", messages=USER, tools=TOOLS,  # type: ignore[arg-type]
                                           tool_choice="required")
    call = reply.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert json.loads(call.function.arguments) == {"location": "Paris"}  # type: ignore[union-attr]


def test_entra_token_and_explicit_api_version(client: openai.OpenAI, sim: SimServer) -> None:
    client.chat.completions.create(model="azure-entra/my deployment", messages=USER)
    sent = upstream(sim)
    assert sent["path"] == "/openai/deployments/my deployment/chat/completions"
    assert sent["query"] == "api-version=2025-04-01-preview"
    assert sent["headers"]["authorization"] == f"Bearer {KEY}"


def test_v1_form_and_failover_between_forms(client: openai.OpenAI, sim: SimServer) -> None:
    client.chat.completions.create(model="azure-v1/gpt-4.1", messages=USER)
    sent = upstream(sim)
    assert sent["path"] == "/openai/v1/chat/completions" and sent["query"] == ""
    assert sent["body"]["model"] == "gpt-4.1"
    raw = client.chat.completions.with_raw_response.create(model="failover", messages=USER)
    assert raw.parse().choices[0].message.content == DEFAULT_TEXT
    assert raw.headers["x-polyroute-attempts"] == "east:upstream_unavailable,west:ok"


def test_embeddings_and_errors(client: openai.OpenAI, sim: SimServer) -> None:
    result = client.embeddings.create(model="azure/embedder", input=["a", "b"], dimensions=4)
    assert [len(e.embedding) for e in result.data] == [4, 4]
    assert upstream(sim)["path"] == "/openai/deployments/embedder/embeddings"
    with pytest.raises(openai.BadRequestError) as filtered:
        client.chat.completions.create(model="azure/x@content_policy_violation", messages=USER)
    assert filtered.value.code == "content_policy_violation"
    with pytest.raises(openai.BadRequestError) as too_long:
        client.chat.completions.create(model="azure/x@context_length_exceeded", messages=USER)
    assert too_long.value.code == "context_length_exceeded"


def test_zero_config_discovery(sim: SimServer) -> None:
    env = {"AZURE_OPENAI_API_KEY": KEY, "AZURE_OPENAI_ENDPOINT": sim.root_url,
           "OPENAI_API_VERSION": "2024-06-01"}
    with GatewayProcess(None, env=env) as gw:
        client = openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)
        reply = client.chat.completions.create(model="azure/prod-gpt-4o", messages=USER)
        assert reply.choices[0].message.content == DEFAULT_TEXT
        sent = upstream(sim)
        assert sent["path"] == "/openai/deployments/prod-gpt-4o/chat/completions"
        assert sent["query"] == "api-version=2024-06-01"
        assert sent["headers"]["api-key"] == KEY
        assert KEY not in gw.log()


def test_discovery_needs_both_key_and_endpoint() -> None:
    assert not [d for d in discover({"AZURE_OPENAI_ENDPOINT": "http://127.0.0.1:9"})
                if d.vendor.name == "azure"]
    assert not [d for d in discover({"AZURE_OPENAI_API_KEY": "k"}) if d.vendor.name == "azure"]
    found = [d for d in discover({"AZURE_OPENAI_API_KEY": "k",
                                  "AZURE_OPENAI_ENDPOINT": "http://127.0.0.1:9/"})]
    assert [(d.vendor.name, d.base_url, d.api_version) for d in found] == [
        ("azure", "http://127.0.0.1:9", None)]
