"""Bedrock's Converse API inbound: boto3's ``bedrock-runtime`` client pointed at a real
polyroute process, with a virtual key as its access key id. To an OpenAI-protocol upstream it
is translated; to a Bedrock upstream (the simulator, which checks the gateway's own SigV4
signature) the client's body is forwarded and the eventstream frames relayed byte for byte."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EventStreamError

from polyroute.sim.settings import DEFAULT_TEXT
from tests.support.gateway import GatewayProcess
from tests.support.policy import MASTER_KEY, new_key
from tests.support.sim import SimServer

ACCESS_KEY = "AKIDGATEWAYINBOUND1"
SECRET = "bedrock-inbound-secret-9c1e"  # the simulator's key, for SigV4 and for OpenAI paths
REGION = "us-east-1"
CLAUDE = "anthropic.claude-sim-v1:0"
USER = [{"role": "user", "content": [{"text": "Say hello."}]}]
WEATHER = {"toolSpec": {"name": "get_weather", "description": "Weather at a place.",
                        "inputSchema": {"json": {"type": "object", "properties": {
                            "location": {"type": "string"}}, "required": ["location"]}}}}


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with SimServer(api_key=SECRET) as server:
        yield server


@pytest.fixture(scope="module")
def paced() -> Iterator[SimServer]:
    # Paced, so the first content surely reaches the client before a mid-stream fault.
    with SimServer(api_key=SECRET, tokens_per_second=100) as server:
        yield server


@pytest.fixture(scope="module")
def gw(sim: SimServer, paced: SimServer,
       tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    tmp = str(tmp_path_factory.mktemp("aws"))
    config = {
        "providers": {
            "bedrock": {"protocol": "bedrock", "base_url": sim.root_url,
                        "options": {"region": REGION}, "any_model": True},
            "paced": {"protocol": "bedrock", "base_url": paced.root_url,
                      "options": {"region": REGION}},
            "sim": {"base_url": sim.base_url, "api_key": "${SIM_KEY}", "any_model": True},
        },
        "model_groups": {
            "claude": {"deployments": [{"provider": "bedrock", "model": CLAUDE}]},
            "gpt": {"deployments": [{"provider": "sim", "model": "gpt-4o-mini"}]},
            "cut": {"deployments": [{"provider": "bedrock", "model": "claude-x@stream_error"}]},
            "resumed": {"routing": "priority", "deployments": [
                {"provider": "paced", "model": "claude-y@stream_cut:after_chunks=2",
                 "name": "cut"},
                {"provider": "sim", "model": "gpt-4o-mini", "name": "backup", "priority": 1}]},
        },
        "auth": {"master_key": "${PR_MASTER}"},
        "storage": {"flush_interval_s": 0.05},
    }
    env = {"SIM_KEY": SECRET, "PR_MASTER": MASTER_KEY, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
           "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_EC2_METADATA_DISABLED": "true",
           "AWS_CONFIG_FILE": f"{tmp}/none", "AWS_SHARED_CREDENTIALS_FILE": f"{tmp}/none"}
    with GatewayProcess(config, env=env) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def key(gw: GatewayProcess) -> str:
    return new_key(gw)


def runtime(gw: GatewayProcess, access_key: str) -> Any:
    return boto3.client(
        "bedrock-runtime", endpoint_url=gw.root_url, region_name=REGION,
        aws_access_key_id=access_key, aws_secret_access_key="not-checked-by-polyroute",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}))


@pytest.fixture(scope="module")
def client(gw: GatewayProcess, key: str) -> Any:
    return runtime(gw, key)


class SentBody:
    """What boto3 put on the wire, from botocore's before-send event."""

    def __init__(self, client: Any) -> None:
        self.body = b""
        client.meta.events.register("before-send.bedrock-runtime.*", self)

    def __call__(self, request: Any, **_: Any) -> None:
        self.body = bytes(request.body)


def upstream_body(sim: SimServer) -> tuple[str, bytes]:
    last = sim.stats()["last_request"]
    return last["path"], base64.b64decode(last["body_base64"])


def sent_by_sim(sim: SimServer) -> bytes:
    return base64.b64decode(sim.stats()["last_response_base64"])


