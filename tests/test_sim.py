"""The provider simulator speaks OpenAI's wire protocol and misbehaves exactly as asked.

Everything goes over real sockets: the official ``openai`` SDK and its pydantic types
check the shapes, and a raw socket checks what an SDK would hide (HTTP chunk
boundaries, resets, missing terminators).
"""

from __future__ import annotations

import base64
import json
import math
import os
import pathlib
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import openai
import pytest
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from polyroute.sim.cli import build_parser, parse_rule, settings_from_args
from polyroute.sim.faults import FaultSpecError, parse_fault_spec, split_model_fault
from polyroute.sim.settings import DEFAULT_TEXT, FaultRule
from polyroute.sim.tokens import count_tokens, split_tokens
from tests.support.sim import SimServer, serve_sim

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
# The full-width comma is deliberate: CJK punctuation is part of what must survive.
MULTILINGUAL = "สวัสดีครับ 你好，世界 こんにちは 👋🏽👨‍👩‍👧 שלום עולם مرحبا بالعالم café"
WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}},
            "required": ["location"],
        },
    },
}


# -- fixtures -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_sim() -> Iterator[SimServer]:
    yield from serve_sim()


@pytest.fixture
def sim(shared_sim: SimServer) -> SimServer:
    shared_sim.clear_rules()
    shared_sim.reset()
    return shared_sim


@pytest.fixture
def client(sim: SimServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=sim.base_url, api_key="sk-test", max_retries=0, timeout=10)


# -- raw HTTP helpers -------------------------------------------------------------------


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    chunks: list[bytes] = field(default_factory=list)
    complete: bool = False
    ended_by: str = "eof"  # "eof", "reset" or "timeout"
    recv_times: list[float] = field(default_factory=list)
    header_time: float | None = None

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    def events(self) -> list[bytes]:
        """Payloads of the SSE `data:` lines, in order."""
        text = b"".join(self.chunks) if self.chunks else self.body
        return [
            block[len(b"data: ") :] for block in text.split(b"\n\n") if block.startswith(b"data: ")
        ]


def chat_body(
    model: str = "gpt-4o-mini", content: str = "Hello there", **extra: Any
) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}


def open_request(
    sim: SimServer,
    body: Any,
    headers: dict[str, str] | None = None,
    path: str = "/v1/chat/completions",
) -> socket.socket:
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: 127.0.0.1:{sim.port}",
        "Content-Type: application/json",
        f"Content-Length: {len(payload)}",
        "Connection: close",
        *(f"{key}: {value}" for key, value in (headers or {}).items()),
    ]
    sock = socket.create_connection(("127.0.0.1", sim.port), timeout=5)
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
    return sock


def read_raw(sock: socket.socket, timeout: float = 5.0) -> RawResponse:
    """Read until EOF, reset or `timeout`, noting when each piece arrived."""
    start = time.monotonic()
    data = b""
    times: list[float] = []
    ended_by = "eof"
    header_time = None
    sock.settimeout(timeout)
    with sock:
        while True:
            try:
                piece = sock.recv(65536)
            except ConnectionResetError:
                ended_by = "reset"
                break
            except TimeoutError:
                ended_by = "timeout"
                break
            if not piece:
                break
            data += piece
            times.append(time.monotonic() - start)
            if header_time is None and b"\r\n\r\n" in data:
                header_time = times[-1]
    return parse_raw(data, ended_by, times, header_time)


def parse_raw(
    data: bytes, ended_by: str, times: list[float], header_time: float | None
) -> RawResponse:
    if b"\r\n\r\n" not in data:
        return RawResponse(0, {}, data, ended_by=ended_by, recv_times=times)
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    response = RawResponse(
        int(status_line.split()[1]),
        headers,
        body,
        ended_by=ended_by,
        recv_times=times,
        header_time=header_time,
    )
    if headers.get("transfer-encoding") == "chunked":
        response.chunks, response.complete = dechunk(body)
    else:
        response.complete = len(body) == int(headers.get("content-length", "-1"))
    return response


def dechunk(body: bytes) -> tuple[list[bytes], bool]:
    """HTTP/1.1 chunks as sent (one per server write) and whether the 0-chunk arrived."""
    chunks: list[bytes] = []
    pos = 0
    while True:
        line_end = body.find(b"\r\n", pos)
        if line_end < 0:
            return chunks, False
        size = int(body[pos:line_end].split(b";")[0], 16)
        if size == 0:
            return chunks, True
        start = line_end + 2
        if start + size > len(body):
            chunks.append(body[start:])
            return chunks, False
        chunks.append(body[start : start + size])
        pos = start + size + 2


