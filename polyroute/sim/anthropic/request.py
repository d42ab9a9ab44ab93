"""The Messages API request, validated the way Anthropic validates it: unknown top-level
fields, wrong roles, empty turns, tool_use without its tool_result and bad image sources are
400s with Anthropic's wording, so a gateway that translates carelessly is caught here."""

from __future__ import annotations

import binascii
from typing import Any

import msgspec

from polyroute.sim.anthropic.errors import invalid

_DECODER = msgspec.json.Decoder()

# Every top-level field of POST /v1/messages; Anthropic answers "Extra inputs are not
# permitted" to any other.
KNOWN_FIELDS = frozenset({
    "model", "messages", "max_tokens", "system", "stop_sequences", "stream", "temperature",
    "top_p", "top_k", "tools", "tool_choice", "metadata", "thinking", "output_config",
    "service_tier", "container", "mcp_servers", "context_management", "inference_geo", "speed",
    "cache_control", "diagnostics",
})
COUNT_TOKENS_FIELDS = frozenset({
    "model", "messages", "system", "tools", "tool_choice", "thinking", "output_config",
    "cache_control", "mcp_servers", "context_management", "speed",
})
IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")


class Block(msgspec.Struct):
    type: str
    text: str | None = None
    id: str | None = None
    name: str | None = None
    input: dict[str, Any] | None = None
    tool_use_id: str | None = None
    content: str | list[Block] | None = None
    source: dict[str, Any] | None = None
    cache_control: dict[str, Any] | None = None
    thinking: str | None = None
    signature: str | None = None
    data: str | None = None

    def plain_text(self) -> str:
        if self.type == "text":
            return self.text or ""
        if self.type == "tool_result":
            if isinstance(self.content, str):
                return self.content
            return "".join(b.plain_text() for b in self.content or ())
        return ""


class Turn(msgspec.Struct):
    role: str
    content: str | list[Block]

    def blocks(self) -> list[Block]:
        if isinstance(self.content, str):
            return [Block(type="text", text=self.content)]
        return self.content


class Tool(msgspec.Struct):
    name: str
    input_schema: dict[str, Any] | None = None
    description: str | None = None
    type: str | None = None
    cache_control: dict[str, Any] | None = None


class ToolChoice(msgspec.Struct):
    type: str
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class MessagesRequest(msgspec.Struct):
    model: str
    messages: list[Turn]
    max_tokens: int | None = None
    system: str | list[Block] | None = None
    stop_sequences: list[str] | None = None
    stream: bool = False
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    thinking: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None

    def system_blocks(self) -> list[Block]:
        if self.system is None:
            return []
        if isinstance(self.system, str):
            return [Block(type="text", text=self.system)] if self.system else []
        return self.system

    @property
    def thinks(self) -> bool:
        return self.thinking is not None and self.thinking.get("type") in ("enabled", "adaptive")


def decode_messages_request(body: bytes, *, count_tokens: bool = False) -> MessagesRequest:
    try:
        raw = _DECODER.decode(body)
    except msgspec.DecodeError:
        raise invalid("There was an error parsing the body of your request. Please send a "
                      "valid JSON object.") from None
    if not isinstance(raw, dict):
        raise invalid("The request body must be a JSON object.")
    known = COUNT_TOKENS_FIELDS if count_tokens else KNOWN_FIELDS
    for name in raw:
        if name not in known:
            raise invalid(f"{name}: Extra inputs are not permitted")
    required = ("model", "messages") if count_tokens else ("model", "messages", "max_tokens")
    for name in required:
        if name not in raw:
            raise invalid(f"{name}: Field required")
    try:
        request = msgspec.convert(raw, MessagesRequest)
    except msgspec.ValidationError as exc:
        raise invalid(_where(str(exc))) from None
    _validate(request)
    return request


def _where(message: str) -> str:
    # msgspec: "Expected `int`, got `str` - at `$.max_tokens`" → "max_tokens: Expected …"
    problem, sep, where = message.rpartition(" - at `$")
    if not sep:
        return message
    path = where.rstrip("`").lstrip(".").replace("[", ".").replace("]", "")
    return f"{path}: {problem}"


