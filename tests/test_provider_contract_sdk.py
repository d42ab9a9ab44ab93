"""The provider contract over real sockets: the official openai SDK → a real polyroute process
→ the simulator of each protocol. One gateway serves all five protocols from one simulator;
each test runs once per protocol, and what differs between them is data (the tables below).

These replace the copies the per-vendor files (tests/test_*_gateway.py) used to carry of the
same streaming, tool-call and in-stream-error tests; those files keep what is vendor-specific
(request mapping, signing, thought signatures, vendor faults). The same contract without
sockets, over every edge a scripted upstream can produce, is tests/test_provider_contract.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from polyroute.sim.settings import DEFAULT_TEXT
from tests.support.gateway import GatewayProcess
from tests.support.sim import SimServer

KEY = "contract-upstream-secret-5b1e"  # every protocol's key; never in the gateway's log
AWS_ACCESS_KEY = "AKIDCONTRACTTEST01"
AWS_TOKEN = "contract-session-token-83c4"
USER = [{"role": "user", "content": "Say hello."}]
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather at a place.", "parameters": {
        "type": "object", "properties": {"location": {"type": "string"}},
        "required": ["location"]}}}]
FORCED = {"type": "function", "function": {"name": "get_weather"}}

MODEL = {"openai": "openai/gpt-sim", "azure": "azure/prod-gpt-4o",
         "anthropic": "anthropic/claude-sim", "gemini": "gemini/gemini-sim",
         "bedrock": "bedrock/anthropic.claude-sim-v1:0"}
"""Protocol → the model a client names (``<provider>/<model>``; providers are named after
their protocol)."""
STREAM_PATH = {"openai": "/v1/chat/completions",
               "azure": "/openai/deployments/prod-gpt-4o/chat/completions",
               "anthropic": "/v1/messages",
               "gemini": "/v1beta/models/gemini-sim:streamGenerateContent",
               "bedrock": "/model/anthropic.claude-sim-v1:0/converse-stream"}  # decoded
STREAM_QUERY = {"azure": "api-version=2024-10-21", "gemini": "alt=sse"}
ARGUMENTS_IN_PIECES = {"anthropic", "bedrock"}
"""Protocols that stream a tool call's arguments in fragments (OpenAI's simulator and Gemini
send them whole)."""
IN_STREAM_ERROR = {"anthropic": "Overloaded", "gemini": "The model is overloaded",
                   "bedrock": "Too many requests"}
"""Protocols whose simulator can report an error inside a stream, and the vendor's words."""


def providers(sim: SimServer) -> dict[str, dict[str, Any]]:
    key = {"api_key": "${UPSTREAM_KEY}", "any_model": True}
    return {
        "openai": {"protocol": "openai", "base_url": sim.base_url, **key},
        "azure": {"protocol": "azure", "base_url": sim.root_url, "auth": "api-key", **key},
        "anthropic": {"protocol": "anthropic", "base_url": sim.root_url, "auth": "x-api-key",
                      **key},
        "gemini": {"protocol": "gemini", "base_url": sim.root_url, "auth": "x-goog-api-key",
                   **key},
        "bedrock": {"protocol": "bedrock", "base_url": sim.root_url, "any_model": True,
                    "options": {"region": "us-east-1"}},
    }


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with SimServer(api_key=KEY) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(sim: SimServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    tmp = tmp_path_factory.mktemp("aws")
    env = {"UPSTREAM_KEY": KEY, "AWS_ACCESS_KEY_ID": AWS_ACCESS_KEY,
           "AWS_SECRET_ACCESS_KEY": KEY, "AWS_SESSION_TOKEN": AWS_TOKEN,
           "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": f"{tmp}/none",
           "AWS_SHARED_CREDENTIALS_FILE": f"{tmp}/none"}
    config = {"providers": providers(sim), "storage": {"flush_interval_s": 0.05}}
    with GatewayProcess(config, env=env, log_level="DEBUG") as gw:
        yield gw
        log = gw.log()
        assert KEY not in log and AWS_TOKEN not in log, "an upstream key leaked into the log"


@pytest.fixture(scope="module")
def client(gateway: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0)


@pytest.mark.parametrize("protocol", sorted(MODEL))
def test_stream_text_and_usage(client: openai.OpenAI, sim: SimServer, protocol: str) -> None:
    chunks = list(client.chat.completions.create(
        model=MODEL[protocol], messages=USER, stream=True,  # type: ignore[arg-type]
        stream_options={"include_usage": True}))
    sent = sim.stats()["last_request"]
    assert sent["path"] == STREAM_PATH[protocol]
    assert sent["query"] == STREAM_QUERY.get(protocol, "")
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == DEFAULT_TEXT
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and all(f is None for f in finishes[:-1])
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0 and chunks[-1].usage.prompt_tokens > 0
    plain = list(client.chat.completions.create(model=MODEL[protocol], messages=USER,  # type: ignore[arg-type]
                                                stream=True))
    assert all(c.choices for c in plain), "usage the client did not ask for leaked"


@pytest.mark.parametrize("protocol", sorted(MODEL))
def test_streamed_tool_call_is_reassembled_exactly(client: openai.OpenAI, protocol: str) -> None:
    fragments, ids, names, indexes, finish = [], [], [], set(), None
    for chunk in client.chat.completions.create(
            model=MODEL[protocol], messages=USER, tools=TOOLS, stream=True,  # type: ignore[arg-type]
            tool_choice=FORCED):  # type: ignore[arg-type]
        for choice in chunk.choices:
            for tc in choice.delta.tool_calls or []:
                indexes.add(tc.index)
                if tc.id:
                    ids.append(tc.id)
                if tc.function and tc.function.name:
                    names.append(tc.function.name)
                if tc.function and tc.function.arguments:
                    fragments.append(tc.function.arguments)
            finish = choice.finish_reason or finish
    assert len(ids) == 1 and names == ["get_weather"] and indexes == {0}
    assert json.loads("".join(fragments)) == {"location": "Paris"}
    if protocol in ARGUMENTS_IN_PIECES:
        assert len(fragments) > 1 and "".join(fragments) == '{"location":"Paris"}'
    assert finish == "tool_calls"


@pytest.mark.parametrize("protocol", sorted(IN_STREAM_ERROR))
def test_in_stream_error_after_content_ends_without_done(
    client: openai.OpenAI, gateway: GatewayProcess, protocol: str
) -> None:
    """A single deployment has nobody to resume with: the stream ends with an error event
    (no ``[DONE]``), the SDK raises, and what the client already had stays a prefix."""
    model = f"{MODEL[protocol]}@stream_error:after_chunks=3"
    received = []
    with pytest.raises(openai.APIError) as info:
        for chunk in client.chat.completions.create(model=model, messages=USER, stream=True):  # type: ignore[arg-type]
            received.append(chunk.choices[0].delta.content or "" if chunk.choices else "")
    text = "".join(received)
    assert text and text != DEFAULT_TEXT and DEFAULT_TEXT.startswith(text)
    assert IN_STREAM_ERROR[protocol] in info.value.message, info.value.message
    with httpx.stream("POST", f"{gateway.base_url}/chat/completions", timeout=10, json={
            "model": model, "messages": USER, "stream": True}) as response:
        body = response.read()
    assert b"data: [DONE]" not in body and b'"error"' in body