def raw_chat(sim: SimServer, body: Any, fault: str | None = None, **kwargs: Any) -> RawResponse:
    headers = {"x-sim-fault": fault} if fault else None
    return read_raw(open_request(sim, body, headers), **kwargs)


def content_of(events: list[bytes]) -> str:
    text = ""
    for event in events:
        if event == b"[DONE]":
            continue
        for choice in json.loads(event)["choices"]:
            text += choice["delta"].get("content") or ""
    return text


def content_events(events: list[bytes]) -> list[dict[str, Any]]:
    parsed = [json.loads(event) for event in events if event != b"[DONE]"]
    return [e for e in parsed if e["choices"] and e["choices"][0]["delta"].get("content")]


def wait_for(predicate: Any, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())


# -- tokenizer ----------------------------------------------------------------------


@pytest.mark.parametrize("text", [DEFAULT_TEXT, MULTILINGUAL, "  lead and trail  ", "a\n\nb", ""])
def test_tokens_rejoin_exactly_and_never_split_a_code_point(text: str) -> None:
    tokens = split_tokens(text)
    assert "".join(tokens) == text
    for token in tokens:
        token.encode("utf-8").decode("utf-8")  # each token is whole UTF-8 on its own
    assert count_tokens("hello world") == 2


# -- chat: shapes checked with the openai SDK's own types -------------------------------


def test_non_streaming_completion_matches_openai_types(sim: SimServer) -> None:
    response = raw_chat(sim, chat_body(content="hello world"))
    assert response.status == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["x-request-id"].startswith("req_")
    completion = ChatCompletion.model_validate(response.json)
    assert completion.id.startswith("chatcmpl-")
    assert completion.object == "chat.completion"
    assert completion.model == "gpt-4o-mini"
    assert completion.system_fingerprint
    assert abs(completion.created - time.time()) < 60
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == DEFAULT_TEXT
    assert choice.finish_reason == "stop"
    usage = completion.usage
    assert usage is not None
    assert usage.prompt_tokens == 2
    assert usage.completion_tokens == count_tokens(DEFAULT_TEXT)
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 0
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 0
    # OpenAI sends these as explicit nulls, and some clients rely on the keys being there.
    raw_choice = response.json["choices"][0]
    assert raw_choice["logprobs"] is None
    assert raw_choice["message"]["refusal"] is None


def test_streaming_wire_format(sim: SimServer) -> None:
    body = chat_body(stream=True, stream_options={"include_usage": True})
    response = raw_chat(sim, body)
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["transfer-encoding"] == "chunked"
    assert response.complete
    events = response.events()
    assert events[-1] == b"[DONE]"
    chunks = [ChatCompletionChunk.model_validate_json(event) for event in events[:-1]]
    assert {chunk.id for chunk in chunks} == {chunks[0].id}
    assert chunks[0].id.startswith("chatcmpl-")
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert all(chunk.model == "gpt-4o-mini" for chunk in chunks)
    first = chunks[0].choices[0]
    assert first.delta.role == "assistant"
    assert first.delta.content == ""
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason is not None]
    assert len(finals) == 1
    assert finals[0].choices[0].finish_reason == "stop"
    assert chunks.index(finals[0]) == len(chunks) - 2
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == []
    assert usage_chunk.usage is not None
    assert usage_chunk.usage.completion_tokens == count_tokens(DEFAULT_TEXT)
    # With include_usage OpenAI puts "usage": null on every other chunk.
    assert all(json.loads(event)["usage"] is None for event in events[:-2])
    assert content_of(events) == DEFAULT_TEXT


def test_streaming_without_include_usage_has_no_usage_chunk(sim: SimServer) -> None:
    events = raw_chat(sim, chat_body(stream=True)).events()
    assert events[-1] == b"[DONE]"
    parsed = [json.loads(event) for event in events[:-1]]
    assert all("usage" not in chunk for chunk in parsed)
    assert parsed[-1]["choices"][0]["finish_reason"] == "stop"


