"""The simulator serves Azure OpenAI's URLs faithfully enough for the official ``openai`` SDK's
``AzureOpenAI`` client: deployment URLs with ``api-version``, the ``api-key`` header or an Entra
bearer token, and the ``/openai/v1`` form; answers validate strictly against the SDK's types.

Also home of the strict validators the other Azure test modules use.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pydantic
import pytest
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from polyroute.sim.settings import DEFAULT_TEXT
from tests.support.sim import SimServer

KEY = "azure-sim-key-0b6d2f"
API_VERSION = "2024-10-21"
USER = [{"role": "user", "content": "Say hello."}]


def _no_unknown_fields(value: Any, path: str = "$") -> None:
    """The SDK's models accept unknown keys silently; a faithful wire has none."""
    if isinstance(value, pydantic.BaseModel):
        assert not value.model_extra, f"{path}: fields the SDK does not know: {value.model_extra}"
        for name in type(value).model_fields:
            _no_unknown_fields(getattr(value, name), f"{path}.{name}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _no_unknown_fields(item, f"{path}[{i}]")


def strict_completion(raw: bytes | str) -> ChatCompletion:
    completion = ChatCompletion.model_validate_json(raw, strict=True)
    _no_unknown_fields(completion)
    return completion


def strict_chunk(raw: bytes | str) -> ChatCompletionChunk:
    chunk = ChatCompletionChunk.model_validate_json(raw, strict=True)
    _no_unknown_fields(chunk)
    return chunk


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with SimServer(api_key=KEY) as server:
        yield server


@pytest.fixture(scope="module")
def azure(sim: SimServer) -> openai.AzureOpenAI:
    return openai.AzureOpenAI(azure_endpoint=sim.root_url, api_key=KEY,
                              api_version=API_VERSION, max_retries=0)


def test_deployment_url_with_api_key(azure: openai.AzureOpenAI, sim: SimServer) -> None:
    raw = azure.chat.completions.with_raw_response.create(model="my-gpt", messages=USER)  # type: ignore[arg-type]
    assert raw.headers["x-ms-region"] and raw.headers["apim-request-id"]
    completion = strict_completion(raw.http_response.content)
    assert completion.choices[0].message.content == DEFAULT_TEXT
    sent = sim.stats()["last_request"]
    assert sent["path"] == "/openai/deployments/my-gpt/chat/completions"
    assert sent["query"] == f"api-version={API_VERSION}"
    assert sent["headers"]["api-key"] == KEY and "authorization" not in sent["headers"]


def test_streaming_with_usage(azure: openai.AzureOpenAI, sim: SimServer) -> None:
    chunks = list(azure.chat.completions.create(
        model="my-gpt", messages=USER, stream=True, stream_options={"include_usage": True}))  # type: ignore[arg-type]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == \
        DEFAULT_TEXT
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    with httpx.stream("POST", f"{sim.root_url}/openai/deployments/my-gpt/chat/completions",
                      params={"api-version": API_VERSION}, headers={"api-key": KEY},
                      json={"model": "my-gpt", "messages": USER, "stream": True}) as response:
        payloads = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert payloads[-1] == "[DONE]"
    for payload in payloads[:-1]:
        strict_chunk(payload)


def test_embeddings(azure: openai.AzureOpenAI, sim: SimServer) -> None:
    result = azure.embeddings.create(model="my-embedder", input=["a", "b"], dimensions=8)
    CreateEmbeddingResponse.model_validate(result.model_dump(), strict=True)
    assert len(result.data) == 2 and len(result.data[0].embedding) == 8
    assert sim.stats()["last_request"]["path"] == "/openai/deployments/my-embedder/embeddings"


def test_entra_token_as_bearer(sim: SimServer) -> None:
    client = openai.AzureOpenAI(azure_endpoint=sim.root_url, azure_ad_token=KEY,
                                api_version=API_VERSION, max_retries=0)
    reply = client.chat.completions.create(model="my-gpt", messages=USER)  # type: ignore[arg-type]
    assert reply.choices[0].message.content == DEFAULT_TEXT
    headers = sim.stats()["last_request"]["headers"]
    assert headers["authorization"] == f"Bearer {KEY}" and "api-key" not in headers


def test_v1_form(sim: SimServer) -> None:
    client = openai.OpenAI(base_url=f"{sim.root_url}/openai/v1", api_key=KEY, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model="my-gpt", messages=USER)  # type: ignore[arg-type]
    strict_completion(raw.http_response.content)
    sent = sim.stats()["last_request"]
    assert sent["path"] == "/openai/v1/chat/completions" and sent["query"] == ""
    assert [m.id for m in client.models.list()]


def test_wrong_key_and_missing_api_version(sim: SimServer, azure: openai.AzureOpenAI) -> None:
    wrong = openai.AzureOpenAI(azure_endpoint=sim.root_url, api_key="nope",
                               api_version=API_VERSION, max_retries=0)
    with pytest.raises(openai.AuthenticationError) as denied:
        wrong.chat.completions.create(model="my-gpt", messages=USER)  # type: ignore[arg-type]
    assert "Access denied due to invalid subscription key" in denied.value.message
    response = httpx.post(f"{sim.root_url}/openai/deployments/my-gpt/chat/completions",
                          headers={"api-key": KEY}, json={"model": "x", "messages": USER})
    assert response.status_code == 404
    assert json.loads(response.content)["error"]["message"] == "Resource not found"
    with pytest.raises(openai.RateLimitError) as limited:
        azure.chat.completions.create(model="my-gpt@rate_limit:retry_after=3", messages=USER)  # type: ignore[arg-type]
    assert limited.value.response.headers["retry-after"] == "3"
