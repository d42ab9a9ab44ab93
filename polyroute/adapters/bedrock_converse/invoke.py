"""InvokeModel bodies and answers of the model families a Bedrock batch inference job runs
(a job's records are InvokeModel bodies, one family's each): pure functions, no I/O.

    family      record body (``modelInput``)                 answer (``modelOutput``)
    Anthropic   Messages body + anthropic_version            Messages answer
    Nova        messages-v1: schemaVersion, system[],        output.message.content[],
                messages[] of content blocks,                stopReason, usage{inputTokens,
                inferenceConfig{maxTokens, temperature,      outputTokens, cacheRead/Write
                topP, topK, stopSequences}, toolConfig       InputTokenCount}
    Llama 3     prompt (Llama 3's chat template),            generation, prompt_token_count,
                max_gen_len, temperature, top_p              generation_token_count, stop_reason

Which family a model id is of is :mod:`.families`' table."""

from __future__ import annotations

from typing import Any

import msgspec

from polyroute.adapters import rejections
from polyroute.adapters.anthropic_messages import translate as anthropic
from polyroute.adapters.bedrock_converse import translate as converse
from polyroute.adapters.support import Support, check_supported
from polyroute.errors import UpstreamProtocolError
from polyroute.model.chat import ChatRequest, ChatResponse, Choice, Message
from polyroute.model.upstream import Deployment
from polyroute.model.usage import Usage

_decode = msgspec.json.Decoder(dict[str, Any]).decode
_encode = msgspec.json.Encoder().encode

# -- Anthropic ---------------------------------------------------------------------------------
ANTHROPIC_VERSION = "bedrock-2023-05-31"
_NOT_ON_BEDROCK = frozenset({"model", "metadata", "stream"})
"""The job names the model; Bedrock's Anthropic body has no ``metadata`` (the end user's id
from ``user``: "extraneous key [metadata] is not permitted") and a record is not streamed."""


def anthropic_body(request: ChatRequest, deployment: Deployment) -> dict[str, Any]:
    params = _decode(anthropic.chat_body(request, deployment.model, deployment.endpoint.quirks,
                                         deployment.name))
    body = {key: value for key, value in params.items() if key not in _NOT_ON_BEDROCK}
    body["anthropic_version"] = ANTHROPIC_VERSION
    return body


def anthropic_answer(output: dict[str, Any], record_id: str, deployment: str,
                     created: int) -> ChatResponse:
    if output.get("type") != "message":
        raise UpstreamProtocolError("the record's output is not a message",
                                    deployment=deployment)
    return anthropic.parse_response(_encode(output), deployment, created)


# -- Amazon Nova (messages-v1) ----------------------------------------------------------------
NOVA_SCHEMA = "messages-v1"
_NOVA_CACHE_COUNTS = {"cacheReadInputTokenCount": "cacheReadInputTokens",
                      "cacheWriteInputTokenCount": "cacheWriteInputTokens"}
"""Nova's InvokeModel names for what Converse calls ``cacheRead/WriteInputTokens``."""


def nova_body(request: ChatRequest, deployment: Deployment) -> dict[str, Any]:
    """Converse's body is Nova's InvokeModel body but for the schema version, ``topK`` (a
    top-level inference parameter here, not an additional field) and the fields Nova's
    InvokeModel does not take."""
    name = deployment.name
    if request.thinking is not None:
        raise rejections.unsupported("Nova on Bedrock", "thinking", name,
                                     "it is Anthropic's extended thinking")
    if request.response_format is not None and request.response_format.type != "text":
        raise rejections.unsupported("Nova on Bedrock batches", "response_format", name,
                                     "ask for JSON in the prompt")
    body = _decode(converse.chat_body(request, deployment.endpoint.quirks, name))
    extra = body.pop("additionalModelRequestFields", {})
    if "top_k" in extra:
        body.setdefault("inferenceConfig", {})["topK"] = extra["top_k"]
    return {"schemaVersion": NOVA_SCHEMA, **body}