def test_openai_sdk_sync_and_streaming(client: openai.OpenAI, sim: SimServer) -> None:
    completion = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
    )
    assert completion.choices[0].message.content == DEFAULT_TEXT
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces = []
    usage = None
    for chunk in stream:
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
        if chunk.usage is not None:
            usage = chunk.usage
    assert "".join(pieces) == DEFAULT_TEXT
    assert usage is not None
    assert usage.completion_tokens == count_tokens(DEFAULT_TEXT)
    assert sim.stats()["streams_completed"] == 1


def test_echo_model_returns_multilingual_text_byte_exact(client: openai.OpenAI) -> None:
    messages: list[Any] = [
        {"role": "system", "content": "ignored"},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "an answer"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": MULTILINGUAL[:20]},
                {"type": "text", "text": MULTILINGUAL[20:]},
            ],
        },
    ]
    completion = client.chat.completions.create(model="echo", messages=messages)
    assert completion.choices[0].message.content == MULTILINGUAL
    streamed = "".join(
        chunk.choices[0].delta.content or ""
        for chunk in client.chat.completions.create(model="echo-1", messages=messages, stream=True)
        if chunk.choices
    )
    assert streamed == MULTILINGUAL
    assert streamed.encode() == MULTILINGUAL.encode()


def test_max_tokens_truncates_with_finish_reason_length(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], max_tokens=3
    )
    assert completion.choices[0].finish_reason == "length"
    assert completion.choices[0].message.content == "".join(split_tokens(DEFAULT_TEXT)[:3])
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 3


def test_n_choices(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "two"}], n=2
    )
    assert [choice.index for choice in completion.choices] == [0, 1]
    assert all(choice.message.content == "two" for choice in completion.choices)
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 2
    texts = {0: "", 1: ""}
    for chunk in client.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "two words"}], n=2, stream=True
    ):
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
    assert texts == {0: "two words", 1: "two words"}


# -- tool calls -------------------------------------------------------------------------


def test_streamed_tool_call_reassembles_with_the_sdk(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER_TOOL],
        tool_choice="required",
        stream=True,
    )
    deltas = []
    finish = None
    for chunk in stream:
        choice = chunk.choices[0]
        if choice.delta.tool_calls:
            deltas.extend(choice.delta.tool_calls)
        finish = choice.finish_reason or finish
    assert finish == "tool_calls"
    head, rest = deltas[0], deltas[1:]
    assert head.index == 0
    assert head.id is not None and head.id.startswith("call_")
    assert head.type == "function"
    assert head.function is not None
    assert head.function.name == "get_weather"
    assert head.function.arguments == ""
    assert len(rest) >= 3  # arguments really arrive in fragments
    for delta in rest:
        assert delta.index == 0 and delta.id is None and delta.type is None
        assert delta.function is not None and delta.function.name is None
    arguments = "".join(delta.function.arguments or "" for delta in rest if delta.function)
    assert json.loads(arguments) == {"location": "Paris"}


def test_named_tool_choice_builds_arguments_from_required_schema(client: openai.OpenAI) -> None:
    tool: Any = {
        "type": "function",
        "function": {
            "name": "book",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "nights": {"type": "integer"},
                    "unit": {"type": "string", "enum": ["metric", "imperial"]},
                    "breakfast": {"type": "boolean"},
                    "notes": {"type": "string"},
                },
                "required": ["city", "nights", "unit", "breakfast"],
            },
        },
    }
    completion = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "book it"}],
        tools=[WEATHER_TOOL, tool],
        tool_choice={"type": "function", "function": {"name": "book"}},
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls
    assert calls is not None and len(calls) == 1
    # Through model_dump: the SDK's tool-call class names differ between versions.
    call = completion.model_dump()["choices"][0]["message"]["tool_calls"][0]
    assert call["id"].startswith("call_")
    assert call["type"] == "function"
    assert call["function"]["name"] == "book"
    arguments = json.loads(call["function"]["arguments"])
    assert arguments == {"city": "Paris", "nights": 1, "unit": "metric", "breakfast": True}


def test_auto_tool_choice_answers_with_text(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}], tools=[WEATHER_TOOL]
    )
    assert completion.choices[0].message.tool_calls is None
    assert completion.choices[0].message.content == DEFAULT_TEXT


# -- embeddings and models ---------------------------------------------------------------


