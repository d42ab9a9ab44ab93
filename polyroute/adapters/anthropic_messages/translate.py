"""Pure functions between the canonical model and Anthropic's Messages API. No I/O here.

Translation must be idempotent: the engine may build the body again for another attempt, so
nothing here mutates the request.
"""

from __future__ import annotations

from typing import Any

import msgspec

from polyroute.adapters import rejections
from polyroute.adapters.anthropic_messages.spec import SUPPORT
from polyroute.adapters.anthropic_messages.wire import (
    ENCODER,
    MESSAGE_DECODER,
    MODEL_LIST_DECODER,
    Block,
)
from polyroute.adapters.anthropic_messages.wire import Usage as WireUsage
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
from polyroute.model.usage import CompletionTokensDetails, PromptTokensDetails, Usage

VENDOR = "Anthropic"
DEFAULT_MAX_TOKENS = 4096
"""Anthropic requires ``max_tokens``; this is sent when neither the client nor the provider's
``quirks.default_max_tokens`` gives one. Every current Claude model accepts it."""

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    # A server tool's long turn was paused; the client continues it by sending it back. To an
    # OpenAI client that is an ordinary end of turn.
    "pause_turn": "stop",
}


_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
_EFFORT = {"minimal": "low", "low": "low", "medium": "medium", "high": "high"}


def unsupported(param: str, deployment: str, why: str = "") -> UpstreamRejected:
    return rejections.unsupported(VENDOR, param, deployment, why)


# -- request ---------------------------------------------------------------------------------


def chat_body(request: ChatRequest, model: str, quirks: Quirks, deployment: str) -> bytes:
    """The body of ``POST /v1/messages`` for ``request``."""
    drop = quirks.drop_params
    check_supported(request, SUPPORT, drop, deployment)
    system, messages = _conversation(request.messages, deployment)
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": (request.max_completion_tokens or request.max_tokens
                       or quirks.default_max_tokens or DEFAULT_MAX_TOKENS),
        "messages": messages,
    }
    if system is not None:
        body["system"] = system
    if request.stream:
        body["stream"] = True
    if request.temperature is not None and "temperature" not in drop:
        body["temperature"] = request.temperature
    if request.top_p is not None and "top_p" not in drop:
        body["top_p"] = request.top_p
    if request.top_k is not None and "top_k" not in drop:
        body["top_k"] = request.top_k
    if request.stop and "stop" not in drop:
        body["stop_sequences"] = [request.stop] if isinstance(request.stop, str) else request.stop
    if request.user and "user" not in drop:
        body["metadata"] = {"user_id": request.user}
    if request.thinking is not None and "thinking" not in drop:
        body["thinking"] = request.thinking
    if request.tools and "tools" not in drop:
        body["tools"] = [_tool(tool, j, deployment) for j, tool in enumerate(request.tools)]
    choice = _tool_choice(request, drop, deployment)
    if choice is not None:
        body["tool_choice"] = choice
    output = _output_config(request, drop, deployment)
    if output:
        body["output_config"] = output
    for name in drop.intersection(body):  # Anthropic's own names may be listed too
        if name not in ("model", "messages", "max_tokens"):
            del body[name]
    return ENCODER.encode(body)


def _conversation(
    messages: list[Message], deployment: str
) -> tuple[str | list[dict[str, Any]] | None, list[dict[str, Any]]]:
    """Anthropic's top-level ``system`` and its ``messages``: system and developer messages are
    hoisted (in order), tool results become ``tool_result`` blocks of a user turn, and
    consecutive turns of one role are merged into one."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        role, where = message.role, f"messages[{i}]"
        if role in ("system", "developer"):
            system += _blocks(message.content, f"{where}.content", deployment, images=False)
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
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"] += blocks
        else:
            turns.append({"role": role, "content": blocks})
    for turn in turns:
        turn["content"] = _compact(turn["content"])
    system_out: str | list[dict[str, Any]] | None = _compact(system) if system else None
    return system_out, turns


def _compact(blocks: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """A lone plain text block is sent as a string, the way Anthropic's own clients do."""
    if len(blocks) == 1 and blocks[0].keys() == {"type", "text"} and blocks[0]["type"] == "text":
        return str(blocks[0]["text"])
    return blocks


