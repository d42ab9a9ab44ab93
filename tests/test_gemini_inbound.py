"""The official ``google-genai`` SDK as a client: → polyroute's Gemini API
(``/v1beta/models/{model}:generateContent`` and friends) → OpenAI-, Anthropic- and
Gemini-protocol upstreams (the simulator). Whatever the upstream, the client gets Gemini's wire
(validated strictly with the SDK's own types) and the same answer; a Gemini upstream gets the
client's body byte for byte, and the client gets the upstream's bytes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from polyroute.adapters.gemini import passthrough as gemini_passthrough
from polyroute.model.chat import Message
from polyroute.sim.settings import DEFAULT_TEXT
from polyroute.surface.gemini import decode as gemini_in
from tests.support.gateway import GatewayProcess
from tests.support.sim import SimServer

UPSTREAM_KEY = "sim-upstream-key-93a1"
MASTER = "pr-master-key-gemini-5c"
WEATHER = types.FunctionDeclaration(
    name="get_weather", description="Weather at a place.",
    parameters=types.Schema(type=types.Type.OBJECT, properties={
        "location": types.Schema(type=types.Type.STRING)}, required=["location"]))
TRANSLATED = ["gpt", "claude"]


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with SimServer(api_key=UPSTREAM_KEY) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(sim: SimServer) -> Iterator[GatewayProcess]:
    config = {
        "auth": {"master_key": "${MASTER}"},
        "providers": {
            "oai": {"base_url": sim.base_url, "api_key": "${UP_KEY}", "any_model": True},
            "ant": {"protocol": "anthropic", "base_url": sim.root_url, "api_key": "${UP_KEY}",
                    "any_model": True},
            "gem": {"protocol": "gemini", "base_url": sim.root_url, "api_key": "${UP_KEY}",
                    "any_model": True},
        },
        "model_groups": {
            "gpt": {"deployments": [{"provider": "oai", "model": "gpt-4o-mini"}]},
            "claude": {"deployments": [{"provider": "ant", "model": "claude-sim"}]},
            "flash": {"deployments": [{"provider": "gem", "model": "gemini-sim"}]},
            "gpt-echo": {"deployments": [{"provider": "oai", "model": "echo"}]},
            "claude-echo": {"deployments": [{"provider": "ant", "model": "echo"}]},
            "flash-cut": {"routing": "priority", "deployments": [
                {"provider": "gem", "model": "gemini-sim@stream_cut:after_chunks=2",
                 "name": "flash-cut-a"},
                {"provider": "gem", "model": "gemini-sim", "name": "flash-cut-b",
                 "priority": 1}]},
            "gpt-cut": {"deployments": [
                {"provider": "oai", "model": "gpt@stream_cut:after_chunks=2"}]},
        },
        "storage": {"flush_interval_s": 0.05},
    }
    with GatewayProcess(config, env={"UP_KEY": UPSTREAM_KEY, "MASTER": MASTER}) as gw:
        yield gw


class Sent:
    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    def __call__(self, request: httpx.Request) -> None:
        self.bodies.append(request.read())


@pytest.fixture
def sent() -> Sent:
    return Sent()


def make_client(gateway: GatewayProcess, key: str = MASTER,
                sent: Sent | None = None) -> genai.Client:
    client_args = {"event_hooks": {"request": [sent]}} if sent is not None else None
    return genai.Client(api_key=key, http_options=types.HttpOptions(
        base_url=gateway.root_url, api_version="v1beta", timeout=15_000,
        client_args=client_args, retry_options=types.HttpRetryOptions(attempts=1)))


@pytest.fixture
def client(gateway: GatewayProcess, sent: Sent) -> genai.Client:
    return make_client(gateway, sent=sent)


def strict(raw: bytes | str) -> types.GenerateContentResponse:
    return types.GenerateContentResponse.model_validate_json(raw, strict=True)


def raw_stream(gateway: GatewayProcess, model: str, body: dict[str, Any]) -> bytes:
    with httpx.stream("POST", f"{gateway.root_url}/v1beta/models/{model}:streamGenerateContent"
                      "?alt=sse", json=body, headers={"x-goog-api-key": MASTER},
                      timeout=15) as response:
        assert response.status_code == 200, response.read()
        return response.read()


def payloads(body: bytes) -> list[str]:
    return [line[5:].strip() for line in body.decode().splitlines() if line.startswith("data:")]


USER = {"contents": [{"role": "user", "parts": [{"text": "Say hello."}]}]}


# -- any upstream, translated -----------------------------------------------------------------


@pytest.mark.parametrize("group", TRANSLATED)
def test_generate_content(client: genai.Client, sim: SimServer, group: str) -> None:
    response = client.models.generate_content(
        model=group, contents="Say hello.",
        config=types.GenerateContentConfig(system_instruction="Be brief.", temperature=0.2,
                                           max_output_tokens=300))
    assert response.text == DEFAULT_TEXT
    assert response.candidates[0].finish_reason == types.FinishReason.STOP  # type: ignore[index]
    usage = response.usage_metadata
    assert usage is not None and usage.prompt_token_count and usage.candidates_token_count
    strict(response.model_dump_json(exclude_none=True))
    body = sim.stats()["last_request"]["body"]
    if group == "gpt":
        assert body["messages"][0] == {"role": "system", "content": "Be brief."}
        assert body["temperature"] == 0.2 and body["max_completion_tokens"] == 300
    else:
        assert body["system"] == "Be brief." and body["max_tokens"] == 300


@pytest.mark.parametrize("group", TRANSLATED)
def test_stream(client: genai.Client, gateway: GatewayProcess, group: str) -> None:
    chunks = list(client.models.generate_content_stream(model=group, contents="Say hello."))
    assert "".join(c.text or "" for c in chunks) == DEFAULT_TEXT
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP  # type: ignore[index]
    assert chunks[-1].usage_metadata and chunks[-1].usage_metadata.total_token_count
    body = raw_stream(gateway, group, USER)
    assert b"\r\n\r\n" in body
    events = [strict(p) for p in payloads(body)]
    assert "".join(e.text or "" for e in events) == DEFAULT_TEXT


@pytest.mark.parametrize("group", TRANSLATED)
def test_function_calling_round_trip(client: genai.Client, sim: SimServer, group: str) -> None:
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[WEATHER])],
        tool_config=types.ToolConfig(function_calling_config=types.FunctionCallingConfig(
            mode=types.FunctionCallingConfigMode.ANY)),
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True))
    response = client.models.generate_content(model=group, contents="Weather?", config=config)
    assert response.function_calls is not None
    call = response.function_calls[0]
    assert call.name == "get_weather" and call.args == {"location": "Paris"} and call.id
    sent_tools = sim.stats()["last_request"]["body"]["tools"]
    schema = sent_tools[0]["function"]["parameters"] if group == "gpt" \
        else sent_tools[0]["input_schema"]
    assert schema["type"] == "object"  # Gemini's OBJECT, as JSON Schema
    streamed = [c for c in client.models.generate_content_stream(
        model=group, contents="Weather?", config=config) if c.function_calls]
    assert [c.function_calls[0].args for c in streamed] == [{"location": "Paris"}]  # type: ignore[index]

    result = types.Part.from_function_response(name="get_weather", response={"temp": "18°C"})
    history = [types.Content(role="user", parts=[types.Part(text="Weather?")]),
               response.candidates[0].content,  # type: ignore[index]
               types.Content(role="user", parts=[result])]
    client.models.generate_content(model=f"{group}-echo", contents=history,  # type: ignore[arg-type]
                                   config=config)
    messages = sim.stats()["last_request"]["body"]["messages"]
    if group == "gpt":
        assert messages[1]["tool_calls"][0]["id"] == call.id
        assert messages[2] == {"role": "tool", "tool_call_id": call.id,
                               "content": '{"temp":"18°C"}'}
    else:
        assert messages[1]["content"][0]["id"] == call.id
        assert messages[2]["content"][0]["tool_use_id"] == call.id


def test_list_models_and_count_tokens(client: genai.Client) -> None:
    names = [m.name for m in client.models.list()]
    assert {"models/gpt", "models/claude", "models/flash"} <= set(names)
    assert client.models.get(model="flash").name == "models/flash"
    counted = client.models.count_tokens(model="gpt", contents="Say hello, in ten words.")
    assert counted.total_tokens is not None and 3 <= counted.total_tokens <= 50


def test_errors_in_googles_shape(gateway: GatewayProcess) -> None:
    # Kept in names: a google-genai Client that is dropped closes its connection pool.
    client, stranger = make_client(gateway), make_client(gateway, key="wrong")
    with pytest.raises(genai_errors.ClientError) as unknown:
        client.models.generate_content(model="no-such-model", contents="hi")
    assert unknown.value.code == 404 and unknown.value.status == "NOT_FOUND"
    with pytest.raises(genai_errors.ClientError) as bad_key:
        stranger.models.generate_content(model="gpt", contents="hi")
    assert bad_key.value.code == 401 and bad_key.value.status == "UNAUTHENTICATED"
    empty = httpx.post(f"{gateway.root_url}/v1beta/models/gpt:generateContent",
                       json={"contents": []}, params={"key": MASTER}, timeout=15)
    assert empty.status_code == 400
    assert empty.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert "contents" in empty.json()["error"]["message"]
    by_query = httpx.post(f"{gateway.root_url}/v1beta/models/gpt:generateContent",
                          json=USER, params={"key": MASTER}, timeout=15)
    assert by_query.status_code == 200 and strict(by_query.content).text == DEFAULT_TEXT
    nothing = httpx.post(f"{gateway.root_url}/v1beta/models/gpt:embedSomething",
                         json=USER, params={"key": MASTER}, timeout=15)
    assert nothing.status_code == 404 and nothing.json()["error"]["code"] == 404


def test_a_stream_cut_after_content_raises_in_the_sdk(client: genai.Client) -> None:
    seen = []
    with pytest.raises(genai_errors.APIError) as cut:
        for chunk in client.models.generate_content_stream(model="gpt-cut", contents="hi"):
            seen.append(chunk.text)
    assert seen and cut.value.code == 502


def test_what_only_gemini_carries_is_refused_elsewhere(client: genai.Client,
                                                       sim: SimServer) -> None:
    search = types.GenerateContentConfig(tools=[types.Tool(google_search=types.GoogleSearch())])
    with pytest.raises(genai_errors.ClientError) as refused:
        client.models.generate_content(model="gpt", contents="News?", config=search)
    assert refused.value.code == 400 and "googleSearch" in (refused.value.message or "")
    answer = client.models.generate_content(model="flash", contents="News?", config=search)
    assert answer.text == DEFAULT_TEXT
    assert "googleSearch" in sim.stats()["last_request"]["body"]["tools"][0]


# -- Gemini to Gemini, byte for byte ----------------------------------------------------------


def test_gemini_to_gemini_is_forwarded_and_relayed_byte_for_byte(
    client: genai.Client, gateway: GatewayProcess, sim: SimServer, sent: Sent,
) -> None:
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[WEATHER])],
        tool_config=types.ToolConfig(function_calling_config=types.FunctionCallingConfig(
            mode=types.FunctionCallingConfigMode.ANY)),
        safety_settings=[types.SafetySetting(
            category=types.HarmCategory.HARM_CATEGORY_HARASSMENT,
            threshold=types.HarmBlockThreshold.BLOCK_ONLY_HIGH)],
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True))
    first = client.models.generate_content(model="flash", contents="Weather?", config=config)
    part = first.candidates[0].content.parts[0]  # type: ignore[index, union-attr]
    assert part.function_call is not None and part.thought_signature
    result = types.Part.from_function_response(name="get_weather", response={"temp": "18°C"})
    history = [types.Content(role="user", parts=[types.Part(text="Weather?")]),
               first.candidates[0].content,  # type: ignore[index]
               types.Content(role="user", parts=[result])]
    response = client.models.generate_content(model="flash", contents=history,  # type: ignore[arg-type]
                                              config=config)
    stats = sim.stats()
    request = stats["last_request"]
    assert request["path"] == "/v1beta/models/gemini-sim:generateContent"
    assert request["body_bytes"].encode() == sent.bodies[-1], "the client's body, exactly"
    assert request["headers"]["x-goog-api-key"] == UPSTREAM_KEY
    signature = request["body"]["contents"][1]["parts"][0]["thoughtSignature"]
    assert signature and signature == json.loads(sent.bodies[-1])["contents"][1]["parts"][0][
        "thoughtSignature"], "the thought signature reached Gemini"
    assert response.function_calls == strict(stats["last_response_body"]).function_calls
    # The answer's bytes, exactly (the SDK hides them: the same body again, sent raw).
    again = httpx.post(f"{gateway.root_url}/v1beta/models/flash:generateContent",
                       content=sent.bodies[-1], headers={"x-goog-api-key": MASTER}, timeout=15)
    assert again.content == sim.stats()["last_response_body"].encode()


def test_a_blocked_prompt_passed_through_is_geminis_own_answer(client: genai.Client) -> None:
    """Streamed or not, a Gemini client gets the blocked answer Gemini gave (200 with
    promptFeedback), as its SDK expects, not a gateway error."""
    model = "gem/gemini-sim@content_policy_violation"
    blocked = client.models.generate_content(model=model, contents="hi")
    assert not blocked.candidates and blocked.prompt_feedback is not None
    assert blocked.prompt_feedback.block_reason == types.BlockedReason.SAFETY
    chunks = list(client.models.generate_content_stream(model=model, contents="hi"))
    assert len(chunks) == 1
    assert chunks[0].prompt_feedback.block_reason == types.BlockedReason.SAFETY  # type: ignore[union-attr]


def test_gemini_to_gemini_stream_bytes(gateway: GatewayProcess, sim: SimServer) -> None:
    body = {**USER, "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT",
                                        "threshold": "BLOCK_ONLY_HIGH"}]}
    relayed = raw_stream(gateway, "flash", body)
    stats = sim.stats()
    assert stats["last_request"]["path"] == "/v1beta/models/gemini-sim:streamGenerateContent"
    assert json.loads(stats["last_request"]["body_bytes"]) == body
    assert relayed == stats["last_response_body"].encode(), "the upstream's events, exactly"



def test_a_gemini_stream_cut_mid_answer_is_spliced(client: genai.Client,
                                                    gateway: GatewayProcess) -> None:
    """The first attempt's events went out verbatim; the one that took over is translated
    (a splice swallows what the client has), and the client sees one answer."""
    chunks = list(client.models.generate_content_stream(model="flash-cut", contents="Hi"))
    assert "".join(c.text or "" for c in chunks) == DEFAULT_TEXT
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP  # type: ignore[index]
    assert chunks[-1].usage_metadata and chunks[-1].usage_metadata.candidates_token_count
    assert "resumed by splice on flash-cut-b" in gateway.log()


def test_what_the_engine_adds_to_a_passed_through_body() -> None:
    """The body goes out as the client sent it, except for an output cap the key's policy set
    (when the client set none) and a resumed stream's partial answer."""
    sent = (b'{"contents": [{"role": "user", "parts": [{"text": "Hi"}]}],\n'
            b' "generationConfig": {"temperature": 0.5}, "cachedContent": "cachedContents/x"}')
    request = gemini_in.generate_request(sent, "flash", stream=True)
    native = request.native
    assert native is not None and native.untranslatable == "cachedContent"
    assert gemini_passthrough.body(request, native) == sent
    request.max_completion_tokens = 77  # as the engine's _limit_output does
    capped = json.loads(gemini_passthrough.body(request, native))
    assert capped["generationConfig"] == {"temperature": 0.5, "maxOutputTokens": 77}
    assert capped["cachedContent"] == "cachedContents/x"
    resumed = msgspec.structs.replace(request, continue_final=True, messages=[
        *request.messages, Message("assistant", "Hello th")])
    contents = json.loads(gemini_passthrough.body(resumed, native))["contents"]
    assert contents[-1] == {"role": "model", "parts": [{"text": "Hello th"}]}
    assert contents[0] == {"role": "user", "parts": [{"text": "Hi"}]}


def test_count_tokens_reads_a_whole_generate_content_request() -> None:
    inner = {"contents": [{"parts": [{"text": "hello there"}]}],
             "tools": [{"functionDeclarations": [{"name": "f", "parameters": {
                 "type": "OBJECT", "properties": {"x": {"type": "STRING", "nullable": True}}}}]}],
             "generationConfig": {"topK": 3.0}}
    request = gemini_in.count_request(json.dumps({"generateContentRequest": inner}).encode(), "m")
    assert msgspec.to_builtins(request.tools) == [{"type": "function", "function": {
        "name": "f", "parameters": {
            "type": "object", "properties": {"x": {"type": ["string", "null"]}}}}}]
    assert request.top_k == 3
    assert request.messages[0].content == "hello there"