def nova_answer(output: dict[str, Any], record_id: str, deployment: str,
                created: int) -> ChatResponse:
    usage = output.get("usage")
    if isinstance(usage, dict):
        output = {**output, "usage": {_NOVA_CACHE_COUNTS.get(k, k): v
                                      for k, v in usage.items()}}
    return converse.parse_response(_encode(output), "", f"batch-{record_id}", deployment,
                                   created)


# -- Meta Llama 3 ------------------------------------------------------------------------------
LLAMA_SUPPORT = Support(
    vendor="Llama on Bedrock",
    mapped=frozenset({"messages", "model", "max_tokens", "max_completion_tokens",
                      "temperature", "top_p", "user"}),
    why={"tools": "its InvokeModel body is a prompt, with no tool definitions",
         "stop": "its InvokeModel body has no stop sequences",
         "response_format": "ask for JSON in the prompt"},
    typed=("n", "seed", "presence_penalty", "frequency_penalty", "reasoning_effort", "tools",
           "tool_choice", "stop", "response_format", "logprobs", "top_k", "thinking"),
)
"""What a Llama record can carry: text turns and three sampling parameters."""
_LLAMA_ROLES = {"system": "system", "developer": "system", "user": "user",
                "assistant": "assistant"}
_LLAMA_FINISH = {"stop": "stop", "length": "length"}


def llama_body(request: ChatRequest, deployment: Deployment) -> dict[str, Any]:
    name, quirks = deployment.name, deployment.endpoint.quirks
    check_supported(request, LLAMA_SUPPORT, quirks.drop_params, name)
    body: dict[str, Any] = {"prompt": llama_prompt(request.messages, name)}
    limit = request.max_completion_tokens or request.max_tokens or quirks.default_max_tokens
    if limit is not None:
        body["max_gen_len"] = limit
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    return body


def llama_prompt(messages: list[Message], deployment: str) -> str:
    """Llama 3's chat template: each turn under its role's header, ended by ``<|eot_id|>``,
    then the assistant's header the answer follows. A final assistant turn is left open: the
    model continues it."""
    turns = ["<|begin_of_text|>"]
    for i, message in enumerate(messages):
        role = _LLAMA_ROLES.get(message.role)
        if role is None or message.tool_calls:
            raise rejections.unsupported("Llama on Bedrock", f"messages[{i}]", deployment,
                                         "its prompt holds system, user and assistant text "
                                         "only, no tool calls or results")
        text = _text(message, i, deployment)
        last = i == len(messages) - 1 and role == "assistant"
        turns.append(f"<|start_header_id|>{role}<|end_header_id|>\n\n{text}"
                     + ("" if last else "<|eot_id|>"))
    if not (messages and _LLAMA_ROLES.get(messages[-1].role) == "assistant"):
        turns.append("<|start_header_id|>assistant<|end_header_id|>\n\n")
    return "".join(turns)


def _text(message: Message, i: int, deployment: str) -> str:
    if message.content is None or isinstance(message.content, str):
        return message.content or ""
    texts = []
    for j, part in enumerate(message.content):
        if part.type != "text":
            raise rejections.unsupported("Llama on Bedrock", f"messages[{i}].content[{j}]",
                                         deployment, "its prompt holds text only")
        texts.append(part.text or "")
    return "".join(texts)


def llama_answer(output: dict[str, Any], record_id: str, deployment: str,
                 created: int) -> ChatResponse:
    text = output.get("generation")
    if not isinstance(text, str):
        raise UpstreamProtocolError("the record's output has no generation",
                                    deployment=deployment)
    prompt = _count(output.get("prompt_token_count"))
    completion = _count(output.get("generation_token_count"))
    reason = output.get("stop_reason")
    return ChatResponse(
        id=f"batch-{record_id}", model="", created=created,
        choices=[Choice(index=0, message=Message(role="assistant", content=text),
                        finish_reason=_LLAMA_FINISH.get(str(reason), "stop"))],
        usage=Usage(prompt_tokens=prompt, completion_tokens=completion,
                    total_tokens=prompt + completion))


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
