"""Converse request → canonical chat request, with errors a boto3 client reads.

    system[] text blocks               → a system message
    messages[] text / image blocks     → user / assistant content (images as data: URLs)
    toolUse (assistant)                → tool_calls (input as JSON text)
    toolResult (user)                  → a tool message per result
    inferenceConfig                    → max_tokens, temperature, top_p, stop
    toolConfig                         → tools, tool_choice (auto / any → required / tool)
    additionalModelRequestFields       → top_k and thinking (Anthropic's names)
    reasoningContent (assistant)       → thinking_blocks (text + signature, or redacted data)

What polyroute does not model — document, video and guardrail-content blocks, tool
results other than text and json, ``guardrailConfig``, ``promptVariables`` — is not refused
here: the request then goes only to Bedrock deployments, as it came (``NativeRequest.
untranslatable``; the engine refuses it, naming the first such part, when the group has none).
An ``s3Location`` anywhere is refused outright: Bedrock would read the object with the
gateway's AWS identity. Other unknown top-level fields reach a Bedrock upstream as sent.
"""

from __future__ import annotations

from typing import Any

import msgspec

from polyroute.errors import InvalidRequest, invalid_request
from polyroute.model.chat import (
    ChatRequest,
    ContentPart,
    FunctionCall,
    Message,
    NativeRequest,
    StreamOptions,
    ThinkingBlock,
    ToolCall,
)
from polyroute.model.tools import ImageURL, Tool, ToolChoice
from polyroute.nesting import check_json_depth
from polyroute.surface.bedrock.wire import REQUEST_DECODER, Block, ConverseRequest, ToolResult

UPSTREAM_PROTOCOL = "bedrock"
_S3 = b'"s3Location"'
_encode = msgspec.json.Encoder().encode
_IMAGE_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "gif": "image/gif",
                "webp": "image/webp"}


def converse_request(body: bytes, model_id: str, stream: bool) -> ChatRequest:
    if not body:
        raise InvalidRequest("The request body is empty; send a JSON object.")
    check_json_depth(body)
    try:
        wire = REQUEST_DECODER.decode(body)
    except msgspec.ValidationError as exc:
        raise invalid_request(str(exc)) from None
    except msgspec.DecodeError:
        raise InvalidRequest("We could not parse the JSON body of your request.") from None
    if not wire.messages:
        raise InvalidRequest("messages must contain at least one message.", param="messages")
    if _S3 in body:  # a quoted key cannot occur inside a JSON string: this is a field
        raise InvalidRequest("s3Location sources are not accepted: send the bytes (Bedrock "
                             "would read the object with the gateway's AWS identity).",
                             param="messages")
    gaps: list[InvalidRequest] = []
    for name in ("guardrail_config", "prompt_variables"):
        if getattr(wire, name) is not None:
            camel = "guardrailConfig" if name == "guardrail_config" else "promptVariables"
            gaps.append(InvalidRequest(f"{camel} is not supported by polyroute", param=camel))
    messages = _messages(wire, gaps)
    first = gaps[0] if gaps else None
    request = ChatRequest(
        messages=messages, model=model_id, stream=stream,
        stream_options=StreamOptions(include_usage=True) if stream else None,
        native=NativeRequest(UPSTREAM_PROTOCOL, {}, body,
                          untranslatable=first.param if first else None,
                          why=first.message if first else ""))
    config = wire.inference_config
    if config is not None:
        request.max_tokens = config.max_tokens
        request.temperature = config.temperature
        request.top_p = config.top_p
        request.stop = config.stop_sequences or None
    if wire.tool_config is not None:
        request.tools, request.tool_choice = _tools(wire)
    extra = wire.additional_model_request_fields or {}
    if isinstance(extra.get("top_k"), int):
        request.top_k = extra["top_k"]
    if isinstance(extra.get("thinking"), dict):
        request.thinking = extra["thinking"]
    return request


