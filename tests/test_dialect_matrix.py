"""Every inbound dialect × every upstream protocol, on the same conversation: text, a tool-call
round trip, an image, usage. The clients are the vendors' own SDKs (openai for Chat
Completions and Responses, anthropic for Messages, boto3 for Bedrock's Converse); the
upstreams are the simulator speaking OpenAI, Azure OpenAI, OpenAI's Responses API, Anthropic,
Gemini and Bedrock (SigV4-signed, eventstream)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import boto3
import openai
import pytest
from botocore.config import Config

from tests.support.gateway import GatewayProcess
from tests.support.sim import SimServer

KEY = "sk-matrix-upstream-secret-42"
PROTOCOLS = ["openai", "azure", "anthropic", "gemini", "bedrock", "openai_responses"]
DIALECTS = ["chat", "messages", "responses", "converse"]
PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJ"
       "RU5ErkJggg==")
WEATHER = {"name": "get_weather", "description": "Weather at a place.",
           "parameters": {"type": "object", "properties": {"location": {"type": "string"}},
                          "required": ["location"]}}
TEXT = "Bonjour — สวัสดี — 你好 👋"


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with SimServer(api_key=KEY) as server:
        yield server


@pytest.fixture(scope="module")
def gw(sim: SimServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    root = sim.root_url
    providers = {
        "openai": {"base_url": sim.base_url, "api_key": "${KEY}"},
        "azure": {"protocol": "azure", "base_url": root, "api_key": "${KEY}"},
        "anthropic": {"protocol": "anthropic", "base_url": root, "api_key": "${KEY}"},
        "gemini": {"protocol": "gemini", "base_url": root, "api_key": "${KEY}"},
        "bedrock": {"protocol": "bedrock", "base_url": root, "region": "us-east-1"},
        "openai_responses": {"protocol": "openai_responses", "base_url": sim.base_url,
                             "api_key": "${KEY}"},
    }
    groups = {}
    for name in PROTOCOLS:
        groups[f"{name}-echo"] = {"deployments": [{"provider": name, "model": "echo"}]}
        groups[f"{name}-model"] = {"deployments": [{"provider": name, "model": "sim-model"}]}
    tmp = tmp_path_factory.mktemp("aws")
    env = {"KEY": KEY, "AWS_ACCESS_KEY_ID": "AKIDMATRIX", "AWS_SECRET_ACCESS_KEY": KEY,
           "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": f"{tmp}/none",
           "AWS_SHARED_CREDENTIALS_FILE": f"{tmp}/none"}
    with GatewayProcess({"providers": providers, "model_groups": groups}, env=env) as gateway:
        yield gateway
        assert KEY not in gateway.log()


@dataclass
class Reply:
    text: str
    tool: tuple[str, str, dict[str, Any]] | None  # (call id, name, arguments)
    input_tokens: int
    output_tokens: int


class Client:
    """One dialect's way to ask, normalised to a Reply."""

    def __init__(self, dialect: str, gw: GatewayProcess) -> None:
        self.dialect = dialect
        self.oai = openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)
        self.ant = anthropic.Anthropic(base_url=gw.root_url, api_key="unused", max_retries=0)
        self.root_url = gw.root_url

    def ask(self, model: str, text: str, *, image: bool = False, tools: bool = False,
            tool_result: tuple[str, str, dict[str, Any]] | None = None) -> Reply:
        return getattr(self, f"_{self.dialect}")(model, text, image, tools, tool_result)

    def _chat(self, model: str, text: str, image: bool, tools: bool,
              result: tuple[str, str, dict[str, Any]] | None) -> Reply:
        content: Any = text if not image else [
            {"type": "text", "text": text},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]
        messages: list[Any] = [{"role": "user", "content": content}]
        if result is not None:
            call_id, name, args = result
            messages += [
                {"role": "assistant", "tool_calls": [{"id": call_id, "type": "function",
                 "function": {"name": name, "arguments": json.dumps(args)}}]},
                {"role": "tool", "tool_call_id": call_id, "content": "sunny, 21 C"}]
        kw: dict[str, Any] = {}
        if tools or result is not None:
            kw["tools"] = [{"type": "function", "function": WEATHER}]
        if tools:
            kw["tool_choice"] = "required"
        r = self.oai.chat.completions.create(model=model, messages=messages, max_tokens=200,
                                             **kw)
        message = r.choices[0].message
        tool = None
        if message.tool_calls:
            call = message.tool_calls[0]
            tool = (call.id, call.function.name, json.loads(call.function.arguments))  # type: ignore[union-attr]
        assert r.usage is not None
        return Reply(message.content or "", tool, r.usage.prompt_tokens, r.usage.completion_tokens)

    def _messages(self, model: str, text: str, image: bool, tools: bool,
                  result: tuple[str, str, dict[str, Any]] | None) -> Reply:
        content: Any = text if not image else [
            {"type": "text", "text": text},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": PNG}}]
        messages: list[Any] = [{"role": "user", "content": content}]
        if result is not None:
            call_id, name, args = result
            messages += [
                {"role": "assistant", "content": [{"type": "tool_use", "id": call_id,
                                                   "name": name, "input": args}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call_id,
                                              "content": "sunny, 21 C"}]}]
        kw: dict[str, Any] = {}
        if tools or result is not None:
            kw["tools"] = [{"name": WEATHER["name"], "description": WEATHER["description"],
                            "input_schema": WEATHER["parameters"]}]
        if tools:
            kw["tool_choice"] = {"type": "any"}
        r = self.ant.messages.create(model=model, messages=messages, max_tokens=200, **kw)
        texts = [b.text for b in r.content if b.type == "text"]
        uses = [b for b in r.content if b.type == "tool_use"]
        tool = (uses[0].id, uses[0].name, dict(uses[0].input)) if uses else None  # type: ignore[arg-type]
        return Reply("".join(texts), tool, r.usage.input_tokens, r.usage.output_tokens)

    def _responses(self, model: str, text: str, image: bool, tools: bool,
                   result: tuple[str, str, dict[str, Any]] | None) -> Reply:
        content: Any = text if not image else [
            {"type": "input_text", "text": text},
            {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}"}]
        items: list[Any] = [{"role": "user", "content": content}]
        if result is not None:
            call_id, name, args = result
            items += [
                {"type": "function_call", "call_id": call_id, "name": name,
                 "arguments": json.dumps(args)},
                {"type": "function_call_output", "call_id": call_id, "output": "sunny, 21 C"}]
        kw: dict[str, Any] = {}
        if tools or result is not None:
            kw["tools"] = [{"type": "function", **WEATHER}]
        if tools:
            kw["tool_choice"] = "required"
        r = self.oai.responses.create(model=model, input=items, max_output_tokens=200, **kw)
        calls = [o for o in r.output if o.type == "function_call"]
        tool = (calls[0].call_id, calls[0].name, json.loads(calls[0].arguments)) if calls else None
        assert r.usage is not None
        return Reply(r.output_text, tool, r.usage.input_tokens, r.usage.output_tokens)


    def _converse(self, model: str, text: str, image: bool, tools: bool,
                  result: tuple[str, str, dict[str, Any]] | None) -> Reply:
        client = boto3.client(
            "bedrock-runtime", endpoint_url=self.root_url, region_name="us-east-1",
            aws_access_key_id="unused", aws_secret_access_key="unused",
            config=Config(retries={"max_attempts": 1, "mode": "standard"}))
        content: list[Any] = [{"text": text}]
        if image:
            content.append({"image": {"format": "png",
                                      "source": {"bytes": base64.b64decode(PNG)}}})
        messages: list[Any] = [{"role": "user", "content": content}]
        if result is not None:
            call_id, name, args = result
            messages += [
                {"role": "assistant", "content": [{"toolUse": {
                    "toolUseId": call_id, "name": name, "input": args}}]},
                {"role": "user", "content": [{"toolResult": {
                    "toolUseId": call_id, "content": [{"text": "sunny, 21 C"}]}}]}]
        kw: dict[str, Any] = {}
        if tools or result is not None:
            kw["toolConfig"] = {"tools": [{"toolSpec": {
                "name": WEATHER["name"], "description": WEATHER["description"],
                "inputSchema": {"json": WEATHER["parameters"]}}}]}
        if tools:
            kw["toolConfig"]["toolChoice"] = {"any": {}}
        r = client.converse(modelId=model, messages=messages,
                            inferenceConfig={"maxTokens": 200}, **kw)
        blocks = r["output"]["message"]["content"]
        uses = [b["toolUse"] for b in blocks if "toolUse" in b]
        tool = (uses[0]["toolUseId"], uses[0]["name"], dict(uses[0]["input"])) if uses else None
        usage = r["usage"]
        return Reply("".join(b.get("text", "") for b in blocks), tool, usage["inputTokens"],
                     usage["outputTokens"])


@pytest.fixture(params=DIALECTS)
def client(request: pytest.FixtureRequest, gw: GatewayProcess) -> Client:
    return Client(request.param, gw)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_same_conversation_everywhere(client: Client, protocol: str) -> None:
    # Text, byte-exact through both translations (the echo model answers with the prompt).
    reply = client.ask(f"{protocol}-echo", TEXT)
    assert reply.text == TEXT
    assert reply.input_tokens > 0 and reply.output_tokens > 0
    # A tool call, then its result, answered in text.
    call = client.ask(f"{protocol}-model", "What is the weather in Paris?", tools=True).tool
    assert call is not None
    call_id, name, args = call
    assert name == "get_weather" and isinstance(args.get("location"), str) and call_id
    after = client.ask(f"{protocol}-model", "What is the weather in Paris?",
                       tool_result=call)
    assert after.tool is None and after.text
    # An image part reaches the upstream and the answer comes back.
    assert client.ask(f"{protocol}-model", "Describe this image.", image=True).text


def test_matrix_is_complete() -> None:
    # 4 dialects × 6 protocols: a new protocol or dialect must join the matrix.
    from polyroute.adapters.registry import PROTOCOLS as REGISTERED

    assert sorted(REGISTERED) == sorted(PROTOCOLS)


