"""The Responses API as an upstream protocol (``protocol: openai_responses``): the simulator's
``/v1/responses`` proven with the openai SDK's own types; any dialect reaching it through the
canonical model; and a Responses client's body and events passed through byte for byte."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from polyroute.sim.settings import DEFAULT_TEXT
from tests.conftest import SIM_KEY
from tests.support.gateway import GatewayProcess
from tests.support.sim import SimServer

EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
WEATHER = {"type": "function", "name": "get_weather", "description": "Weather at a place.",
           "parameters": {"type": "object", "properties": {"location": {"type": "string"}},
                          "required": ["location"]}}


@pytest.fixture(scope="module")
def paced() -> Iterator[SimServer]:
    # Paced, so the first content surely reaches the client before a mid-stream fault.
    with SimServer(api_key=SIM_KEY, tokens_per_second=100) as server:
        yield server


@pytest.fixture(scope="module")
def gw(sim: SimServer, paced: SimServer) -> Iterator[GatewayProcess]:
    responses = {"protocol": "openai_responses", "base_url": sim.base_url,
                 "api_key": "${SIM_KEY}", "any_model": True}
    config = {
        "providers": {"resp": responses, "paced": {**responses, "base_url": paced.base_url},
                      "azure-resp": {**responses, "base_url": sim.root_url + "/openai/v1",
                                     "auth": "api-key"},
                      "chat": {"base_url": sim.base_url, "api_key": "${SIM_KEY}"}},
        "model_groups": {
            "mixed-model": {"routing": "priority", "deployments": [
                {"provider": "chat", "model": "gpt-4o-mini", "name": "chat-first"},
                {"provider": "resp", "model": "gpt-4o-mini", "name": "responses-second",
                 "priority": 1}]},
            "chat-only": {"deployments": [{"provider": "chat", "model": "gpt-4o-mini"}]},
            "azure-model": {"deployments": [{"provider": "azure-resp", "model": "my-gpt"}]},
            "resumed-model": {"routing": "priority", "deployments": [
                {"provider": "paced", "model": "r@stream_cut:after_chunks=2", "name": "cut"},
                {"provider": "chat", "model": "gpt-4o-mini", "name": "backup",
                 "priority": 1}]},
            "relay-model": {"deployments": [{"provider": "resp", "model": "gpt-4o-mini"}]},
            "echo-model": {"deployments": [{"provider": "resp", "model": "echo-1"}]},
            "broken-model": {"deployments": [{"provider": "resp", "model": "x@server_error"}]},
        },
    }
    with GatewayProcess(config, env={"SIM_KEY": SIM_KEY}) as gateway:
        yield gateway


class Capture:
    """The exact bytes the SDK sent, through httpx's request hook."""

    def __init__(self) -> None:
        self.body = b""

    def __call__(self, request: httpx.Request) -> None:
        self.body = request.read()


def sdk(base_url: str, capture: Capture | None = None, key: str = "unused") -> openai.OpenAI:
    hooks: dict[str, list[Any]] = {"request": [capture]} if capture is not None else {}
    return openai.OpenAI(base_url=base_url, api_key=key, max_retries=0,
                         http_client=httpx.Client(event_hooks=hooks, timeout=20))


def forwarded(sim: SimServer) -> bytes:
    last = sim.stats()["last_request"]
    assert last["path"].endswith("/v1/responses")
    return base64.b64decode(last["body_base64"])


def sent_by_sim(sim: SimServer) -> bytes:
    return base64.b64decode(sim.stats()["last_response_base64"])


# -- the simulator, as the SDK sees it ---------------------------------------------------------

def test_sim_answers_the_sdk(sim: SimServer) -> None:
    client = sdk(sim.base_url, key=SIM_KEY)
    response = client.responses.create(model="gpt-4o-mini", input="Say hello.",
                                       instructions="Be brief.")
    assert isinstance(response, Response) and response.status == "completed"
    assert response.output_text == DEFAULT_TEXT
    assert response.usage is not None and response.usage.output_tokens > 0
    events = list(client.responses.create(model="gpt-4o-mini", input="hi", stream=True))
    assert events[0].type == "response.created"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == DEFAULT_TEXT
    assert events[-1].type == "response.completed"
    assert events[-1].response.usage is not None