def test_embeddings_float_and_base64(sim: SimServer, client: openai.OpenAI) -> None:
    body = {"model": "text-embedding-3-small", "input": ["alpha", "beta"], "dimensions": 16}
    as_float = read_raw(
        open_request(sim, {**body, "encoding_format": "float"}, path="/v1/embeddings")
    )
    assert as_float.status == 200
    parsed = CreateEmbeddingResponse.model_validate(as_float.json)
    assert parsed.object == "list"
    assert parsed.model == "text-embedding-3-small"
    assert [item.index for item in parsed.data] == [0, 1]
    alpha, beta = (item.embedding for item in parsed.data)
    assert len(alpha) == 16
    assert alpha != beta
    assert math.isclose(math.fsum(v * v for v in alpha), 1.0, rel_tol=1e-5)
    assert parsed.usage.prompt_tokens == 2 and parsed.usage.total_tokens == 2

    as_b64 = read_raw(
        open_request(sim, {**body, "encoding_format": "base64"}, path="/v1/embeddings")
    ).json
    decoded = struct.unpack("<16f", base64.b64decode(as_b64["data"][0]["embedding"]))
    assert list(decoded) == alpha

    # The SDK asks for base64 by default and decodes it itself.
    via_sdk = client.embeddings.create(model="text-embedding-3-small", input="alpha", dimensions=16)
    assert via_sdk.data[0].embedding == pytest.approx(alpha, abs=1e-7)
    full = client.embeddings.create(model="text-embedding-3-small", input=[[1, 2, 3]])
    assert len(full.data[0].embedding) == 1536
    assert full.usage.prompt_tokens == 3


def test_models_list(client: openai.OpenAI) -> None:
    ids = [model.id for model in client.models.list()]
    assert ids == ["gpt-4o-mini", "gpt-4o", "echo", "text-embedding-3-small"]
    assert client.models.retrieve("echo").id == "echo"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")


# -- request validation and auth ---------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        (b"{not json", None, None),
        (b"[]", None, None),
        ({"messages": [{"role": "user", "content": "x"}]}, None, None),
        ({"model": "gpt-4o"}, "messages", "missing_required_parameter"),
        ({"model": "gpt-4o", "messages": "x"}, "messages", "invalid_type"),
        ({"model": "gpt-4o", "messages": []}, "messages", "empty_array"),
    ],
)
def test_bad_requests_get_openai_400(
    sim: SimServer, body: Any, param: str | None, code: str | None
) -> None:
    response = raw_chat(sim, body)
    assert response.status == 400
    error = response.json["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"]
    assert error["param"] == param
    assert error["code"] == code


