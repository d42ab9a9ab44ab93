"""The official openai SDK → a real polyroute process → the Bedrock Converse simulator, over
real sockets: requests are SigV4-signed with the standard AWS credentials of the gateway's
environment (the simulator recomputes every signature), model ids are percent-encoded in the
path, eventstream frames become OpenAI chunks with nothing lost, and Bedrock's errors and
exception frames keep their meaning."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from polyroute.config.discovery import discover
from polyroute.sim.settings import DEFAULT_TEXT
from tests.support.gateway import GatewayProcess
from tests.support.sim import SimServer

ACCESS_KEY = "AKIDGATEWAYTEST01"
SECRET = "bedrock-gw-secret-0d7e/+q"  # must never appear in the gateway's log
TOKEN = "bedrock-gw-session-token-55aa"  # nor this
REGION = "ap-southeast-2"
USER = [{"role": "user", "content": "Say hello."}]
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather at a place.", "parameters": {
        "type": "object", "properties": {"location": {"type": "string"}},
        "required": ["location"]}}}]
PNG_DATA = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJ"
            "RU5ErkJggg==")
CLAUDE = "anthropic.claude-sim-v1:0"
PROFILE_ARN = "arn:aws:bedrock:ap-southeast-2:123456789012:inference-profile/apac.claude-sim"


def aws_env(tmp: str) -> dict[str, str]:
    """Credentials only from the standard variables; no shared files, no instance metadata."""
    return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_SESSION_TOKEN": TOKEN, "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": f"{tmp}/none", "AWS_SHARED_CREDENTIALS_FILE": f"{tmp}/none"}


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with SimServer(api_key=SECRET) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(sim: SimServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    bedrock = {"protocol": "bedrock", "base_url": sim.root_url, "region": REGION,
               "any_model": True}
    config = {
        "providers": {"bedrock": bedrock,
                      "bedrock-lenient": {**bedrock, "quirks": {
                          "drop_params": ["seed"], "default_max_tokens": 321}}},
        "model_groups": {
            "claude": {"deployments": [{"provider": "bedrock", "model": CLAUDE}]},
            "profile": {"deployments": [{"provider": "bedrock", "model": PROFILE_ARN}]},
            "echo": {"deployments": [{"provider": "bedrock", "model": "echo"}]},
            "failover": {"routing": "priority", "deployments": [
                {"provider": "bedrock", "model": "claude-a@rate_limit", "name": "primary"},
                {"provider": "bedrock", "model": "claude-b", "name": "backup", "priority": 1},
            ]},
            "flaky-stream": {"routing": "priority", "deployments": [
                {"provider": "bedrock", "model": "claude-c@malformed_chunk:after_chunks=0",
                 "name": "corrupt"},
                {"provider": "bedrock", "model": "claude-d", "name": "sound", "priority": 1},
            ]},
        },
        "storage": {"flush_interval_s": 0.05},
    }
    tmp = str(tmp_path_factory.mktemp("aws"))
    with GatewayProcess(config, env=aws_env(tmp), log_level="DEBUG") as gw:
        yield gw
        log = gw.log()
        assert SECRET not in log and TOKEN not in log, "AWS credentials leaked into the log"


@pytest.fixture(scope="module")
def client(gateway: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0)


def upstream(sim: SimServer) -> dict[str, Any]:
    return dict(sim.stats()["last_request"])


def signed_with(sim: SimServer) -> dict[str, Any]:
    return dict(httpx.get(f"{sim.root_url}/_sim/bedrock").json())


def test_text_signed_with_the_environment_credentials(client: openai.OpenAI,
                                                      sim: SimServer) -> None:
    completion = client.chat.completions.create(
        model="claude", messages=[{"role": "system", "content": "Be brief."}, *USER],
        temperature=0.3, top_p=0.9, stop=["never-said"], max_tokens=200)
    choice = completion.choices[0]
    assert choice.message.content == DEFAULT_TEXT and choice.finish_reason == "stop"
    assert completion.model == CLAUDE and completion.id
    usage = completion.usage
    assert usage is not None and usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    auth = signed_with(sim)
    assert auth["raw_path"] == "/model/anthropic.claude-sim-v1%3A0/converse"
    assert auth["style"] == "sigv4" and auth["region"] == REGION
    assert auth["access_key"] == ACCESS_KEY and auth["session_token"] == TOKEN
    assert upstream(sim)["body"] == {
        "messages": [{"role": "user", "content": [{"text": "Say hello."}]}],
        "system": [{"text": "Be brief."}],
        "inferenceConfig": {"maxTokens": 200, "temperature": 0.3, "topP": 0.9,
                            "stopSequences": ["never-said"]}}


def test_arn_model_ids_are_percent_encoded(client: openai.OpenAI, sim: SimServer) -> None:
    reply = client.chat.completions.create(model="profile", messages=USER)
    assert reply.choices[0].message.content == DEFAULT_TEXT
    assert signed_with(sim)["raw_path"] == (
        "/model/arn%3Aaws%3Abedrock%3Aap-southeast-2%3A123456789012%3Ainference-profile"
        "%2Fapac.claude-sim/converse")



def test_tool_call_round_trip(client: openai.OpenAI, sim: SimServer) -> None:
    first = client.chat.completions.create(model="claude", messages=USER, tools=TOOLS,  # type: ignore[arg-type]
                                           tool_choice="required")
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    call = choice.message.tool_calls[0]  # type: ignore[index]
    assert call.id.startswith("tooluse_") and call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"location": "Paris"}  # type: ignore[union-attr]
    assert upstream(sim)["body"]["toolConfig"] == {"tools": [{"toolSpec": {
        "name": "get_weather", "inputSchema": {"json": TOOLS[0]["function"]["parameters"]},  # type: ignore[index]
        "description": "Weather at a place."}}], "toolChoice": {"any": {}}}

    history: list[Any] = [
        *USER, choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "18°C and sunny"}]
    second = client.chat.completions.create(model="echo", messages=history, tools=TOOLS)  # type: ignore[arg-type]
    assert second.choices[0].message.content == "Say hello."
    turns = upstream(sim)["body"]["messages"]
    assert turns[1] == {"role": "assistant", "content": [{"toolUse": {
        "toolUseId": call.id, "name": "get_weather", "input": {"location": "Paris"}}}]}
    assert turns[2] == {"role": "user", "content": [{"toolResult": {
        "toolUseId": call.id, "content": [{"text": "18°C and sunny"}]}}]}



def test_image_cache_point_and_cached_usage(client: openai.OpenAI, sim: SimServer) -> None:
    system = {"role": "system", "content": [
        {"type": "text", "text": "House rules. " * 100, "cache_control": {"type": "ephemeral"}}]}
    user = {"role": "user", "content": [
        {"type": "text", "text": "What is in this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_DATA}"}}]}
    first, second = (client.chat.completions.create(model="claude", messages=[system, user])
                     .usage for _ in range(2))  # type: ignore[list-item]
    body = upstream(sim)["body"]
    assert body["system"][1] == {"cachePoint": {"type": "default"}}
    assert body["messages"][0]["content"][1] == {
        "image": {"format": "png", "source": {"bytes": PNG_DATA}}}
    assert first is not None and second is not None
    written = first.prompt_tokens_details.model_extra["cache_creation_tokens"]  # type: ignore[union-attr]
    assert written > 0 and first.prompt_tokens_details.cached_tokens == 0  # type: ignore[union-attr]
    assert second.prompt_tokens_details.cached_tokens == written  # type: ignore[union-attr]
    assert first.prompt_tokens == second.prompt_tokens, "cached tokens are prompt tokens too"
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="claude", messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}])
    assert "does not fetch image URLs" in info.value.message


def test_structured_output_and_thinking(client: openai.OpenAI, sim: SimServer) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}},
              "required": ["city"], "additionalProperties": False}
    reply = client.chat.completions.create(
        model="claude", messages=USER, extra_body={"thinking": {
            "type": "enabled", "budget_tokens": 1024}},
        response_format={"type": "json_schema", "json_schema": {"name": "place",
                                                                "schema": schema}})
    message = reply.choices[0].message
    assert json.loads(message.content or "") == {"city": "Paris"}
    extra = message.model_extra or {}
    assert extra["reasoning_content"] and extra["thinking_blocks"][0]["signature"]
    body = upstream(sim)["body"]
    assert body["outputConfig"] == {"textFormat": {"type": "json_schema", "structure": {
        "jsonSchema": {"schema": json.dumps(schema, separators=(",", ":")), "name": "place"}}}}
    assert body["additionalModelRequestFields"] == {"thinking": {"type": "enabled",
                                                                 "budget_tokens": 1024}}


def test_throttling_fails_over_and_keeps_its_meaning(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="failover", messages=USER)
    assert raw.parse().choices[0].message.content == DEFAULT_TEXT
    assert raw.headers["x-polyroute-attempts"] == "primary:upstream_rate_limited,backup:ok"
    with pytest.raises(openai.BadRequestError) as too_long:
        client.chat.completions.create(model="bedrock/x@context_length_exceeded",
                                       messages=USER)
    assert too_long.value.code == "context_length_exceeded"
    assert too_long.value.message.endswith("Input is too long for requested model.")


def test_corrupted_frame_before_content_fails_over(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="flaky-stream", messages=USER,
                                                           stream=True)
    assert raw.headers["x-polyroute-deployment"] == "sound"
    assert raw.headers["x-polyroute-attempts"] == "corrupt:upstream_protocol_error,sound:ok"
    assert "".join(c.choices[0].delta.content or "" for c in raw.parse()
                   if c.choices) == DEFAULT_TEXT


def test_mid_stream_faults_never_pass_for_an_answer(client: openai.OpenAI) -> None:
    for fault, expected in (("stream_error:after_chunks=3", "Too many requests"),
                            ("malformed_chunk:after_chunks=3", "checksum mismatch")):
        received = []
        with pytest.raises(openai.APIError) as info:
            for chunk in client.chat.completions.create(
                    model=f"bedrock/x@{fault}", messages=USER, stream=True):
                received.append(chunk.choices[0].delta.content or "")
        # Each resumption (by continuation, on the same deployment) meets the fault again a
        # little further on, until retry.max_attempts resumptions are spent.
        text = "".join(received)
        assert text.startswith("Hello! I") and DEFAULT_TEXT.startswith(text), fault
        assert text != DEFAULT_TEXT
        assert expected in info.value.message, info.value.message


def test_guardrail_is_content_filter(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="bedrock/x@content_policy_violation",
                                           messages=USER)
    assert reply.choices[0].finish_reason == "content_filter"


def test_unsupported_parameters_and_drop_params(client: openai.OpenAI, sim: SimServer) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="claude", messages=USER, seed=3)
    assert info.value.param == "seed" and "Bedrock" in info.value.message
    client.chat.completions.create(model="bedrock-lenient/claude-sim", messages=USER, seed=3)
    assert upstream(sim)["body"]["inferenceConfig"] == {"maxTokens": 321}
    with pytest.raises(openai.BadRequestError) as embeddings:
        client.embeddings.create(model="bedrock/titan", input="hi")
    assert "no embeddings" in embeddings.value.message


def test_bedrock_api_key_is_sent_as_a_bearer_token(sim: SimServer, tmp_path: Any) -> None:
    config = {"providers": {"bedrock": {
        "protocol": "bedrock", "base_url": sim.root_url, "region": REGION,
        "api_key": "${AWS_BEARER_TOKEN_BEDROCK}", "any_model": True}}}
    with GatewayProcess(config, env={"AWS_BEARER_TOKEN_BEDROCK": SECRET}) as gw:
        client = openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)
        reply = client.chat.completions.create(model="bedrock/claude", messages=USER)
        assert reply.choices[0].message.content == DEFAULT_TEXT
        assert signed_with(sim)["style"] == "bearer"


def test_missing_credentials_are_an_auth_error(sim: SimServer, tmp_path: Any) -> None:
    env = aws_env(str(tmp_path))
    del env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], env["AWS_SESSION_TOKEN"]
    config = {"providers": {"bedrock": {"protocol": "bedrock", "base_url": sim.root_url,
                                        "region": REGION, "any_model": True}}}
    with GatewayProcess(config, env={**env, "AWS_ACCESS_KEY_ID": "",
                                     "AWS_SECRET_ACCESS_KEY": ""}) as gw:
        client = openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)
        with pytest.raises(openai.APIStatusError) as info:
            client.chat.completions.create(model="bedrock/claude", messages=USER)
        assert info.value.status_code == 502
        assert "no AWS credentials found" in info.value.message


def test_zero_config_discovery(sim: SimServer, tmp_path: Any) -> None:
    env = {**aws_env(str(tmp_path)), "AWS_REGION": REGION,
           "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": sim.root_url}
    with GatewayProcess(None, env=env) as gw:
        client = openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)
        reply = client.chat.completions.create(model=f"bedrock/{CLAUDE}", messages=USER)
        assert reply.choices[0].message.content == DEFAULT_TEXT
        auth = signed_with(sim)
        assert auth["style"] == "sigv4" and auth["region"] == REGION
        assert auth["raw_path"] == "/model/anthropic.claude-sim-v1%3A0/converse"
        assert SECRET not in gw.log() and TOKEN not in gw.log()


def test_discovery_needs_credentials_and_a_region() -> None:
    def vendors(env: dict[str, str]) -> dict[str, Any]:
        return {d.vendor.name: d for d in discover(env)}

    assert "bedrock" not in vendors({"AWS_ACCESS_KEY_ID": "a"})
    assert "bedrock" not in vendors({"AWS_REGION": "us-west-2"})
    found = vendors({"AWS_PROFILE": "dev", "AWS_DEFAULT_REGION": "us-west-2"})["bedrock"]
    assert found.base_url == "https://bedrock-runtime.us-west-2.amazonaws.com"
    assert found.region == "us-west-2" and found.key_env is None
    keyed = vendors({"AWS_BEARER_TOKEN_BEDROCK": "k", "AWS_REGION": "eu-central-1"})["bedrock"]
    assert keyed.key_env == "AWS_BEARER_TOKEN_BEDROCK"
