"""Guardrails, third part (issue 11): tool-call arguments checked by answer hooks, streamed
(by window or held) and whole (openai, anthropic and boto3 clients); a Bedrock Converse
client (boto3) seeing policy refusal and redaction, translated and relayed, streamed and
not; the Responses relay with a redacted stream; and a config reload that changes the
guardrails while a stream is in flight."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import boto3
import openai
import pytest
import yaml
from botocore.config import Config
from botocore.exceptions import ClientError, EventStreamError

from tests.support.gateway import GatewayProcess
from tests.support.policy import MASTER_KEY, admin, ok
from tests.support.sim import SimServer

SECRET = "sk-guardrail-gaps-upstream-71"  # the simulators' key (SigV4 for Bedrock too)
REGION = "us-east-1"
EMAIL = "jane.doe@example.org"
LEAK = f"Sure. Write to {EMAIL} today; that is all I know."
AWS_KEY = "AKIAQ7XK2M4N5P6R8T3W"
# A forced call's arguments come from the schema: the enum puts the key into them.
TOOL = {"type": "function", "function": {
    "name": "store_credentials", "description": "Store credentials.",
    "parameters": {"type": "object", "properties": {
        "access_key": {"type": "string", "enum": [AWS_KEY]},
        "location": {"type": "string"}}, "required": ["location", "access_key"]}}}
FORCED = {"type": "function", "function": {"name": "store_credentials"}}


@pytest.fixture(scope="module")
def sims() -> Iterator[tuple[SimServer, SimServer]]:
    with SimServer(api_key=SECRET, text=LEAK) as leaky, \
            SimServer(api_key=SECRET, text=LEAK, tokens_per_second=200) as paced:
        yield leaky, paced


@pytest.fixture(scope="module")
def gw(sims: tuple[SimServer, SimServer],
       tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    leaky, paced = sims
    tmp = str(tmp_path_factory.mktemp("aws"))
    config = {
        "providers": {
            "sim": {"base_url": leaky.base_url, "api_key": "${SIM_KEY}", "any_model": True},
            "paced": {"base_url": paced.base_url, "api_key": "${SIM_KEY}", "any_model": True},
            "bedrock": {"protocol": "bedrock", "base_url": leaky.root_url,
                        "options": {"region": REGION}, "any_model": True},
            "responses": {"protocol": "openai_responses", "base_url": leaky.base_url,
                          "api_key": "${SIM_KEY}", "any_model": True},
            "anthropic": {"protocol": "anthropic", "base_url": leaky.root_url,
                          "api_key": "${SIM_KEY}", "any_model": True},
        },
        "model_groups": {
            "leaky": {"deployments": [{"provider": "sim", "model": "gpt-4o-mini"}]},
            "paced": {"deployments": [{"provider": "paced", "model": "gpt-4o-mini"}]},
            "leaky-bedrock": {"deployments": [{"provider": "bedrock",
                                               "model": "anthropic.claude-sim-v1:0"}]},
            "leaky-responses": {"deployments": [{"provider": "responses",
                                                 "model": "gpt-4o-mini"}]},
            "leaky-ant": {"deployments": [{"provider": "anthropic",
                                           "model": "claude-sim"}]},
        },
        "guardrails": {
            "no-secrets-inc": {"type": "detectors", "classes": ["secrets"],
                               "stages": ["response"], "stream": "incremental",
                               "window_chars": 16, "scoped": True},
        },
        "auth": {"master_key": "${PR_MASTER}", "refresh_s": 0.2},
        "storage": {"flush_interval_s": 0.05},
    }
    env = {"SIM_KEY": SECRET, "PR_MASTER": MASTER_KEY, "AWS_ACCESS_KEY_ID": "AKIDGAPS",
           "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_EC2_METADATA_DISABLED": "true",
           "AWS_CONFIG_FILE": f"{tmp}/none", "AWS_SHARED_CREDENTIALS_FILE": f"{tmp}/none"}
    with GatewayProcess(config, env=env) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def keys(gw: GatewayProcess) -> dict[str, str]:
    def key(**governance: Any) -> str:
        return str(ok(admin(gw, "POST", "/admin/keys", {"governance": governance}))["key"])

    return {"pii-refuse": key(answer_data_classes={"pii": "refuse"}),
            "pii-redact": key(answer_data_classes={"pii": "redact"}),
            "secrets-refuse": key(answer_data_classes={"secrets": "refuse"}),
            "secrets-redact": key(answer_data_classes={"secrets": "redact"}),
            "secrets-inc": key(guardrails=["no-secrets-inc"]),
            "deny-prompt": key(deny_terms=["WHERE do i write"])}


def _chat_tool_call(gw: GatewayProcess, key: str, stream: bool) -> str:
    """The arguments of the forced tool call, as the openai SDK received them."""
    client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)
    messages: Any = [{"role": "user", "content": "Store my credentials."}]
    if not stream:
        answer = client.chat.completions.create(model="paced", messages=messages,
                                                tools=[TOOL], tool_choice=FORCED)  # type: ignore[list-item,arg-type]
        calls = answer.choices[0].message.tool_calls
        assert calls is not None
        return str(calls[0].function.arguments)  # type: ignore[union-attr]
    parts: list[str] = []
    for chunk in client.chat.completions.create(model="paced", messages=messages,
                                                tools=[TOOL], tool_choice=FORCED,  # type: ignore[list-item,arg-type]
                                                stream=True):
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or ():
                if call.function is not None and call.function.arguments:
                    parts.append(call.function.arguments)
    return "".join(parts)


@pytest.mark.parametrize("stream", [False, True])
def test_a_secret_in_tool_call_arguments_is_caught(gw: GatewayProcess, keys: dict[str, str],
                                                   stream: bool) -> None:
    assert json.loads(_chat_tool_call(gw, keys["pii-refuse"], stream))["access_key"] == AWS_KEY
    for refusing in ("secrets-refuse", "secrets-inc"):  # held, and window by window
        with pytest.raises(openai.APIError) as refused:
            _chat_tool_call(gw, keys[refusing], stream)
        assert "api_key" in str(refused.value), refused.value
    arguments = json.loads(_chat_tool_call(gw, keys["secrets-redact"], stream))
    assert arguments == {"location": "Paris", "access_key": "[API_KEY_1]"}


def _messages_tool_use(gw: GatewayProcess, key: str, stream: bool) -> Any:
    """The forced tool use's input, as the anthropic SDK received it (same-dialect relay)."""
    client = anthropic.Anthropic(base_url=gw.root_url, api_key=key, max_retries=0)
    request: Any = {"model": "leaky-ant", "max_tokens": 300, "messages": [
        {"role": "user", "content": "Store my credentials."}],
        "tools": [{"name": "store_credentials",
                   "input_schema": TOOL["function"]["parameters"]}],  # type: ignore[index]
        "tool_choice": {"type": "tool", "name": "store_credentials"}}
    if not stream:
        reply = client.messages.create(**request)
    else:
        with client.messages.stream(**request) as events:
            reply = events.get_final_message()
    return next(b.input for b in reply.content if b.type == "tool_use")