def test_api_key_is_enforced() -> None:
    with SimServer(api_key="sk-sim-secret-123") as sim:
        missing = raw_chat(sim, chat_body())
        assert missing.status == 401
        assert missing.json["error"]["code"] == "invalid_api_key"
        wrong = read_raw(open_request(sim, chat_body(), {"Authorization": "Bearer sk-wrong-4567"}))
        assert wrong.status == 401
        error = wrong.json["error"]
        assert error == {
            "message": error["message"],
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
        assert error["message"].startswith("Incorrect API key provided: sk-")
        assert "sk-wrong-4567" not in error["message"]
        good = openai.OpenAI(base_url=sim.base_url, api_key="sk-sim-secret-123", max_retries=0)
        assert good.models.list().data
        bad = openai.OpenAI(base_url=sim.base_url, api_key="sk-nope", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            bad.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
        assert sim.stats()["last_request"]["headers"]["authorization"] == "Bearer sk-nope"


# -- faults: whole-response faults -------------------------------------------------------


def test_rate_limit(sim: SimServer, client: openai.OpenAI) -> None:
    response = raw_chat(sim, chat_body(), fault="rate_limit;retry_after=2.5")
    assert response.status == 429
    assert response.headers["retry-after"] == "2.5"
    assert response.headers["x-ratelimit-reset-requests"] == "2.5s"
    error = response.json["error"]
    assert error["type"] == "requests"
    assert error["code"] == "rate_limit_exceeded"
    assert "gpt-4o-mini" in error["message"]
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(
            model="gpt-4o@rate_limit", messages=[{"role": "user", "content": "x"}]
        )
    assert caught.value.response.headers["retry-after"] == "1"
    assert caught.value.code == "rate_limit_exceeded"


def test_rate_limit_without_retry_after(sim: SimServer) -> None:
    response = raw_chat(sim, chat_body(), fault="rate_limit_no_retry_after")
    assert response.status == 429
    assert "retry-after" not in response.headers
    assert "x-ratelimit-reset-requests" not in response.headers
    assert response.json["error"]["code"] == "rate_limit_exceeded"


@pytest.mark.parametrize(("fault", "status"), [("server_error", 500), ("unavailable", 503)])
def test_server_side_errors(sim: SimServer, fault: str, status: int) -> None:
    response = raw_chat(sim, chat_body(), fault=fault)
    assert response.status == status
    assert response.json["error"]["type"] == "server_error"


def test_context_length_exceeded(sim: SimServer, client: openai.OpenAI) -> None:
    response = raw_chat(sim, chat_body(), fault="context_length_exceeded;limit=4096")
    assert response.status == 400
    assert response.json == {
        "error": {
            "message": "This model's maximum context length is 4096 tokens. However, your "
            "messages resulted in 4097 tokens. Please reduce the length of the messages.",
            "type": "invalid_request_error",
            "param": "messages",
            "code": "context_length_exceeded",
        }
    }
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="gpt-4o@context_length_exceeded", messages=[{"role": "user", "content": "x"}]
        )
    assert caught.value.code == "context_length_exceeded"


def test_content_policy_violation(sim: SimServer) -> None:
    response = raw_chat(sim, chat_body(), fault="content_policy_violation")
    assert response.status == 400
    error = response.json["error"]
    assert error["code"] == "content_policy_violation"
    assert error["type"] == "invalid_request_error"


def test_reset_before_headers(sim: SimServer) -> None:
    response = raw_chat(sim, chat_body(stream=True), fault="reset_before_headers")
    assert response.ended_by == "reset"
    assert response.body == b"" and response.status == 0
    assert sim.stats()["faults"] == {"reset_before_headers": 1}


async def test_reset_before_headers_seen_by_aiohttp(sim: SimServer) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.post(
                f"{sim.base_url}/chat/completions",
                json=chat_body("gpt-4o@reset_before_headers"),
            )


def test_no_response_holds_then_closes(sim: SimServer) -> None:
    sock = open_request(sim, chat_body(), {"x-sim-fault": "no_response;hold_s=0.5"})
    started = time.monotonic()
    sock.settimeout(0.3)
    with pytest.raises(TimeoutError):
        sock.recv(1)
    response = read_raw(sock, timeout=3)
    elapsed = time.monotonic() - started
    assert response.ended_by in ("eof", "reset")
    assert response.body == b""
    assert 0.45 <= elapsed < 2.5


def test_slow_first_token_streaming(sim: SimServer) -> None:
    response = raw_chat(sim, chat_body(stream=True), fault="slow_first_token;delay_ms=600")
    assert response.status == 200
    assert response.header_time is not None and response.header_time < 0.4
    assert response.recv_times[-1] >= 0.55
    assert content_of(response.events()) == DEFAULT_TEXT


def test_slow_first_token_non_streaming(sim: SimServer) -> None:
    started = time.monotonic()
    response = raw_chat(sim, chat_body(), fault="slow_first_token;delay_ms=300")
    assert time.monotonic() - started >= 0.3
    assert response.json["choices"][0]["message"]["content"] == DEFAULT_TEXT


# -- faults: mid-stream faults -----------------------------------------------------------


def test_stream_cut(sim: SimServer) -> None:
    response = raw_chat(sim, chat_body(stream=True), fault="stream_cut;after_chunks=3")
    assert response.status == 200
    assert not response.complete  # no terminating 0-chunk: the body was cut
    events = response.events()
    assert len(content_events(events)) == 3
    assert b"[DONE]" not in events
    assert all(json.loads(e)["choices"][0]["finish_reason"] is None for e in events)
    assert content_of(events) == "".join(split_tokens(DEFAULT_TEXT)[:3])
    assert sim.stats()["responses_cut_by_sim"] == 1


async def test_stream_cut_is_a_payload_error_for_aiohttp(sim: SimServer) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{sim.base_url}/chat/completions",
            json=chat_body("gpt-4o@stream_cut", stream=True),
        ) as response,
    ):
        assert response.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()


def test_stream_cut_non_streaming_cuts_the_body(sim: SimServer) -> None:
    response = raw_chat(sim, chat_body(), fault="stream_cut")
    assert response.status == 200
    assert not response.complete
    assert 0 < len(response.body) < int(response.headers["content-length"])