def test_sim_function_call_and_limit(sim: SimServer) -> None:
    client = sdk(sim.base_url, key=SIM_KEY)
    called = client.responses.create(model="gpt-4o-mini", input="Weather in Oslo?",
                                     tools=[WEATHER], tool_choice="required")  # type: ignore[list-item]
    call = called.output[0]
    assert call.type == "function_call" and call.name == "get_weather"
    assert "location" in json.loads(call.arguments)
    cut = client.responses.create(model="gpt-4o-mini", input="hi", max_output_tokens=2)
    assert cut.status == "incomplete" and cut.incomplete_details is not None
    assert cut.incomplete_details.reason == "max_output_tokens"


# -- another dialect reaching a Responses upstream ---------------------------------------------

def test_chat_client_reaches_a_responses_upstream(gw: GatewayProcess, sim: SimServer) -> None:
    client = sdk(gw.base_url)
    answer = client.chat.completions.create(
        model="echo-model", max_tokens=50,
        messages=[{"role": "system", "content": "Be brief."},
                  {"role": "user", "content": "pass the salt"}])
    assert answer.choices[0].message.content == "pass the salt"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None and answer.usage.completion_tokens > 0
    body = json.loads(forwarded(sim))
    assert body["model"] == "echo-1" and body["store"] is False
    assert body["max_output_tokens"] == 50
    assert body["input"][0] == {"type": "message", "role": "system", "content": "Be brief."}
    chunks = list(client.chat.completions.create(
        model="echo-model", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "stream me"}]))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "stream me")
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens > 0


def test_chat_tool_calls_through_a_responses_upstream(gw: GatewayProcess) -> None:
    client = sdk(gw.base_url)
    tool = {"type": "function", "function": {k: v for k, v in WEATHER.items() if k != "type"}}
    answer = client.chat.completions.create(
        model="relay-model", tools=[tool], tool_choice="required",  # type: ignore[list-item]
        messages=[{"role": "user", "content": "Weather in Oslo?"}])
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather" and "location" in json.loads(
        call.function.arguments)
    chunks = list(client.chat.completions.create(
        model="relay-model", tools=[tool], tool_choice="required", stream=True,  # type: ignore[list-item]
        messages=[{"role": "user", "content": "Weather in Oslo?"}]))
    arguments = "".join(c.choices[0].delta.tool_calls[0].function.arguments or ""
                        for c in chunks if c.choices and c.choices[0].delta.tool_calls)
    assert json.loads(arguments) == json.loads(call.function.arguments)
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_upstream_error_reaches_the_client_in_its_dialect(gw: GatewayProcess) -> None:
    with pytest.raises(openai.InternalServerError):
        sdk(gw.base_url).chat.completions.create(
            model="broken-model", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.InternalServerError):
        sdk(gw.base_url).responses.create(model="broken-model", input="hi")


# -- Responses to Responses: passed through ----------------------------------------------------

def test_passthrough_body_and_answer_byte_for_byte(gw: GatewayProcess, sim: SimServer) -> None:
    capture = Capture()
    client = sdk(gw.base_url, capture)
    raw = client.responses.with_raw_response.create(
        model="relay-model", input=[{"role": "user", "content": "hi"}],
        include=["reasoning.encrypted_content"], prompt_cache_key="k-1", store=False,
        extra_body={"x_vendor_extension": {"keep": [1, 2.50, "me"]}})
    assert forwarded(sim) == capture.body.replace(b'"relay-model"', b'"gpt-4o-mini"', 1)
    assert raw.http_response.content == sent_by_sim(sim)
    response = raw.parse()
    assert response.output_text == DEFAULT_TEXT and response.model == "gpt-4o-mini"


def test_passthrough_stream_byte_for_byte(gw: GatewayProcess, sim: SimServer) -> None:
    capture = Capture()
    client = sdk(gw.base_url, capture)
    with client.responses.with_streaming_response.create(
            model="relay-model", input="stream please", stream=True,
            extra_body={"x_vendor_extension": True}) as streamed:
        received = b"".join(streamed.iter_bytes())
    assert forwarded(sim) == capture.body.replace(b'"relay-model"', b'"gpt-4o-mini"', 1)
    assert received == sent_by_sim(sim)
    events = list(client.responses.create(model="relay-model", input="hi", stream=True))
    assert events[-1].type == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == (
        DEFAULT_TEXT)