@pytest.mark.parametrize("stream", [False, True])
def test_an_anthropic_tool_use_with_a_secret_is_caught(
        gw: GatewayProcess, keys: dict[str, str], stream: bool) -> None:
    assert _messages_tool_use(gw, keys["pii-refuse"], stream)["access_key"] == AWS_KEY
    with pytest.raises(anthropic.APIError, match="api_key"):
        _messages_tool_use(gw, keys["secrets-refuse"], stream)
    assert _messages_tool_use(gw, keys["secrets-redact"], stream) == {
        "location": "Paris", "access_key": "[API_KEY_1]"}


def _runtime(gw: GatewayProcess, key: str) -> Any:
    return boto3.client(
        "bedrock-runtime", endpoint_url=gw.root_url, region_name=REGION,
        aws_access_key_id=key, aws_secret_access_key="not-checked-by-polyroute",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}))


def _converse(gw: GatewayProcess, key: str, model: str, stream: bool,
              **extra: Any) -> list[Any]:
    """What the Converse client received: its content blocks' text and tool inputs."""
    client = _runtime(gw, key)
    messages = [{"role": "user", "content": [{"text": "Where do I write?"}]}]
    if not stream:
        answer = client.converse(modelId=model, messages=messages, **extra)
        return [block.get("text", block.get("toolUse", {}).get("input"))
                for block in answer["output"]["message"]["content"]]
    text, tool = [], []
    for event in client.converse_stream(modelId=model, messages=messages, **extra)["stream"]:
        delta = event.get("contentBlockDelta", {}).get("delta", {})
        text.append(delta.get("text", ""))
        tool.append(delta.get("toolUse", {}).get("input", ""))
    return ["".join(text), *([json.loads("".join(tool))] if "".join(tool) else [])]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("model", ["leaky", "leaky-bedrock"])  # translated, relayed
def test_a_converse_client_sees_refusal_and_redaction(
        gw: GatewayProcess, keys: dict[str, str], model: str, stream: bool) -> None:
    assert _converse(gw, keys["secrets-refuse"], model, stream) == [LEAK]
    with pytest.raises((ClientError, EventStreamError)) as refused:
        _converse(gw, keys["pii-refuse"], model, stream)
    error = refused.value.response["Error"]
    assert "email" in error["Message"], error
    assert error["Code"] in ("AccessDeniedException", "ValidationException"), error
    redacted = _converse(gw, keys["pii-redact"], model, stream)
    assert redacted == [LEAK.replace(EMAIL, "[EMAIL_1]")]
    with pytest.raises((ClientError, EventStreamError)) as denied:  # the prompt, before routing
        _converse(gw, keys["deny-prompt"], model, stream)
    assert "denied term" in denied.value.response["Error"]["Message"]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("model", ["leaky", "leaky-bedrock"])  # translated, relayed