def test_stream_stall(sim: SimServer) -> None:
    response = raw_chat(sim, chat_body(stream=True), fault="stream_stall;after_chunks=2;hold_s=0.6")
    assert response.ended_by == "eof"
    assert not response.complete
    events = response.events()
    assert len(content_events(events)) == 2
    assert b"[DONE]" not in events
    # The last bytes came early; then silence until the close.
    stall_started = response.recv_times[-1]
    assert stall_started < 0.4


def test_stream_stall_reader_giving_up_counts_as_peer_abort(sim: SimServer) -> None:
    sock = open_request(
        sim, chat_body(stream=True), {"x-sim-fault": "stream_stall;after_chunks=1;hold_s=10"}
    )
    sock.settimeout(0.5)
    received = b""
    with pytest.raises(TimeoutError):
        while True:
            piece = sock.recv(65536)
            assert piece, "stream ended instead of stalling"
            received += piece
    assert received.count(b'"content":"') == 2  # role chunk ("") + one content chunk
    assert sim.stats()["active_requests"] == 1
    sock.close()
    assert wait_for(lambda: sim.stats()["streams_aborted_by_peer"] == 1)
    stats = sim.stats()
    assert stats["active_requests"] == 0
    assert stats["requests_aborted_by_peer"] == 1
    assert stats["streams_completed"] == 0


def test_malformed_chunk(sim: SimServer) -> None:
    response = raw_chat(sim, chat_body(stream=True), fault="malformed_chunk;after_chunks=2")
    assert response.complete
    events = response.events()
    assert events[-1] == b"[DONE]"
    bad = []
    for position, event in enumerate(events[:-1]):
        try:
            json.loads(event)
        except json.JSONDecodeError:
            bad.append(position)
    assert len(bad) == 1
    good = [event for position, event in enumerate(events) if position not in bad]
    # role chunk + 2 content chunks precede the broken line, and the stream then goes on.
    assert bad[0] == 3
    assert content_of(good) == DEFAULT_TEXT


def test_no_done(sim: SimServer) -> None:
    body = chat_body(stream=True, stream_options={"include_usage": True})
    response = raw_chat(sim, body, fault="no_done")
    assert response.complete  # the HTTP body ends properly...
    events = response.events()
    assert b"[DONE]" not in events  # ...but without the sentinel
    assert json.loads(events[-1])["usage"]["completion_tokens"] == count_tokens(DEFAULT_TEXT)
    assert json.loads(events[-2])["choices"][0]["finish_reason"] == "stop"


def test_split_utf8_streaming(sim: SimServer) -> None:
    body = chat_body("echo", MULTILINGUAL, stream=True)
    response = raw_chat(sim, body, fault="split_utf8;gap_ms=1")
    assert response.complete
    # Each server write is its own HTTP chunk; some must end inside a character.
    broken = 0
    for chunk in response.chunks:
        try:
            chunk.decode("utf-8")
        except UnicodeDecodeError:
            broken += 1
    assert broken >= 10
    events = response.events()
    assert events[-1] == b"[DONE]"
    assert content_of(events) == MULTILINGUAL


def test_split_utf8_non_streaming(sim: SimServer) -> None:
    # A Content-Length body has no chunk framing, so the split can only be seen in
    # when bytes arrive; the pause is long enough that the reader sees it under load.
    body = chat_body("echo", "é😀", stream=False)
    sock = open_request(sim, body, {"x-sim-fault": "split_utf8;gap_ms=150"})
    received = b""
    boundaries = []
    sock.settimeout(3)
    with sock:
        while piece := sock.recv(65536):
            received += piece
            boundaries.append(len(received))
    body_start = received.index(b"\r\n\r\n") + 4
    # A read that ended just before a UTF-8 continuation byte ended inside a character.
    mid_character = [
        end
        for end in boundaries
        if body_start < end < len(received) and 0x80 <= received[end] < 0xC0
    ]
    assert len(mid_character) >= 1
    response = parse_raw(received, "eof", [], None)
    assert response.complete
    assert response.json["choices"][0]["message"]["content"] == "é😀"


# -- fault selection ------------------------------------------------------------------------


