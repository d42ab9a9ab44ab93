"""A real third-party OpenAI-compatible server (llama-cpp-python serving a tiny generated
llama model) behind the gateway: what the client gets equals what the server says directly."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.support.gateway import GatewayProcess
from tests.support.llama_server import LlamaServer

MESSAGES = [{"role": "user", "content": "Say hello."}]
PARAMS = {"max_tokens": 8, "temperature": 0, "seed": 1}


@pytest.fixture(scope="module")
def llama_gateway(llama_server: LlamaServer) -> Iterator[GatewayProcess]:
    config = {
        "providers": {"llamacpp": {"base_url": llama_server.base_url, "auth": "none",
                                   "any_model": True}},
        "model_groups": {"tiny": {"deployments": [
            {"provider": "llamacpp", "model": llama_server.model}]}},
    }
    with GatewayProcess(config) as gw:
        yield gw


def test_non_streaming_matches_direct(llama_server: LlamaServer,
                                      llama_gateway: GatewayProcess) -> None:
    direct = openai.OpenAI(base_url=llama_server.base_url, api_key="x", max_retries=0)
    via = openai.OpenAI(base_url=llama_gateway.base_url, api_key="x", max_retries=0)
    expected = direct.chat.completions.create(model=llama_server.model, messages=MESSAGES,
                                              **PARAMS)  # type: ignore[arg-type]
    got = via.chat.completions.create(model="tiny", messages=MESSAGES, **PARAMS)  # type: ignore[arg-type]
    assert got.choices[0].message.content == expected.choices[0].message.content
    assert got.choices[0].message.content
    assert got.usage is not None and expected.usage is not None
    assert got.usage.completion_tokens == expected.usage.completion_tokens > 0


def test_streaming_matches_direct(llama_server: LlamaServer,
                                  llama_gateway: GatewayProcess) -> None:
    direct = openai.OpenAI(base_url=llama_server.base_url, api_key="x", max_retries=0)
    via = openai.OpenAI(base_url=llama_gateway.base_url, api_key="x", max_retries=0)

    def text(client: openai.OpenAI, model: str) -> tuple[str, str | None]:
        content, finish = [], None
        for chunk in client.chat.completions.create(model=model, messages=MESSAGES,
                                                    stream=True, **PARAMS):  # type: ignore[call-overload]
            for choice in chunk.choices:
                content.append(choice.delta.content or "")
                finish = choice.finish_reason or finish
        return "".join(content), finish

    expected = text(direct, llama_server.model)
    got = text(via, f"llamacpp/{llama_server.model}")
    assert got == expected
    assert got[0] and got[1] == "length"
