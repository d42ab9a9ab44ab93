"""The simulator speaks Gemini's API faithfully: what it sends validates strictly against the
official ``google-genai`` SDK's own types (which forbid unknown fields), the SDK's calls
(``generate_content``, streaming, ``embed_content``) work against it, and its faults look like
Gemini's.

Also home of the strict validators the other Gemini test modules use.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from polyroute.sim.settings import DEFAULT_TEXT
from tests.support.sim import SimServer

KEY = "gemini-sim-key-51b0"
PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5E"
       "rkJggg==")
WEATHER = types.FunctionDeclaration(
    name="get_weather", description="Weather at a place.",
    parameters_json_schema={"type": "object", "properties": {"location": {"type": "string"}},
                            "required": ["location"], "additionalProperties": False})


# -- strict validation ------------------------------------------------------------------------


def strict_response(raw: bytes | str) -> types.GenerateContentResponse:
    """google-genai's models forbid unknown fields; strict mode forbids coercions too."""
    return types.GenerateContentResponse.model_validate_json(raw, strict=True)


def sse_payloads(lines: Iterator[str]) -> list[str]:
    return [line[5:].strip() for line in lines if line.startswith("data:")]


def raw_call(base: str, model_method: str, body: dict[str, Any], *, stream: bool = False,
             version: str = "v1beta") -> httpx.Response:
    url = f"{base}/{version}/models/{model_method}" + ("?alt=sse" if stream else "")
    return httpx.post(url, json=body, headers={"x-goog-api-key": KEY}, timeout=10)


USER = {"contents": [{"role": "user", "parts": [{"text": "Say hello."}]}]}


# -- the simulator ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with SimServer(api_key=KEY) as server:
        yield server


@pytest.fixture(scope="module")
def client(sim: SimServer) -> genai.Client:
    return genai.Client(api_key=KEY, http_options=types.HttpOptions(
        base_url=sim.root_url, api_version="v1beta", timeout=10_000,
        retry_options=types.HttpRetryOptions(attempts=1)))


def test_generate_content_validates_strictly(sim: SimServer, client: genai.Client) -> None:
    response = client.models.generate_content(
        model="gemini-sim", contents="Say hello.",
        config=types.GenerateContentConfig(system_instruction="Be brief.", temperature=0.2))
    assert response.text == DEFAULT_TEXT
    sent = sim.stats()["last_request"]
    assert sent["path"] == "/v1beta/models/gemini-sim:generateContent"
    assert sent["headers"]["x-goog-api-key"] == KEY

    raw = raw_call(sim.root_url, "gemini-sim:generateContent", sent["body"])
    assert raw.status_code == 200
    strict = strict_response(raw.content)
    assert strict.candidates is not None
    candidate = strict.candidates[0]
    assert candidate.finish_reason == types.FinishReason.STOP
    assert candidate.content is not None and candidate.content.role == "model"
    assert strict.model_version == "gemini-sim" and strict.response_id
    usage = strict.usage_metadata
    assert usage is not None and usage.prompt_token_count and usage.candidates_token_count
    assert usage.total_token_count == usage.prompt_token_count + usage.candidates_token_count