def test_passthrough_function_call_stream(gw: GatewayProcess, sim: SimServer) -> None:
    client = sdk(gw.base_url)
    with client.responses.with_streaming_response.create(
            model="relay-model", input="Weather in Oslo?", tools=[WEATHER],  # type: ignore[list-item]
            tool_choice="required", stream=True) as streamed:
        received = b"".join(streamed.iter_bytes())
    assert received == sent_by_sim(sim)
    assert b"response.function_call_arguments.delta" in received


def test_relayed_stream_finished_by_another_protocol(gw: GatewayProcess) -> None:
    """The Responses upstream breaks after two deltas reached the client; an OpenAI-chat
    deployment finishes the answer. The client sees one valid event sequence: the relayed
    events, then the rest of the text in the same message item, which is then closed with
    the whole text, and polyroute's own response.completed."""
    raw = httpx.post(gw.base_url + "/responses", timeout=20,
                     json={"model": "resumed-model", "input": "hi", "stream": True})
    assert raw.status_code == 200, raw.text
    events = []
    for block in raw.content.split(b"\n\n"):
        if block.strip():
            head, _, data = block.partition(b"\ndata: ")
            payload = json.loads(data)
            assert head == b"event: " + payload["type"].encode()
            events.append(EVENTS.validate_python(payload))  # the SDK's own types, strictly
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[0].type == "response.created"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == (
        DEFAULT_TEXT)
    assert events[-1].type == "response.completed"
    deltas = [e for e in events if e.type == "response.output_text.delta"]
    assert {(e.output_index, e.item_id) for e in deltas} == {(0, deltas[0].item_id)}
    done = [e for e in events if e.type == "response.output_item.done"]
    assert len(done) == 1 and done[0].item.id == deltas[0].item_id
    assert done[0].item.content[0].text == DEFAULT_TEXT  # type: ignore[union-attr]
    assert events[-1].response.output_text == DEFAULT_TEXT  # type: ignore[union-attr]
    assert b'"background":false' in raw.content.split(b"\n\n")[0]  # the simulator's own


def test_what_polyroute_cannot_translate_goes_only_to_a_responses_upstream(
        gw: GatewayProcess, sim: SimServer) -> None:
    """A built-in tool and previous_response_id have no canonical form: the request goes, as
    it came, to the group's Responses deployment even though a chat one comes first, and a
    group without one refuses it in the client's dialect, naming what is the matter."""
    capture = Capture()
    client = sdk(gw.base_url, capture)
    raw = client.responses.with_raw_response.create(
        model="mixed-model", input="news?", tools=[{"type": "web_search_preview"}],
        previous_response_id="resp_earlier")
    assert raw.headers["x-polyroute-deployment"] == "responses-second"
    assert forwarded(sim) == capture.body.replace(b'"mixed-model"', b'"gpt-4o-mini"', 1)
    assert raw.http_response.content == sent_by_sim(sim)
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model="chat-only", input="news?",
                                tools=[{"type": "web_search_preview"}])
    assert refused.value.status_code == 400
    assert "previous_response_id" not in str(refused.value.message)
    assert "tools[0]" in str(refused.value.body) and "openai_responses" in (
        refused.value.message)


def test_azure_v1_responses_upstream(gw: GatewayProcess, sim: SimServer) -> None:
    """Azure's /openai/v1 serves the Responses API with the key in api-key: the same
    passthrough, byte for byte."""
    capture = Capture()
    raw = sdk(gw.base_url, capture).responses.with_raw_response.create(
        model="azure-model", input="hi")
    last = sim.stats()["last_request"]
    assert last["path"] == "/openai/v1/responses" and last["headers"]["api-key"] == SIM_KEY
    assert "authorization" not in last["headers"]
    assert forwarded(sim) == capture.body.replace(b'"azure-model"', b'"my-gpt"', 1)
    assert raw.http_response.content == sent_by_sim(sim)
    assert raw.http_response.headers["x-polyroute-deployment"]
