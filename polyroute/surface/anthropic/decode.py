"""Client bytes in Anthropic's dialect → canonical requests (the reverse of the Anthropic
adapter's translation), with Anthropic-style 400s for anything malformed.

What is well formed but has no canonical equivalent (``container``, ``mcp_servers``, server
tools, document blocks with a text source, fields added after this schema …) is not refused
here: the request keeps its own bytes (``ChatRequest.native``) and an Anthropic upstream gets
them untouched; the first such thing is noted, and any other protocol refuses the request with
it (:func:`polyroute.adapters.passthrough.refuse_untranslatable`). The canonical request then
lacks those parts; it still serves for routing, estimates and stream recovery."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from polyroute.errors import InvalidRequest
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
from polyroute.model.tools import ImageURL, ResponseFormat, ToolChoice
from polyroute.model.tools import Tool as CanonicalTool
from polyroute.nesting import check_json_depth
from polyroute.surface.anthropic.wire import (
    FIELDS_DECODER,
    REQUEST_DECODER,
    Block,
    MessagesRequest,
    Tool,
    Turn,
)

_encode = msgspec.json.Encoder().encode
_PATH = re.compile(r" - at `\$\.?([^`]*)`$")

# Accepted and ignored: they select Anthropic's capacity or observability and mean nothing to
# another upstream. Everything else outside the request schema is refused, as Anthropic does.
_IGNORED = frozenset({"service_tier", "inference_geo", "speed", "diagnostics", "cache_control"})
_UNMAPPABLE = {
    "container": "code-execution containers exist only on Anthropic's own servers",
    "mcp_servers": "MCP connectors run on Anthropic's servers",
    "context_management": "context editing runs on Anthropic's servers",
}
_KNOWN = frozenset(MessagesRequest.__struct_fields__)
PROTOCOL = "anthropic"
"""The upstream protocol that speaks this dialect."""
FORWARDED_HEADERS = ("anthropic-beta",)


class _Untranslatable:
    """The first part of the request the canonical model cannot carry; the rest is skipped."""

    def __init__(self) -> None:
        self.first: InvalidRequest | None = None

    def note(self, problem: InvalidRequest) -> None:
        if self.first is None:
            self.first = problem


def messages_request(body: bytes, *, count_only: bool = False,
                     headers: dict[str, str] | None = None) -> ChatRequest:
    skipped = _Untranslatable()
    wire, fields = _decode(body, count_only, skipped)
    messages: list[Message] = []
    system = _system(wire.system, skipped)
    if system is not None:
        messages.append(system)
    for i, turn in enumerate(wire.messages):
        messages += _turn(turn, i, skipped)
    tools = [t for j, tool in enumerate(wire.tools or ())
             if (t := _tool(tool, j, skipped)) is not None] or None
    choice = wire.tool_choice
    request = ChatRequest(
        messages=messages,
        model=wire.model,
        stream=wire.stream,
        # Anthropic streams always report usage, so ask every upstream for it.
        stream_options=StreamOptions(include_usage=True) if wire.stream else None,
        max_completion_tokens=wire.max_tokens,
        temperature=wire.temperature,
        top_p=wire.top_p,
        top_k=wire.top_k,
        stop=wire.stop_sequences or None,
        tools=tools,
        tool_choice=_tool_choice(choice.type, choice.name) if choice is not None else None,
        parallel_tool_calls=False if choice and choice.disable_parallel_tool_use else None,
        user=wire.metadata.user_id if wire.metadata is not None else None,
        thinking=wire.thinking,
    )
    output = wire.output_config
    if output is not None:
        request.reasoning_effort = output.effort
        if output.format is not None:
            if output.format.type != "json_schema" or output.format.schema is None:
                skipped.note(InvalidRequest("output_config.format: only json_schema can be "
                                            "translated", param="output_config.format"))
            else:
                request.response_format = ResponseFormat.of_schema(output.format.schema,
                                                                   strict=True)
    problem = skipped.first
    request.native = NativeRequest(
        PROTOCOL, fields, body=body,
        headers={name: value for name in FORWARDED_HEADERS
                 if (value := (headers or {}).get(name))},
        untranslatable=problem.param if problem is not None else None,
        why=problem.message if problem is not None else "")
    return request


def _decode(body: bytes, count_only: bool,
            skipped: _Untranslatable) -> tuple[MessagesRequest, dict[str, msgspec.Raw]]:
    if not body:
        raise InvalidRequest("The request body is empty; send a JSON object.")
    check_json_depth(body)
    try:
        fields = FIELDS_DECODER.decode(body)
    except msgspec.DecodeError:
        raise InvalidRequest("There was an error parsing the body of your request: it must "
                             "be a JSON object.") from None
    for name in fields:
        if name in _UNMAPPABLE:
            skipped.note(InvalidRequest(f"{name}: {_UNMAPPABLE[name]}", param=name))
        elif name not in _KNOWN and name not in _IGNORED:
            skipped.note(InvalidRequest(f"{name}: Extra inputs are not permitted",
                                        param=name))
    required = ("model", "messages") if count_only else ("model", "messages", "max_tokens")
    for name in required:
        if name not in fields:
            raise InvalidRequest(f"{name}: Field required", param=name)
    try:
        wire = REQUEST_DECODER.decode(body)
    except msgspec.ValidationError as exc:
        match = _PATH.search(str(exc))
        where = match.group(1).replace("[", ".").replace("]", "") if match else None
        problem = _PATH.sub("", str(exc))
        raise InvalidRequest(f"{where}: {problem}" if where else problem,
                             param=where) from None
    if not wire.messages:
        raise InvalidRequest("messages: at least one message is required", param="messages")
    return wire, fields


def _system(system: str | list[Block] | None, skipped: _Untranslatable) -> Message | None:
    if system is None or system == "" or system == []:
        return None
    if isinstance(system, str):
        return Message(role="system", content=system)
    return Message(role="system", content=_parts(system, "system", skipped))


def _turn(turn: Turn, i: int, skipped: _Untranslatable) -> list[Message]:
    where = f"messages.{i}"
    if turn.role not in ("user", "assistant"):
        raise InvalidRequest(f"{where}.role: Input should be 'user' or 'assistant'",
                             param=f"{where}.role")
    if isinstance(turn.content, str):
        return [Message(role=turn.role, content=turn.content)]
    if turn.role == "assistant":
        return [_assistant(turn.content, where, skipped)]
    # Tool results become OpenAI tool messages, ahead of whatever else the turn says (Anthropic
    # requires them first in the turn anyway).
    out = [_tool_result(b, f"{where}.content.{j}", skipped) for j, b in enumerate(turn.content)
           if b.type == "tool_result"]
    rest = [b for b in turn.content if b.type != "tool_result"]
    if rest:
        out.append(Message(role="user", content=_parts(rest, f"{where}.content", skipped)))
    return out


def _assistant(blocks: list[Block], where: str, skipped: _Untranslatable) -> Message:
    text: list[Block] = []
    calls: list[ToolCall] = []
    thinking: list[ThinkingBlock] = []
    for j, block in enumerate(blocks):
        if block.type == "text":
            text.append(block)
        elif block.type == "tool_use":
            calls.append(ToolCall(id=block.id, type="function", function=FunctionCall(
                name=block.name, arguments=_encode(block.input or {}).decode())))
        elif block.type == "thinking":
            thinking.append(ThinkingBlock(thinking=block.thinking, signature=block.signature))
        elif block.type == "redacted_thinking":
            thinking.append(ThinkingBlock(type="redacted_thinking", data=block.data))
        else:
            skipped.note(_unsupported_block(block, f"{where}.content.{j}"))
    content: str | list[ContentPart] | None = None
    if any(b.cache_control for b in text):
        content = _parts(text, f"{where}.content", skipped)
    elif text:
        content = "".join(b.text or "" for b in text)
    return Message(role="assistant", content=content, tool_calls=calls or None,
                   thinking_blocks=thinking or None)


def _tool_result(block: Block, where: str, skipped: _Untranslatable) -> Message:
    content: str | list[ContentPart]
    if block.content is None or isinstance(block.content, str):
        content = block.content or ""
    elif all(b.type == "text" and not b.cache_control for b in block.content):
        content = "".join(b.text or "" for b in block.content)
    else:
        content = _parts(block.content, f"{where}.content", skipped)
    return Message(role="tool", tool_call_id=block.tool_use_id, content=content)


def _parts(blocks: list[Block], where: str, skipped: _Untranslatable) -> list[ContentPart]:
    parts = []
    for j, block in enumerate(blocks):
        part = _part(block, f"{where}.{j}")
        if part is None:
            skipped.note(_unsupported_block(block, f"{where}.{j}"))
            continue
        part.cache_control = block.cache_control
        parts.append(part)
    return parts


def _part(block: Block, where: str) -> ContentPart | None:
    if block.type == "text":
        return ContentPart(type="text", text=block.text or "")
    source = block.source or {}
    kind = source.get("type")
    if block.type == "image" and kind == "base64":
        url = f"data:{source.get('media_type')};base64,{source.get('data', '')}"
        return ContentPart(type="image_url", image_url=ImageURL(url))
    if block.type == "image" and kind == "url" and isinstance(source.get("url"), str):
        return ContentPart(type="image_url", image_url=ImageURL(source["url"]))
    if block.type == "document" and kind == "base64" and (
            source.get("media_type") == "application/pdf"):
        file: dict[str, Any] = {
            "file_data": f"data:application/pdf;base64,{source.get('data', '')}"}
        if block.title:
            file["filename"] = block.title
        return ContentPart(type="file", file=file)
    return None


def _unsupported_block(block: Block, where: str) -> InvalidRequest:
    kind = block.type
    source = (block.source or {}).get("type")
    what = f"'{kind}' blocks" + (f" with a '{source}' source" if source else "")
    return InvalidRequest(f"{where}: {what} cannot be translated for the routed model; send "
                          "text, images (base64 or URL), base64 PDFs, tool use and tool "
                          "results", param=where)


def _tool(tool: Tool, j: int, skipped: _Untranslatable) -> CanonicalTool | None:
    if tool.type not in (None, "custom"):
        skipped.note(InvalidRequest(f"tools.{j}: the server tool '{tool.type}' runs only on "
                                    "Anthropic's own servers", param=f"tools.{j}.type"))
        return None
    return CanonicalTool.of_function(tool.name, tool.input_schema or {"type": "object"},
                                     tool.description, tool.strict, tool.cache_control)


def _tool_choice(kind: str, name: str | None) -> str | ToolChoice:
    if kind == "tool":
        return ToolChoice.naming(name or "")
    choice = {"auto": "auto", "any": "required", "none": "none"}.get(kind)
    if choice is None:
        raise InvalidRequest(f"tool_choice.type: Input tag '{kind}' found using 'type' does "
                             "not match any of the expected tags: 'auto', 'any', 'tool', "
                             "'none'", param="tool_choice.type")
    return choice