def test_stream_events_validate_strictly(sim: SimServer, client: genai.Client) -> None:
    chunks = list(client.models.generate_content_stream(model="gemini-sim", contents="Hi"))
    assert "".join(c.text or "" for c in chunks) == DEFAULT_TEXT
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP  # type: ignore[index]
    assert all(c.candidates[0].finish_reason is None for c in chunks[:-1])  # type: ignore[index]

    with httpx.stream("POST", f"{sim.root_url}/v1beta/models/gemini-sim:streamGenerateContent"
                      "?alt=sse", json=USER, headers={"x-goog-api-key": KEY}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        body = response.read()
    assert b"\r\n\r\n" in body, "Google separates events with CRLF"
    events = [strict_response(p) for p in sse_payloads(body.decode().splitlines())]
    last = events[-1].usage_metadata
    assert last is not None and last.candidates_token_count and last.prompt_token_count


def test_function_calling_and_thought_signatures(sim: SimServer, client: genai.Client) -> None:
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[WEATHER])],
        tool_config=types.ToolConfig(function_calling_config=types.FunctionCallingConfig(
            mode=types.FunctionCallingConfigMode.ANY)),
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True))
    response = client.models.generate_content(model="gemini-sim", contents="Weather?",
                                              config=config)
    assert response.function_calls is not None
    call = response.function_calls[0]
    assert call.name == "get_weather" and call.args == {"location": "Paris"}
    part = response.candidates[0].content.parts[0]  # type: ignore[index, union-attr]
    assert part.thought_signature, "Gemini 3 signs every turn's first function call"
    strict_response(raw_call(sim.root_url, "gemini-sim:generateContent",
                             sim.stats()["last_request"]["body"]).content)

    result = types.Part.from_function_response(name="get_weather", response={"output": "18°C"})
    history = [types.Content(role="user", parts=[types.Part(text="Weather?")]),
               response.candidates[0].content,  # type: ignore[index]
               types.Content(role="user", parts=[result])]
    echo = client.models.generate_content(model="echo", contents=history)  # type: ignore[arg-type]
    assert echo.text == "Weather?"

    unsigned = types.Content(role="model", parts=[types.Part(
        function_call=types.FunctionCall(name="get_weather", args={"location": "Paris"}))])
    with pytest.raises(genai_errors.ClientError) as info:
        client.models.generate_content(model="echo", contents=[history[0], unsigned, history[2]])
    assert info.value.code == 400 and "thought_signature" in (info.value.message or "")
    skipped = types.Content(role="model", parts=[types.Part(
        function_call=unsigned.parts[0].function_call,  # type: ignore[index]
        thought_signature=b"skip_thought_signature_validator")])
    assert client.models.generate_content(
        model="echo", contents=[history[0], skipped, history[2]]).text == "Weather?"


