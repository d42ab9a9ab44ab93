"""Mid-stream recovery: a stream that breaks after content reached the client is finished by
the next candidate — by continuation where its provider continues an assistant prefix
(Anthropic, Bedrock, a real llama.cpp server), by regenerate-and-splice elsewhere (the OpenAI
simulator, whose answers are deterministic) — and the client sees one well-formed stream:
byte-exact text, one finish reason, one [DONE], usage summed over the attempts."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from polyroute.engine.gateway import estimate_input_tokens
from polyroute.model.chat import ChatRequest, Message
from polyroute.sim.settings import DEFAULT_TEXT
from polyroute.sim.tokens import count_tokens, split_tokens
from tests.conftest import SIM_KEY, sim_provider
from tests.support.gateway import GatewayProcess
from tests.support.llama_server import LlamaServer
from tests.support.sim import SimServer

USER = [{"role": "user", "content": "Say hello."}]
TIMEOUTS = {"connect_s": 2, "ttft_s": 3, "stall_s": 1, "response_s": 5, "total_s": 20}
CUT_AFTER = 3
SENT = "".join(split_tokens(DEFAULT_TEXT)[:CUT_AFTER])  # what the client has at the break
MID_ANSWER = ("stream_cut", "stream_stall", "malformed_chunk")
LLAMA = {"max_tokens": 8, "temperature": 0, "seed": 1}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"location": {"type": "string"}},
    "required": ["location"]}}}]


def pair(primary: dict[str, Any], backup: dict[str, Any]) -> dict[str, Any]:
    return {"routing": "priority", "deployments": [
        {**primary, "name": "primary"}, {**backup, "name": "backup", "priority": 1}]}


def anthropic_provider(sim: SimServer) -> dict[str, Any]:
    return {"protocol": "anthropic", "base_url": sim.root_url, "api_key": "${SIM_KEY}"}


@pytest.fixture(scope="module")
def paced() -> Iterator[SimServer]:
    # Paced, so the first content surely reaches the client before the fault.
    with SimServer(api_key=SIM_KEY, tokens_per_second=100) as server:
        yield server


@pytest.fixture(scope="module")
def gw(sim: SimServer, paced: SimServer, llama_server: LlamaServer) -> Iterator[GatewayProcess]:
    groups: dict[str, Any] = {}
    for fault in MID_ANSWER:
        groups[f"splice-{fault}"] = pair(
            {"provider": "paced", "model": f"s-{fault}@{fault}:after_chunks={CUT_AFTER}"},
            {"provider": "sim", "model": f"s-{fault}-backup"})
        groups[f"cont-{fault}"] = pair(
            {"provider": "paced-ant", "model": f"c-{fault}@{fault}:after_chunks={CUT_AFTER}"},
            {"provider": "ant", "model": f"c-{fault}-backup"})
    groups["cont-stream_error"] = pair(
        {"provider": "paced-ant", "model": f"c-err@stream_error:after_chunks={CUT_AFTER}"},
        {"provider": "ant", "model": "c-err-backup"})
    groups["diverging"] = pair(
        {"provider": "paced", "model": f"d@stream_cut:after_chunks={CUT_AFTER}"},
        {"provider": "sim", "model": "echo-diverging"})  # answers with the prompt: differs
    groups["cut-tool"] = pair(
        {"provider": "paced", "model": "t@stream_cut:after_chunks=2"},
        {"provider": "sim", "model": "t-backup"})
    groups["whole-tool"] = pair(  # the fault comes before the finish: arguments are whole
        {"provider": "paced", "model": "w@stream_cut:after_chunks=99"},
        {"provider": "sim", "model": "w-backup"})
    groups["llama"] = pair(
        {"provider": "paced", "model": f"l@stream_cut:after_chunks={CUT_AFTER}"},
        {"provider": "llamacpp", "model": llama_server.model})
    groups["solo"] = {"deployments": [{"provider": "paced", "model": "solo"}]}
    config = {
        "providers": {
            "sim": sim_provider(sim), "paced": sim_provider(paced),
            "ant": anthropic_provider(sim), "paced-ant": anthropic_provider(paced),
            "llamacpp": {"base_url": llama_server.base_url, "auth": "none",
                         "quirks": {"continuation": "assistant_prefill",
                                    "max_tokens_field": "max_tokens"}},
        },
        "model_groups": groups,
        "resilience": {"timeouts": TIMEOUTS},
        "storage": {"flush_interval_s": 0.05},
    }
    with GatewayProcess(config, env={"SIM_KEY": SIM_KEY}, log_level="DEBUG") as gateway:
        yield gateway


@pytest.fixture(scope="module")
def client(gw: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0, timeout=30)


def sse(gw: GatewayProcess, model: str, **extra: Any) -> list[bytes]:
    body = {"model": model, "messages": USER, "stream": True, **extra}
    raw = httpx.post(gw.base_url + "/chat/completions", json=body, timeout=30).content
    return [e for e in raw.split(b"\n\n") if e]


def chunks(events: list[bytes]) -> list[dict[str, Any]]:
    return [json.loads(e[6:]) for e in events if e != b"data: [DONE]"]


def estimate_cut(sent: str, messages: list[dict[str, Any]] = USER) -> tuple[int, int]:
    """What the gateway charges for an attempt that broke before reporting usage."""
    request = ChatRequest(messages=[Message(m["role"], m["content"]) for m in messages])
    return estimate_input_tokens(request), -(-len(sent) // 4)


def direct_usage(sim: SimServer) -> tuple[int, int]:
    direct = openai.OpenAI(base_url=sim.base_url, api_key=SIM_KEY, max_retries=0)
    usage = None
    for chunk in direct.chat.completions.create(model="x", messages=USER, stream=True,  # type: ignore[call-overload]
                                                stream_options={"include_usage": True}):
        usage = chunk.usage or usage
    assert usage is not None
    return usage.prompt_tokens, usage.completion_tokens


@pytest.mark.parametrize("fault", MID_ANSWER)
def test_splice_finishes_the_stream_byte_exact(
    gw: GatewayProcess, sim: SimServer, fault: str
) -> None:
    started = time.monotonic()
    events = sse(gw, f"splice-{fault}", stream_options={"include_usage": True})
    assert time.monotonic() - started < 15
    assert events[-1] == b"data: [DONE]" and events.count(b"data: [DONE]") == 1
    data = chunks(events)
    assert not any("error" in c for c in data)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in data if c["choices"])
    assert text == DEFAULT_TEXT
    finishes = [ch["finish_reason"] for c in data for ch in c["choices"] if ch.get("finish_reason")]
    assert finishes == ["stop"]
    assert len({c["id"] for c in data}) == 1  # one stream, one id
    roles = [ch["delta"]["role"] for c in data for ch in c["choices"] if "role" in ch["delta"]]
    assert roles == ["assistant"]
    usages = [c["usage"] for c in data if c.get("usage")]
    assert len(usages) == 1
    cut_prompt, cut_completion = estimate_cut(SENT)
    prompt, completion = direct_usage(sim)
    assert usages[0]["prompt_tokens"] == cut_prompt + prompt
    assert usages[0]["completion_tokens"] == cut_completion + completion
    assert "resumed by splice on backup after" in gw.log()


@pytest.mark.parametrize("fault", MID_ANSWER)
def test_splice_through_the_openai_sdk(client: openai.OpenAI, fault: str) -> None:
    stream = client.chat.completions.create(model=f"splice-{fault}", messages=USER,  # type: ignore[call-overload]
                                            stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == DEFAULT_TEXT


@pytest.mark.parametrize("fault", [*MID_ANSWER, "stream_error"])
def test_continuation_on_anthropic(gw: GatewayProcess, sim: SimServer, fault: str) -> None:
    """The backup is asked to continue the prefix: it answers only the rest, and its usage
    says so (a regenerated answer would bill every token again)."""
    events = sse(gw, f"cont-{fault}", stream_options={"include_usage": True})
    assert events[-1] == b"data: [DONE]" and events.count(b"data: [DONE]") == 1
    data = chunks(events)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in data if c["choices"])
    assert text == DEFAULT_TEXT
    usage = [c["usage"] for c in data if c.get("usage")][-1]
    cut_prompt, cut_completion = estimate_cut(SENT)
    rest = count_tokens(DEFAULT_TEXT[len(SENT):])
    assert usage["completion_tokens"] == cut_completion + rest
    assert usage["prompt_tokens"] > cut_prompt + count_tokens(USER[0]["content"])
    assert "resumed by continuation on backup" in gw.log()


def test_continuation_through_the_anthropic_sdk(gw: GatewayProcess) -> None:
    client = anthropic.Anthropic(base_url=gw.root_url, api_key="unused", max_retries=0)
    with client.messages.stream(model="cont-stream_cut", max_tokens=200,
                                messages=USER) as stream:  # type: ignore[arg-type]
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == DEFAULT_TEXT
    assert final.stop_reason == "end_turn"
    rest = count_tokens(DEFAULT_TEXT[len(SENT):])
    assert final.usage.output_tokens == estimate_cut(SENT)[1] + rest


def test_splice_through_the_anthropic_sdk(gw: GatewayProcess) -> None:
    client = anthropic.Anthropic(base_url=gw.root_url, api_key="unused", max_retries=0)
    with client.messages.stream(model="splice-stream_cut", max_tokens=200,
                                messages=USER) as stream:  # type: ignore[arg-type]
        text = "".join(stream.text_stream)
    assert text == DEFAULT_TEXT


def test_responses_dialect_recovers_too(client: openai.OpenAI) -> None:
    done = ""
    deltas = []
    for event in client.responses.create(model="splice-malformed_chunk", input="Say hello.",
                                         stream=True):
        if event.type == "response.output_text.delta":
            deltas.append(event.delta)
        if event.type == "response.completed":
            done = event.response.output_text
        assert event.type not in ("error", "response.failed")
    assert "".join(deltas) == DEFAULT_TEXT == done


def test_continuation_on_a_real_llama_cpp_server(
    gw: GatewayProcess, llama_server: LlamaServer
) -> None:
    """The simulator breaks after three tokens; llama.cpp continues that prefix. The text is
    exactly the prefix plus what llama.cpp answers when asked directly to continue it."""
    direct = openai.OpenAI(base_url=llama_server.base_url, api_key="x", max_retries=0)
    expected = direct.chat.completions.create(
        model=llama_server.model, messages=[*USER, {"role": "assistant", "content": SENT}],  # type: ignore[list-item]
        **LLAMA).choices[0].message.content  # type: ignore[call-overload]
    assert expected
    stream = openai.OpenAI(base_url=gw.base_url, api_key="x", max_retries=0).chat.completions
    text, finishes = "", []
    for chunk in stream.create(model="llama", messages=USER, stream=True, **LLAMA):  # type: ignore[call-overload]
        for choice in chunk.choices:
            text += choice.delta.content or ""
            if choice.finish_reason:
                finishes.append(choice.finish_reason)
    assert text == SENT + expected
    assert finishes == ["length"]
    assert "resumed by continuation on backup" in gw.log()


def test_diverging_answer_ends_with_the_original_failure(gw: GatewayProcess) -> None:
    events = sse(gw, "diverging")
    assert b"data: [DONE]" not in events
    last = json.loads(events[-1][6:])
    assert last["choices"][0]["finish_reason"] == "error"
    assert last["error"]["code"] == "stream_interrupted"
    message = last["error"]["message"]
    assert message.startswith("the upstream failed after the answer had started")
    assert "spliced" not in message.split(":")[1]  # the original failure, not the splice's
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks(events[:-1]))
    assert text == SENT


def test_tool_call_cut_mid_arguments_is_not_resumed(gw: GatewayProcess) -> None:
    events = sse(gw, "cut-tool", tools=TOOLS, tool_choice="required")
    assert b"data: [DONE]" not in events
    last = json.loads(events[-1][6:])
    assert last["error"]["code"] == "stream_interrupted"
    assert "not resumed (a tool call's arguments were half sent)" in gw.log()


def test_tool_call_cut_after_its_arguments_is_spliced(gw: GatewayProcess, sim: SimServer) -> None:
    """Every argument fragment arrived, then the stream broke before its finish: a boundary.
    The backup regenerates the same call, which is swallowed; the client gets its finish."""
    events = sse(gw, "whole-tool", tools=TOOLS, tool_choice="required")
    assert events[-1] == b"data: [DONE]" and b'"error"' not in b"".join(events)
    data = chunks(events)
    fragments = [call for c in data for ch in c["choices"]
                 for call in ch["delta"].get("tool_calls") or ()]
    assert {f.get("index", 0) for f in fragments} == {0}
    assert [f["id"] for f in fragments if f.get("id")] == [fragments[0]["id"]]  # one call
    arguments = "".join(f["function"].get("arguments") or "" for f in fragments)
    direct = openai.OpenAI(base_url=sim.base_url, api_key=SIM_KEY).chat.completions.create(
        model="x", messages=USER, tools=TOOLS, tool_choice="required")  # type: ignore[arg-type]
    calls = direct.choices[0].message.tool_calls
    assert calls and arguments == calls[0].function.arguments  # type: ignore[union-attr]
    finishes = [ch.get("finish_reason") for c in data for ch in c["choices"]
                if ch.get("finish_reason")]
    assert finishes == ["tool_calls"]
    assert "resumed by splice on backup" in gw.log()


def test_same_deployment_resumes_when_it_is_the_only_one(
    gw: GatewayProcess, paced: SimServer
) -> None:
    paced.set_rules([{"fault": "stream_cut", "model": "solo",
                      "params": {"after_chunks": CUT_AFTER}, "times": 1}])
    try:
        events = sse(gw, "solo")
    finally:
        paced.clear_rules()
    assert events[-1] == b"data: [DONE]"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks(events))
    assert text == DEFAULT_TEXT


def test_the_ledger_charges_every_attempt(gw: GatewayProcess, sim: SimServer) -> None:
    sse(gw, "splice-stream_cut", stream_options={"include_usage": True})
    time.sleep(0.5)
    db = sqlite3.connect(gw.db_path)
    try:
        rows = db.execute("SELECT prompt_tokens, completion_tokens, attempts FROM ledger "
                          "WHERE model_group = 'splice-stream_cut' ORDER BY ts DESC LIMIT 1"
                          ).fetchall()
    finally:
        db.close()
    assert rows
    prompt, completion, attempts = rows[0]
    cut_prompt, cut_completion = estimate_cut(SENT)
    direct_prompt, direct_completion = direct_usage(sim)
    assert (prompt, completion) == (cut_prompt + direct_prompt, cut_completion + direct_completion)
    assert [a[0] for a in json.loads(attempts)] == ["primary", "backup"]


def test_official_js_sdks_see_one_stream(gw: GatewayProcess) -> None:
    js = Path(__file__).parent / "js"
    assert (js / "node_modules" / "openai").exists(), "run: npm ci --prefix tests/js"
    result = subprocess.run(["node", str(js / "recovery.mjs"), gw.root_url,
                             "splice-stream_cut", "cont-stream_cut"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout.strip().splitlines()[-1])
    rest = count_tokens(DEFAULT_TEXT[len(SENT):])
    assert got["splice"]["text"] == DEFAULT_TEXT and got["splice"]["finishes"] == ["stop"]
    assert got["continuation"] == {"text": DEFAULT_TEXT, "finishes": ["stop"],
                                   "completionTokens": estimate_cut(SENT)[1] + rest}
    assert got["messages"] == DEFAULT_TEXT and got["messagesStop"] == "end_turn"


def test_zero_config_streams_recover_on_their_one_deployment(paced: SimServer) -> None:
    """No config at all: vendors from the environment, one deployment per model. A flaky
    deployment finishes its own answer — Anthropic by continuation, OpenAI by splice."""
    env = {"OPENAI_BASE_URL": paced.base_url, "OPENAI_API_KEY": SIM_KEY,
           "ANTHROPIC_BASE_URL": paced.root_url, "ANTHROPIC_API_KEY": SIM_KEY}
    paced.set_rules([{"fault": fault, "model": model, "times": 1,
                      "params": {"after_chunks": CUT_AFTER}}
                     for fault, model in (("stream_cut", "zc-oai"), ("stream_error", "zc-ant"))])
    try:
        with GatewayProcess(None, env=env, log_level="DEBUG") as zero:
            client = openai.OpenAI(base_url=zero.base_url, api_key="x", max_retries=0)
            for model in ("openai/zc-oai", "anthropic/zc-ant"):
                stream = client.chat.completions.create(model=model, messages=USER,  # type: ignore[call-overload]
                                                        stream=True)
                assert "".join(c.choices[0].delta.content or "" for c in stream
                               if c.choices) == DEFAULT_TEXT
            log = zero.log()
    finally:
        paced.clear_rules()
    assert "resumed by splice on openai/zc-oai" in log
    assert "resumed by continuation on anthropic/zc-ant" in log