def test_fault_spec_parsing() -> None:
    fault = parse_fault_spec("stream_cut;after_chunks=3")
    assert (fault.name, fault.int_param("after_chunks")) == ("stream_cut", 3)
    assert parse_fault_spec("stream_stall").param("hold_s") == 30
    assert split_model_fault("gpt-4o@stream_cut:after_chunks=1,")[0] == "gpt-4o"
    assert split_model_fault("vendor/model@2024") == ("vendor/model@2024", None)
    for bad in ("nope", "stream_cut;after_chunk=3", "stream_cut;after_chunks=x", "rate_limit;3"):
        with pytest.raises(FaultSpecError):
            parse_fault_spec(bad)


def test_model_suffix_selects_fault_and_is_stripped(sim: SimServer) -> None:
    body = chat_body("gpt-4o-mini@stream_cut:after_chunks=1", stream=True)
    response = raw_chat(sim, body)
    events = response.events()
    assert len(content_events(events)) == 1
    assert json.loads(events[0])["model"] == "gpt-4o-mini"
    stats = sim.stats()
    assert stats["requests_by_model"] == {"gpt-4o-mini": 1}
    assert stats["faults"] == {"stream_cut": 1}


def test_header_beats_model_suffix_beats_rules(sim: SimServer) -> None:
    sim.set_rules([{"fault": "server_error"}])
    assert raw_chat(sim, chat_body("gpt-4o@unavailable"), fault="rate_limit").status == 429
    assert raw_chat(sim, chat_body("gpt-4o@unavailable")).status == 503
    assert raw_chat(sim, chat_body("gpt-4o")).status == 500
    assert raw_chat(sim, chat_body("gpt-4o"), fault="none").status == 200


def test_unknown_fault_is_a_400(sim: SimServer) -> None:
    response = raw_chat(sim, chat_body(), fault="stream_cut;after_chunk=3")
    assert response.status == 400
    assert response.json["error"]["param"] == "x-sim-fault"
    assert "after_chunks" in response.json["error"]["message"]


def test_rules_match_model_glob_and_run_out(sim: SimServer) -> None:
    rules = sim.set_rules([{"model": "gpt-4o*", "fault": "unavailable", "times": 2}])
    assert rules[0]["remaining"] == 2
    statuses = [raw_chat(sim, chat_body("gpt-4o-mini")).status for _ in range(3)]
    assert statuses == [503, 503, 200]
    assert raw_chat(sim, chat_body("echo")).status == 200
    sim.set_rules([{"model": "echo", "fault": "unavailable"}])
    assert raw_chat(sim, chat_body("gpt-4o")).status == 200
    assert [raw_chat(sim, chat_body("echo")).status for _ in range(3)] == [503] * 3
    sim.clear_rules()
    assert sim.rules() == []
    assert raw_chat(sim, chat_body("echo")).status == 200


def test_rules_apply_to_embeddings(sim: SimServer) -> None:
    sim.set_rules([{"model": "text-embedding-*", "fault": "rate_limit", "times": 1}])
    body = {"model": "text-embedding-3-small", "input": "x"}
    first = read_raw(open_request(sim, body, path="/v1/embeddings"))
    second = read_raw(open_request(sim, body, path="/v1/embeddings"))
    assert (first.status, second.status) == (429, 200)


def test_rule_probability_is_seeded_and_reproducible(sim: SimServer) -> None:
    def run() -> list[int]:
        sim.set_rules([{"fault": "server_error", "probability": 0.5}])
        return [raw_chat(sim, chat_body()).status for _ in range(16)]

    first, second = run(), run()
    assert first == second
    assert 500 in first and 200 in first


def test_invalid_rules_are_rejected_and_old_rules_kept(sim: SimServer) -> None:
    sim.set_rules([{"fault": "unavailable"}])
    for rules in (
        [{"fault": "melt_down"}],
        [{"fault": "stream_cut", "params": {"after": 1}}],
        [{"fault": "stream_cut", "probability": 2}],
        [{"fault": "stream_cut", "bogus": 1}],
    ):
        with pytest.raises(Exception, match="400"):
            sim.set_rules(rules)
    assert [rule["fault"] for rule in sim.rules()] == ["unavailable"]


def test_settings_rules_and_faults_apply_from_start() -> None:
    rule = FaultRule(model="echo", fault="stream_cut", params={"after_chunks": 0})
    with SimServer(rules=[rule]) as sim:
        response = raw_chat(sim, chat_body("echo", "a b c", stream=True))
        assert content_events(response.events()) == []
        assert not response.complete


# -- stats, pacing, support helper, CLI ------------------------------------------------------