def test_function_responses_must_answer_every_call(sim: SimServer) -> None:
    call = {"functionCall": {"name": "f", "args": {}}, "thoughtSignature": "c2ln"}
    body = {"contents": [
        {"role": "user", "parts": [{"text": "go"}]},
        {"role": "model", "parts": [call, {"functionCall": {"name": "f", "args": {}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]}]}
    response = raw_call(sim.root_url, "echo:generateContent", body)
    assert response.status_code == 400
    assert "number of function response parts" in response.json()["error"]["message"]


def test_inline_image_json_mode_and_thoughts(sim: SimServer, client: genai.Client) -> None:
    image = types.Part.from_bytes(data=base64.b64decode(PNG), mime_type="image/png")
    schema = {"type": "object", "properties": {"city": {"type": "string"}},
              "required": ["city"]}
    response = client.models.generate_content(
        model="gemini-sim", contents=[image, "Where is this?"],
        config=types.GenerateContentConfig(
            response_mime_type="application/json", response_json_schema=schema,
            thinking_config=types.ThinkingConfig(include_thoughts=True, thinking_budget=512)))
    assert json.loads(response.text or "") == {"city": "Paris"}
    parts = response.candidates[0].content.parts  # type: ignore[index, union-attr]
    assert parts[0].thought is True and parts[0].text  # type: ignore[index]
    usage = response.usage_metadata
    assert usage is not None and usage.thoughts_token_count
    assert usage.prompt_token_count and usage.prompt_token_count > 258  # the image counts
    assert usage.total_token_count == (usage.prompt_token_count + usage.candidates_token_count
                                       + usage.thoughts_token_count)  # type: ignore[operator]
    strict_response(raw_call(sim.root_url, "gemini-sim:generateContent",
                             sim.stats()["last_request"]["body"]).content)


def test_implicit_cache_reports_cached_tokens(client: genai.Client) -> None:
    config = types.GenerateContentConfig(system_instruction="Rules. " * 1100)
    first = client.models.generate_content(model="cache-sim", contents="one", config=config)
    second = client.models.generate_content(model="cache-sim", contents="two", config=config)
    assert first.usage_metadata.cached_content_token_count is None  # type: ignore[union-attr]
    cached = second.usage_metadata.cached_content_token_count  # type: ignore[union-attr]
    assert cached is not None and cached >= 1024


def test_embed_content(sim: SimServer, client: genai.Client) -> None:
    result = client.models.embed_content(
        model="gemini-embedding-001", contents=["first", "second"],
        config=types.EmbedContentConfig(output_dimensionality=16))
    assert result.embeddings is not None and len(result.embeddings) == 2
    assert all(len(e.values or []) == 16 for e in result.embeddings)
    sent = sim.stats()["last_request"]
    assert sent["path"] == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    raw = raw_call(sim.root_url, "gemini-embedding-001:batchEmbedContents", sent["body"])
    types.EmbedContentResponse.model_validate_json(raw.content, strict=True)


def test_unknown_fields_and_bad_keys_are_refused(sim: SimServer) -> None:
    response = raw_call(sim.root_url, "x:generateContent",
                        {**USER, "generationConfig": {"maxTokens": 5}})
    assert response.status_code == 400
    assert 'Unknown name "maxTokens"' in response.json()["error"]["message"]
    wrong = httpx.post(f"{sim.root_url}/v1beta/models/x:generateContent", json=USER,
                       headers={"x-goog-api-key": "nope"})
    error = wrong.json()["error"]
    assert wrong.status_code == 400 and error["status"] == "INVALID_ARGUMENT"
    assert error["details"][0]["reason"] == "API_KEY_INVALID"


# -- faults, the way Gemini shows them ----------------------------------------------------------


def test_rate_limit_carries_retry_info(client: genai.Client) -> None:
    with pytest.raises(genai_errors.ClientError) as info:
        client.models.generate_content(model="gemini-sim@rate_limit:retry_after=7",
                                       contents="hi")
    assert info.value.code == 429 and info.value.status == "RESOURCE_EXHAUSTED"
    details = info.value.details["error"]["details"]
    assert {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"} in details


def test_unavailable_and_context_window(client: genai.Client) -> None:
    with pytest.raises(genai_errors.ServerError) as unavailable:
        client.models.generate_content(model="gemini-sim@unavailable", contents="hi")
    assert unavailable.value.code == 503 and unavailable.value.status == "UNAVAILABLE"
    with pytest.raises(genai_errors.ClientError) as too_long:
        client.models.generate_content(model="gemini-sim@context_length_exceeded:limit=10",
                                       contents="hi")
    assert "exceeds the maximum number of tokens allowed (10)" in (too_long.value.message or "")


def test_safety_block_streamed_and_not(sim: SimServer, client: genai.Client) -> None:
    blocked = client.models.generate_content(model="gemini-sim@content_policy_violation",
                                             contents="hi")
    assert not blocked.candidates
    assert blocked.prompt_feedback is not None
    assert blocked.prompt_feedback.block_reason == types.BlockedReason.SAFETY
    chunks = list(client.models.generate_content_stream(
        model="gemini-sim@content_policy_violation", contents="hi"))
    assert len(chunks) == 1
    assert chunks[0].prompt_feedback.block_reason == types.BlockedReason.SAFETY  # type: ignore[union-attr]
    raw = raw_call(sim.root_url, "gemini-sim@content_policy_violation:generateContent", USER)
    strict_response(raw.content)


def test_in_stream_error_is_raised_by_the_sdk(client: genai.Client) -> None:
    seen = []
    with pytest.raises(genai_errors.ServerError) as info:
        for chunk in client.models.generate_content_stream(
                model="gemini-sim@stream_error:after_chunks=2", contents="hi"):
            seen.append(chunk.text)
    assert seen == ["Hello", "!"] and info.value.code == 503
