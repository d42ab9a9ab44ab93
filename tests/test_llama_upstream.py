"""The llama.cpp upstream fixture really is an OpenAI-compatible server.

These talk to llama-cpp-python's server directly with the official ``openai`` SDK, without the
gateway in between, so a failure here points at the fixture rather than at polyroute.
"""

from __future__ import annotations

import concurrent.futures
import pathlib
import string
import time
from collections.abc import Iterator

import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

# The session-scoped `llama_server` fixture comes from tests/conftest.py (shared with the gateway
# tests, so the whole run starts a single llama.cpp server).
from tests.support.llama_server import DEFAULT_ALIAS, LlamaServer, make_tiny_gguf

MESSAGES: list[dict[str, str]] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Say hello."},
]
PRINTABLE = set(string.printable) - set("\t\n\r\x0b\x0c")


@pytest.fixture(scope="module")
def client(llama_server: LlamaServer) -> Iterator[openai.OpenAI]:
    # No retries: a flaky upstream must fail the test, not be papered over.
    with openai.OpenAI(
        base_url=llama_server.base_url, api_key="unused", max_retries=0, timeout=30
    ) as c:
        yield c


# Greedy decoding, so every call with the same arguments yields the same text.
DEFAULTS: dict[str, object] = {"messages": MESSAGES, "max_tokens": 8, "temperature": 0, "seed": 0}


def _chat(client: openai.OpenAI, model: str, **kwargs: object) -> ChatCompletion:
    return client.chat.completions.create(  # type: ignore[call-overload,no-any-return]
        model=model, **(DEFAULTS | kwargs)
    )


def _stream(client: openai.OpenAI, model: str, **kwargs: object) -> list[ChatCompletionChunk]:
    stream = client.chat.completions.create(  # type: ignore[call-overload]
        model=model, stream=True, **(DEFAULTS | kwargs)
    )
    return list(stream)


def test_model_file_is_small_and_deterministic(tmp_path: pathlib.Path) -> None:
    a = make_tiny_gguf(tmp_path / "a.gguf")
    b = make_tiny_gguf(tmp_path / "b.gguf")
    assert a.read_bytes() == b.read_bytes()
    assert a.stat().st_size < 512 * 1024


def test_models_endpoint_reports_alias(llama_server: LlamaServer, client: openai.OpenAI) -> None:
    assert llama_server.model == DEFAULT_ALIAS
    assert [m.id for m in client.models.list()] == [DEFAULT_ALIAS]
    assert llama_server.base_url == f"http://127.0.0.1:{llama_server.port}/v1"


def test_chat_completion(llama_server: LlamaServer, client: openai.OpenAI) -> None:
    resp = _chat(client, llama_server.model)

    assert isinstance(resp, ChatCompletion)
    assert resp.object == "chat.completion"
    assert resp.model == llama_server.model
    [choice] = resp.choices
    assert choice.index == 0
    assert choice.message.role == "assistant"
    assert choice.message.content
    # The tiny model cannot emit EOS, so max_tokens is what ends it.
    assert choice.finish_reason == "length"
    assert set(choice.message.content) <= PRINTABLE
    assert resp.usage is not None
    assert resp.usage.prompt_tokens > 0
    assert resp.usage.completion_tokens == 8
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens


def test_chat_completion_is_deterministic(llama_server: LlamaServer, client: openai.OpenAI) -> None:
    first = _chat(client, llama_server.model)
    second = _chat(client, llama_server.model)
    assert first.choices[0].message.content == second.choices[0].message.content


def test_chat_completion_stream(llama_server: LlamaServer, client: openai.OpenAI) -> None:
    chunks = _stream(client, llama_server.model)

    assert len(chunks) >= 2
    assert all(isinstance(c, ChatCompletionChunk) for c in chunks)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [ch.finish_reason for c in chunks for ch in c.choices if ch.finish_reason]
    assert finishes == ["length"]
    text = "".join(ch.delta.content or "" for c in chunks for ch in c.choices)
    # Same greedy decode as the non-streaming call.
    assert text == _chat(client, llama_server.model).choices[0].message.content


def test_stream_options_include_usage_is_ignored(
    llama_server: LlamaServer, client: openai.OpenAI
) -> None:
    # Pinned quirk: llama-cpp-python accepts stream_options but never sends a usage chunk, so
    # the gateway has to count (or omit) streamed usage itself.  If this starts failing, the
    # upstream grew support and the gateway may pass usage through instead.
    chunks = _stream(client, llama_server.model, stream_options={"include_usage": True})

    assert chunks[-1].choices[0].finish_reason == "length"
    assert all(c.usage is None for c in chunks)


def test_stop_sequence_finishes_with_stop(llama_server: LlamaServer, client: openai.OpenAI) -> None:
    full = _chat(client, llama_server.model, max_tokens=16).choices[0].message.content
    assert full and len(full) > 2
    stop = full[len(full) // 2 :][:2]
    resp = _chat(client, llama_server.model, max_tokens=16, stop=[stop])
    assert resp.choices[0].finish_reason == "stop"
    assert stop not in (resp.choices[0].message.content or "")


def test_non_ascii_and_multipart_input(llama_server: LlamaServer, client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(
        model=llama_server.model,
        messages=[
            {"role": "user", "content": "héllo wörld 日本語 🙂"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "text", "text": "again, ünïcode"}]},
        ],
        max_tokens=4,
        temperature=0,
    )
    assert resp.choices[0].finish_reason == "length"
    assert set(resp.choices[0].message.content or "") <= PRINTABLE


def test_legacy_completion(llama_server: LlamaServer, client: openai.OpenAI) -> None:
    resp = client.completions.create(
        model=llama_server.model, prompt="Once upon a time", max_tokens=4, temperature=0
    )
    assert resp.object == "text_completion"
    assert resp.choices[0].finish_reason == "length"
    assert resp.usage is not None and resp.usage.completion_tokens == 4


def test_completion_is_fast(llama_server: LlamaServer, client: openai.OpenAI) -> None:
    started = time.monotonic()
    _chat(client, llama_server.model, max_tokens=32)
    # Generous bound for a loaded 2-core CI box; typical is tens of milliseconds.
    assert time.monotonic() - started < 5.0


def test_response_model_echoes_request(llama_server: LlamaServer, client: openai.OpenAI) -> None:
    # Pinned quirk: a single-model server accepts any model name and echoes it back verbatim.
    assert _chat(client, "some-other-name").model == "some-other-name"


def test_context_length_exceeded_is_openai_style_400(
    llama_server: LlamaServer, client: openai.OpenAI
) -> None:
    # No multi-character token is reachable by SPM merges, so each input char is one token.
    long = [{"role": "user", "content": "x" * 2 * llama_server.n_ctx}]
    with pytest.raises(openai.BadRequestError) as info:
        _chat(client, llama_server.model, messages=long)
    assert info.value.status_code == 400
    assert info.value.code == "context_length_exceeded"


def test_concurrent_streams_all_finish(llama_server: LlamaServer, client: openai.OpenAI) -> None:
    # The server runs one request at a time; with --interrupt_requests false the others queue
    # rather than truncating the stream in flight.
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        runs = list(
            pool.map(lambda _: _stream(client, llama_server.model, max_tokens=48), range(4))
        )
    for chunks in runs:
        assert chunks[-1].choices[0].finish_reason == "length"
        assert sum(1 for c in chunks if c.choices[0].delta.content) == 48