def test_stats_and_reset(sim: SimServer) -> None:
    raw_chat(sim, chat_body("echo", "héllo"))
    raw_chat(sim, chat_body("gpt-4o"), fault="server_error")
    read_raw(open_request(sim, {"model": "e", "input": "x"}, path="/v1/embeddings"))
    stats = sim.stats()
    assert stats["requests_total"] == 3
    assert stats["requests_by_model"] == {"echo": 1, "gpt-4o": 1, "e": 1}
    assert stats["requests_by_path"] == {"/v1/chat/completions": 2, "/v1/embeddings": 1}
    assert stats["faults"] == {"server_error": 1}
    assert stats["status_codes"] == {"200": 2, "500": 1}
    assert stats["active_requests"] == 0
    last = stats["last_request"]
    assert last["path"] == "/v1/embeddings"
    assert last["body"] == {"model": "e", "input": "x"}
    assert last["headers"]["content-type"] == "application/json"
    sim.reset()
    assert sim.stats()["requests_total"] == 0
    assert sim.stats()["last_request"] is None


def test_pacing_chunking_and_latency() -> None:
    text = "one two three four five six seven"
    with SimServer(text=text, tokens_per_second=70, chunk_tokens=2, latency_ms=150) as sim:
        started = time.monotonic()
        response = raw_chat(sim, chat_body(stream=True, stream_options={"include_usage": True}))
        elapsed = time.monotonic() - started
        assert response.header_time is not None and response.header_time >= 0.15
        contents = [e["choices"][0]["delta"]["content"] for e in content_events(response.events())]
        assert contents == ["one two", " three four", " five six", " seven"]
        # 4 chunks of 2 tokens at 70 tokens/s: at least ~0.11 s of pacing after the latency.
        assert elapsed >= 0.15 + 0.1
        assert json.loads(response.events()[-2])["usage"]["completion_tokens"] == 7


def test_client_disconnect_mid_stream_is_counted() -> None:
    # Long enough (about 2 s) that the client surely hangs up before the end.
    with SimServer(tokens_per_second=50, text=DEFAULT_TEXT * 5) as sim:
        sock = open_request(sim, chat_body(stream=True))
        sock.settimeout(2)
        received = b""
        while received.count(b"data: ") < 3:
            received += sock.recv(65536)
        sock.close()
        assert wait_for(lambda: sim.stats()["streams_aborted_by_peer"] == 1)
        stats = sim.stats()
        assert stats["streams_completed"] == 0
        assert stats["active_requests"] == 0


async def test_sim_server_works_from_async_tests(sim: SimServer) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{sim.base_url}/models") as response,
    ):
        assert response.status == 200
        assert (await response.json())["object"] == "list"
    assert sim.stats()["requests_by_path"] == {"/v1/models": 1}


def test_cli_rule_parsing() -> None:
    assert parse_rule("gpt-4o=stream_cut;after_chunks=3") == FaultRule(
        model="gpt-4o", fault="stream_cut", params={"after_chunks": 3.0}
    )
    assert parse_rule("unavailable") == FaultRule(fault="unavailable")
    args = build_parser().parse_args(["--port", "0", "--fault", "echo*=no_done", "--model", "m"])
    settings = settings_from_args(args)
    assert settings.models == ["m"] and settings.rules[0].model == "echo*"
    with pytest.raises(FaultSpecError):
        parse_rule("echo=melt")


def test_cli_runs_and_stops_on_sigterm() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    command = [
        sys.executable,
        "-m",
        "polyroute.sim",
        "--port",
        "0",
        "--fault",
        "echo*=server_error",
    ]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=REPO_ROOT
    ) as process:
        try:
            assert process.stdout is not None
            ready, _, _ = select.select([process.stdout], [], [], 15)
            assert ready, "simulator did not print its address"
            line = process.stdout.readline().decode()
            assert line.startswith("polyroute sim listening on http://127.0.0.1:")
            base_url = line.rsplit(" ", 1)[1].strip()
            assert base_url.endswith("/v1")
            with openai.OpenAI(base_url=base_url, api_key="x", max_retries=0) as client:
                reply = client.chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": "x"}]
                )
                assert reply.choices[0].message.content == DEFAULT_TEXT
                with pytest.raises(openai.InternalServerError):
                    client.chat.completions.create(
                        model="echo", messages=[{"role": "user", "content": "x"}]
                    )
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=5)