def _blocks(
    content: str | list[ContentPart] | None, where: str, deployment: str, *, images: bool = True
) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        # Anthropic rejects empty text blocks; an empty string says nothing anyway.
        return [{"type": "text", "text": content}] if content else []
    blocks = []
    for j, part in enumerate(content):
        block = _part(part, f"{where}[{j}]", deployment, images)
        if block is not None:
            if part.cache_control is not None:
                block["cache_control"] = part.cache_control
            blocks.append(block)
    return blocks


def _part(part: ContentPart, where: str, deployment: str, images: bool) -> dict[str, Any] | None:
    kind = part.type
    if kind in ("text", "refusal"):
        text = part.text if kind == "text" else part.refusal
        return {"type": "text", "text": text} if text else None
    if kind == "image_url" and images and part.image_url is not None:
        return {"type": "image", "source": _image_source(part.image_url, where, deployment)}
    if kind == "file" and images:
        return _document(part.file or {}, where, deployment)
    raise unsupported(f"{where}.type", deployment, f"content parts of type '{kind}' have no "
                      "equivalent here")


def _image_source(image: ImageURL, where: str, deployment: str) -> dict[str, Any]:
    url = image.url
    if url.startswith(("http://", "https://")):
        return {"type": "url", "url": url}
    media_type, data = data_url(VENDOR, url, f"{where}.image_url.url", deployment,
                                 "expected an http(s) URL or a base64 data: URL", image.data)
    if media_type not in _IMAGE_TYPES:
        raise unsupported(f"{where}.image_url.url", deployment,
                          f"images must be JPEG, PNG, GIF or WebP, not {media_type}")
    return {"type": "base64", "media_type": media_type, "data": data}


def _document(file: dict[str, Any], where: str, deployment: str) -> dict[str, Any]:
    file_data = file.get("file_data")
    if not isinstance(file_data, str):
        raise unsupported(f"{where}.file", deployment, "only inline PDFs (file_data) can be "
                          "sent; uploaded file ids belong to OpenAI")
    media_type, data = data_url(VENDOR, file_data, f"{where}.file.file_data", deployment,
                                 "expected an http(s) URL or a base64 data: URL")
    if media_type != "application/pdf":
        raise unsupported(f"{where}.file.file_data", deployment,
                          f"documents must be PDF, not {media_type}")
    block: dict[str, Any] = {"type": "document", "source": {
        "type": "base64", "media_type": media_type, "data": data}}
    if isinstance(file.get("filename"), str):
        block["title"] = file["filename"]
    return block




def _assistant_blocks(message: Message, where: str, deployment: str) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    # Thinking must come back first and unchanged: Anthropic verifies its signature.
    for block in message.thinking_blocks or ():
        if block.type == "redacted_thinking":
            blocks.append({"type": "redacted_thinking", "data": block.data or ""})
        else:
            blocks.append({"type": "thinking", "thinking": block.thinking or "",
                           "signature": block.signature or ""})
    blocks += _blocks(message.content, f"{where}.content", deployment, images=False)
    if message.refusal and not message.content:
        blocks.append({"type": "text", "text": message.refusal})
    for k, call in enumerate(message.tool_calls or ()):
        function = call.function or FunctionCall()
        blocks.append({"type": "tool_use", "id": call.id or "", "name": function.name or "",
                       "input": rejections.object_arguments(
                           VENDOR, function.arguments,
                           f"{where}.tool_calls[{k}].function.arguments", deployment)})
    return blocks


def _tool_result(message: Message, where: str, deployment: str) -> dict[str, Any]:
    call_id = rejections.tool_call_id(message, where, deployment)
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": call_id}
    content = message.content
    if isinstance(content, str):
        if content:
            block["content"] = content
    elif content:
        block["content"] = _blocks(content, f"{where}.content", deployment)
    return block


def _tool(tool: Tool, j: int, deployment: str) -> dict[str, Any]:
    function = tool.function
    if tool.type != "function" or function is None:
        raise unsupported(f"tools[{j}].type", deployment, "only function tools can be mapped")
    schema = function.parameters
    if schema is None:
        schema = {"type": "object", "properties": {}}
    elif "type" not in schema:
        schema = {"type": "object", **schema}  # Anthropic insists on the top-level type
    out: dict[str, Any] = {"name": function.name, "input_schema": schema}
    if function.description:
        out["description"] = function.description
    if function.strict is not None:
        out["strict"] = function.strict
    if tool.cache_point is not None:
        out["cache_control"] = tool.cache_point
    return out


