"""The model families a Bedrock batch inference job runs (Anthropic, Amazon Nova, Meta Llama 3):
which family a model id is of, each family's record body as its InvokeModel reference
describes it, and each family's ``modelOutput`` read back into OpenAI's output lines with
their usage. Pure functions; the simulator and a gateway run them in
``test_bedrock_batch_sim.py`` and ``test_bedrock_batches.py``."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from polyroute.adapters.bedrock_converse.families import (
    ANTHROPIC,
    LLAMA3,
    NOVA,
    family_of,
    known_families,
)
from polyroute.adapters.bedrock_converse.invoke import llama_prompt
from polyroute.engine.batch_translation import bedrock_results, record_id, to_bedrock
from polyroute.errors import InvalidRequest
from polyroute.model.chat import Message
from polyroute.model.upstream import Deployment, Endpoint


def deployment(model: str) -> Deployment:
    return Deployment(name="aws", model=model, vendor="bedrock", endpoint=Endpoint(
        vendor="bedrock", protocol="bedrock",
        base_url="https://bedrock-runtime.us-east-1.amazonaws.com", headers={}))


def line(body: dict[str, Any], custom_id: str = "q1") -> dict[str, Any]:
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": "group", **body}}


CHAT = {"messages": [{"role": "system", "content": "Be brief."},
                     {"role": "user", "content": "Hi?"},
                     {"role": "assistant", "content": "Hello."},
                     {"role": "user", "content": [{"type": "text", "text": "Why?"}]}],
        "max_tokens": 50, "temperature": 0.2, "top_p": 0.9}


@pytest.mark.parametrize(("model", "family"), [
    ("anthropic.claude-3-5-haiku-20241022-v1:0", ANTHROPIC),
    ("us.anthropic.claude-sonnet-4-20250514-v1:0", ANTHROPIC),
    ("amazon.nova-lite-v1:0", NOVA),
    ("eu.amazon.nova-pro-v1:0", NOVA),
    ("arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-micro-v1:0", NOVA),
    ("arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.meta.llama3-3-70b-instruct-v1:0",
     LLAMA3),
    ("meta.llama3-1-8b-instruct-v1:0", LLAMA3),
    ("amazon.nova-canvas-v1:0", None),  # an image model
    ("amazon.titan-text-express-v1", None),
    ("meta.llama4-scout-17b-instruct-v1:0", None),  # another chat template
    ("mistral.mistral-large-2407-v1:0", None),
])
def test_the_family_is_read_from_the_model_id(model: str, family: object) -> None:
    assert family_of(model) is family


def test_the_known_families_are_named_for_errors() -> None:
    named = known_families()
    assert "Amazon Nova (amazon.nova-micro…" in named and "Meta Llama 3 (meta.llama3…)" in named


def test_a_nova_record_is_a_messages_v1_body() -> None:
    [record] = to_bedrock([line({**CHAT, "stop": ["END"], "top_k": 5})],
                          deployment("amazon.nova-lite-v1:0"), NOVA, None)
    body = record["modelInput"]
    assert record["recordId"] == record_id(1) == "R0000000001"
    assert body == {
        "schemaVersion": "messages-v1",
        "system": [{"text": "Be brief."}],
        "messages": [{"role": "user", "content": [{"text": "Hi?"}]},
                     {"role": "assistant", "content": [{"text": "Hello."}]},
                     {"role": "user", "content": [{"text": "Why?"}]}],
        "inferenceConfig": {"maxTokens": 50, "temperature": 0.2, "topP": 0.9,
                            "stopSequences": ["END"], "topK": 5},
    }


def test_a_nova_record_keeps_tools_and_refuses_what_nova_has_not() -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    [record] = to_bedrock([line({**CHAT, "tools": [tool], "tool_choice": "required"})],
                          deployment("amazon.nova-pro-v1:0"), NOVA, None)
    assert record["modelInput"]["toolConfig"] == {
        "tools": [{"toolSpec": {"name": "f", "inputSchema": {"json": {"type": "object"}}}}],
        "toolChoice": {"any": {}}}
    with pytest.raises(InvalidRequest) as refused:
        to_bedrock([line(CHAT), line({**CHAT, "thinking": {"type": "enabled",
                                                          "budget_tokens": 1024}}, "q2")],
                   deployment("amazon.nova-pro-v1:0"), NOVA, None)
    assert refused.value.message.startswith("line 2 of the batch file")
    assert "'thinking'" in refused.value.message and refused.value.param == "file"


def test_a_llama_record_is_a_prompt_in_llama_3s_chat_template() -> None:
    [record] = to_bedrock([line({"messages": CHAT["messages"]})],
                          deployment("meta.llama3-1-8b-instruct-v1:0"), LLAMA3, 300)
    assert record["modelInput"] == {
        "prompt": "<|begin_of_text|>"
                  "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
                  "<|start_header_id|>user<|end_header_id|>\n\nHi?<|eot_id|>"
                  "<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>"
                  "<|start_header_id|>user<|end_header_id|>\n\nWhy?<|eot_id|>"
                  "<|start_header_id|>assistant<|end_header_id|>\n\n",
        "max_gen_len": 300}  # the reservation's cap on a line without a limit
    [tuned] = to_bedrock([line(CHAT)], deployment("meta.llama3-1-8b-instruct-v1:0"), LLAMA3,
                         None)
    assert {k: v for k, v in tuned["modelInput"].items() if k != "prompt"} == {
        "max_gen_len": 50, "temperature": 0.2, "top_p": 0.9}


def test_a_final_assistant_turn_is_left_open_for_llama_to_continue() -> None:
    prompt = llama_prompt([Message(role="user", content="Count"),
                           Message(role="assistant", content="1, 2,")], "aws")
    assert prompt.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n1, 2,")


@pytest.mark.parametrize(("extra", "named"), [
    ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "'tools'"),
    ({"stop": "END"}, "'stop'"),
    ({"response_format": {"type": "json_object"}}, "'response_format'"),
    ({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}]},
     "messages[0].content[0]"),
    ({"messages": [{"role": "user", "content": "x"},
                   {"role": "tool", "tool_call_id": "c1", "content": "42"}]}, "messages[1]"),
])
def test_what_a_llama_prompt_cannot_hold_is_refused_naming_the_line(
        extra: dict[str, Any], named: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        to_bedrock([line({**CHAT, **extra})], deployment("meta.llama3-8b-instruct-v1:0"),
                   LLAMA3, None)
    assert refused.value.message.startswith("line 1 of the batch file")
    assert named in refused.value.message and "Llama on Bedrock" in refused.value.message


def out_file(*items: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(item).encode() + b"\n" for item in items)


def test_nova_outputs_become_openai_answers_with_their_usage() -> None:
    content = out_file(
        {"recordId": "R0000000001", "modelInput": {}, "modelOutput": {
            "output": {"message": {"role": "assistant", "content": [{"text": "Because."}]}},
            "stopReason": "end_turn", "usage": {"inputTokens": 12, "outputTokens": 3,
                                                "totalTokens": 35,
                                                "cacheReadInputTokenCount": 20}}},
        {"recordId": "R0000000002", "modelInput": {}, "modelOutput": {
            "output": {"message": {"role": "assistant", "content": [
                {"toolUse": {"toolUseId": "t1", "name": "f", "input": {"a": 1}}}]}},
            "stopReason": "tool_use", "usage": {"inputTokens": 5, "outputTokens": 4}}},
        {"recordId": "R0000000003", "modelInput": {},
         "error": {"errorCode": 400, "errorMessage": "Malformed input request"}})
    outputs, errors, usage, answered = bedrock_results(
        content, ["a", "b", "c"], deployment("amazon.nova-lite-v1:0"), NOVA)
    first, second = (msgspec.json.decode(o) for o in outputs)
    assert first["custom_id"] == "a" and first["response"]["status_code"] == 200
    body = first["response"]["body"]
    assert body["object"] == "chat.completion" and body["model"] == "amazon.nova-lite-v1:0"
    assert body["choices"][0]["message"]["content"] == "Because."
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["prompt_tokens"] == 32  # cache reads are prompt tokens
    assert body["usage"]["prompt_tokens_details"]["cached_tokens"] == 20
    call = second["response"]["body"]["choices"][0]
    assert call["finish_reason"] == "tool_calls"
    assert call["message"]["tool_calls"][0]["function"] == {"name": "f",
                                                            "arguments": '{"a":1}'}
    [error] = (msgspec.json.decode(e) for e in errors)
    assert error["custom_id"] == "c" and error["response"]["status_code"] == 400
    assert error["response"]["body"]["error"]["message"] == "Malformed input request"
    assert answered == 2
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens) == (37, 7, 20)


def test_llama_outputs_become_openai_answers_and_a_foreign_shape_an_error_line() -> None:
    content = out_file(
        {"recordId": "R0000000001", "modelOutput": {
            "generation": "Because.", "prompt_token_count": 30, "generation_token_count": 4,
            "stop_reason": "stop"}},
        {"recordId": "R0000000002", "modelOutput": {
            "generation": "Becau", "prompt_token_count": 30, "generation_token_count": 2,
            "stop_reason": "length"}},
        {"recordId": "R0000000003", "modelOutput": {"results": [{"outputText": "?"}]}})
    outputs, errors, usage, answered = bedrock_results(
        content, ["a", "b", "c"], deployment("meta.llama3-8b-instruct-v1:0"), LLAMA3)
    bodies = [msgspec.json.decode(o)["response"]["body"] for o in outputs]
    assert [b["choices"][0]["finish_reason"] for b in bodies] == ["stop", "length"]
    assert bodies[0]["choices"][0]["message"] == {"role": "assistant", "content": "Because."}
    assert bodies[0]["usage"] == {"prompt_tokens": 30, "completion_tokens": 4,
                                  "total_tokens": 34}
    [error] = errors
    assert b"no generation" in error and b'"custom_id":"c"' in error
    assert answered == 2 and (usage.prompt_tokens, usage.completion_tokens) == (60, 6)


def test_anthropic_outputs_keep_their_cache_writes() -> None:
    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
               "content": [{"type": "text", "text": "Hi."}], "stop_reason": "end_turn",
               "usage": {"input_tokens": 10, "output_tokens": 2,
                         "cache_creation_input_tokens": 100, "cache_read_input_tokens": 0}}
    outputs, errors, usage, answered = bedrock_results(
        out_file({"recordId": "R0000000001", "modelOutput": message}), ["a"],
        deployment("anthropic.claude-3-5-haiku-20241022-v1:0"), ANTHROPIC)
    assert answered == 1 and not errors
    assert msgspec.json.decode(outputs[0])["response"]["request_id"] == "msg_1"
    assert (usage.prompt_tokens, usage.cache_creation_tokens) == (110, 100)
