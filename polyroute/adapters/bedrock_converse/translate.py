"""Pure functions between the canonical model and Bedrock's Converse API. No I/O here.

Translation must be idempotent: the engine may build the body again for another attempt, so
nothing here mutates the request.

    OpenAI                              Converse
    system / developer messages     →   system[] text blocks
    user / assistant messages       →   messages[] with role user / assistant (same roles merged)
    image_url (data: / s3:// URL)   →   image {format, source: {bytes | s3Location}}
                                        (s3:// only under the provider's allowed_s3_prefixes)
    file (PDF data: URL)            →   document {format: pdf, name, source: {bytes}}
    cache_control on a part / tool  →   a cachePoint block after it
    assistant tool_calls            →   toolUse {toolUseId, name, input}
    assistant thinking_blocks       →   reasoningContent {reasoningText {text, signature}}
    tool message                    →   toolResult {toolUseId, content: [{text}]} in a user turn
    tools / tool_choice             →   toolConfig {tools: [{toolSpec}], toolChoice}
    max_(completion_)tokens,        →   inferenceConfig {maxTokens, temperature, topP,
    temperature, top_p, stop            stopSequences}
    response_format                 →   outputConfig.textFormat (json_schema)
    top_k, thinking                 →   additionalModelRequestFields (Anthropic's names)
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from polyroute.adapters import rejections
from polyroute.adapters.bedrock_converse.spec import SUPPORT
from polyroute.adapters.bedrock_converse.wire import (
    ENCODER,
    RESPONSE_DECODER,
    Block,
)
from polyroute.adapters.bedrock_converse.wire import Usage as WireUsage
from polyroute.adapters.parts import data_url
from polyroute.adapters.support import check_supported
from polyroute.errors import UpstreamProtocolError, UpstreamRejected
from polyroute.model.chat import (
    ChatRequest,
    ChatResponse,
    Choice,
    ContentPart,
    FunctionCall,
    Message,
    ThinkingBlock,
    ToolCall,
)
from polyroute.model.tools import ImageURL, Tool, ToolChoice
from polyroute.model.upstream import Quirks
from polyroute.model.usage import PromptTokensDetails, Usage

VENDOR = "Bedrock"

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
"""Anything else (``malformed_model_output``, ``malformed_tool_use``) has no OpenAI equivalent
and is passed on as it is."""

_IMAGE_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg",
                  "image/gif": "gif", "image/webp": "webp"}
_DOCUMENT_NAME = re.compile(r"[^A-Za-z0-9\s\-()\[\]]")
_CACHE_POINT = {"cachePoint": {"type": "default"}}


def unsupported(param: str, deployment: str, why: str = "") -> UpstreamRejected:
    return rejections.unsupported(VENDOR, param, deployment, why)


# -- request ---------------------------------------------------------------------------------


def chat_body(request: ChatRequest, quirks: Quirks, deployment: str) -> bytes:
    """The body of ``converse`` / ``converse-stream`` (the model id goes in the path)."""
    drop = quirks.drop_params
    check_supported(request, SUPPORT, drop, deployment)
    _check_s3_uris(request, quirks.allowed_s3_prefixes, deployment)
    system, messages = _conversation(request.messages, deployment)
    body: dict[str, Any] = {"messages": messages}
    if system:
        body["system"] = system
    inference: dict[str, Any] = {}
    limit = request.max_completion_tokens or request.max_tokens or quirks.default_max_tokens
    if limit is not None and not {"max_tokens", "max_completion_tokens"} & drop:
        inference["maxTokens"] = limit
    if request.temperature is not None and "temperature" not in drop:
        inference["temperature"] = request.temperature
    if request.top_p is not None and "top_p" not in drop:
        inference["topP"] = request.top_p
    if request.stop and "stop" not in drop:
        inference["stopSequences"] = [request.stop] if isinstance(request.stop, str) \
            else request.stop
    if inference:
        body["inferenceConfig"] = inference
    tools = _tool_config(request, drop, messages, deployment)
    if tools is not None:
        body["toolConfig"] = tools
    output = _output_config(request, drop, deployment)
    if output is not None:
        body["outputConfig"] = output
    extra: dict[str, Any] = {}
    if request.top_k is not None and "top_k" not in drop:
        extra["top_k"] = request.top_k
    if request.thinking is not None and "thinking" not in drop:
        extra["thinking"] = request.thinking
    if extra:
        body["additionalModelRequestFields"] = extra
    return ENCODER.encode(body)


def _check_s3_uris(request: ChatRequest, allowed: tuple[str, ...], deployment: str) -> None:
    """Bedrock reads an s3:// image with the gateway's own AWS identity, so a client could
    read any object that identity can. Only the provider's ``allowed_s3_prefixes`` pass."""
    for i, message in enumerate(request.messages):
        if not isinstance(message.content, list):
            continue
        for j, part in enumerate(message.content):
            image = part.image_url if part.type == "image_url" else None
            url = image.url if image is not None else ""
            if url[:5].lower() == "s3://" and not (
                    url.startswith("s3://") and url.startswith(allowed)):
                raise UpstreamRejected(
                    f"The image at messages[{i}].content[{j}] names an S3 object; deployment "
                    f"'{deployment}' reads only the S3 locations its provider allows "
                    "(quirks.allowed_s3_prefixes). Send the image as a base64 data: URL.",
                    param=f"messages[{i}].content[{j}].image_url.url",
                    code="s3_uri_not_allowed", status=403, deployment=deployment)