def _tool_choice(
    request: ChatRequest, drop: frozenset[str], deployment: str
) -> dict[str, Any] | None:
    choice = request.tool_choice if "tool_choice" not in drop else None
    serial = request.parallel_tool_calls is False and "parallel_tool_calls" not in drop
    if choice is None:
        return {"type": "auto", "disable_parallel_tool_use": True} if serial and request.tools \
            else None
    if choice == "none":
        return {"type": "none"}
    out: dict[str, Any]
    if choice == "auto":
        out = {"type": "auto"}
    elif choice == "required":
        out = {"type": "any"}
    elif isinstance(choice, ToolChoice) and choice.forced is not None:
        out = {"type": "tool", "name": choice.forced}
    else:
        raise unsupported("tool_choice", deployment,
                          "use 'auto', 'required', 'none' or a named function")
    if serial:
        out["disable_parallel_tool_use"] = True
    return out


def _output_config(
    request: ChatRequest, drop: frozenset[str], deployment: str
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    effort = request.reasoning_effort
    if effort and effort != "none" and "reasoning_effort" not in drop:
        out["effort"] = _EFFORT.get(effort, effort)
    fmt = request.response_format
    if fmt and "response_format" not in drop:
        if fmt.schema is not None:
            out["format"] = {"type": "json_schema", "schema": fmt.schema}
        elif fmt.type != "text":
            raise unsupported("response_format", deployment,
                              f"type '{fmt.type}' has no equivalent; send a json_schema")
    return out


# -- response --------------------------------------------------------------------------------


def parse_response(body: bytes, deployment: str, created: int) -> ChatResponse:
    try:
        wire = MESSAGE_DECODER.decode(body)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise UpstreamProtocolError(f"unreadable response from the upstream: {exc}",
                                    deployment=deployment) from exc
    texts: list[str] = []
    calls: list[ToolCall] = []
    thinking: list[ThinkingBlock] = []
    for block in wire.content:
        if block.type == "text":
            texts.append(block.text or "")
        elif block.type == "tool_use":
            calls.append(ToolCall(id=block.id, type="function", function=FunctionCall(
                name=block.name, arguments=tool_arguments(block))))
        elif block.type in ("thinking", "redacted_thinking"):
            thinking.append(ThinkingBlock(type=block.type, thinking=block.thinking,
                                          signature=block.signature, data=block.data))
    reasoning = "".join(b.thinking or "" for b in thinking) or None
    message = Message(
        role="assistant",
        content="".join(texts) if texts or not calls else None,
        tool_calls=calls or None,
        reasoning_content=reasoning,
        thinking_blocks=thinking or None,
    )
    finish = finish_reason(wire.stop_reason)
    return ChatResponse(
        id=wire.id, model=wire.model, created=created,
        choices=[Choice(index=0, message=message, finish_reason=finish)],
        usage=canonical_usage(wire.usage) if wire.usage is not None else None,
    )


def tool_arguments(block: Block) -> str:
    # The upstream's own JSON text of the input, exactly: OpenAI's arguments are a string.
    return bytes(block.input).decode() if len(block.input) else "{}"


def finish_reason(stop_reason: str | None) -> str | None:
    if stop_reason is None:
        return None
    return FINISH_REASONS.get(stop_reason, stop_reason)


def canonical_usage(usage: WireUsage) -> Usage:
    """Anthropic counts cache reads and writes apart from ``input_tokens``; OpenAI's
    ``prompt_tokens`` includes cached tokens, so the canonical count is the sum."""
    read, written = usage.cache_read_input_tokens, usage.cache_creation_input_tokens
    prompt = (usage.input_tokens or 0) + (read or 0) + (written or 0)
    completion = usage.output_tokens or 0
    details = None
    if read is not None or written is not None:
        details = PromptTokensDetails(cached_tokens=read or 0, cache_creation_tokens=written)
    thinking = usage.output_tokens_details.thinking_tokens if usage.output_tokens_details \
        else None
    return Usage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion,
        prompt_tokens_details=details,
        completion_tokens_details=(CompletionTokensDetails(reasoning_tokens=thinking)
                                   if thinking is not None else None),
    )


def parse_model_list(body: bytes, deployment: str) -> tuple[list[str], str | None]:
    """The ids of one page of ``GET /v1/models``, and the id to continue after (if any)."""
    try:
        page = MODEL_LIST_DECODER.decode(body)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise UpstreamProtocolError(f"unreadable model list: {exc}",
                                    deployment=deployment) from exc
    ids = [m.id for m in page.data]
    return ids, (page.last_id or (ids[-1] if ids else None)) if page.has_more else None