# -- translated: a Converse client reaching an OpenAI-protocol upstream --------------------------

def test_converse_to_an_openai_upstream(client: Any, sim: SimServer) -> None:
    answer = client.converse(modelId="gpt", messages=USER, system=[{"text": "Be brief."}],
                             inferenceConfig={"maxTokens": 100, "temperature": 0.5})
    assert answer["output"]["message"] == {"role": "assistant",
                                           "content": [{"text": DEFAULT_TEXT}]}
    assert answer["stopReason"] == "end_turn"
    usage = answer["usage"]
    assert usage["outputTokens"] > 0 and usage["totalTokens"] == (
        usage["inputTokens"] + usage["outputTokens"])
    path, body = upstream_body(sim)
    sent = json.loads(body)
    assert path == "/v1/chat/completions" and sent["max_tokens"] == 100
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}


def test_converse_stream_to_an_openai_upstream(client: Any) -> None:
    events = list(client.converse_stream(modelId="gpt", messages=USER)["stream"])
    kinds = [next(iter(e)) for e in events]
    assert kinds[0] == "messageStart" and kinds[-2:] == ["messageStop", "metadata"]
    text = "".join(e["contentBlockDelta"]["delta"]["text"] for e in events
                   if "contentBlockDelta" in e)
    assert text == DEFAULT_TEXT
    assert events[-2]["messageStop"]["stopReason"] == "end_turn"
    assert events[-1]["metadata"]["usage"]["outputTokens"] > 0


def test_tool_use_through_an_openai_upstream(client: Any) -> None:
    tools = {"tools": [WEATHER], "toolChoice": {"any": {}}}
    answer = client.converse(modelId="gpt", messages=USER, toolConfig=tools)
    assert answer["stopReason"] == "tool_use"
    use = answer["output"]["message"]["content"][0]["toolUse"]
    assert use["name"] == "get_weather" and "location" in use["input"]
    events = list(client.converse_stream(modelId="gpt", messages=USER,
                                         toolConfig=tools)["stream"])
    start = next(e["contentBlockStart"] for e in events if "contentBlockStart" in e)
    assert start["start"]["toolUse"]["name"] == "get_weather"
    arguments = "".join(e["contentBlockDelta"]["delta"]["toolUse"]["input"] for e in events
                        if "contentBlockDelta" in e)
    assert json.loads(arguments) == use["input"]
    assert events[-2]["messageStop"]["stopReason"] == "tool_use"
    # …and the result goes back as a toolResult block.
    follow = client.converse(modelId="gpt", toolConfig=tools, messages=[
        *USER, {"role": "assistant", "content": [{"toolUse": use}]},
        {"role": "user", "content": [{"toolResult": {
            "toolUseId": use["toolUseId"], "content": [{"json": {"temp_c": 21}}]}}]}])
    assert follow["output"]["message"]["content"]


def test_errors_in_bedrock_shape(gw: GatewayProcess, client: Any) -> None:
    with pytest.raises(ClientError) as denied:
        runtime(gw, "AKIDNOTAKEY").converse(modelId="gpt", messages=USER)
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
    with pytest.raises(ClientError) as unknown:
        client.converse(modelId="no-such-model", messages=USER)
    assert unknown.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as invalid:
        client.converse(modelId="gpt", messages=[{"role": "user", "content": [
            {"document": {"format": "txt", "name": "n", "source": {"bytes": b"hi"}}}]}])
    error = invalid.value.response["Error"]
    assert error["Code"] == "ValidationException" and "document" in error["Message"]
    raw = httpx.post(f"{gw.root_url}/model/gpt/converse", json={"messages": []},
                     headers={"Authorization": f"Bearer {MASTER_KEY}x"})
    assert raw.status_code == 401 and set(raw.json()) == {"message"}
    assert raw.headers["x-amzn-ErrorType"] == "AccessDeniedException"


# -- passed through: a Converse client reaching a Bedrock upstream ------------------------------

