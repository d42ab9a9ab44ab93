"""The simulator speaks Bedrock's Converse API faithfully: boto3's ``bedrock-runtime`` client
(``converse``, ``converse_stream``) works against it through ``endpoint_url``, every body and
stream event validates strictly against botocore's own service model (no unknown members, every
required one, the right types and enums), its eventstream frames pass botocore's parser with
their checksums, it checks SigV4 the way AWS does, and its faults look like Bedrock's.

Also home of the strict validators the other Bedrock test modules use.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import boto3
import botocore.session
import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer
from botocore.exceptions import ClientError, EventStreamError
from botocore.validate import ParamValidator

from polyroute.sim.settings import DEFAULT_TEXT
from tests.support.sim import SimServer

ACCESS_KEY = "AKIDSIMULATOR0001"
SECRET = "bedrock-sim-secret-6c1f/+k"  # the simulator checks signatures made with it
REGION = "eu-west-3"
MODEL = "anthropic.claude-sim-v1:0"
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAC"
                       "hwGA60e6kgAAAABJRU5ErkJggg==")
USER = [{"role": "user", "content": [{"text": "Say hello."}]}]
WEATHER = {"toolSpec": {"name": "get_weather", "description": "Weather at a place.",
                        "inputSchema": {"json": {
                            "type": "object", "properties": {"location": {"type": "string"}},
                            "required": ["location"]}}}}
_SERVICE = botocore.session.get_session().get_service_model("bedrock-runtime")
_STREAM = _SERVICE.operation_model("ConverseStream").output_shape.members["stream"]


# -- strict validation ------------------------------------------------------------------------


def strict(payload: dict[str, Any], shape_name: str) -> None:
    """botocore's validator against the service model: unknown members, missing required ones,
    wrong types and enum values are all errors."""
    shape = _SERVICE.shape_for(shape_name)
    report = ParamValidator().validate(payload, shape)
    assert not report.has_errors(), report.generate_report()


def strict_response(raw: bytes) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(raw)
    strict(body, "ConverseResponse")
    return body


def strict_events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    """Every frame through botocore's parser (which verifies both CRCs), each event's payload
    against its shape. Bedrock pads every event with a random "p" member, which no model
    lists: it is checked and dropped."""
    buffer = EventStreamBuffer()
    buffer.add_data(raw)
    events = []
    for message in buffer:
        headers = message.headers
        assert headers[":message-type"] == "event", headers
        assert headers[":content-type"] == "application/json"
        name = headers[":event-type"]
        payload = json.loads(message.payload)
        padding = payload.pop("p", None)
        assert isinstance(padding, str) and padding, "Bedrock pads every event"
        strict(payload, _STREAM.members[name].name)
        events.append((name, payload))
    return events


def signed_post(url: str, body: bytes, *, secret: str = SECRET) -> httpx.Response:
    request = AWSRequest(method="POST", url=url, data=body,
                         headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials(ACCESS_KEY, secret), "bedrock", REGION).add_auth(request)
    return httpx.post(url, content=body, headers=dict(request.headers.items()), timeout=10)


def raw_call(sim: SimServer, action: str, body: dict[str, Any], model: str = MODEL,
             **kwargs: Any) -> httpx.Response:
    url = f"{sim.root_url}/model/{quote(model, safe='')}/{action}"
    return signed_post(url, json.dumps(body).encode(), **kwargs)


def last_auth(sim: SimServer) -> dict[str, Any]:
    return dict(httpx.get(f"{sim.root_url}/_sim/bedrock").json())


# -- the simulator ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with SimServer(api_key=SECRET) as server:
        yield server


@pytest.fixture(scope="module")
def client(sim: SimServer) -> Any:
    return boto3.client(
        "bedrock-runtime", endpoint_url=sim.root_url, region_name=REGION,
        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET,
        aws_session_token="session-token-1",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}))


def test_converse_validates_strictly_and_checks_the_signature(sim: SimServer,
                                                              client: Any) -> None:
    response = client.converse(modelId=MODEL, messages=USER, system=[{"text": "Be brief."}],
                               inferenceConfig={"maxTokens": 200, "temperature": 0.2})
    assert response["output"]["message"]["content"] == [{"text": DEFAULT_TEXT}]
    assert response["stopReason"] == "end_turn"
    usage = response["usage"]
    assert usage["totalTokens"] == usage["inputTokens"] + usage["outputTokens"]
    assert response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    auth = last_auth(sim)
    assert auth["raw_path"] == "/model/anthropic.claude-sim-v1%3A0/converse"
    assert (auth["access_key"], auth["region"], auth["service"]) == (ACCESS_KEY, REGION,
                                                                     "bedrock")
    assert "x-amz-security-token" in auth["signed_headers"]

    raw = raw_call(sim, "converse", {"messages": USER})
    assert raw.status_code == 200
    strict_response(raw.content)


def test_converse_stream_frames_validate_strictly(sim: SimServer, client: Any) -> None:
    response = client.converse_stream(modelId=MODEL, messages=USER)
    events = list(response["stream"])
    text = "".join(e["contentBlockDelta"]["delta"]["text"] for e in events
                   if "contentBlockDelta" in e)
    assert text == DEFAULT_TEXT
    assert next(iter(events[0])) == "messageStart"
    assert events[-2] == {"messageStop": {"stopReason": "end_turn"}}
    assert events[-1]["metadata"]["usage"]["outputTokens"] > 0

    raw = raw_call(sim, "converse-stream", {"messages": USER})
    assert raw.headers["content-type"] == "application/vnd.amazon.eventstream"
    names = [name for name, _ in strict_events(raw.content)]
    assert names[0] == "messageStart" and names[-3:] == ["contentBlockStop", "messageStop",
                                                         "metadata"]


def test_tool_use_round_trip_and_pairing_rules(sim: SimServer, client: Any) -> None:
    tools = {"tools": [WEATHER], "toolChoice": {"any": {}}}
    response = client.converse(modelId=MODEL, messages=USER, toolConfig=tools)
    block = response["output"]["message"]["content"][0]["toolUse"]
    assert block["name"] == "get_weather" and block["input"] == {"location": "Paris"}
    assert block["toolUseId"].startswith("tooluse_") and response["stopReason"] == "tool_use"
    strict_response(raw_call(sim, "converse", {"messages": USER, "toolConfig": tools}).content)

    stream = list(client.converse_stream(modelId=MODEL, messages=USER,
                                         toolConfig=tools)["stream"])
    start = next(e["contentBlockStart"] for e in stream if "contentBlockStart" in e)
    assert start["start"]["toolUse"]["name"] == "get_weather"
    fragments = [e["contentBlockDelta"]["delta"]["toolUse"]["input"] for e in stream
                 if "contentBlockDelta" in e]
    assert len(fragments) > 2 and json.loads("".join(fragments)) == {"location": "Paris"}
    strict_events(raw_call(sim, "converse-stream", {"messages": USER,
                                                    "toolConfig": tools}).content)

    use = {"toolUse": block}
    result = {"toolResult": {"toolUseId": block["toolUseId"], "content": [{"text": "18°C"}]}}
    history = [*USER, {"role": "assistant", "content": [use]},
               {"role": "user", "content": [result]}]
    echo = client.converse(modelId="echo", messages=history, toolConfig={"tools": [WEATHER]})
    assert echo["output"]["message"]["content"] == [{"text": "Say hello."}]
    with pytest.raises(ClientError) as missing_config:
        client.converse(modelId="echo", messages=history)
    assert "toolConfig field must be defined" in str(missing_config.value)
    with pytest.raises(ClientError) as unanswered:
        client.converse(modelId="echo", toolConfig={"tools": [WEATHER]}, messages=[
            *USER, {"role": "assistant", "content": [use]},
            {"role": "user", "content": [{"text": "hm"}]}])
    assert unanswered.value.response["Error"]["Code"] == "ValidationException"
    assert "Expected toolResult blocks" in unanswered.value.response["Error"]["Message"]


def test_images_cache_points_reasoning_and_structured_output(sim: SimServer,
                                                             client: Any) -> None:
    system = [{"text": "House rules. " * 200}, {"cachePoint": {"type": "default"}}]
    messages = [{"role": "user", "content": [
        {"image": {"format": "png", "source": {"bytes": PNG}}}, {"text": "What is it?"}]}]
    schema = {"type": "object", "properties": {"city": {"type": "string"}},
              "required": ["city"]}
    request = {"modelId": MODEL, "system": system, "messages": messages,
               "additionalModelRequestFields": {"thinking": {"type": "enabled",
                                                             "budget_tokens": 1024}},
               "outputConfig": {"textFormat": {"type": "json_schema", "structure": {
                   "jsonSchema": {"schema": json.dumps(schema), "name": "place"}}}}}
    first = client.converse(**request)
    second = client.converse(**request)
    written = first["usage"]["cacheWriteInputTokens"]
    assert written > 0 and first["usage"]["cacheReadInputTokens"] == 0
    assert second["usage"]["cacheReadInputTokens"] == written
    content = second["output"]["message"]["content"]
    reasoning = content[0]["reasoningContent"]["reasoningText"]
    assert reasoning["text"] and reasoning["signature"]
    assert json.loads(content[1]["text"]) == {"city": "Paris"}
    body = {k: v for k, v in request.items() if k != "modelId"}
    body["messages"] = [{"role": "user", "content": [
        {"image": {"format": "png", "source": {"bytes": base64.b64encode(PNG).decode()}}},
        {"text": "What is it?"}]}]
    strict_response(raw_call(sim, "converse", body).content)
    strict_events(raw_call(sim, "converse-stream", body).content)


def test_unknown_fields_and_roles_are_validation_errors(sim: SimServer) -> None:
    response = raw_call(sim, "converse", {"messages": USER, "maxTokens": 5})
    assert response.status_code == 400
    assert response.headers["x-amzn-ErrorType"].startswith("ValidationException:")
    assert "maxTokens" in response.json()["message"]
    twice = raw_call(sim, "converse", {"messages": [*USER, *USER]})
    assert "must alternate between user and assistant" in twice.json()["message"]


def test_signatures_are_checked(sim: SimServer) -> None:
    url = f"{sim.root_url}/model/{quote(MODEL, safe='')}/converse"
    body = json.dumps({"messages": USER}).encode()
    wrong = signed_post(url, body, secret="not-the-secret")
    assert wrong.status_code == 403
    assert wrong.headers["x-amzn-ErrorType"].startswith("InvalidSignatureException:")
    assert "signature we calculated does not match" in wrong.json()["message"]
    unsigned = httpx.post(url, content=body, headers={"Content-Type": "application/json"})
    assert unsigned.status_code == 403
    assert unsigned.headers["x-amzn-ErrorType"].startswith(
        "MissingAuthenticationTokenException:")
    bearer = httpx.post(url, content=body, headers={"Authorization": f"Bearer {SECRET}",
                                                    "Content-Type": "application/json"})
    assert bearer.status_code == 200 and last_auth(sim)["style"] == "bearer"


# -- faults, the way Bedrock shows them ---------------------------------------------------------


def test_http_faults(sim: SimServer, client: Any) -> None:
    with pytest.raises(ClientError) as throttled:
        client.converse(modelId=f"{MODEL}@rate_limit", messages=USER)
    error = throttled.value.response
    assert error["Error"]["Code"] == "ThrottlingException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 429
    with pytest.raises(ClientError) as too_long:
        client.converse(modelId=f"{MODEL}@context_length_exceeded", messages=USER)
    assert too_long.value.response["Error"] == {
        "Code": "ValidationException", "Message": "Input is too long for requested model."}
    with pytest.raises(ClientError) as unavailable:
        client.converse(modelId=f"{MODEL}@unavailable", messages=USER)
    assert unavailable.value.response["Error"]["Code"] == "ServiceUnavailableException"


def test_throttling_exception_frame_mid_stream(client: Any) -> None:
    seen = []
    with pytest.raises(EventStreamError) as info:
        for event in client.converse_stream(modelId=f"{MODEL}@stream_error:after_chunks=2",
                                            messages=USER)["stream"]:
            seen.append(event)
    assert info.value.response["Error"]["Code"] == "throttlingException"
    deltas = [e for e in seen if "contentBlockDelta" in e]
    assert [d["contentBlockDelta"]["delta"]["text"] for d in deltas] == ["Hello", "!"]


def test_corrupted_crc_is_refused_by_botocore(sim: SimServer, client: Any) -> None:
    with pytest.raises(ChecksumMismatch):
        list(client.converse_stream(modelId=f"{MODEL}@malformed_chunk:after_chunks=1",
                                    messages=USER)["stream"])
    raw = raw_call(sim, "converse-stream", {"messages": USER},
                   model=f"{MODEL}@malformed_chunk:after_chunks=1")
    with pytest.raises(ChecksumMismatch):
        strict_events(raw.content)


def test_guardrail_intervention(client: Any) -> None:
    response = client.converse(modelId=f"{MODEL}@content_policy_violation", messages=USER)
    assert response["stopReason"] == "guardrail_intervened"
    assert response["output"]["message"]["content"] == [
        {"text": "Sorry, the model cannot answer this question."}]