def _conversation(
    messages: list[Message], deployment: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Converse's ``system`` and ``messages``: system and developer messages are hoisted (in
    order), tool results become ``toolResult`` blocks of a user turn, and consecutive turns of
    one role are merged (Bedrock refuses two in a row)."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        role, where = message.role, f"messages[{i}]"
        if role in ("system", "developer"):
            system += _blocks(message.content, f"{where}.content", deployment, media=False)
            continue
        if role == "user":
            blocks = _blocks(message.content, f"{where}.content", deployment)
        elif role == "assistant":
            blocks = _assistant_blocks(message, where, deployment)
        elif role == "tool":
            role, blocks = "user", [_tool_result(message, where, deployment)]
        else:
            raise unsupported(f"{where}.role", deployment,
                              f"role '{role}' has no equivalent (use 'tool' for tool results)")
        if not blocks:
            continue  # Bedrock refuses an empty turn; an empty message says nothing
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"] += blocks
        else:
            turns.append({"role": role, "content": blocks})
    return system, turns


def _blocks(
    content: str | list[ContentPart] | None, where: str, deployment: str, *, media: bool = True
) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        # Bedrock refuses blank text blocks; an empty string says nothing anyway.
        return [{"text": content}] if content.strip() else []
    blocks = []
    for j, part in enumerate(content):
        block = _part(part, f"{where}[{j}]", deployment, media)
        if block is not None:
            blocks.append(block)
            if part.cache_control is not None:
                blocks.append(_CACHE_POINT)
    return blocks


def _part(part: ContentPart, where: str, deployment: str, media: bool) -> dict[str, Any] | None:
    kind = part.type
    if kind in ("text", "refusal"):
        text = part.text if kind == "text" else part.refusal
        return {"text": text} if text and text.strip() else None
    if kind == "image_url" and media and part.image_url is not None:
        return {"image": _image(part.image_url, f"{where}.image_url.url", deployment)}
    if kind == "file" and media:
        return {"document": _document(part.file or {}, where, deployment)}
    raise unsupported(f"{where}.type", deployment,
                      f"content parts of type '{kind}' have no equivalent here")


def _image(image: ImageURL, where: str, deployment: str) -> dict[str, Any]:
    url = image.url
    if url.startswith("s3://"):
        extension = url.rsplit(".", 1)[-1].lower()
        fmt = {"jpg": "jpeg"}.get(extension, extension)
        if fmt not in _IMAGE_FORMATS.values():
            raise unsupported(where, deployment, "an S3 image must end in .png, .jpeg, .jpg, "
                              ".gif or .webp")
        return {"format": fmt, "source": {"s3Location": {"uri": url}}}
    if url.startswith(("http://", "https://")):
        raise unsupported(where, deployment, "Bedrock does not fetch image URLs; send the "
                          "image as a base64 data: URL or an s3:// URL")
    media_type, data = data_url(VENDOR, url, where, deployment, split=image.data)
    known = _IMAGE_FORMATS.get(media_type)
    if known is None:
        raise unsupported(where, deployment,
                          f"images must be PNG, JPEG, GIF or WebP, not {media_type}")
    return {"format": known, "source": {"bytes": data}}