def test_passthrough_converse_byte_for_byte(gw: GatewayProcess, client: Any, key: str,
                                            sim: SimServer) -> None:
    sent = SentBody(client)
    request = {"messages": USER, "inferenceConfig": {"maxTokens": 200},
               "additionalModelRequestFields": {"top_k": 5},
               "requestMetadata": {"team": "search"}}
    answer = client.converse(modelId="claude", **request)
    assert answer["output"]["message"]["content"] == [{"text": DEFAULT_TEXT}]
    path, body = upstream_body(sim)
    assert path == "/model/anthropic.claude-sim-v1:0/converse"
    assert body == sent.body  # the model id is in the path: the body is the client's
    raw = httpx.post(f"{gw.root_url}/model/claude/converse", content=sent.body,
                     headers={"Authorization": f"Bearer {key}"})
    assert raw.status_code == 200 and raw.content == sent_by_sim(sim)


def test_passthrough_stream_byte_for_byte(gw: GatewayProcess, client: Any, key: str,
                                          sim: SimServer) -> None:
    sent = SentBody(client)
    events = list(client.converse_stream(modelId="claude", messages=USER)["stream"])
    assert "".join(e["contentBlockDelta"]["delta"]["text"] for e in events
                   if "contentBlockDelta" in e) == DEFAULT_TEXT
    assert "metadata" in events[-1]
    assert upstream_body(sim) == ("/model/anthropic.claude-sim-v1:0/converse-stream",
                                  sent.body)
    with httpx.stream("POST", f"{gw.root_url}/model/claude/converse-stream",
                      content=sent.body, headers={"Authorization": f"Bearer {key}"}) as raw:
        assert raw.headers["content-type"] == "application/vnd.amazon.eventstream"
        received = b"".join(raw.iter_bytes())
    assert received == sent_by_sim(sim)


def test_relayed_stream_cut_ends_with_an_exception_frame(client: Any) -> None:
    """The upstream's exception comes after content was relayed: no other attempt can finish
    the answer, so the client gets an exception frame, never a normal end."""
    stream = client.converse_stream(modelId="cut", messages=USER)["stream"]
    received: list[Any] = []
    with pytest.raises(EventStreamError):
        for event in stream:
            received.append(event)
    assert received and "messageStart" in received[0]
    assert not any("metadata" in e for e in received)


def test_what_polyroute_cannot_translate_goes_only_to_bedrock(client: Any,
                                                             sim: SimServer) -> None:
    """A document block has no canonical form: a Bedrock upstream gets it as sent; an OpenAI
    one cannot, so that request is refused naming the block. An s3Location is refused for
    every upstream (Bedrock would read it as the gateway)."""
    sent = SentBody(client)
    document = {"document": {"format": "txt", "name": "notes",
                             "source": {"bytes": b"polyroute notes"}}}
    messages = [{"role": "user", "content": [{"text": "Summarise."}, document]}]
    answer = client.converse(modelId="claude", messages=messages)
    assert answer["output"]["message"]["content"]
    assert upstream_body(sim) == ("/model/anthropic.claude-sim-v1:0/converse", sent.body)
    with pytest.raises(ClientError) as refused:
        client.converse(modelId="gpt", messages=messages)
    error = refused.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert "document" in error["Message"] and "'bedrock'" in error["Message"]
    with pytest.raises(ClientError) as s3:
        client.converse(modelId="claude", messages=[{"role": "user", "content": [
            {"text": "Look."}, {"image": {"format": "png", "source": {
                "s3Location": {"uri": "s3://someone-elses-bucket/x.png"}}}}]}])
    assert "s3Location" in s3.value.response["Error"]["Message"]


def test_relayed_stream_finished_by_another_protocol(client: Any) -> None:
    """The Bedrock upstream's stream breaks after two deltas reached the client; an OpenAI
    deployment finishes the answer in a new content block, and the stream ends normally."""
    events = list(client.converse_stream(modelId="resumed", messages=USER)["stream"])
    deltas = [e["contentBlockDelta"] for e in events if "contentBlockDelta" in e]
    assert "".join(d["delta"]["text"] for d in deltas) == DEFAULT_TEXT
    assert {d["contentBlockIndex"] for d in deltas} == {0, 1}  # relayed, then the new block
    assert [next(iter(e)) for e in events][-2:] == ["messageStop", "metadata"]
    assert events[-1]["metadata"]["usage"]["outputTokens"] > 0