def test_a_converse_tool_use_with_a_secret_is_caught(gw: GatewayProcess, keys: dict[str, str],
                                                     model: str, stream: bool) -> None:
    tools = {"tools": [{"toolSpec": {"name": "store_credentials",
                                     "inputSchema": {"json": TOOL["function"]["parameters"]}}}],
             "toolChoice": {"any": {}}}
    with pytest.raises((ClientError, EventStreamError)) as refused:
        _converse(gw, keys["secrets-refuse"], model, stream, toolConfig=tools)
    assert "api_key" in refused.value.response["Error"]["Message"]
    got = _converse(gw, keys["secrets-redact"], model, stream, toolConfig=tools)
    assert {"location": "Paris", "access_key": "[API_KEY_1]"} in got


@pytest.mark.parametrize("stream", [False, True])
def test_the_responses_relay_with_a_redacted_answer(gw: GatewayProcess, keys: dict[str, str],
                                                    stream: bool) -> None:
    client = openai.OpenAI(base_url=gw.base_url, api_key=keys["pii-redact"], max_retries=0)
    if not stream:
        text = client.responses.create(model="leaky-responses", input="hi").output_text
    else:
        events = list(client.responses.create(model="leaky-responses", input="hi",
                                              stream=True))
        text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
        done = [e for e in events if e.type == "response.output_text.done"]
        assert events[-1].type == "response.completed"
        assert [e.text for e in done] == [text]
    assert text == LEAK.replace(EMAIL, "[EMAIL_1]")


# -- a reload rebuilds the guardrails -------------------------------------------------------

def _reload_config(sim: SimServer, term: str, named: bool) -> dict[str, Any]:
    guardrails: dict[str, Any] = {f"deny-{term}": {
        "type": "deny_terms", "terms": [term], "stages": ["request", "response"],
        "window_chars": 16}}
    if named:  # runs only where a policy names it
        guardrails["named"] = {"type": "max_chars", "max_chars": 10, "stages": ["request"],
                               "scoped": True}
    return {
        "providers": {"sim": {"base_url": sim.base_url, "api_key": "${SIM_KEY}"}},
        "model_groups": {"chat": {"deployments": [{"provider": "sim", "model": "echo"}]}},
        "guardrails": guardrails,
        "auth": {"master_key": "${PR_MASTER}", "refresh_s": 0.2},
        "storage": {"flush_interval_s": 0.05},
    }


def _wait_for_log(gw: GatewayProcess, text: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in gw.log():
        assert time.monotonic() < deadline, gw.log()[-3000:]
        time.sleep(0.02)


def test_a_reload_changes_the_guardrails_and_streams_in_flight_keep_theirs(
        tmp_path: Path) -> None:
    with SimServer(api_key=SECRET, tokens_per_second=20) as sim, \
            GatewayProcess(_reload_config(sim, "alpha", named=True),
                           env={"SIM_KEY": SECRET, "PR_MASTER": MASTER_KEY},
                           tmp=tmp_path) as gw:
        plain = ok(admin(gw, "POST", "/admin/keys", {}))["key"]
        naming = ok(admin(gw, "POST", "/admin/keys",
                          {"governance": {"guardrails": ["named"]}}))["key"]
        client = openai.OpenAI(base_url=gw.base_url, api_key=plain, max_retries=0)

        def ask(text: str, by: openai.OpenAI = client) -> str:
            answer = by.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": text}])
            return str(answer.choices[0].message.content)

        named = openai.OpenAI(base_url=gw.base_url, api_key=naming, max_retries=0)
        with pytest.raises(openai.PermissionDeniedError, match="deny-alpha"):
            ask("say alpha")
        with pytest.raises(openai.PermissionDeniedError, match="'named'"):
            ask("a prompt longer than ten characters", named)
        assert ask("say beta") == "say beta"
        # A stream whose answer holds 'beta' starts under the old guardrails…
        words = [f"word{i}" for i in range(30)] + ["beta"]  # ~1.5 s at 20 tokens a second
        stream = client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": " ".join(words)}],
            stream=True)
        received = [next(iter(stream)).choices[0].delta.content or ""]
        # …the reload lands while it streams…
        gw.config_path.write_text(yaml.safe_dump(_reload_config(sim, "beta", named=False)))
        os.kill(gw.proc.pid, signal.SIGHUP)
        _wait_for_log(gw, "config reloaded")
        # …and it finishes on the guardrails it started with.
        rest = [c.choices[0].delta.content or "" for c in stream if c.choices]
        assert "beta" in "".join(rest) and "".join(received + rest) == " ".join(words)
        with pytest.raises(openai.PermissionDeniedError, match="deny-beta"):
            ask("say beta")
        assert ask("say alpha") == "say alpha"
        # The policy's guardrail is gone: its scope fails closed, and no policy may name it.
        with pytest.raises(openai.InternalServerError, match="'named'") as closed:
            ask("hi", named)
        assert closed.value.status_code == 503
        code, answer = admin(gw, "POST", "/admin/keys", {"governance": {"guardrails": ["named"]}})
        assert code == 400 and "'named'" in answer["error"]["message"], answer