def _document(file: dict[str, Any], where: str, deployment: str) -> dict[str, Any]:
    data_url_text = file.get("file_data")
    if not isinstance(data_url_text, str):
        raise unsupported(f"{where}.file", deployment, "only inline files (file_data) can be "
                          "sent; uploaded file ids belong to OpenAI")
    media_type, data = data_url(VENDOR, data_url_text, f"{where}.file.file_data",
                                 deployment)
    if media_type != "application/pdf":
        raise unsupported(f"{where}.file.file_data", deployment,
                          f"documents must be PDF, not {media_type}")
    # Bedrock allows only letters, digits, single spaces, hyphens, parentheses and brackets.
    raw_name = str(file.get("filename") or "document").rsplit(".", 1)[0]
    name = " ".join(_DOCUMENT_NAME.sub(" ", raw_name).split()) or "document"
    return {"format": "pdf", "name": name, "source": {"bytes": data}}




def _assistant_blocks(message: Message, where: str, deployment: str) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    # Reasoning must come back first and unchanged: Anthropic's models verify the signature.
    for block in message.thinking_blocks or ():
        if block.type == "redacted_thinking":
            blocks.append({"reasoningContent": {"redactedContent": block.data or ""}})
        elif block.signature:
            blocks.append({"reasoningContent": {"reasoningText": {
                "text": block.thinking or "", "signature": block.signature}}})
    blocks += _blocks(message.content, f"{where}.content", deployment, media=False)
    if message.refusal and not message.content:
        blocks.append({"text": message.refusal})
    for k, call in enumerate(message.tool_calls or ()):
        function = call.function or FunctionCall()
        blocks.append({"toolUse": {
            "toolUseId": call.id or "", "name": function.name or "",
            "input": rejections.object_arguments(
                VENDOR, function.arguments, f"{where}.tool_calls[{k}].function.arguments",
                deployment)}})
    return blocks


def _tool_result(message: Message, where: str, deployment: str) -> dict[str, Any]:
    call_id = rejections.tool_call_id(message, where, deployment)
    content = message.content
    blocks: list[dict[str, Any]]
    if isinstance(content, list):
        blocks = [b for b in _blocks(content, f"{where}.content", deployment) if "text" in b
                  or "image" in b or "document" in b]
    else:
        blocks = [{"text": content}] if content and content.strip() else []
    # Bedrock needs at least one content block even for a tool that printed nothing.
    return {"toolResult": {"toolUseId": call_id,
                           "content": blocks or [{"text": "(no output)"}]}}


def _tool_config(
    request: ChatRequest, drop: frozenset[str], messages: list[dict[str, Any]],
    deployment: str,
) -> dict[str, Any] | None:
    if not request.tools or "tools" in drop:
        return None
    choice = request.tool_choice if "tool_choice" not in drop else None
    if choice == "none":
        # Converse has no "none". Without toolConfig the model cannot call a tool — but a
        # conversation that already holds tool calls must carry it.
        if any("toolUse" in b or "toolResult" in b for m in messages for b in m["content"]):
            raise unsupported("tool_choice", deployment, "'none' cannot be expressed in a "
                              "conversation that already has tool calls")
        return None
    tools: list[dict[str, Any]] = []
    for j, tool in enumerate(request.tools):
        tools.append({"toolSpec": _tool_spec(tool, j, deployment)})
        if tool.cache_control is not None:
            tools.append(_CACHE_POINT)
    config: dict[str, Any] = {"tools": tools}
    if choice == "required":
        config["toolChoice"] = {"any": {}}
    elif choice == "auto":
        config["toolChoice"] = {"auto": {}}
    elif isinstance(choice, ToolChoice) and choice.forced is not None:
        config["toolChoice"] = {"tool": {"name": choice.forced}}
    elif choice is not None:
        raise unsupported("tool_choice", deployment,
                          "use 'auto', 'required', 'none' or a named function")
    return config