def _validate(request: MessagesRequest) -> None:
    if request.max_tokens is not None and request.max_tokens < 0:
        raise invalid("max_tokens: Input should be greater than or equal to 0")
    if request.temperature is not None and not 0 <= request.temperature <= 1:
        raise invalid("temperature: Input should be less than or equal to 1")
    if not request.messages:
        raise invalid("messages: at least one message is required")
    for i, turn in enumerate(request.messages):
        if turn.role not in ("user", "assistant"):
            raise invalid(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        last = i == len(request.messages) - 1
        if not turn.content and not (last and turn.role == "assistant"):
            raise invalid(f"messages.{i}: all messages must have non-empty content except for "
                          "the optional final assistant message")
        for j, block in enumerate(turn.blocks()):
            _validate_block(block, f"messages.{i}.content.{j}")
    final = request.messages[-1]
    if final.role == "assistant" and any(
            b.type == "text" and (b.text or "") != (b.text or "").rstrip()
            for b in final.blocks()[-1:]):
        raise invalid("messages: final assistant content cannot end with trailing whitespace")
    _validate_tool_pairs(request.messages)
    for j, block in enumerate(request.system_blocks()):
        if block.type != "text":
            raise invalid(f"system.{j}.type: Input should be 'text'")
    for j, tool in enumerate(request.tools or ()):
        if tool.type in (None, "custom") and (
                tool.input_schema is None or tool.input_schema.get("type") != "object"):
            raise invalid(f"tools.{j}.custom.input_schema.type: Input should be 'object'")
    if request.tool_choice is not None and request.tool_choice.type == "tool":
        names = {tool.name for tool in request.tools or ()}
        if request.tool_choice.name not in names:
            raise invalid(f"tool_choice.name: Tool '{request.tool_choice.name}' not found in "
                          "tools")


def _validate_block(block: Block, where: str) -> None:
    if block.type == "text" and not block.text:
        raise invalid(f"{where}.text: text content blocks must be non-empty")
    if block.type == "image":
        source = block.source or {}
        kind = source.get("type")
        if kind == "base64":
            if source.get("media_type") not in IMAGE_TYPES:
                raise invalid(f"{where}.image.source.base64.media_type: Input should be "
                              "'image/jpeg', 'image/png', 'image/gif' or 'image/webp'")
            try:
                binascii.a2b_base64(str(source.get("data", "")).encode())
            except binascii.Error:
                raise invalid(f"{where}.image.source.base64.data: invalid base64 data") from None
        elif kind == "url":
            if not str(source.get("url", "")).startswith(("http://", "https://")):
                raise invalid(f"{where}.image.source.url.url: invalid URL")
        else:
            raise invalid(f"{where}.image.source: Input tag '{kind}' found using 'type' does "
                          "not match any of the expected tags: 'base64', 'url', 'file'")
    if block.type == "tool_result" and isinstance(block.content, list):
        for k, inner in enumerate(block.content):
            _validate_block(inner, f"{where}.content.{k}")


def _validate_tool_pairs(turns: list[Turn]) -> None:
    """Every tool_use must be answered by a tool_result in the very next (user) turn, and
    every tool_result must answer a tool_use of the turn before."""
    for i, turn in enumerate(turns):
        blocks = turn.blocks()
        if turn.role == "user":
            previous = turns[i - 1].blocks() if i > 0 and turns[i - 1].role == "assistant" \
                else []
            asked = {b.id for b in previous if b.type == "tool_use"}
            for j, block in enumerate(blocks):
                if block.type == "tool_result" and block.tool_use_id not in asked:
                    raise invalid(
                        f"messages.{i}.content.{j}: unexpected `tool_use_id` found in "
                        f"`tool_result` blocks: {block.tool_use_id}. Each `tool_result` block "
                        "must have a corresponding `tool_use` block in the previous message.")
        if turn.role != "assistant":
            continue
        calls = [b.id for b in blocks if b.type == "tool_use"]
        if not calls:
            continue
        following = turns[i + 1] if i + 1 < len(turns) else None
        answered = {b.tool_use_id for b in following.blocks() if b.type == "tool_result"} \
            if following is not None and following.role == "user" else set()
        missing = [c for c in calls if c not in answered]
        if missing and following is not None:
            raise invalid(
                f"messages.{i + 1}: `tool_use` ids were found without `tool_result` blocks "
                f"immediately after: {', '.join(str(m) for m in missing)}. Each `tool_use` "
                "block must have a corresponding `tool_result` block in the next message.")
