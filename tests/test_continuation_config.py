"""quirks.continuation: the protocols that continue a prefill by themselves, the known vendors
discovery fills in, an explicit setting, and the request each style sends."""

from __future__ import annotations

import json

import msgspec
import pytest

from polyroute.adapters.openai_chat.translate import chat_body
from polyroute.config import load_config
from polyroute.config.compiled import Quirks
from polyroute.config.load import ConfigError
from polyroute.model.chat import ChatRequest, Message


def test_discovery_fills_in_known_vendors() -> None:
    env = {"ANTHROPIC_API_KEY": "a" * 12, "MISTRAL_API_KEY": "m" * 12,
           "OPENAI_API_KEY": "o" * 12, "DEEPSEEK_API_KEY": "d" * 12,
           "LLAMACPP_BASE_URL": "http://127.0.0.1:9/v1", "VLLM_BASE_URL": "http://127.0.0.1:9/v1",
           "AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "s", "AWS_REGION": "us-east-1"}
    vendors = load_config(None, env).open_vendors
    assert {name: e.quirks.continuation for name, e in vendors.items()} == {
        "anthropic": "assistant_prefill", "bedrock": "assistant_prefill",
        "llamacpp": "assistant_prefill", "vllm": "continue_final_message", "mistral": "prefix",
        "openai": "none", "deepseek": "none"}


def write(tmp_path: object, text: str) -> str:
    path = f"{tmp_path}/polyroute.yaml"
    with open(path, "w") as f:
        f.write(text)
    return path


def test_protocol_default_and_explicit_setting(tmp_path: object) -> None:
    config = load_config(write(tmp_path, """
providers:
  claude: {protocol: anthropic, base_url: "http://127.0.0.1:9", any_model: true, auth: none}
  plain: {base_url: "http://127.0.0.1:9/v1", any_model: true}
  deepseek-beta: {base_url: "http://127.0.0.1:9/beta", any_model: true,
                  quirks: {continuation: prefix}}
  no-prefill: {protocol: anthropic, base_url: "http://127.0.0.1:9", any_model: true,
               auth: none, quirks: {continuation: none}}
discover_from_env: false
"""), {})
    assert {n: e.quirks.continuation for n, e in config.open_vendors.items()} == {
        "claude": "assistant_prefill", "plain": "none", "deepseek-beta": "prefix",
        "no-prefill": "none"}


def test_an_unknown_style_is_refused(tmp_path: object) -> None:
    with pytest.raises(ConfigError, match="continuation"):
        load_config(write(tmp_path, """
providers:
  p: {base_url: "http://127.0.0.1:9/v1", quirks: {continuation: maybe}}
discover_from_env: false
"""), {})


def request(passthrough: bool) -> ChatRequest:
    messages = [Message("user", "Hi"), Message("assistant", "Hello the")]
    raw = {"messages": msgspec.Raw(b'[{"role": "user", "content": "Hi", "name": "u"}]'),
           "logprobs": msgspec.Raw(b"true")} if passthrough else None
    return ChatRequest(messages=messages, stream=True, continue_final=True, passthrough=raw)


@pytest.mark.parametrize("passthrough", [False, True])
@pytest.mark.parametrize(("style", "final", "extra"), [
    ("assistant_prefill", {"role": "assistant", "content": "Hello the"}, {}),
    ("prefix", {"role": "assistant", "content": "Hello the", "prefix": True}, {}),
    ("continue_final_message", {"role": "assistant", "content": "Hello the"},
     {"continue_final_message": True, "add_generation_prompt": False}),
])
def test_each_style_on_the_wire(passthrough: bool, style: str, final: dict[str, object],
                                extra: dict[str, object]) -> None:
    body = json.loads(chat_body(request(passthrough), "m", Quirks(continuation=style)))
    assert body["messages"][-1] == final and len(body["messages"]) == 2
    assert "$polyroute.continue_final" not in body
    for key, value in extra.items():
        assert body[key] == value
    if passthrough:  # the client's own fields survive verbatim
        assert body["messages"][0] == {"role": "user", "content": "Hi", "name": "u"}
        assert body["logprobs"] is True