def _tool_spec(tool: Tool, j: int, deployment: str) -> dict[str, Any]:
    function = tool.function
    if tool.type != "function" or function is None:
        raise unsupported(f"tools[{j}].type", deployment, "only function tools can be mapped")
    schema = function.parameters
    if schema is None:
        schema = {"type": "object", "properties": {}}
    spec: dict[str, Any] = {"name": function.name, "inputSchema": {"json": schema}}
    if function.description:
        spec["description"] = function.description
    if function.strict is not None:
        spec["strict"] = function.strict
    return spec


def _output_config(
    request: ChatRequest, drop: frozenset[str], deployment: str
) -> dict[str, Any] | None:
    fmt = request.response_format
    if not fmt or "response_format" in drop:
        return None
    if fmt.type == "text":
        return None
    spec = fmt.json_schema
    if fmt.schema is not None and spec is not None:
        schema, name, description = fmt.schema, spec.name, spec.description
    elif fmt.type == "json_object":
        schema, name, description = {"type": "object"}, None, None  # any JSON object
    else:
        raise unsupported("response_format", deployment,
                          f"type '{fmt.type}' has no equivalent; send json_object or a "
                          "json_schema")
    definition: dict[str, Any] = {"schema": ENCODER.encode(schema).decode()}
    if name is not None:
        definition["name"] = name
    if description is not None:
        definition["description"] = description
    return {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": definition}}}


# -- response --------------------------------------------------------------------------------


def parse_response(
    body: bytes, model: str, response_id: str, deployment: str, created: int
) -> ChatResponse:
    try:
        wire = RESPONSE_DECODER.decode(body)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise UpstreamProtocolError(f"unreadable response from the upstream: {exc}",
                                    deployment=deployment) from exc
    if wire.output is None or wire.output.message is None:
        raise UpstreamProtocolError("the upstream answered without a message",
                                    deployment=deployment)
    texts: list[str] = []
    calls: list[ToolCall] = []
    thinking: list[ThinkingBlock] = []
    for block in wire.output.message.content:
        if block.text is not None:
            texts.append(block.text)
        elif block.tool_use is not None:
            use = block.tool_use
            calls.append(ToolCall(id=use.tool_use_id, type="function", function=FunctionCall(
                name=use.name, arguments=tool_arguments(block))))
        elif block.reasoning_content is not None:
            thinking.append(thinking_block(block))
    reasoning = "".join(b.thinking or "" for b in thinking) or None
    message = Message(
        role="assistant",
        content="".join(texts) if texts or not calls else None,
        tool_calls=calls or None,
        reasoning_content=reasoning,
        thinking_blocks=thinking or None,
    )
    return ChatResponse(
        id=response_id, model=model, created=created,
        choices=[Choice(index=0, message=message,
                        finish_reason=finish_reason(wire.stop_reason))],
        usage=canonical_usage(wire.usage) if wire.usage is not None else None)


def tool_arguments(block: Block) -> str:
    # Bedrock's own JSON text of the input, exactly: OpenAI's arguments are a string.
    use = block.tool_use
    return bytes(use.input).decode() if use is not None and len(use.input) else "{}"


def thinking_block(block: Block) -> ThinkingBlock:
    content = block.reasoning_content
    assert content is not None
    if content.redacted_content is not None:
        return ThinkingBlock(type="redacted_thinking", data=content.redacted_content)
    text = content.reasoning_text
    return ThinkingBlock(type="thinking", thinking=text.text if text else "",
                         signature=text.signature if text else None)


def finish_reason(stop_reason: str | None) -> str | None:
    if stop_reason is None:
        return None
    return FINISH_REASONS.get(stop_reason, stop_reason)


def canonical_usage(usage: WireUsage) -> Usage:
    """Converse counts cache reads and writes apart from ``inputTokens``; OpenAI's
    ``prompt_tokens`` includes cached tokens, so the canonical count is the sum."""
    read, written = usage.cache_read_input_tokens, usage.cache_write_input_tokens
    prompt = usage.input_tokens + (read or 0) + (written or 0)
    details = None
    if read or written:
        details = PromptTokensDetails(cached_tokens=read or 0, cache_creation_tokens=written)
    return Usage(prompt_tokens=prompt, completion_tokens=usage.output_tokens,
                 total_tokens=prompt + usage.output_tokens, prompt_tokens_details=details)