def _messages(wire: ConverseRequest, gaps: list[InvalidRequest]) -> list[Message]:
    messages: list[Message] = []
    system = [b.text for b in wire.system or () if b.text]
    if system:
        messages.append(Message(role="system", content="\n\n".join(system)))
    for i, message in enumerate(wire.messages):
        if message.role not in ("user", "assistant"):
            raise InvalidRequest(f"messages.{i}.role must be user or assistant",
                                 param=f"messages.{i}.role")
        parts: list[ContentPart] = []
        calls: list[ToolCall] = []
        thinking: list[ThinkingBlock] = []
        results = 0
        for j, block in enumerate(message.content):
            where = f"messages.{i}.content.{j}"
            if block.tool_result is not None:
                messages.append(_tool_result(block.tool_result, where, gaps))
                results += 1
            elif block.reasoning_content is not None and message.role == "assistant" and (
                    (found := _thinking(block.reasoning_content)) is not None):
                thinking.append(found)
            elif block.tool_use is not None:
                use = block.tool_use
                calls.append(ToolCall(id=use.tool_use_id, type="function", function=FunctionCall(
                    name=use.name, arguments=_encode(use.input or {}).decode())))
            elif block.cache_point is not None:
                if parts:
                    parts[-1].cache_control = {"type": "ephemeral"}
            else:
                try:
                    parts.append(_part(block, where))
                except InvalidRequest as gap:
                    gaps.append(gap)
        if results and not parts and not calls:
            continue  # a turn of tool results only: they are the tool messages above
        content: str | list[ContentPart] | None = None
        if parts or not calls:
            text_only = all(p.type == "text" and p.cache_control is None for p in parts)
            content = "".join(p.text or "" for p in parts) if text_only else parts
        messages.append(Message(
            role=message.role, content=content, tool_calls=calls or None,
            thinking_blocks=thinking or None,
            reasoning_content="".join(t.thinking or "" for t in thinking) or None))
    return messages


def _thinking(block: dict[str, Any]) -> ThinkingBlock | None:
    """A reasoning block of an earlier answer, sent back with its signature (Anthropic's
    models on Bedrock refuse a tool-use conversation whose thinking lost it)."""
    text = block.get("reasoningText")
    if isinstance(text, dict) and isinstance(text.get("text"), str):
        signature = text.get("signature")
        return ThinkingBlock(type="thinking", thinking=text["text"],
                             signature=signature if isinstance(signature, str) else None)
    redacted = block.get("redactedContent")
    if isinstance(redacted, str):
        return ThinkingBlock(type="redacted_thinking", data=redacted)
    return None


def _part(block: Block, where: str) -> ContentPart:
    if block.text is not None:
        return ContentPart(type="text", text=block.text)
    image = block.image
    if image is not None and image.source.bytes is not None:
        kind = _IMAGE_TYPES.get(image.format)
        if kind is None:
            raise InvalidRequest(f"{where}.image.format must be png, jpeg, gif or webp",
                                 param=f"{where}.image.format")
        return ContentPart(type="image_url",
                           image_url=ImageURL(f"data:{kind};base64,{image.source.bytes}"))
    kind = next((name for name in ("image", "document", "video", "guard_content",
                                   "reasoning_content") if getattr(block, name) is not None),
                "an empty block")
    raise InvalidRequest(f"{where}: {kind} blocks are not supported by polyroute (text, "
                         "images as bytes, toolUse and toolResult are)", param=where)


def _tool_result(result: ToolResult, where: str, gaps: list[InvalidRequest]) -> Message:
    texts = []
    for k, part in enumerate(result.content):
        if part.text is None and part.json is None:  # an image, a document …
            gaps.append(InvalidRequest(f"{where}.toolResult.content.{k}: only text and json "
                                       "results are supported by polyroute",
                                       param=f"{where}.toolResult.content.{k}"))
            continue
        texts.append(part.text if part.text is not None else _encode(part.json).decode())
    return Message(role="tool", tool_call_id=result.tool_use_id, content="".join(texts))


def _tools(wire: ConverseRequest) -> tuple[list[Tool] | None, str | ToolChoice | None]:
    config = wire.tool_config
    assert config is not None
    tools = []
    for tool in config.tools:
        spec = tool.tool_spec
        if spec is None:
            continue  # a cachePoint between tools
        schema = (spec.input_schema or {}).get("json") or {"type": "object"}
        tools.append(Tool.of_function(spec.name, schema, spec.description))
    choice: str | ToolChoice | None = None
    given = config.tool_choice or {}
    if "any" in given:
        choice = "required"
    elif "auto" in given:
        choice = "auto"
    elif isinstance(given.get("tool"), dict):
        choice = ToolChoice.naming(str(given["tool"].get("name", "")))
    return tools or None, choice
