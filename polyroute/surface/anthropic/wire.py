"""Anthropic's Messages API request, as clients send it (the parts polyroute reads)."""

from __future__ import annotations

from typing import Any

import msgspec

from polyroute.model.chat import OutputTokens, TopK
from polyroute.model.names import ModelName


class Block(msgspec.Struct):
    """A content block of any type; which fields are set depends on ``type``."""

    type: str
    text: str | None = None
    source: dict[str, Any] | None = None
    id: str | None = None
    name: str | None = None
    input: dict[str, Any] | None = None
    tool_use_id: str | None = None
    content: str | list[Block] | None = None
    is_error: bool | None = None
    cache_control: dict[str, Any] | None = None
    thinking: str | None = None
    signature: str | None = None
    data: str | None = None
    title: str | None = None


class Turn(msgspec.Struct):
    role: str
    content: str | list[Block]


class Tool(msgspec.Struct):
    name: str
    input_schema: dict[str, Any] | None = None
    description: str | None = None
    type: str | None = None
    strict: bool | None = None
    cache_control: dict[str, Any] | None = None


class ToolChoice(msgspec.Struct):
    type: str
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class Metadata(msgspec.Struct):
    user_id: str | None = None


class OutputFormat(msgspec.Struct):
    type: str
    schema: dict[str, Any] | None = None


class OutputConfig(msgspec.Struct):
    effort: str | None = None
    format: OutputFormat | None = None


class MessagesRequest(msgspec.Struct):
    model: ModelName
    messages: list[Turn]
    max_tokens: OutputTokens | None = None
    system: str | list[Block] | None = None
    stop_sequences: list[str] | None = None
    stream: bool = False
    temperature: float | None = None
    top_p: float | None = None
    top_k: TopK | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    metadata: Metadata | None = None
    thinking: dict[str, Any] | None = None
    output_config: OutputConfig | None = None


REQUEST_DECODER = msgspec.json.Decoder(MessagesRequest)
FIELDS_DECODER = msgspec.json.Decoder(dict[str, msgspec.Raw])
